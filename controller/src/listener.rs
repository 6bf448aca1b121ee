//! The accept loop both listeners run.
//!
//! `axum::serve` gives hyper no timer, and without one hyper's header read timeout never
//! fires: a client that sends half a request line and then a byte now and then holds a socket
//! and a task for as long as it likes, and a few thousand such clients exhaust the process's
//! file descriptors. This loop is `axum::serve` plus that timer and a header deadline
//! (`server.header_read_timeout_secs`); the body has its own deadline, checked where the body
//! is read (`api::request::read_body`), because hyper only times the headers.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// Serves `app` on `listener` until `shutdown` completes, then lets the open connections
/// finish their requests (the caller bounds how long) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder.http2().timer(TokioTimer::new());
    let connections = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Typically out of file descriptors: wait for some to be closed rather
                    // than spin on the error.
                    log::warn!("accepting a connection failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                log::debug!("connection ended: {err}");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
}
