//! `POST /linear/webhook`: Linear issue and comment webhooks, answered with
//! comments on the issue through Linear's GraphQL API.
//!
//! Order of checks: body size, `Linear-Signature` over the raw bytes (before
//! anything is parsed), `webhookTimestamp` freshness (read alone, before the
//! rest of the body), the payload's shape, then dedupe on the signature
//! (what it covers: the body) and on `Linear-Delivery`, claimed on disk
//! before the answer (so a replay stays a replay, whatever header it
//! carries, across restarts). The request is answered at once; the run and the comments
//! happen in the background, and a comment that fails is noted on the run
//! without affecting it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use supervisor_store::{RunRecord, RunStatus};
use supervisor_triggers::linear::{self, Data, LinearWebhook};
use supervisor_triggers::{Decision, ParseError, TriggerEvent, VerifyError};

use super::Daemon;
use super::client::{HttpClient, REQUEST_TIMEOUT};
use super::http::{header_str, plain, read_body};
use super::resume::Claim;
use super::runner::{Replier, ReplyFuture};
use crate::run::Outcome;
use crate::wording;

/// The metrics label of this source.
const SOURCE: &str = "linear";
/// How long a delivery id is remembered. Linear retries a failed delivery
/// up to about 6 hours later; a day covers that with room to spare.
pub const DEDUPE_TTL_SECS: u64 = 24 * 60 * 60;
/// Longest `Linear-Delivery` value taken as a dedupe key (a UUID is 36).
const MAX_DELIVERY_ID: usize = 200;
/// The most output quoted in the closing comment, in characters.
pub const MAX_TAIL_CHARS: usize = 3000;
/// The GraphQL mutation that posts a comment.
const COMMENT_CREATE: &str = "mutation($input: CommentCreateInput!){ commentCreate(input:$input){ success comment{ id url } } }";

pub fn routes() -> Router<Arc<Daemon>> {
    Router::new().route("/linear/webhook", post(receive))
}

/// The one field read before the body is parsed as a webhook.
#[derive(serde::Deserialize)]
struct Stamp {
    #[serde(rename = "webhookTimestamp")]
    webhook_timestamp: i64,
}

/// The client every Linear reply goes through (connections are reused).
fn client() -> &'static HttpClient {
    static CLIENT: OnceLock<HttpClient> = OnceLock::new();
    CLIENT.get_or_init(HttpClient::new)
}

