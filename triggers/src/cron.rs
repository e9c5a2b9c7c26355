//! Schedules written in crontab syntax, with the meaning crontab(5) gives
//! them, in an IANA time zone. The daemon asks [`CronSchedule::next_after`]
//! when to fire next; this module only computes times.
//!
//! # Syntax
//!
//! Five fields, `minute hour day-of-month month weekday`, or six with seconds
//! first; or a shorthand: `@hourly`, `@daily` (= `@midnight`), `@weekly`,
//! `@monthly`, `@yearly` (= `@annually`). `@reboot` is refused: schedules fire
//! at clock times, not when the supervisor starts. Fields take `*`, numbers,
//! `a-b` ranges, `*/n` and `a-b/n` steps, comma lists, and three-letter names
//! for months (`jan`) and weekdays (`mon`), in any case.
//!
//! # Meaning
//!
//! The `cron` crate computes the times, but it reads seconds first, numbers
//! weekdays 1-7 from Sunday and ANDs the two day fields. So this module reads
//! the crontab text itself, into explicit value lists, and hands the crate an
//! expression in which no field depends on how the crate reads it:
//! - weekdays are crontab's 0-7, with 0 and 7 both Sunday;
//! - when day-of-month and weekday are both restricted (neither field starts
//!   with `*`, crontab(5)'s test), a day matching EITHER fires: `0 0 1,15 * 5`
//!   fires on the 1st, on the 15th and on every Friday. That is the union of
//!   two crate schedules, one per day field, and the next firing is the
//!   earlier of the two. When either field starts with `*` both must match,
//!   as in crontab: `0 0 */2 * 1` fires on odd-numbered days that are Mondays.
//!
//! # Daylight saving time
//!
//! Fields are wall-clock time in the schedule's zone (UTC by default).
//! - A wall-clock time that does not exist, because clocks spring forward
//!   over it, is skipped: in Europe/Berlin `30 2 * * *` does not fire on the
//!   last Sunday of March, and `*/15 * * * *` fires at 01:45 and next at
//!   03:00. Pick a time outside the switch hour (or UTC) for a job that must
//!   run every day.
//! - A wall-clock time that happens twice, because clocks fall back, fires
//!   once, at its first occurrence. `30 2 * * *` fires once on the last
//!   Sunday of October; `*/15 * * * *` fires at 02:45 summer time and next at
//!   03:00 winter time, so it pauses for the repeated hour.
//!
//! Invariant: [`CronSchedule::next_after`] returns a time strictly after the
//! instant it is given, so successive firings strictly increase.

mod fields;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
mod zone;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
#[cfg(doc)]
use supervisor_config::Config;
use supervisor_config::{Fault, Schedule, ScheduleCheck, TriggerKind};

use crate::TriggerEvent;

use fields::{Field, Values};
pub use zone::{Zone, ZoneOffset};

/// A parsed crontab expression in a time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expression: String,
    timezone: Zone,
    /// The firing times are the union of these (two when crontab ORs the day
    /// fields, otherwise one).
    parts: Vec<::cron::Schedule>,
}

/// Why a schedule's expression or time zone was refused. Each message quotes
/// what was written and says how to write it instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error(
        "the cron expression is empty; write 5 fields (minute hour day month weekday), e.g. `0 6 * * *`, or a shorthand such as `@daily`"
    )]
    Empty,
    #[error(
        "`{expression}` has {count} fields; crontab takes 5 (minute hour day month weekday), or 6 with seconds first"
    )]
    FieldCount { expression: String, count: usize },
    #[error("`{expression}`: {field} {value} is out of range; {field} takes {takes}")]
    OutOfRange {
        expression: String,
        field: &'static str,
        value: String,
        takes: &'static str,
    },
    #[error(
        "`{expression}`: `{value}` is not a valid {field}; {field} takes {takes}{}",
        quartz_note(value)
    )]
    BadValue {
        expression: String,
        field: &'static str,
        value: String,
        takes: &'static str,
    },
    #[error(
        "`{expression}`: {field} range `{range}` runs backwards; crontab ranges do not wrap around: write `{split}`"
    )]
    BackwardRange {
        expression: String,
        field: &'static str,
        range: String,
        split: String,
    },
    #[error(
        "`{expression}`: {field} `{start}/{step}` has a step but no range; write `{start}-{max}/{step}` to step from {start}, or `*/{step}`"
    )]
    StepWithoutRange {
        expression: String,
        field: &'static str,
        start: String,
        step: String,
        max: u32,
    },
    #[error(
        "`{expression}`: {field} step `{step}` is not valid; a step is a whole number from 1 to {max} and does not carry over into the next {field}"
    )]
    BadStep {
        expression: String,
        field: &'static str,
        step: String,
        max: u32,
    },
    #[error(
        "`@reboot` is not supported: schedules fire at clock times, not when the supervisor starts; use a time such as `@daily` or `0 6 * * *`"
    )]
    Reboot,
    #[error(
        "`{expression}` is not a cron shorthand; use @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually"
    )]
    UnknownShorthand { expression: String },
    #[error(
        "`{expression}` never fires: none of its months has a day {day}; check the day-of-month and month fields"
    )]
    NeverFires { expression: String, day: u32 },
    #[error("unknown time zone `{timezone}`: {}", match suggestion {
        Some(name) => format!("did you mean `{name}`?"),
        None => "use an IANA name such as `UTC`, `Europe/Berlin` or `America/New_York`".to_owned(),
    })]
    UnknownTimezone {
        timezone: String,
        suggestion: Option<String>,
    },
    /// The crate refused the expression built from valid crontab text; a bug here.
    #[error("`{expression}` could not be prepared for scheduling: {reason}")]
    Translate { expression: String, reason: String },
}

