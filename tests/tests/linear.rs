//! `POST /linear/webhook` end to end: the real daemon as a child process,
//! a fake Linear GraphQL API on 127.0.0.1 that records the comments, and
//! an agent that writes what it received (environment, run context) to
//! files named by its run id.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use supervisor_tests::fake_api::{FakeApi, Recorded, linear};
use supervisor_tests::signing::{delivery_id, hmac_hex, linear_headers, now_ms};
use supervisor_tests::{
    Daemon, NO_HEADERS, Response, STOP_TIMEOUT, Team, read_env0, read_json, wait_for,
};

const WEBHOOK_SECRET: &str = "lin_wh_e2e_signing_secret";
const TEAM_TOKEN: &str = "team-value-7f3a9c2d";
const ALICE_TOKEN: &str = "alice-value-91be44e0";
const ISSUE_ID: &str = "6a17c5cc-0000-4000-8000-000000000001";
const WAIT: Duration = Duration::from_secs(30);

/// A team with the Linear trigger, its secrets stored, a fake Linear API
/// and the daemon running.
struct Setup {
    team: Team,
    fake: FakeApi,
    daemon: Option<Daemon>,
    out: PathBuf,
}

struct Options<'a> {
    api_key: &'a str,
    webhook_secret: &'a str,
    /// More `[server]` keys.
    server: &'a str,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            api_key: "lin_api_e2eKey0123456789",
            webhook_secret: WEBHOOK_SECRET,
            server: "",
        }
    }
}

impl Setup {
    fn new() -> Setup {
        Setup::with(Options::default())
    }

    fn with(o: Options<'_>) -> Setup {
        let fake = FakeApi::start();
        fake.respond(linear::PATH, linear::comment_created());
        let out = tempfile::Builder::new()
            .prefix("supervisor-linear-out-")
            .tempdir()
            .unwrap()
            .keep();
        // The agent records its environment (NUL-separated) and its run
        // context, then prints both secret values for the redactor to catch.
        let script = r#"env -0 > "$OUT/$SUPERVISOR_RUN_ID.env"; cat > "$OUT/$SUPERVISOR_RUN_ID.json"; echo "team token is ${TEAM_TOKEN:-absent}"; echo "alice token is ${ALICE_TOKEN:-absent}""#;
        let api_url = format!("{}{}", fake.url(), linear::PATH);
        let config = format!(
            r#"
[server]
listen = "127.0.0.1:0"
{server}

[[agents]]
name = "fixer"
command = ["/bin/sh", "-c", {script}]
triggers = ["cli", "linear"]
timeout = "30s"
env = {{ PATH = "/usr/bin:/bin", OUT = {out} }}

[linear]
webhook_secret = {{ file = "linear-webhook-secret" }}
api_key = {{ file = "linear-api-key" }}
api_url = "{url}"
bot_user = "u-agent"
unknown_users = "reject"

[[linear.rules]]
on = "issue.assigned"
assignee = "u-agent"
agent = "fixer"

[[linear.rules]]
on = "issue.labeled"
label = "agent"
agent = "fixer"

[[linear.rules]]
on = "comment.created"
contains = "@agent"
agent = "fixer"
"#,
            script = toml_string(script),
            out = toml_string(&out.to_string_lossy()),
            url = api_url,
            server = o.server,
        );
        let team = Team::uninitialised(&config);
        std::fs::write(
            team.path().join("linear-webhook-secret"),
            format!("{}\n", o.webhook_secret),
        )
        .unwrap();
        std::fs::write(team.path().join("linear-api-key"), o.api_key).unwrap();
        team.cmd(&["init"]).ok();
        team.secret(&["--team"], "TEAM_TOKEN", TEAM_TOKEN);
        team.secret(&["--personal"], "ALICE_TOKEN", ALICE_TOKEN);
        let daemon = team.serve_logging("info");
        Setup {
            team,
            fake,
            daemon: Some(daemon),
            out,
        }
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("the daemon runs")
    }

