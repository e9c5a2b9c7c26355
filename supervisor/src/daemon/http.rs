//! The HTTP listener: `/healthz`, `/metrics`, and the webhook routes of the
//! trigger sources. Connections that are slow to send their headers or body
//! are closed; bodies over `[server] body_limit` get 413.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;

use super::Daemon;

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a handler may take to read a request body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

pub fn router(daemon: Arc<Daemon>, body_limit: usize) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(super::hooks::routes())
        .merge(super::linear::routes())
        .merge(super::slack::routes())
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(daemon)
}

async fn healthz(State(d): State<Arc<Daemon>>) -> Response {
    let body = json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": d.started.elapsed().as_secs(),
        "runs_running": d.runner.running(),
        "runs_queued": d.runner.waiting(),
        "schedules": d.schedules_summary(),
        "containment": d.runner.engine().host.json(),
    });
    axum::Json(body).into_response()
}

async fn metrics(State(d): State<Arc<Daemon>>) -> Response {
    (
        [(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)],
        d.runner.metrics.render(),
    )
        .into_response()
}

/// A header's value as text, when present and visible ASCII.
pub fn header_str<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Answers with a status and a short plain-text reason.
pub fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}

/// Runs [`serve`] on a thread of its own with a single-threaded runtime, so
/// that answering a request never waits behind the run engine's work
/// (process spawns, store writes) on the main runtime's workers; Slack
/// retries a request that is not answered within 3 s. The returned future
/// resolves once the listener has stopped.
pub fn spawn_listener(
    listener: TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<impl std::future::Future<Output = ()>> {
    let listener = listener.into_std()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (done, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => serve(listener, app, shutdown, drain).await,
                    Err(e) => tracing::error!(error = %e, "the HTTP listener could not start"),
                }
            });
            let _ = done.send(());
        })?;
    Ok(async move {
        let _ = stopped.await;
    })
}

/// Accepts connections until `shutdown` resolves, then lets the requests in
/// flight finish (bounded by `drain`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP connections did not finish in time");
    }
}

/// Reads a request body within the size limit and [`BODY_TIMEOUT`].
pub async fn read_body(
    body: axum::body::Body,
    limit: usize,
) -> Result<axum::body::Bytes, Response> {
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(plain(
            StatusCode::REQUEST_TIMEOUT,
            "the request body was too slow",
        )),
        Ok(Err(_)) => Err(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is too large",
        )),
        Ok(Ok(b)) => Ok(b),
    }
}
