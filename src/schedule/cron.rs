//! Cron expressions: parsed and evaluated by `croner`, on `jiff`'s time zones.

use std::time::SystemTime;

use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::{Error, Result};

/// The time zone a schedule's cron expression is read in.
///
/// Daylight saving time is followed: a time that does not exist on the day the clocks go
/// forward runs once, right after the gap (`0 30 2 * * *` at 03:00 that day), and one that
/// happens twice when they go back runs once, the first time. Wildcard and step fields
/// (`*/5 * * * *`) simply skip the missing hour and run in both copies of the repeated one.
#[cfg_attr(docsrs, doc(cfg(feature = "schedules")))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CronZone {
    /// The system's local time zone (`TZ`, else `/etc/localtime`) as the process sees it when
    /// the schedule is registered. The default, as in Pode.
    #[default]
    Local,
    /// Coordinated Universal Time.
    Utc,
}

impl CronZone {
    fn time_zone(self) -> TimeZone {
        match self {
            CronZone::Local => TimeZone::system(),
            CronZone::Utc => TimeZone::UTC,
        }
    }
}

/// A parsed cron expression and the zone it is read in.
#[derive(Clone)]
pub(crate) struct CronSpec {
    expression: String,
    cron: Cron,
    zone: TimeZone,
}

impl CronSpec {
    /// Parses `expression` for the schedule `name`: 5 fields (minute hour day month weekday)
    /// or 6 (with seconds first), names, ranges, steps, lists, `L`, `W`, `#` and `@daily`-style
    /// nicknames. An expression that never matches a date (`0 0 30 2 *`) is refused too.
    pub(crate) fn parse(name: &str, expression: &str, zone: CronZone) -> Result<CronSpec> {
        CronSpec::in_time_zone(name, expression, zone.time_zone())
    }

    /// Like [`CronSpec::parse`], in any time zone.
    pub(crate) fn in_time_zone(name: &str, expression: &str, zone: TimeZone) -> Result<CronSpec> {
        let invalid = |reason: String| Error::InvalidSchedule {
            name: name.to_owned(),
            expression: expression.to_owned(),
            reason,
        };
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        let cron = parser
            .parse(expression)
            .map_err(|e| invalid(lowercase_reason(&e.to_string())))?;
        let spec = CronSpec {
            expression: expression.to_owned(),
            cron,
            zone,
        };
        if spec.next_after(SystemTime::now()).is_none() {
            return Err(invalid("it never matches a date".into()));
        }
        Ok(spec)
    }

    /// The expression as given.
    pub(crate) fn expression(&self) -> &str {
        &self.expression
    }

    /// The first time the expression names strictly after `after` (none if there is none).
    pub(crate) fn next_after(&self, after: SystemTime) -> Option<SystemTime> {
        let zoned = Timestamp::try_from(after).ok()?.to_zoned(self.zone.clone());
        let next = self.cron.find_next_occurrence(&zoned, false).ok()?;
        Some(SystemTime::from(next.timestamp()))
    }
}

