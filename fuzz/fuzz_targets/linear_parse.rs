//! Linear webhooks as the daemon takes them: the signature checked first
//! (the verifier must accept exactly what the sender's own signing gives),
//! then, for a body it accepts, parsed, checked for freshness and routed.
//! Whatever the body, nothing panics, and a run is started only as the
//! scope rule allows: for an agent that takes Linear requests, never for a
//! comment by our own bot user or an app, and on behalf of a member only
//! when a person (an actor of type user, not our bot) is named by the
//! member's Linear id or, for a member without one, by email.

#![no_main]

use libfuzzer_sys::fuzz_target;
use supervisor_config::{Config, TriggerKind, UnknownUsers};
use supervisor_fuzz::delivery::Delivery;
use supervisor_fuzz::{fixture, sign};
use supervisor_triggers::linear::{self, ActorKind, Data, LinearWebhook};
use supervisor_triggers::{Decision, ReplyTarget};

/// The time the seeds are stamped with (`webhookTimestamp`, milliseconds).
const STAMP_MS: i64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Some(d) = Delivery::read(data) else {
        return;
    };
    let correct = sign::linear(d.body);
    let header = d.header(&correct);
    let verdict = linear::verify(sign::SECRET, header.as_deref(), d.body);
    d.check_verdict(
        &verdict,
        header.as_deref(),
        &correct,
        true,
        linear::SIGNATURE_HEADER,
    );
    if verdict.is_err() {
        return;
    }
    let Ok(w) = linear::parse(d.body) else { return };
    // The server's clock, off from the seeds' stamp by the input's skew
    // (in seconds, so either side of the 60 s window).
    let now_ms = STAMP_MS + d.skew * 1000;
    let fresh = linear::check_fresh(w.webhook_timestamp, now_ms);
    assert_eq!(
        fresh.is_ok(),
        w.webhook_timestamp.abs_diff(now_ms) <= linear::WINDOW_MS,
        "{fresh:?}"
    );
    if fresh.is_err() {
        return;
    }
    for config in fixture::configs() {
        check(&w, config, linear::route(&w, config));
    }
});

fn check(w: &LinearWebhook, config: &Config, decision: Decision) {
    let linear = config.linear.as_ref().expect("linear is configured");
    let Decision::Run(run) = decision else { return };
    assert_eq!(run.kind, TriggerKind::Linear);
    fixture::assert_takes(config, &run.agent, TriggerKind::Linear);
    let issue_id = match &w.data {
        Data::Issue(issue) => issue.id.clone(),
        Data::Comment(c) => {
            assert!(!c.bot_actor, "an app's comment started a run");
            assert!(
                c.user_id.is_none() || c.user_id.as_deref() != linear.bot_user.as_deref(),
                "our own comment started a run"
            );
            c.issue_id.clone()
        }
        Data::Other => panic!("neither an issue nor a comment started a run"),
    };
    assert_eq!(run.reply_to, Some(ReplyTarget::Linear { issue_id }));
    let person = w.actor.as_ref().filter(|a| {
        a.kind == ActorKind::User
            && (linear.bot_user.is_none() || a.id.as_deref() != linear.bot_user.as_deref())
    });
    match (&run.initiator, person) {
        (Some(name), None) => panic!("{name} ran for an actor that is no person: {:?}", w.actor),
        (Some(name), Some(actor)) => {
            let member = config.member(name).expect("a configured member");
            let by_id = actor.id.as_deref().is_some_and(|id| !id.is_empty())
                && member.linear_user.as_deref() == actor.id.as_deref();
            let by_email = member.linear_user.is_none()
                && member
                    .email
                    .as_deref()
                    .zip(actor.email.as_deref())
                    .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b.trim()));
            assert!(by_id || by_email, "{:?} ran as {name}", actor);
        }
        (None, Some(actor)) => {
            assert_eq!(
                linear.unknown_users,
                UnknownUsers::TeamOnly,
                "an unknown person ran under reject"
            );
            let id = actor.id.as_deref().filter(|i| !i.is_empty());
            assert!(
                id.is_none_or(|i| config
                    .members
                    .iter()
                    .all(|m| m.linear_user.as_deref() != Some(i))),
                "a member ran as nobody"
            );
            let email = actor
                .email
                .as_deref()
                .map(str::trim)
                .filter(|e| !e.is_empty());
            let named = |e: &str| {
                config.members.iter().any(|m| {
                    m.linear_user.is_none()
                        && m.email
                            .as_deref()
                            .is_some_and(|a| a.eq_ignore_ascii_case(e))
                })
            };
            assert!(
                !email.is_some_and(named),
                "a member found by email ran as nobody"
            );
        }
        (None, None) => {}
    }
}
