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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use secrecy::ExposeSecret;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::{
    SlackApiChatPostMessageRequest, SlackApiToken, SlackApiTokenValue, SlackApiUsersInfoRequest,
    SlackClient, SlackClientHyperConnector, SlackMessageContent,
};
use supervisor_config::{Config, IdSource};
use supervisor_store::{RunRecord, RunStatus};
use supervisor_triggers::slack::{self, Mention, SlackRequest};
use supervisor_triggers::{Decision, ReplyTarget, TriggerEvent};
use tokio::sync::watch;

use super::http::{header_str, plain, read_body};
use super::runner::{Replier, ReplyFuture};
use super::{Credentials, Daemon};
use crate::run::{Outcome, RunRequest, redact_text};
use crate::wording;

/// How long a delivery is remembered. Slack retries for a few minutes
/// (about immediately, after 1 min and after 5 min); an hour covers that
/// with room to spare, also across a restart.
pub const DEDUPE_TTL_SECS: u64 = 3600;
/// How long the endpoint itself remembers a delivery, to answer Slack's
/// retries (about immediately, after 1 and after 5 minutes) at once. Only
/// a shortcut: the claim in the store decides.
const RECENT_TTL: Duration = Duration::from_secs(10 * 60);
/// Deliveries remembered before expired ones are dropped.
const RECENT_MAX: usize = 100_000;
/// How long a `users.info` answer is trusted.
const EMAIL_TTL: Duration = Duration::from_secs(3600);
/// Cached `users.info` answers kept before expired ones are dropped.
const EMAIL_CACHE_MAX: usize = 10_000;
/// One Web API call, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries after HTTP 429, each waiting `Retry-After` (at most [`MAX_RETRY_WAIT`]).
const MAX_RETRIES: u32 = 3;
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);
/// How much of the run's output a reply quotes.
const MAX_QUOTED_CHARS: usize = 3000;
/// How long the "finished" reply waits for the "started" one to land, so
/// the thread reads in order.
const STARTED_WAIT: Duration = Duration::from_secs(2 * 60);

type Client = SlackClient<SlackClientHyperConnector<HttpsConnector<HttpConnector>>>;

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

/// What the endpoint keeps between requests.
#[derive(Default)]
struct SlackState {
    /// The Web API client, for the API base it was built for.
    client: Mutex<Option<(String, Arc<Client>)>>,
    /// Profile emails and workspaces by Slack user id, with when they were
    /// looked up.
    emails: Mutex<HashMap<String, (Profile, Instant)>>,
    /// Deliveries seen lately, by `event_id`.
    recent: Mutex<HashMap<String, Instant>>,
}

impl SlackState {
    /// Notes a delivery; `false` when it was seen within [`RECENT_TTL`].
    fn first_sight(&self, event_id: &str) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent
            .get(event_id)
            .is_some_and(|at| at.elapsed() < RECENT_TTL)
        {
            return false;
        }
        if recent.len() >= RECENT_MAX {
            recent.retain(|_, at| at.elapsed() < RECENT_TTL);
            if recent.len() >= RECENT_MAX {
                // A flood: the store still dedupes what is forgotten here.
                recent.clear();
            }
        }
        recent.insert(event_id.to_owned(), Instant::now());
        true
    }

    fn forget(&self, event_id: &str) {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(event_id);
    }

    /// A client for `config`'s API base (rebuilt when a reload changes it)
    /// with the bot token of `credentials`.
    fn api(&self, config: &Config, credentials: Arc<Credentials>) -> Option<SlackApi> {
        let base = &config.slack.as_ref()?.api_base;
        let mut slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let client = match &*slot {
            Some((b, c)) if b == base => c.clone(),
            _ => {
                let connector =
                    SlackClientHyperConnector::with_connector(super::client::connector())
                        .with_slack_api_url(base);
                let c = Arc::new(SlackClient::new(connector));
                *slot = Some((base.clone(), c.clone()));
                c
            }
        };
        Some(SlackApi {
            client,
            credentials,
        })
    }

    /// The profile email of a Slack user, from the cache or `users.info`,
    /// when that user belongs to `workspace` (the event's own team): a guest
    /// from another workspace (Slack Connect) may show any email.
    /// Lookup failures are logged and not cached.
    async fn email_of(&self, api: &SlackApi, user: &str, workspace: &str) -> Option<String> {
        let profile = self.profile_of(api, user).await?;
        slack::identity_email(workspace, profile.team.as_deref(), profile.email.as_deref())
            .map(str::to_owned)
    }

    async fn profile_of(&self, api: &SlackApi, user: &str) -> Option<Profile> {
        {
            let cache = self.emails.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((profile, at)) = cache.get(user) {
                if at.elapsed() < EMAIL_TTL {
                    return Some(profile.clone());
                }
            }
        }
        match api.user_email(user).await {
            Ok(email) => {
                let mut cache = self.emails.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= EMAIL_CACHE_MAX {
                    cache.retain(|_, (_, at)| at.elapsed() < EMAIL_TTL);
                    if cache.len() >= EMAIL_CACHE_MAX {
                        cache.clear();
                    }
                }
                cache.insert(user.to_owned(), (email.clone(), Instant::now()));
                Some(email)
            }
            Err(e) => {
                tracing::warn!(slack_user = %user, error = %e, "could not look up a Slack user's email");
                None
            }
        }
    }
}