    fn restart(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(STOP_TIMEOUT);
        }
        self.daemon = Some(self.team.serve_logging("info"));
    }

    /// Signs and sends `body` as delivery `delivery`.
    fn send(&self, delivery: &str, body: &[u8]) -> Response {
        let headers = linear_headers(WEBHOOK_SECRET, delivery, body);
        self.daemon().post("/linear/webhook", &headers, body)
    }

    fn send_new(&self, body: &Value) -> Response {
        self.send(&delivery_id(), &serde_json::to_vec(body).unwrap())
    }

    fn runs(&self) -> Vec<Value> {
        self.team.runs()
    }

    /// Waits for exactly `n` runs, all finished, oldest first.
    #[track_caller]
    fn finished_runs(&self, n: usize) -> Vec<Value> {
        self.team.finished_runs(n, WAIT)
    }

    /// The environment the agent of run `id` received.
    fn env_of(&self, id: &str) -> HashMap<String, String> {
        read_env0(&self.out.join(format!("{id}.env")))
    }

    /// The run context the agent of run `id` read on stdin.
    fn context_of(&self, id: &str) -> Value {
        read_json(&self.out.join(format!("{id}.json")))
    }

    fn show(&self, id: &str) -> Value {
        self.team.cmd(&["runs", "show", id, "--json"]).json()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        drop(self.daemon.take());
        let _ = std::fs::remove_dir_all(&self.out);
    }
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn user(id: &str) -> Value {
    json!({"id": id, "name": "Ada", "email": "ada@example.com", "url": "https://linear.app/acme/profiles/ada", "type": "user"})
}

fn integration() -> Value {
    json!({"id": "int-github", "service": "github", "type": "integration"})
}

/// The spec's issue update, stamped now: assigned to our agent user and
/// the `agent` label added, by `actor`.
fn issue_update(actor: Value) -> Value {
    json!({
        "action": "update", "type": "Issue", "createdAt": "2026-03-02T10:15:30.123Z",
        "actor": actor,
        "data": {
            "id": ISSUE_ID, "identifier": "ENG-123", "number": 123,
            "title": "Fix flaky login test", "description": "Fails one run in ten.",
            "teamId": "t-eng", "team": {"id": "t-eng", "key": "ENG", "name": "Engineering"},
            "state": {"id": "s-todo", "name": "Todo", "type": "unstarted"},
            "assigneeId": "u-agent", "assignee": {"id": "u-agent", "name": "agent"},
            "labelIds": ["l-bug", "l-agent"], "labels": [{"id": "l-agent", "name": "agent"}],
            "updatedAt": "2026-03-02T10:15:30.100Z",
            "url": "https://linear.app/acme/issue/ENG-123/fix-flaky-login-test"
        },
        "updatedFrom": {"assigneeId": null, "labelIds": ["l-bug"], "updatedAt": "2026-03-01T09:00:00.000Z"},
        "url": "https://linear.app/acme/issue/ENG-123/fix-flaky-login-test",
        "organizationId": "c8986123-0000-4000-8000-000000000002", "webhookId": "wh-1",
        "webhookTimestamp": now_ms()
    })
}

/// An issue update that only added the `agent` label (assignee unchanged).
fn label_added(actor: Value) -> Value {
    let mut v = issue_update(actor);
    v["updatedFrom"] = json!({"labelIds": ["l-bug"], "updatedAt": "2026-03-01T09:00:00.000Z"});
    v
}

fn comment(author: &str, text: &str, bot_actor: Value) -> Value {
    json!({
        "action": "create", "type": "Comment", "createdAt": "2023-06-19T23:49:08.407Z",
        "actor": user(author),
        "data": {
            "id": "66b59ec2-0000-4000-8000-000000000003", "body": text,
            "issueId": ISSUE_ID,
            "issue": {"id": ISSUE_ID, "identifier": "ENG-123", "title": "Fix flaky login test"},
            "userId": author, "parentId": null, "botActor": bot_actor
        },
        "url": "https://linear.app/acme/issue/ENG-123#comment-66b59ec2",
        "organizationId": "c8986123-0000-4000-8000-000000000002", "webhookId": "wh-1",
        "webhookTimestamp": now_ms()
    })
}

