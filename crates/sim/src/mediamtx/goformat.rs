//! Go's duration and byte-size formats as MediaMTX reads and prints them: `conf.Duration`
//! (Go's `time.ParseDuration` syntax after optional whole days, printed by
//! `time.Duration.String()` with days split off) and `conf.StringSize` (bytefmt, binary
//! multiples). Errors carry Go's texts. Pure functions.

pub(super) const NANOS_PER_DAY: u64 = 86_400_000_000_000;

/// A MediaMTX duration in nanoseconds: optional whole days (`2d`), then Go's
/// `time.ParseDuration` syntax; `""` is zero. The error is Go's text.
pub(super) fn parse_duration(text: &str) -> Result<i64, String> {
    let sign_len = usize::from(text.starts_with('-'));
    let digits = text[sign_len..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    let (days, rest) = if digits > 0 && text[sign_len + digits..].starts_with('d') {
        // Go ignores an overflowing day count (it becomes 0).
        let days = text[..sign_len + digits].parse::<i64>().unwrap_or_default();
        (days, &text[sign_len + digits + 1..])
    } else {
        (0, text)
    };
    let rest = if rest.is_empty() {
        0
    } else {
        parse_go_duration(rest)?
    };
    let total = i128::from(days.unsigned_abs()) * i128::from(NANOS_PER_DAY) + i128::from(rest);
    let total = if days < 0 { -total } else { total };
    i64::try_from(total).map_err(|_| format!("time: invalid duration \"{text}\""))
}

/// Go's `time.ParseDuration`.
fn parse_go_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration \"{orig}\"");
    let (negative, mut s) = match orig.as_bytes().first() {
        Some(b'-') => (true, &orig[1..]),
        Some(b'+') => (false, &orig[1..]),
        _ => (false, orig),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let mut total: u128 = 0;
    while !s.is_empty() {
        if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let (whole, rest) = s.split_at(digits(s));
        let (fraction, rest) = match rest.strip_prefix('.') {
            Some(rest) => rest.split_at(digits(rest)),
            None => ("", rest),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(invalid());
        }
        let unit_len = rest
            .bytes()
            .take_while(|c| *c != b'.' && !c.is_ascii_digit())
            .count();
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration \"{orig}\""));
        }
        let (unit, rest) = rest.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit \"{unit}\" in duration \"{orig}\""
                ));
            }
        };
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| invalid())?
        };
        let fraction = &fraction[..fraction.len().min(18)];
        let scaled_fraction = match fraction.parse::<u128>() {
            Ok(f) => f * unit_nanos / 10u128.pow(u32::try_from(fraction.len()).unwrap_or(0)),
            Err(_) => 0,
        };
        total = whole
            .checked_mul(unit_nanos)
            .and_then(|n| n.checked_add(scaled_fraction))
            .and_then(|n| n.checked_add(total))
            .ok_or_else(invalid)?;
        s = rest;
    }
    let total = i128::try_from(total).map_err(|_| invalid())?;
    i64::try_from(if negative { -total } else { total }).map_err(|_| invalid())
}

/// How MediaMTX prints a duration: whole days as `Nd`, the rest as Go's `Duration.String()`;
/// zero is `""`.
pub(super) fn format_duration(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let nanos = nanos.unsigned_abs();
    let (days, rest) = (nanos / NANOS_PER_DAY, nanos % NANOS_PER_DAY);
    let days = if days > 0 {
        format!("{days}d")
    } else {
        String::new()
    };
    let rest = if rest > 0 {
        go_duration_string(rest)
    } else {
        String::new()
    };
    format!("{sign}{days}{rest}")
}

