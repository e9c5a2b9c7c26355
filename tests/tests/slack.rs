//! The Slack trigger end to end: the real daemon (`supervisor serve`) as a
//! child process, signed Events API requests sent with the current time, and
//! a fake Slack Web API on 127.0.0.1 that records every `chat.postMessage`
//! and answers `users.info`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use supervisor_tests::fake_api::{self, FakeApi, Recorded};
use supervisor_tests::signing::{now_secs, slack_signature};
use supervisor_tests::{Daemon, Response, STOP_TIMEOUT, Team, free_addr, server_section};

const SIGNING_SECRET: &str = "test-signing-secret-8f742231b10e";
const BOT_TOKEN: &str = "xoxb-test-bot-token-000111";
const CHANNEL: &str = "C0TESTCHAN";
const BOT_USER: &str = "U0OURBOT01";
const ALICE: &str = "U061F7AUR";
const BOB: &str = "U0BOB0001";
const CAROL: &str = "U0CAROL01";
const GUEST: &str = "U0GUEST01";

const TEAM_VALUE: &str = "team-deploy-value-7788";
const ALICE_VALUE: &str = "alice-personal-value-1122";
const BOB_VALUE: &str = "bob-personal-value-3344";
const CAROL_VALUE: &str = "carol-personal-value-5566";
const ALL_VALUES: [&str; 4] = [TEAM_VALUE, ALICE_VALUE, BOB_VALUE, CAROL_VALUE];

const WAIT: Duration = Duration::from_secs(20);

/// A team whose daemon takes Slack mentions, with a fake Slack beside it.
struct Slack {
    team: Team,
    fake: FakeApi,
    serve: Option<Daemon>,
    /// Where the agent writes its environment and run context.
    out: PathBuf,
    api_base: String,
    unknown_users: &'static str,
}

impl Slack {
    fn new() -> Slack {
        Slack::with(None, "reject")
    }

    /// `api_base`: where replies go (default: the fake).
    fn with(api_base: Option<String>, unknown_users: &'static str) -> Slack {
        let fake = FakeApi::start();
        fake.respond(
            "/chat.postMessage",
            fake_api::Response::json(
                200,
                &json!({"ok": true, "channel": CHANNEL, "ts": "1700000001.000200",
                        "message": {"ts": "1700000001.000200", "text": "ok"}}),
            ),
        );
        fake.respond_with("/users.info", |req| {
            let user = req.json()["user"].as_str().unwrap_or("").to_owned();
            match user.as_str() {
                CAROL => fake_api::Response::json(
                    200,
                    &json!({"ok": true, "user": {"id": CAROL, "team_id": "T123ABC456",
                            "profile": {"email": "Carol@Acme.Example", "real_name": "Carol"}}}),
                ),
                // A Slack Connect guest from another workspace who shows
                // carol's email on their profile.
                GUEST => fake_api::Response::json(
                    200,
                    &json!({"ok": true, "user": {"id": GUEST, "team_id": "T0OTHERWS",
                            "profile": {"email": "carol@acme.example"}}}),
                ),
                "U0STRANGER" => fake_api::Response::json(
                    200,
                    &json!({"ok": true, "user": {"id": user, "profile": {"email": "someone@else.example"}}}),
                ),
                _ => fake_api::Response::json(200, &json!({"ok": false, "error": "user_not_found"})),
            }
        });
        let api_base = api_base.unwrap_or_else(|| fake.url());
        let team = Team::new("");
        let out = team.path().join("out");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(team.path().join("slack-signing-secret"), SIGNING_SECRET).unwrap();
        std::fs::write(
            team.path().join("slack-bot-token"),
            format!("{BOT_TOKEN}\n"),
        )
        .unwrap();
        let s = Slack {
            team,
            fake,
            serve: None,
            out,
            api_base,
            unknown_users,
        };
        // carol exists only in the full config.
        s.team.write_config("supervisor.toml", "alice", &s.extra());
        s.team.secret(&["--team"], "DEPLOY_TOKEN", TEAM_VALUE);
        s.team.secret(&["--personal"], "ALICE_TOKEN", ALICE_VALUE);
        s.team
            .secret(&["--personal", "--member", "bob"], "BOB_TOKEN", BOB_VALUE);
        s.team.secret(
            &["--personal", "--member", "carol"],
            "CAROL_TOKEN",
            CAROL_VALUE,
        );
        s
    }

