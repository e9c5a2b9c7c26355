//! Slack's Events API: verify a request's v0 signature, parse
//! `url_verification` and `app_mention` envelopes, and decide who asked for
//! which agent.
//!
//! Invariants: nothing is parsed before [`verify`] accepts the raw bytes;
//! messages from bots, including our own, never start a run (that would let
//! the supervisor trigger itself); a Slack user becomes a member only through
//! the member's `slack_user`, or through an email the caller looked up.
//! The caller dedupes deliveries on [`Mention::event_id`], which Slack keeps
//! across retries.

use serde::Deserialize;
use supervisor_config::{Agent, Config, IdSource, SlackConfig, UnknownUsers};

use crate::{Decision, ParseError, ReplyTarget, TriggerEvent, TriggerKind, VerifyError, signature};

/// The header carrying `v0=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Slack-Signature";
/// The header carrying the Unix seconds the signature covers.
pub const TIMESTAMP_HEADER: &str = "X-Slack-Request-Timestamp";
/// How far a request's timestamp may be from now, either way.
pub const WINDOW_SECS: u64 = 300;
/// Largest body accepted; the server refuses bigger ones before reading them.
pub const MAX_BODY: usize = 1024 * 1024;

/// Checks a request's signature: `v0=` + hex(HMAC-SHA256(signing secret,
/// `v0:` + timestamp + `:` + raw body)), with the timestamp within
/// [`WINDOW_SECS`] of `now_unix`.
pub fn verify(
    signing_secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), VerifyError> {
    SCHEME.verify(signing_secret, timestamp, signature, body, now_unix)
}

const SCHEME: signature::Timestamped = signature::Timestamped {
    timestamp_header: TIMESTAMP_HEADER,
    signature_header: SIGNATURE_HEADER,
    prefix: "v0=",
    lead: b"v0:",
    separator: b":",
    window_secs: WINDOW_SECS,
    max_body: MAX_BODY,
};

/// An authenticated Events API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackRequest {
    /// Slack checks the endpoint: answer with the challenge.
    UrlVerification { challenge: String },
    /// Someone mentioned the bot.
    AppMention(Box<Mention>),
    /// Any other event: acknowledge and ignore.
    Other,
}

/// An `app_mention` event. Timestamps are Slack's opaque strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    /// Stays the same across Slack's retries: the dedupe key.
    pub event_id: String,
    pub team_id: String,
    /// The Slack user who wrote the message (absent for some bot posts).
    pub user: Option<String>,
    /// The message as Slack sent it, mention included.
    pub text: String,
    pub channel: String,
    pub ts: String,
    /// Set when the mention is inside a thread.
    pub thread_ts: Option<String>,
    pub bot_id: Option<String>,
    pub subtype: Option<String>,
    /// `authorizations[0].user_id`: the bot user the event was delivered for.
    pub our_bot_user: Option<String>,
}

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: String,
    challenge: Option<String>,
    event: Option<EventHead>,
}

#[derive(Deserialize)]
struct EventHead {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct MentionEnvelope {
    event_id: String,
    team_id: String,
    event: RawMention,
    authorizations: Option<Vec<Authorization>>,
}

#[derive(Deserialize)]
struct Authorization {
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct RawMention {
    user: Option<String>,
    text: Option<String>,
    channel: String,
    ts: String,
    thread_ts: Option<String>,
    bot_id: Option<String>,
    subtype: Option<String>,
}

/// Parses a body that [`verify`] accepted.
///
/// Event types other than `app_mention` are not examined beyond their type,
/// so a change in their shape cannot make a delivery fail. Nesting is
/// bounded: serde_json refuses more than 128 levels in the fields read here
/// and skips the others without recursion.
pub fn parse(body: &[u8]) -> Result<SlackRequest, ParseError> {
    let head: Head = serde_json::from_slice(body)?;
    match head.kind.as_str() {
        "url_verification" => {
            let challenge = head.challenge.ok_or(ParseError::Missing("challenge"))?;
            Ok(SlackRequest::UrlVerification { challenge })
        }
        "event_callback" => {
            let event = head.event.ok_or(ParseError::Missing("event"))?;
            if event.kind.as_deref() != Some("app_mention") {
                return Ok(SlackRequest::Other);
            }
            let env: MentionEnvelope = serde_json::from_slice(body)?;
            let our_bot_user = env
                .authorizations
                .and_then(|a| a.into_iter().next())
                .and_then(|a| a.user_id);
            let e = env.event;
            Ok(SlackRequest::AppMention(Box::new(Mention {
                event_id: env.event_id,
                team_id: env.team_id,
                user: e.user,
                text: e.text.unwrap_or_default(),
                channel: e.channel,
                ts: e.ts,
                thread_ts: e.thread_ts,
                bot_id: e.bot_id,
                subtype: e.subtype,
                our_bot_user,
            })))
        }
        _ => Ok(SlackRequest::Other),
    }
}

/// The email that may identify a Slack user: their profile's, only when
/// their own workspace (`users.info`'s `team_id`) is the one the event came
/// from (the envelope's `team_id`, covered by the signature). A guest from
/// another workspace in a shared channel (Slack Connect) controls their own
/// profile and could show a member's email.
pub fn identity_email<'e>(
    event_team: &str,
    user_team: Option<&str>,
    email: Option<&'e str>,
) -> Option<&'e str> {
    if event_team.is_empty() || user_team != Some(event_team) {
        return None;
    }
    email
}

