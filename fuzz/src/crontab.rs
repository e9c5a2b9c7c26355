//! A direct reading of crontab(5) for the cron target: expressions built
//! from parts whose meaning is known, written out in the ways crontab
//! allows, and the firing after an instant found by walking the calendar
//! day by day, with chrono-tz (a reader of the IANA data that shares no
//! code with the supervisor's) mapping wall-clock times to instants.
//!
//! The meaning is the one the triggers crate documents: weekdays 0-7 with
//! 0 and 7 both Sunday; when neither day field starts with `*` a day
//! matching either fires, else both must match; a wall-clock time that
//! does not exist is skipped; one that happens twice fires once, at its
//! first occurrence.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use libfuzzer_sys::arbitrary::{self, Arbitrary};

/// Zones with every kind of rule whose future the IANA data has kept for
/// years: DST north and south, half-hour and 45-minute offsets, a
/// half-hour DST shift, negative DST, switches at midnight, and none.
pub const ZONES: [&str; 12] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Europe/Dublin",
    "America/St_Johns",
    "Asia/Tokyo",
    "Pacific/Chatham",
    "America/Havana",
    "America/Santiago",
];

/// One comma-separated item of a field.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Item {
    Star,
    Value(u8),
    Range(u8, u8),
    /// `*/n` (no range) or `a-b/n`.
    Step(Option<(u8, u8)>, u8),
}

/// A five- or six-field expression, or a shorthand.
#[derive(Debug, Clone, Arbitrary)]
pub enum Expression {
    Fields {
        second: Option<Vec<Item>>,
        minute: Vec<Item>,
        hour: Vec<Item>,
        day: Vec<Item>,
        month: Vec<Item>,
        weekday: Vec<Item>,
        /// Bit 0: months by name; 1: weekdays by name; 2: names in capitals;
        /// 3: tabs and runs of spaces between fields; 4: space around it all.
        style: u8,
    },
    /// `@hourly` and its kin, in some letter case.
    Shorthand { which: u8, capitals: bool },
}

struct Field {
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The value the first name stands for.
    first_name: u32,
}

const SECOND: Field = Field {
    min: 0,
    max: 59,
    names: &[],
    first_name: 0,
};
const MINUTE: Field = SECOND;
const HOUR: Field = Field {
    min: 0,
    max: 23,
    names: &[],
    first_name: 0,
};
const DAY: Field = Field {
    min: 1,
    max: 31,
    names: &[],
    first_name: 0,
};
const MONTH: Field = Field {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
    first_name: 1,
};
const WEEKDAY: Field = Field {
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    first_name: 0,
};

/// An item brought into its field's range.
fn fit(item: Item, f: &Field) -> Item {
    let span = f.max - f.min + 1;
    let v = |x: u8| f.min + u32::from(x) % span;
    let ordered = |(a, b): (u8, u8)| {
        let (a, b) = (v(a), v(b));
        (a.min(b) as u8, a.max(b) as u8)
    };
    match item {
        Item::Star => Item::Star,
        Item::Value(x) => Item::Value(v(x) as u8),
        Item::Range(a, b) => {
            let (a, b) = ordered((a, b));
            Item::Range(a, b)
        }
        Item::Step(range, s) => Item::Step(
            range.map(ordered),
            (1 + u32::from(s) % (f.max - f.min)) as u8,
        ),
    }
}

fn fitted(items: &[Item], f: &Field) -> Vec<Item> {
    let items: Vec<Item> = items.iter().take(4).map(|&i| fit(i, f)).collect();
    if items.is_empty() {
        vec![Item::Star]
    } else {
        items
    }
}

fn bits(items: &[Item], f: &Field) -> u64 {
    let mut out = 0u64;
    let mut add = |from: u32, to: u32, step: usize| {
        for v in (from..=to).step_by(step) {
            out |= 1 << v;
        }
    };
    for &item in items {
        match item {
            Item::Star => add(f.min, f.max, 1),
            Item::Value(v) => add(u32::from(v), u32::from(v), 1),
            Item::Range(a, b) => add(u32::from(a), u32::from(b), 1),
            Item::Step(None, s) => add(f.min, f.max, usize::from(s)),
            Item::Step(Some((a, b)), s) => add(u32::from(a), u32::from(b), usize::from(s)),
        }
    }
    out
}

