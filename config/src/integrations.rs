//! The `[slack]`, `[linear]` and `[[webhooks]]` sections: where each source's
//! credentials come from and which agent a request starts.
//!
//! Invariant: every agent named here exists and lists the matching trigger
//! kind, every Linear rule carries exactly the fields its `on` needs, and API
//! endpoints are HTTPS (plain HTTP only to the local machine, for tests), so
//! a token is never sent in the clear.

use std::collections::HashSet;

use serde::Deserialize;
use toml::Spanned;

use crate::agents::Agent;
use crate::load::{SecretRef, TriggerKind, Validator};
use crate::names::validate_member_name;
use crate::raw::{RawLinear, RawLinearRule, RawSlack, RawWebhook};

/// Slack's Web API when the config names none.
pub const DEFAULT_SLACK_API_BASE: &str = "https://slack.com/api";
/// Linear's GraphQL endpoint when the config names none.
pub const DEFAULT_LINEAR_API_URL: &str = "https://api.linear.app/graphql";

/// What to do with a Slack or Linear user that maps to no member.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownUsers {
    /// No run; the source is told the person is not a member.
    #[default]
    Reject,
    /// A run without user context: team secrets only.
    TeamOnly,
}

/// `[slack]`: the Events API endpoint's credentials and routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackConfig {
    /// Verifies `X-Slack-Signature`.
    pub signing_secret: SecretRef,
    /// `xoxb-...` token for replies and `users.info`.
    pub bot_token: SecretRef,
    /// Our bot's user id; also learned from each event's `authorizations`.
    pub bot_user: Option<String>,
    /// Web API base without a trailing slash.
    pub api_base: String,
    /// The agent for mentions that name none and match no route.
    pub default_agent: Option<String>,
    pub unknown_users: UnknownUsers,
    pub routes: Vec<SlackRoute>,
}

/// Mentions in `channel` start `agent` unless they name another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackRoute {
    pub channel: String,
    pub agent: String,
}

/// `[linear]`: the webhook's credentials and the rules that start runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearConfig {
    /// Verifies `Linear-Signature`.
    pub webhook_secret: SecretRef,
    /// Key for replies through the GraphQL API.
    pub api_key: SecretRef,
    pub api_url: String,
    /// The supervisor's own Linear user: its comments never start runs.
    pub bot_user: Option<String>,
    pub unknown_users: UnknownUsers,
    /// Checked in order; the first match wins.
    pub rules: Vec<LinearRule>,
}

/// One `[[linear.rules]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearRule {
    pub on: LinearOn,
    /// Only issues of this Linear team key (e.g. `ENG`).
    pub team: Option<String>,
    pub agent: String,
}

/// The Linear change a rule reacts to, with what it must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinearOn {
    /// The issue was just assigned to this Linear user id.
    IssueAssigned { assignee: String },
    /// This label (name or id) was just added to the issue.
    IssueLabeled { label: String },
    /// A new comment contains this text.
    CommentCreated { contains: String },
}

impl LinearOn {
    pub const NAMES: [&'static str; 3] = ["issue.assigned", "issue.labeled", "comment.created"];

    pub fn as_str(&self) -> &'static str {
        match self {
            LinearOn::IssueAssigned { .. } => "issue.assigned",
            LinearOn::IssueLabeled { .. } => "issue.labeled",
            LinearOn::CommentCreated { .. } => "comment.created",
        }
    }
}

/// One `[[webhooks]]` entry: a signed endpoint for an automated integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// URL-safe; the endpoint's last path segment.
    pub name: String,
    pub agent: String,
    /// Verifies `X-Supervisor-Signature`.
    pub secret: SecretRef,
}