/// Decides what a mention asks for.
///
/// `email_of` is the email the caller looked up for `mention.user` through
/// `users.info` (never text from the message); it maps a Slack user to a
/// member that has no `slack_user`.
pub fn route(mention: &Mention, config: &Config, email_of: Option<&str>) -> Decision {
    let Some(slack) = &config.slack else {
        return Decision::Ignore("slack is not configured");
    };
    if mention.bot_id.is_some() || mention.subtype.as_deref() == Some("bot_message") {
        return Decision::Ignore("message from a bot");
    }
    let Some(user) = mention.user.as_deref().filter(|u| !u.is_empty()) else {
        return Decision::Ignore("message without a user");
    };
    let own: Vec<&str> = [slack.bot_user.as_deref(), mention.our_bot_user.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if own.contains(&user) {
        return Decision::Ignore("message from our own bot");
    }

    let member = config.member_by_identity(IdSource::Slack, Some(user), email_of);
    let initiator = match (member, slack.unknown_users) {
        (Some(m), _) => Some(m.name.clone()),
        (None, UnknownUsers::TeamOnly) => None,
        (None, UnknownUsers::Reject) => {
            return Decision::Reply(format!(
                "Sorry, you are not a member of {} on this supervisor, so I cannot start runs for you. \
                 An admin can add your Slack user id ({user}) to the configuration.",
                config.team.name
            ));
        }
    };

    let text = strip_leading_mention(&mention.text, &own);
    let Some((agent, prompt)) = choose_agent(text, &mention.channel, slack, config) else {
        return Decision::Reply(agent_menu(config));
    };
    let prompt = unescape(prompt.trim());
    let thread_ts = mention
        .thread_ts
        .clone()
        .unwrap_or_else(|| mention.ts.clone());
    Decision::Run(TriggerEvent {
        kind: TriggerKind::Slack,
        agent: agent.name.clone(),
        initiator,
        prompt: (!prompt.is_empty()).then_some(prompt),
        source: serde_json::json!({
            "slack": {
                "channel": mention.channel,
                "thread_ts": thread_ts,
                "ts": mention.ts,
                "user": user,
                "text": unescape(text.trim()),
            }
        }),
        reply_to: Some(ReplyTarget::Slack {
            channel: mention.channel.clone(),
            thread_ts,
        }),
        delivery: None,
    })
}

/// The agent a Slack request starts and the prompt left for it: the first
/// word when it names an agent that takes Slack requests, else the
/// channel's route, else the default.
fn choose_agent<'c, 't>(
    text: &'t str,
    channel: &str,
    slack: &SlackConfig,
    config: &'c Config,
) -> Option<(&'c Agent, &'t str)> {
    let slack_agent = |name: &str| config.agent(name).filter(|a| a.allows(TriggerKind::Slack));
    let text = text.trim_start();
    let word_end = text.find(char::is_whitespace).unwrap_or(text.len());
    let word = text[..word_end].trim_end_matches([':', ',']);
    if let Some(agent) = slack_agent(word) {
        return Some((agent, &text[word_end..]));
    }
    slack
        .routes
        .iter()
        .find(|r| r.channel == channel)
        .and_then(|r| slack_agent(&r.agent))
        .or_else(|| slack.default_agent.as_deref().and_then(slack_agent))
        .map(|agent| (agent, text))
}

fn agent_menu(config: &Config) -> String {
    let names: Vec<String> = config
        .agents
        .iter()
        .filter(|a| a.allows(TriggerKind::Slack))
        .map(|a| format!("`{}`", a.name))
        .collect();
    if names.is_empty() {
        "No agent here takes requests from Slack.".to_owned()
    } else {
        format!(
            "Which agent should I start? Begin your message with its name: {}.",
            names.join(", ")
        )
    }
}

/// Removes a leading `<@ID>` or `<@ID|label>` that mentions our bot (any
/// user when our bot's id is unknown).
fn strip_leading_mention<'t>(text: &'t str, own: &[&str]) -> &'t str {
    let trimmed = text.trim_start();
    let Some(rest) = trimmed.strip_prefix("<@") else {
        return trimmed;
    };
    let Some(end) = rest.find('>') else {
        return trimmed;
    };
    let id = rest[..end].split('|').next().unwrap_or("");
    if own.is_empty() || own.contains(&id) {
        rest[end + 1..].trim_start()
    } else {
        trimmed
    }
}

/// Undoes Slack's escaping of `&`, `<` and `>` in message text.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let (ch, len) = if rest.starts_with("&amp;") {
            ('&', 5)
        } else if rest.starts_with("&lt;") {
            ('<', 4)
        } else if rest.starts_with("&gt;") {
            ('>', 4)
        } else {
            ('&', 1)
        };
        out.push(ch);
        rest = &rest[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
