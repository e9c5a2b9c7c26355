//! Three `supervisor serve` on one PostgreSQL database (the tests' own
//! server), each with its own state directory and port, the same config
//! and the same master key: every cron firing runs once in all, every
//! delivery runs once whichever node gets it and however often it is sent,
//! and a node killed mid-run has its run marked lost by a live one within
//! its lease, with the audit chain intact.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use supervisor_tests::postgres::PgServer;
use supervisor_tests::signing::{now_secs, webhook_headers};
use supervisor_tests::{Daemon, STOP_TIMEOUT, Team, wait_for};

const HOOK_SECRET: &str = "cluster-hook-secret-5d1e";

/// Three teams (nodes) of one store. The first ran `init`; the others got
/// its key.
struct Cluster {
    server: PgServer,
    url: String,
    nodes: Vec<Team>,
    daemons: Vec<Option<Daemon>>,
    out: PathBuf,
}

impl Cluster {
    fn start(test: &str, extra: &str) -> Option<Cluster> {
        let server = PgServer::start(test)?;
        let url = server.fresh_database();
        let out = tempfile::Builder::new()
            .prefix("supervisor-cluster-out-")
            .tempdir()
            .unwrap()
            .keep();
        let config = format!(
            "[store]\nurl = {{ file = \"pg.url\" }}\nlease = \"3s\"\n\n[server]\nlisten = \"127.0.0.1:0\"\nqueue_limit = 2000\nmax_concurrent_runs = 4\n\n{}",
            extra.replace(
                "@OUT@",
                &serde_json::to_string(&out.to_string_lossy()).unwrap()
            )
        );
        let nodes: Vec<Team> = (0..3)
            .map(|_| {
                let team = Team::uninitialised(&config);
                write_private(&team.path().join("pg.url"), &url);
                write_private(&team.path().join("hook-secret"), HOOK_SECRET);
                team
            })
            .collect();
        nodes[0].cmd(&["init"]).ok();
        let key = std::fs::read(nodes[0].state_dir().join("master.key")).unwrap();
        for node in &nodes[1..] {
            std::fs::create_dir(node.state_dir()).unwrap();
            set_mode(&node.state_dir(), 0o700);
            write_private(&node.state_dir().join("master.key"), "");
            std::fs::write(node.state_dir().join("master.key"), &key).unwrap();
        }
        let daemons = nodes
            .iter()
            .map(|n| Some(n.serve_logging("info")))
            .collect();
        Some(Cluster {
            server,
            url,
            nodes,
            daemons,
            out,
        })
    }

    fn daemon(&self, i: usize) -> &Daemon {
        self.daemons[i].as_ref().expect("the node runs")
    }

    fn stop_all(&mut self) {
        for d in self.daemons.iter_mut().flatten() {
            d.stop(STOP_TIMEOUT);
        }
    }

    /// What the agents wrote: one run context per run.
    fn contexts(&self) -> Vec<serde_json::Value> {
        std::fs::read_dir(&self.out)
            .unwrap()
            .flatten()
            .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for d in self.daemons.iter_mut().flatten() {
            d.kill();
        }
        let _ = std::fs::remove_dir_all(&self.out);
    }
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    set_mode(path, 0o600);
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The agent of these tests: keeps its run context where the test reads it.
const RECORDER: &str = r#"
[[agents]]
name = "record"
command = ["/bin/sh", "-c", "cat > \"$OUT/$SUPERVISOR_RUN_ID.json\""]
triggers = ["cron", "webhook"]
timeout = "30s"
env = { PATH = "/usr/bin:/bin", OUT = @OUT@ }
"#;

#[test]
fn a_schedule_firing_every_second_runs_each_second_once_across_three_nodes() {
    let extra = format!(
        "{RECORDER}\n[[schedules]]\nname = \"tick\"\ncron = \"* * * * * *\"\nagent = \"record\"\n"
    );
    let Some(mut cluster) = Cluster::start("cron_across_nodes", &extra) else {
        return;
    };
    let from = chrono::Utc::now();
    std::thread::sleep(Duration::from_secs(20));
    let to = chrono::Utc::now();
    cluster.stop_all();
    let mut fired: BTreeMap<i64, usize> = BTreeMap::new();
    for ctx in cluster.contexts() {
        let at = ctx["source"]["cron"]["fired_at"]
            .as_str()
            .unwrap()
            .to_owned();
        let at = chrono::DateTime::parse_from_rfc3339(&at)
            .unwrap()
            .timestamp();
        *fired.entry(at).or_default() += 1;
    }
    let twice: Vec<_> = fired.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "firings run more than once: {twice:?}");
    // Every second while all three ran fired, once.
    let missing: Vec<i64> = (from.timestamp() + 1..to.timestamp())
        .filter(|s| !fired.contains_key(s))
        .collect();
    assert!(
        missing.is_empty(),
        "seconds that did not fire: {missing:?} of {fired:?}"
    );
    assert!(fired.len() >= 19, "{fired:?}");
    // Each node took part (they race for every firing).
    let logs: Vec<String> = cluster.daemons.iter().flatten().map(Daemon::log).collect();
    assert!(logs.iter().all(|l| !l.contains("ERROR")), "{logs:#?}");
    let runs = cluster.nodes[0].runs();
    assert_eq!(runs.len(), fired.len(), "one run record per firing");
    let verify = cluster.nodes[1].cmd(&["audit", "verify"]);
    verify.ok();
}

