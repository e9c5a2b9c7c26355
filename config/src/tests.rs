//! Loading and validation, end to end over config text.

use std::path::Path;
use std::time::Duration;

use crate::{Config, ConfigError, IdSource, Overlap, SecretRef, Server, TriggerKind};

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
    assert_eq!(a.on_leak, crate::OnLeak::Flag);
}

#[test]
fn on_leak_takes_flag_or_fail() {
    let agent = |v: &str| {
        format!("[team]\nname='t'\n[[agents]]\nname='a'\ncommand=['/bin/true']\non_leak = {v}\n")
    };
    assert_eq!(
        parse(&agent("'fail'")).unwrap().agents[0].on_leak,
        crate::OnLeak::Fail
    );
    assert_eq!(
        parse(&agent("'flag'")).unwrap().agents[0].on_leak,
        crate::OnLeak::Flag
    );
    let p = problems(&agent("'stop'"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].0, 6, "{p:?}");
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
control_socket = "/run/supervisor/control.sock"

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
    assert_eq!(
        c.server.control_socket.as_deref(),
        Some(Path::new("/run/supervisor/control.sock"))
    );

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
    assert_eq!(c.server.control_socket, None);
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
fn the_control_socket_is_relative_to_the_file_and_must_fit_a_socket_address() {
    let c = parse("[team]\nname='t'\n[server]\ncontrol_socket = 'run/control.sock'\n").unwrap();
    assert_eq!(
        c.server.control_socket.as_deref(),
        Some(Path::new("/etc/supervisor/run/control.sock"))
    );
    let long = format!("/run/{}/control.sock", "x".repeat(100));
    let p = problems(&format!(
        "[team]\nname='t'\n[server]\ncontrol_socket = '{long}'\n"
    ));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].0, 4);
    assert!(
        p[0].2.contains("a Unix socket path is at most 107"),
        "{p:?}"
    );
    for bad in ["''", "'/run/supervisor/'"] {
        let p = problems(&format!(
            "[team]\nname='t'\n[server]\ncontrol_socket = {bad}\n"
        ));
        assert!(p[0].2.contains("is not a file path"), "{bad}: {p:?}");
    }
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
        find("agent `cli-only` does not take `cron` triggers"),
        (
            13,
            9,
            "agent `cli-only` does not take `cron` triggers".into()
        )
    );
    assert_eq!(find("a schedule named `a` is defined twice").0, 15);
    assert_eq!(find("no agent named `nobody`").0, 17);
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

const INTEGRATIONS: &str = r#"[team]
name = "acme"

[[agents]]
name = "triage"
command = ["/bin/true"]
triggers = ["slack", "linear"]

[[agents]]
name = "deploy-helper"
command = ["/bin/true"]
triggers = ["slack"]

[[agents]]
name = "fixer"
command = ["/bin/true"]
triggers = ["linear"]

[[agents]]
name = "remediate"
command = ["/bin/true"]
triggers = ["webhook"]

[slack]
signing_secret = { credential = "slack-signing-secret" }
bot_token = { env = "SLACK_BOT_TOKEN" }
bot_user = "U0LAN0Z89"
default_agent = "triage"
unknown_users = "team-only"

[[slack.routes]]
channel = "C0123DEPLOY"
agent = "deploy-helper"

[linear]
webhook_secret = { file = "/run/keys/linear" }
api_key = { credential = "linear-api-key" }
api_url = "http://127.0.0.1:9999/graphql"
bot_user = "u-agent"

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
agent = "remediate"
secret = { credential = "alerts-webhook-secret" }
"#;