/// `variables.input.body` of a `commentCreate`: the comment's text.
fn comment_of(r: &Recorded) -> String {
    r.json()["variables"]["input"]["body"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// `variables.input.issueId` of a `commentCreate`.
fn issue_of(r: &Recorded) -> String {
    r.json()["variables"]["input"]["issueId"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[track_caller]
fn assert_status(r: &Response, status: u16, text: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert!(r.text().contains(text), "expected {text:?} in {r:?}");
}

#[test]
fn the_spec_vector_verifies_and_the_signature_is_checked_before_freshness() {
    const SPEC_SECRET: &str = "lin_wh_test_secret";
    const SPEC_BODY: &str =
        r#"{"action":"create","type":"Comment","webhookTimestamp":1700000000000}"#;
    const SPEC_SIGNATURE: &str = "4c28d51e1f2541913b729e3cc180e37479c2058c4bbda5f19a149952450e44d7";
    assert_eq!(
        hmac_hex(SPEC_SECRET.as_bytes(), SPEC_BODY.as_bytes()),
        SPEC_SIGNATURE
    );

    let s = Setup::with(Options {
        webhook_secret: SPEC_SECRET,
        ..Options::default()
    });
    let d = s.daemon();
    let sign = |sig: &str| {
        vec![
            ("Linear-Signature".to_owned(), sig.to_owned()),
            ("Linear-Delivery".to_owned(), delivery_id()),
        ]
    };
    // The spec's signature holds, so the request gets as far as its
    // timestamp, which is years old.
    let r = d.post(
        "/linear/webhook",
        &sign(SPEC_SIGNATURE),
        SPEC_BODY.as_bytes(),
    );
    assert_status(&r, 401, "stale");
    // One flipped digit: refused for the signature, before the timestamp is read.
    let mut forged = SPEC_SIGNATURE.to_owned();
    forged.replace_range(0..1, "5");
    let r = d.post("/linear/webhook", &sign(&forged), SPEC_BODY.as_bytes());
    assert_status(&r, 401, "bad signature");
    // Not even JSON, but unsigned: 401, not 400.
    let r = d.post("/linear/webhook", &sign(&forged), b"{not json");
    assert_status(&r, 401, "bad signature");
    let r = d.post("/linear/webhook", NO_HEADERS, SPEC_BODY.as_bytes());
    assert_status(&r, 401, "missing header Linear-Signature");
    // Signed but not a Linear payload: 400.
    let body = b"{not json";
    let r = d.post(
        "/linear/webhook",
        &sign(&hmac_hex(SPEC_SECRET.as_bytes(), body)),
        body,
    );
    assert_status(&r, 400, "not JSON");
    // The spec's body stamped now: fresh, but a comment without `data`.
    let body = SPEC_BODY.replace("1700000000000", &now_ms().to_string());
    let r = d.post(
        "/linear/webhook",
        &sign(&hmac_hex(SPEC_SECRET.as_bytes(), body.as_bytes())),
        body.as_bytes(),
    );
    assert_status(&r, 400, "not JSON of the expected shape");

    assert_eq!(d.webhook_count("linear", "stale"), 1);
    assert_eq!(d.webhook_count("linear", "bad_signature"), 2);
    assert_eq!(d.webhook_count("linear", "missing_header"), 1);
    assert_eq!(d.webhook_count("linear", "malformed"), 2);
    assert!(s.runs().is_empty());
}

#[test]
fn an_assignment_by_a_mapped_person_brings_their_secrets_by_an_integration_only_the_team_s() {
    let s = Setup::new();
    let r = s.send_new(&issue_update(user("u-ada")));
    assert_status(&r, 200, "run queued");
    let runs = s.finished_runs(1);
    let run = &runs[0];
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["trigger"], "linear");
    assert_eq!(run["member"], "alice");
    let id = run["id"].as_str().unwrap();
    let env = s.env_of(id);
    assert_eq!(env.get("TEAM_TOKEN").map(String::as_str), Some(TEAM_TOKEN));
    assert_eq!(
        env.get("ALICE_TOKEN").map(String::as_str),
        Some(ALICE_TOKEN)
    );
    assert_eq!(env["SUPERVISOR_MEMBER"], "alice");
    assert_eq!(env["SUPERVISOR_TRIGGER"], "linear");
    assert_eq!(
        env["SUPERVISOR_PROMPT"],
        "Fix flaky login test\n\nFails one run in ten."
    );
    let ctx = s.context_of(id);
    let linear = &ctx["source"]["linear"];
    assert_eq!(linear["event"], "issue.assigned");
    assert_eq!(linear["issue_id"], ISSUE_ID);
    assert_eq!(linear["identifier"], "ENG-123");
    assert_eq!(linear["title"], "Fix flaky login test");
    assert_eq!(linear["description"], "Fails one run in ten.");
    assert_eq!(
        linear["url"],
        "https://linear.app/acme/issue/ENG-123/fix-flaky-login-test"
    );
    assert_eq!(ctx["member"], "alice");

    // The same change made by an integration: nobody behind it.
    let r = s.send_new(&issue_update(integration()));
    assert_status(&r, 200, "run queued");
    let runs = s.finished_runs(2);
    let run = &runs[1];
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["member"], Value::Null);
    let env = s.env_of(run["id"].as_str().unwrap());
    assert_eq!(env.get("TEAM_TOKEN").map(String::as_str), Some(TEAM_TOKEN));
    assert!(!env.contains_key("ALICE_TOKEN"), "{env:?}");
    assert!(!env.contains_key("SUPERVISOR_MEMBER"), "{env:?}");
    // Nobody's value is in the store's files in the clear.
    s.team.assert_not_in_state(ALICE_TOKEN);
    s.team.assert_not_in_state(TEAM_TOKEN);
    assert_eq!(s.daemon().webhook_count("linear", "accepted"), 2);
}

#[test]
fn a_new_label_and_a_comment_with_the_trigger_text_start_runs() {
    let s = Setup::new();
    let r = s.send_new(&label_added(user("u-ada")));
    assert_status(&r, 200, "run queued");
    let runs = s.finished_runs(1);
    let env = s.env_of(runs[0]["id"].as_str().unwrap());
    assert_eq!(env["SUPERVISOR_MEMBER"], "alice");
    let ctx = s.context_of(runs[0]["id"].as_str().unwrap());
    assert_eq!(ctx["source"]["linear"]["event"], "issue.labeled");

    // Bob asks in a comment; the mention is matched case-insensitively.
    let r = s.send_new(&comment("u-bob", "@Agent please take this", Value::Null));
    assert_status(&r, 200, "run queued");
    let runs = s.finished_runs(2);
    let run = &runs[1];
    assert_eq!(run["member"], "bob");
    let id = run["id"].as_str().unwrap();
    let env = s.env_of(id);
    assert_eq!(env["SUPERVISOR_PROMPT"], "@Agent please take this");
    // Alice's secret is hers: bob's run has the team's only.
    assert!(!env.contains_key("ALICE_TOKEN"), "{env:?}");
    assert_eq!(env["TEAM_TOKEN"], TEAM_TOKEN);
    let linear = &s.context_of(id)["source"]["linear"];
    assert_eq!(linear["event"], "comment.created");
    assert_eq!(linear["comment"], "@Agent please take this");
    assert_eq!(linear["identifier"], "ENG-123");
    assert_eq!(linear["issue_id"], ISSUE_ID);
}

#[test]
fn the_bot_s_own_comments_and_events_no_rule_matches_start_nothing() {
    let s = Setup::new();
    let d = s.daemon();
    // Our own Linear user writing the trigger text (a reply quoting it).
    let r = s.send_new(&comment("u-agent", "Started @agent fixer", Value::Null));
    assert_status(&r, 200, "ignored");
    // An app's comment.
    let r = s.send_new(&comment(
        "u-ada",
        "@agent from an app",
        json!({"id": "app-1", "name": "Some app"}),
    ));
    assert_status(&r, 200, "ignored");
    // A comment without the trigger text.
    let r = s.send_new(&comment("u-ada", "looks good to me", Value::Null));
    assert_status(&r, 200, "ignored");
    // An update that changed only the title.
    let mut title = issue_update(user("u-ada"));
    title["updatedFrom"] = json!({"title": "Old title"});
    let r = s.send_new(&title);
    assert_status(&r, 200, "ignored");
    // Assigned to someone else.
    let mut other = issue_update(user("u-ada"));
    other["data"]["assigneeId"] = json!("u-bob");
    other["data"]["labels"] = json!([]);
    let r = s.send_new(&other);
    assert_status(&r, 200, "ignored");
    // Another entity type.
    let reaction = json!({"action": "create", "type": "Reaction", "actor": user("u-ada"),
        "data": {"id": "r1", "emoji": "+1"}, "webhookTimestamp": now_ms()});
    let r = s.send_new(&reaction);
    assert_status(&r, 200, "ignored");
    assert_eq!(d.webhook_count("linear", "ignored"), 6);

    // A run that does start, after all of the above: then nothing else did.
    s.send_new(&issue_update(user("u-ada")));
    let runs = s.finished_runs(1);
    assert_eq!(runs[0]["member"], "alice");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.runs().len(), 1);
    // Ignored events are not answered on the issue: only the run's two comments.
    let comments = s.fake.wait_for(linear::PATH, 2, WAIT);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.fake.requests().len(), 2, "{comments:#?}");
}

