//! `POST /slack/events`: Slack's Events API. A verified `app_mention` from a
//! member starts an agent with that member's secrets; replies go to the
//! thread of the mention.
//!
//! Invariants: nothing is parsed before the signature and timestamp check;
//! a delivery (`event_id`) starts at most one run, also across retries and
//! daemon restarts: it is claimed on disk (in the daemon's own claims
//! database, which no command locks) before the answer that promises it,
//! and a claim that fails is answered 503 so that Slack retries; the handler
//! waits for neither the store, a run nor Slack's Web API (Slack retries
//! after 3 s): routing and the run happen in the background; a person is
//! matched by email only within the app's own workspace; a failed reply
//! never changes a run, it is noted on it; every reply that quotes a run
//! passes that run's redactor.

mod api;
mod reply;
mod state;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use secrecy::ExposeSecret;
use supervisor_config::{Config, IdSource};
use supervisor_triggers::slack::{self, Mention, SlackRequest};
use supervisor_triggers::{Decision, ReplyTarget, TriggerEvent};

use super::http::{header_str, plain, read_body};
use super::resume::Claim;
use super::runner::Replier;
use super::{Credentials, Daemon};
use reply::ThreadReplier;
use state::SlackState;

/// How long a delivery is remembered. Slack retries for a few minutes
/// (about immediately, after 1 min and after 5 min); an hour covers that
/// with room to spare, also across a restart.
pub const DEDUPE_TTL_SECS: u64 = 3600;

pub fn routes() -> Router<Arc<Daemon>> {
    let slack = Arc::new(SlackState::default());
    Router::new().route(
        "/slack/events",
        post(
            move |State(d): State<Arc<Daemon>>, headers: HeaderMap, body: axum::body::Body| {
                receive(d, slack.clone(), headers, body)
            },
        ),
    )
}

async fn receive(
    d: Arc<Daemon>,
    state: Arc<SlackState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let metrics = &d.runner.metrics;
    let (config, credentials) = d.current();
    let (Some(_), Some(secret)) = (&config.slack, &credentials.slack_signing_secret) else {
        metrics.webhook("slack", "not_configured");
        return plain(StatusCode::NOT_FOUND, "slack is not configured");
    };
    let limit =
        slack::MAX_BODY.min(usize::try_from(config.server.body_limit).unwrap_or(usize::MAX));
    let body = match read_body(body, limit).await {
        Ok(b) => b,
        Err(response) if response.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            metrics.webhook("slack", "too_large");
            return no_retry(response);
        }
        Err(response) => {
            metrics.webhook("slack", "slow_body");
            return response;
        }
    };
    if let Err(e) = slack::verify(
        secret.expose_secret().as_bytes(),
        header_str(&headers, slack::TIMESTAMP_HEADER),
        header_str(&headers, slack::SIGNATURE_HEADER),
        &body,
        chrono::Utc::now().timestamp(),
    ) {
        metrics.webhook("slack", e.label());
        tracing::info!(reason = %e, "refused a Slack request");
        return no_retry(plain(StatusCode::UNAUTHORIZED, &e.to_string()));
    }
    let mention = match slack::parse(&body) {
        Ok(SlackRequest::UrlVerification { challenge }) => {
            metrics.webhook("slack", "url_verification");
            return plain_challenge(challenge);
        }
        Ok(SlackRequest::Other) => {
            metrics.webhook("slack", "ignored");
            return plain(StatusCode::OK, "ignored");
        }
        Ok(SlackRequest::AppMention(m)) if !m.event_id.is_empty() => m,
        Ok(SlackRequest::AppMention(_)) => {
            metrics.webhook("slack", "malformed");
            return no_retry(plain(StatusCode::BAD_REQUEST, "the event has no event_id"));
        }
        Err(e) => {
            metrics.webhook("slack", "malformed");
            return no_retry(plain(StatusCode::BAD_REQUEST, &e.to_string()));
        }
    };

    if !state.first_sight(&mention.event_id) {
        metrics.webhook("slack", "duplicate");
        tracing::debug!(
            event_id = %mention.event_id,
            retry = header_str(&headers, "X-Slack-Retry-Num").unwrap_or("-"),
            "duplicate Slack delivery"
        );
        return plain(StatusCode::OK, "duplicate delivery: already handled");
    }
    // On disk before the answer that promises the event: a retry that
    // reaches a restarted daemon (which has forgotten what it answered)
    // starts nothing, and a claim that fails makes Slack retry.
    let keys = [mention.event_id.clone()];
    let meta = serde_json::json!({
        "timestamp": header_str(&headers, slack::TIMESTAMP_HEADER),
        "signature": header_str(&headers, slack::SIGNATURE_HEADER),
    });
    match d
        .prune_and_claim_delivery("slack", &keys, DEDUPE_TTL_SECS, &meta, &body)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            metrics.webhook("slack", "duplicate");
            tracing::debug!(event_id = %mention.event_id, "Slack delivery claimed before a restart");
            return plain(StatusCode::OK, "duplicate delivery: already handled");
        }
        Err(e) => {
            state.forget(&mention.event_id);
            metrics.webhook("slack", "store_error");
            tracing::error!(event_id = %mention.event_id, error = %format!("{e:#}"), "could not claim a Slack delivery; Slack is asked to retry");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "try again");
        }
    }
    let runtime = d.runner.runtime().clone();
    runtime.spawn(handle_mention(d, state, config, credentials, mention));
    plain(StatusCode::OK, "ok")
}