#[test]
fn integrations_load_with_defaults() {
    use crate::{LinearOn, UnknownUsers};
    let c = parse(INTEGRATIONS).unwrap();
    let s = c.slack.as_ref().unwrap();
    assert_eq!(
        s.signing_secret,
        SecretRef::Credential("slack-signing-secret".into())
    );
    assert_eq!(s.bot_token, SecretRef::Env("SLACK_BOT_TOKEN".into()));
    assert_eq!(s.bot_user.as_deref(), Some("U0LAN0Z89"));
    assert_eq!(s.api_base, crate::DEFAULT_SLACK_API_BASE);
    assert_eq!(s.default_agent.as_deref(), Some("triage"));
    assert_eq!(s.unknown_users, UnknownUsers::TeamOnly);
    assert_eq!(s.routes[0].channel, "C0123DEPLOY");
    assert_eq!(s.routes[0].agent, "deploy-helper");

    let l = c.linear.as_ref().unwrap();
    assert_eq!(l.api_url, "http://127.0.0.1:9999/graphql");
    assert_eq!(l.unknown_users, UnknownUsers::Reject);
    assert_eq!(l.bot_user.as_deref(), Some("u-agent"));
    assert_eq!(
        l.rules.iter().map(|r| r.on.as_str()).collect::<Vec<_>>(),
        LinearOn::NAMES
    );
    assert_eq!(
        l.rules[0].on,
        LinearOn::IssueAssigned {
            assignee: "u-agent".into()
        }
    );
    assert_eq!(l.rules[1].team.as_deref(), Some("ENG"));
    assert_eq!(c.webhook("alerts").unwrap().agent, "remediate");
    assert!(c.webhook("other").is_none());

    let minimal = parse("[team]\nname='t'\n").unwrap();
    assert!(minimal.slack.is_none() && minimal.linear.is_none() && minimal.webhooks.is_empty());
}

#[test]
fn member_lookups_by_identity() {
    let c = parse(
        "[team]\nname='t'\n\
         [[members]]\nname='alice'\nslack_user='UALICE'\nlinear_user='u-ada'\nemail='alice@acme.example'\n\
         [[members]]\nname='morgan'\nemail='Morgan@Example.com'\n\
         [[members]]\nname='carol'\nslack_user='UCAROL'\nemail='carol@acme.example'\n",
    )
    .unwrap();
    let name = |m: Option<&crate::Member>| m.map(|m| m.name.clone());
    let slack = |id, email| name(c.member_by_identity(IdSource::Slack, id, email));
    assert_eq!(slack(Some("UALICE"), None).as_deref(), Some("alice"));
    assert_eq!(
        name(c.member_by_identity(IdSource::Linear, Some("u-ada"), None)).as_deref(),
        Some("alice")
    );
    // Morgan has no Slack id: found by email, whatever its case.
    assert_eq!(
        slack(Some("UNEW"), Some(" morgan@EXAMPLE.com")).as_deref(),
        Some("morgan")
    );
    // Carol's Slack id is UCAROL: another account with her email is not her.
    assert_eq!(slack(Some("UOTHER"), Some("carol@acme.example")), None);
    assert_eq!(slack(None, Some("")), None);
    assert_eq!(slack(Some(""), None), None);
    assert_eq!(slack(Some("U000"), None), None);
}

/// Replaces the first occurrence of `from` (which must exist) in the example.
fn variant(from: &str, to: &str) -> String {
    assert!(INTEGRATIONS.contains(from), "{from}");
    INTEGRATIONS.replacen(from, to, 1)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

fn single_problem(text: &str) -> (usize, String) {
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:?}");
    (p[0].0, p[0].2.clone())
}

#[test]
fn agents_named_by_integrations_must_exist_and_take_the_trigger() {
    let text = variant("default_agent = \"triage\"", "default_agent = \"nobody\"");
    let (line, msg) = single_problem(&text);
    assert_eq!(line, line_of(&text, "default_agent"));
    assert!(msg.contains("no agent named `nobody`"), "{msg}");

    // deploy-helper takes Slack only.
    let text = variant(
        "assignee = \"u-agent\"\nagent = \"fixer\"",
        "assignee = \"u-agent\"\nagent = \"deploy-helper\"",
    );
    let (line, msg) = single_problem(&text);
    assert_eq!(line, line_of(&text, "assignee = \"u-agent\"") + 1);
    assert!(
        msg.contains("`deploy-helper` does not take `linear` triggers"),
        "{msg}"
    );
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("hint: add \"linear\""), "{err}");

    let text = variant(
        "agent = \"remediate\"\nsecret",
        "agent = \"triage\"\nsecret",
    );
    let (_, msg) = single_problem(&text);
    assert!(msg.contains("does not take `webhook` triggers"), "{msg}");

    let text = variant(
        "channel = \"C0123DEPLOY\"\nagent = \"deploy-helper\"",
        "channel = \"C0123DEPLOY\"\nagent = \"fixer\"",
    );
    let (_, msg) = single_problem(&text);
    assert!(msg.contains("`fixer` does not take `slack`"), "{msg}");
}

