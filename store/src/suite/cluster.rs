//! Several nodes on one store: one audit chain under concurrent appends;
//! on PostgreSQL also slots, firings and the adoption of a dead node's work.

use std::time::Duration;

use serde_json::json;
use supervisor_config::Overlap;

use super::{Case, CaseFn};
use crate::db::Location;
use crate::{AuditVerdict, Deliveries, Firing, MasterKey, Queued, Store};

pub(super) const CASES: &[(&str, CaseFn)] = &[
    ("concurrent_appends_keep_one_chain", one_chain),
    ("slots_hold_across_nodes_and_die_with_them", slots),
    (
        "each_firing_is_claimed_once_and_overlap_holds_across_nodes",
        firings,
    ),
    ("a_dead_nodes_claimed_work_is_adopted_once", adoption),
    (
        "a_node_needs_no_right_to_change_the_schema",
        row_rights_only,
    ),
];

fn one_chain(c: &Case) {
    drop(c.store(7));
    std::thread::scope(|scope| {
        for t in 0..4 {
            scope.spawn(move || {
                let mut s = c.open(Some(7)).unwrap();
                for i in 0..25 {
                    s.audit(Some("alice"), "test.event", &json!({ "t": t, "i": i }))
                        .unwrap();
                }
            });
        }
    });
    let mut s = c.open(Some(7)).unwrap();
    assert_eq!(
        s.audit_verify().unwrap(),
        AuditVerdict::Intact {
            entries: 100,
            sealed: 100,
            keyed_from: 1
        }
    );
}

/// A second node's store on the same database.
fn node(c: &Case, id: &str) -> Store {
    Store::open_as(&c.location, &MasterKey::from_bytes([7; 32]), id).unwrap()
}

fn slots(c: &Case) {
    let mut a = c.store(7);
    if !c.is_pg() {
        // One host: the daemon counts its slots itself.
        assert!(a.acquire_slot("fixer", 1, "t1").unwrap());
        assert!(a.acquire_slot("fixer", 1, "t2").unwrap());
        return;
    }
    let mut b = node(c, "node-b");
    a.heartbeat().unwrap();
    b.heartbeat().unwrap();
    assert!(a.acquire_slot("fixer", 2, "a1").unwrap());
    assert!(b.acquire_slot("fixer", 2, "b1").unwrap());
    assert!(!a.acquire_slot("fixer", 2, "a2").unwrap());
    assert!(!b.acquire_slot("fixer", 2, "b2").unwrap());
    // Other agents have slots of their own.
    assert!(b.acquire_slot("other", 1, "b3").unwrap());
    a.release_slot("a1").unwrap();
    assert!(b.acquire_slot("fixer", 2, "b2").unwrap());
    // b dies: once its lease runs out, its slots are free.
    std::thread::sleep(c.lease() + Duration::from_millis(300));
    a.heartbeat().unwrap();
    assert!(a.acquire_slot("fixer", 2, "a3").unwrap());
    assert!(a.acquire_slot("fixer", 2, "a4").unwrap());
    assert!(!a.acquire_slot("fixer", 2, "a5").unwrap());
}

