//! Schedules: crontab text in an IANA time zone. Expressions built from
//! known parts must parse and fire exactly when a direct reading of
//! crontab(5) says, across daylight saving time switches; any other text
//! must be refused or, when accepted, fire at strictly increasing times
//! that `next_after` finds again from just before each one.

#![no_main]

use chrono::{DateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use supervisor_fuzz::crontab::{Expression, ZONES};
use supervisor_triggers::{CronError, CronSchedule};

#[derive(Debug, Arbitrary)]
enum Case {
    /// Built from parts whose meaning is known.
    Known {
        expression: Expression,
        zone: u8,
        after: Instant,
    },
    /// Any text, in a known zone or any named one.
    Text {
        expression: String,
        zone: ZoneName,
        after: Instant,
    },
}

#[derive(Debug, Arbitrary)]
enum ZoneName {
    Known(u8),
    Written(String),
}

/// An instant from 2000 to 2099, to the nanosecond (the daemon asks from
/// the clock's own time).
#[derive(Debug, Arbitrary)]
struct Instant {
    seconds: u32,
    nanos: u32,
}

impl Instant {
    fn get(&self) -> DateTime<Utc> {
        const START: i64 = 946_684_800; // 2000-01-01
        const SPAN: i64 = 100 * 365 * 86_400;
        DateTime::from_timestamp(
            START + i64::from(self.seconds) % SPAN,
            self.nanos % 1_000_000_000,
        )
        .expect("in range")
    }
}

/// Firings asked for per case.
const FIRINGS: usize = 4;

fuzz_target!(|case: Case| match case {
    Case::Known {
        expression,
        zone,
        after,
    } => known(
        &expression,
        ZONES[usize::from(zone) % ZONES.len()],
        after.get()
    ),
    Case::Text {
        expression,
        zone,
        after,
    } => {
        let zone = match &zone {
            ZoneName::Known(i) => ZONES[usize::from(*i) % ZONES.len()],
            ZoneName::Written(name) => name.as_str(),
        };
        text(&expression, zone, after.get());
    }
});

fn known(expression: &Expression, zone_name: &str, after: DateTime<Utc>) {
    let (text, model) = expression.write();
    let zone: Tz = zone_name.parse().expect("a zone chrono-tz knows");
    let mut expected = Vec::new();
    let mut cursor = after;
    while expected.len() < FIRINGS {
        let Some(t) = model.next(zone, cursor) else {
            break;
        };
        expected.push(t);
        cursor = t;
    }
    let schedule = match CronSchedule::parse(&text, zone_name) {
        Ok(s) => s,
        Err(CronError::NeverFires { .. }) => {
            assert!(
                expected.is_empty(),
                "`{text}` refused as never firing, yet fires at {expected:?}"
            );
            return;
        }
        Err(e) => panic!("`{text}` refused: {e}"),
    };
    let got: Vec<DateTime<Utc>> = schedule
        .upcoming(after, FIRINGS)
        .into_iter()
        .map(|t| t.with_timezone(&Utc))
        .collect();
    let instants = std::iter::once(after)
        .chain(got.iter().copied())
        .chain(expected.iter().copied());
    if got != expected && !same_rules(&schedule, zone, instants) {
        // The host's time zone data and chrono-tz's differ here: a newer
        // release of the IANA data, not a scheduling question.
        return;
    }
    assert_eq!(got, expected, "`{text}` in {zone_name} after {after}");
    found_again(&schedule, &got);
}

/// Whether the host's zone data (which the schedule reads) and chrono-tz's
/// give the same offsets at these instants.
fn same_rules(
    schedule: &CronSchedule,
    zone: Tz,
    mut instants: impl Iterator<Item = DateTime<Utc>>,
) -> bool {
    instants.all(|t| {
        let ours = schedule
            .timezone()
            .offset_from_utc_datetime(&t.naive_utc())
            .fix();
        ours == zone.offset_from_utc_datetime(&t.naive_utc()).fix()
    })
}

fn text(expression: &str, zone: &str, after: DateTime<Utc>) {
    let schedule = match CronSchedule::parse(expression, zone) {
        Ok(s) => s,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = schedule.to_string();
    let got: Vec<DateTime<Utc>> = schedule
        .upcoming(after, FIRINGS)
        .into_iter()
        .map(|t| t.with_timezone(&Utc))
        .collect();
    let mut previous = after;
    for &t in &got {
        assert!(
            t > previous,
            "`{expression}` in {zone}: {t} follows {previous}"
        );
        previous = t;
    }
    found_again(&schedule, &got);
}

/// Each firing is the first one after the second before it.
fn found_again(schedule: &CronSchedule, firings: &[DateTime<Utc>]) {
    for &t in firings {
        let again = schedule
            .next_after(t - TimeDelta::seconds(1))
            .map(|n| n.with_timezone(&Utc));
        assert_eq!(
            again,
            Some(t),
            "`{}` from the second before {t}",
            schedule.expression()
        );
    }
}
