//! Pins the crontab meaning of schedules, in UTC and across Europe/Berlin's
//! daylight saving switches (2026: 29 March and 25 October).

use std::str::FromStr;

use chrono::{DateTime, Datelike, TimeZone, Utc, Weekday};
use supervisor_config::Config;

use super::*;

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn schedule(expression: &str, zone: &str) -> CronSchedule {
    CronSchedule::parse(expression, zone).unwrap_or_else(|e| panic!("{expression}: {e}"))
}

/// The next `n` firings after `after`, as RFC 3339 text in the schedule's zone.
fn firings(expression: &str, zone: &str, after: &str, n: usize) -> Vec<String> {
    schedule(expression, zone)
        .upcoming(utc(after), n)
        .iter()
        .map(|t| t.to_rfc3339())
        .collect()
}

fn next(expression: &str, zone: &str, after: &str) -> String {
    firings(expression, zone, after, 1).remove(0)
}

fn error(expression: &str) -> String {
    CronSchedule::parse(expression, "UTC")
        .unwrap_err()
        .to_string()
}

#[test]
fn six_every_morning_in_utc_and_in_berlin() {
    assert_eq!(
        next("0 6 * * *", "UTC", "2026-03-02T05:00:00Z"),
        "2026-03-02T06:00:00+00:00"
    );
    // Strictly after: a firing at the given instant is not repeated.
    assert_eq!(
        next("0 6 * * *", "UTC", "2026-03-02T06:00:00Z"),
        "2026-03-03T06:00:00+00:00"
    );
    assert_eq!(
        next("0 6 * * *", "UTC", "2026-03-02T05:59:59.900Z"),
        "2026-03-02T06:00:00+00:00"
    );
    // 06:00 in Berlin is 05:00 UTC in winter and 04:00 UTC in summer.
    assert_eq!(
        next("0 6 * * *", "Europe/Berlin", "2026-03-02T04:30:00Z"),
        "2026-03-02T06:00:00+01:00"
    );
    assert_eq!(
        next("0 6 * * *", "Europe/Berlin", "2026-03-02T05:00:00Z"),
        "2026-03-03T06:00:00+01:00"
    );
    let summer = schedule("0 6 * * *", "Europe/Berlin")
        .next_after(utc("2026-07-01T00:00:00Z"))
        .unwrap();
    assert_eq!(summer.with_timezone(&Utc), utc("2026-07-01T04:00:00Z"));
}

#[test]
fn weekday_zero_and_seven_are_both_sunday() {
    let zero = firings("0 12 * * 0", "UTC", "2026-03-02T00:00:00Z", 3);
    let seven = firings("0 12 * * 7", "UTC", "2026-03-02T00:00:00Z", 3);
    let sun = firings("0 12 * * sun", "UTC", "2026-03-02T00:00:00Z", 3);
    assert_eq!(zero, seven);
    assert_eq!(zero, sun);
    assert_eq!(
        zero,
        [
            "2026-03-08T12:00:00+00:00",
            "2026-03-15T12:00:00+00:00",
            "2026-03-22T12:00:00+00:00"
        ]
    );
    // 5-7 is Friday to Sunday.
    let weekend = schedule("0 0 * * 5-7", "UTC").upcoming(utc("2026-03-02T00:00:00Z"), 6);
    let days: Vec<Weekday> = weekend.iter().map(|t| t.weekday()).collect();
    use Weekday::*;
    assert_eq!(days, [Fri, Sat, Sun, Fri, Sat, Sun]);
}

#[test]
fn working_days_skip_the_weekend() {
    assert_eq!(
        firings("* * * * 1-5", "UTC", "2026-03-06T23:58:00Z", 2),
        ["2026-03-06T23:59:00+00:00", "2026-03-09T00:00:00+00:00"]
    );
    let expected = [
        "2026-03-02T09:00:00+00:00",
        "2026-03-03T09:00:00+00:00",
        "2026-03-04T09:00:00+00:00",
        "2026-03-05T09:00:00+00:00",
        "2026-03-06T09:00:00+00:00",
        "2026-03-09T09:00:00+00:00",
    ];
    for expression in [
        "0 9 * * mon-fri",
        "0 9 * * Mon-Fri",
        "0 9 * * MON-FRI",
        "0 9 * * 1-5",
    ] {
        assert_eq!(
            firings(expression, "UTC", "2026-02-28T12:00:00Z", 6),
            expected,
            "{expression}"
        );
    }
}

