//! The API's accept loop: HTTP/1.1 connections with bounds, so that slow or idle clients cannot
//! use up the daemon's file descriptors or hold off `/healthz`.
//!
//! Invariants:
//! - At most `max_connections` connections are open at once. When all are taken and another
//!   caller connects, every connection that is not in the middle of a request (it sent
//!   nothing, half a first header, or is kept alive between requests) is closed to make room;
//!   a connection in a request finishes it and then closes. Until a slot is free, new callers
//!   wait in the kernel's listen backlog.
//! - A client has `header_timeout` to send a request's header, from the moment it connects or
//!   its previous answer was sent; otherwise its connection is closed.
//! - A header larger than [`MAX_HEADER_BYTES`] or with more than [`MAX_HEADERS`] fields is
//!   answered 431, a request target longer than [`MAX_URL_BYTES`] 414.
//! - On shutdown the loop stops accepting, idle connections close, requests in flight finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::ApiError;

/// The largest request header (request line and fields) accepted, in bytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The most header fields a request may have.
pub const MAX_HEADERS: usize = 64;
/// The longest request target (path and query) accepted, in bytes.
pub const MAX_URL_BYTES: usize = 4 * 1024;

/// How the accept loop bounds its connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// Serves `router` on `listener` within `limits` until `shutdown`, then waits for the
/// connections to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Connections numbered below this value close as soon as they are not in a request.
    let (evict, _) = watch::channel(0u64);
    let connections = TaskTracker::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEADER_BYTES);
    for id in 0u64.. {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    if !is_connection_error(&e) {
                        // Out of file descriptors, most likely: wait rather than spin.
                        tracing::warn!(error = %e, "cannot accept an API connection");
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        }
                    }
                    continue;
                }
            },
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                tracing::debug!(
                    max_connections = limits.max_connections,
                    "API connections all taken; closing the idle ones"
                );
                evict.send_replace(id);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break, // never closed
                    },
                }
            }
        };
        let connection = connection(
            builder.clone(),
            stream,
            router.clone(),
            id,
            evict.subscribe(),
            shutdown.clone(),
        );
        connections.spawn(async move {
            connection.await;
            drop(slot);
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Serves one connection until it ends, is evicted while not in a request, or the daemon
/// shuts down.
async fn connection(
    builder: hyper::server::conn::http1::Builder,
    stream: TcpStream,
    router: Router,
    id: u64,
    mut evict: watch::Receiver<u64>,
    shutdown: CancellationToken,
) {
    let began = Arc::new(AtomicBool::new(false));
    let service = {
        let began = began.clone();
        let service = TowerToHyperService::new(router);
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            began.store(true, Ordering::Relaxed);
            service.call(request)
        })
    };
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = shutdown.cancelled() => {}
        _ = evict.wait_for(|&below| id < below) => {}
    }
    if !began.load(Ordering::Relaxed) {
        // Nothing asked yet (perhaps half a header): drop it at once.
        return;
    }
    // Closes an idle connection now, a busy one after its answer.
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Middleware: 414 for a request target longer than [`MAX_URL_BYTES`].
pub async fn limit_url(request: Request, next: Next) -> Response {
    let len = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if len > MAX_URL_BYTES {
        let max = MAX_URL_BYTES;
        return ApiError::UrlTooLong { len, max }.into_response();
    }
    next.run(request).await
}
