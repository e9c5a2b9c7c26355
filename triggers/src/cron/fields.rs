//! One crontab field to the set of values it names, with crontab(5) syntax:
//! `*`, numbers, three-letter names (months and weekdays), ranges `a-b`,
//! steps `*/n` and `a-b/n`, and comma lists of these.
//!
//! Weekdays are read over 0-7 as crontab does (so `*/2` is Sunday, Tuesday,
//! Thursday, Saturday) and 7 is then folded onto 0: both are Sunday.

use super::CronError;

/// Which of the six fields is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    Weekday,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Field {
    pub(super) fn name(self) -> &'static str {
        match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day of month",
            Field::Month => "month",
            Field::Weekday => "weekday",
        }
    }

    /// What the field accepts, for error messages.
    pub(super) fn takes(self) -> &'static str {
        match self {
            Field::Second | Field::Minute => "0-59",
            Field::Hour => "0-23",
            Field::DayOfMonth => "1-31",
            Field::Month => "1-12 or jan-dec",
            Field::Weekday => "0-7 (0 and 7 are Sunday) or sun-sat",
        }
    }

    fn min(self) -> u32 {
        match self {
            Field::DayOfMonth | Field::Month => 1,
            _ => 0,
        }
    }

    /// The largest value written; for weekdays 7, an alias of 0.
    fn max(self) -> u32 {
        match self {
            Field::Second | Field::Minute => 59,
            Field::Hour => 23,
            Field::DayOfMonth => 31,
            Field::Month => 12,
            Field::Weekday => 7,
        }
    }

    /// Names and the value of the first one.
    fn names(self) -> Option<(&'static [&'static str], u32)> {
        match self {
            Field::Month => Some((&MONTHS, 1)),
            Field::Weekday => Some((&WEEKDAYS, 0)),
            _ => None,
        }
    }
}

/// The values one field names (bit n set: value n).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Values {
    bits: u64,
    /// The field's text starts with `*`. crontab(5) calls a day field
    /// restricted only when it does not, so `*/2` counts as unrestricted in
    /// the day-of-month/weekday rule even though it names only some days.
    pub(super) star: bool,
}

impl Values {
    pub(super) fn contains(self, value: u32) -> bool {
        value < 64 && self.bits & (1 << value) != 0
    }

    pub(super) fn iter(self) -> impl Iterator<Item = u32> {
        (0..64).filter(move |&v| self.contains(v))
    }

    pub(super) fn min(self) -> Option<u32> {
        self.iter().next()
    }
}

/// Reads one field. `expression` is the whole expression, quoted in errors.
pub(super) fn parse(text: &str, field: Field, expression: &str) -> Result<Values, CronError> {
    let mut bits = 0u64;
    for item in text.split(',') {
        bits |= item_bits(item, text, field, expression)?;
    }
    if field == Field::Weekday && bits & (1 << 7) != 0 {
        bits = (bits & !(1 << 7)) | 1;
    }
    Ok(Values {
        bits,
        star: text.starts_with('*'),
    })
}

fn item_bits(item: &str, text: &str, field: Field, expression: &str) -> Result<u64, CronError> {
    let bad_value = |value: &str| CronError::BadValue {
        expression: expression.to_owned(),
        field: field.name(),
        value: if value.is_empty() { text } else { value }.to_owned(),
        takes: field.takes(),
    };
    let (base, step) = match item.split_once('/') {
        Some((base, step)) => (base, Some(step)),
        None => (item, None),
    };
    let (low, high, is_range) = if base == "*" {
        (field.min(), field.max(), true)
    } else if let Some((a, b)) = base.split_once('-') {
        let (low, high) = (
            value(a, field, expression, bad_value)?,
            value(b, field, expression, bad_value)?,
        );
        if low > high {
            return Err(CronError::BackwardRange {
                expression: expression.to_owned(),
                field: field.name(),
                range: base.to_owned(),
                split: wrapped(field, low, high),
            });
        }
        (low, high, true)
    } else {
        let v = value(base, field, expression, bad_value)?;
        (v, v, false)
    };
    let step = match step {
        None => 1,
        Some(s) if !is_range => {
            return Err(CronError::StepWithoutRange {
                expression: expression.to_owned(),
                field: field.name(),
                start: base.to_owned(),
                step: s.to_owned(),
                max: field.max(),
            });
        }
        Some(s) => match s.parse::<u32>() {
            Ok(n)
                if s.bytes().all(|b| b.is_ascii_digit())
                    && (1..=field.max() - field.min()).contains(&n) =>
            {
                n
            }
            _ => {
                return Err(CronError::BadStep {
                    expression: expression.to_owned(),
                    field: field.name(),
                    step: s.to_owned(),
                    max: field.max() - field.min(),
                });
            }
        },
    };
    Ok((low..=high)
        .step_by(step as usize)
        .fold(0u64, |bits, v| bits | 1 << v))
}

/// A number or a name, checked against the field's range.
fn value(
    text: &str,
    field: Field,
    expression: &str,
    bad_value: impl Fn(&str) -> CronError,
) -> Result<u32, CronError> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let out_of_range = |value| CronError::OutOfRange {
            expression: expression.to_owned(),
            field: field.name(),
            value,
            takes: field.takes(),
        };
        let n: u32 = text.parse().map_err(|_| out_of_range(text.to_owned()))?;
        if n < field.min() || n > field.max() {
            return Err(out_of_range(n.to_string()));
        }
        return Ok(n);
    }
    let (names, first) = field.names().ok_or_else(|| bad_value(text))?;
    names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
        .map(|i| first + i as u32)
        .ok_or_else(|| bad_value(text))
}