#[test]
fn forged_stale_and_replayed_deliveries_never_make_a_second_run() {
    let mut s = Setup::new();
    let body = serde_json::to_vec(&issue_update(user("u-ada"))).unwrap();

    // Signed with another secret.
    let mut headers = linear_headers("not-the-secret", &delivery_id(), &body);
    let r = s.daemon().post("/linear/webhook", &headers, &body);
    assert_status(&r, 401, "bad signature");
    // A signature for other bytes.
    headers = linear_headers(WEBHOOK_SECRET, &delivery_id(), b"{}");
    let r = s.daemon().post("/linear/webhook", &headers, &body);
    assert_status(&r, 401, "bad signature");
    // Correctly signed, 61 s old.
    let mut stale = issue_update(user("u-ada"));
    stale["webhookTimestamp"] = json!(now_ms() - 61_000);
    let r = s.send_new(&stale);
    assert_status(&r, 401, "stale");
    // 61 s in the future.
    stale["webhookTimestamp"] = json!(now_ms() + 61_000);
    let r = s.send_new(&stale);
    assert_status(&r, 401, "stale");

    // The real delivery, then its replay: one run.
    let delivery = delivery_id();
    assert_status(&s.send(&delivery, &body), 200, "run queued");
    assert_status(&s.send(&delivery, &body), 200, "duplicate");
    // A retry under the same delivery id with a fresh timestamp: still one.
    let restamped = serde_json::to_vec(&issue_update(user("u-ada"))).unwrap();
    assert_status(&s.send(&delivery, &restamped), 200, "duplicate");
    // The same signed body replayed under a new delivery id, or none: the
    // signature covers the body, not the header, so it is the same delivery.
    assert_status(&s.send(&delivery_id(), &body), 200, "duplicate");
    let bare = vec![(
        "Linear-Signature".to_owned(),
        hmac_hex(WEBHOOK_SECRET.as_bytes(), &body),
    )];
    let r = s.daemon().post("/linear/webhook", &bare, &body);
    assert_status(&r, 200, "duplicate");

    // Without a delivery id the signature is the key.
    let unnamed = serde_json::to_vec(&issue_update(integration())).unwrap();
    let headers = vec![(
        "Linear-Signature".to_owned(),
        hmac_hex(WEBHOOK_SECRET.as_bytes(), &unnamed),
    )];
    let r = s.daemon().post("/linear/webhook", &headers, &unnamed);
    assert_status(&r, 200, "run queued");
    let r = s.daemon().post("/linear/webhook", &headers, &unnamed);
    assert_status(&r, 200, "duplicate");

    let runs = s.finished_runs(2);
    // They may start in either order.
    let mut members: Vec<String> = runs.iter().map(|r| r["member"].to_string()).collect();
    members.sort();
    assert_eq!(members, ["\"alice\"", "null"]);
    let d = s.daemon();
    assert_eq!(d.webhook_count("linear", "bad_signature"), 2);
    assert_eq!(d.webhook_count("linear", "stale"), 2);
    assert_eq!(d.webhook_count("linear", "duplicate"), 5);
    assert_eq!(d.webhook_count("linear", "accepted"), 2);

    // The replay after a restart: the store remembers the delivery.
    s.restart();
    assert_status(&s.send(&delivery, &body), 200, "duplicate");
    let r = s.daemon().post("/linear/webhook", &headers, &unnamed);
    assert_status(&r, 200, "duplicate");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.runs().len(), 2);
    assert_eq!(s.daemon().webhook_count("linear", "duplicate"), 2);
}

