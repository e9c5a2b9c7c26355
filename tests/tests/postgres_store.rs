//! The quick start on a PostgreSQL store (local mode, the tests' own
//! server): `init` against an empty database, a secret stored, a run that
//! receives it, and nothing of the value anywhere but in the agent.

use supervisor_tests::postgres::PgServer;
use supervisor_tests::{Team, sentinel};

#[test]
fn the_quick_start_works_on_postgresql_and_the_value_reaches_only_the_agent() {
    let Some(server) = PgServer::start("quick_start_on_postgresql") else {
        return;
    };
    let url = server.fresh_database();
    let out = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[store]
url = {{ file = "pg.url" }}

[[agents]]
name = "show"
command = ["/bin/sh", "-c", "echo token=$GITHUB_TOKEN; printf %s \"$GITHUB_TOKEN\" > \"$OUT/got\""]
env = {{ PATH = "/usr/bin:/bin", OUT = {out} }}
"#,
        out = serde_json::to_string(&out.path().to_string_lossy()).unwrap()
    );
    let team = Team::uninitialised(&config);
    std::fs::write(team.path().join("pg.url"), &url).unwrap();
    let init = team.cmd(&["init"]);
    let said = init.ok();
    let db = url.rsplit('/').next().unwrap();
    assert!(
        said.contains(&format!(
            "store ready at postgres://127.0.0.1:{}/{db}",
            server.port
        )),
        "{init}"
    );
    assert!(!init.all().contains("postgres@"), "{init}");
    // A second init changes nothing.
    team.cmd(&["init"]).ok();

    let value = sentinel("pg-token");
    team.cmd_in(
        &value,
        &["secret", "create", "--team", "--name", "GITHUB_TOKEN"],
    )
    .ok();
    let run = team.cmd(&["run", "show"]);
    assert!(run.ok().contains("token=[REDACTED:GITHUB_TOKEN]"), "{run}");
    assert!(!run.all().contains(&value));
    assert_eq!(
        std::fs::read_to_string(out.path().join("got")).unwrap(),
        value
    );

    let runs = team.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(runs[0]["detail"]["injected"][0]["name"], "GITHUB_TOKEN");
    assert!(team.cmd(&["audit", "verify"]).ok().contains("intact"));

    // The store is the database's: no SQLite file in the state directory,
    // and the value is in no row but as ciphertext.
    assert!(!team.state_dir().join("store.db").exists());
    team.assert_not_in_state(&value);
    let mut sql = server.client(db);
    for table in ["audit", "runs", "meta", "secrets", "nodes"] {
        let rows = sql
            .query(&format!("SELECT t::text FROM {table} t"), &[])
            .unwrap();
        for r in rows {
            let text: String = r.get(0);
            assert!(!text.contains(&value), "{table} holds the value");
        }
    }
    // The run's process gave its lease up when it ended.
    let nodes: i64 = sql
        .query_one("SELECT count(*) FROM nodes", &[])
        .unwrap()
        .get(0);
    assert_eq!(nodes, 0);
}
