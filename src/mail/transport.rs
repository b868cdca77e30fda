//! How messages leave: SMTP through lettre (rustls, no OpenSSL), or standard
//! error for local development.

use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Longest an SMTP exchange may take before it counts as a transient
/// failure; lettre's own timeout covers each connection attempt, the
/// delivery worker's covers the whole exchange.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `log:`: every message written to standard error, never sent.
    Log,
}

/// Why a message did not go out.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: the server is unreachable, busy, or said 4xx.
    #[error("{0}")]
    Transient(String),
    /// Not worth retrying: the server said 5xx, or the message cannot be built.
    #[error("{0}")]
    Permanent(String),
}

impl Transport {
    /// From `LATCHKEY_SMTP_URL`: `smtp://[user:pass@]host[:port][?tls=none|required]`,
    /// `smtps://[user:pass@]host[:port]` or `log:`.
    pub fn from_url(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw).map_err(|error| error.to_string())?;
        let implicit_tls = match url.scheme() {
            "log" => return Ok(Self::Log),
            "smtp" => false,
            "smtps" => true,
            _ => return Err("the scheme must be smtp:, smtps: or log:".to_owned()),
        };
        let host = url
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or("the URL names no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let mut tls_mode = None;
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref()) {
                ("tls", mode @ ("none" | "required" | "opportunistic")) if !implicit_tls => {
                    tls_mode = Some(mode.to_owned());
                }
                _ => return Err(format!("unknown parameter {key}={value}")),
            }
        }
        let parameters =
            || TlsParameters::new(host.clone()).map_err(|error| format!("TLS: {error}"));
        // With credentials, STARTTLS is required unless `tls=none` says
        // otherwise: an attacker who strips the offer must not get the password.
        let has_credentials = !url.username().is_empty();
        let tls = match (implicit_tls, tls_mode.as_deref()) {
            (true, _) => Tls::Wrapper(parameters()?),
            (false, Some("none")) => Tls::None,
            (false, Some("required")) => Tls::Required(parameters()?),
            (false, _) if has_credentials => Tls::Required(parameters()?),
            (false, _) => Tls::Opportunistic(parameters()?),
        };
        let port = url.port().unwrap_or(if implicit_tls { 465 } else { 587 });
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        if !url.username().is_empty() {
            let decode = |text: &str| {
                percent_encoding::percent_decode_str(text)
                    .decode_utf8()
                    .map(|decoded| decoded.into_owned())
                    .map_err(|_| "the credentials are not UTF-8".to_owned())
            };
            builder = builder.credentials(Credentials::new(
                decode(url.username())?,
                decode(url.password().unwrap_or_default())?,
            ));
        }
        Ok(Self::Smtp(builder.build()))
    }

    pub fn is_log(&self) -> bool {
        matches!(self, Self::Log)
    }

    pub async fn send(&self, message: &Message) -> Result<(), SendError> {
        match self {
            Self::Log => {
                let text = String::from_utf8_lossy(&message.formatted()).into_owned();
                eprintln!(
                    "---- latchkey mail (LATCHKEY_SMTP_URL=log:, not sent) ----\n{text}\n---- end of mail ----"
                );
                Ok(())
            }
            Self::Smtp(transport) => match transport.send(message.clone()).await {
                Ok(_) => Ok(()),
                Err(error) if error.is_permanent() => Err(SendError::Permanent(describe(&error))),
                Err(error) => Err(SendError::Transient(describe(&error))),
            },
        }
    }
}

/// lettre's error with its causes: what the server said, or why it could not be reached.
fn describe(error: &lettre::transport::smtp::Error) -> String {
    crate::telemetry::error_chain(error)
}

#[cfg(test)]
mod tests {
    use super::Transport;

    #[test]
    fn smtp_urls_are_read_or_refused_with_a_reason() {
        assert!(Transport::from_url("log:").unwrap().is_log());
        for good in [
            "smtp://127.0.0.1:2525?tls=none",
            "smtp://user:p%40ss@mail.example.com",
            "smtp://mail.example.com:25?tls=required",
            "smtps://mail.example.com",
        ] {
            assert!(Transport::from_url(good).is_ok(), "{good}");
        }
        for bad in [
            "http://mail.example.com",
            "smtp://mail.example.com?tls=maybe",
            "smtps://mail.example.com?tls=none",
            "smtp://:25",
        ] {
            assert!(Transport::from_url(bad).is_err(), "{bad}");
        }
    }
}