#[test]
fn comments_are_redacted_and_a_personal_api_key_goes_bare() {
    let s = Setup::new();
    s.send_new(&issue_update(user("u-ada")));
    let runs = s.finished_runs(1);
    let id = runs[0]["id"].as_str().unwrap();
    let requests = s.fake.wait_for(linear::PATH, 2, WAIT);
    for r in &requests {
        assert_eq!(r.path, "/graphql");
        assert_eq!(r.header("authorization"), Some("lin_api_e2eKey0123456789"));
        assert!(
            r.json()["query"]
                .as_str()
                .unwrap()
                .contains("commentCreate"),
            "{r:?}"
        );
        assert_eq!(issue_of(r), ISSUE_ID);
    }
    let start = comment_of(&requests[0]);
    assert!(start.contains("Started agent `fixer`"), "{start}");
    assert!(start.contains(id), "{start}");
    let end = comment_of(&requests[1]);
    assert!(end.contains("Agent `fixer` succeeded after"), "{end}");
    assert!(end.contains(id), "{end}");
    assert!(end.contains("```\n"), "the output is fenced: {end}");
    assert!(end.contains("team token is [REDACTED:TEAM_TOKEN]"), "{end}");
    assert!(
        end.contains("alice token is [REDACTED:ALICE_TOKEN]"),
        "{end}"
    );
    for r in &requests {
        let raw = r.body_text();
        assert!(
            !raw.contains(TEAM_TOKEN) && !raw.contains(ALICE_TOKEN),
            "{raw}"
        );
    }
    // Nothing went wrong, so nothing is noted.
    assert_eq!(s.show(id)["detail"]["notes"], Value::Null);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.fake.requests().len(), 2);
}

