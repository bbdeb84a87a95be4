//! A certificate's validity dates, read with a small DER walk (RFC 5280, section 4.1):
//! `Certificate → TBSCertificate → [version], serialNumber, signature, issuer, validity,
//! subject`.
//!
//! Only what the expiry check needs: no signature, extension or name parsing (rustls and
//! webpki do that). Unknown or malformed input gives `None`, never a panic.

use std::fmt;

/// DER tags met on the way to the validity dates.
const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// A moment in UTC, to the second, as a certificate states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Time {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

impl Time {
    /// Seconds since 1970-01-01 00:00:00 UTC (negative before).
    pub(super) fn unix(self) -> i64 {
        let days = days_from_civil(i64::from(self.year), self.month, self.day);
        days * 86_400
            + i64::from(self.hour) * 3_600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// A certificate's `notBefore` and `notAfter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Validity {
    /// The first second the certificate is valid.
    pub(super) not_before: Time,
    /// The last second the certificate is valid.
    pub(super) not_after: Time,
}

/// Checks that `cert_der` is valid at `now` (Unix seconds); the error is the reason, in words.
pub(super) fn check(cert_der: &[u8], now: i64) -> Result<Validity, String> {
    let validity = read(cert_der)
        .ok_or("cannot read the certificate's validity dates (malformed certificate)")?;
    if now > validity.not_after.unix() {
        return Err(format!("certificate expired on {}", validity.not_after));
    }
    if now < validity.not_before.unix() {
        let from = validity.not_before;
        return Err(format!("certificate is not valid yet: valid from {from}"));
    }
    Ok(validity)
}

/// The validity dates of a DER certificate, or `None` when it is not one.
pub(super) fn read(cert_der: &[u8]) -> Option<Validity> {
    let (not_before, rest) = time(tbs_fields(cert_der)?.validity)?;
    let (not_after, rest) = time(rest)?;
    rest.is_empty().then_some(Validity {
        not_before,
        not_after,
    })
}

/// What this crate reads of a certificate's `TBSCertificate`, as DER contents: its issuer,
/// validity and subject (the expiry check here, a PKCS#12 archive's chain in `pkcs12`).
pub(super) struct TbsFields<'a> {
    #[cfg_attr(not(feature = "pkcs12"), allow(dead_code))]
    pub(super) issuer: &'a [u8],
    pub(super) validity: &'a [u8],
    #[cfg_attr(not(feature = "pkcs12"), allow(dead_code))]
    pub(super) subject: &'a [u8],
}

/// The issuer, validity and subject of a DER certificate, or `None` when it is not one.
pub(super) fn tbs_fields(cert_der: &[u8]) -> Option<TbsFields<'_>> {
    let (cert, _) = expect(cert_der, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let (tag, _, mut rest) = tlv(tbs)?;
    if tag == VERSION {
        rest = expect(rest, INTEGER)?.1; // the serial number after the version
    } else if tag != INTEGER {
        return None;
    }
    let rest = expect(rest, SEQUENCE)?.1; // signature algorithm
    let (issuer, rest) = expect(rest, SEQUENCE)?;
    let (validity, rest) = expect(rest, SEQUENCE)?;
    let (subject, _) = expect(rest, SEQUENCE)?;
    Some(TbsFields {
        issuer,
        validity,
        subject,
    })
}

/// One `Time` (UTCTime or GeneralizedTime) and what follows it.
fn time(input: &[u8]) -> Option<(Time, &[u8])> {
    let (tag, value, rest) = tlv(input)?;
    let time = match tag {
        UTC_TIME => utc_time(value)?,
        GENERALIZED_TIME => generalized_time(value)?,
        _ => return None,
    };
    Some((time, rest))
}

/// `YYMMDDHHMMSSZ`; RFC 5280: years 50–99 are 19xx, 00–49 are 20xx.
fn utc_time(value: &[u8]) -> Option<Time> {
    let (yy, rest) = value.split_first_chunk::<2>()?;
    let yy = digits(yy)?;
    let century = if yy >= 50 { 1900 } else { 2000 };
    date_time(century + yy, rest)
}

/// `YYYYMMDDHHMMSSZ`, without fractions of a second (RFC 5280).
fn generalized_time(value: &[u8]) -> Option<Time> {
    let (yyyy, rest) = value.split_first_chunk::<4>()?;
    date_time(digits(yyyy)?, rest)
}

