//! Linear webhooks: verify the signature, check freshness, parse Issue and
//! Comment payloads, and match them against the configured rules.
//!
//! Invariants: nothing is parsed before [`verify`] accepts the raw bytes,
//! and a parsed webhook is used only after [`check_fresh`]; only an actor of
//! type `user` is a person (and never our own bot user): every other actor is
//! automation and gets a user-less run; comments by our own bot user or by a
//! bot actor never match, so replies cannot start runs. The caller dedupes on
//! the `Linear-Delivery` header ([`DELIVERY_HEADER`]).

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use supervisor_config::{Config, IdSource, LinearConfig, LinearOn, LinearRule, UnknownUsers};

use crate::{Decision, ParseError, ReplyTarget, TriggerEvent, TriggerKind, VerifyError, signature};

/// The header carrying the hex HMAC of the body.
pub const SIGNATURE_HEADER: &str = "Linear-Signature";
/// The header naming the delivery: the dedupe key.
pub const DELIVERY_HEADER: &str = "Linear-Delivery";
/// How far `webhookTimestamp` may be from now, either way.
pub const WINDOW_MS: u64 = 60_000;
/// Largest body accepted; the server refuses bigger ones before reading them.
pub const MAX_BODY: usize = 1024 * 1024;

/// Checks `Linear-Signature`: hex(HMAC-SHA256(secret, raw body)).
pub fn verify(secret: &[u8], signature: Option<&str>, body: &[u8]) -> Result<(), VerifyError> {
    if body.len() > MAX_BODY {
        return Err(VerifyError::TooLarge { limit: MAX_BODY });
    }
    let given = signature.ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;
    signature::check(secret, &[body], given, SIGNATURE_HEADER)
}

/// Refuses a webhook whose `webhookTimestamp` (Unix milliseconds, signed as
/// part of the body) is more than [`WINDOW_MS`] from `now_ms`.
pub fn check_fresh(webhook_timestamp_ms: i64, now_ms: i64) -> Result<(), VerifyError> {
    signature::check_window(webhook_timestamp_ms, now_ms, WINDOW_MS, 1)
}

/// An authenticated Linear webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearWebhook {
    /// `create`, `update` or `remove`.
    pub action: String,
    /// The entity type: `Issue`, `Comment`, ...
    pub kind: String,
    /// Who made the change; `None` when Linear sends null.
    pub actor: Option<Actor>,
    pub data: Data,
    /// Previous values of the fields an update changed.
    pub updated_from: Option<UpdatedFrom>,
    pub url: Option<String>,
    /// Unix milliseconds: pass to [`check_fresh`].
    pub webhook_timestamp: i64,
}

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// `actor.type`, compared case-insensitively. Only `User` is a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorKind {
    User,
    Integration,
    OauthClient,
    /// Any other type, lowercased (empty when absent).
    Other(String),
}

/// The changed entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    Issue(Box<Issue>),
    Comment(Box<Comment>),
    /// Another entity type: never matches a rule.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub id: String,
    /// Such as `ENG-123`.
    pub identifier: String,
    pub title: String,
    pub description: Option<String>,
    /// `team.key`, such as `ENG`.
    pub team_key: Option<String>,
    pub assignee_id: Option<String>,
    pub labels: Vec<Label>,
    pub label_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Label {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: String,
    pub body: String,
    pub issue_id: String,
    pub issue: Option<IssueRef>,
    /// The comment's author.
    pub user_id: Option<String>,
    /// Whether `botActor` is set (an app wrote the comment).
    pub bot_actor: bool,
}

/// The issue a comment belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IssueRef {
    pub id: String,
    pub identifier: Option<String>,
    pub title: Option<String>,
}

/// What an update changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdatedFrom {
    /// `assigneeId` is present (even as null): the assignee changed.
    pub assignee_changed: bool,
    /// The labels before, when the labels changed.
    pub label_ids: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    action: String,
    #[serde(rename = "type")]
    kind: String,
    actor: Option<RawActor>,
    #[serde(rename = "data")]
    _data: IgnoredAny,
    url: Option<String>,
    webhook_timestamp: i64,
}