#[test]
fn day_of_month_or_weekday_when_both_are_restricted() {
    // The 1st and the 15th (both Sundays in March 2026) and every Friday.
    assert_eq!(
        firings("0 0 1,15 * 5", "UTC", "2026-02-28T12:00:00Z", 7),
        [
            "2026-03-01T00:00:00+00:00",
            "2026-03-06T00:00:00+00:00",
            "2026-03-13T00:00:00+00:00",
            "2026-03-15T00:00:00+00:00",
            "2026-03-20T00:00:00+00:00",
            "2026-03-27T00:00:00+00:00",
            "2026-04-01T00:00:00+00:00",
        ]
    );
}

#[test]
fn friday_the_thirteenth_is_every_friday_and_every_thirteenth() {
    let got = schedule("0 0 13 * fri", "UTC").upcoming(utc("2026-03-01T00:00:00Z"), 8);
    let got: Vec<String> = got.iter().map(|t| t.date_naive().to_string()).collect();
    assert_eq!(
        got,
        [
            "2026-03-06",
            "2026-03-13",
            "2026-03-20",
            "2026-03-27",
            "2026-04-03",
            "2026-04-10",
            "2026-04-13", // a Monday
            "2026-04-17",
        ]
    );
    // The crate alone would AND the fields: only Friday the 13th.
    let and = ::cron::Schedule::from_str("0 0 0 13 * 6").unwrap();
    let raw: Vec<String> = and
        .after(&utc("2026-03-01T00:00:00Z"))
        .take(2)
        .map(|t| t.date_naive().to_string())
        .collect();
    assert_eq!(raw, ["2026-03-13", "2026-11-13"]);
}

#[test]
fn a_day_field_starting_with_a_star_is_anded_as_crontab_does() {
    // crontab(5) ORs only when neither field starts with `*`: odd days that are Mondays.
    let got = schedule("0 0 */2 * 1", "UTC").upcoming(utc("2026-03-01T00:00:00Z"), 3);
    for t in &got {
        assert_eq!(t.weekday(), Weekday::Mon, "{t}");
        assert_eq!(t.day() % 2, 1, "{t}");
    }
    assert_eq!(got[0].date_naive().to_string(), "2026-03-09");
    // A weekday field starting with `*` likewise.
    let got = schedule("0 0 1 * */2", "UTC").upcoming(utc("2026-01-01T00:00:00Z"), 2);
    for t in &got {
        assert_eq!(t.day(), 1, "{t}");
        assert!([Weekday::Sun, Weekday::Tue, Weekday::Thu, Weekday::Sat].contains(&t.weekday()));
    }
}

#[test]
fn every_quarter_hour_in_working_hours() {
    let got = firings("*/15 9-17 * * *", "UTC", "2026-03-02T08:50:00Z", 3);
    assert_eq!(
        got,
        [
            "2026-03-02T09:00:00+00:00",
            "2026-03-02T09:15:00+00:00",
            "2026-03-02T09:30:00+00:00"
        ]
    );
    assert_eq!(
        firings("*/15 9-17 * * *", "UTC", "2026-03-02T17:40:00Z", 2),
        ["2026-03-02T17:45:00+00:00", "2026-03-03T09:00:00+00:00"]
    );
}

#[test]
fn six_fields_put_seconds_first() {
    assert_eq!(
        firings("*/1 * * * * *", "UTC", "2026-03-02T10:00:58Z", 4),
        [
            "2026-03-02T10:00:59+00:00",
            "2026-03-02T10:01:00+00:00",
            "2026-03-02T10:01:01+00:00",
            "2026-03-02T10:01:02+00:00"
        ]
    );
    assert_eq!(
        next("30 0 6 * * *", "UTC", "2026-03-02T00:00:00Z"),
        "2026-03-02T06:00:30+00:00"
    );
    // The OR rule and the weekday numbering hold with seconds too.
    assert_eq!(
        firings("0 0 0 1 * 0", "UTC", "2026-03-02T00:00:00Z", 2),
        ["2026-03-08T00:00:00+00:00", "2026-03-15T00:00:00+00:00"]
    );
}

