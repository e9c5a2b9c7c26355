//! `supervisor schedules`: each schedule of the config with its next
//! firings in its own time zone, or why it cannot fire. Reads the config
//! only: no store, no key.

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use supervisor_config::Schedule;
use supervisor_triggers::CronSchedule;

use super::print;
use crate::context::Context;
use crate::fail::Failure;

/// How many firings are shown per schedule.
pub const UPCOMING: usize = 3;

/// One schedule as `--json` prints it.
#[derive(Debug, Serialize)]
struct Listed<'a> {
    name: &'a str,
    agent: &'a str,
    cron: &'a str,
    timezone: &'a str,
    overlap: &'a str,
    /// RFC 3339 with the zone's offset; empty when the schedule cannot fire.
    next: Vec<String>,
    /// Why it cannot fire (`null` when it can).
    error: Option<String>,
}

fn listed(s: &Schedule, now: DateTime<Utc>) -> Listed<'_> {
    let (next, error) = match CronSchedule::from_config(s) {
        Ok(cron) => (
            cron.upcoming(now, UPCOMING)
                .iter()
                .map(|t| t.to_rfc3339())
                .collect(),
            None,
        ),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    Listed {
        name: &s.name,
        agent: &s.agent,
        cron: &s.cron,
        timezone: &s.timezone,
        overlap: s.overlap.as_str(),
        next,
        error,
    }
}

/// Prints the schedules; fails (exit 1) after printing them all when one
/// of them cannot be used, so that scripts notice.
pub fn list(ctx: &Context, json: bool) -> Result<()> {
    let now = Utc::now();
    let all: Vec<Listed<'_>> = ctx
        .config
        .schedules
        .iter()
        .map(|s| listed(s, now))
        .collect();
    if json {
        print::json(&all)?;
    } else if all.is_empty() {
        println!("(no schedules: add [[schedules]] entries to the config)");
    } else {
        for (i, s) in all.iter().enumerate() {
            if i > 0 {
                println!();
            }
            print_one(s);
        }
    }
    let broken = all.iter().filter(|s| s.error.is_some()).count();
    if broken > 0 {
        return Err(Failure::new(format!(
            "{broken} schedule(s) cannot fire; the daemon skips them"
        ))
        .hint("`supervisor config check` reports every problem of the config")
        .into());
    }
    Ok(())
}

fn print_one(s: &Listed<'_>) {
    println!("{}", s.name);
    println!("  agent     {}", s.agent);
    println!("  cron      {}", s.cron);
    println!("  timezone  {}", s.timezone);
    println!("  overlap   {}", s.overlap);
    if let Some(e) = &s.error {
        println!("  error     {e}");
        return;
    }
    if s.next.is_empty() {
        println!("  next      none (the schedule has no further firings)");
    }
    for (i, t) in s.next.iter().enumerate() {
        println!("  {}{t}", if i == 0 { "next      " } else { "          " });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use supervisor_config::Overlap;

    fn schedule(cron: &str, timezone: &str) -> Schedule {
        Schedule {
            name: "s".into(),
            cron: cron.into(),
            timezone: timezone.into(),
            agent: "a".into(),
            prompt: None,
            overlap: Overlap::Skip,
        }
    }

    #[test]
    fn next_firings_carry_the_zone_offset() {
        let now = Utc.with_ymd_and_hms(2026, 3, 27, 12, 0, 0).unwrap();
        let s = schedule("30 6 * * *", "Europe/Berlin");
        let l = listed(&s, now);
        // Berlin springs forward on Sunday 2026-03-29.
        assert_eq!(
            l.next,
            [
                "2026-03-28T06:30:00+01:00",
                "2026-03-29T06:30:00+02:00",
                "2026-03-30T06:30:00+02:00"
            ]
        );
        assert_eq!(l.error, None);
    }

    #[test]
    fn a_broken_schedule_shows_its_error() {
        let now = Utc::now();
        let s = schedule("0 6 * *", "UTC");
        let l = listed(&s, now);
        assert!(l.next.is_empty());
        assert!(l.error.unwrap().contains("4 fields"));
        let s = schedule("0 6 * * *", "Europe/Berln");
        assert!(listed(&s, now).error.unwrap().contains("Europe/Berln"));
    }
}
