//! Times as a person would say them: "just now", "5 minutes ago",
//! "10:00am", "yesterday", "3 days ago", "1 week ago", "Oct 3, 2026"; and
//! as tables show them, local and to the second.

use chrono::{DateTime, Local, TimeZone, Utc};

/// Describes `then` as seen at `now`, in the local time zone.
pub fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    ago_in(then, now, &Local)
}

/// [`ago`] in a given time zone (tests pin it).
pub fn ago_in<Tz: TimeZone>(then: DateTime<Utc>, now: DateTime<Utc>, tz: &Tz) -> String {
    let secs = (now - then).num_seconds();
    if secs < 60 {
        // Also covers a clock that moved backwards a little.
        return "just now".into();
    }
    if secs < 3600 {
        let m = secs / 60;
        return format!("{m} minute{} ago", plural(m));
    }
    let (then_l, now_l) = (then.with_timezone(tz), now.with_timezone(tz));
    let days = (now_l.date_naive() - then_l.date_naive()).num_days();
    match days {
        0 => then_l.naive_local().format("%-I:%M%P").to_string(),
        1 => "yesterday".into(),
        2..=6 => format!("{days} days ago"),
        7..=27 => {
            let w = days / 7;
            format!("{w} week{} ago", plural(w))
        }
        _ => then_l.naive_local().format("%b %-d, %Y").to_string(),
    }
}

/// A moment as local wall-clock time to the second, for tables:
/// "2026-11-28 15:30:02" (`--json` keeps RFC 3339 in UTC).
pub fn local(t: DateTime<Utc>) -> String {
    local_in(t, &Local)
}

fn local_in<Tz: TimeZone>(t: DateTime<Utc>, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    t.with_timezone(tz).format("%Y-%m-%d %H:%M:%S").to_string()
}

fn plural(n: i64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, FixedOffset};

    #[test]
    fn reads_as_a_person_would_say_it() {
        let tz = FixedOffset::east_opt(0).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 15, 30, 0).unwrap();
        let cases = [
            (Duration::seconds(5), "just now"),
            (Duration::seconds(-5), "just now"),
            (Duration::minutes(1), "1 minute ago"),
            (Duration::minutes(5), "5 minutes ago"),
            (Duration::minutes(330), "10:00am"),
            (Duration::hours(15), "12:30am"),
            (Duration::hours(20), "yesterday"),
            (Duration::days(3), "3 days ago"),
            (Duration::days(7), "1 week ago"),
            (Duration::days(20), "2 weeks ago"),
            (Duration::days(56), "Oct 3, 2026"),
        ];
        for (back, want) in cases {
            assert_eq!(ago_in(now - back, now, &tz), want, "{back:?}");
        }
    }

    #[test]
    fn local_times_read_to_the_second() {
        let t = Utc.with_ymd_and_hms(2026, 11, 28, 15, 30, 2).unwrap();
        let tz = FixedOffset::east_opt(3600).unwrap();
        assert_eq!(local_in(t, &tz), "2026-11-28 16:30:02");
    }

    #[test]
    fn days_follow_the_local_calendar() {
        // 23:30 the day before, seen at 00:30 local: yesterday, not "1 hour".
        let tz = FixedOffset::east_opt(3600).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 23, 30, 0).unwrap();
        assert_eq!(ago_in(now - Duration::hours(2), now, &tz), "yesterday");
    }
}