async fn receive(
    d: Arc<Daemon>,
    state: Arc<SlackState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let metrics = &d.runner.metrics;
    let config = d.config();
    let credentials = d.credentials();
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
        .claim_delivery("slack", &keys, DEDUPE_TTL_SECS, &meta, &body)
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
pub(super) fn resume(d: &Arc<Daemon>, meta: &serde_json::Value, body: &[u8]) -> Result<(), String> {
    let config = d.config();
    let credentials = d.credentials();
    let Some(secret) = credentials.slack_signing_secret.as_ref() else {
        return Err("Slack is no longer configured".into());
    };
    let timestamp = meta["timestamp"].as_str();
    let signed_at = timestamp.and_then(|t| t.parse().ok()).unwrap_or(0);
    slack::verify(
        secret.expose_secret().as_bytes(),
        timestamp,
        meta["signature"].as_str(),
        body,
        signed_at,
    )
    .map_err(|e| format!("it no longer verifies: {e}"))?;
    let Ok(SlackRequest::AppMention(mention)) = slack::parse(body) else {
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
    let req = RunRequest {
        agent: event.agent,
        kind: event.kind,
        initiator: event.initiator,
        prompt: event.prompt,
        source: event.source,
        delivery: Some(delivery_of(mention)),
    };
    match d.runner.submit(req, replier) {
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

/// The Web API with the bot token.
#[derive(Clone)]
struct SlackApi {
    client: Arc<Client>,
    credentials: Arc<Credentials>,
}

impl SlackApi {
    fn token(&self) -> Result<SlackApiToken, String> {
        let token = self
            .credentials
            .slack_bot_token
            .as_ref()
            .ok_or("no Slack bot token is configured")?;
        Ok(SlackApiToken::new(SlackApiTokenValue(
            token.expose_secret().to_owned(),
        )))
    }

    /// `chat.postMessage` in a thread.
    async fn post(&self, channel: &str, thread_ts: &str, text: &str) -> Result<(), String> {
        let token = self.token()?;
        let req = SlackApiChatPostMessageRequest::new(
            channel.into(),
            SlackMessageContent::new().with_text(text.to_owned()),
        )
        .with_thread_ts(thread_ts.into());
        let (client, token, req) = (&self.client, &token, &req);
        with_retries("chat.postMessage", move || async move {
            client.open_session(token).chat_post_message(req).await
        })
        .await
        .map(|_| ())
    }

    /// `users.info`: the profile email (`None` for a deleted user or a
    /// profile without one) and the user's workspace.
    async fn user_email(&self, user: &str) -> Result<Profile, String> {
        let token = self.token()?;
        let req = SlackApiUsersInfoRequest::new(user.into());
        let (client, token, req) = (&self.client, &token, &req);
        let res = with_retries("users.info", move || async move {
            client.open_session(token).users_info(req).await
        })
        .await?;
        let team = res.user.team_id.as_ref().map(|t| t.0.clone());
        if res.user.deleted == Some(true) {
            return Ok(Profile { email: None, team });
        }
        let email = res
            .user
            .profile
            .and_then(|p| p.email)
            .map(|e| e.0)
            .filter(|e| !e.trim().is_empty());
        Ok(Profile { email, team })
    }
}

/// What `users.info` says about a user that identity rests on.
#[derive(Clone)]
struct Profile {
    email: Option<String>,
    /// The user's own workspace (`team_id`).
    team: Option<String>,
}

/// Calls the Web API, waiting out HTTP 429 a bounded number of times.
/// Errors come back as one line naming the method (never the token).
async fn with_retries<T, F, Fut>(method: &str, mut call: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SlackClientError>>,
{
    let mut retries = 0;
    loop {
        match tokio::time::timeout(CALL_TIMEOUT, call()).await {
            Err(_) => {
                return Err(format!(
                    "{method}: no answer within {} s",
                    CALL_TIMEOUT.as_secs()
                ));
            }
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(SlackClientError::RateLimitError(e))) if retries < MAX_RETRIES => {
                retries += 1;
                let wait = e
                    .retry_after
                    .unwrap_or(Duration::from_secs(1))
                    .min(MAX_RETRY_WAIT);
                tracing::info!(
                    method,
                    wait_ms = wait.as_millis() as u64,
                    retry = retries,
                    "Slack rate limit: waiting"
                );
                tokio::time::sleep(wait).await;
            }
            Ok(Err(e)) => return Err(format!("{method}: {}", describe_error(&e))),
        }
    }
}

/// A Web API error as one short line: Slack's error code, the HTTP status,
/// or the chain of network errors.
fn describe_error(e: &SlackClientError) -> String {
    match e {
        SlackClientError::ApiError(a) => a.code.clone(),
        SlackClientError::HttpError(h) => format!("HTTP {}", h.status_code),
        SlackClientError::RateLimitError(_) => {
            format!("still rate limited after {MAX_RETRIES} retries")
        }
        SlackClientError::HttpProtocolError(p) => match &p.cause {
            Some(cause) => error_chain(cause.as_ref()),
            None => "the connection failed".into(),
        },
        SlackClientError::ProtocolError(p) => {
            format!(
                "unexpected response (line {}, column {})",
                p.json_error.line(),
                p.json_error.column()
            )
        }
        SlackClientError::SystemError(s) => match (&s.message, &s.cause) {
            (Some(m), _) => m.clone(),
            (None, Some(c)) => error_chain(c.as_ref()),
            (None, None) => "system error".into(),
        },
        other => other.to_string(),
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Answers about one run in one Slack thread.
struct ThreadReplier {
    api: SlackApi,
    channel: String,
    thread_ts: String,
    /// Set once the "started" reply was sent (or failed).
    started: watch::Sender<bool>,
}

impl ThreadReplier {
    fn new(api: SlackApi, channel: &str, thread_ts: &str) -> ThreadReplier {
        ThreadReplier {
            api,
            channel: channel.to_owned(),
            thread_ts: thread_ts.to_owned(),
            started: watch::Sender::new(false),
        }
    }
}

impl Replier for ThreadReplier {
    fn started(&self, record: &RunRecord) -> ReplyFuture {
        let text = started_text(record);
        let (api, channel, thread_ts) = (
            self.api.clone(),
            self.channel.clone(),
            self.thread_ts.clone(),
        );
        let done = self.started.clone();
        Box::pin(async move {
            let result = api.post(&channel, &thread_ts, &text).await;
            done.send_replace(true);
            result
                .err()
                .map(|e| format!("Slack reply (started) failed: {e}"))
                .into_iter()
                .collect()
        })
    }

    fn finished(&self, outcome: &Outcome) -> ReplyFuture {
        let text = finished_text(outcome);
        // A refused run never had a "started" reply to wait for.
        let wait = !matches!(outcome.record.status, RunStatus::Rejected { .. });
        let mut started = self.started.subscribe();
        let (api, channel, thread_ts) = (
            self.api.clone(),
            self.channel.clone(),
            self.thread_ts.clone(),
        );
        Box::pin(async move {
            if wait {
                let _ = tokio::time::timeout(STARTED_WAIT, started.wait_for(|s| *s)).await;
            }
            api.post(&channel, &thread_ts, &text)
                .await
                .err()
                .map(|e| format!("Slack reply (finished) failed: {e}"))
                .into_iter()
                .collect()
        })
    }
}

fn started_text(record: &RunRecord) -> String {
    format!(
        "Starting `{}` (run `{}`)…",
        escape(&record.agent),
        escape(&record.id)
    )
}

/// The outcome, how long it took and the end of the redacted output. The
/// whole text passes the run's redactor again after escaping, so no value
/// can reach Slack even through the formatting.
fn finished_text(outcome: &Outcome) -> String {
    let r = &outcome.record;
    let mut text = format!(
        "`{}` (run `{}`) {}",
        escape(&r.agent),
        escape(&r.id),
        escape(&wording::outcome(&r.status))
    );
    if let (false, Some(ended)) = (matches!(r.status, RunStatus::Rejected { .. }), r.ended_at) {
        text.push_str(&format!(" after {}", wording::elapsed(r.started_at, ended)));
    }
    text.push('.');
    let redact = |s: &str| match &outcome.redactor {
        Some(red) => redact_text(red, s),
        None => s.to_owned(),
    };
    let quoted = last_lines(&redact(&outcome.tail), MAX_QUOTED_CHARS);
    if !quoted.is_empty() {
        text.push_str("\n```\n");
        text.push_str(&escape(&quoted).replace("```", "``\u{200b}`"));
        text.push_str("\n```");
    }
    redact(&text)
}

/// At most `max` characters from the end of `text`, starting at a line
/// boundary when it had to be cut.
fn last_lines(text: &str, max: usize) -> String {
    let text = text.trim_end();
    let count = text.chars().count();
    if count <= max {
        return text.trim_start_matches('\n').to_owned();
    }
    let start = text.char_indices().nth(count - max).map_or(0, |(i, _)| i);
    let mut rest = &text[start..];
    if let Some(nl) = rest.find('\n') {
        if nl + 1 < rest.len() {
            rest = &rest[nl + 1..];
        }
    }
    format!("…\n{rest}")
}

/// Escapes the three characters Slack's message format reserves.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn outcome(status: RunStatus, tail: &str, secrets: &[(&str, &str)]) -> Outcome {
        let values: Vec<(String, SecretString)> = secrets
            .iter()
            .map(|(n, v)| (n.to_string(), SecretString::from(v.to_string())))
            .collect();
        let redactor = crate::redact::Redactor::new(values.iter().map(|(n, v)| (n.as_str(), v)));
        let started = chrono::Utc::now();
        Outcome {
            record: RunRecord {
                id: "0190-run".into(),
                agent: "triage".into(),
                trigger: "slack".into(),
                member: Some("alice".into()),
                status,
                started_at: started,
                ended_at: Some(started + chrono::Duration::milliseconds(2500)),
                log_bytes: 0,
                redactions: 0,
                detail: serde_json::json!({}),
            },
            tail: tail.into(),
            redactor: Some(Arc::new(redactor)),
        }
    }

    #[test]
    fn the_finished_reply_quotes_the_end_of_the_output_in_a_code_block() {
        let text = finished_text(&outcome(
            RunStatus::Succeeded,
            "checking <deploy> & co\ndone\n",
            &[],
        ));
        assert_eq!(
            text,
            "`triage` (run `0190-run`) succeeded after 2.5 s.\n```\nchecking &lt;deploy&gt; &amp; co\ndone\n```"
        );
        let text = finished_text(&outcome(RunStatus::Failed { code: 3 }, "", &[]));
        assert_eq!(
            text,
            "`triage` (run `0190-run`) failed (exit code 3) after 2.5 s."
        );
        let text = finished_text(&outcome(
            RunStatus::Rejected {
                reason: "the run queue is full (64 runs waiting)".into(),
            },
            "",
            &[],
        ));
        assert_eq!(
            text,
            "`triage` (run `0190-run`) rejected: the run queue is full (64 runs waiting)."
        );
    }

    #[test]
    fn the_finished_reply_never_carries_a_value() {
        // A value that only appears once escaped, and one in the output.
        let secrets = [("AMP", "x&amp;y-value"), ("TOKEN", "tok-123456789")];
        let text = finished_text(&outcome(
            RunStatus::Succeeded,
            "x&y-value and tok-123456789\n",
            &secrets,
        ));
        assert!(!text.contains("x&amp;y-value"), "{text}");
        assert!(!text.contains("tok-123456789"), "{text}");
        assert!(text.contains("[REDACTED:TOKEN]"), "{text}");
    }

    #[test]
    fn the_tail_is_redacted_whole_before_it_is_cut() {
        // One line longer than the quote: cut first, the reply would start inside the value.
        let value = "slack-secret-0123456789";
        let tail = format!("{value}{}", "y".repeat(MAX_QUOTED_CHARS - 6));
        let text = finished_text(&outcome(RunStatus::Succeeded, &tail, &[("TOKEN", value)]));
        assert!(!text.contains(&value[value.len() - 6..]), "{text}");
        assert!(text.contains(&"y".repeat(MAX_QUOTED_CHARS - 6)), "{text}");
    }

    #[test]
    fn long_output_is_cut_at_a_line_boundary() {
        let tail: String = (0..2000).map(|i| format!("line {i}\n")).collect();
        let q = last_lines(&tail, MAX_QUOTED_CHARS);
        assert!(q.chars().count() <= MAX_QUOTED_CHARS + 2, "{}", q.len());
        assert!(q.starts_with("…\nline "), "{}", &q[..20]);
        assert!(q.ends_with("line 1999"));
        let multibyte = "é".repeat(5000);
        assert_eq!(last_lines(&multibyte, 10), format!("…\n{}", "é".repeat(10)));
        assert_eq!(last_lines("\n\nshort\n\n", 100), "short");
    }
}