#[test]
fn linear_rule_fields_fit_their_event() {
    let text = variant("assignee = \"u-agent\"", "label = \"agent\"");
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].2.contains("an `issue.assigned` rule needs `assignee`"));
    assert_eq!(p[0].0, line_of(&text, "issue.assigned"));
    assert!(
        p[1].2
            .contains("`label` does not apply to `issue.assigned`")
    );

    let text = variant("contains = \"@agent\"", "");
    let (line, msg) = single_problem(&text);
    assert_eq!(line, line_of(&text, "comment.created"));
    assert!(msg.contains("needs `contains`"), "{msg}");

    let text = variant("on = \"issue.labeled\"", "on = \"issue.closed\"");
    let (line, msg) = single_problem(&text);
    assert_eq!(line, line_of(&text, "issue.closed"));
    assert!(msg.contains("unknown Linear rule"), "{msg}");

    let text = variant("label = \"agent\"", "label = \"  \"");
    let (_, msg) = single_problem(&text);
    assert!(msg.contains("`label` is empty"), "{msg}");
}

#[test]
fn comment_rules_need_the_bot_user_to_avoid_loops() {
    let text = variant("bot_user = \"u-agent\"\n", "");
    let (line, msg) = single_problem(&text);
    assert_eq!(line, line_of(&text, "comment.created"));
    assert!(msg.contains("needs `linear.bot_user`"), "{msg}");
}

#[test]
fn webhook_names_are_unique_and_url_safe() {
    let dup = format!(
        "{INTEGRATIONS}\n[[webhooks]]\nname = \"alerts\"\nagent = \"remediate\"\nsecret = {{ env = \"X\" }}\n"
    );
    let (line, msg) = single_problem(&dup);
    assert_eq!(line, dup.lines().count() - 2);
    assert!(msg.contains("named `alerts` is defined twice"), "{msg}");

    for bad in ["../x", "a/b", "", ".hidden", "a b", "é"] {
        let text = variant("name = \"alerts\"", &format!("name = \"{bad}\""));
        let (_, msg) = single_problem(&text);
        assert!(msg.contains("is not URL-safe"), "{bad}: {msg}");
    }
}

#[test]
fn slack_routes_and_endpoints_are_checked() {
    let dup = variant(
        "[linear]",
        "[[slack.routes]]\nchannel = \"C0123DEPLOY\"\nagent = \"triage\"\n\n[linear]",
    );
    let (_, msg) = single_problem(&dup);
    assert!(
        msg.contains("channel `C0123DEPLOY` has two routes"),
        "{msg}"
    );

    let text = variant(
        "bot_user = \"U0LAN0Z89\"",
        "bot_user = \"U0LAN0Z89\"\napi_base = \"http://slack.example/api\"",
    );
    let (line, msg) = single_problem(&text);
    assert_eq!(line, line_of(&text, "api_base"));
    assert!(msg.contains("in the clear"), "{msg}");

    let text = variant(
        "bot_user = \"U0LAN0Z89\"",
        "api_base = \"http://127.0.0.1:3000/api/\"",
    );
    assert_eq!(
        parse(&text).unwrap().slack.unwrap().api_base,
        "http://127.0.0.1:3000/api"
    );

    let text = variant("unknown_users = \"team-only\"", "unknown_users = \"allow\"");
    let (line, msg) = single_problem(&text);
    assert_eq!(line, line_of(&text, "unknown_users"));
    assert!(msg.contains("allow"), "{msg}");
}

#[test]
fn integration_credentials_are_never_inline() {
    let text = variant(
        "bot_token = { env = \"SLACK_BOT_TOKEN\" }",
        "bot_token = \"xoxb-1234-secret\"",
    );
    let err = parse(&text).unwrap_err();
    let (line, msg) = single_problem(&text);
    assert_eq!(line, line_of(&text, "bot_token"));
    assert!(msg.contains("inline secret values are refused"), "{msg}");
    assert!(!err.to_string().contains("xoxb-1234-secret"), "{err}");

    let text = variant("secret = { credential = \"alerts-webhook-secret\" }", "");
    let (_, msg) = single_problem(&text);
    assert!(msg.contains("missing key `secret`"), "{msg}");
}

