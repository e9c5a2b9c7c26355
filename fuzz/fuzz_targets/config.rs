//! The config every target routes against: one of each rule and route, so
//! parsed input reaches every branch of the routing code.

use std::path::Path;
use std::sync::OnceLock;

use supervisor_config::Config;

const CONFIG: &str = r#"
[team]
name = "fuzz"

[[members]]
name = "alice"
slack_user = "U1"
linear_user = "u-1"
email = "alice@example.com"

[[members]]
name = "bob"
email = "bob@example.com"

[[agents]]
name = "triage"
command = ["/bin/true"]
triggers = ["slack", "linear", "webhook"]

[[agents]]
name = "deploy"
command = ["/bin/true"]
triggers = ["slack"]

[slack]
signing_secret = { env = "UNUSED" }
bot_token = { env = "UNUSED" }
bot_user = "UBOT"
default_agent = "triage"

[[slack.routes]]
channel = "C1"
agent = "deploy"

[linear]
webhook_secret = { env = "UNUSED" }
api_key = { env = "UNUSED" }
bot_user = "u-bot"
unknown_users = "team-only"

[[linear.rules]]
on = "issue.assigned"
assignee = "u-bot"
agent = "triage"

[[linear.rules]]
on = "issue.labeled"
label = "agent"
team = "ENG"
agent = "triage"

[[linear.rules]]
on = "comment.created"
contains = "@agent"
agent = "triage"

[[webhooks]]
name = "hook"
agent = "triage"
secret = { env = "UNUSED" }
"#;

pub fn config() -> &'static Config {
    static CELL: OnceLock<Config> = OnceLock::new();
    CELL.get_or_init(|| Config::parse(CONFIG, Path::new("fuzz.toml")).expect("valid fuzz config"))
}
