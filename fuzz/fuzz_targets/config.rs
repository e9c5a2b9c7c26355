//! Config files: whatever the text, parsing and validation never panic;
//! a refused file names at least one problem, each at a line and column
//! inside the text; an accepted file keeps the config crate's promise
//! that every agent a route, rule, hook or schedule names exists and takes
//! that kind of trigger, that a `comment.created` rule comes with the bot
//! user whose comments it ignores, and that the API endpoints a token is
//! sent to are HTTPS, or plain HTTP to this machine only, as the HTTP
//! clients themselves read the URL. Schedules go through the cron parser
//! while the file is read, as in `config check` and the daemon.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use supervisor_config::{Config, LinearOn, TriggerKind};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/supervisor/supervisor.toml");
    match Config::parse_with(text, path, &supervisor_triggers::CronCheck) {
        Ok(config) => accepted(&config),
        Err(e) => {
            let problems = e.problems();
            assert!(!problems.is_empty(), "refused without a reason");
            let lines = text.split('\n').count();
            for p in problems {
                assert!(p.line >= 1 && p.line <= lines, "line {} of {lines}", p.line);
                let width = text
                    .split('\n')
                    .nth(p.line - 1)
                    .map_or(0, |l| l.chars().count());
                assert!(
                    p.column >= 1 && p.column <= width + 1,
                    "column {} of {width}",
                    p.column
                );
            }
            let _ = e.to_string();
        }
    }
});

fn accepted(config: &Config) {
    let takes = |name: &str, kind: TriggerKind| {
        let agent = config
            .agent(name)
            .unwrap_or_else(|| panic!("agent `{name}` is not defined"));
        assert!(agent.allows(kind), "agent `{name}` does not take {kind}");
    };
    if let Some(slack) = &config.slack {
        slack
            .routes
            .iter()
            .for_each(|r| takes(&r.agent, TriggerKind::Slack));
        slack
            .default_agent
            .iter()
            .for_each(|a| takes(a, TriggerKind::Slack));
    }
    if let Some(slack) = &config.slack {
        // The Slack client appends the method to the base and parses the
        // result as a URL; hyper then takes it as a URI.
        let url = format!("{}/users.info", slack.api_base);
        if let Ok(u) = url::Url::parse(&url) {
            guarded(
                u.scheme(),
                u.host_str(),
                !u.username().is_empty() || u.password().is_some(),
                &url,
            );
        }
        if let Ok(u) = url.parse::<http::Uri>() {
            guarded(u.scheme_str().unwrap_or(""), u.host(), false, &url);
        }
    }
    if let Some(linear) = &config.linear {
        linear
            .rules
            .iter()
            .for_each(|r| takes(&r.agent, TriggerKind::Linear));
        let commented = linear
            .rules
            .iter()
            .any(|r| matches!(r.on, LinearOn::CommentCreated { .. }));
        assert!(
            !commented || linear.bot_user.is_some(),
            "a comment rule without the bot user"
        );
        // The Linear client sends its request to this URI.
        if let Ok(u) = linear.api_url.parse::<http::Uri>() {
            guarded(
                u.scheme_str().unwrap_or(""),
                u.host(),
                false,
                &linear.api_url,
            );
        }
    }
    config
        .webhooks
        .iter()
        .for_each(|w| takes(&w.agent, TriggerKind::Webhook));
    config
        .schedules
        .iter()
        .for_each(|s| takes(&s.agent, TriggerKind::Cron));
}

/// A token goes over HTTPS, or in plain HTTP only to this machine, and
/// never with credentials in the URL.
fn guarded(scheme: &str, host: Option<&str>, userinfo: bool, url: &str) {
    assert!(!userinfo, "credentials in {url:?}");
    match scheme {
        "https" => {}
        "http" => {
            let host = host.unwrap_or("");
            let local = matches!(host, "127.0.0.1" | "::1" | "[::1]" | "localhost");
            assert!(local, "plain http to {host:?} in {url:?}");
        }
        other => panic!("scheme {other:?} in {url:?}"),
    }
}
