//! Cell values shared by the readers: decimal amounts to micro-units, timestamps to epoch millis,
//! currency codes.
//!
//! Amounts are converted with integer decimal arithmetic only (standard §5): the decimal text is
//! split into digits and a decimal exponent, then rounded half away from zero to six decimals.
//! A float (GCP's `cost`) is first written as its shortest round-trip decimal (`{}`), which is the
//! text BigQuery wrote, so `0.30000000000000004` stays 300 000 micros and `0.1` 100 000.

use crate::standard::{EpochMillis, Micros};

/// Decimal places of a micro-unit.
const MICRO_DIGITS: i32 = 6;

/// Micro-units of a decimal text (`12.34`, `-0.000001`, `1.2e-05`, `+3`), rounded half away from
/// zero. Errors on anything else, and on amounts beyond `i64` micros.
pub fn decimal_micros(text: &str) -> Result<Micros, String> {
    let text = text.trim();
    let (negative, unsigned) = split_sign(text);
    let (mantissa, exponent) = split_exponent(unsigned)?;
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let no_digits = int_part.is_empty() && frac_part.is_empty();
    if no_digits || !digits_ok(int_part) || !digits_ok(frac_part) {
        return Err(format!("{text:?} is not a decimal number"));
    }
    // value = digits * 10^(exponent - frac_len); we want value * 10^6.
    let digits = format!("{int_part}{frac_part}");
    let frac_len = i32::try_from(frac_part.len()).map_err(|_| too_long(text))?;
    let shift = exponent
        .checked_add(MICRO_DIGITS)
        .and_then(|e| e.checked_sub(frac_len))
        .ok_or_else(|| too_long(text))?;
    let magnitude = scale_rounded(digits.trim_start_matches('0'), shift)
        .ok_or_else(|| format!("{text:?} is out of range"))?;
    let magnitude = i64::try_from(magnitude).map_err(|_| format!("{text:?} is out of range"))?;
    Ok(if negative { -magnitude } else { magnitude })
}

/// Micro-units of a float, via its shortest decimal representation. Errors on NaN and infinities.
pub fn float_micros(value: f64) -> Result<Micros, String> {
    if !value.is_finite() {
        return Err(format!("{value} is not a finite amount"));
    }
    decimal_micros(&format!("{value}"))
}

fn too_long(text: &str) -> String {
    format!("{text:?} is too long")
}

fn split_sign(text: &str) -> (bool, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    }
}

fn split_exponent(text: &str) -> Result<(&str, i32), String> {
    match text.find(['e', 'E']) {
        None => Ok((text, 0)),
        Some(at) => {
            let exponent = text[at + 1..]
                .parse::<i32>()
                .ok()
                .filter(|e| e.abs() <= 400)
                .ok_or_else(|| format!("{text:?} has a bad exponent"))?;
            Ok((&text[..at], exponent))
        }
    }
}

/// `digits * 10^shift`, rounded half away from zero when `shift < 0`; `None` on overflow.
fn scale_rounded(digits: &str, shift: i32) -> Option<u128> {
    if digits.is_empty() {
        return Some(0);
    }
    let keep = i64::try_from(digits.len()).ok()? + i64::from(shift);
    if keep <= 0 {
        // Every digit is below the micro: rounds up only for exactly one digit position below.
        let half_up = keep == 0 && digits.as_bytes()[0] >= b'5';
        return Some(u128::from(half_up));
    }
    let keep = usize::try_from(keep).ok()?;
    let (kept, dropped) = digits.split_at(keep.min(digits.len()));
    let mut value = parse_u128(kept)?;
    if keep > digits.len() {
        let zeros = u32::try_from(keep - digits.len()).ok()?;
        value = value.checked_mul(10u128.checked_pow(zeros)?)?;
    }
    if dropped.as_bytes().first().is_some_and(|&d| d >= b'5') {
        value = value.checked_add(1)?;
    }
    Some(value)
}

fn parse_u128(digits: &str) -> Option<u128> {
    if digits.len() > 38 {
        return None;
    }
    digits.parse().ok()
}