fn render(items: &[Item], f: &Field, names: bool, capitals: bool) -> String {
    let name = |v: u8| {
        let v = u32::from(v);
        match f.names.get(v.wrapping_sub(f.first_name) as usize) {
            Some(n) if names && v >= f.first_name => {
                if capitals {
                    n.to_ascii_uppercase()
                } else {
                    (*n).to_owned()
                }
            }
            _ => v.to_string(),
        }
    };
    items
        .iter()
        .map(|&item| match item {
            Item::Star => "*".to_owned(),
            Item::Value(v) => name(v),
            Item::Range(a, b) => format!("{}-{}", name(a), name(b)),
            Item::Step(None, s) => format!("*/{s}"),
            Item::Step(Some((a, b)), s) => format!("{}-{}/{s}", name(a), name(b)),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// What an expression means, read directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Model {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    /// Sunday is 0 (a 7 written is folded onto it).
    weekdays: u64,
    /// Neither day field starts with `*`: a day matching either fires.
    either: bool,
}

impl Expression {
    /// The text to parse and what it means.
    pub fn write(&self) -> (String, Model) {
        match self {
            Expression::Shorthand { which, capitals } => {
                const SHORTHANDS: [(&str, &str); 7] = [
                    ("@hourly", "0 * * * *"),
                    ("@daily", "0 0 * * *"),
                    ("@midnight", "0 0 * * *"),
                    ("@weekly", "0 0 * * 0"),
                    ("@monthly", "0 0 1 * *"),
                    ("@yearly", "0 0 1 1 *"),
                    ("@annually", "0 0 1 1 *"),
                ];
                let (name, fields) = SHORTHANDS[usize::from(*which) % SHORTHANDS.len()];
                let star = [Item::Star];
                let one = |v| [Item::Value(v)];
                let [_, hour, day, month, weekday]: [&str; 5] = fields
                    .split(' ')
                    .collect::<Vec<_>>()
                    .try_into()
                    .expect("five fields");
                let pick = |text: &str, v: u8| if text == "*" { star } else { one(v) };
                let model = model(
                    None,
                    &one(0),
                    &pick(hour, 0),
                    &pick(day, 1),
                    &pick(month, 1),
                    &pick(weekday, 0),
                    false,
                );
                let text = if *capitals {
                    name.to_ascii_uppercase()
                } else {
                    name.to_owned()
                };
                (text, model)
            }
            Expression::Fields {
                second,
                minute,
                hour,
                day,
                month,
                weekday,
                style,
            } => {
                let second = second.as_ref().map(|s| fitted(s, &SECOND));
                let minute = fitted(minute, &MINUTE);
                let hour = fitted(hour, &HOUR);
                let day = fitted(day, &DAY);
                let month = fitted(month, &MONTH);
                let weekday = fitted(weekday, &WEEKDAY);
                let capitals = style & 4 != 0;
                let weekday_text = render(&weekday, &WEEKDAY, style & 2 != 0, capitals);
                let day_text = render(&day, &DAY, false, false);
                let mut fields: Vec<String> = second
                    .iter()
                    .map(|s| render(s, &SECOND, false, false))
                    .collect();
                fields.extend([
                    render(&minute, &MINUTE, false, false),
                    render(&hour, &HOUR, false, false),
                    day_text.clone(),
                    render(&month, &MONTH, style & 1 != 0, capitals),
                    weekday_text.clone(),
                ]);
                let gap = if style & 8 != 0 { " \t  " } else { " " };
                let mut text = fields.join(gap);
                if style & 16 != 0 {
                    text = format!(" \t{text}\t ");
                }
                let either = !day_text.starts_with('*') && !weekday_text.starts_with('*');
                let model = model(
                    second.as_deref(),
                    &minute,
                    &hour,
                    &day,
                    &month,
                    &weekday,
                    either,
                );
                (text, model)
            }
        }
    }
}

fn model(
    second: Option<&[Item]>,
    minute: &[Item],
    hour: &[Item],
    day: &[Item],
    month: &[Item],
    weekday: &[Item],
    either: bool,
) -> Model {
    let mut weekdays = bits(weekday, &WEEKDAY);
    if weekdays & (1 << 7) != 0 {
        weekdays = (weekdays & !(1 << 7)) | 1;
    }
    Model {
        seconds: second.map_or(1, |s| bits(s, &SECOND)),
        minutes: bits(minute, &MINUTE),
        hours: bits(hour, &HOUR),
        days: bits(day, &DAY),
        months: bits(month, &MONTH),
        weekdays,
        either,
    }
}

fn has(set: u64, v: u32) -> bool {
    set & (1 << v) != 0
}

fn each(set: u64) -> impl Iterator<Item = u32> {
    (0..64).filter(move |&v| has(set, v))
}

/// The last day any schedule can fire: the `cron` crate's calendar ends
/// with the year 2100.
pub fn last_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2100, 12, 31).expect("a date")
}

impl Model {
    fn date_matches(&self, d: NaiveDate) -> bool {
        let by_day = has(self.days, d.day());
        let by_weekday = has(self.weekdays, d.weekday().num_days_from_sunday());
        let day = if self.either {
            by_day || by_weekday
        } else {
            by_day && by_weekday
        };
        day && has(self.months, d.month())
    }

    /// The first firing strictly after `after`, read in `zone`.
    ///
    /// A wall-clock time `l` at or before `after`'s own has its first
    /// occurrence at or before `after` (first occurrences keep the order of
    /// wall-clock times), so the walk starts at `after`'s wall-clock time;
    /// past it, a time whose first occurrence is not after `after` (in the
    /// second pass of a repeated hour) has fired already.
    pub fn next(&self, zone: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&zone).naive_local();
        let mut date = local.date();
        while date <= last_day() {
            if self.date_matches(date)
                && let Some(t) = self.first_in_day(zone, after, local, date)
            {
                return Some(t);
            }
            date = date.succ_opt()?;
        }
        None
    }

    fn first_in_day(
        &self,
        zone: Tz,
        after: DateTime<Utc>,
        local: NaiveDateTime,
        date: NaiveDate,
    ) -> Option<DateTime<Utc>> {
        let at = |h, m, s| date.and_hms_opt(h, m, s).expect("a valid time");
        for h in each(self.hours) {
            if at(h, 59, 59) < local.with_nanosecond(0)? {
                continue;
            }
            for m in each(self.minutes) {
                if at(h, m, 59) < local.with_nanosecond(0)? {
                    continue;
                }
                for s in each(self.seconds) {
                    let wall = at(h, m, s);
                    if wall <= local {
                        continue;
                    }
                    if let Some(t) = zone.from_local_datetime(&wall).earliest() {
                        let t = t.with_timezone(&Utc);
                        if t > after {
                            return Some(t);
                        }
                    }
                }
            }
        }
        None
    }
}
