//! Durations and byte sizes as Promtail's YAML and flags take them.
//!
//! Durations: Go's `time.ParseDuration` (`300ms`, `1.5h`, `2h45m`, `+1s`;
//! units `ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`; a unit is required except
//! for `0`) plus Prometheus' `model.Duration` units `d` (24h), `w` (7d) and
//! `y` (365d), because Promtail uses both types. Arithmetic is exact integer
//! nanoseconds; like Go, anything over `i64::MAX` nanoseconds (~292 years) is
//! an error. Negative durations are errors (no Promtail setting takes one). A
//! bare YAML integer is nanoseconds, as Go's YAML decoder treats a
//! `time.Duration`.
//!
//! Byte sizes (`max_line_size`, `-client.batch-size-bytes`): go-humanize's
//! `ParseBytes` as Promtail's `flagext.ByteSize` uses it: a number (commas
//! and a fraction allowed) and an optional case-insensitive unit, space
//! allowed between them: `b`; SI `k`/`kb`, `m`/`mb`, `g`/`gb`, `t`/`tb`,
//! `p`/`pb`, `e`/`eb` (powers of 1000); IEC `ki`/`kib` … `ei`/`eib` (powers
//! of 1024). A bare YAML integer is bytes.
//!
//! Must never: accept a malformed value silently or overflow; errors quote
//! the value and say what was wrong.

use serde::{Deserializer, Serializer};
use std::time::Duration;

/// Go's limit: `time.Duration` is an `i64` of nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Parses a Go `time.ParseDuration` string, plus the `d`, `w`, `y` units.
pub fn parse(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}");
    let mut rest = s;
    if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    } else if let Some(r) = rest.strip_prefix('-') {
        // Go accepts `-0s`; any other negative value is refused.
        return match parse(r) {
            Ok(d) if d.is_zero() && !r.starts_with(['+', '-']) => Ok(d),
            Ok(_) => Err(format!("negative duration {s:?} is not allowed")),
            Err(e) => Err(e),
        };
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        // Integer part.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_digits = &rest[..int_len];
        rest = &rest[int_len..];
        // Fraction.
        let mut frac_digits = "";
        if let Some(r) = rest.strip_prefix('.') {
            let frac_len = r.bytes().take_while(u8::is_ascii_digit).count();
            frac_digits = &r[..frac_len];
            rest = &r[frac_len..];
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(bad());
        }
        // Unit.
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "d" => 86_400 * 1_000_000_000,
            "w" => 7 * 86_400 * 1_000_000_000,
            "y" => 365 * 86_400 * 1_000_000_000,
            "" => return Err(format!("missing unit in duration {s:?}")),
            u => return Err(format!("unknown unit {u:?} in duration {s:?}")),
        };
        let int: u128 = if int_digits.is_empty() {
            0
        } else {
            // More than 39 digits overflows u128; anything over 20 is already
            // past the limit.
            if int_digits.len() > 20 {
                return Err(bad());
            }
            int_digits.parse().map_err(|_| bad())?
        };
        let mut nanos = int.checked_mul(per_unit).ok_or_else(bad)?;
        // Fraction: digits beyond nanosecond precision of the unit are
        // truncated, as Go does.
        let mut scale: u128 = 1;
        let mut frac: u128 = 0;
        // 20 digits keep `frac * per_unit` inside u128.
        for d in frac_digits.bytes().take(20) {
            frac = frac * 10 + u128::from(d - b'0');
            scale *= 10;
        }
        nanos += frac * per_unit / scale;
        total = total.checked_add(nanos).ok_or_else(bad)?;
        if total > MAX_NANOS {
            return Err(format!("duration {s:?} is too large"));
        }
    }
    let secs = (total / 1_000_000_000) as u64;
    let sub = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, sub))
}

/// Formats a duration the way Go's `Duration.String` does for whole units
/// (`1h30m0s` style is shortened to `1h30m`): for config dumps and messages.
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if !nanos.is_multiple_of(1_000_000_000) {
        if nanos.is_multiple_of(1_000_000) {
            return format!("{}ms", nanos / 1_000_000);
        }
        if nanos.is_multiple_of(1_000) {
            return format!("{}us", nanos / 1_000);
        }
        return format!("{nanos}ns");
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    let h = secs / 3600;
    secs %= 3600;
    let m = secs / 60;
    secs %= 60;
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if secs > 0 {
        out.push_str(&format!("{secs}s"));
    }
    out
}

/// Parses a byte size (go-humanize `ParseBytes` rules; see the module
/// comment).
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(t.len());
    let num: String = t[..split].chars().filter(|&c| c != ',').collect();
    if num.is_empty() || num == "." {
        return Err(format!("invalid byte size {s:?}"));
    }
    let mult: u64 = match t[split..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "ki" | "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mi" | "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gi" | "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "ti" | "tib" => 1 << 40,
        "p" | "pb" => 1_000_000_000_000_000,
        "pi" | "pib" => 1 << 50,
        "e" | "eb" => 1_000_000_000_000_000_000,
        "ei" | "eib" => 1 << 60,
        u => return Err(format!("unknown unit {u:?} in byte size {s:?}")),
    };
    let bytes = if let Ok(n) = num.parse::<u64>() {
        n.checked_mul(mult)
    } else {
        let f: f64 = num
            .parse()
            .map_err(|_| format!("invalid byte size {s:?}"))?;
        let v = f * mult as f64;
        (v.is_finite() && v < u64::MAX as f64).then_some(v as u64)
    };
    bytes
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| format!("byte size {s:?} is too large"))
}

/// Takes a string or an unsigned integer and converts it. A visitor (not an
/// untagged enum) so that errors are raised at the value and keep its line.
struct Visit<T> {
    what: &'static str,
    from_str: fn(&str) -> Result<T, String>,
    from_u64: fn(u64) -> Result<T, String>,
}

