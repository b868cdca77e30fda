//! The delivery worker: on every instance, claims due messages from the
//! outbox, sends them, and settles each: sent (its payload erased), deferred
//! with exponential backoff and jitter after a transient failure, or failed
//! after a permanent one or 24 hours of trying. A claim is a lease: an
//! instance that dies holding one only delays its messages until the lease
//! lapses; one that stops cleanly hands them back at once. Before each send
//! the claimer renews its lease on that message, and sends only if the lease
//! was still its own, so a message whose lease lapsed during a slow batch is
//! sent by whoever holds it, never by two. Each SMTP exchange is cut off at
//! [`SMTP_TIMEOUT`], well inside the lease; instance clocks are assumed to
//! agree within the margin between the two (a minute).

use std::sync::Arc;
use std::time::Duration;

use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use super::transport::SMTP_TIMEOUT;
use super::{Letter, SendError, Transport};
use crate::clock::Clock;
use crate::store::{OutboxRecord, Settlement, Store};

/// Longest a stopping server waits for the message being sent.
pub const STOP_WITHIN: Duration = Duration::from_secs(25);
/// Messages claimed at once.
const BATCH: u64 = 10;
/// How long a claim (or its renewal before a send) holds: the longest SMTP
/// exchange and a minute's margin for clocks and the database.
const LEASE: Duration = Duration::from_secs(SMTP_TIMEOUT.as_secs() + 60);
/// Sent messages are deleted after a week; expired tokens after a day.
const KEEP_SENT: chrono::TimeDelta = chrono::TimeDelta::days(7);
/// How often an instance purges old rows.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Retries stop this long after a message was queued.
const GIVE_UP_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(24);
/// First retry after about a second, then doubling, to at most ten minutes.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(600);

/// Delivers outbox rows of another kind than mail (webhooks); the kind's
/// prefix before `:` names the courier.
pub trait Courier: Send + Sync {
    fn deliver<'a>(
        &'a self,
        message: &'a OutboxRecord,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;
}

pub struct Delivery {
    store: Store,
    /// The SMTP transport and sender, when email is configured.
    smtp: Option<(Transport, Mailbox)>,
    /// Webhook deliveries (`webhook:*` rows).
    webhooks: Option<Arc<dyn Courier>>,
    clock: Arc<dyn Clock>,
    poll_every: Duration,
    wake: Arc<Notify>,
}