/// Epoch millis of an ISO 8601 / BigQuery timestamp: `2026-11-20`, `2026-11-20T10:00:00Z`,
/// `2026-11-20 10:00:00 UTC`, `2026-11-20T10:00:00.0000000Z`, `2026-11-20T10:00:00+01:00`.
/// No zone means UTC.
pub fn parse_time(text: &str) -> Result<EpochMillis, String> {
    parse_time_inner(text.trim()).ok_or_else(|| format!("{text:?} is not a timestamp"))
}

fn parse_time_inner(text: &str) -> Option<EpochMillis> {
    let date = text.get(..10)?;
    let days = parse_date(date)?;
    let rest = &text[10..];
    let (clock, offset_minutes) = if rest.is_empty() {
        (0, 0)
    } else {
        let rest = rest.strip_prefix(['T', 't', ' '])?;
        let (clock, zone) = split_zone(rest)?;
        (parse_clock(clock)?, parse_zone(zone)?)
    };
    let millis = days.checked_mul(86_400_000)?.checked_add(clock)?;
    millis.checked_sub(offset_minutes * 60_000)
}

/// Days since 1970-01-01 of `YYYY-MM-DD` (proleptic Gregorian).
fn parse_date(date: &str) -> Option<i64> {
    let b = date.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&date[0..4])?;
    let month = digits(&date[5..7])?;
    let day = digits(&date[8..10])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

