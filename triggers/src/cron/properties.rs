//! Random crontab expressions against a direct reading of crontab(5).

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;

use super::{CronError, CronSchedule};

#[derive(Debug, Clone)]
enum Item {
    Star,
    Value(u32),
    Range(u32, u32),
    Step(Option<(u32, u32)>, u32),
}

fn item(min: u32, max: u32) -> impl Strategy<Value = Item> {
    let ordered = |(a, b): (u32, u32)| (a.min(b), a.max(b));
    prop_oneof![
        1 => Just(Item::Star),
        3 => (min..=max).prop_map(Item::Value),
        3 => (min..=max, min..=max).prop_map(move |r| {
            let (a, b) = ordered(r);
            Item::Range(a, b)
        }),
        2 => (proptest::option::of((min..=max, min..=max)), 1..=max - min)
            .prop_map(move |(r, step)| Item::Step(r.map(ordered), step)),
    ]
}

fn field(min: u32, max: u32) -> impl Strategy<Value = Vec<Item>> {
    proptest::collection::vec(item(min, max), 1..=3)
}

/// Renders a field; weekdays and months as names where `names` says so.
fn render(items: &[Item], names: Option<(&[&str], u32)>) -> String {
    let word = |v: u32| match names {
        Some((names, first)) if v >= first && v - first < names.len() as u32 => {
            names[(v - first) as usize].to_owned()
        }
        _ => v.to_string(),
    };
    items
        .iter()
        .map(|i| match i {
            Item::Star => "*".to_owned(),
            Item::Value(v) => word(*v),
            Item::Range(a, b) => format!("{}-{}", word(*a), word(*b)),
            Item::Step(None, s) => format!("*/{s}"),
            Item::Step(Some((a, b)), s) => format!("{}-{}/{s}", word(*a), word(*b)),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn model(items: &[Item], min: u32, max: u32) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for i in items {
        match *i {
            Item::Star => out.extend(min..=max),
            Item::Value(v) => {
                out.insert(v);
            }
            Item::Range(a, b) => out.extend(a..=b),
            Item::Step(None, s) => out.extend((min..=max).step_by(s as usize)),
            Item::Step(Some((a, b)), s) => out.extend((a..=b).step_by(s as usize)),
        }
    }
    out
}

fn weekdays(items: &[Item]) -> BTreeSet<u32> {
    model(items, 0, 7).into_iter().map(|d| d % 7).collect()
}

const WEEKDAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn restricted() -> impl Strategy<Value = Vec<Item>> {
    field(0, 7).prop_filter("must not start with `*`", |items| {
        !matches!(items[0], Item::Star | Item::Step(None, _))
    })
}

proptest! {
    #[test]
    fn restricted_weekdays_only_fire_on_those_weekdays(
        minute in field(0, 59),
        hour in field(0, 23),
        weekday in restricted(),
        as_names in any::<bool>(),
        berlin in any::<bool>(),
        start in 1_700_000_000i64..2_000_000_000,
    ) {
        let names = as_names.then_some((&WEEKDAY_NAMES[..], 0));
        let expression = format!(
            "{} {} * * {}",
            render(&minute, None),
            render(&hour, None),
            render(&weekday, names)
        );
        let zone = if berlin { "Europe/Berlin" } else { "UTC" };
        let s = CronSchedule::parse(&expression, zone)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let allowed = weekdays(&weekday);
        let after = Utc.timestamp_opt(start, 0).unwrap();
        let got = s.upcoming(after, 20);
        prop_assert_eq!(got.len(), 20);
        let mut previous = after;
        for t in got {
            prop_assert!(t > previous, "{} not after {}", t, previous);
            previous = t.with_timezone(&Utc);
            prop_assert!(
                allowed.contains(&t.weekday().num_days_from_sunday()),
                "{} fired on {} ({:?})", expression, t, allowed
            );
        }
    }

    #[test]
    fn firings_match_a_direct_reading_of_crontab(
        second in proptest::option::of(field(0, 59)),
        minute in field(0, 59),
        hour in field(0, 23),
        day in field(1, 31),
        month in field(1, 12),
        weekday in field(0, 7),
        as_names in any::<bool>(),
        start in NaiveDate::from_ymd_opt(2020, 1, 1).unwrap().num_days_from_ce()
            ..NaiveDate::from_ymd_opt(2040, 1, 1).unwrap().num_days_from_ce(),
    ) {
        let (month_names, weekday_names) = if as_names {
            (Some((&MONTH_NAMES[..], 1)), Some((&WEEKDAY_NAMES[..], 0)))
        } else {
            (None, None)
        };
        let day_text = render(&day, None);
        let weekday_text = render(&weekday, weekday_names);
        let mut expression = format!(
            "{} {} {} {} {}",
            render(&minute, None),
            render(&hour, None),
            day_text,
            render(&month, month_names),
            weekday_text
        );
        if let Some(second) = &second {
            expression = format!("{} {expression}", render(second, None));
        }
        let seconds = second.as_deref().map_or_else(|| BTreeSet::from([0]), |s| model(s, 0, 59));
        let (minutes, hours) = (model(&minute, 0, 59), model(&hour, 0, 23));
        let (days, months, weekdays) = (model(&day, 1, 31), model(&month, 1, 12), weekdays(&weekday));
        let either = !day_text.starts_with('*') && !weekday_text.starts_with('*');

        // Brute force over four years, day by day, the first 12 firings.
        let first_day = NaiveDate::from_num_days_from_ce_opt(start).unwrap();
        let window = 4 * 366;
        let mut expected = Vec::new();
        'days: for date in first_day.iter_days().take(window) {
            let by_day = days.contains(&date.day());
            let by_weekday = weekdays.contains(&date.weekday().num_days_from_sunday());
            let day_matches = if either { by_day || by_weekday } else { by_day && by_weekday };
            if !months.contains(&date.month()) || !day_matches {
                continue;
            }
            for &h in &hours {
                for &m in &minutes {
                    for &s in &seconds {
                        expected.push(Utc.from_utc_datetime(&date.and_hms_opt(h, m, s).unwrap()));
                        if expected.len() == 12 {
                            break 'days;
                        }
                    }
                }
            }
        }

        match CronSchedule::parse(&expression, "UTC") {
            Err(CronError::NeverFires { .. }) => prop_assert!(expected.is_empty(), "{}", expression),
            Err(e) => prop_assert!(false, "{} refused: {}", expression, e),
            Ok(s) => {
                let end = Utc.from_utc_datetime(
                    &(first_day + chrono::Days::new(window as u64)).and_hms_opt(0, 0, 0).unwrap(),
                );
                let after = Utc.from_utc_datetime(&first_day.and_hms_opt(0, 0, 0).unwrap())
                    - TimeDelta::seconds(1);
                let got: Vec<DateTime<Utc>> = s
                    .upcoming(after, 12)
                    .into_iter()
                    .map(|t| t.with_timezone(&Utc))
                    .filter(|t| *t < end)
                    .collect();
                prop_assert_eq!(got, expected, "{}", expression);
            }
        }
    }
}
