//! Slack's Web API with the bot token: `chat.postMessage` and
//! `users.info`, each call bounded in time, HTTP 429 waited out a bounded
//! number of times, and errors as one line that never holds the token.

use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use secrecy::ExposeSecret;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::{
    SlackApiChatPostMessageRequest, SlackApiToken, SlackApiTokenValue, SlackApiUsersInfoRequest,
    SlackClient, SlackClientHyperConnector, SlackMessageContent,
};

use crate::daemon::Credentials;

/// One Web API call, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries after HTTP 429, each waiting `Retry-After` (at most [`MAX_RETRY_WAIT`]).
const MAX_RETRIES: u32 = 3;
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

pub(super) type Client = SlackClient<SlackClientHyperConnector<HttpsConnector<HttpConnector>>>;

/// The Web API with the bot token.
#[derive(Clone)]
pub(super) struct SlackApi {
    pub(super) client: Arc<Client>,
    pub(super) credentials: Arc<Credentials>,
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
    pub(super) async fn post(
        &self,
        channel: &str,
        thread_ts: &str,
        text: &str,
    ) -> Result<(), String> {
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
    pub(super) async fn user_email(&self, user: &str) -> Result<Profile, String> {
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
pub(super) struct Profile {
    pub(super) email: Option<String>,
    /// The user's own workspace (`team_id`).
    pub(super) team: Option<String>,
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