/// Go's `time.Duration.String()` for a positive duration.
fn go_duration_string(nanos: u64) -> String {
    /// `value / 10^digits` as Go prints it: the fraction without trailing zeros.
    fn decimal(value: u64, digits: u32) -> String {
        let scale = 10u64.pow(digits);
        let fraction = format!("{:0width$}", value % scale, width = digits as usize);
        let fraction = fraction.trim_end_matches('0');
        if fraction.is_empty() {
            (value / scale).to_string()
        } else {
            format!("{}.{fraction}", value / scale)
        }
    }
    match nanos {
        0 => "0s".into(),
        1..1_000 => format!("{nanos}ns"),
        1_000..1_000_000 => format!("{}µs", decimal(nanos, 3)),
        1_000_000..1_000_000_000 => format!("{}ms", decimal(nanos, 6)),
        _ => {
            let seconds = decimal(nanos % 60_000_000_000, 9);
            let minutes = nanos / 60_000_000_000;
            match minutes {
                0 => format!("{seconds}s"),
                1..60 => format!("{minutes}m{seconds}s"),
                _ => format!("{}h{}m{seconds}s", minutes / 60, minutes % 60),
            }
        }
    }
}

pub(super) const SIZE_ERROR: &str = "byte quantity must be a positive integer with a unit of measurement \
                          like M, MB, MiB, G, GiB, or GB";

/// bytefmt's `ToBytes` (binary multiples).
pub(super) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim().to_ascii_uppercase();
    let split = text.find(char::is_alphabetic).ok_or(SIZE_ERROR)?;
    let (number, unit) = text.split_at(split);
    let number = number
        .parse::<f64>()
        .ok()
        .filter(|n| *n >= 0.0)
        .ok_or(SIZE_ERROR)?;
    let shift = match unit {
        "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        "P" | "PB" | "PIB" => 50,
        "E" | "EB" | "EIB" => 60,
        _ => return Err(SIZE_ERROR.into()),
    };
    Ok((number * (1u64 << shift) as f64) as u64)
}

/// bytefmt's `ByteSize`: the largest binary unit, one decimal, `.0` dropped.
pub(super) fn format_size(bytes: u64) -> String {
    const UNITS: [(u32, &str); 6] = [
        (60, "E"),
        (50, "P"),
        (40, "T"),
        (30, "G"),
        (20, "M"),
        (10, "K"),
    ];
    let (value, unit) = UNITS
        .iter()
        .find(|(shift, _)| bytes >= 1u64 << shift)
        .map_or((bytes as f64, "B"), |(shift, unit)| {
            (bytes as f64 / (1u64 << shift) as f64, *unit)
        });
    let value = format!("{value:.1}");
    format!("{}{unit}", value.strip_suffix(".0").unwrap_or(&value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_like_go_and_mediamtx() {
        let cases = [
            ("10s", "10s"),
            ("300ms", "300ms"),
            ("1h", "1h0m0s"),
            ("90m", "1h30m0s"),
            ("1.5s", "1.5s"),
            ("24h", "1d"),
            ("1d12h", "1d12h0m0s"),
            ("2d", "2d"),
            ("1500us", "1.5ms"),
            ("0", ""),
            ("", ""),
            ("-1m", "-1m0s"),
        ];
        for (input, printed) in cases {
            let nanos = parse_duration(input).unwrap();
            assert_eq!(format_duration(nanos), printed, "{input}");
        }
        assert_eq!(
            parse_duration("10").unwrap_err(),
            "time: missing unit in duration \"10\""
        );
        assert_eq!(
            parse_duration("10x").unwrap_err(),
            "time: unknown unit \"x\" in duration \"10x\""
        );
        assert_eq!(
            parse_duration("abc").unwrap_err(),
            "time: invalid duration \"abc\""
        );
    }

    #[test]
    fn sizes_are_normalised_like_bytefmt() {
        assert_eq!(format_size(parse_size("50M").unwrap()), "50M");
        assert_eq!(format_size(parse_size("50MB").unwrap()), "50M");
        assert_eq!(format_size(parse_size("1.5g").unwrap()), "1.5G");
        assert_eq!(format_size(parse_size("512B").unwrap()), "512B");
        assert_eq!(parse_size("50").unwrap_err(), SIZE_ERROR);
    }
}