async fn receive(
    State(d): State<Arc<Daemon>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let metrics = &d.runner.metrics;
    let (config, credentials) = d.current();
    let (Some(linear_config), Some(secret), Some(api_key)) = (
        config.linear.as_ref(),
        credentials.linear_webhook_secret.clone(),
        credentials.linear_api_key.clone(),
    ) else {
        metrics.webhook(SOURCE, "not_configured");
        return plain(StatusCode::NOT_FOUND, "Linear is not configured");
    };
    let limit = linear::MAX_BODY.min(config.server.body_limit as usize);
    let body = match read_body(body, limit).await {
        Ok(b) => b,
        Err(response) => {
            metrics.webhook(SOURCE, "too_large");
            return response;
        }
    };

    let signature = header_str(&headers, linear::SIGNATURE_HEADER);
    if let Err(e) = linear::verify(secret.expose_secret().as_bytes(), signature, &body) {
        if e == VerifyError::EmptySecret {
            tracing::error!("the Linear webhook secret is empty: every request is refused");
        }
        metrics.webhook(SOURCE, e.label());
        return plain(StatusCode::UNAUTHORIZED, &e.to_string());
    }
    // Freshness first, from the timestamp alone: a stale replay is
    // refused as stale whatever else its body holds.
    let stamp = match serde_json::from_slice::<Stamp>(&body) {
        Ok(s) => s.webhook_timestamp,
        Err(e) => {
            metrics.webhook(SOURCE, "malformed");
            return plain(StatusCode::BAD_REQUEST, &ParseError::from(e).to_string());
        }
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    if let Err(e) = linear::check_fresh(stamp, now_ms) {
        metrics.webhook(SOURCE, e.label());
        return plain(StatusCode::UNAUTHORIZED, &e.to_string());
    }
    let webhook = match linear::parse(&body) {
        Ok(w) => w,
        Err(e) => {
            metrics.webhook(SOURCE, "malformed");
            return plain(StatusCode::BAD_REQUEST, &e.to_string());
        }
    };

    // Deduped on what the signature covers (the body, which carries its
    // time): the same signed body is one delivery whatever header comes
    // with it. The `Linear-Delivery` id is claimed too, when there is one.
    let mut keys = vec![format!("signature:{}", signature.unwrap_or_default())];
    match header_str(&headers, linear::DELIVERY_HEADER).map(str::trim) {
        Some(id) if !id.is_empty() && id.len() <= MAX_DELIVERY_ID => {
            keys.push(format!("delivery:{id}"));
        }
        Some(_) => {
            metrics.webhook(SOURCE, "malformed");
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("malformed header {}", linear::DELIVERY_HEADER),
            );
        }
        None => {}
    }
    let meta = json!({ "signature": signature });
    match d
        .prune_and_claim_delivery(SOURCE, &keys, DEDUPE_TTL_SECS, &meta, &body)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            metrics.webhook(SOURCE, "duplicate");
            return plain(StatusCode::OK, "duplicate delivery: already handled");
        }
        Err(e) => {
            metrics.webhook(SOURCE, "store_error");
            tracing::error!(error = %format!("{e:#}"), "could not record a delivery");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "try again");
        }
    }

    let api = Api {
        url: linear_config.api_url.clone(),
        authorization: authorization(&api_key),
    };
    let delivery = format!("{SOURCE}:{}", keys[0]);
    match linear::route(&webhook, &config) {
        Decision::Ignore(reason) => {
            tracing::debug!(%reason, kind = %webhook.kind, action = %webhook.action, "Linear webhook ignored");
            metrics.webhook(SOURCE, "ignored");
            d.runner.finish_delivery(Some(&delivery));
            plain(StatusCode::OK, &format!("ignored: {reason}"))
        }
        Decision::Reply(text) => {
            metrics.webhook(SOURCE, "unknown_user");
            if let Some(issue) = issue_of(&webhook) {
                // On the run runtime: the listener's thread stops first at shutdown.
                d.runner.runtime().spawn(async move {
                    if let Err(e) = api.comment(&issue, &text).await {
                        tracing::warn!(error = %e, %issue, "could not answer on the Linear issue");
                    }
                });
            }
            d.runner.finish_delivery(Some(&delivery));
            plain(StatusCode::OK, "no run: the person is not a member")
        }
        Decision::Run(event) => {
            let (req, replier) = run_request(event, &webhook, api, delivery);
            // Not queued (a full queue, a shutdown): the claim is given
            // back and Linear, answered 503, retries the delivery.
            match d.runner.offer(req, replier, None) {
                Ok(()) => {
                    metrics.webhook(SOURCE, "accepted");
                    plain(StatusCode::OK, "run queued")
                }
                Err(refused) => {
                    let busy = &refused.0;
                    metrics.webhook(SOURCE, "refused");
                    if let Err(e) = d.release_delivery(SOURCE, &keys).await {
                        tracing::error!(error = %format!("{e:#}"), "could not release a delivery; its retry will be taken for a duplicate");
                    }
                    plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &format!("run not queued: {busy}; try again later"),
                    )
                }
            }
        }
    }
}

/// The run an event asks for, answered with comments on its issue.
fn run_request(
    event: TriggerEvent,
    webhook: &LinearWebhook,
    api: Api,
    delivery: String,
) -> (TriggerEvent, Option<Arc<dyn Replier>>) {
    let replier = issue_of(webhook).map(|issue| {
        Arc::new(LinearReplier::new(api, issue, event.agent.clone())) as Arc<dyn Replier>
    });
    (event.answering(delivery), replier)
}

