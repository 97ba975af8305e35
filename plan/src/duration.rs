//! Durations as plans write them: `250ms`, `30s`, `5m`, `1h30m`.
//!
//! Deliberately stricter than `humantime`: one or more `<number><unit>`
//! parts with no spaces, units `ms`, `s`, `m`, `h`. `30 seconds` or a bare
//! `30` is rejected so that a typo never silently becomes a different limit.
//!
//! Every duration has a ceiling: the field's own (`MAX_TIMEOUT`, …) and,
//! above all of them, [`MAX_DURATION`]. A plan duration is added to clocks
//! (a window's start, an approval's deadline, a canary's hold), so a value
//! that loads must never overflow one of them.

use std::time::Duration;

use super::node::{Cx, Field};

const DAY: u64 = 24 * 60 * 60;

/// The longest duration anything in a plan may be: 366 days (`8784h`).
/// [`parse_duration`] refuses anything longer.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * DAY);
/// The longest timeout a task may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(DAY);
/// The longest a canary step may hold before its gates are asked.
pub const MAX_CANARY_HOLD: Duration = Duration::from_secs(DAY);
/// The longest an approval gate may wait for its quorum (`expires`): 90 days.
pub const MAX_APPROVAL_EXPIRY: Duration = Duration::from_secs(90 * DAY);
/// The longest a maintenance window may stay open (`duration`): 366 days.
/// A longer one is open all the time; the `window` evaluator refuses it too.
pub const MAX_WINDOW_DURATION: Duration = MAX_DURATION;

/// Why a text is no duration.
enum Refused {
    /// Not `<number><unit>…`.
    Malformed,
    /// More milliseconds than a `u64` holds.
    Overflow,
}

/// Parse `30s`, `5m`, `1h30m`, `250ms`, up to [`MAX_DURATION`]. The error
/// is the hint-free message.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match millis(text) {
        Ok(ms) if ms <= MAX_DURATION.as_millis() as u64 => Ok(Duration::from_millis(ms)),
        Ok(_) => Err(format!(
            "duration `{text}` is longer than {}, the most a plan may ask for",
            limit(MAX_DURATION)
        )),
        Err(_) => Err(format!("bad duration `{text}`")),
    }
}

/// The milliseconds `text` spells, with every step checked.
fn millis(text: &str) -> Result<u64, Refused> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(Refused::Malformed);
    }
    let mut total: u64 = 0;
    let mut overflow = false;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(Refused::Malformed);
        }
        // Only ASCII digits are left, so the one failure is a number too big.
        let number: Option<u64> = rest[..digits].parse().ok();
        rest = &rest[digits..];
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let millis_per_unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(Refused::Malformed),
        };
        rest = &rest[unit_len..];
        // Past what a u64 holds: an error, but only once the whole text
        // is known to be well formed (a malformed one says so instead).
        match number
            .and_then(|n| n.checked_mul(millis_per_unit))
            .and_then(|ms| total.checked_add(ms))
        {
            Some(t) => total = t,
            None => overflow = true,
        }
    }
    if overflow {
        Err(Refused::Overflow)
    } else {
        Ok(total)
    }
}

/// A duration field of a plan capped at `max`. Records one diagnostic at the
/// value and returns `None` when the text is no duration (`bad_hint` says
/// how to write one) or is longer than `max`: "<what> <text> is longer than
/// <max>" with `long_hint`. A value past what a number holds is longer than
/// any cap, so it gets the same message. Zero is left to the caller.
pub(crate) fn capped(
    cx: &mut Cx,
    f: Field<'_>,
    text: &str,
    what: &str,
    max: Duration,
    bad_hint: &str,
    long_hint: &str,
) -> Option<Duration> {
    debug_assert!(max <= MAX_DURATION);
    match millis(text) {
        Ok(ms) if ms <= max.as_millis() as u64 => Some(Duration::from_millis(ms)),
        Err(Refused::Malformed) => {
            cx.err(f.pos(), format!("bad duration `{text}`"), bad_hint);
            None
        }
        Ok(_) | Err(Refused::Overflow) => {
            cx.err(
                f.pos(),
                format!("{what} {text} is longer than {}", limit(max)),
                long_hint,
            );
            None
        }
    }
}

/// A limit for people: `24h`, or `2160h (90 days)` when it is days long.
pub(crate) fn limit(max: Duration) -> String {
    let secs = max.as_secs();
    // Whole days (no `is_multiple_of`: the workspace builds on Rust 1.85).
    if secs > DAY && secs / DAY * DAY == secs && max.subsec_nanos() == 0 {
        format!("{} ({} days)", format_duration(max), secs / DAY)
    } else {
        format_duration(max)
    }
}

/// The shortest plan spelling of `d`, e.g. `1h30m`, `250ms`, `0s`.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(
            parse_duration("1m30s500ms"),
            Ok(Duration::from_millis(90_500))
        );
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_other_spellings() {
        for bad in [
            "",
            "30",
            "30 seconds",
            "s",
            "1.5h",
            "5d",
            "-1s",
            "1h 30m",
            "99999999999999999999h",
        ] {
            assert_eq!(
                parse_duration(bad),
                Err(format!("bad duration `{bad}`")),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_more_than_any_plan_may_ask_for() {
        assert_eq!(parse_duration("8784h"), Ok(MAX_DURATION));
        assert_eq!(
            parse_duration("8783h59m59s999ms"),
            Ok(MAX_DURATION - Duration::from_millis(1))
        );
        for long in ["8784h1ms", "9000000000h", "18446744073709551615ms"] {
            assert_eq!(
                parse_duration(long),
                Err(format!(
                    "duration `{long}` is longer than 8784h (366 days), the most a plan may ask for"
                )),
                "{long}"
            );
        }
        // Past a u64 of milliseconds, in the number or in the sum.
        for huge in [
            "18446744073709551616ms",
            "5124095576030432h",
            "18446744073709551615ms1ms",
        ] {
            assert_eq!(parse_duration(huge), Err(format!("bad duration `{huge}`")));
            assert!(matches!(millis(huge), Err(Refused::Overflow)), "{huge}");
        }
        // Too big but malformed after: malformed is the better message.
        assert!(matches!(
            millis("99999999999999999999h 1s"),
            Err(Refused::Malformed)
        ));
        assert!(matches!(
            millis("99999999999999999999d"),
            Err(Refused::Malformed)
        ));
    }

    #[test]
    fn limits_read_in_hours_and_days() {
        assert_eq!(limit(MAX_TIMEOUT), "24h");
        assert_eq!(limit(MAX_CANARY_HOLD), "24h");
        assert_eq!(limit(MAX_APPROVAL_EXPIRY), "2160h (90 days)");
        assert_eq!(limit(MAX_WINDOW_DURATION), "8784h (366 days)");
        assert_eq!(limit(MAX_DURATION), "8784h (366 days)");
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
