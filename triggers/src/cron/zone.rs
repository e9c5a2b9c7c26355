//! IANA time zones for schedules, as a chrono [`TimeZone`] that the `cron`
//! crate can walk.
//!
//! Zone rules come from the host's time zone database (`/usr/share/zoneinfo`,
//! or `$TZDIR`), read when a schedule is parsed, with a copy built into the
//! binary for hosts that have none. A database compiled into tables of Rust
//! values (chrono-tz) would cost every start of the binary, whatever the
//! command: its tables hold about a megabyte of pointers that the dynamic
//! loader relocates before `main`.

use std::fmt;

use chrono::{FixedOffset, MappedLocalTime, NaiveDate, NaiveDateTime, Offset, TimeZone};

/// A time zone of the IANA database, by its canonical name.
#[derive(Clone, PartialEq, Eq)]
pub struct Zone {
    tz: jiff::tz::TimeZone,
}

impl Zone {
    /// Coordinated Universal Time.
    pub const UTC: Zone = Zone {
        tz: jiff::tz::TimeZone::UTC,
    };

    /// The zone named `name` exactly (letter case included), or `Err` with the
    /// name it most likely meant: the canonical spelling when only the case
    /// differs, else a near miss among the database's names (`None` when
    /// nothing is near).
    pub fn get(name: &str) -> Result<Zone, Option<String>> {
        let tz = jiff::tz::TimeZone::get(name.trim()).map_err(|_| {
            let db = jiff::tz::db();
            let names: Vec<String> = db.available().map(|n| n.as_str().to_owned()).collect();
            supervisor_config::near_miss(name.trim(), names.iter().map(String::as_str))
                .map(str::to_owned)
        })?;
        match tz.iana_name() {
            Some(canonical) if canonical == name => Ok(Zone { tz }),
            Some(canonical) => Err(Some(canonical.to_owned())),
            None => Err(None),
        }
    }

    /// The IANA name, such as `Europe/Berlin`.
    pub fn name(&self) -> &str {
        self.tz.iana_name().unwrap_or("UTC")
    }

    fn fixed(&self, offset: jiff::tz::Offset) -> ZoneOffset {
        ZoneOffset {
            zone: self.clone(),
            // Offsets of real zones stay well within a day.
            fixed: FixedOffset::east_opt(offset.seconds()).unwrap_or(chrono::Utc.fix()),
        }
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The offset a [`Zone`] has at some instant; it keeps its zone, as chrono
/// requires, so that a `DateTime<Zone>` can move on in the same zone.
#[derive(Clone, PartialEq, Eq)]
pub struct ZoneOffset {
    zone: Zone,
    fixed: FixedOffset,
}

impl Offset for ZoneOffset {
    fn fix(&self) -> FixedOffset {
        self.fixed
    }
}

impl fmt::Debug for ZoneOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.fixed, self.zone.name())
    }
}

impl fmt::Display for ZoneOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.fixed, f)
    }
}

impl TimeZone for Zone {
    type Offset = ZoneOffset;

    fn from_offset(offset: &ZoneOffset) -> Zone {
        offset.zone.clone()
    }

    fn offset_from_local_date(&self, local: &NaiveDate) -> MappedLocalTime<ZoneOffset> {
        match local.and_hms_opt(0, 0, 0) {
            Some(midnight) => self.offset_from_local_datetime(&midnight),
            None => MappedLocalTime::None,
        }
    }

    /// A wall-clock time maps to one offset, to none (it falls in a gap when
    /// clocks spring forward) or to two (it repeats when they fall back;
    /// the earlier offset first).
    fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> MappedLocalTime<ZoneOffset> {
        let Some(civil) = to_civil(local) else {
            return MappedLocalTime::None;
        };
        match self.tz.to_ambiguous_timestamp(civil).offset() {
            jiff::tz::AmbiguousOffset::Unambiguous { offset } => {
                MappedLocalTime::Single(self.fixed(offset))
            }
            jiff::tz::AmbiguousOffset::Gap { .. } => MappedLocalTime::None,
            jiff::tz::AmbiguousOffset::Fold { before, after } => {
                MappedLocalTime::Ambiguous(self.fixed(before), self.fixed(after))
            }
        }
    }

    fn offset_from_utc_date(&self, utc: &NaiveDate) -> ZoneOffset {
        let midnight = utc.and_hms_opt(0, 0, 0).unwrap_or_default();
        self.offset_from_utc_datetime(&midnight)
    }

    fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> ZoneOffset {
        let seconds = utc.and_utc().timestamp();
        let offset = jiff::Timestamp::from_second(seconds)
            .map(|t| self.tz.to_offset(t))
            .unwrap_or(jiff::tz::Offset::UTC);
        self.fixed(offset)
    }
}