/// Takes up a delivery answered by a daemon that died before its run was
/// recorded: its signature checked again (its age aside), routed, queued.
/// Linear was answered already, so a full queue records a refusal.
pub(super) fn resume(d: &Arc<Daemon>, claim: &Claim) -> Result<(), String> {
    let (config, credentials) = d.current();
    let (Some(linear_config), Some(secret), Some(api_key)) = (
        config.linear.as_ref(),
        credentials.linear_webhook_secret.as_ref(),
        credentials.linear_api_key.as_ref(),
    ) else {
        return Err("Linear is no longer configured".into());
    };
    linear::verify(
        secret.expose_secret().as_bytes(),
        claim.meta["signature"].as_str(),
        &claim.body,
    )
    .map_err(|e| format!("it no longer verifies: {e}"))?;
    let webhook = linear::parse(&claim.body).map_err(|e| e.to_string())?;
    let Decision::Run(event) = linear::route(&webhook, &config) else {
        return Err("it asks for no run".into());
    };
    let api = Api {
        url: linear_config.api_url.clone(),
        authorization: authorization(api_key),
    };
    let (req, replier) = run_request(event, &webhook, api, format!("{SOURCE}:{}", claim.key));
    let _ = d.runner.submit(req, replier);
    Ok(())
}

/// The issue a webhook is about: the issue itself, or a comment's issue.
fn issue_of(w: &LinearWebhook) -> Option<String> {
    match &w.data {
        Data::Issue(i) => Some(i.id.clone()),
        Data::Comment(c) => Some(c.issue_id.clone()),
        Data::Other => None,
    }
}

/// The `Authorization` value for a key: a personal API key (`lin_api_...`)
/// goes bare, anything else is an OAuth access token sent as `Bearer`.
pub fn authorization(key: &SecretString) -> SecretString {
    let key = key.expose_secret().trim();
    if key.starts_with("lin_api_")
        || key
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("bearer "))
    {
        SecretString::from(key.to_owned())
    } else {
        SecretString::from(format!("Bearer {key}"))
    }
}

/// Linear's GraphQL endpoint with our credentials.
#[derive(Clone)]
struct Api {
    url: String,
    authorization: SecretString,
}

impl Api {
    /// Posts `body` (markdown) as a comment on `issue` (UUID or identifier).
    async fn comment(&self, issue: &str, body: &str) -> anyhow::Result<()> {
        let request = json!({
            "query": COMMENT_CREATE,
            "variables": { "input": { "issueId": issue, "body": body } },
        });
        let reply = client()
            .post_json(
                &self.url,
                &[("authorization", self.authorization.expose_secret())],
                &request,
            )
            .await?;
        check_reply(reply.status, &reply.body)
    }
}

/// A comment was posted only when the answer is 2xx, has no GraphQL
/// `errors` and says `success: true`.
fn check_reply(status: StatusCode, body: &[u8]) -> anyhow::Result<()> {
    let doc: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let first_error = doc
        .as_ref()
        .and_then(|d| d.get("errors"))
        .and_then(|e| e.as_array())
        .and_then(|errors| errors.first())
        .map(|e| {
            let message = e
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("no message");
            short(message, 200)
        });
    if !status.is_success() {
        return Err(match first_error {
            Some(m) => anyhow::anyhow!("HTTP {}: {m}", status.as_u16()),
            None => anyhow::anyhow!("HTTP {}", status.as_u16()),
        });
    }
    if let Some(m) = first_error {
        return Err(anyhow::anyhow!("GraphQL error: {m}"));
    }
    let success = doc
        .as_ref()
        .and_then(|d| d.pointer("/data/commentCreate/success"))
        .and_then(|s| s.as_bool());
    match success {
        Some(true) => Ok(()),
        Some(false) => Err(anyhow::anyhow!("commentCreate answered success: false")),
        None => Err(anyhow::anyhow!("the answer is not a commentCreate result")),
    }
}

