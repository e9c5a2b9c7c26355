//! The configs every target routes against: one of each rule and route, and
//! the identities the seed payloads carry (taken from the providers'
//! documented examples), so that parsed input reaches every branch of the
//! routing code. Two variants: unknown people refused (the default), and
//! unknown people given user-less runs.

use std::path::Path;
use std::sync::OnceLock;

use supervisor_config::Config;

/// The Slack app's bot user and Linear's agent user, as the seeds name them.
pub const SLACK_BOT: &str = "U0LAN0Z89";
pub const LINEAR_BOT: &str = "u-agent";

const CONFIG: &str = r#"
[team]
name = "fuzz"

[[members]]
name = "alice"
unix_user = "alice"
slack_user = "U061F7AUR"
linear_user = "u-ada"
email = "alice@example.com"
admin = true

# No Slack or Linear id: found by email (any letter case).
[[members]]
name = "morgan"
unix_user = "morgan"
email = "Morgan@Example.com"

# Ids configured: another account showing her email is not her.
[[members]]
name = "carol"
slack_user = "UCAROL"
linear_user = "u-carol"
email = "carol@example.com"

[[agents]]
name = "triage"
command = ["/bin/true"]
triggers = ["slack", "linear", "webhook", "cron"]

[[agents]]
name = "deploy-helper"
command = ["/bin/true"]
triggers = ["slack"]

[[agents]]
name = "fixer"
command = ["/bin/true"]
triggers = ["linear"]

[[agents]]
name = "local-only"
command = ["/bin/true"]
triggers = ["cli"]

[slack]
signing_secret = { env = "UNUSED" }
bot_token = { env = "UNUSED" }
bot_user = "U0LAN0Z89"
default_agent = "triage"
unknown_users = "reject"

[[slack.routes]]
channel = "C0123DEPLOY"
agent = "deploy-helper"

[linear]
webhook_secret = { env = "UNUSED" }
api_key = { env = "UNUSED" }
bot_user = "u-agent"
unknown_users = "reject"

[[linear.rules]]
on = "issue.assigned"
assignee = "u-agent"
agent = "fixer"

[[linear.rules]]
on = "issue.labeled"
label = "agent"
team = "ENG"
agent = "triage"

[[linear.rules]]
on = "comment.created"
contains = "@agent"
agent = "fixer"

[[webhooks]]
name = "alerts"
agent = "triage"
secret = { env = "UNUSED" }
"#;

/// Both variants: `[0]` refuses unknown people, `[1]` gives them user-less runs.
pub fn configs() -> &'static [Config; 2] {
    static CELL: OnceLock<[Config; 2]> = OnceLock::new();
    CELL.get_or_init(|| {
        let parse =
            |text: &str| Config::parse(text, Path::new("fuzz.toml")).expect("valid fuzz config");
        [
            parse(CONFIG),
            parse(&CONFIG.replace(
                r#"unknown_users = "reject""#,
                r#"unknown_users = "team-only""#,
            )),
        ]
    })
}
