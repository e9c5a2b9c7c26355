//! `POST /hooks/<name>`: signed requests from automated integrations
//! (alerting, CI). Always a run without a user: team secrets only.
//!
//! Exactly once, never zero: the signature is claimed (on disk) before the
//! run is queued; a run that cannot be queued gives its claim back and is
//! answered 503 with `Retry-After`, so the sender's retry is accepted.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use secrecy::ExposeSecret;
use serde_json::json;
use supervisor_config::Webhook;
use supervisor_triggers::webhook;

use supervisor_triggers::TriggerEvent;

use super::Daemon;
use super::http::{header_str, plain, read_body};
use super::resume::Claim;

/// How long a request's signature is remembered: the signature window
/// either way, with room to spare.
const DEDUPE_TTL_SECS: u64 = webhook::WINDOW_SECS * 3;

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
    let (config, credentials) = d.current();
    let (Some(hook), Some(secret)) = (config.webhook(&name), credentials.webhooks.get(&name))
    else {
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
    let keys = [format!("{name}:{}", signature.unwrap_or_default())];
    let meta = json!({ "hook": name, "timestamp": timestamp, "signature": signature });
    match d
        .prune_and_claim_delivery("webhook", &keys, DEDUPE_TTL_SECS, &meta, &body)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            metrics.webhook("webhook", "duplicate");
            return plain(StatusCode::OK, "duplicate delivery: already handled");
        }
        Err(e) => {
            metrics.webhook("webhook", "store_error");
            tracing::error!(error = %format!("{e:#}"), "could not record a delivery");
            return retry_later(plain(StatusCode::SERVICE_UNAVAILABLE, "try again"));
        }
    }
    match d.runner.offer(request(hook, &body, &keys[0]), None, None) {
        Ok(()) => {
            metrics.webhook("webhook", "accepted");
            plain(StatusCode::ACCEPTED, "run queued")
        }
        // Not queued: the claim is given back, so that the sender's retry
        // (same signature) is accepted and runs once.
        Err(refused) => {
            let busy = &refused.0;
            metrics.webhook("webhook", "refused");
            if let Err(e) = d.release_delivery("webhook", &keys).await {
                tracing::error!(error = %format!("{e:#}"), "could not release a delivery; its retry will be taken for a duplicate");
            }
            retry_later(plain(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("{busy}; try again later"),
            ))
        }
    }
}

/// The run a verified request asks for.
fn request(hook: &Webhook, body: &[u8], key: &str) -> TriggerEvent {
    webhook::event(hook, body).answering(format!("webhook:{key}"))
}

/// Takes up a delivery answered by a daemon that died before its run was
/// recorded: checked again against the hook's secret (as it was signed,
/// its age aside), then queued. The sender was answered already, so a full
/// queue records a refusal.
pub(super) fn resume(d: &Arc<Daemon>, claim: &Claim) -> Result<(), String> {
    let name = claim.meta["hook"].as_str().unwrap_or_default();
    let (config, credentials) = d.current();
    let (Some(hook), Some(secret)) = (config.webhook(name), credentials.webhooks.get(name)) else {
        return Err(format!("webhook `{name}` is no longer configured"));
    };
    super::resume::verify_again(webhook::verify, secret, claim)?;
    let _ = d
        .runner
        .submit(request(hook, &claim.body, &claim.key), None);
    Ok(())
}

/// Asks the sender to retry in a little while.
fn retry_later(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        HeaderValue::from_static("10"),
    );
    response
}