/// Comments on the issue when its run starts and when it ends.
struct LinearReplier {
    inner: Arc<Inner>,
}

struct Inner {
    api: Api,
    issue: String,
    agent: String,
    /// Set once the start comment was attempted, so the closing comment
    /// never comes before it.
    start_done: tokio::sync::watch::Sender<bool>,
}

impl LinearReplier {
    fn new(api: Api, issue: String, agent: String) -> LinearReplier {
        LinearReplier {
            inner: Arc::new(Inner {
                api,
                issue,
                agent,
                start_done: tokio::sync::watch::Sender::new(false),
            }),
        }
    }
}

impl Replier for LinearReplier {
    fn started(&self, record: &RunRecord) -> ReplyFuture {
        let inner = self.inner.clone();
        let text = started_text(&inner.agent, record);
        Box::pin(async move {
            let result = inner.api.comment(&inner.issue, &text).await;
            inner.start_done.send_replace(true);
            match result {
                Ok(()) => vec![],
                Err(e) => vec![format!("linear: the start comment was not posted: {e:#}")],
            }
        })
    }

    fn finished(&self, outcome: &Outcome) -> ReplyFuture {
        let inner = self.inner.clone();
        // The whole comment passes the run's redactor once more, as every
        // reply that quotes a run does.
        let text = finished_text(&inner.agent, outcome);
        let text = match &outcome.redactor {
            Some(r) => r.redact_text(&text),
            None => text,
        };
        // A refused run never started, so no start comment is coming.
        let started = !matches!(outcome.record.status, RunStatus::Rejected { .. });
        Box::pin(async move {
            if started {
                let mut done = inner.start_done.subscribe();
                let wait = REQUEST_TIMEOUT + Duration::from_secs(5);
                let _ = tokio::time::timeout(wait, done.wait_for(|d| *d)).await;
            }
            match inner.api.comment(&inner.issue, &text).await {
                Ok(()) => vec![],
                Err(e) => vec![format!("linear: the closing comment was not posted: {e:#}")],
            }
        })
    }
}

fn started_text(agent: &str, record: &RunRecord) -> String {
    let by = match &record.member {
        Some(m) => format!(" for {m}"),
        None => String::new(),
    };
    format!("Started agent `{agent}`{by}, run ID `{}`.", record.id)
}

/// The closing comment: outcome, duration and the end of the output, redacted whole before
/// it is cut.
pub fn finished_text(agent: &str, outcome: &Outcome) -> String {
    let r = &outcome.record;
    let mut text = format!("Agent `{agent}` {}", wording::outcome(&r.status));
    if let Some(end) = r.ended_at {
        text.push_str(&format!(" after {}", wording::elapsed(r.started_at, end)));
    }
    text.push_str(&format!(" (run ID `{}`).", r.id));
    let tail = match &outcome.redactor {
        Some(r) => r.redact_text(&outcome.tail),
        None => outcome.tail.clone(),
    };
    let tail = tail.trim_end();
    if !tail.is_empty() {
        let (tail, cut) = last_chars(tail, MAX_TAIL_CHARS);
        let fence = fence_for(tail);
        text.push_str(if cut {
            "\n\nThe end of its output:\n\n"
        } else {
            "\n\nIts output:\n\n"
        });
        text.push_str(&format!("{fence}\n{tail}\n{fence}"));
    }
    text
}

/// The last `max` characters of `s`, and whether anything was cut.
fn last_chars(s: &str, max: usize) -> (&str, bool) {
    match s.char_indices().rev().nth(max.saturating_sub(1)) {
        Some((i, _)) if i > 0 => (&s[i..], true),
        _ => (s, false),
    }
}

/// A code fence longer than any run of backticks in `s`.
fn fence_for(s: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat((longest + 1).max(3))
}