#[test]
fn shorthands() {
    let after = "2026-03-04T10:30:00Z";
    assert_eq!(next("@hourly", "UTC", after), "2026-03-04T11:00:00+00:00");
    assert_eq!(next("@daily", "UTC", after), "2026-03-05T00:00:00+00:00");
    assert_eq!(next("@midnight", "UTC", after), "2026-03-05T00:00:00+00:00");
    assert_eq!(next("@weekly", "UTC", after), "2026-03-08T00:00:00+00:00");
    assert_eq!(next("@monthly", "UTC", after), "2026-04-01T00:00:00+00:00");
    assert_eq!(next("@yearly", "UTC", after), "2027-01-01T00:00:00+00:00");
    assert_eq!(next("@annually", "UTC", after), "2027-01-01T00:00:00+00:00");
    assert_eq!(
        next("@daily", "Europe/Berlin", after),
        "2026-03-05T00:00:00+01:00"
    );
    assert_eq!(schedule(" @daily ", "UTC").expression(), "@daily");
}

#[test]
fn month_names_and_steps_on_ranges() {
    assert_eq!(
        firings("0 0 1 jan,JUL *", "UTC", "2026-03-02T00:00:00Z", 2),
        ["2026-07-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"]
    );
    assert_eq!(
        firings("0 0 1 Jun-aug *", "UTC", "2026-03-02T00:00:00Z", 3),
        [
            "2026-06-01T00:00:00+00:00",
            "2026-07-01T00:00:00+00:00",
            "2026-08-01T00:00:00+00:00"
        ]
    );
    assert_eq!(
        firings("0 1-10/3 * * *", "UTC", "2026-03-02T00:00:00Z", 5),
        [
            "2026-03-02T01:00:00+00:00",
            "2026-03-02T04:00:00+00:00",
            "2026-03-02T07:00:00+00:00",
            "2026-03-02T10:00:00+00:00",
            "2026-03-03T01:00:00+00:00"
        ]
    );
    let days: Vec<Weekday> = schedule("0 0 * * 1-5/2", "UTC")
        .upcoming(utc("2026-03-01T00:00:00Z"), 4)
        .iter()
        .map(|t| t.weekday())
        .collect();
    assert_eq!(
        days,
        [Weekday::Mon, Weekday::Wed, Weekday::Fri, Weekday::Mon]
    );
}

#[test]
fn bad_expressions_say_what_and_how() {
    assert_eq!(
        error("*/5 * * *"),
        "`*/5 * * *` has 4 fields; crontab takes 5 (minute hour day month weekday), or 6 with seconds first"
    );
    assert!(
        error("0 0 0 * * * * *").starts_with("`0 0 0 * * * * *` has 8 fields; crontab takes 5")
    );
    assert!(error("0 0 0 * * * 2030").contains("has 7 fields"));
    assert_eq!(
        error("60 * * * *"),
        "`60 * * * *`: minute 60 is out of range; minute takes 0-59"
    );
    assert_eq!(
        error("* * * * 8"),
        "`* * * * 8`: weekday 8 is out of range; weekday takes 0-7 (0 and 7 are Sunday) or sun-sat"
    );
    assert_eq!(
        error("* 24 * * *"),
        "`* 24 * * *`: hour 24 is out of range; hour takes 0-23"
    );
    assert!(error("* * 0 * *").contains("day of month 0 is out of range; day of month takes 1-31"));
    assert!(error("* * * 13 *").contains("month 13 is out of range; month takes 1-12 or jan-dec"));
    assert!(error("@reboot").starts_with("`@reboot` is not supported"));
    assert!(error("@fortnightly").contains("`@fortnightly` is not a cron shorthand; use @hourly"));
    assert!(error("").contains("empty"));
    assert!(error("   ").contains("empty"));
    assert_eq!(
        error("* * * * monday"),
        "`* * * * monday`: `monday` is not a valid weekday; weekday takes 0-7 (0 and 7 are Sunday) or sun-sat"
    );
    assert!(error("0 0 ? * mon").contains("`?` is Quartz syntax; crontab writes `*`"));
    assert!(error("0 0 L * *").contains("`L` is not a valid day of month"));
    assert!(error("0 22-2 * * *").contains(
        "hour range `22-2` runs backwards; crontab ranges do not wrap around: write `22-23,0-2`"
    ));
    assert!(error("0 0 * * fri-mon").contains("write `5-7,1`"));
    assert_eq!(
        error("5/15 * * * *"),
        "`5/15 * * * *`: minute `5/15` has a step but no range; write `5-59/15` to step from 5, or `*/15`"
    );
    assert!(error("0 0 * * mon/2").contains("write `mon-7/2` to step from mon, or `*/2`"));
    assert!(error("*/0 * * * *").contains("minute step `0` is not valid"));
    assert!(error("*/90 * * * *").contains("a step is a whole number from 1 to 59"));
    assert_eq!(
        error("0 0 30 2 *"),
        "`0 0 30 2 *` never fires: none of its months has a day 30; check the day-of-month and month fields"
    );
}