#[test]
fn credential_files_are_relative_to_the_config_file() {
    let text = r#"[team]
name = "acme"

[[agents]]
name = "remediate"
command = ["/bin/true"]
triggers = ["webhook"]

[[webhooks]]
name = "alerts"
agent = "remediate"
secret = { file = "secrets/alerts" }

[[webhooks]]
name = "ci"
agent = "remediate"
secret = { file = "/run/ci.secret" }
"#;
    let c = parse(text).unwrap();
    assert_eq!(
        c.webhooks[0].secret,
        SecretRef::File("/etc/supervisor/secrets/alerts".into())
    );
    assert_eq!(
        c.webhooks[1].secret,
        SecretRef::File("/run/ci.secret".into())
    );
}

#[test]
fn the_store_section_takes_a_url_reference_and_a_lease() {
    let base = "[team]\nname = \"acme\"\n";
    let c = Config::parse(
        &format!("{base}[store]\nurl = {{ file = \"pg.url\" }}\nlease = \"10s\"\n"),
        std::path::Path::new("/etc/supervisor/supervisor.toml"),
    )
    .unwrap();
    assert_eq!(
        c.store.url,
        Some(SecretRef::File("/etc/supervisor/pg.url".into()))
    );
    assert_eq!(c.store.lease(), std::time::Duration::from_secs(10));
    let default = Config::parse(base, std::path::Path::new("s.toml")).unwrap();
    assert_eq!(default.store.url, None);
    assert_eq!(default.store.lease(), crate::DEFAULT_LEASE);
    for (bad, want) in [
        (
            "url = \"postgres://u:pw@db/x\"",
            "inline secret values are refused",
        ),
        ("lease = \"10s\"", "applies to a PostgreSQL store only"),
        ("url = { env = \"PG\" }\nlease = \"500ms\"", "at least 1s"),
    ] {
        let err = Config::parse(
            &format!("{base}[store]\n{bad}\n"),
            std::path::Path::new("s.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(want), "{bad}: {err}");
        assert!(!err.contains("pw@"), "{err}");
    }
}

#[test]
fn toml_level_problems_are_all_reported_at_once() {
    let text = r#"[team]
name = "acme"
colour = "blue"

[[agents]]
name = "a"
command = ["/bin/true"]
timout = "1m"
trigers = ["cron"]
max_concurrent = "two"

[server]
queue_limit = "lots"
"#;
    let err = parse(text).unwrap_err();
    let p: Vec<(usize, usize, String)> = err
        .problems()
        .iter()
        .map(|p| (p.line, p.column, p.message.clone()))
        .collect();
    assert_eq!(
        p,
        [
            (3, 1, "unknown key `colour`".to_owned()),
            (8, 1, "unknown key `timout`".to_owned()),
            (9, 1, "unknown key `trigers`".to_owned()),
            (
                10,
                18,
                "`max_concurrent` must be a whole number of 0 or more, not a string".to_owned()
            ),
            (
                13,
                15,
                "`queue_limit` must be a whole number of 0 or more, not a string".to_owned()
            ),
        ]
    );
    let text = err.to_string();
    assert!(text.contains("hint: did you mean `timeout`?"), "{text}");
    assert!(text.contains("hint: did you mean `triggers`?"), "{text}");
    assert!(!text.contains("lots"), "values are never quoted: {text}");
}

#[test]
fn one_mistake_is_reported_once() {
    // A key of the wrong type is not also missing; a misspelt key is not
    // also missing; a schedule of an agent that did not read is not
    // reported for it.
    let text = r#"[team]
name = "acme"

[[agents]]
name = "a"
command = "/bin/true"

[[agents]]
name = "b"
comand = ["/bin/true"]

[[agents]]
name = "c"
command = ["/bin/true"]
triggers = ["crom"]

[[schedules]]
name = "s"
cron = "@daily"
agent = "a"

[[schedules]]
name = "t"
cron = "@daily"
agent = "c"
"#;
    let p = problems(text);
    assert_eq!(
        p,
        [
            (6, 11, "`command` must be an array, not a string".to_owned()),
            (10, 1, "unknown key `comand`".to_owned()),
            (15, 13, "`triggers` cannot be `crom`".to_owned()),
        ]
    );
}

#[test]
fn a_missing_key_points_at_its_table_and_a_missing_team_at_the_start() {
    let p = problems("[team]\nname='t'\n\n[[agents]]\nname='a'\n\n[[agents]]\nname='b'\n");
    assert_eq!(
        p,
        [
            (4, 1, "missing key `command`".to_owned()),
            (7, 1, "missing key `command`".to_owned())
        ]
    );
    let p = problems("[[agents]]\nname='a'\ncommand=['x']\n");
    assert_eq!(p, [(1, 1, "the config has no [team] section".to_owned())]);
}

#[test]
fn every_syntax_error_is_reported() {
    let p = problems("[team]\nname = \n\n[server\nlisten = '127.0.0.1:1'\n");
    assert!(p.len() >= 2, "{p:?}");
    assert_eq!(p[0].0, 2, "{p:?}");
    assert!(p.iter().any(|x| x.0 == 4), "{p:?}");
}

/// Accepts the cron expression `ok` and the time zone `UTC` only.
struct Strict;

impl crate::ScheduleCheck for Strict {
    fn cron(&self, expression: &str) -> Result<(), crate::Fault> {
        match expression {
            "ok" => Ok(()),
            _ => Err(crate::Fault {
                message: format!("bad cron `{expression}`"),
                hint: Some("write ok".into()),
            }),
        }
    }

    fn timezone(&self, name: &str) -> Result<(), crate::Fault> {
        match name {
            "UTC" => Ok(()),
            _ => Err(crate::Fault {
                message: format!("unknown time zone `{name}`"),
                hint: None,
            }),
        }
    }
}

#[test]
fn schedule_expressions_and_zones_are_checked_apart_and_located() {
    let text = r#"[team]
name = "acme"
[[agents]]
name = "a"
command = ["/bin/true"]
triggers = ["cron"]
[[schedules]]
name = "both-bad"
cron = "nope"
timezone = "Mars/Olympus"
agent = "a"
[[schedules]]
name = "fine"
cron = "ok"
agent = "a"
"#;
    let path = Path::new("/etc/supervisor/supervisor.toml");
    let err = Config::parse_with(text, path, &Strict).unwrap_err();
    let p: Vec<(usize, usize, &str)> = err
        .problems()
        .iter()
        .map(|p| (p.line, p.column, p.message.as_str()))
        .collect();
    assert_eq!(
        p,
        [
            (9, 8, "bad cron `nope`"),
            (10, 12, "unknown time zone `Mars/Olympus`")
        ]
    );
    // Without the check, the text is kept as written.
    let c = parse(text).unwrap();
    assert_eq!(c.schedules[0].timezone, "Mars/Olympus");
    assert_eq!(c.schedules[1].timezone, "UTC");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Whatever the text (here: the documented example with a stretch of
    /// it replaced), loading ends, never panics, and either yields a config
    /// or says where each problem is.
    #[test]
    fn any_text_loads_or_is_located(
        start in 0..GOOD.len(),
        len in 0usize..40,
        junk in "[a-z_=\\[\\]\"'{}, .0-9\n]{0,40}",
    ) {
        let start = (0..=start).rev().find(|&i| GOOD.is_char_boundary(i)).unwrap_or(0);
        let end = (start + len).min(GOOD.len());
        let end = (end..=GOOD.len()).find(|&i| GOOD.is_char_boundary(i)).unwrap_or(GOOD.len());
        let text = format!("{}{junk}{}", &GOOD[..start], &GOOD[end..]);
        match parse(&text) {
            Ok(_) => {}
            Err(e) => {
                let lines = text.lines().count().max(1) + 1;
                proptest::prop_assert!(!e.problems().is_empty());
                for p in e.problems() {
                    proptest::prop_assert!(p.line >= 1 && p.line <= lines, "{p:?}");
                    proptest::prop_assert!(p.column >= 1, "{p:?}");
                }
            }
        }
    }
}