    /// Starts the daemon.
    fn start(&mut self) -> &Daemon {
        self.serve = Some(self.team.serve_logging("info,supervisor=debug"));
        self.serve()
    }

    fn extra(&self) -> String {
        // The agent records its environment and its run context, then
        // prints the team secret (which must come out redacted).
        let script = r#"env > "$OUT/$SUPERVISOR_RUN_ID.env"; cat > "$OUT/$SUPERVISOR_RUN_ID.json"; echo "deploying with $DEPLOY_TOKEN"; echo done"#;
        format!(
            r#"
[[members]]
name = "carol"
email = "carol@acme.example"

[[agents]]
name = "triage"
command = ["/bin/sh", "-c", {script}]
triggers = ["slack", "cli"]
env = {{ PATH = "/usr/bin:/bin", OUT = {out} }}

[[agents]]
name = "other"
command = ["/bin/true"]
triggers = ["slack"]

{server}
[slack]
signing_secret = {{ file = "slack-signing-secret" }}
bot_token = {{ file = "slack-bot-token" }}
api_base = "{api}"
default_agent = "triage"
unknown_users = "{unknown}"
"#,
            server = server_section(""),
            script = toml_str(script),
            out = toml_str(&self.out.display().to_string()),
            api = self.api_base,
            unknown = self.unknown_users,
        )
    }

    fn serve(&self) -> &Daemon {
        self.serve.as_ref().expect("daemon started")
    }

    fn stop(&mut self) {
        let status = self.serve.take().expect("running").stop(STOP_TIMEOUT);
        assert!(status.success(), "{status}");
    }