impl Validator<'_> {
    pub(crate) fn slack(&mut self, raw: RawSlack, agents: &[Agent]) -> SlackConfig {
        let bot_user = raw.bot_user.map(|u| self.non_empty(u, "bot_user"));
        let default_agent = raw.default_agent.map(|a| {
            self.agent_ref(agents, &a, TriggerKind::Slack);
            a.into_inner()
        });
        let mut channels = HashSet::new();
        let mut routes = Vec::new();
        for r in raw.routes {
            let channel = self.non_empty(r.channel.clone(), "channel");
            if !channels.insert(channel.clone()) {
                self.report(
                    &r.channel,
                    format!("channel `{channel}` has two routes"),
                    Some("keep one [[slack.routes]] entry per channel"),
                );
            }
            self.agent_ref(agents, &r.agent, TriggerKind::Slack);
            routes.push(SlackRoute {
                channel,
                agent: r.agent.into_inner(),
            });
        }
        SlackConfig {
            signing_secret: self.secret_ref(raw.signing_secret),
            bot_token: self.secret_ref(raw.bot_token),
            bot_user,
            api_base: self.endpoint(raw.api_base, DEFAULT_SLACK_API_BASE, "api_base"),
            default_agent,
            unknown_users: raw.unknown_users.unwrap_or_default(),
            routes,
        }
    }

    pub(crate) fn linear(&mut self, raw: RawLinear, agents: &[Agent]) -> LinearConfig {
        let bot_user = raw.bot_user.map(|u| self.non_empty(u, "bot_user"));
        let rules = raw
            .rules
            .into_iter()
            .filter_map(|r| self.linear_rule(r, agents, bot_user.is_some()))
            .collect();
        LinearConfig {
            webhook_secret: self.secret_ref(raw.webhook_secret),
            api_key: self.secret_ref(raw.api_key),
            api_url: self.endpoint(raw.api_url, DEFAULT_LINEAR_API_URL, "api_url"),
            bot_user,
            unknown_users: raw.unknown_users.unwrap_or_default(),
            rules,
        }
    }

    fn linear_rule(
        &mut self,
        r: RawLinearRule,
        agents: &[Agent],
        has_bot_user: bool,
    ) -> Option<LinearRule> {
        self.agent_ref(agents, &r.agent, TriggerKind::Linear);
        let team = r.team.map(|t| self.non_empty(t, "team"));
        let on_name = r.on.get_ref().as_str();
        let (wanted, example) = match on_name {
            "issue.assigned" => ("assignee", "assignee = \"<Linear user id>\""),
            "issue.labeled" => ("label", "label = \"agent\""),
            "comment.created" => ("contains", "contains = \"@agent\""),
            other => {
                self.report(
                    &r.on,
                    format!("unknown Linear rule `on = \"{other}\"`"),
                    Some("use issue.assigned, issue.labeled or comment.created"),
                );
                return None;
            }
        };
        let mut value = None;
        for (key, field) in [
            ("assignee", r.assignee),
            ("label", r.label),
            ("contains", r.contains),
        ] {
            let Some(field) = field else { continue };
            if key == wanted {
                value = Some(self.non_empty(field, key));
            } else {
                self.report(
                    &field,
                    format!("`{key}` does not apply to `{on_name}` rules"),
                    Some(&format!("an `{on_name}` rule takes `{wanted}`")),
                );
            }
        }
        let Some(value) = value else {
            self.report(
                &r.on,
                format!("an `{on_name}` rule needs `{wanted}`"),
                Some(&format!("add {example}")),
            );
            return None;
        };
        let on = match on_name {
            "issue.assigned" => LinearOn::IssueAssigned { assignee: value },
            "issue.labeled" => LinearOn::IssueLabeled { label: value },
            _ => {
                if !has_bot_user {
                    // Without it, the agent's own reply could match and start
                    // the agent again, forever.
                    self.report(
                        &r.on,
                        "a `comment.created` rule needs `linear.bot_user`",
                        Some(
                            "set bot_user to the Linear user id the supervisor comments as, so its own comments start nothing",
                        ),
                    );
                }
                LinearOn::CommentCreated { contains: value }
            }
        };
        Some(LinearRule {
            on,
            team,
            agent: r.agent.into_inner(),
        })
    }

    pub(crate) fn webhooks(&mut self, raw: Vec<RawWebhook>, agents: &[Agent]) -> Vec<Webhook> {
        let mut names = HashSet::new();
        let mut out = Vec::new();
        for w in raw {
            let name = w.name.get_ref();
            if validate_member_name(name).is_err() {
                self.report(
                    &w.name,
                    format!("the webhook name `{name}` is not URL-safe"),
                    Some(
                        "use letters, digits, `.`, `_` and `-` (at most 64), starting with a letter or digit",
                    ),
                );
            } else if !names.insert(name.clone()) {
                self.report(
                    &w.name,
                    format!("a webhook named `{name}` is defined twice"),
                    Some("give each [[webhooks]] entry its own name"),
                );
            }
            self.agent_ref(agents, &w.agent, TriggerKind::Webhook);
            out.push(Webhook {
                name: w.name.into_inner(),
                agent: w.agent.into_inner(),
                secret: self.secret_ref(w.secret),
            });
        }
        out
    }

    /// Reports an agent name that is undefined or does not take `kind`
    /// (an agent already reported for a part that did not read is not
    /// checked: what it would have said is unknown).
    pub(crate) fn agent_ref(
        &mut self,
        agents: &[Agent],
        name: &Spanned<String>,
        kind: TriggerKind,
    ) {
        if self.damaged_agents.contains(name.get_ref()) {
            return;
        }
        match agents.iter().find(|a| &a.name == name.get_ref()) {
            None => self.report(
                name,
                format!("no agent named `{}`", name.get_ref()),
                Some("define it under [[agents]] or correct the name"),
            ),
            Some(a) if !a.allows(kind) => {
                let mut triggers: Vec<String> =
                    a.triggers.iter().map(|t| format!("\"{t}\"")).collect();
                triggers.push(format!("\"{kind}\""));
                self.report(
                    name,
                    format!("agent `{}` does not take `{kind}` triggers", a.name),
                    Some(&format!(
                        "add \"{kind}\" to the agent's triggers: triggers = [{}]",
                        triggers.join(", ")
                    )),
                )
            }
            Some(_) => {}
        }
    }

    fn non_empty(&mut self, value: Spanned<String>, key: &str) -> String {
        if value.get_ref().trim().is_empty() {
            self.report(
                &value,
                format!("`{key}` is empty"),
                Some("remove the key or give it a value"),
            );
        }
        value.into_inner()
    }

    /// An API endpoint: HTTPS, or HTTP to this machine only.
    fn endpoint(&mut self, value: Option<Spanned<String>>, default: &str, key: &str) -> String {
        let Some(value) = value else {
            return default.to_owned();
        };
        if let Err(why) = check_endpoint(value.get_ref()) {
            self.report(
                &value,
                format!("bad `{key}`: {why}"),
                Some(&format!(
                    "use an https:// URL such as \"{default}\" (http:// only to 127.0.0.1, [::1] or localhost)"
                )),
            );
        }
        value.into_inner().trim_end_matches('/').to_owned()
    }
}