/// Decides and acts on a claimed delivery.
async fn handle_mention(
    d: Arc<Daemon>,
    state: Arc<SlackState>,
    config: Arc<Config>,
    credentials: Arc<Credentials>,
    mention: Box<Mention>,
) {
    let mut email = None;
    let mut decision = slack::route(&mention, &config, None);
    if needs_email(&mention, &config, &decision) {
        if let (Some(api), Some(user)) = (state.api(&config, credentials), mention.user.as_deref())
        {
            email = state.email_of(&api, user, &mention.team_id).await;
            decision = slack::route(&mention, &config, email.as_deref());
        }
    }
    if !matches!(decision, Decision::Run(_)) {
        d.runner.finish_delivery(Some(&delivery_of(&mention)));
    }
    act(&d, &state, &config, &mention, email.as_deref(), decision);
}

/// How runs name the delivery they answer.
fn delivery_of(mention: &Mention) -> String {
    format!("slack:{}", mention.event_id)
}

/// Takes up a delivery answered by a daemon that died before its run was
/// recorded: its signature checked again (its age aside), then decided and
/// acted on as when it arrived.
pub(super) fn resume(d: &Arc<Daemon>, claim: &Claim) -> Result<(), String> {
    let (config, credentials) = d.current();
    let Some(secret) = credentials.slack_signing_secret.as_ref() else {
        return Err("Slack is no longer configured".into());
    };
    super::resume::verify_again(slack::verify, secret, claim)?;
    let Ok(SlackRequest::AppMention(mention)) = slack::parse(&claim.body) else {
        return Err("it is not a mention".into());
    };
    let state = Arc::new(SlackState::default());
    d.runner.runtime().spawn(handle_mention(
        d.clone(),
        state,
        config,
        credentials,
        mention,
    ));
    Ok(())
}

/// Whether the mention's author maps to no member by Slack id while some
/// member could still be found by the email of their Slack profile.
fn needs_email(mention: &Mention, config: &Config, decision: &Decision) -> bool {
    if matches!(decision, Decision::Ignore(_)) {
        return false;
    }
    let Some(user) = mention.user.as_deref() else {
        return false;
    };
    !config
        .members
        .iter()
        .any(|m| m.slack_user.as_deref() == Some(user))
        && config
            .members
            .iter()
            .any(|m| m.slack_user.is_none() && m.email.is_some())
}

/// Carries out a routing decision: start a run, answer in the thread, or
/// do nothing. Never waits for Slack.
fn act(
    d: &Arc<Daemon>,
    state: &Arc<SlackState>,
    config: &Arc<Config>,
    mention: &Mention,
    email: Option<&str>,
    decision: Decision,
) {
    let metrics = &d.runner.metrics;
    let thread_ts = mention
        .thread_ts
        .clone()
        .unwrap_or_else(|| mention.ts.clone());
    match decision {
        Decision::Ignore(reason) => {
            metrics.webhook("slack", "ignored");
            tracing::debug!(event_id = %mention.event_id, reason, "Slack mention ignored");
        }
        Decision::Reply(text) => {
            let member = config.member_by_identity(IdSource::Slack, mention.user.as_deref(), email);
            let label = if member.is_some() {
                "no_agent"
            } else {
                "unknown_user"
            };
            metrics.webhook("slack", label);
            tracing::info!(event_id = %mention.event_id, slack_user = mention.user.as_deref().unwrap_or("-"), outcome = label, "Slack mention answered without a run");
            let Some(api) = state.api(config, d.credentials()) else {
                return;
            };
            let channel = mention.channel.clone();
            d.runner.runtime().spawn(async move {
                if let Err(e) = api.post(&channel, &thread_ts, &text).await {
                    tracing::warn!(%channel, error = %e, "Slack reply failed");
                }
            });
        }
        Decision::Run(event) => start(d, state, config, mention, event),
    }
}

fn start(
    d: &Arc<Daemon>,
    state: &Arc<SlackState>,
    config: &Arc<Config>,
    mention: &Mention,
    event: TriggerEvent,
) {
    let metrics = &d.runner.metrics;
    let replier: Option<Arc<dyn Replier>> =
        match (&event.reply_to, state.api(config, d.credentials())) {
            (Some(ReplyTarget::Slack { channel, thread_ts }), Some(api)) => {
                Some(Arc::new(ThreadReplier::new(api, channel, thread_ts)))
            }
            _ => None,
        };
    tracing::info!(
        event_id = %mention.event_id,
        agent = %event.agent,
        member = event.initiator.as_deref().unwrap_or("-"),
        channel = %mention.channel,
        "Slack mention starts a run"
    );
    match d
        .runner
        .submit(event.answering(delivery_of(mention)), replier)
    {
        Ok(()) => metrics.webhook("slack", "accepted"),
        // Recorded as a refused run; the replier tells the thread.
        Err(_) => metrics.webhook("slack", "refused"),
    }
}

fn plain_challenge(challenge: String) -> Response {
    use axum::response::IntoResponse;
    (
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        challenge,
    )
        .into_response()
}

/// Asks Slack not to retry a request that cannot succeed.
fn no_retry(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert("X-Slack-No-Retry", HeaderValue::from_static("1"));
    response
}