fn digits(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's `days_from_civil`.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Splits `10:00:00.5 UTC` / `10:00:00Z` / `10:00:00+01:00` into clock and zone.
fn split_zone(rest: &str) -> Option<(&str, &str)> {
    let at = rest.find(['Z', 'z', '+', '-', ' ']).unwrap_or(rest.len());
    Some((&rest[..at], rest[at..].trim_start()))
}

/// Millis into the day of `HH:MM[:SS[.fraction]]`.
fn parse_clock(clock: &str) -> Option<i64> {
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut parts = hms.split(':');
    let hours = two_digits(parts.next()?)?;
    let minutes = two_digits(parts.next()?)?;
    let seconds = parts.next().map_or(Some(0), two_digits)?;
    if parts.next().is_some() || hours > 23 || minutes > 59 || seconds > 60 {
        return None;
    }
    let millis = fraction_millis(fraction)?;
    Some(((hours * 60 + minutes) * 60 + seconds) * 1000 + millis)
}

fn two_digits(text: &str) -> Option<i64> {
    (text.len() == 2).then_some(())?;
    digits(text)
}

/// Millis of a fraction of a second, truncated (`0000000` -> 0, `5` -> 500, `123456` -> 123).
fn fraction_millis(fraction: &str) -> Option<i64> {
    if fraction.is_empty() {
        return Some(0);
    }
    if fraction.len() > 12 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let padded = format!("{fraction:0<3}");
    padded[..3].parse().ok()
}

/// Offset east of UTC in minutes: `` / `Z` / `UTC` -> 0, `+01:00` / `+0100` / `+01` -> 60.
fn parse_zone(zone: &str) -> Option<i64> {
    match zone {
        "" | "Z" | "z" | "UTC" | "GMT" | "+00" => return Some(0),
        _ => {}
    }
    let (sign, rest) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    let rest = rest.replace(':', "");
    if !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (hours, minutes) = match rest.len() {
        2 => (digits(&rest)?, 0),
        4 => (digits(&rest[..2])?, digits(&rest[2..])?),
        _ => return None,
    };
    (hours <= 23 && minutes <= 59).then_some(sign * (hours * 60 + minutes))
}

/// A currency code upper-cased, checked to be three ASCII letters (ISO 4217 shape).
pub fn currency(text: &str) -> Result<String, String> {
    let code = text.trim().to_ascii_uppercase();
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(code)
    } else {
        Err(format!("{text:?} is not an ISO 4217 currency code"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_convert_exactly_and_round_half_away_from_zero() {
        let cases = [
            ("12.34", 12_340_000),
            ("0", 0),
            ("-0.000001", -1),
            ("0.0000005", 1),
            ("0.00000049", 0),
            ("-0.0000005", -1),
            ("1.2e-05", 12),
            ("1.25E-6", 1),
            ("3", 3_000_000),
            ("+3.", 3_000_000),
            (".5", 500_000),
            ("0.30000000000000004", 300_000),
            ("123456789.1234565", 123_456_789_123_457),
            ("1e3", 1_000_000_000),
            ("0.1234564999", 123_456),
        ];
        for (text, micros) in cases {
            assert_eq!(decimal_micros(text), Ok(micros), "{text}");
        }
    }

    #[test]
    fn bad_decimals_are_errors() {
        for text in [
            "", "-", "abc", "1,5", "1.2.3", "1e", "1e999", "9e30", "NaN", "--1",
        ] {
            assert!(decimal_micros(text).is_err(), "{text}");
        }
    }

    #[test]
    fn floats_convert_through_their_shortest_representation() {
        assert_eq!(float_micros(0.1 + 0.2), Ok(300_000));
        assert_eq!(float_micros(0.1), Ok(100_000));
        assert_eq!(float_micros(1.005), Ok(1_005_000));
        assert_eq!(float_micros(2.675), Ok(2_675_000));
        assert_eq!(float_micros(-0.029122), Ok(-29_122));
        assert_eq!(float_micros(4.35), Ok(4_350_000));
        assert_eq!(float_micros(1.2e-5), Ok(12));
        assert!(float_micros(f64::NAN).is_err());
        assert!(float_micros(f64::INFINITY).is_err());
        assert!(float_micros(1e300).is_err());
    }

    #[test]
    fn timestamps_in_every_accepted_shape() {
        let ten = 1_795_168_800_000; // 2026-11-20T10:00:00Z
        let cases = [
            ("2026-11-20T10:00:00Z", ten),
            ("2026-11-20 10:00:00 UTC", ten),
            ("2026-11-20T10:00:00.0000000Z", ten),
            ("2026-11-20 10:00:00.250 UTC", ten + 250),
            ("2026-11-20T10:00:00.123456Z", ten + 123),
            ("2026-11-20T11:00:00+01:00", ten),
            ("2026-11-20T02:00:00-08:00", ten),
            ("2026-11-20T10:00:00", ten),
            ("2026-11-20T10:00Z", ten),
            ("2026-11-20", ten - 10 * 3_600_000),
            ("1970-01-01T00:00:00Z", 0),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000),
        ];
        for (text, millis) in cases {
            assert_eq!(parse_time(text), Ok(millis), "{text}");
        }
    }

    #[test]
    fn bad_timestamps_are_errors() {
        for text in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-11-20T25:00:00Z",
            "2026-11-20X10:00:00Z",
            "2026-11-20T10:00:00 CET",
            "20261120",
            "2026-11-20T10:00:00.abcZ",
        ] {
            assert!(parse_time(text).is_err(), "{text}");
        }
    }

    #[test]
    fn currencies_are_upper_cased_and_checked() {
        assert_eq!(currency("eur"), Ok("EUR".into()));
        assert_eq!(currency(" USD "), Ok("USD".into()));
        assert!(currency("EURO").is_err());
        assert!(currency("E1R").is_err());
        assert!(currency("").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_a_value_or_an_error_never_a_panic(text in "\\PC{0,40}") {
            let _ = decimal_micros(&text);
            let _ = parse_time(&text);
            let _ = parse_time(&format!("2026-11-20T10:00:00{text}"));
            let _ = currency(&text);
        }

        #[test]
        fn decimal_text_of_whole_micros_converts_exactly(micros in -(1i64 << 52)..(1i64 << 52)) {
            let sign = if micros < 0 { "-" } else { "" };
            let (units, fraction) = (micros.unsigned_abs() / 1_000_000, micros.unsigned_abs() % 1_000_000);
            let text = format!("{sign}{units}.{fraction:06}");
            proptest::prop_assert_eq!(decimal_micros(&text), Ok(micros));
        }

        #[test]
        fn a_float_of_at_most_six_decimals_loses_no_micro(micros in -(1i64 << 40)..(1i64 << 40)) {
            // The nearest float to a six-decimal amount converts back to exactly that amount.
            let value: f64 = format!("{}e-6", micros).parse().expect("a float");
            proptest::prop_assert_eq!(float_micros(value), Ok(micros));
        }
    }
}