fn quartz_note(value: &str) -> &'static str {
    if value.contains('?') {
        " (`?` is Quartz syntax; crontab writes `*`)"
    } else {
        ""
    }
}

impl CronSchedule {
    /// Parses crontab text read in the IANA time zone named `timezone`.
    pub fn parse(expression: &str, timezone: &str) -> Result<CronSchedule, CronError> {
        CronSchedule::with_timezone(expression, parse_timezone(timezone)?)
    }

    /// The schedule of a `[[schedules]]` entry.
    pub fn from_config(schedule: &Schedule) -> Result<CronSchedule, CronError> {
        CronSchedule::parse(&schedule.cron, &schedule.timezone)
    }

    /// Parses crontab text read in `timezone`.
    pub fn with_timezone(expression: &str, timezone: Zone) -> Result<CronSchedule, CronError> {
        let expression = expression.trim();
        if expression.is_empty() {
            return Err(CronError::Empty);
        }
        let text = if expression.starts_with('@') {
            shorthand(expression)?
        } else {
            expression
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let (second, rest) = match words.len() {
            5 => ("0", &words[..]),
            6 => (words[0], &words[1..]),
            count => {
                return Err(CronError::FieldCount {
                    expression: expression.to_owned(),
                    count,
                });
            }
        };
        let read = |text, field| fields::parse(text, field, expression);
        let times = Times {
            second: read(second, Field::Second)?,
            minute: read(rest[0], Field::Minute)?,
            hour: read(rest[1], Field::Hour)?,
            month: read(rest[3], Field::Month)?,
        };
        let day = read(rest[2], Field::DayOfMonth)?;
        let weekday = read(rest[4], Field::Weekday)?;

        let days_fit = day_fits_a_month(day, times.month);
        let plans = if !day.star && !weekday.star {
            // crontab ORs the day fields; a day-of-month that no month has
            // simply never matches, leaving the weekdays.
            let mut plans = vec![(None, Some(weekday))];
            if days_fit {
                plans.insert(0, (Some(day), None));
            }
            plans
        } else if days_fit {
            vec![(Some(day), Some(weekday))]
        } else {
            return Err(CronError::NeverFires {
                expression: expression.to_owned(),
                day: day.min().unwrap_or(1),
            });
        };
        let parts = plans
            .into_iter()
            .map(|(day, weekday)| {
                let text = times.crate_expression(day, weekday);
                ::cron::Schedule::from_str(&text).map_err(|e| CronError::Translate {
                    expression: expression.to_owned(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(CronSchedule {
            expression: expression.to_owned(),
            timezone,
            parts,
        })
    }

    /// The expression as written (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The zone the expression is read in; `.name()` gives its IANA name.
    pub fn timezone(&self) -> &Zone {
        &self.timezone
    }

    /// The first firing strictly after `after`, in the schedule's zone; `None`
    /// when there is none before the end of the year 2100.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Zone>> {
        self.parts
            .iter()
            .filter_map(|part| next_in(part, &self.timezone, after))
            .min()
    }

    /// The next `n` firings after `after` (fewer when the schedule ends).
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Zone>> {
        let mut out = Vec::with_capacity(n);
        let mut cursor = after;
        while out.len() < n {
            let Some(next) = self.next_after(cursor) else {
                break;
            };
            cursor = next.with_timezone(&Utc);
            out.push(next);
        }
        out
    }
}

/// The run a schedule asks for when it fires at `fired_at`: nobody behind
/// it (team secrets only), the schedule's prompt, and the firing in the run
/// context's `source.cron`.
pub fn event(schedule: &Schedule, cron: &CronSchedule, fired_at: &DateTime<Zone>) -> TriggerEvent {
    TriggerEvent {
        kind: TriggerKind::Cron,
        agent: schedule.agent.clone(),
        initiator: None,
        prompt: schedule.prompt.clone(),
        source: serde_json::json!({ "cron": {
            "schedule": schedule.name,
            "expression": cron.expression(),
            "timezone": cron.timezone().name(),
            "fired_at": fired_at.to_rfc3339(),
        } }),
        reply_to: None,
        delivery: None,
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expression, self.timezone.name())
    }
}

/// The checks of `[[schedules]]` entries that the config crate leaves to
/// this one: load a config with [`Config::load_with`]`(path, &CronCheck)`
/// and each bad expression and time zone is reported at its place, with
/// the config's other problems. The expression is checked on its own (in
/// UTC), so a bad time zone hides nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct CronCheck;

impl ScheduleCheck for CronCheck {
    fn cron(&self, expression: &str) -> Result<(), Fault> {
        CronSchedule::with_timezone(expression, Zone::UTC)
            .map(drop)
            .map_err(|e| e.fault())
    }

    fn timezone(&self, name: &str) -> Result<(), Fault> {
        parse_timezone(name).map(drop).map_err(|e| e.fault())
    }
}

impl CronError {
    /// The error as a config problem, with a hint on the syntax.
    pub fn fault(&self) -> Fault {
        let hint = match self {
            CronError::UnknownTimezone { .. } => {
                "IANA names are listed by `timedatectl list-timezones`; leave `timezone` out for UTC"
            }
            CronError::Translate { .. } => "please report this: the expression is valid crontab",
            _ => {
                "crontab(5): minute hour day-of-month month weekday, e.g. `30 6 * * mon-fri`; `supervisor schedules` shows the next firings"
            }
        };
        Fault {
            message: self.to_string(),
            hint: Some(hint.to_owned()),
        }
    }
}

/// An IANA zone name; a near miss in letter case is suggested.
pub fn parse_timezone(name: &str) -> Result<Zone, CronError> {
    Zone::get(name).map_err(|suggestion| CronError::UnknownTimezone {
        timezone: name.to_owned(),
        suggestion,
    })
}

fn shorthand(expression: &str) -> Result<&'static str, CronError> {
    Ok(match expression.to_ascii_lowercase().as_str() {
        "@hourly" => "0 * * * *",
        "@daily" | "@midnight" => "0 0 * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@reboot" => return Err(CronError::Reboot),
        _ => {
            return Err(CronError::UnknownShorthand {
                expression: expression.to_owned(),
            });
        }
    })
}

/// Whether the smallest day named exists in some month named (February
/// counts 29 days: leap years come).
fn day_fits_a_month(day: Values, month: Values) -> bool {
    let Some(first) = day.min() else { return false };
    month.iter().any(|m| {
        let days = match m {
            2 => 29,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        first <= days
    })
}

/// The fields every part shares.
struct Times {
    second: Values,
    minute: Values,
    hour: Values,
    month: Values,
}

impl Times {
    /// A 6-field expression for the `cron` crate: explicit lists, its weekday
    /// numbering (1-7 from Sunday), `*` for a day field left out.
    fn crate_expression(&self, day: Option<Values>, weekday: Option<Values>) -> String {
        let list = |values: Values, shift: u32| {
            values
                .iter()
                .map(|v| (v + shift).to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "{} {} {} {} {} {}",
            list(self.second, 0),
            list(self.minute, 0),
            list(self.hour, 0),
            day.map_or_else(|| "*".to_owned(), |d| list(d, 0)),
            list(self.month, 0),
            weekday.map_or_else(|| "*".to_owned(), |w| list(w, 1)),
        )
    }
}

/// The first firing of one crate schedule strictly after `after`.
///
/// The crate walks wall-clock time and, for a time that happens twice,
/// yields its first occurrence; a time that does not exist it skips. When
/// `after` lies in the second pass of a repeated hour (or one second before
/// it ends its first pass), the wall-clock time after it can be one whose
/// first occurrence is already past: that time has fired, so the search goes
/// on from its second occurrence. Wall-clock time only moves forward from
/// there, so the loop ends by the end of the repeated hour, after at most one
/// step per firing in that hour (3600 for an every-second schedule, once a
/// year).
fn next_in(part: &::cron::Schedule, zone: &Zone, after: DateTime<Utc>) -> Option<DateTime<Zone>> {
    let mut cursor = after.with_timezone(zone);
    loop {
        let candidate = part.after(&cursor).next()?;
        if candidate > after {
            return Some(candidate);
        }
        let second_pass = zone
            .from_local_datetime(&candidate.naive_local())
            .latest()
            .unwrap_or_else(|| candidate.clone());
        // Always move on, even were the zone data to surprise us.
        cursor = second_pass.max(cursor + TimeDelta::seconds(1));
    }
}
