//! Wall-clock helpers. Stamps that cross a process boundary (router → queue → worker) are
//! unix nanoseconds, because `Instant` means nothing in another process; durations inside
//! one process use `Instant`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in nanoseconds since the unix epoch.
pub fn now_unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Now, in milliseconds since the unix epoch (what records and stores keep).
pub fn now_unix_ms() -> i64 {
    (now_unix_ns() / 1_000_000) as i64
}

/// Now, in whole seconds since the unix epoch (Slack's timestamp unit).
pub fn now_unix_secs() -> u64 {
    now_unix_ns() / 1_000_000_000
}

/// Milliseconds between two nanosecond stamps, as the float the log contract uses;
/// negative clock skew between machines shows as a negative number rather than wrapping.
/// Parses a duration as people write them (`500ms`, `30s`, `5m`, `1h30m`): the one
/// duration parser of chatops, used by the configuration, command arguments, and the
/// flags of every subcommand. Surrounding spaces are ignored; the error says what was
/// expected.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{}` is not a duration like 500ms, 30s, 5m or 1h30m ({e})", text.trim()))
}

pub fn ms_between(start_ns: u64, end_ns: u64) -> f64 {
    (end_ns as i128 - start_ns as i128) as f64 / 1e6
}

/// Rounds milliseconds to microsecond precision, which is what log lines carry.
pub fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats unix milliseconds as `2026-11-28T12:34:56.789Z`.
pub fn format_rfc3339_ms(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let ms = unix_ms.rem_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

/// Parses an RFC 3339 timestamp (`2026-11-28T12:34:56.789123Z`, `...+01:00`, or with a
/// space instead of `T`) into unix nanoseconds. Fast path for log analysis: no allocation.
pub fn parse_rfc3339_ns(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in b.get(r)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ns = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                frac_ns = frac_ns * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = (i - start).min(9);
        if digits == 0 {
            return None;
        }
        frac_ns *= 10i64.pow(9 - digits as u32);
    }
    let offset_secs = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let off = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    Some(secs * 1_000_000_000 + frac_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        for days in [-719_468, -1, 0, 1, 10_957, 20_785, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_785), (2026, 11, 28));
    }

    #[test]
    fn parses_and_formats_rfc3339() {
        let ns = parse_rfc3339_ns("2026-11-28T12:34:56.789123Z").unwrap();
        assert_eq!(ns % 1_000_000_000, 789_123_000);
        assert_eq!(format_rfc3339_ms(ns / 1_000_000), "2026-11-28T12:34:56.789Z");
        assert_eq!(parse_rfc3339_ns("2026-11-28T13:34:56.789123+01:00"), Some(ns));
        assert_eq!(parse_rfc3339_ns("2026-11-28 12:34:56.789123Z"), Some(ns));
        assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
    }

    #[test]
    fn refuses_malformed_timestamps() {
        for bad in [
            "",
            "2026-11-28",
            "2026-13-01T00:00:00Z",
            "2026-11-28T12:34:56",
            "2026-11-28T12:34:56.Z",
            "2026-11-28T12:34:56Zjunk",
            "２０２６-11-28T12:34:56Z",
        ] {
            assert_eq!(parse_rfc3339_ns(bad), None, "{bad}");
        }
    }

    #[test]
    fn ms_between_keeps_sign() {
        assert_eq!(ms_between(2_000_000, 1_000_000), -1.0);
        assert_eq!(ms_between(1_000_000, 3_500_000), 2.5);
    }

    #[test]
    fn durations_parse_as_written() {
        assert_eq!(parse_duration(" 1h30m "), Ok(std::time::Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(std::time::Duration::from_millis(500)));
        let err = parse_duration("soon").unwrap_err();
        assert!(err.contains("`soon`") && err.contains("30s"), "{err}");
    }
}