#[test]
fn unknown_time_zones_are_refused_with_a_suggestion() {
    let e = CronSchedule::parse("0 6 * * *", "Europe/Berln").unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown time zone `Europe/Berln`: did you mean `Europe/Berlin`?"
    );
    let e = CronSchedule::parse("0 6 * * *", "Mars/Olympus").unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown time zone `Mars/Olympus`: use an IANA name such as `UTC`, `Europe/Berlin` or `America/New_York`"
    );
    let e = CronSchedule::parse("0 6 * * *", "europe/berlin").unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown time zone `europe/berlin`: did you mean `Europe/Berlin`?"
    );
    assert!(CronSchedule::parse("0 6 * * *", "").is_err());
    assert!(CronSchedule::parse("0 6 * * *", "+02:00").is_err());
}

#[test]
fn valid_but_rare_days() {
    // The 31st exists only in some months; crontab silently skips the rest.
    assert_eq!(
        firings("0 0 31 * *", "UTC", "2026-03-31T12:00:00Z", 2),
        ["2026-05-31T00:00:00+00:00", "2026-07-31T00:00:00+00:00"]
    );
    assert_eq!(
        next("0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z"),
        "2028-02-29T00:00:00+00:00"
    );
    // February has no 31st, but the weekday half of the OR still fires.
    assert_eq!(
        next("0 0 31 2 mon", "UTC", "2026-01-01T00:00:00Z"),
        "2026-02-02T00:00:00+00:00"
    );
    // The crate's calendar ends with 2100.
    let yearly = schedule("@yearly", "UTC");
    assert_eq!(yearly.upcoming(utc("2099-06-01T00:00:00Z"), 3).len(), 1);
    assert_eq!(yearly.next_after(utc("2100-06-01T00:00:00Z")), None);
}

#[test]
fn the_crate_alone_skips_gaps_and_fires_twice_in_a_repeated_hour() {
    // Why next_in exists: what the crate does with Berlin's switches.
    let berlin = Zone::get("Europe/Berlin").unwrap();
    let raw = ::cron::Schedule::from_str("0 30 2 * * *").unwrap();
    let spring: Vec<String> = raw
        .after(&berlin.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap())
        .take(1)
        .map(|t| t.to_rfc3339())
        .collect();
    assert_eq!(spring, ["2026-03-30T02:30:00+02:00"]);
    let autumn: Vec<String> = raw
        .after(&berlin.with_ymd_and_hms(2026, 10, 24, 12, 0, 0).unwrap())
        .take(3)
        .map(|t| t.to_rfc3339())
        .collect();
    assert_eq!(
        autumn,
        [
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:30:00+01:00",
            "2026-10-26T02:30:00+01:00"
        ]
    );
}

