//! Slack's Events API as the daemon takes it: the signature and time
//! window checked first (the verifier must accept exactly what the
//! sender's own signing gives, on time), then, for a request it accepts,
//! the body parsed and routed. Whatever the body, nothing panics, and a
//! run is started only as the scope rule allows: never for a bot or our
//! own bot user, for an agent that takes Slack requests, and on behalf of
//! a member only when that member's Slack id (or, for a member without
//! one, the email looked up) names them.

#![no_main]

use libfuzzer_sys::fuzz_target;
use supervisor_config::{Config, TriggerKind, UnknownUsers};
use supervisor_fuzz::delivery::Delivery;
use supervisor_fuzz::{fixture, sign};
use supervisor_triggers::slack::{self, Mention, SlackRequest};
use supervisor_triggers::{Decision, ReplyTarget};

/// The server's clock.
const NOW: i64 = 1_531_420_618;

/// Emails `users.info` may answer with: a member without a Slack id, one
/// with an id (whom an email must not name), and nobody.
const EMAILS: [Option<&str>; 4] = [
    None,
    Some(" morgan@EXAMPLE.com "),
    Some("carol@example.com"),
    Some("stranger@example.com"),
];

fuzz_target!(|data: &[u8]| {
    let Some(d) = Delivery::read(data) else {
        return;
    };
    let timestamp = (NOW + d.skew).to_string();
    let correct = sign::slack(&timestamp, d.body);
    let header = d.header(&correct);
    let verdict = slack::verify(
        sign::SECRET,
        Some(&timestamp),
        header.as_deref(),
        d.body,
        NOW,
    );
    let fresh = d.skew.unsigned_abs() <= slack::WINDOW_SECS;
    d.check_verdict(
        &verdict,
        header.as_deref(),
        &correct,
        fresh,
        slack::SIGNATURE_HEADER,
    );
    if verdict.is_err() {
        return;
    }
    let Ok(SlackRequest::AppMention(m)) = slack::parse(d.body) else {
        return;
    };
    for config in fixture::configs() {
        for email in EMAILS {
            check(&m, config, email, slack::route(&m, config, email));
        }
    }
});

fn check(m: &Mention, config: &Config, email: Option<&str>, decision: Decision) {
    let slack = config.slack.as_ref().expect("slack is configured");
    let Decision::Run(run) = decision else { return };
    assert_eq!(run.kind, TriggerKind::Slack);
    fixture::assert_takes(config, &run.agent, TriggerKind::Slack);
    assert!(
        m.bot_id.is_none() && m.subtype.as_deref() != Some("bot_message"),
        "a bot started a run"
    );
    let user = m.user.as_deref().expect("a run has a user");
    assert!(!user.is_empty());
    assert!(
        slack.bot_user.as_deref() != Some(user) && m.our_bot_user.as_deref() != Some(user),
        "our own bot started a run"
    );
    match &run.initiator {
        Some(name) => {
            let member = config.member(name).expect("a configured member");
            let by_id = member.slack_user.as_deref() == Some(user);
            let by_email = member.slack_user.is_none()
                && member
                    .email
                    .as_deref()
                    .zip(email)
                    .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b.trim()));
            assert!(by_id || by_email, "{user} ({email:?}) ran as {name}");
        }
        None => {
            assert_eq!(
                slack.unknown_users,
                UnknownUsers::TeamOnly,
                "an unknown user ran under reject"
            );
            assert!(
                config
                    .members
                    .iter()
                    .all(|m| m.slack_user.as_deref() != Some(user)),
                "a member ran as nobody"
            );
            let named = |e: &str| {
                config.members.iter().any(|mm| {
                    mm.slack_user.is_none()
                        && mm
                            .email
                            .as_deref()
                            .is_some_and(|a| a.eq_ignore_ascii_case(e.trim()))
                })
            };
            assert!(
                !email.is_some_and(named),
                "a member found by email ran as nobody"
            );
        }
    }
    let thread_ts = m.thread_ts.clone().unwrap_or_else(|| m.ts.clone());
    assert_eq!(
        run.reply_to,
        Some(ReplyTarget::Slack {
            channel: m.channel.clone(),
            thread_ts
        })
    );
}
