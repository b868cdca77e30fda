//! The HTTP/1.1 server loop: `axum::serve`'s job, plus hyper's timer, which
//! `axum::serve` does not give hyper. With it, a connection that has not sent
//! a whole request head within the limit is closed (slowloris), and an idle
//! keep-alive connection waits no longer than that for its next request.
//!
//! Each request carries the peer's address as `ConnectInfo`. When `shutdown`
//! completes, no new connection is accepted, open ones finish their request
//! and close, and after `limit` more the loop returns regardless.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// Serves `router` until `shutdown` completes; `limit` bounds each request
/// head and the wait for connections at shutdown.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limit: Duration,
    shutdown: impl Future<Output = ()> + Send,
) {
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

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended with an error");
    }
}