#[test]
fn a_time_in_the_spring_gap_is_skipped_that_day() {
    let z = "Europe/Berlin";
    assert_eq!(
        firings("30 2 * * *", z, "2026-03-27T12:00:00Z", 2),
        ["2026-03-28T02:30:00+01:00", "2026-03-30T02:30:00+02:00"]
    );
    assert_eq!(
        firings("*/15 * * * *", z, "2026-03-29T00:40:00Z", 3),
        [
            "2026-03-29T01:45:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-29T03:15:00+02:00"
        ]
    );
    // Times on either side of the gap fire as usual.
    assert_eq!(
        next("0 3 * * *", z, "2026-03-28T12:00:00Z"),
        "2026-03-29T03:00:00+02:00"
    );
    assert_eq!(
        next("59 1 * * *", z, "2026-03-28T12:00:00Z"),
        "2026-03-29T01:59:00+01:00"
    );
}

#[test]
fn a_time_in_the_repeated_autumn_hour_fires_once() {
    let z = "Europe/Berlin";
    assert_eq!(
        firings("30 2 * * *", z, "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    );
    // Several times an hour: the repeated hour is not run again.
    assert_eq!(
        firings("*/15 * * * *", z, "2026-10-25T00:40:00Z", 2),
        ["2026-10-25T02:45:00+02:00", "2026-10-25T03:00:00+01:00"]
    );
    // Asked during the second pass (02:10 winter time), 02:15 has fired already.
    assert_eq!(
        next("*/15 * * * *", z, "2026-10-25T01:10:00Z"),
        "2026-10-25T03:00:00+01:00"
    );
    assert_eq!(
        next("30 2 * * *", z, "2026-10-25T01:10:00Z"),
        "2026-10-26T02:30:00+01:00"
    );
    // Every second: one second before the clocks fall back, and right at it.
    assert_eq!(
        next("* * * * * *", z, "2026-10-25T00:59:58Z"),
        "2026-10-25T02:59:59+02:00"
    );
    assert_eq!(
        next("* * * * * *", z, "2026-10-25T00:59:59Z"),
        "2026-10-25T03:00:00+01:00"
    );
}

#[test]
fn keeps_the_expression_and_zone_for_display() {
    let s = schedule("  0 6 * * mon-fri ", "Europe/Berlin");
    assert_eq!(s.expression(), "0 6 * * mon-fri");
    assert_eq!(s.timezone(), &Zone::get("Europe/Berlin").unwrap());
    assert_eq!(s.timezone().name(), "Europe/Berlin");
    assert_eq!(s.to_string(), "0 6 * * mon-fri (Europe/Berlin)");
}

#[test]
fn config_schedules_are_checked_in_place() {
    let text = r#"
[team]
name = "t"
[[agents]]
name = "a"
command = ["/bin/true"]
triggers = ["cron"]
[[schedules]]
name = "good"
cron = "0 6 * * *"
timezone = "Europe/Berlin"
agent = "a"
[[schedules]]
name = "four-fields"
cron = "*/5 * * *"
agent = "a"
[[schedules]]
name = "nowhere"
cron = "61 * * *"
timezone = "Mars/Olympus"
agent = "a"
"#;
    let path = std::path::Path::new("supervisor.toml");
    let err = Config::parse_with(text, path, &CronCheck).unwrap_err();
    let p: Vec<(usize, usize, &str)> = err
        .problems()
        .iter()
        .map(|p| (p.line, p.column, p.message.as_str()))
        .collect();
    // The bad zone hides nothing of the expression.
    assert_eq!(p.len(), 3, "{p:?}");
    assert_eq!((p[0].0, p[0].1), (15, 8), "{p:?}");
    assert!(p[0].2.contains("has 4 fields"), "{p:?}");
    assert_eq!((p[1].0, p[1].1), (19, 8), "{p:?}");
    assert!(p[1].2.contains("has 4 fields"), "{p:?}");
    assert_eq!((p[2].0, p[2].1), (20, 12), "{p:?}");
    assert!(p[2].2.contains("unknown time zone `Mars/Olympus`"), "{p:?}");
    assert!(err.problems().iter().all(|p| p.hint.is_some()));

    let config = Config::parse(text, path).unwrap();
    let good = CronSchedule::from_config(config.schedule("good").unwrap()).unwrap();
    assert_eq!(good.timezone().name(), "Europe/Berlin");
}