/// `MMDDHHMMSSZ` after the year, checked to be a real date and time.
fn date_time(year: u16, rest: &[u8]) -> Option<Time> {
    let [mo @ .., b'Z'] = rest else { return None };
    let [m0, m1, d0, d1, h0, h1, i0, i1, s0, s1] = *mo else {
        return None;
    };
    let two = |a: u8, b: u8| digits(&[a, b]).and_then(|n| u8::try_from(n).ok());
    let time = Time {
        year,
        month: two(m0, m1)?,
        day: two(d0, d1)?,
        hour: two(h0, h1)?,
        minute: two(i0, i1)?,
        second: two(s0, s1)?,
    };
    let date_ok =
        (1..=12).contains(&time.month) && (1..=days_in_month(year, time.month)).contains(&time.day);
    let clock_ok = time.hour < 24 && time.minute < 60 && time.second < 60;
    (date_ok && clock_ok).then_some(time)
}

/// The number written in ASCII digits (at most 4 of them).
fn digits(ascii: &[u8]) -> Option<u16> {
    ascii.iter().try_fold(0u16, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u16::from(c - b'0'))
    })
}

fn days_in_month(year: u16, month: u8) -> u8 {
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given date, proleptic Gregorian (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = (i64::from(month) + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// One element with the given tag: its contents and what follows it.
pub(super) fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, value, rest) = tlv(input)?;
    (found == tag).then_some((value, rest))
}

/// One DER element (single-byte tag, definite length): tag, contents, the rest.
pub(super) fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tags never occur on this path
    }
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None; // indefinite length (not DER) or absurdly long
        }
        let (bytes, after) = input.split_at_checked(count)?;
        input = after;
        bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
    };
    let (value, rest) = input.split_at_checked(len)?;
    Some((tag, value, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Time {
        Time {
            year,
            month,
            day,
            hour,
            minute,
            second,
        }
    }

    /// A minimal TBSCertificate-shaped DER blob around the two given time elements.
    fn cert_with(times: &[u8], version: bool) -> Vec<u8> {
        let mut tbs = Vec::new();
        if version {
            tbs.extend([VERSION, 3, INTEGER, 1, 2]);
        }
        tbs.extend([INTEGER, 1, 7]); // serial
        tbs.extend([SEQUENCE, 0]); // signature algorithm
        tbs.extend([SEQUENCE, 0]); // issuer
        tbs.push(SEQUENCE);
        tbs.push(u8::try_from(times.len()).unwrap());
        tbs.extend(times);
        tbs.extend([SEQUENCE, 0]); // subject, ignored
        let mut cert = vec![SEQUENCE];
        push_len(&mut cert, tbs.len() + 2);
        cert.push(SEQUENCE);
        cert.push(u8::try_from(tbs.len()).unwrap());
        cert.extend(tbs);
        cert
    }

    fn push_len(out: &mut Vec<u8>, len: usize) {
        if len < 0x80 {
            out.push(u8::try_from(len).unwrap());
        } else {
            out.extend([0x81, u8::try_from(len).unwrap()]);
        }
    }

    fn element(tag: u8, text: &str) -> Vec<u8> {
        let mut out = vec![tag, u8::try_from(text.len()).unwrap()];
        out.extend(text.as_bytes());
        out
    }

    fn both(a: Vec<u8>, b: Vec<u8>) -> Vec<u8> {
        a.into_iter().chain(b).collect()
    }

    #[test]
    fn unix_seconds_match_known_dates() {
        assert_eq!(t(1970, 1, 1, 0, 0, 0).unix(), 0);
        assert_eq!(t(1969, 12, 31, 23, 59, 59).unix(), -1);
        assert_eq!(t(2000, 3, 1, 0, 0, 0).unix(), 951_868_800);
        assert_eq!(t(2024, 2, 29, 0, 0, 0).unix(), 1_709_164_800);
        assert_eq!(t(2038, 1, 19, 3, 14, 8).unix(), 1 << 31);
        assert_eq!(t(1950, 1, 1, 0, 0, 0).unix(), -631_152_000);
        assert_eq!(t(9999, 12, 31, 23, 59, 59).unix(), 253_402_300_799);
    }

    #[test]
    fn leap_years_follow_the_gregorian_rules() {
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2023, 2), 28);
        assert_eq!(days_in_month(2023, 4), 30);
        assert_eq!(days_in_month(2023, 12), 31);
    }

    #[test]
    fn utc_time_years_pivot_at_1950() {
        assert_eq!(utc_time(b"500101000000Z"), Some(t(1950, 1, 1, 0, 0, 0)));
        assert_eq!(
            utc_time(b"491231235959Z"),
            Some(t(2049, 12, 31, 23, 59, 59))
        );
        assert_eq!(utc_time(b"240229120000Z"), Some(t(2024, 2, 29, 12, 0, 0)));
    }

    #[test]
    fn generalized_time_reads_four_digit_years() {
        let time = generalized_time(b"20500101000000Z");
        assert_eq!(time, Some(t(2050, 1, 1, 0, 0, 0)));
        let time = generalized_time(b"40960101000000Z");
        assert_eq!(time, Some(t(4096, 1, 1, 0, 0, 0)));
    }

    #[test]
    fn bad_times_are_refused() {
        for bad in [
            &b"230229000000Z"[..], // not a leap year
            b"231301000000Z",      // month 13
            b"230100000000Z",      // day 0
            b"230101240000Z",      // hour 24
            b"230101006000Z",      // minute 60
            b"230101000060Z",      // second 60
            b"2301010000Z",        // no seconds
            b"230101000000",       // no Z
            b"230101000000+0100",  // offset
            b"23010100000aZ",      // not a digit
            b"",
        ] {
            assert_eq!(utc_time(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(generalized_time(b"20230101000000.5Z"), None);
        assert_eq!(generalized_time(b"202301010000Z"), None);
    }

    #[test]
    fn reads_validity_with_and_without_version() {
        let times = both(
            element(UTC_TIME, "200101000000Z"),
            element(GENERALIZED_TIME, "20991231235959Z"),
        );
        for version in [true, false] {
            let validity = read(&cert_with(&times, version)).unwrap();
            assert_eq!(validity.not_before, t(2020, 1, 1, 0, 0, 0));
            assert_eq!(validity.not_after, t(2099, 12, 31, 23, 59, 59));
        }
    }

    #[test]
    fn long_form_lengths_are_read() {
        assert_eq!(tlv(&[0x04, 0x81, 1, 9]), Some((0x04, &[9u8][..], &[][..])));
        let mut big = vec![0x04, 0x82, 0x01, 0x00];
        big.extend([7u8; 256]);
        big.push(1);
        let (_, value, rest) = tlv(&big).unwrap();
        assert_eq!((value.len(), rest), (256, &[1u8][..]));
    }

    #[test]
    fn malformed_der_is_refused() {
        assert_eq!(tlv(&[0x04, 0x80, 0, 0]), None, "indefinite length");
        assert_eq!(tlv(&[0x04, 0x85, 1, 1, 1, 1, 1]), None, "5 length bytes");
        assert_eq!(tlv(&[0x04, 5, 1]), None, "truncated");
        assert_eq!(tlv(&[0x1f, 1, 0]), None, "multi-byte tag");
        assert_eq!(tlv(&[]), None);
        let good = cert_with(
            &both(
                element(UTC_TIME, "200101000000Z"),
                element(UTC_TIME, "300101000000Z"),
            ),
            true,
        );
        for cut in 0..good.len() {
            assert_eq!(read(&good[..cut]), None, "cut at {cut}");
        }
        let one_time = cert_with(&element(UTC_TIME, "200101000000Z"), true);
        assert_eq!(read(&one_time), None);
        let wrong_tag = cert_with(
            &both(
                element(0x13, "200101000000Z"),
                element(UTC_TIME, "300101000000Z"),
            ),
            true,
        );
        assert_eq!(read(&wrong_tag), None);
        assert_eq!(read(b"-----BEGIN CERTIFICATE-----"), None);
    }

    #[test]
    fn check_says_expired_or_not_yet_valid() {
        let times = both(
            element(UTC_TIME, "200101000000Z"),
            element(UTC_TIME, "300101000000Z"),
        );
        let cert = cert_with(&times, true);
        let from = t(2020, 1, 1, 0, 0, 0).unix();
        let until = t(2030, 1, 1, 0, 0, 0).unix();
        assert!(check(&cert, from).is_ok());
        assert!(check(&cert, until).is_ok());
        assert_eq!(
            check(&cert, until + 1).unwrap_err(),
            "certificate expired on 2030-01-01 00:00:00 UTC"
        );
        assert_eq!(
            check(&cert, from - 1).unwrap_err(),
            "certificate is not valid yet: valid from 2020-01-01 00:00:00 UTC"
        );
        assert_eq!(
            check(b"junk", 0).unwrap_err(),
            "cannot read the certificate's validity dates (malformed certificate)"
        );
    }
}
