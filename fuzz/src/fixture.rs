//! The configs every target routes against: one of each rule and route, and
//! the identities the seed payloads carry (taken from the providers'
//! documented examples), so that parsed input reaches every branch of the
//! routing code. Two variants: unknown people refused (the default), and
//! unknown people given user-less runs.

use std::path::Path;
use std::sync::OnceLock;

use supervisor_config::{Config, TriggerKind};

/// The Slack app's bot user and Linear's agent user, as the seeds name them.
pub const SLACK_BOT: &str = "U0LAN0Z89";
pub const LINEAR_BOT: &str = "u-agent";

const CONFIG: &str = include_str!("fixture.toml");

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

/// A run goes to a configured agent that takes `kind` requests.
pub fn assert_takes(config: &Config, agent: &str, kind: TriggerKind) {
    let a = config.agent(agent).expect("a configured agent");
    assert!(a.allows(kind), "{agent} does not take {kind:?} requests");
}
