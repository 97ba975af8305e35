//! Maintenance windows: whether one is open at a given time, and checking a
//! window's cron and time zone for the plan validator.
//!
//! A window opens at every start the five-field cron produces in the gate's
//! time zone and stays open for `duration_ms`. Starts are found on wall-clock
//! time in that zone (croner resolves DST gaps and repeats), then compared on
//! the absolute time line, so a window keeps its real length across a DST
//! change. The `window` gate kind (`baton_gates::kinds::window`) turns a
//! [`Status`] into a verdict.
//!
//! A gate request can come from anywhere on the bus, not only from a
//! validated plan, so [`status`] takes any input: a duration past
//! [`MAX_WINDOW_DURATION`], a clock outside [`MIN_NOW_MS`]..=[`MAX_NOW_MS`]
//! or a cron that never fires is an error with the reason, and every time
//! sum is checked. Nothing here panics (`fuzz/fuzz_targets/window.rs`).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::Cron;

use super::duration::{format_duration, limit, MAX_WINDOW_DURATION};

/// Overlapping windows merge; this bounds the walk that merges them.
const MAX_MERGED_WINDOWS: usize = 1000;

/// The earliest moment an evaluator's clock may read: the epoch.
pub const MIN_NOW_MS: i64 = 0;
/// The latest moment an evaluator's clock may read: 3999-12-31T23:59:59.999Z.
/// The cron library searches no later than the year 5000; every window
/// start, end and stamp from a clock in range, with a duration in range,
/// stays far inside what the time library represents.
pub const MAX_NOW_MS: i64 = 64_060_588_799_999;

/// Where a moment stands relative to a window. Each reason is one line for a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Open now: since when and until when.
    Open { reason: String },
    /// Closed now; opens next at `next_ms` (ms since the epoch).
    Closed { reason: String, next_ms: i64 },
}

impl Status {
    pub fn reason(&self) -> &str {
        match self {
            Status::Open { reason } | Status::Closed { reason, .. } => reason,
        }
    }
}

/// Check a window spec without evaluating it, for the plan validator: the
/// cron must have five fields and start a window some time, and the zone
/// must be an IANA name. The error is one line for a person.
pub fn check(cron: &str, timezone: &str) -> Result<(), String> {
    let (c, tz) = parse(cron, timezone)?;
    let now = Utc::now().with_timezone(&tz);
    c.find_next_occurrence(&now, false)
        .map(|_| ())
        .map_err(|e| format!("cron `{cron}` never starts a window ({e})"))
}

/// Whether the window `cron` + `duration_ms` in `timezone` (empty: UTC) is
/// open at `now_ms`, or when it opens next. A spec that cannot be evaluated
/// is an error, one line for a person; no input panics.
pub fn status(cron: &str, timezone: &str, duration_ms: u64, now_ms: i64) -> Result<Status, String> {
    let (c, tz) = parse(cron, timezone)?;
    if duration_ms == 0 {
        return Err("window duration is 0 — give it a positive duration, e.g. `4h`".into());
    }
    let duration = window_length(duration_ms)?;
    if !(MIN_NOW_MS..=MAX_NOW_MS).contains(&now_ms) {
        return Err(clock_out_of_range(now_ms));
    }
    let now = Utc
        .timestamp_millis_opt(now_ms)
        .single()
        .ok_or_else(|| clock_out_of_range(now_ms))?
        .with_timezone(&tz);
    let out_of_range = || {
        format!(
            "window `{cron}` of {} ends out of the representable time range",
            format_duration(Duration::from_millis(duration_ms))
        )
    };
    // The latest start at or before now ends last of all earlier starts: the
    // window is open iff that one has not ended yet.
    let last = c.find_previous_occurrence(&now, true).ok();
    if let Some(start) = last {
        let mut end = start
            .checked_add_signed(duration)
            .ok_or_else(out_of_range)?;
        if now < end {
            // A window that starts again before it ends stays open across both.
            let mut s = start;
            for _ in 0..MAX_MERGED_WINDOWS {
                match c.find_next_occurrence(&s, false) {
                    Ok(next) if next <= end => {
                        end = next.checked_add_signed(duration).ok_or_else(out_of_range)?;
                        s = next;
                    }
                    _ => break,
                }
            }
            return Ok(Status::Open {
                reason: format!(
                    "window open since {} until {}",
                    stamp(&start, timezone),
                    until(&start, &end)
                ),
            });
        }
    }
    let next = c
        .find_next_occurrence(&now, false)
        .map_err(|e| format!("cron `{cron}` never starts a window again ({e})"))?;
    Ok(Status::Closed {
        reason: format!("window closed; next opens {}", stamp(&next, timezone)),
        next_ms: next.timestamp_millis(),
    })
}

