//! Run records: round trip, filters, notes, deliveries, lost runs.

use serde_json::json;

use super::{Case, CaseFn};
use crate::{AuditVerdict, RunFilter, RunRecord, RunStatus, StoreError};

pub(super) const CASES: &[(&str, CaseFn)] = &[
    ("runs_round_trip_and_are_audited", round_trip),
    ("runs_are_listed_by_member", by_member),
    ("a_run_is_found_by_its_delivery", by_delivery),
    ("notes_made_while_a_run_goes_survive_its_end", notes),
    ("orphaned_runs_become_lost", orphans),
];

pub(super) fn record(id: &str, agent: &str) -> RunRecord {
    RunRecord {
        id: id.into(),
        agent: agent.into(),
        trigger: "cli".into(),
        member: Some("alice".into()),
        status: RunStatus::Running,
        started_at: crate::now(),
        ended_at: None,
        log_bytes: 0,
        redactions: 0,
        detail: json!({ "injected": [{ "name": "A", "version": 1 }] }),
    }
}

fn round_trip(c: &Case) {
    let mut s = c.store(6);
    let mut r = record("0190-aaaa", "fixer");
    s.start_run(&r, &json!({ "run": r.id })).unwrap();
    s.start_run(&record("0190-bbbb", "other"), &json!({}))
        .unwrap();
    r.status = RunStatus::Failed { code: 3 };
    r.ended_at = Some(crate::now());
    r.log_bytes = 42;
    s.finish_run(&r).unwrap();
    let got = s.get_run("0190-a").unwrap();
    assert_eq!(got.status, RunStatus::Failed { code: 3 });
    assert_eq!(got.log_bytes, 42);
    assert!(matches!(
        s.get_run("0190"),
        Err(StoreError::RunAmbiguous(p)) if p == "0190"
    ));
    assert!(s.get_run("nope").is_err());
    let only = s
        .list_runs(&RunFilter {
            agent: Some("fixer"),
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(only.len(), 1);
    let newest = s
        .list_runs(&RunFilter {
            limit: Some(1),
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(newest.len(), 1);
    let actions: Vec<String> = s
        .audit_list(None)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["run.start", "run.start", "run.end"]);
    assert!(matches!(
        s.audit_verify().unwrap(),
        AuditVerdict::Intact { entries: 3, .. }
    ));
    let json = serde_json::to_value(&got).unwrap();
    assert_eq!(json["status"], "failed");
    assert_eq!(json["code"], 3);
    assert!(s.run_exists("0190-aaaa").unwrap());
    assert!(!s.run_exists("0190-zzzz").unwrap());
    // A refusal is a run too, recorded with its reason.
    let mut refused = record("0190-cccc", "fixer");
    refused.status = RunStatus::Rejected {
        reason: "queue full".into(),
    };
    s.start_run(&refused, &json!({})).unwrap();
    assert_eq!(s.get_run("0190-c").unwrap().status, refused.status);
}

fn by_member(c: &Case) {
    let mut s = c.store(6);
    s.start_run(&record("0190-aaaa", "fixer"), &json!({}))
        .unwrap();
    let mut bobs = record("0190-bbbb", "fixer");
    bobs.member = Some("bob".into());
    s.start_run(&bobs, &json!({})).unwrap();
    let mut nobodys = record("0190-cccc", "fixer");
    nobodys.member = None;
    s.start_run(&nobodys, &json!({})).unwrap();
    let mut ids = |member| {
        s.list_runs(&RunFilter {
            member,
            ..RunFilter::default()
        })
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect::<Vec<_>>()
    };
    assert_eq!(ids(Some("bob")), ["0190-bbbb"]);
    assert_eq!(ids(Some("alice")), ["0190-aaaa"]);
    assert_eq!(ids(None).len(), 3);
}

fn by_delivery(c: &Case) {
    let mut s = c.store(6);
    let mut r = record("r1", "a");
    r.detail["delivery"] = json!("slack:Ev1");
    s.start_run(&r, &json!({})).unwrap();
    assert_eq!(
        s.run_for_delivery("slack:Ev1").unwrap().as_deref(),
        Some("r1")
    );
    assert_eq!(s.run_for_delivery("slack:Ev2").unwrap(), None);
}

fn notes(c: &Case) {
    let mut s = c.store(6);
    let mut r = record("r1", "a");
    s.start_run(&r, &json!({})).unwrap();
    s.note_run("r1", "start reply failed").unwrap();
    r.status = RunStatus::Succeeded;
    r.ended_at = Some(crate::now());
    r.detail["exit"] = json!({"code": 0, "signal": null});
    s.finish_run(&r).unwrap();
    let got = s.get_run("r1").unwrap();
    assert_eq!(got.detail["notes"], json!(["start reply failed"]));
    assert_eq!(got.detail["exit"]["code"], 0);
    assert_eq!(got.detail["injected"], r.detail["injected"]);
    s.note_run("r1", "end reply failed").unwrap();
    assert_eq!(
        s.get_run("r1").unwrap().detail["notes"],
        json!(["start reply failed", "end reply failed"])
    );
    assert!(s.note_run("nope", "x").is_err());
}

fn orphans(c: &Case) {
    let mut s = c.store(6);
    s.start_run(&record("r1", "a"), &json!({})).unwrap();
    if c.is_pg() {
        // Its node (this process) holds a fresh lease: not an orphan.
        assert!(s.mark_lost_runs(&|_| false).unwrap().is_empty());
        std::thread::sleep(c.lease() + std::time::Duration::from_millis(300));
        assert_eq!(s.reap().unwrap().lost, ["r1"]);
        // A node that finds its lease gone knows it.
        assert!(!s.heartbeat().unwrap());
        assert!(s.heartbeat().unwrap());
    } else {
        assert!(s.mark_lost_runs(&|_| true).unwrap().is_empty());
        assert_eq!(s.mark_lost_runs(&|_| false).unwrap(), ["r1"]);
    }
    assert_eq!(s.get_run("r1").unwrap().status, RunStatus::Lost);
    let ends = s
        .audit_list(None)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "run.end")
        .count();
    assert_eq!(ends, 1);
    assert!(matches!(
        s.audit_verify().unwrap(),
        AuditVerdict::Intact { .. }
    ));
}