fn short(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: RunStatus, tail: &str) -> Outcome {
        outcome_with(status, tail, None)
    }

    fn outcome_with(
        status: RunStatus,
        tail: &str,
        redactor: Option<Arc<crate::redact::Redactor>>,
    ) -> Outcome {
        let started_at = chrono::Utc::now();
        Outcome {
            record: RunRecord {
                id: "0192-run".into(),
                agent: "fixer".into(),
                trigger: "linear".into(),
                member: Some("alice".into()),
                status,
                started_at,
                ended_at: Some(started_at + chrono::Duration::milliseconds(2500)),
                log_bytes: 0,
                redactions: 0,
                detail: json!({}),
            },
            tail: tail.into(),
            redactor,
        }
    }

    #[test]
    fn the_tail_is_redacted_whole_before_it_is_cut() {
        let value = "lin-secret-0123456789";
        let secret = SecretString::from(value.to_owned());
        let redactor = Arc::new(crate::redact::Redactor::new([("TOKEN", &secret)]));
        // Cut first, the quoted end would start with the value's last characters.
        let tail = format!("{value}{}", "y".repeat(MAX_TAIL_CHARS - 6));
        let text = finished_text(
            "fixer",
            &outcome_with(RunStatus::Succeeded, &tail, Some(redactor)),
        );
        assert!(!text.contains(&value[value.len() - 6..]), "{text}");
        assert!(text.contains(&"y".repeat(MAX_TAIL_CHARS - 6)), "{text}");
    }

    #[test]
    fn keys_get_the_authorization_form_that_fits() {
        let auth = |k: &str| {
            authorization(&SecretString::from(k.to_owned()))
                .expose_secret()
                .to_owned()
        };
        assert_eq!(auth("lin_api_abc"), "lin_api_abc");
        assert_eq!(auth("lin_oauth_xyz"), "Bearer lin_oauth_xyz");
        assert_eq!(auth("opaque-token\n"), "Bearer opaque-token");
        assert_eq!(auth("Bearer already"), "Bearer already");
    }

    #[test]
    fn graphql_answers() {
        let ok = br#"{"data":{"commentCreate":{"success":true,"comment":{"id":"c1"}}}}"#;
        assert!(check_reply(StatusCode::OK, ok).is_ok());
        let err = br#"{"errors":[{"message":"Entity not found"}],"data":null}"#;
        let e = check_reply(StatusCode::OK, err).unwrap_err().to_string();
        assert_eq!(e, "GraphQL error: Entity not found");
        let e = check_reply(StatusCode::UNAUTHORIZED, err)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "HTTP 401: Entity not found");
        assert!(check_reply(StatusCode::BAD_GATEWAY, b"<html>").is_err());
        let no = br#"{"data":{"commentCreate":{"success":false}}}"#;
        assert!(check_reply(StatusCode::OK, no).is_err());
        assert!(check_reply(StatusCode::OK, b"{}").is_err());
    }

    #[test]
    fn closing_comment_has_outcome_duration_and_fenced_tail() {
        let text = finished_text("fixer", &outcome(RunStatus::Succeeded, "line 1\nline 2\n"));
        assert_eq!(
            text,
            "Agent `fixer` succeeded after 2.5 s (run ID `0192-run`).\n\nIts output:\n\n```\nline 1\nline 2\n```"
        );
        let text = finished_text("fixer", &outcome(RunStatus::Failed { code: 3 }, ""));
        assert_eq!(
            text,
            "Agent `fixer` failed (exit code 3) after 2.5 s (run ID `0192-run`)."
        );
    }

    #[test]
    fn long_tails_are_cut_to_their_end_and_fences_stay_closed() {
        let tail = format!("{}é```end", "x".repeat(5000));
        let text = finished_text("fixer", &outcome(RunStatus::Succeeded, &tail));
        assert!(text.contains("The end of its output"));
        assert!(text.ends_with("é```end\n````"), "{text}");
        assert!(text.chars().count() < MAX_TAIL_CHARS + 200);
        assert_eq!(last_chars("abc", 3), ("abc", false));
        assert_eq!(last_chars("abcd", 3), ("bcd", true));
        assert_eq!(last_chars("ééé", 2), ("éé", true));
    }
}