impl<T> serde::de::Visitor<'_> for Visit<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.what)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        (self.from_str)(v).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
        (self.from_u64)(v).map_err(E::custom)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
        match u64::try_from(v) {
            Ok(u) => (self.from_u64)(u).map_err(E::custom),
            Err(_) => Err(E::custom(format!(
                "{} must not be negative, got {v}",
                self.what
            ))),
        }
    }
}

/// serde `with` support: a duration string, or a bare integer (nanoseconds,
/// as Go's YAML decoder reads a `time.Duration`).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(Visit {
        what: "a duration such as 10s, 500ms or 1h30m",
        from_str: parse,
        from_u64: |n| Ok(Duration::from_nanos(n)),
    })
}

/// serde `with` support: writes [`format`]'s form.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

/// serde `deserialize_with` for byte sizes: a size string or a bare integer.
pub fn de_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    d.deserialize_any(Visit {
        what: "a byte size such as 256KB, 1MiB or 4096",
        from_str: parse_bytes,
        from_u64: |n| usize::try_from(n).map_err(|_| format!("byte size {n} is too large")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse("500ms").unwrap(), ms(500));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse("2h45m10.5s").unwrap(),
            ms((2 * 3600 + 45 * 60) * 1000 + 10_500)
        );
        assert_eq!(parse("1.5s").unwrap(), ms(1500));
        assert_eq!(parse(".5s").unwrap(), ms(500));
        assert_eq!(parse("5.s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse("+3m").unwrap(), Duration::from_secs(180));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(parse("-0").unwrap(), Duration::ZERO);
        assert_eq!(parse("-0s").unwrap(), Duration::ZERO);
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse("1ns").unwrap(), Duration::from_nanos(1));
        assert_eq!(parse("3us").unwrap(), Duration::from_micros(3));
        assert_eq!(parse("3µs").unwrap(), Duration::from_micros(3));
        assert_eq!(parse("3μs").unwrap(), Duration::from_micros(3));
        // Exact: no float rounding.
        assert_eq!(parse("1.000000001s").unwrap(), Duration::new(1, 1));
        assert_eq!(parse("0.1h").unwrap(), Duration::from_secs(360));
        // Sub-nanosecond digits are truncated.
        assert_eq!(parse("1.9ns").unwrap(), Duration::from_nanos(1));
    }

    #[test]
    fn prometheus_units() {
        assert_eq!(parse("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse("2w").unwrap(), Duration::from_secs(14 * 86_400));
        assert_eq!(parse("1y").unwrap(), Duration::from_secs(365 * 86_400));
        assert_eq!(
            parse("1d12h").unwrap(),
            Duration::from_secs(86_400 + 43_200)
        );
    }

    #[test]
    fn bad_durations() {
        for s in [
            "",
            "10",
            "5x",
            "s",
            ".s",
            ".",
            "1.2.3s",
            "-1s",
            "1s ",
            " 1s",
            "1 s",
            "1sec",
            "99999999999999999999999h",
            "300y",
            "1h-1m",
        ] {
            assert!(parse(s).is_err(), "{s:?} should not parse");
        }
        assert!(parse("5x").unwrap_err().contains("\"x\""));
        assert!(parse("10").unwrap_err().contains("missing unit"));
        // Right at Go's limit.
        assert!(parse("2562047h").is_ok());
        assert!(parse("2562048h").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(ms(500)), "500ms");
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format(Duration::from_secs(300)), "5m");
        assert_eq!(format(Duration::from_nanos(7)), "7ns");
        for s in ["1h30m", "5m", "10s", "500ms", "1h0m1s", "250us", "3ns"] {
            let d = parse(s).unwrap();
            assert_eq!(parse(&format(d)).unwrap(), d, "{s}");
        }
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("256KB").unwrap(), 256_000);
        assert_eq!(parse_bytes("256kb").unwrap(), 256_000);
        assert_eq!(parse_bytes("256 KiB").unwrap(), 256 << 10);
        assert_eq!(parse_bytes("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("1mi").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("1,024 b").unwrap(), 1024);
        assert_eq!(parse_bytes("1.5k").unwrap(), 1500);
        assert_eq!(parse_bytes("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_bytes("0").unwrap(), 0);
        for s in ["", "KB", "1XB", "1.2.3", "-1", "99999999999999999999EB"] {
            assert!(parse_bytes(s).is_err(), "{s:?} should not parse");
        }
    }

    #[derive(Debug, Deserialize)]
    struct T {
        #[serde(with = "super")]
        d: Duration,
        #[serde(deserialize_with = "de_bytes")]
        b: usize,
    }

    #[test]
    fn yaml_forms() {
        let t: T = serde_yaml_ng::from_str("d: 1m\nb: 1MB").unwrap();
        assert_eq!((t.d, t.b), (Duration::from_secs(60), 1_000_000));
        let t: T = serde_yaml_ng::from_str("d: 0\nb: 4096").unwrap();
        assert_eq!((t.d, t.b), (Duration::ZERO, 4096));
        assert!(serde_yaml_ng::from_str::<T>("d: 1x\nb: 1").is_err());
        assert!(serde_yaml_ng::from_str::<T>("d: 1s\nb: lots").is_err());
        assert!(serde_yaml_ng::from_str::<T>("d: -5\nb: 1").is_err());
        assert!(serde_yaml_ng::from_str::<T>("d: [1]\nb: 1").is_err());
        // The error is located at the value.
        let e = serde_yaml_ng::from_str::<T>("b: 1\nd: 5 parsecs").unwrap_err();
        assert_eq!(e.location().map(|l| l.line()), Some(2));
    }
}