/// chrono's wall-clock time as jiff's; `None` outside jiff's range (years
/// -9999 to 9999), which no schedule reaches.
fn to_civil(local: &NaiveDateTime) -> Option<jiff::civil::DateTime> {
    use chrono::{Datelike, Timelike};
    jiff::civil::DateTime::new(
        i16::try_from(local.year()).ok()?,
        local.month() as i8,
        local.day() as i8,
        local.hour() as i8,
        local.minute() as i8,
        local.second() as i8,
        local.nanosecond().min(999_999_999) as i32,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn berlin() -> Zone {
        Zone::get("Europe/Berlin").unwrap()
    }

    #[test]
    fn names_are_exact_and_near_misses_are_spelled_out() {
        assert_eq!(berlin().name(), "Europe/Berlin");
        assert_eq!(Zone::get("UTC").unwrap(), Zone::UTC);
        assert_eq!(
            Zone::get("europe/berlin"),
            Err(Some("Europe/Berlin".into()))
        );
        assert_eq!(
            Zone::get("America/New_Yrok"),
            Err(Some("America/New_York".into()))
        );
        assert_eq!(Zone::get("Mars/Olympus"), Err(None));
        assert_eq!(Zone::get(""), Err(None));
    }

    #[test]
    fn offsets_follow_daylight_saving_time() {
        let z = berlin();
        let winter = z.from_utc_datetime(
            &Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0)
                .unwrap()
                .naive_utc(),
        );
        assert_eq!(winter.offset().fix().local_minus_utc(), 3600);
        let summer = z.from_utc_datetime(
            &Utc.with_ymd_and_hms(2026, 7, 15, 12, 0, 0)
                .unwrap()
                .naive_utc(),
        );
        assert_eq!(summer.offset().fix().local_minus_utc(), 7200);
        assert_eq!(summer.to_rfc3339(), "2026-07-15T14:00:00+02:00");
    }

    #[test]
    fn gaps_have_no_offset_and_folds_have_two() {
        let z = berlin();
        // 2026-03-29 02:30 does not exist; 2026-10-25 02:30 happens twice.
        let gap = NaiveDate::from_ymd_opt(2026, 3, 29)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert_eq!(z.offset_from_local_datetime(&gap), MappedLocalTime::None);
        let fold = NaiveDate::from_ymd_opt(2026, 10, 25)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        let MappedLocalTime::Ambiguous(first, second) = z.offset_from_local_datetime(&fold) else {
            panic!("a repeated time has two offsets");
        };
        assert_eq!(
            (
                first.fix().local_minus_utc(),
                second.fix().local_minus_utc()
            ),
            (7200, 3600)
        );
        let earliest = z.from_local_datetime(&fold).earliest().unwrap();
        assert_eq!(earliest.to_rfc3339(), "2026-10-25T02:30:00+02:00");
    }

    /// Zones with every kind of rule: DST north and south, half-hour and
    /// 45-minute offsets, a half-hour DST shift, negative DST, no DST.
    const ZONES: [&str; 8] = [
        "Europe/Berlin",
        "America/New_York",
        "Australia/Sydney",
        "Australia/Lord_Howe",
        "Asia/Kathmandu",
        "Europe/Dublin",
        "America/St_Johns",
        "Asia/Tokyo",
    ];

    proptest::proptest! {
        /// The host's database and chrono-tz's compiled one (an independent
        /// reader of the same IANA data) agree on every offset.
        #[test]
        fn agrees_with_chrono_tz(zone in 0..ZONES.len(), secs in 946_684_800i64..2_208_988_800) {
            let ours = Zone::get(ZONES[zone]).unwrap();
            let theirs: chrono_tz::Tz = ZONES[zone].parse().unwrap();
            let at = chrono::DateTime::from_timestamp(secs, 0).unwrap().naive_utc();
            proptest::prop_assert_eq!(
                ours.offset_from_utc_datetime(&at).fix(),
                theirs.offset_from_utc_datetime(&at).fix()
            );
            let local = |r: MappedLocalTime<FixedOffset>| match r {
                MappedLocalTime::Single(a) => vec![a],
                MappedLocalTime::Ambiguous(a, b) => vec![a, b],
                MappedLocalTime::None => vec![],
            };
            proptest::prop_assert_eq!(
                local(ours.offset_from_local_datetime(&at).map(|o| o.fix())),
                local(theirs.offset_from_local_datetime(&at).map(|o| o.fix()))
            );
        }
    }
}