#[test]
fn an_oauth_token_goes_as_a_bearer_token() {
    let s = Setup::with(Options {
        api_key: "lin_oauth_0123456789abcdef\n",
        ..Options::default()
    });
    s.send_new(&comment("u-ada", "@agent look", Value::Null));
    s.finished_runs(1);
    let requests = s.fake.wait_for(linear::PATH, 2, WAIT);
    for r in &requests {
        assert_eq!(
            r.header("authorization"),
            Some("Bearer lin_oauth_0123456789abcdef")
        );
        assert_eq!(issue_of(r), ISSUE_ID);
    }
}

#[test]
fn failed_comments_are_noted_on_the_run_which_still_succeeds() {
    let s = Setup::new();
    s.fake.respond(linear::PATH, linear::graphql_error());
    s.send_new(&issue_update(user("u-ada")));
    let runs = s.finished_runs(1);
    let id = runs[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(runs[0]["status"], "succeeded");
    let notes = wait_for("two notes on the run", WAIT, || {
        let notes = s.show(&id)["detail"]["notes"].clone();
        (notes.as_array().map_or(0, Vec::len) == 2).then_some(notes)
    });
    let notes: Vec<&str> = notes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes[0].contains("start comment") && notes[0].contains("GraphQL error: Entity not found"),
        "{notes:?}"
    );
    assert!(notes[1].contains("closing comment"), "{notes:?}");
    let shown = s.show(&id);
    assert_eq!(shown["status"], "succeeded");
    assert!(shown["detail"]["injected"].is_array(), "{shown:#}");

    // An HTTP error is a failure too.
    s.fake.respond(linear::PATH, linear::failure(401));
    s.send_new(&issue_update(integration()));
    let runs = s.finished_runs(2);
    let id = runs[1]["id"].as_str().unwrap().to_owned();
    let notes = wait_for("two notes on the second run", WAIT, || {
        let notes = s.show(&id)["detail"]["notes"].clone();
        (notes.as_array().map_or(0, Vec::len) == 2).then_some(notes)
    });
    assert!(notes[0].as_str().unwrap().contains("HTTP 401"), "{notes}");
    assert_eq!(runs[1]["status"], "succeeded");
}

