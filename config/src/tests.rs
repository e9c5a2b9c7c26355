//! Loading and validation, end to end over config text.

use std::path::Path;
use std::time::Duration;

use crate::{Config, ConfigError, SecretRef, TriggerKind};

const GOOD: &str = r#"
state_dir = "state"

[team]
name = "acme"

[[members]]
name = "alice"
unix_user = "alice"
slack_user = "U061F7AUR"
linear_user = "u-ada"
email = "alice@acme.example"
admin = true

[[members]]
name = "bob"
unix_user = "bob"

[[agents]]
name = "pipeline-check"
command = ["/usr/local/bin/pipeline-check", "--since", "24h"]
working_dir = "/srv/agents/pipeline"
timeout = "15m"
triggers = ["cli", "slack", "cron"]
secrets = ["METABASE_API_KEY"]
env = { PATH = "/usr/local/bin:/usr/bin:/bin", LANG = "C.UTF-8" }
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/supervisor/supervisor.toml"))
}

fn problems(text: &str) -> Vec<(usize, usize, String)> {
    match parse(text) {
        Ok(_) => panic!("config should be refused"),
        Err(e) => e
            .problems()
            .iter()
            .map(|p| (p.line, p.column, p.message.clone()))
            .collect(),
    }
}

#[test]
fn loads_the_documented_example() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.team.name, "acme");
    assert_eq!(
        c.state_dir.as_deref(),
        Some(Path::new("/etc/supervisor/state"))
    );
    assert_eq!(c.key_file, None);
    assert_eq!(c.members.len(), 2);
    assert!(c.member("alice").unwrap().admin);
    assert!(!c.member("bob").unwrap().admin);
    assert_eq!(c.member_by_unix_user("bob").unwrap().name, "bob");
    let a = c.agent("pipeline-check").unwrap();
    assert_eq!(a.timeout, Duration::from_secs(900));
    assert_eq!(a.kill_grace, Duration::from_secs(10));
    assert_eq!(
        a.triggers,
        vec![TriggerKind::Cli, TriggerKind::Slack, TriggerKind::Cron]
    );
    assert_eq!(a.secrets.as_ref().unwrap()[0].as_str(), "METABASE_API_KEY");
    assert_eq!(a.env["LANG"], "C.UTF-8");
}

#[test]
fn defaults_are_applied() {
    let c = parse("[team]\nname='t'\n[[agents]]\nname='a'\ncommand=['/bin/true']\n").unwrap();
    let a = &c.agents[0];
    assert_eq!(a.timeout, crate::DEFAULT_TIMEOUT);
    assert_eq!(a.triggers, vec![TriggerKind::Cli]);
    assert_eq!(a.secrets, None);
    assert_eq!(a.env["PATH"], crate::DEFAULT_AGENT_PATH);
    assert_eq!(a.log_limit, crate::DEFAULT_LOG_LIMIT);
}

#[test]
fn unknown_keys_name_line_and_column() {
    let text = "[team]\nname = 'acme'\n\n[[agents]]\nname = 'a'\ncomand = ['x']\n";
    let p = problems(text);
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].0, p[0].1), (6, 1), "{p:?}");
    assert!(p[0].2.contains("comand"), "{p:?}");
    let rendered = parse(text).unwrap_err().to_string();
    assert!(
        rendered.starts_with("/etc/supervisor/supervisor.toml:6:1: "),
        "{rendered}"
    );
    assert!(rendered.contains("hint:"), "{rendered}");
}

#[test]
fn every_semantic_problem_is_reported_with_its_place() {
    let text = r#"[team]
name = "acme"
[[members]]
name = "alice"
unix_user = "alice"
[[members]]
name = "alice"
unix_user = "alice"
[[agents]]
name = "a"
command = []
timeout = "soon"
triggers = ["cli"]
secrets = ["PATH", "OK_NAME", "1BAD"]
required_secrets = ["OTHER"]
env = { OK_NAME = "x", SUPERVISOR_RUN_ID = "y" }
[[agents]]
name = "a"
command = ["/bin/true"]
"#;
    let p = problems(text);
    let find = |needle: &str| {
        p.iter()
            .find(|x| x.2.contains(needle))
            .unwrap_or_else(|| panic!("no problem mentions {needle}: {p:?}"))
            .clone()
    };
    assert_eq!(find("named `alice` is defined twice").0, 7);
    assert_eq!(find("already belongs to member `alice`").0, 8);
    assert_eq!(find("empty command").0, 11);
    assert_eq!(find("bad `timeout`").0, 12);
    assert_eq!(find("`PATH` is reserved").0, 14);
    assert_eq!(find("`1BAD` is not a valid").0, 14);
    assert_eq!(find("required secret `OTHER`").0, 15);
    assert_eq!(find("SUPERVISOR_RUN_ID").0, 16);
    assert_eq!(find("sets `OK_NAME` in `env`").0, 10);
    assert_eq!(find("agent named `a` is defined twice").0, 18);
    // Sorted by place in the file.
    let mut sorted = p.clone();
    sorted.sort();
    assert_eq!(
        p.iter().map(|x| x.0).collect::<Vec<_>>(),
        sorted.iter().map(|x| x.0).collect::<Vec<_>>()
    );
}

#[test]
fn unknown_trigger_kind_is_refused_in_place() {
    let p = problems(
        "[team]\nname='t'\n[[agents]]\nname='a'\ncommand=['x']\ntriggers = ['cli', 'email']\n",
    );
    assert_eq!(p[0].0, 6);
    assert!(p[0].2.contains("email"), "{p:?}");
}

#[test]
fn missing_team_and_syntax_errors_are_located() {
    let p = problems("state_dir = 'x'\n");
    assert!(p[0].2.contains("team"), "{p:?}");
    let p = problems("[team]\nname = \n");
    assert_eq!(p[0].0, 2, "{p:?}");
}

#[test]
fn duplicate_identities_across_members() {
    let p = problems(
        "[team]\nname='t'\n[[members]]\nname='a'\nemail='X@acme.example'\n[[members]]\nname='b'\nemail='x@ACME.example'\n",
    );
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0, 8);
}

#[test]
fn secret_refs_are_references_never_values() {
    #[derive(serde::Deserialize)]
    struct T {
        a: SecretRef,
        b: SecretRef,
        c: SecretRef,
    }
    let t: T = toml::from_str(
        "a = { file = '/run/x' }\nb = { env = 'TOKEN' }\nc = { credential = 'slack' }\n",
    )
    .unwrap();
    assert_eq!(t.a, SecretRef::File("/run/x".into()));
    assert_eq!(t.b, SecretRef::Env("TOKEN".into()));
    assert_eq!(t.c, SecretRef::Credential("slack".into()));

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct One {
        a: SecretRef,
    }
    let inline = toml::from_str::<One>("a = 'xoxb-very-secret'").unwrap_err();
    assert!(
        inline
            .message()
            .contains("inline secret values are refused")
    );
    // The parser's own Display quotes the source line; ours uses only the message.
    assert!(!inline.message().contains("xoxb-very-secret"));
    let two = toml::from_str::<One>("a = { file = 'x', env = 'Y' }").unwrap_err();
    assert!(two.message().contains("exactly one"), "{}", two.message());
}

#[test]
fn config_errors_never_echo_the_whole_value_of_a_bad_line() {
    // A mistyped key holding a token: the error names the key and place only.
    let err = parse("[team]\nname='t'\ntoken = 'xoxb-123456-abcdef'\n").unwrap_err();
    assert!(!err.to_string().contains("xoxb-123456-abcdef"), "{err}");
}