#[test]
fn a_thousand_deliveries_with_200_retries_give_800_runs_across_three_nodes() {
    let extra = format!(
        "{RECORDER}\n[[webhooks]]\nname = \"alerts\"\nagent = \"record\"\nsecret = {{ file = \"hook-secret\" }}\n"
    );
    let Some(cluster) = Cluster::start("deliveries_across_nodes", &extra) else {
        return;
    };
    let ts = now_secs();
    // 800 deliveries; after every fourth, a retry of an earlier one (the
    // same signed request again), each request to the next node in turn.
    let mut requests: Vec<usize> = Vec::new();
    for i in 0..800 {
        requests.push(i);
        if i % 4 == 3 {
            requests.push(i - 2);
        }
    }
    assert_eq!(requests.len(), 1000);
    let bodies: Vec<Vec<u8>> = (0..800)
        .map(|i| format!("{{\"alert\":\"disk full\",\"n\":{i}}}").into_bytes())
        .collect();
    let mut answers: BTreeMap<u16, usize> = BTreeMap::new();
    let started = Instant::now();
    for (k, &i) in requests.iter().enumerate() {
        let body = &bodies[i];
        let headers = webhook_headers(HOOK_SECRET, ts, body);
        let node = cluster.daemon(k % 3);
        // A sender retries what was not taken (503); none is expected here.
        let status = loop {
            let r = node.post("/hooks/alerts", &headers, body);
            if r.status != 503 {
                break r.status;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        *answers.entry(status).or_default() += 1;
    }
    eprintln!("1000 requests answered in {:?}", started.elapsed());
    assert_eq!(
        answers,
        BTreeMap::from([(200, 200), (202, 800)]),
        "answers by status"
    );
    let runs = wait_for("800 finished runs", Duration::from_secs(240), || {
        let runs = cluster.nodes[2].runs();
        assert!(
            runs.len() <= 800,
            "more runs than deliveries: {}",
            runs.len()
        );
        (runs.len() == 800 && runs.iter().all(|r| r["status"] != "running")).then_some(runs)
    });
    let deliveries: BTreeSet<&str> = runs
        .iter()
        .map(|r| r["detail"]["delivery"].as_str().unwrap())
        .collect();
    assert_eq!(deliveries.len(), 800);
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:#?}");
    let bodies_seen: BTreeSet<i64> = cluster
        .contexts()
        .iter()
        .map(|c| {
            let body: serde_json::Value =
                serde_json::from_str(c["source"]["webhook"]["body"].as_str().unwrap()).unwrap();
            body["n"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(bodies_seen.len(), 800);
    // Every node ran some of them.
    for i in 0..3 {
        assert!(cluster.daemon(i).webhook_count("webhook", "accepted") > 0);
    }
    cluster.nodes[0].cmd(&["audit", "verify"]).ok();
}

#[test]
fn a_node_killed_mid_run_has_its_run_marked_lost_within_the_lease() {
    let extra = r#"
[[agents]]
name = "slow"
command = ["/bin/sleep", "60"]
triggers = ["webhook"]

[[webhooks]]
name = "slow"
agent = "slow"
secret = { file = "hook-secret" }
"#;
    let Some(mut cluster) = Cluster::start("node_killed_mid_run", extra) else {
        return;
    };
    let body = b"{\"what\":\"a long job\"}";
    let headers = webhook_headers(HOOK_SECRET, now_secs(), body);
    assert_eq!(
        cluster.daemon(0).post("/hooks/slow", &headers, body).status,
        202
    );
    let run = wait_for("the run to start", Duration::from_secs(30), || {
        let runs = cluster.nodes[1].runs();
        runs.first()
            .filter(|r| r["status"] == "running")
            .map(|r| r["id"].as_str().unwrap().to_owned())
    });
    // Its home is in node 0's state directory.
    let homes = cluster.nodes[0].state_dir().join("tmp");
    assert!(homes.join(&run).exists());
    let killed = Instant::now();
    cluster.daemons[0].take().unwrap().kill();
    let lease = Duration::from_secs(3);
    let status = wait_for("the run to be marked lost", lease * 4, || {
        let r = cluster.nodes[2]
            .cmd(&["runs", "show", &run, "--json"])
            .json();
        (r["status"] != "running").then(|| r["status"].as_str().unwrap().to_owned())
    });
    let took = killed.elapsed();
    assert_eq!(status, "lost");
    // The lease, plus one renewal interval of the node that notices.
    assert!(
        took <= lease + lease / 3 + Duration::from_secs(2),
        "marked lost after {took:?}"
    );
    let verify = cluster.nodes[1].cmd(&["audit", "verify"]);
    assert!(verify.ok().contains("intact"), "{verify}");
    let logs = cluster.daemon(1).log() + &cluster.daemon(2).log();
    assert!(logs.contains("now marked lost"), "{logs}");
    // The dead node's private leftovers are its own to clean: at restart.
    assert!(homes.join(&run).exists());
    cluster.daemons[0] = Some(cluster.nodes[0].serve_logging("info"));
    assert!(
        supervisor_tests::wait_until(Duration::from_secs(10), || !homes.join(&run).exists()),
        "the home of the lost run is still there"
    );
    cluster.stop_all();
}

#[test]
fn a_database_out_of_reach_is_answered_503_and_the_retry_runs_once() {
    let extra = format!(
        "{RECORDER}\n[[webhooks]]\nname = \"alerts\"\nagent = \"record\"\nsecret = {{ file = \"hook-secret\" }}\n"
    );
    let Some(cluster) = Cluster::start("database_out_of_reach", &extra) else {
        return;
    };
    let check = cluster.nodes[0].cmd(&["config", "check"]);
    assert!(
        check.ok().contains("store    PostgreSQL") && !check.all().contains("postgres@"),
        "{check}"
    );
    let body = b"{\"alert\":\"while the database was down\"}";
    let headers = webhook_headers(HOOK_SECRET, now_secs(), body);
    cluster.server.stop();
    let r = cluster.daemon(0).post("/hooks/alerts", &headers, body);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert_eq!(cluster.daemon(0).webhook_count("webhook", "store_error"), 1);
    let err = cluster.nodes[1].cmd(&["secret", "list"]);
    let msg = err.err();
    assert!(
        msg.contains("cannot be reached") && msg.contains("hint:"),
        "{msg}"
    );
    assert!(
        !msg.contains("postgres@"),
        "the URL's user part is not shown: {msg}"
    );
    cluster.server.restart();
    // The sender retries what was not taken; the retry runs, once.
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let r = cluster.daemon(1).post("/hooks/alerts", &headers, body);
        statuses.push(r.status);
        if r.status == 202 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(statuses.last(), Some(&202), "{statuses:?}");
    let again = cluster.daemon(2).post("/hooks/alerts", &headers, body);
    assert_eq!(
        again.status,
        200,
        "{}\n{}",
        again.text(),
        cluster.daemon(2).log()
    );
    let runs = cluster.nodes[0].finished_runs(1, Duration::from_secs(30));
    assert_eq!(runs[0]["status"], "succeeded");
}

#[test]
fn a_claim_committed_but_answered_503_is_taken_up_by_its_own_node() {
    let extra = format!(
        "{RECORDER}\n[[webhooks]]\nname = \"alerts\"\nagent = \"record\"\nsecret = {{ file = \"hook-secret\" }}\n"
    );
    let Some(cluster) = Cluster::start("claim_answered_503", &extra) else {
        return;
    };
    // What a claim whose commit reached the database while node 0 saw an
    // error (and answered 503) leaves: the claim and its work, node 0's.
    let db = cluster.url.rsplit('/').next().unwrap();
    let mut sql = cluster.server.client(db);
    let node: String = sql
        .query_one(
            "SELECT id FROM nodes WHERE pid = $1",
            &[&i64::from(cluster.daemon(0).pid())],
        )
        .unwrap()
        .get(0);
    let body = b"{\"alert\":\"claimed, then the answer was lost\"}";
    let ts = now_secs();
    let headers = webhook_headers(HOOK_SECRET, ts, body);
    let signature = headers[1].1.clone();
    let key = format!("alerts:{signature}");
    let meta = serde_json::json!({ "hook": "alerts", "timestamp": ts.to_string(), "signature": signature })
        .to_string();
    let at = ts - 120;
    sql.execute(
        "INSERT INTO deliveries (source, key, seen_at) VALUES ('webhook', $1, $2)",
        &[&key, &at],
    )
    .unwrap();
    sql.execute(
        "INSERT INTO pending (source, key, meta, body, at, node) VALUES ('webhook', $1, $2, $3, $4, $5)",
        &[&key, &meta, &body.to_vec(), &at, &node],
    )
    .unwrap();
    // The sender's retry is a duplicate; node 0 takes the work up itself.
    assert_eq!(
        cluster
            .daemon(1)
            .post("/hooks/alerts", &headers, body)
            .status,
        200
    );
    let runs = cluster.nodes[0].finished_runs(1, Duration::from_secs(30));
    assert_eq!(runs[0]["detail"]["delivery"], format!("webhook:{key}"));
    assert!(
        cluster
            .daemon(0)
            .wait_for_log("taking up a delivery", Duration::from_secs(5))
    );
    // Once.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(cluster.nodes[0].runs().len(), 1);
    let left: i64 = sql
        .query_one("SELECT count(*) FROM pending", &[])
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[test]
fn an_agents_max_concurrent_holds_across_the_nodes() {
    let extra = r#"
[[agents]]
name = "one"
command = ["/bin/sh", "-c", "s=$(date +%s%N); sleep 0.4; echo \"$s $(date +%s%N)\" > \"$OUT/$SUPERVISOR_RUN_ID.json\""]
triggers = ["webhook"]
max_concurrent = 1
env = { PATH = "/usr/bin:/bin", OUT = @OUT@ }

[[webhooks]]
name = "one"
agent = "one"
secret = { file = "hook-secret" }
"#;
    let Some(cluster) = Cluster::start("max_concurrent_across_nodes", extra) else {
        return;
    };
    let ts = now_secs();
    for i in 0..6 {
        let body = format!("{{\"n\":{i}}}");
        let headers = webhook_headers(HOOK_SECRET, ts, body.as_bytes());
        let r = cluster
            .daemon(i % 3)
            .post("/hooks/one", &headers, body.as_bytes());
        assert_eq!(r.status, 202);
    }
    let runs = cluster.nodes[0].finished_runs(6, Duration::from_secs(60));
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:#?}");
    let mut spans: Vec<(u128, u128)> = std::fs::read_dir(&cluster.out)
        .unwrap()
        .flatten()
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).unwrap();
            let mut parts = text.split_whitespace().map(|p| p.parse::<u128>().unwrap());
            (parts.next().unwrap(), parts.next().unwrap())
        })
        .collect();
    spans.sort();
    assert_eq!(spans.len(), 6);
    for pair in spans.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "two runs of an agent with max_concurrent = 1 overlapped: {spans:?}"
        );
    }
}