fn check_endpoint(url: &str) -> Result<(), &'static str> {
    let (rest, https) = if let Some(rest) = url.strip_prefix("https://") {
        (rest, true)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (rest, false)
    } else {
        return Err("not an http(s) URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err("the URL names no host");
    }
    if authority.contains('@') {
        return Err("credentials do not belong in the URL");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the URL holds whitespace");
    }
    if https {
        return Ok(());
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    if matches!(host, "127.0.0.1" | "::1" | "localhost") {
        Ok(())
    } else {
        Err("plain http would send the token in the clear")
    }
}

#[cfg(test)]
mod tests {
    use super::check_endpoint;

    #[test]
    fn endpoints() {
        assert!(check_endpoint("https://slack.com/api").is_ok());
        assert!(check_endpoint("http://127.0.0.1:8080/api").is_ok());
        assert!(check_endpoint("http://[::1]:9/graphql").is_ok());
        assert!(check_endpoint("http://localhost").is_ok());
        assert!(check_endpoint("http://slack.com/api").is_err());
        assert!(check_endpoint("http://127.0.0.1.evil.example/").is_err());
        assert!(check_endpoint("http://localhost@evil.example/").is_err());
        assert!(check_endpoint("https://user:pw@slack.com/").is_err());
        assert!(check_endpoint("ftp://x").is_err());
        assert!(check_endpoint("https://").is_err());
        assert!(check_endpoint("https:// slack.com").is_err());
    }
}