/// `duration_ms` as a time delta, when it is at most [`MAX_WINDOW_DURATION`].
fn window_length(duration_ms: u64) -> Result<TimeDelta, String> {
    let too_long = || {
        format!(
            "window duration {} is longer than {} — a window that long is always open; give the `window` gate a `duration` of at most {}",
            format_duration(Duration::from_millis(duration_ms)),
            limit(MAX_WINDOW_DURATION),
            format_duration(MAX_WINDOW_DURATION)
        )
    };
    if u128::from(duration_ms) > MAX_WINDOW_DURATION.as_millis() {
        return Err(too_long());
    }
    i64::try_from(duration_ms)
        .ok()
        .and_then(TimeDelta::try_milliseconds)
        .ok_or_else(too_long)
}

fn clock_out_of_range(now_ms: i64) -> String {
    format!(
        "the evaluator's clock is out of range ({now_ms} ms since the epoch; a window is evaluated between 1970 and the end of 3999) — check the clock of the host running `baton gates`"
    )
}

fn parse(cron: &str, timezone: &str) -> Result<(Cron, Tz), String> {
    let fields = cron.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "cron `{cron}` has {fields} fields — a window cron has five: minute hour day-of-month month day-of-week, e.g. `0 2 * * SAT`"
        ));
    }
    let c = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(cron)
        .map_err(|e| format!("cron `{cron}` is not valid: {e}"))?;
    // The parser takes `,` as a list of nothing. A field that selects no
    // value never matches, and the search for a start would step hour by
    // hour to the year 5000 (seconds of CPU per ask) before saying so.
    let p = &c.pattern;
    let parts = [
        ("minute", &p.minutes),
        ("hour", &p.hours),
        ("day-of-month", &p.days),
        ("month", &p.months),
        ("day-of-week", &p.days_of_week),
    ];
    for ((name, part), text) in parts.iter().zip(cron.split_whitespace()) {
        if part.values().is_empty() && !part.has_modifiers() {
            return Err(format!(
                "cron `{cron}` is not valid: its {name} field `{text}` selects no {name} — list at least one value, e.g. `0`, `1-5` or `*`"
            ));
        }
    }
    let tz = if timezone.is_empty() {
        Tz::UTC
    } else {
        Tz::from_str(timezone).map_err(|_| {
            format!("time zone `{timezone}` is unknown — give an IANA name such as `Europe/Berlin`, or leave it empty for UTC")
        })?
    };
    Ok((c, tz))
}

fn stamp(t: &DateTime<Tz>, timezone: &str) -> String {
    let zone = if timezone.is_empty() { "UTC" } else { timezone };
    format!("{} ({zone})", t.format("%Y-%m-%dT%H:%M:%S%:z"))
}