/// croner's messages ("Invalid pattern: Pattern must ...") in this crate's style.
fn lowercase_reason(text: &str) -> String {
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central European time with its daylight saving rules (no tz database needed): clocks go
    /// forward on the last Sunday of March at 02:00 and back on the last Sunday of October at
    /// 03:00.
    fn europe() -> TimeZone {
        TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").expect("posix tz")
    }

    fn spec(expression: &str, zone: TimeZone) -> CronSpec {
        CronSpec::in_time_zone("test", expression, zone).expect("valid expression")
    }

    /// `2026-03-29T01:30:00+01:00`-style instants.
    fn at(text: &str) -> SystemTime {
        let timestamp: Timestamp = text.parse().expect("RFC 3339 instant");
        SystemTime::from(timestamp)
    }

    /// The next `n` times after `start`, as RFC 3339 in `zone`.
    fn next_n(spec: &CronSpec, start: SystemTime, n: usize) -> Vec<String> {
        let mut time = start;
        (0..n)
            .map(|_| {
                time = spec.next_after(time).expect("a next time");
                let timestamp = Timestamp::try_from(time).expect("in range");
                timestamp
                    .to_zoned(spec.zone.clone())
                    .strftime("%Y-%m-%dT%H:%M:%S%:z")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn five_and_six_fields_names_ranges_and_steps() {
        let utc = || TimeZone::UTC;
        let start = at("2026-01-05T10:00:00Z"); // a Monday
        assert_eq!(
            next_n(&spec("*/20 * * * * *", utc()), start, 3),
            [
                "2026-01-05T10:00:20+00:00",
                "2026-01-05T10:00:40+00:00",
                "2026-01-05T10:01:00+00:00"
            ]
        );
        assert_eq!(
            next_n(&spec("30 9-10 * * MON-FRI", utc()), start, 3),
            [
                "2026-01-05T10:30:00+00:00",
                "2026-01-06T09:30:00+00:00",
                "2026-01-06T10:30:00+00:00"
            ]
        );
        assert_eq!(
            next_n(&spec("0 0 1 jan,jul *", utc()), start, 2),
            ["2026-07-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"]
        );
        assert_eq!(
            next_n(&spec("@daily", utc()), start, 1),
            ["2026-01-06T00:00:00+00:00"]
        );
    }

    #[test]
    fn next_after_is_strictly_after_even_within_the_second() {
        let every_second = spec("* * * * * *", TimeZone::UTC);
        let on_the_second = at("2026-01-05T10:00:00Z");
        let mid_second = at("2026-01-05T10:00:00.5Z");
        let next = at("2026-01-05T10:00:01Z");
        assert_eq!(every_second.next_after(on_the_second), Some(next));
        assert_eq!(every_second.next_after(mid_second), Some(next));
    }

    #[test]
    fn month_ends() {
        let last_day = spec("0 12 L * *", TimeZone::UTC);
        assert_eq!(
            next_n(&last_day, at("2026-01-31T13:00:00Z"), 4),
            [
                "2026-02-28T12:00:00+00:00",
                "2026-03-31T12:00:00+00:00",
                "2026-04-30T12:00:00+00:00",
                "2026-05-31T12:00:00+00:00"
            ]
        );
        // The 31st skips the months that have none.
        let the_31st = spec("0 0 31 * *", TimeZone::UTC);
        assert_eq!(
            next_n(&the_31st, at("2026-01-31T00:00:00Z"), 3),
            [
                "2026-03-31T00:00:00+00:00",
                "2026-05-31T00:00:00+00:00",
                "2026-07-31T00:00:00+00:00"
            ]
        );
        // Midnight of the 1st: the day after every month's end, across a year end.
        let first = spec("0 0 1 * *", TimeZone::UTC);
        assert_eq!(
            next_n(&first, at("2026-11-30T23:59:59Z"), 3),
            [
                "2026-12-01T00:00:00+00:00",
                "2027-01-01T00:00:00+00:00",
                "2027-02-01T00:00:00+00:00"
            ]
        );
    }

    #[test]
    fn leap_days() {
        let leap_day = spec("0 0 29 2 *", TimeZone::UTC);
        assert_eq!(
            next_n(&leap_day, at("2026-03-01T00:00:00Z"), 2),
            ["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"]
        );
    }

    #[test]
    fn spring_forward_in_a_european_zone() {
        // 2026-03-29: 02:00 CET becomes 03:00 CEST.
        let zone = europe();
        let before = at("2026-03-28T12:00:00+01:00");
        // A fixed time inside the gap runs once, right after it.
        assert_eq!(
            next_n(&spec("0 30 2 * * *", zone.clone()), before, 3),
            [
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00",
                "2026-03-31T02:30:00+02:00"
            ]
        );
        // Hourly: the missing hour is skipped, an hour apart in real time.
        assert_eq!(
            next_n(&spec("0 * * * *", zone), at("2026-03-29T00:30:00+01:00"), 3),
            [
                "2026-03-29T01:00:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T04:00:00+02:00"
            ]
        );
    }

    #[test]
    fn fall_back_in_a_european_zone() {
        // 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:00-02:59 happens twice.
        let zone = europe();
        let before = at("2026-10-24T12:00:00+02:00");
        // A fixed time runs once, the first time.
        assert_eq!(
            next_n(&spec("30 2 * * *", zone.clone()), before, 2),
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
        );
        // Hourly runs in both copies of the repeated hour.
        assert_eq!(
            next_n(&spec("0 * * * *", zone), at("2026-10-25T01:30:00+02:00"), 3),
            [
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T02:00:00+01:00",
                "2026-10-25T03:00:00+01:00"
            ]
        );
    }

    #[test]
    fn utc_and_a_zone_differ_by_its_offset() {
        let start = at("2026-07-01T00:00:00Z");
        let utc = spec("0 9 * * *", TimeZone::UTC).next_after(start);
        let europe = spec("0 9 * * *", europe()).next_after(start);
        assert_eq!(utc, Some(at("2026-07-01T09:00:00Z")));
        assert_eq!(europe, Some(at("2026-07-01T07:00:00Z")));
    }

    #[test]
    fn invalid_expressions_name_the_schedule_and_the_expression() {
        for bad in [
            "",
            "* * *",
            "61 * * * *",
            "* * * * * * *",
            "*/0 * * * *",
            "0 0 30 2 *",
            "hello",
        ] {
            let Err(error) = CronSpec::parse("nightly", bad, CronZone::Utc) else {
                panic!("{bad:?} was accepted");
            };
            let text = error.to_string();
            assert!(
                matches!(&error, Error::InvalidSchedule { name, expression, .. }
                    if name == "nightly" && expression == bad),
                "{text}"
            );
            assert!(text.contains("\"nightly\""), "{text}");
            assert!(text.contains(&format!("{bad:?}")), "{text}");
        }
    }

    #[test]
    fn croner_messages_are_made_lowercase() {
        assert_eq!(
            lowercase_reason("Invalid pattern: Pattern must have 5 fields."),
            "invalid pattern: Pattern must have 5 fields"
        );
        assert_eq!(lowercase_reason(""), "");
    }
}