impl Delivery {
    pub fn new(
        store: Store,
        smtp: Option<(Transport, Mailbox)>,
        clock: Arc<dyn Clock>,
        poll_every: Duration,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            smtp,
            webhooks: None,
            clock,
            poll_every,
            wake,
        }
    }

    /// Who delivers `webhook:*` rows.
    pub fn with_webhooks(mut self, courier: Arc<dyn Courier>) -> Self {
        self.webhooks = Some(courier);
        self
    }

    /// One attempt at a row, by the courier of its kind.
    async fn attempt(&self, message: &OutboxRecord) -> Result<(), SendError> {
        if message.kind.starts_with("webhook:") {
            return match &self.webhooks {
                Some(courier) => courier.deliver(message).await,
                None => Err(SendError::Permanent("webhooks are not set up".to_owned())),
            };
        }
        let Some((transport, _)) = &self.smtp else {
            return Err(SendError::Permanent(
                "email is not configured (LATCHKEY_SMTP_URL)".to_owned(),
            ));
        };
        let built = self.build(message)?;
        tokio::time::timeout(SMTP_TIMEOUT, transport.send(&built))
            .await
            .unwrap_or_else(|_| {
                Err(SendError::Transient(
                    "the SMTP server did not answer in time".to_owned(),
                ))
            })
    }

    /// Sends what is due until `stop` turns true; then hands back what it
    /// holds and returns.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let owner = Uuid::now_v7();
        let mut last_purge: Option<std::time::Instant> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            if last_purge.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                last_purge = Some(std::time::Instant::now());
                self.purge().await;
            }
            if let Err(error) = self.deliver_due(owner, &stop).await {
                let error = crate::telemetry::error_chain(&error);
                tracing::warn!(%error, "could not read the outbox; retrying");
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.poll_every) => {}
                _ = stop.changed() => {}
            }
        }
        if let Err(error) = self.store.release_mail(owner).await {
            let error = crate::telemetry::error_chain(&error);
            tracing::warn!(%error, "could not hand back claimed messages; they wait for their lease to lapse");
        }
    }

    /// Deletes sent messages and expired tokens past their keeping time.
    async fn purge(&self) {
        let now = self.clock.now();
        let purged = async {
            let mail = self.store.purge_sent_mail(now - KEEP_SENT).await?;
            let tokens =
                self.store.purge_email_tokens(now).await? + self.store.purge_codes(now).await?;
            Ok::<_, crate::store::StoreError>((mail, tokens))
        };
        match purged.await {
            Ok((0, 0)) => {}
            Ok((mail, tokens)) => tracing::info!(
                mail,
                tokens,
                "purged sent messages and expired email tokens"
            ),
            Err(error) => {
                let error = crate::telemetry::error_chain(&error);
                tracing::warn!(%error, "could not purge old messages and tokens");
            }
        }
    }

    /// Claims and sends batches until none is due.
    async fn deliver_due(
        &self,
        owner: Uuid,
        stop: &watch::Receiver<bool>,
    ) -> Result<(), crate::store::StoreError> {
        loop {
            let now = self.clock.now();
            let lease_until = now + chrono::TimeDelta::from_std(LEASE).unwrap_or_default();
            let batch = self
                .store
                .claim_mail(owner, now, lease_until, BATCH)
                .await?;
            if batch.is_empty() {
                return Ok(());
            }
            for message in batch {
                if *stop.borrow() {
                    return Ok(());
                }
                self.deliver(owner, message).await?;
            }
        }
    }

    #[tracing::instrument(level = "info", skip_all, fields(message_id = %message.id, kind = %message.kind))]
    async fn deliver(
        &self,
        owner: Uuid,
        message: OutboxRecord,
    ) -> Result<(), crate::store::StoreError> {
        let lease_until = self.clock.now() + chrono::TimeDelta::from_std(LEASE).unwrap_or_default();
        if !self
            .store
            .renew_lease(message.id, owner, lease_until)
            .await?
        {
            tracing::info!("another instance took this message over; not sending it");
            return Ok(());
        }
        let outcome = self.attempt(&message).await;
        let now = self.clock.now();
        let settled = match outcome {
            Ok(()) => {
                tracing::info!(attempts = message.attempts + 1, "message sent");
                self.store
                    .settle_mail(message.id, owner, Settlement::Sent { at: now })
                    .await?
            }
            Err(SendError::Transient(error)) if now - message.created_at < GIVE_UP_AFTER => {
                let due_at = now + retry_delay(message.attempts);
                tracing::warn!(%error, attempts = message.attempts + 1, %due_at, "message deferred");
                let outcome = Settlement::Deferred {
                    until: due_at,
                    error: &error,
                };
                self.store.settle_mail(message.id, owner, outcome).await?
            }
            Err(error) => {
                tracing::error!(%error, attempts = message.attempts + 1, "message failed for good; `latchkey outbox retry` queues it again");
                let error = error.to_string();
                let outcome = Settlement::Failed {
                    at: now,
                    error: &error,
                };
                self.store.settle_mail(message.id, owner, outcome).await?
            }
        };
        if !settled {
            tracing::warn!(
                "the lease on this message lapsed while it was being sent; it may be sent again"
            );
        }
        Ok(())
    }

    fn build(&self, message: &OutboxRecord) -> Result<Message, SendError> {
        let Some((_, from)) = &self.smtp else {
            return Err(SendError::Permanent("email is not configured".to_owned()));
        };
        let letter: Letter = serde_json::from_str(&message.payload)
            .map_err(|error| SendError::Permanent(format!("unreadable payload: {error}")))?;
        let to: Mailbox = message
            .recipient
            .parse()
            .map_err(|error| SendError::Permanent(format!("recipient: {error}")))?;
        let domain = from.email.domain().to_owned();
        Message::builder()
            .from(from.clone())
            .to(to)
            .subject(letter.subject)
            // The same id on every attempt, so receivers can drop a repeat.
            .message_id(Some(format!("<{}@{domain}>", message.id)))
            .multipart(MultiPart::alternative_plain_html(letter.text, letter.html))
            .map_err(|error| SendError::Permanent(format!("message: {error}")))
    }
}

/// The wait before retry `attempts + 1`: doubling from [`FIRST_RETRY`] to
/// [`LONGEST_RETRY`], then a random half to whole of it, so instances that
/// failed together do not retry together.
fn retry_delay(attempts: i32) -> chrono::TimeDelta {
    let doubled = FIRST_RETRY
        .saturating_mul(1u32 << attempts.clamp(0, 20))
        .min(LONGEST_RETRY);
    let mut random = [0u8; 4];
    let fraction = match aws_lc_rs::rand::fill(&mut random) {
        Ok(()) => f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX),
        Err(_) => 1.0,
    };
    let delay = doubled.mul_f64(0.5 + fraction / 2.0);
    chrono::TimeDelta::from_std(delay).unwrap_or(chrono::TimeDelta::seconds(600))
}

#[cfg(test)]
mod tests {
    use super::retry_delay;

    #[test]
    fn retries_back_off_exponentially_with_jitter_to_a_cap() {
        for attempts in 0..30 {
            let ceiling = (1i64 << attempts.min(20)).min(600) * 1000;
            let delay = retry_delay(attempts).num_milliseconds();
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{attempts}: {delay}"
            );
        }
    }
}