#[test]
fn an_unknown_person_is_answered_with_a_comment_and_no_run() {
    let s = Setup::new();
    let mut stranger = user("u-stranger");
    stranger["email"] = json!("stranger@elsewhere.example");
    let r = s.send_new(&issue_update(stranger));
    assert_status(&r, 200, "not a member");
    let requests = s.fake.wait_for(linear::PATH, 1, WAIT);
    assert_eq!(issue_of(&requests[0]), ISSUE_ID);
    let text = comment_of(&requests[0]);
    assert!(text.contains("No run was started"), "{text}");
    assert!(text.contains("u-stranger"), "{text}");
    assert_eq!(s.daemon().webhook_count("linear", "unknown_user"), 1);

    // A member's delivery after it: the only run.
    s.send_new(&issue_update(user("u-ada")));
    let runs = s.finished_runs(1);
    assert_eq!(runs[0]["member"], "alice");
    s.fake.wait_for(linear::PATH, 3, WAIT);
}

#[test]
fn bodies_over_the_limit_are_refused_unread() {
    // Linear's own limit (1 MiB), then a smaller `[server] body_limit`.
    for (server, size) in [("", 1024 * 1024), ("body_limit = \"64 KiB\"", 64 * 1024)] {
        let s = Setup::with(Options {
            server,
            ..Options::default()
        });
        let mut big = issue_update(user("u-ada"));
        big["data"]["description"] = json!("x".repeat(size));
        let body = serde_json::to_vec(&big).unwrap();
        let headers = linear_headers(WEBHOOK_SECRET, &delivery_id(), &body);
        let r = s
            .daemon()
            .try_request("POST", "/linear/webhook", &headers, &body);
        // The daemon answers 413 and may close before it read the rest.
        if let Ok(r) = r {
            assert_eq!(r.status, 413, "{r:?}");
        }
        assert_eq!(s.daemon().webhook_count("linear", "too_large"), 1);
        // Just under the limit is fine.
        let mut fits = issue_update(user("u-ada"));
        fits["data"]["description"] = json!("x".repeat(size - 2048));
        let r = s.send_new(&fits);
        assert_status(&r, 200, "run queued");
        s.finished_runs(1);
    }
}
