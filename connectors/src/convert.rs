//! Text forms of dates, timestamps and decimals, as legacy databases store
//! them, to and from Arrow's representations.

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i32 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian (year, month, day) of a day count since 1970-01-01
/// (the inverse of [`days_from_civil`], after H. Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn month_len(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses `YYYY-MM-DD` (anything after the date is ignored) into days since the epoch.
pub fn parse_date_days(s: &str) -> Option<i32> {
    let s = s.trim();
    let (y, m, d) = (s.get(0..4)?, s.get(5..7)?, s.get(8..10)?);
    if s.as_bytes().get(4) != Some(&b'-') || s.as_bytes().get(7) != Some(&b'-') {
        return None;
    }
    let (y, m, d): (i32, u32, u32) = (num(y)?, num(m)?, num(d)?);
    if !(1..=12).contains(&m) || d == 0 || d > month_len(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Parses `YYYY-MM-DD[ T]HH:MM[:SS[.ffffff]][Z|±HH:MM]` (or a bare date) into
/// microseconds since the epoch, UTC (an offset is applied).
pub fn parse_timestamp_micros(s: &str) -> Option<i64> {
    let s = s.trim();
    let days = parse_date_days(s)? as i64;
    let rest = &s[10..];
    if rest.is_empty() {
        return Some(days * 86_400_000_000);
    }
    let rest = rest.strip_prefix(['T', ' '])?;
    let (time, offset_us) = match rest.find(['Z', '+', '-']) {
        Some(i) => {
            let (t, z) = rest.split_at(i);
            let off = if z == "Z" {
                0
            } else {
                let sign = if z.starts_with('-') { -1 } else { 1 };
                let z = &z[1..];
                let (h, m) = z
                    .split_once(':')
                    .unwrap_or((z.get(..2)?, z.get(2..).unwrap_or("00")));
                let (h, m): (i64, i64) = (num(h)?, if m.is_empty() { 0 } else { num(m)? });
                sign * (h * 3600 + m * 60) * 1_000_000
            };
            (t, off)
        }
        None => (rest, 0),
    };
    let mut parts = time.split(':');
    let h: i64 = num(parts.next()?)?;
    let mi: i64 = num(parts.next()?)?;
    let (sec, micros) = match parts.next() {
        Some(sf) => match sf.split_once('.') {
            Some((sec, frac)) => {
                let mut f = frac.to_string();
                if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                f.truncate(6);
                while f.len() < 6 {
                    f.push('0');
                }
                (num::<i64>(sec)?, f.parse::<i64>().ok()?)
            }
            None => (num::<i64>(sf)?, 0),
        },
        None => (0, 0),
    };
    if parts.next().is_some() || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    Some(days * 86_400_000_000 + ((h * 60 + mi) * 60 + sec) * 1_000_000 + micros - offset_us)
}

/// Parses a decimal literal exactly into an integer scaled by `10^scale`.
/// More fractional digits than `scale` are refused (no silent rounding).
pub fn parse_decimal(s: &str, scale: i8) -> Option<i128> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale = scale.max(0) as usize;
    let frac = frac.trim_end_matches('0');
    if frac.len() > scale {
        return None;
    }
    let mut digits = String::with_capacity(int.len() + scale);
    digits.push_str(if int.is_empty() { "0" } else { int });
    digits.push_str(frac);
    for _ in frac.len()..scale {
        digits.push('0');
    }
    let v: i128 = digits.parse().ok()?;
    Some(if neg { -v } else { v })
}

/// Scales a float to a decimal of `scale` digits. The float is read as its
/// shortest decimal form (what a user sees: `2.675`, not the binary
/// 2.67499…), then rounded half away from zero; None when it does not fit in
/// `precision` digits.
pub fn float_to_decimal(f: f64, precision: u8, scale: i8) -> Option<i128> {
    if !f.is_finite() {
        return None;
    }
    let text = format!("{}", f.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let scale = scale.max(0) as usize;
    let (kept, dropped) = if frac.len() > scale {
        frac.split_at(scale)
    } else {
        (frac, "")
    };
    let mut digits = format!("{int}{kept}");
    for _ in kept.len()..scale {
        digits.push('0');
    }
    let mut v: i128 = digits.parse().ok()?;
    if dropped.as_bytes().first().is_some_and(|d| *d >= b'5') {
        v += 1;
    }
    if v >= 10i128.pow(precision as u32) {
        return None;
    }
    Some(if f < 0.0 { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(parse_date_days("1970-01-01"), Some(0));
        for d in [-800_000, -1, 0, 59, 11_017, 19_000, 2_932_896] {
            let (y, m, day) = civil_from_days(d);
            assert_eq!(days_from_civil(y as i32, m, day), d as i32);
        }
        assert_eq!(parse_date_days("2000-03-01"), Some(11_017));
        assert_eq!(parse_date_days("2023-02-29"), None);
        assert_eq!(parse_date_days("0000-00-00"), None);
        assert_eq!(
            parse_timestamp_micros("1970-01-01 00:00:01"),
            Some(1_000_000)
        );
        assert_eq!(
            parse_timestamp_micros("1970-01-01T00:00:01.5"),
            Some(1_500_000)
        );
        assert_eq!(parse_timestamp_micros("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_timestamp_micros("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_timestamp_micros("1970-01-02"), Some(86_400_000_000));
        assert_eq!(parse_timestamp_micros("1970-01-01 25:00:00"), None);
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_decimal("12.50", 2), Some(1250));
        assert_eq!(parse_decimal("-0.5", 2), Some(-50));
        assert_eq!(parse_decimal("7", 3), Some(7000));
        assert_eq!(parse_decimal("1.005", 2), None, "no silent rounding");
        assert_eq!(
            parse_decimal("12345678901234567890.123456", 6),
            Some(12_345_678_901_234_567_890_123_456)
        );
        assert_eq!(parse_decimal("abc", 2), None);
        assert_eq!(float_to_decimal(2.675, 10, 2), Some(268));
        assert_eq!(float_to_decimal(f64::NAN, 10, 2), None);
        assert_eq!(
            float_to_decimal(1e12, 10, 2),
            None,
            "does not fit in precision 10"
        );
    }
}