fn firings(c: &Case) {
    let mut a = c.store(7);
    let t = |s: u32| format!("2026-03-01T06:00:{s:02}.000Z");
    if !c.is_pg() {
        assert_eq!(
            a.claim_firing("s", &t(0), Overlap::Skip).unwrap(),
            Firing::Start
        );
        return;
    }
    let mut b = node(c, "node-b");
    a.heartbeat().unwrap();
    b.heartbeat().unwrap();
    // Exactly one node gets each firing.
    assert_eq!(
        a.claim_firing("s", &t(0), Overlap::Skip).unwrap(),
        Firing::Start
    );
    assert_eq!(
        b.claim_firing("s", &t(0), Overlap::Skip).unwrap(),
        Firing::Taken
    );
    // While a's run goes, b skips the next firing.
    assert_eq!(
        b.claim_firing("s", &t(1), Overlap::Skip).unwrap(),
        Firing::Skip
    );
    assert_eq!(
        a.claim_firing("s", &t(1), Overlap::Skip).unwrap(),
        Firing::Taken
    );
    a.end_firing("s", &t(0)).unwrap();
    assert_eq!(
        b.claim_firing("s", &t(2), Overlap::Skip).unwrap(),
        Firing::Start
    );
    // Queue: waits for the earlier run, wherever it runs.
    assert_eq!(
        a.claim_firing("s", &t(3), Overlap::Queue).unwrap(),
        Firing::Queued
    );
    assert_eq!(a.start_queued_firing("s", &t(3)).unwrap(), Queued::Wait);
    b.end_firing("s", &t(2)).unwrap();
    assert_eq!(a.start_queued_firing("s", &t(3)).unwrap(), Queued::Start);
    // Allow: beside it.
    assert_eq!(
        b.claim_firing("s", &t(4), Overlap::Allow).unwrap(),
        Firing::Start
    );
    // a dies with its firing open: once its lease runs out, b goes on.
    std::thread::sleep(c.lease() + Duration::from_millis(300));
    b.heartbeat().unwrap();
    b.end_firing("s", &t(4)).unwrap();
    assert_eq!(
        b.claim_firing("s", &t(5), Overlap::Skip).unwrap(),
        Firing::Start
    );
}

fn adoption(c: &Case) {
    let Location::Postgres(pg) = &c.location else {
        return;
    };
    let mut a = c.store(7);
    let mut b = node(c, "node-b");
    a.heartbeat().unwrap();
    b.heartbeat().unwrap();
    let mut db = Deliveries::open_as(pg, "node-b").unwrap();
    assert!(
        db.claim_work("webhook", &["h:1"], 1000, 900, "h", b"one")
            .unwrap()
    );
    assert!(
        db.claim_work("webhook", &["h:2"], 1001, 900, "h", b"two")
            .unwrap()
    );
    db.finish("webhook", "h:2").unwrap();
    let mut da = Deliveries::open_at(&c.location, &c.state_dir()).unwrap();
    // b lives: its work is its own.
    assert!(da.pending().unwrap().is_empty());
    std::thread::sleep(c.lease() + Duration::from_millis(300));
    a.heartbeat().unwrap();
    let adopted = da.pending().unwrap();
    assert_eq!(adopted.len(), 1);
    assert_eq!(
        (adopted[0].key.as_str(), &adopted[0].body[..]),
        ("h:1", &b"one"[..])
    );
    // Adopted once: a second look (or another node) finds nothing.
    assert!(da.pending().unwrap().is_empty());
    let mut dc = Deliveries::open_as(pg, "node-c").unwrap();
    assert!(dc.pending().unwrap().is_empty());
    // The claim itself still dedupes.
    assert!(!dc.claim("webhook", &["h:1"], 1002, 900).unwrap());
}

fn row_rights_only(c: &Case) {
    let Some(url) = c.url() else {
        return;
    };
    drop(c.store(7));
    let mut raw = c.raw();
    // Roles are the server's, databases the case's: one role per database.
    let db = url.rsplit('/').next().unwrap().to_owned();
    let role = format!("node_{db}");
    for sql in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"),
        format!("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}"),
        format!("REVOKE CREATE ON SCHEMA public FROM PUBLIC, {role}"),
    ] {
        raw.run(&sql, &[]);
    }
    let theirs = url.replacen("postgres@", &format!("{role}@"), 1);
    let location = Location::Postgres(Box::new(
        crate::PgLocation::parse(&secrecy::SecretString::from(theirs), c.lease()).unwrap(),
    ));
    let mut s = Store::open_at(&location, Some(&MasterKey::from_bytes([7; 32]))).unwrap();
    s.start_run(&super::runs::record("r1", "a"), &json!({}))
        .unwrap();
    s.heartbeat().unwrap();
    assert!(matches!(
        s.audit_verify().unwrap(),
        AuditVerdict::Intact { entries: 1, .. }
    ));
    // The role cannot take the append-only guard away.
    let mut theirs = postgres::Client::connect(
        &url.replacen("postgres@", &format!("{role}@"), 1),
        postgres::NoTls,
    )
    .unwrap();
    assert!(
        theirs
            .batch_execute("ALTER TABLE audit DISABLE TRIGGER USER")
            .is_err()
    );
    assert!(theirs.batch_execute("DELETE FROM audit").is_err());
}
