//! `POST /hooks/<name>`: signed requests from automated integrations
//! (alerting, CI). Always a run without a user: team secrets only.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use secrecy::ExposeSecret;
use supervisor_triggers::webhook;

use super::Daemon;
use super::http::{header_str, plain, read_body};
use crate::run::RunRequest;

pub fn routes() -> Router<Arc<Daemon>> {
    Router::new().route("/hooks/{name}", post(receive))
}

async fn receive(
    State(d): State<Arc<Daemon>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let metrics = &d.runner.metrics;
    let config = d.config();
    let (Some(hook), Some(secret)) = (
        config.webhook(&name),
        d.credentials().webhooks.get(&name).cloned(),
    ) else {
        metrics.webhook("webhook", "unknown_hook");
        return plain(StatusCode::NOT_FOUND, "no such webhook");
    };
    let body = match read_body(body, webhook::MAX_BODY).await {
        Ok(b) => b,
        Err(response) => {
            metrics.webhook("webhook", "too_large");
            return response;
        }
    };
    let timestamp = header_str(&headers, webhook::TIMESTAMP_HEADER);
    let signature = header_str(&headers, webhook::SIGNATURE_HEADER);
    let now = chrono::Utc::now().timestamp();
    if let Err(e) = webhook::verify(
        secret.expose_secret().as_bytes(),
        timestamp,
        signature,
        &body,
        now,
    ) {
        metrics.webhook("webhook", e.label());
        return plain(StatusCode::UNAUTHORIZED, &e.to_string());
    }
    // The signature is unique per (timestamp, body): a replay repeats it.
    let key = signature.unwrap_or_default().to_owned();
    match d.claim_delivery(
        "webhook",
        &format!("{name}:{key}"),
        webhook::WINDOW_SECS * 3,
    ) {
        Ok(true) => {}
        Ok(false) => {
            metrics.webhook("webhook", "duplicate");
            return plain(StatusCode::OK, "duplicate delivery: already handled");
        }
        Err(e) => {
            tracing::error!(error = %e, "could not record a delivery");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "try again");
        }
    }
    let event = webhook::event(hook, &body);
    let req = RunRequest {
        agent: event.agent,
        kind: event.kind,
        initiator: None,
        prompt: event.prompt,
        source: event.source,
    };
    metrics.webhook("webhook", "accepted");
    match d.runner.submit(req, None) {
        Ok(()) => plain(StatusCode::ACCEPTED, "run queued"),
        Err(busy) => plain(StatusCode::SERVICE_UNAVAILABLE, &busy.to_string()),
    }
}