#[derive(Deserialize)]
struct RawActor {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IssueBody {
    data: RawIssue,
    updated_from: Option<RawUpdatedFrom>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIssue {
    id: String,
    identifier: String,
    title: String,
    description: Option<String>,
    team: Option<RawTeam>,
    assignee_id: Option<String>,
    labels: Option<Vec<Label>>,
    label_ids: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawTeam {
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawUpdatedFrom {
    #[serde(default, deserialize_with = "present")]
    assignee_id: Option<Option<String>>,
    label_ids: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct CommentBody {
    data: RawComment,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawComment {
    id: String,
    body: String,
    issue_id: String,
    issue: Option<IssueRef>,
    user_id: Option<String>,
    bot_actor: Option<serde_json::Value>,
}

/// Tells a present null apart from an absent field.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Parses a body that [`verify`] accepted. Entity types other than Issue
/// and Comment are not examined beyond the envelope.
pub fn parse(body: &[u8]) -> Result<LinearWebhook, ParseError> {
    let head: Head = serde_json::from_slice(body)?;
    let (data, updated_from) = match head.kind.as_str() {
        "Issue" => {
            let b: IssueBody = serde_json::from_slice(body)?;
            let i = b.data;
            let issue = Issue {
                id: i.id,
                identifier: i.identifier,
                title: i.title,
                description: i.description,
                team_key: i.team.and_then(|t| t.key),
                assignee_id: i.assignee_id,
                labels: i.labels.unwrap_or_default(),
                label_ids: i.label_ids.unwrap_or_default(),
            };
            let updated_from = b.updated_from.map(|u| UpdatedFrom {
                assignee_changed: u.assignee_id.is_some(),
                label_ids: u.label_ids,
            });
            (Data::Issue(Box::new(issue)), updated_from)
        }
        "Comment" => {
            let c = serde_json::from_slice::<CommentBody>(body)?.data;
            let bot_actor = match c.bot_actor {
                None | Some(serde_json::Value::Null) => false,
                Some(serde_json::Value::Object(o)) => !o.is_empty(),
                Some(serde_json::Value::String(s)) => !s.is_empty(),
                Some(_) => true,
            };
            let comment = Comment {
                id: c.id,
                body: c.body,
                issue_id: c.issue_id,
                issue: c.issue,
                user_id: c.user_id,
                bot_actor,
            };
            (Data::Comment(Box::new(comment)), None)
        }
        _ => (Data::Other, None),
    };
    let actor = head.actor.map(|a| Actor {
        kind: match a.kind.unwrap_or_default().to_lowercase().as_str() {
            "user" => ActorKind::User,
            "integration" => ActorKind::Integration,
            "oauth_client" | "oauthclient" => ActorKind::OauthClient,
            other => ActorKind::Other(other.to_owned()),
        },
        id: a.id,
        name: a.name,
        email: a.email,
    });
    Ok(LinearWebhook {
        action: head.action,
        kind: head.kind,
        actor,
        data,
        updated_from,
        url: head.url,
        webhook_timestamp: head.webhook_timestamp,
    })
}

/// Decides what a fresh, authenticated webhook asks for: the first rule that
/// matches picks the agent; the actor decides whose secrets are in scope.
pub fn route(webhook: &LinearWebhook, config: &Config) -> Decision {
    let Some(linear) = &config.linear else {
        return Decision::Ignore("linear is not configured");
    };
    let Some(rule) = linear.rules.iter().find(|r| {
        config
            .agent(&r.agent)
            .is_some_and(|a| a.allows(TriggerKind::Linear))
            && matches(r, webhook, linear)
    }) else {
        return Decision::Ignore("no rule matches");
    };

    let person = webhook.actor.as_ref().filter(|a| {
        a.kind == ActorKind::User
            && (linear.bot_user.is_none() || a.id.as_deref() != linear.bot_user.as_deref())
    });
    let initiator = match person {
        // Integrations, apps, our own bot and null actors: automation.
        None => None,
        Some(a) => {
            let member =
                config.member_by_identity(IdSource::Linear, a.id.as_deref(), a.email.as_deref());
            match (member, linear.unknown_users) {
                (Some(m), _) => Some(m.name.clone()),
                (None, UnknownUsers::TeamOnly) => None,
                (None, UnknownUsers::Reject) => {
                    return Decision::Reply(format!(
                        "No run was started: this Linear user is not a member of {} on the supervisor. \
                         An admin can add `linear_user = \"{}\"` to their member entry.",
                        config.team.name,
                        a.id.as_deref().unwrap_or("?"),
                    ));
                }
            }
        }
    };
    match event(webhook, rule, initiator) {
        Some(e) => Decision::Run(e),
        None => Decision::Ignore("not an issue or a comment"),
    }
}

fn matches(rule: &LinearRule, w: &LinearWebhook, linear: &LinearConfig) -> bool {
    match (&rule.on, &w.data) {
        (LinearOn::IssueAssigned { assignee }, Data::Issue(issue)) => {
            w.action == "update"
                && w.updated_from.as_ref().is_some_and(|u| u.assignee_changed)
                && issue.assignee_id.as_deref() == Some(assignee.as_str())
                && team_fits(rule, issue.team_key.as_deref(), &issue.identifier)
        }
        (LinearOn::IssueLabeled { label }, Data::Issue(issue)) => {
            let Some(before) = w.updated_from.as_ref().and_then(|u| u.label_ids.as_ref()) else {
                // The labels did not change in this update.
                return false;
            };
            let by_name = issue
                .labels
                .iter()
                .filter(|l| l.id == *label || l.name.eq_ignore_ascii_case(label))
                .map(|l| l.id.as_str());
            let by_id = issue
                .label_ids
                .iter()
                .filter(|id| *id == label)
                .map(String::as_str);
            w.action == "update"
                && by_name
                    .chain(by_id)
                    .any(|id| !before.iter().any(|b| b == id))
                && team_fits(rule, issue.team_key.as_deref(), &issue.identifier)
        }
        (LinearOn::CommentCreated { contains }, Data::Comment(c)) => {
            let own =
                linear.bot_user.is_some() && c.user_id.as_deref() == linear.bot_user.as_deref();
            let identifier = c.issue.as_ref().and_then(|i| i.identifier.as_deref());
            w.action == "create"
                && !own
                && !c.bot_actor
                && c.body.to_lowercase().contains(&contains.to_lowercase())
                && team_fits(rule, None, identifier.unwrap_or(""))
        }
        _ => false,
    }
}

/// Whether the issue belongs to the rule's team: by team key, else by the
/// identifier's prefix (`ENG-123` is in team `ENG`).
fn team_fits(rule: &LinearRule, team_key: Option<&str>, identifier: &str) -> bool {
    let Some(team) = &rule.team else { return true };
    let key = team_key.or_else(|| identifier.split_once('-').map(|(prefix, _)| prefix));
    key.is_some_and(|k| k.eq_ignore_ascii_case(team))
}

fn event(w: &LinearWebhook, rule: &LinearRule, initiator: Option<String>) -> Option<TriggerEvent> {
    let (issue_id, identifier, title, description, comment, prompt) = match &w.data {
        Data::Issue(i) => {
            let prompt = match i.description.as_deref().filter(|d| !d.trim().is_empty()) {
                Some(d) => format!("{}\n\n{d}", i.title),
                None => i.title.clone(),
            };
            let identifier = Some(i.identifier.clone());
            let description = i.description.clone();
            (
                i.id.clone(),
                identifier,
                Some(i.title.clone()),
                description,
                None,
                prompt,
            )
        }
        Data::Comment(c) => {
            let issue = c.issue.as_ref();
            let identifier = issue.and_then(|i| i.identifier.clone());
            let title = issue.and_then(|i| i.title.clone());
            (
                c.issue_id.clone(),
                identifier,
                title,
                None,
                Some(c.body.clone()),
                c.body.clone(),
            )
        }
        Data::Other => return None,
    };
    Some(TriggerEvent {
        kind: TriggerKind::Linear,
        agent: rule.agent.clone(),
        initiator,
        prompt: (!prompt.trim().is_empty()).then_some(prompt),
        source: serde_json::json!({
            "linear": {
                "event": rule.on.as_str(),
                "issue_id": issue_id,
                "identifier": identifier,
                "title": title,
                "description": description,
                "comment": comment,
                "url": w.url,
            }
        }),
        reply_to: Some(ReplyTarget::Linear { issue_id }),
        delivery: None,
    })
}

#[cfg(test)]
mod tests;
