//! Delivery claims: once per window, by any of their keys, with their work
//! kept until finished or released; across handles as across nodes.

use super::{Case, CaseFn};
use crate::Deliveries;

pub(super) const CASES: &[(&str, CaseFn)] = &[
    (
        "a_delivery_is_claimed_once_within_its_window",
        once_within_window,
    ),
    ("each_source_prunes_with_its_own_window", own_window),
    (
        "a_delivery_known_by_two_keys_is_a_duplicate_by_either",
        two_keys,
    ),
    ("a_claim_keeps_its_work_until_finished_or_released", work),
    ("claims_race_from_many_threads_and_one_wins", race),
    ("claims_still_holding_their_work_are_found_by_age", stale),
];

fn open(c: &Case) -> Deliveries {
    Deliveries::open_at(&c.location, &c.state_dir()).unwrap()
}

fn once_within_window(c: &Case) {
    drop(c.store(8));
    let mut d = open(c);
    assert!(d.claim("slack", &["Ev1"], 1000, 3600).unwrap());
    assert!(!d.claim("slack", &["Ev1"], 1001, 3600).unwrap());
    assert!(d.claim("linear", &["Ev1"], 1001, 3600).unwrap());
    drop(d);
    let mut d = open(c);
    assert!(!d.claim("slack", &["Ev1"], 2000, 3600).unwrap());
    // After the window the entry is pruned.
    assert!(d.claim("slack", &["Ev1"], 1000 + 3601, 3600).unwrap());
}

fn own_window(c: &Case) {
    drop(c.store(8));
    let mut d = open(c);
    assert!(d.claim("linear", &["L1"], 1000, 86_400).unwrap());
    // A webhook claim with a 15-minute window, much later, prunes only
    // webhook claims: Linear's day-long window holds.
    assert!(d.claim("webhook", &["W1"], 1000 + 3600, 900).unwrap());
    assert!(!d.claim("linear", &["L1"], 1000 + 3601, 86_400).unwrap());
}

fn two_keys(c: &Case) {
    drop(c.store(8));
    let mut d = open(c);
    assert!(
        d.claim("linear", &["sig:a", "delivery:1"], 1000, 600)
            .unwrap()
    );
    // The same signed body under a new delivery id, or under none.
    assert!(
        !d.claim("linear", &["sig:a", "delivery:2"], 1001, 600)
            .unwrap()
    );
    assert!(!d.claim("linear", &["sig:a"], 1001, 600).unwrap());
    // A refused claim claimed nothing: delivery 2 is still free.
    assert!(
        d.claim("linear", &["sig:b", "delivery:2"], 1002, 600)
            .unwrap()
    );
}

fn work(c: &Case) {
    drop(c.store(8));
    let mut d = open(c);
    assert!(
        d.claim_work("webhook", &["alerts:s1"], 1000, 900, "alerts", b"{}")
            .unwrap()
    );
    assert!(
        d.claim_work("slack", &["Ev1"], 1001, 3600, "", b"body")
            .unwrap()
    );
    // A duplicate keeps nothing new.
    assert!(
        !d.claim_work("slack", &["Ev1"], 1002, 3600, "", b"other")
            .unwrap()
    );
    drop(d);
    let mut d = open(c);
    let pending = d.pending().unwrap();
    if c.is_pg() {
        // A node never adopts its own work: it is in flight there (the
        // work of dead nodes is adopted, see the cluster cases).
        assert!(pending.is_empty(), "{pending:?}");
        finish_and_release(&mut d);
        return;
    }
    assert_eq!(pending.len(), 2);
    assert_eq!(
        (
            pending[0].source.as_str(),
            pending[0].meta.as_str(),
            &pending[0].body[..]
        ),
        ("webhook", "alerts", &b"{}"[..])
    );
    assert_eq!(pending[1].body, b"body");
    finish_and_release(&mut d);
    assert!(d.pending().unwrap().is_empty());
}

fn finish_and_release(d: &mut Deliveries) {
    d.finish("slack", "Ev1").unwrap();
    d.release("webhook", &["alerts:s1"]).unwrap();
    // Finished is still claimed; released is not.
    assert!(!d.claim("slack", &["Ev1"], 1003, 3600).unwrap());
    assert!(d.claim("webhook", &["alerts:s1"], 1003, 900).unwrap());
    assert!(!d.claim("webhook", &["alerts:s1"], 1004, 900).unwrap());
}

fn race(c: &Case) {
    drop(c.store(8));
    // Eight handles (as eight nodes would) claim the same 50 deliveries.
    let won = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                let mut d = open(c);
                for i in 0..50 {
                    let key = format!("sig:{i}");
                    let delivery = format!("delivery:{i}");
                    let claimed = loop {
                        match d.claim("linear", &[&key, &delivery], 5000, 600) {
                            Ok(b) => break b,
                            // SQLite's writers may find the file busy.
                            Err(crate::StoreError::Sqlite(_)) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    };
                    if claimed {
                        won.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(won.into_inner(), 50);
}

fn stale(c: &Case) {
    drop(c.store(8));
    let mut d = open(c);
    assert!(
        d.claim_work("webhook", &["h:old"], 1000, 900, "h", b"old")
            .unwrap()
    );
    assert!(
        d.claim_work("webhook", &["h:new"], 1100, 900, "h", b"new")
            .unwrap()
    );
    assert!(d.claim("slack", &["Ev1"], 900, 3600).unwrap());
    let found = d.stale(1070, 60).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].key.as_str(), &found[0].body[..]),
        ("h:old", &b"old"[..])
    );
    d.finish("webhook", "h:old").unwrap();
    assert!(d.stale(1070, 60).unwrap().is_empty());
    assert_eq!(d.stale(2000, 60).unwrap().len(), 1);
}