/// How to write a range that would wrap around the end of the field.
fn wrapped(field: Field, low: u32, high: u32) -> String {
    match field {
        // 7 is Sunday, so a week wrapping onto Sunday ends at 7.
        Field::Weekday if high == 0 => format!("{low}-7"),
        Field::Weekday if high == 1 => format!("{low}-7,1"),
        Field::Weekday => format!("{low}-7,1-{high}"),
        _ => format!("{low}-{},{}-{high}", field.max(), field.min()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str, field: Field) -> Vec<u32> {
        parse(text, field, text).unwrap().iter().collect()
    }

    #[test]
    fn reads_crontab_syntax() {
        assert_eq!(set("*/15", Field::Minute), vec![0, 15, 30, 45]);
        assert_eq!(set("1-10/3", Field::Minute), vec![1, 4, 7, 10]);
        assert_eq!(set("5,1-2", Field::Hour), vec![1, 2, 5]);
        assert_eq!(set("*", Field::DayOfMonth), (1..=31).collect::<Vec<_>>());
        assert_eq!(set("*/10", Field::DayOfMonth), vec![1, 11, 21, 31]);
        assert_eq!(set("jan,Mar,DEC", Field::Month), vec![1, 3, 12]);
        assert_eq!(set("jun-aug", Field::Month), vec![6, 7, 8]);
        assert_eq!(set("jan-dec/3", Field::Month), vec![1, 4, 7, 10]);
    }

    #[test]
    fn weekdays_are_read_over_zero_to_seven() {
        assert_eq!(set("0", Field::Weekday), vec![0]);
        assert_eq!(set("7", Field::Weekday), vec![0]);
        assert_eq!(set("5-7", Field::Weekday), vec![0, 5, 6]);
        assert_eq!(set("0-6", Field::Weekday), (0..=6).collect::<Vec<_>>());
        assert_eq!(set("0-7", Field::Weekday), (0..=6).collect::<Vec<_>>());
        assert_eq!(set("*", Field::Weekday), (0..=6).collect::<Vec<_>>());
        assert_eq!(set("*/2", Field::Weekday), vec![0, 2, 4, 6]);
        assert_eq!(set("1-7/2", Field::Weekday), vec![0, 1, 3, 5]);
        assert_eq!(set("mon-fri", Field::Weekday), vec![1, 2, 3, 4, 5]);
        assert_eq!(set("Sun,sat", Field::Weekday), vec![0, 6]);
    }

    #[test]
    fn star_marks_unrestricted_day_fields() {
        assert!(parse("*", Field::DayOfMonth, "").unwrap().star);
        assert!(parse("*/2", Field::DayOfMonth, "").unwrap().star);
        assert!(!parse("1-31", Field::DayOfMonth, "").unwrap().star);
    }

    #[test]
    fn refuses_what_crontab_refuses() {
        let err = |text: &str, field| parse(text, field, text).unwrap_err();
        assert!(matches!(
            err("60", Field::Minute),
            CronError::OutOfRange { .. }
        ));
        assert!(matches!(
            err("0", Field::DayOfMonth),
            CronError::OutOfRange { .. }
        ));
        assert!(matches!(
            err("99999999999", Field::Hour),
            CronError::OutOfRange { .. }
        ));
        assert!(matches!(
            err("8", Field::Weekday),
            CronError::OutOfRange { .. }
        ));
        assert!(matches!(
            err("mon", Field::Hour),
            CronError::BadValue { .. }
        ));
        assert!(matches!(
            err("monday", Field::Weekday),
            CronError::BadValue { .. }
        ));
        assert!(matches!(
            err("?", Field::DayOfMonth),
            CronError::BadValue { .. }
        ));
        assert!(matches!(
            err("1,,2", Field::Minute),
            CronError::BadValue { .. }
        ));
        assert!(matches!(
            err("-1", Field::Minute),
            CronError::BadValue { .. }
        ));
        assert!(matches!(
            err("5-1", Field::Hour),
            CronError::BackwardRange { .. }
        ));
        assert!(matches!(
            err("5/15", Field::Minute),
            CronError::StepWithoutRange { .. }
        ));
        assert!(matches!(
            err("*/0", Field::Minute),
            CronError::BadStep { .. }
        ));
        assert!(matches!(
            err("*/60", Field::Minute),
            CronError::BadStep { .. }
        ));
        assert!(matches!(
            err("*/x", Field::Minute),
            CronError::BadStep { .. }
        ));
        assert!(matches!(
            err("*/+1", Field::Minute),
            CronError::BadStep { .. }
        ));
    }

    #[test]
    fn wrapped_ranges_get_a_written_out_fix() {
        assert_eq!(wrapped(Field::Hour, 22, 2), "22-23,0-2");
        assert_eq!(wrapped(Field::Weekday, 6, 0), "6-7");
        assert_eq!(wrapped(Field::Weekday, 5, 1), "5-7,1");
        assert_eq!(wrapped(Field::Weekday, 5, 2), "5-7,1-2");
    }
}
