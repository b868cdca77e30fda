//! The HTTP/1.1 server loop: `axum::serve`'s job, plus hyper's timer, which
//! `axum::serve` does not give hyper. With it, a connection that has not sent
//! a whole request head within the limit is closed (slowloris), and an idle
//! keep-alive connection waits no longer than that for its next request.
//!
//! At most `max_connections` are served at once: past that, a new connection
//! is still accepted, answered a short 503 with `Retry-After`, and closed, so
//! the listener never stalls and the file descriptors stay bounded.
//!
//! Each request carries the peer's address as `ConnectInfo`. When `shutdown`
//! completes, no new connection is accepted, open ones finish their request
//! and close, and after `limit` more the loop returns regardless.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// Connections being turned away at once, at most.
const MAX_REFUSALS_AT_ONCE: usize = 32;

/// What a connection past the cap is told before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 39\r\n\r\n\
{\"detail\":\"Server busy, retry shortly\"}";

/// Serves `router` until `shutdown` completes; `limit` bounds each request
/// head and the wait for connections at shutdown; at most `max_connections`
/// are served at once.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limit: Duration,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send,
) {
    let slots = Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS)));
    // Refusals hold a descriptor for a moment each: a few at a time, the rest
    // are closed outright.
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_AT_ONCE));
    // Connections watch `stop` to start closing; `open` counts them.
    let (stop, stopping) = watch::channel(());
    let (open, _) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(%error, "could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            if let Ok(refusal) = Arc::clone(&refusals).try_acquire_owned() {
                tokio::spawn(async move {
                    turn_away(stream).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let service = router
            .clone()
            .map_request(move |request: Request<Incoming>| {
                let mut request = request.map(Body::new);
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                request
            });
        let mut stopping = stopping.clone();
        let still_open = open.subscribe();
        tokio::spawn(async move {
            let mut connection = pin!(
                http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(limit)
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            );
            tokio::select! {
                result = connection.as_mut() => log_end(result),
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    log_end(connection.await);
                }
            }
            drop(still_open);
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop.send(());
    let drained = tokio::time::timeout(limit, open.closed()).await;
    if drained.is_err() {
        tracing::warn!(
            connections = open.receiver_count(),
            seconds = limit.as_secs(),
            "connections still open after the grace period; stopping"
        );
    }
}

/// Answers a connection past the cap with a 503 and closes it, without
/// waiting on the client for more than a moment. What the client sent is
/// read and dropped first, so closing does not reset the connection before
/// the client has read the answer.
async fn turn_away(mut stream: TcpStream) {
    use tokio::io::AsyncReadExt;

    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(BUSY).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended with an error");
    }
}
