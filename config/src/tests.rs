//! Loading and validation, end to end over config text.

use std::path::Path;
use std::time::Duration;

use crate::{Config, ConfigError, Overlap, SecretRef, Server, TriggerKind};

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

const SCHEDULED: &str = r#"[team]
name = "acme"

[[agents]]
name = "pipeline-check"
command = ["/usr/local/bin/pipeline-check"]
triggers = ["cli", "cron"]

[server]
listen = "0.0.0.0:9000"
max_concurrent_runs = 2
queue_limit = 0
shutdown_grace = "1m"
body_limit = "64 KiB"
log = "supervisor=debug"

[[schedules]]
name = "nightly-pipeline"
cron = "0 6 * * *"
timezone = "Europe/Berlin"
agent = "pipeline-check"
prompt = "What changed in last night's pipeline run?"
overlap = "queue"

[[schedules]]
name = "hourly"
cron = "@hourly"
agent = "pipeline-check"
"#;

#[test]
fn loads_server_and_schedules() {
    let c = parse(SCHEDULED).unwrap();
    assert_eq!(c.server.listen, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(c.server.max_concurrent_runs, 2);
    assert_eq!(c.server.queue_limit, 0);
    assert_eq!(c.server.shutdown_grace, Duration::from_secs(60));
    assert_eq!(c.server.body_limit, 64 * 1024);
    assert_eq!(c.server.log, "supervisor=debug");

    assert_eq!(c.schedules.len(), 2);
    let nightly = c.schedule("nightly-pipeline").unwrap();
    assert_eq!(nightly.cron, "0 6 * * *");
    assert_eq!(nightly.timezone, "Europe/Berlin");
    assert_eq!(nightly.agent, "pipeline-check");
    assert_eq!(
        nightly.prompt.as_deref(),
        Some("What changed in last night's pipeline run?")
    );
    assert_eq!(nightly.overlap, Overlap::Queue);
    let hourly = c.schedule("hourly").unwrap();
    assert_eq!(hourly.timezone, crate::DEFAULT_TIMEZONE);
    assert_eq!(hourly.overlap, Overlap::Skip);
    assert_eq!(hourly.prompt, None);
}

#[test]
fn server_defaults_apply_with_or_without_the_section() {
    let c = parse("[team]\nname='t'\n").unwrap();
    assert_eq!(c.server, Server::default());
    assert_eq!(c.server.listen, "127.0.0.1:8780".parse().unwrap());
    assert_eq!(c.server.max_concurrent_runs, 8);
    assert_eq!(c.server.queue_limit, 64);
    assert_eq!(c.server.shutdown_grace, Duration::from_secs(30));
    assert_eq!(c.server.body_limit, 1024 * 1024);
    assert_eq!(c.server.log, "info");
    assert!(c.schedules.is_empty());

    let c = parse("[team]\nname='t'\n[server]\nqueue_limit = 3\n").unwrap();
    assert_eq!(c.server.queue_limit, 3);
    assert_eq!(c.server.listen, crate::DEFAULT_LISTEN);
    assert_eq!(c.server.shutdown_grace, crate::DEFAULT_SHUTDOWN_GRACE);
}

#[test]
fn bad_server_values_are_located() {
    let text = r#"[team]
name = "t"
[server]
listen = "localhost"
max_concurrent_runs = 0
shutdown_grace = "30"
body_limit = "12"
log = " "
"#;
    let p = problems(text);
    let find = |needle: &str| {
        p.iter()
            .find(|x| x.2.contains(needle))
            .unwrap_or_else(|| panic!("no problem mentions {needle}: {p:?}"))
            .clone()
    };
    let listen = find("`listen` = `localhost` is not an address and port");
    assert_eq!((listen.0, listen.1), (4, 10));
    assert_eq!(find("`max_concurrent_runs` must be at least 1").0, 5);
    assert_eq!(find("bad `shutdown_grace`").0, 6);
    assert_eq!(find("`body_limit` must be at least 1 KiB").0, 7);
    assert_eq!(find("`log` is empty").0, 8);
    assert_eq!(p.len(), 5, "{p:?}");

    let p = problems("[team]\nname='t'\n[server]\nlisten = '127.0.0.1:8780'\nport = 1\n");
    assert_eq!((p[0].0, p[0].1), (5, 1), "{p:?}");
    let p = problems("[team]\nname='t'\n[server]\nqueue_limit = -1\n");
    assert_eq!(p[0].0, 4, "{p:?}");
}

#[test]
fn schedule_problems_are_located() {
    let text = r#"[team]
name = "t"
[[agents]]
name = "cli-only"
command = ["/bin/true"]
[[agents]]
name = "timed"
command = ["/bin/true"]
triggers = ["cron"]
[[schedules]]
name = "a"
cron = "* * * * *"
agent = "cli-only"
[[schedules]]
name = "a"
cron = "* * * * *"
agent = "nobody"
[[schedules]]
name = "-bad"
cron = "* * * * *"
agent = "timed"
"#;
    let p = problems(text);
    let find = |needle: &str| {
        p.iter()
            .find(|x| x.2.contains(needle))
            .unwrap_or_else(|| panic!("no problem mentions {needle}: {p:?}"))
            .clone()
    };
    assert_eq!(
        find("starts agent `cli-only`, which does not accept cron triggers"),
        (
            13,
            9,
            "schedule `a` starts agent `cli-only`, which does not accept cron triggers".into()
        )
    );
    assert_eq!(find("a schedule named `a` is defined twice").0, 15);
    assert_eq!(find("agent `nobody`, which is not defined").0, 17);
    assert_eq!(find("schedule name `-bad`").0, 19);
    assert_eq!(p.len(), 4, "{p:?}");

    let err = parse(text).unwrap_err().to_string();
    assert!(
        err.contains("hint: add \"cron\" to the agent's triggers: triggers = [\"cli\", \"cron\"]"),
        "{err}"
    );
}

#[test]
fn schedule_overlap_and_keys_are_checked_by_the_parser() {
    let base = "[team]\nname='t'\n[[agents]]\nname='a'\ncommand=['x']\ntriggers=['cron']\n[[schedules]]\nname='s'\ncron='@daily'\nagent='a'\n";
    let p = problems(&format!("{base}overlap = 'sometimes'\n"));
    assert_eq!(p[0].0, 11, "{p:?}");
    assert!(p[0].2.contains("sometimes"), "{p:?}");
    let p = problems(&format!("{base}agnet = 'a'\n"));
    assert_eq!((p[0].0, p[0].1), (11, 1), "{p:?}");
    let p = problems("[team]\nname='t'\n[[schedules]]\nname='s'\nagent='a'\n");
    assert!(p[0].2.contains("cron"), "{p:?}");
    for (word, overlap) in [
        ("skip", Overlap::Skip),
        ("queue", Overlap::Queue),
        ("allow", Overlap::Allow),
    ] {
        let c = parse(&format!("{base}overlap = '{word}'\n")).unwrap();
        assert_eq!(c.schedules[0].overlap, overlap);
        assert_eq!(overlap.to_string(), word);
    }
}