    /// Sends `body` signed now, with extra headers.
    fn send(&self, body: &[u8], extra: &[(&str, &str)]) -> Response {
        let ts = now_secs().to_string();
        let sig = slack_signature(SIGNING_SECRET, &ts, body);
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("X-Slack-Request-Timestamp", ts.as_str()),
            ("X-Slack-Signature", sig.as_str()),
        ];
        headers.extend_from_slice(extra);
        self.serve()
            .request("POST", "/slack/events", &headers, body)
    }

    #[track_caller]
    fn send_ok(&self, body: &[u8]) -> Response {
        let r = self.send(body, &[]);
        assert_eq!(r.status, 200, "{}\n{}", r.text(), self.serve().log());
        r
    }

    fn runs(&self) -> Vec<Value> {
        self.team
            .cmd(&["runs", "list", "--json"])
            .json()
            .as_array()
            .cloned()
            .unwrap()
    }

    /// Waits until `n` runs exist and have ended; returns them, oldest first.
    #[track_caller]
    fn wait_runs(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let runs = self.runs();
            if runs.len() >= n && runs.iter().all(|r| r["status"] != "running") {
                assert_eq!(runs.len(), n, "{runs:#?}");
                return runs.into_iter().rev().collect();
            }
            assert!(
                Instant::now() < deadline,
                "{runs:#?}\n{}",
                self.serve().log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the daemon counted `n` Slack requests with `result`.
    #[track_caller]
    fn wait_metric(&self, result: &str, n: u64) {
        let sample =
            format!("supervisor_webhook_requests_total{{source=\"slack\",result=\"{result}\"}}");
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.serve().metric(&sample);
            if got >= n {
                assert_eq!(got, n, "{sample}");
                return;
            }
            assert!(Instant::now() < deadline, "{sample} is {got}, not {n}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn run_show(&self, id: &str) -> Value {
        self.team.cmd(&["runs", "show", id, "--json"]).json()
    }

    /// The replies posted so far (successful or not).
    fn posts(&self) -> Vec<Recorded> {
        self.fake.requests_to("/chat.postMessage")
    }

    #[track_caller]
    fn wait_posts(&self, n: usize) -> Vec<Recorded> {
        self.fake.wait_for("/chat.postMessage", n, WAIT)
    }

    /// What the agent of run `id` saw: its environment and its run context.
    fn agent_saw(&self, id: &str) -> (String, Value) {
        let env = std::fs::read_to_string(self.out.join(format!("{id}.env"))).unwrap();
        let ctx = std::fs::read_to_string(self.out.join(format!("{id}.json"))).unwrap();
        (env, serde_json::from_str(&ctx).unwrap())
    }

    /// No request the fake Slack received holds a secret value.
    #[track_caller]
    fn assert_no_values_sent(&self) {
        for r in self.fake.requests() {
            let raw = format!(
                "{} {}?{} {:?} {}",
                r.method,
                r.path,
                r.query,
                r.headers,
                r.body_text()
            );
            for v in ALL_VALUES {
                assert!(!raw.contains(v), "a secret value reached Slack: {raw}");
            }
        }
    }
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// An `app_mention` delivery.
fn mention(event_id: &str, user: &str, text: &str, thread_ts: Option<&str>) -> Vec<u8> {
    let mut event = json!({
        "type": "app_mention", "user": user, "text": text,
        "ts": "1700000000.000100", "channel": CHANNEL, "event_ts": "1700000000.000100",
    });
    if let Some(t) = thread_ts {
        event["thread_ts"] = json!(t);
    }
    envelope(event_id, event)
}

fn envelope(event_id: &str, event: Value) -> Vec<u8> {
    json!({
        "token": "XXYYZZ", "team_id": "T123ABC456", "api_app_id": "A123ABC456",
        "event": event, "type": "event_callback", "event_id": event_id, "event_time": 1700000000,
        "authorizations": [{"enterprise_id": null, "team_id": "T123ABC456", "user_id": BOT_USER,
                            "is_bot": true, "is_enterprise_install": false}],
        "is_ext_shared_channel": false, "event_context": "EC1",
    })
    .to_string()
    .into_bytes()
}

fn text_of(r: &Recorded) -> String {
    r.json()["text"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_mention_runs_with_the_members_secrets_and_replies_redacted_in_the_thread() {
    let mut s = Slack::new();
    s.start();

    // alice, inside a thread.
    let r = s.send_ok(&mention(
        "EvALICE01",
        ALICE,
        &format!("<@{BOT_USER}> please check the deploy &amp; report"),
        Some("1699999999.000001"),
    ));
    assert_eq!(r.text().trim(), "ok");
    let runs = s.wait_runs(1);
    let run = &runs[0];
    assert_eq!(run["member"], "alice");
    assert_eq!(run["trigger"], "slack");
    assert_eq!(run["agent"], "triage");
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let id = run["id"].as_str().unwrap().to_owned();
    let (env, ctx) = s.agent_saw(&id);
    assert!(env.contains(&format!("DEPLOY_TOKEN={TEAM_VALUE}")), "{env}");
    assert!(env.contains(&format!("ALICE_TOKEN={ALICE_VALUE}")), "{env}");
    assert!(
        !env.contains("BOB_TOKEN") && !env.contains(BOB_VALUE),
        "{env}"
    );
    assert!(!env.contains(CAROL_VALUE), "{env}");
    assert_eq!(
        env.lines().find(|l| l.starts_with("SUPERVISOR_MEMBER=")),
        Some("SUPERVISOR_MEMBER=alice")
    );
    assert_eq!(
        ctx["source"]["slack"],
        json!({"channel": CHANNEL, "thread_ts": "1699999999.000001", "ts": "1700000000.000100",
               "user": ALICE, "text": "please check the deploy & report"})
    );
    assert_eq!(ctx["prompt"], "please check the deploy & report");

    let posts = s.wait_posts(2);
    assert_eq!(posts.len(), 2);
    for p in &posts {
        assert_eq!(p.method, "POST");
        assert_eq!(
            p.header("authorization"),
            Some(format!("Bearer {BOT_TOKEN}").as_str())
        );
        assert_eq!(p.json()["channel"], CHANNEL);
        assert_eq!(p.json()["thread_ts"], "1699999999.000001");
    }
    let (started, finished) = (text_of(&posts[0]), text_of(&posts[1]));
    assert!(
        started.contains("`triage`") && started.contains(&id),
        "{started}"
    );
    assert!(
        finished.contains("succeeded") && finished.contains(&id),
        "{finished}"
    );
    assert!(
        finished.contains("deploying with [REDACTED:DEPLOY_TOKEN]\ndone\n```"),
        "{finished}"
    );
    assert!(run["detail"].get("notes").is_none(), "{run:#}");

    // bob, outside a thread: the reply thread is his message.
    s.send_ok(&mention(
        "EvBOB0001",
        BOB,
        &format!("<@{BOT_USER}> triage go"),
        None,
    ));
    let runs = s.wait_runs(2);
    assert_eq!(runs[1]["member"], "bob");
    let (env, ctx) = s.agent_saw(runs[1]["id"].as_str().unwrap());
    assert!(env.contains(&format!("BOB_TOKEN={BOB_VALUE}")), "{env}");
    assert!(env.contains(&format!("DEPLOY_TOKEN={TEAM_VALUE}")), "{env}");
    assert!(
        !env.contains("ALICE_TOKEN") && !env.contains(ALICE_VALUE),
        "{env}"
    );
    assert_eq!(ctx["source"]["slack"]["text"], "triage go");
    assert_eq!(ctx["prompt"], "go");
    let posts = s.wait_posts(4);
    for p in &posts[2..] {
        assert_eq!(p.json()["thread_ts"], "1700000000.000100");
    }
    assert!(text_of(&posts[3]).contains("[REDACTED:DEPLOY_TOKEN]"));
    s.wait_metric("accepted", 2);
    s.assert_no_values_sent();
    s.team.assert_not_in_state(TEAM_VALUE);
}

#[test]
fn a_member_without_a_slack_id_is_found_by_the_email_of_their_profile() {
    let mut s = Slack::new();
    s.start();
    s.send_ok(&mention(
        "EvCAROL01",
        CAROL,
        &format!("<@{BOT_USER}> look"),
        None,
    ));
    let runs = s.wait_runs(1);
    assert_eq!(runs[0]["member"], "carol");
    let (env, _) = s.agent_saw(runs[0]["id"].as_str().unwrap());
    assert!(env.contains(&format!("CAROL_TOKEN={CAROL_VALUE}")), "{env}");
    assert!(
        !env.contains(ALICE_VALUE) && !env.contains(BOB_VALUE),
        "{env}"
    );
    let lookups = s.fake.requests_to("/users.info");
    assert_eq!(lookups.len(), 1);
    assert_eq!(lookups[0].json()["user"], CAROL);
    assert_eq!(
        lookups[0].header("authorization"),
        Some(format!("Bearer {BOT_TOKEN}").as_str())
    );

    // The answer is cached; a member known by id needs no lookup at all.
    s.send_ok(&mention(
        "EvCAROL02",
        CAROL,
        &format!("<@{BOT_USER}> again"),
        None,
    ));
    s.send_ok(&mention(
        "EvALICE02",
        ALICE,
        &format!("<@{BOT_USER}> hi"),
        None,
    ));
    let runs = s.wait_runs(3);
    let mut members: Vec<&str> = runs.iter().map(|r| r["member"].as_str().unwrap()).collect();
    members.sort();
    assert_eq!(members, ["alice", "carol", "carol"]);
    assert_eq!(s.fake.requests_to("/users.info").len(), 1);
    s.wait_posts(6);
    s.assert_no_values_sent();
}

#[test]
fn strangers_get_one_reply_and_bots_get_nothing() {
    let mut s = Slack::new();
    s.start();
    // A profile email that matches no member.
    s.send_ok(&mention(
        "EvSTRANGE1",
        "U0STRANGER",
        &format!("<@{BOT_USER}> give me secrets"),
        None,
    ));
    let posts = s.wait_posts(1);
    let text = text_of(&posts[0]);
    assert!(text.contains("not a member"), "{text}");
    assert_eq!(posts[0].json()["thread_ts"], "1700000000.000100");
    // Slack does not know the user either.
    s.send_ok(&mention(
        "EvSTRANGE2",
        "U0NOBODY",
        &format!("<@{BOT_USER}> hello"),
        Some("1.2"),
    ));
    let posts = s.wait_posts(2);
    assert!(text_of(&posts[1]).contains("not a member"));
    assert_eq!(posts[1].json()["thread_ts"], "1.2");

    // Bots, including ourselves, even with a member's user id.
    let mut bot =
        serde_json::from_slice::<Value>(&mention("EvBOT00001", ALICE, "<@U0OURBOT01> hi", None))
            .unwrap();
    bot["event"]["bot_id"] = json!("B0SOMEBOT");
    s.send_ok(bot.to_string().as_bytes());
    let mut sub =
        serde_json::from_slice::<Value>(&mention("EvBOT00002", ALICE, "<@U0OURBOT01> hi", None))
            .unwrap();
    sub["event"]["subtype"] = json!("bot_message");
    s.send_ok(sub.to_string().as_bytes());
    s.send_ok(&mention("EvBOT00003", BOT_USER, "<@U0OURBOT01> hi", None));
    s.wait_metric("ignored", 3);
    s.wait_metric("unknown_user", 2);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.posts().len(), 2);
    assert!(s.runs().is_empty());
}

#[test]
fn team_only_runs_strangers_without_personal_secrets() {
    let mut s = Slack::with(None, "team-only");
    s.start();
    s.send_ok(&mention(
        "EvSTRANGE3",
        "U0NOBODY",
        &format!("<@{BOT_USER}> hello"),
        None,
    ));
    let runs = s.wait_runs(1);
    assert_eq!(runs[0]["member"], Value::Null);
    let (env, _) = s.agent_saw(runs[0]["id"].as_str().unwrap());
    assert!(env.contains(&format!("DEPLOY_TOKEN={TEAM_VALUE}")), "{env}");
    for v in [ALICE_VALUE, BOB_VALUE, CAROL_VALUE] {
        assert!(!env.contains(v), "{env}");
    }
    s.wait_posts(2);
}

#[test]
fn requests_that_fail_verification_get_401_and_start_nothing() {
    let mut s = Slack::new();
    s.start();
    let body = mention("EvFORGED01", ALICE, "<@U0OURBOT01> hi", None);
    let ts = now_secs().to_string();
    let forged = slack_signature("not-the-secret", &ts, &body);
    let good = slack_signature(SIGNING_SECRET, &ts, &body);
    let old_ts = (now_secs() - 6 * 60).to_string();
    let stale = slack_signature(SIGNING_SECRET, &old_ts, &body);
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "bad signature",
            vec![
                ("X-Slack-Request-Timestamp", &ts),
                ("X-Slack-Signature", &forged),
            ],
        ),
        ("no timestamp", vec![("X-Slack-Signature", &good)]),
        ("no signature", vec![("X-Slack-Request-Timestamp", &ts)]),
        (
            "6 minutes old",
            vec![
                ("X-Slack-Request-Timestamp", &old_ts),
                ("X-Slack-Signature", &stale),
            ],
        ),
    ];
    for (what, headers) in &cases {
        let r = s.serve().request("POST", "/slack/events", headers, &body);
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        assert_eq!(r.header("x-slack-no-retry"), Some("1"), "{what}");
    }
    // A body over the limit is refused before it is verified.
    let big = vec![b'x'; 1024 * 1024 + 1];
    let r = s.send(&big, &[]);
    assert_eq!(r.status, 413);

    let metric = |result: &str| {
        s.serve().metric(&format!(
            "supervisor_webhook_requests_total{{source=\"slack\",result=\"{result}\"}}"
        ))
    };
    assert_eq!(metric("bad_signature"), 1);
    assert_eq!(metric("missing_header"), 2);
    assert_eq!(metric("stale"), 1);
    assert_eq!(metric("too_large"), 1);
    // The same body, signed properly, still works: nothing was claimed.
    let r = s.send(&body, &[]);
    assert_eq!(r.status, 200);
    s.wait_runs(1);
}

#[test]
fn retries_of_one_event_start_one_run_also_after_a_restart() {
    let mut s = Slack::new();
    s.start();
    let body = mention("EvRETRY001", ALICE, "<@U0OURBOT01> once", None);
    let first = s.send(&body, &[]);
    assert_eq!(first.status, 200);
    for n in ["1", "2"] {
        let r = s.send(
            &body,
            &[
                ("X-Slack-Retry-Num", n),
                ("X-Slack-Retry-Reason", "http_timeout"),
            ],
        );
        assert_eq!(r.status, 200);
        assert!(r.text().contains("duplicate"), "{}", r.text());
    }
    s.wait_runs(1);
    s.wait_posts(2);
    s.wait_metric("duplicate", 2);
    s.stop();

    s.start();
    let r = s.send(
        &body,
        &[
            ("X-Slack-Retry-Num", "3"),
            ("X-Slack-Retry-Reason", "http_error"),
        ],
    );
    assert_eq!(r.status, 200);
    // The restarted daemon answers at once and finds the claim in the store.
    s.wait_metric("duplicate", 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.runs().len(), 1);
    assert_eq!(s.posts().len(), 2);
}

#[test]
fn url_verification_is_answered_and_malformed_json_is_400() {
    let mut s = Slack::new();
    s.start();
    let body = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let r = s.send(body, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    for bad in [
        &b"{\"type\": \"event_callback\", \"event\": "[..],
        b"[1,2",
        b"{\"type\":\"event_callback\"}",
    ] {
        let r = s.send(bad, &[]);
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(bad));
    }
    // An event callback missing the mention's fields is malformed too.
    let r = s.send(
        &envelope("EvBROKEN01", json!({"type": "app_mention", "user": ALICE})),
        &[],
    );
    assert_eq!(r.status, 400);
    // Other events are acknowledged and ignored.
    let r = s.send(
        &envelope("EvOTHER001", json!({"type": "reaction_added"})),
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        s.serve()
            .metric(r#"supervisor_webhook_requests_total{source="slack",result="malformed"}"#),
        4
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(s.runs().is_empty());
    assert!(s.posts().is_empty());
}

#[test]
fn a_rate_limited_reply_is_sent_once_after_retry_after() {
    let mut s = Slack::new();
    s.fake.respond_once(
        "/chat.postMessage",
        fake_api::Response::json(429, &json!({"ok": false, "error": "ratelimited"}))
            .with_header("Retry-After", "1"),
    );
    s.start();
    s.send_ok(&mention("EvLIMIT001", ALICE, "<@U0OURBOT01> go", None));
    let runs = s.wait_runs(1);
    let posts = s.wait_posts(3);
    let statuses: Vec<u16> = posts.iter().map(|p| p.status).collect();
    assert_eq!(statuses, [429, 200, 200]);
    // The retry repeats the throttled message; each message lands once.
    assert_eq!(text_of(&posts[0]), text_of(&posts[1]));
    assert!(text_of(&posts[1]).contains("Starting"));
    assert!(text_of(&posts[2]).contains("succeeded"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.posts().len(), 3);
    let id = runs[0]["id"].as_str().unwrap();
    assert!(s.run_show(id)["detail"].get("notes").is_none());
}

#[test]
fn with_slack_down_the_run_completes_and_records_the_failed_replies() {
    // A port nobody listens on.
    let down = free_addr();
    let mut s = Slack::with(Some(format!("http://{down}")), "reject");
    s.start();
    s.send_ok(&mention("EvDOWN0001", ALICE, "<@U0OURBOT01> go", None));
    let runs = s.wait_runs(1);
    assert_eq!(runs[0]["status"], "succeeded");
    let id = runs[0]["id"].as_str().unwrap();
    let deadline = Instant::now() + WAIT;
    let notes = loop {
        let detail = s.run_show(id)["detail"].clone();
        if detail["notes"].as_array().is_some_and(|n| n.len() == 2) {
            break detail["notes"].clone();
        }
        assert!(Instant::now() < deadline, "{detail:#}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let notes: Vec<&str> = notes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes[0].contains("started") && notes[0].contains("chat.postMessage"),
        "{notes:?}"
    );
    assert!(notes[1].contains("finished"), "{notes:?}");
    assert!(!notes.iter().any(|n| n.contains(BOT_TOKEN)), "{notes:?}");
    let show = s.run_show(id);
    assert_eq!(show["status"], "succeeded");
}

#[test]
fn a_reply_slack_refuses_is_noted_on_the_run() {
    let mut s = Slack::new();
    s.fake.respond(
        "/chat.postMessage",
        fake_api::Response::json(200, &json!({"ok": false, "error": "not_in_channel"})),
    );
    s.start();
    s.send_ok(&mention("EvREFUSE01", ALICE, "<@U0OURBOT01> go", None));
    let runs = s.wait_runs(1);
    assert_eq!(runs[0]["status"], "succeeded");
    let id = runs[0]["id"].as_str().unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let detail = s.run_show(id)["detail"].clone();
        if let Some(notes) = detail["notes"].as_array().filter(|n| n.len() == 2) {
            for n in notes {
                let n = n.as_str().unwrap();
                assert!(n.ends_with("chat.postMessage: not_in_channel"), "{n}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "{detail:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Refused, not throttled: each reply was tried once.
    assert_eq!(s.posts().len(), 2);
}

#[test]
fn a_guest_from_another_workspace_showing_a_members_email_is_not_that_member() {
    let mut s = Slack::new();
    s.start();
    s.send_ok(&mention(
        "EvGuest1",
        GUEST,
        &format!("<@{BOT_USER}> triage deploy"),
        None,
    ));
    s.wait_metric("unknown_user", 1);
    let posts = s.wait_posts(1);
    assert!(text_of(&posts[0]).contains("not a member"), "{posts:?}");
    assert!(s.runs().is_empty());
}

/// Another process holding the store's write lock for `secs` seconds;
/// returns once it holds it.
fn hold_store_lock(team: &Team, secs: f64) -> std::process::Child {
    use std::io::BufRead;
    let bin = supervisor_tests::binary().with_file_name("hold_write_lock");
    let mut child = std::process::Command::new(bin)
        .arg(team.state_dir().join("store.db"))
        .arg(secs.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start hold_write_lock (built with the workspace's binaries)");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    child
}

#[test]
fn a_five_second_write_lock_by_another_process_leaves_acks_under_100_ms() {
    let mut s = Slack::new();
    s.start();
    // Warm the connection path and the claims database.
    s.send_ok(&mention(
        "EvWarm",
        ALICE,
        &format!("<@{BOT_USER}> triage warm"),
        None,
    ));
    s.wait_runs(1);
    let mut holder = hold_store_lock(&s.team, 5.0);
    let locked_at = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let body = mention(
            &format!("EvLocked{i}"),
            ALICE,
            &format!("<@{BOT_USER}> triage {i}"),
            None,
        );
        let start = Instant::now();
        s.send_ok(&body);
        slowest = slowest.max(start.elapsed());
    }
    assert!(
        locked_at.elapsed() < Duration::from_secs(5),
        "the requests outlasted the lock, so they did not test it"
    );
    eprintln!("slowest of 5 acks while another process held the store's write lock: {slowest:?}");
    assert!(
        slowest < Duration::from_millis(100),
        "an ack took {slowest:?} while another process held the store's write lock"
    );
    assert!(holder.wait().unwrap().success());
    // Once the lock is gone the runs happen, once each.
    assert_eq!(s.wait_runs(6).len(), 6);
}