/// The end as a clock time when it falls on the start's day, in full otherwise.
fn until(start: &DateTime<Tz>, end: &DateTime<Tz>) -> String {
    if start.date_naive() == end.date_naive() {
        end.format("%H:%M").to_string()
    } else {
        end.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000;

    /// A window gate's three fields, as the `window` gate kind receives them.
    struct Gate {
        cron: String,
        duration_ms: u64,
        timezone: String,
    }

    fn gate(cron: &str, hours: u64, tz: &str) -> Gate {
        Gate {
            cron: cron.into(),
            duration_ms: hours * H,
            timezone: tz.into(),
        }
    }

    fn evaluate(g: &Gate, now_ms: i64) -> Result<Status, String> {
        status(&g.cron, &g.timezone, g.duration_ms, now_ms)
    }

    fn is_open(s: &Result<Status, String>) -> bool {
        matches!(s, Ok(Status::Open { .. }))
    }

    fn is_closed(s: &Result<Status, String>) -> bool {
        matches!(s, Ok(Status::Closed { .. }))
    }

    /// When a closed window opens next.
    fn next_ms(s: &Result<Status, String>) -> i64 {
        match s {
            Ok(Status::Closed { next_ms, .. }) => *next_ms,
            other => panic!("not closed: {other:?}"),
        }
    }

    /// The status at `now` (RFC 3339), which must be open.
    fn open_at(g: &Gate, now: &str) -> Result<Status, String> {
        let a = evaluate(g, ms(now));
        assert!(is_open(&a), "{a:?}");
        a
    }

    /// The reason at `now_ms`, when the window must be closed until `next`
    /// (RFC 3339).
    fn closed_until(g: &Gate, now_ms: i64, next: &str) -> String {
        let a = evaluate(g, now_ms);
        assert!(is_closed(&a), "{a:?}");
        assert_eq!(next_ms(&a), ms(next));
        reason(&a).to_string()
    }

    /// The one reason, whichever the outcome (an error is its own reason).
    fn reason(s: &Result<Status, String>) -> &str {
        match s {
            Ok(s) => s.reason(),
            Err(e) => e,
        }
    }

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn open_inside_and_pending_outside() {
        let g = gate("0 2 * * SAT", 4, "Europe/Berlin");
        let a = open_at(&g, "2026-11-28T03:00:00+01:00");
        assert_eq!(
            reason(&a),
            "window open since 2026-11-28T02:00:00+01:00 (Europe/Berlin) until 06:00"
        );
        let closed = closed_until(
            &g,
            ms("2026-11-27T12:00:00+01:00"),
            "2026-11-28T02:00:00+01:00",
        );
        assert_eq!(
            closed,
            "window closed; next opens 2026-11-28T02:00:00+01:00 (Europe/Berlin)"
        );
    }

    #[test]
    fn start_is_inside_and_end_is_outside() {
        let g = gate("0 2 * * *", 4, "");
        let start = ms("2026-06-10T02:00:00Z");
        assert!(is_open(&evaluate(&g, start)));
        assert!(is_closed(&evaluate(&g, start - 1)));
        assert!(is_open(&evaluate(&g, start + 4 * H as i64 - 1)));
        let closed = closed_until(&g, start + 4 * H as i64, "2026-06-11T02:00:00Z");
        assert!(closed.contains("(UTC)"), "{closed:?}");
    }

    #[test]
    fn weekday_ranges() {
        let g = gate("0 9 * * MON-FRI", 8, "Europe/Berlin");
        // Friday 2026-11-27 10:00 open; Saturday closed until Monday 09:00.
        assert!(is_open(&evaluate(&g, ms("2026-11-27T10:00:00+01:00"))));
        closed_until(
            &g,
            ms("2026-11-28T10:00:00+01:00"),
            "2026-11-30T09:00:00+01:00",
        );
    }

    #[test]
    fn window_spanning_midnight() {
        let g = gate("0 22 * * *", 4, "Europe/Berlin");
        let a = open_at(&g, "2026-11-28T01:30:00+01:00");
        assert!(
            reason(&a).ends_with("until 2026-11-28T02:00:00+01:00"),
            "{a:?}"
        );
        assert!(is_closed(&evaluate(&g, ms("2026-11-28T02:00:00+01:00"))));
    }

    #[test]
    fn dst_days_in_berlin() {
        // 2026-03-29: clocks jump 02:00 → 03:00. A 01:00 window of 2 h ends
        // at 04:00 local (two real hours later), not 03:00.
        let g = gate("0 1 * * *", 2, "Europe/Berlin");
        assert!(is_open(&evaluate(&g, ms("2026-03-29T03:30:00+02:00"))));
        assert!(is_closed(&evaluate(&g, ms("2026-03-29T04:00:00+02:00"))));
        // A start inside the gap (02:30 does not exist) opens right after it.
        let g = gate("30 2 * * *", 1, "Europe/Berlin");
        let a = evaluate(&g, ms("2026-03-29T01:00:00+01:00"));
        assert!(is_closed(&a), "{a:?}");
        let opens = next_ms(&a);
        assert!(
            opens >= ms("2026-03-29T03:00:00+02:00") && opens <= ms("2026-03-29T03:30:00+02:00"),
            "{a:?}"
        );
        // 2026-10-25: clocks go 03:00 → 02:00. The summer offset is kept in the stamp.
        let g = gate("0 1 * * *", 3, "Europe/Berlin");
        let a = open_at(&g, "2026-10-25T02:30:00+01:00");
        assert!(reason(&a).contains("2026-10-25T01:00:00+02:00"), "{a:?}");
        assert!(is_closed(&evaluate(&g, ms("2026-10-25T03:00:00+01:00"))));
    }

    #[test]
    fn next_opening_far_away() {
        let g = gate("0 0 29 2 *", 1, "");
        closed_until(&g, ms("2026-03-01T00:00:00Z"), "2028-02-29T00:00:00Z");
    }

    #[test]
    fn bad_specs_fail_with_a_reason() {
        let a = evaluate(&gate("0 2 * *", 1, ""), 0);
        assert!(a.is_err(), "{a:?}");
        assert!(reason(&a).contains("has 4 fields"), "{a:?}");
        let a = evaluate(&gate("0 2 * * FOO", 1, ""), 0);
        assert!(reason(&a).contains("not valid"), "{a:?}");
        let a = evaluate(&gate("0 2 * * *", 1, "Mars/Olympus"), 0);
        assert!(reason(&a).contains("`Mars/Olympus` is unknown"), "{a:?}");
        let a = evaluate(&gate("0 2 * * *", 0, ""), 0);
        assert!(reason(&a).contains("duration is 0"), "{a:?}");
        assert!(check("0 2 * * MON-FRI", "Europe/Berlin").is_ok());
        assert!(check("0 2 * * *", "Nowhere").is_err());
        assert!(check("0 0 0 2 * *", "").unwrap_err().contains("6 fields"));
    }

    #[test]
    fn durations_past_the_cap_fail_instead_of_overflowing_the_clock() {
        let now = ms("2026-06-10T02:00:00Z");
        for d in [u64::MAX, i64::MAX as u64, 9_000_000_000 * H, 8784 * H + 1] {
            let a = status("* * * * *", "", d, now);
            let e = a.expect_err("refused");
            assert!(
                e.starts_with("window duration ") && e.contains("is longer than 8784h (366 days)"),
                "{e}"
            );
        }
        assert_eq!(
            status("* * * * *", "", 9_000_000_000 * H, now).unwrap_err(),
            "window duration 9000000000h is longer than 8784h (366 days) — a window that long is always open; give the `window` gate a `duration` of at most 8784h"
        );
        assert!(is_open(&status("0 2 1 1 *", "", 8784 * H, now)));
    }

    #[test]
    fn clocks_out_of_range_fail() {
        for now in [i64::MIN, -1, MAX_NOW_MS + 1, i64::MAX] {
            let e = status("* * * * *", "", H, now).unwrap_err();
            assert!(
                e.starts_with("the evaluator's clock is out of range"),
                "{e}"
            );
        }
        for now in [MIN_NOW_MS, MAX_NOW_MS] {
            for tz in ["", "Pacific/Kiritimati", "Etc/GMT+12"] {
                assert!(
                    is_open(&status("* * * * *", tz, 8784 * H, now)),
                    "{now} {tz}"
                );
            }
        }
    }

    #[test]
    fn fields_that_select_nothing_fail_at_once() {
        // Found by fuzzing: `,` parses as an empty list, and the search for
        // a start then took ~6 s (release) per check, ~10 s per evaluation.
        for (cron, name) in [
            (", * * * *", "minute"),
            (", 1-5,2 21,15 */2 ,6", "minute"),
            ("0 , * * *", "hour"),
            ("0 0 , * *", "day-of-month"),
            ("0 0 * , *", "month"),
            ("0 0 * * ,", "day-of-week"),
        ] {
            let t = std::time::Instant::now();
            let e = check(cron, "Pacific/Kiritimati").unwrap_err();
            assert!(e.contains(&format!("its {name} field")), "{e}");
            let e = status(cron, "", H, ms("2026-06-10T02:00:00Z")).unwrap_err();
            assert!(e.contains("selects no"), "{e}");
            assert!(t.elapsed() < std::time::Duration::from_secs(1), "{cron}");
        }
        // Modifiers select days without listing values.
        assert!(check("0 0 L * *", "").is_ok());
        assert!(check("0 0 * * 5L", "").is_ok());
        assert!(check("0 0 15W * *", "").is_ok());
    }

    #[test]
    fn crons_that_never_fire_fail() {
        let now = ms("2026-06-10T02:00:00Z");
        let e = status("0 0 30 2 *", "Europe/Berlin", H, now).unwrap_err();
        assert!(e.contains("never starts a window again"), "{e}");
        assert!(check("0 0 31 4 *", "")
            .unwrap_err()
            .contains("never starts a window"));
    }
}
