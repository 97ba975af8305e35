//! Maintenance windows: whether one is open at a given time, and checking a
//! window's cron and time zone for the plan validator.
//!
//! A window opens at every start the five-field cron produces in the gate's
//! time zone and stays open for `duration_ms`. Starts are found on wall-clock
//! time in that zone (croner resolves DST gaps and repeats), then compared on
//! the absolute time line, so a window keeps its real length across a DST
//! change. The `window` gate kind (`baton_gates::kinds::window`) turns a
//! [`Status`] into a verdict.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// Overlapping windows merge; this bounds the walk that merges them.
const MAX_MERGED_WINDOWS: usize = 1000;

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
/// is an error, one line for a person.
pub fn status(cron: &str, timezone: &str, duration_ms: u64, now_ms: i64) -> Result<Status, String> {
    let (c, tz) = parse(cron, timezone)?;
    if duration_ms == 0 {
        return Err("window duration is 0 — give it a positive duration, e.g. `4h`".into());
    }
    let duration = chrono::Duration::milliseconds(i64::try_from(duration_ms).unwrap_or(i64::MAX));
    let now = Utc
        .timestamp_millis_opt(now_ms)
        .single()
        .ok_or_else(|| format!("the evaluator's clock is out of range ({now_ms} ms)"))?
        .with_timezone(&tz);
    // The latest start at or before now ends last of all earlier starts: the
    // window is open iff that one has not ended yet.
    let last = c.find_previous_occurrence(&now, true).ok();
    if let Some(start) = last {
        let mut end = start + duration;
        if now < end {
            // A window that starts again before it ends stays open across both.
            let mut s = start;
            for _ in 0..MAX_MERGED_WINDOWS {
                match c.find_next_occurrence(&s, false) {
                    Ok(next) if next <= end => {
                        end = next + duration;
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
        let a = evaluate(&g, ms("2026-11-28T03:00:00+01:00"));
        assert!(is_open(&a), "{a:?}");
        assert_eq!(
            reason(&a),
            "window open since 2026-11-28T02:00:00+01:00 (Europe/Berlin) until 06:00"
        );
        let a = evaluate(&g, ms("2026-11-27T12:00:00+01:00"));
        assert!(is_closed(&a), "{a:?}");
        assert_eq!(next_ms(&a), ms("2026-11-28T02:00:00+01:00"));
        assert_eq!(
            reason(&a),
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
        let a = evaluate(&g, start + 4 * H as i64);
        assert!(is_closed(&a), "{a:?}");
        assert_eq!(next_ms(&a), ms("2026-06-11T02:00:00Z"));
        assert!(reason(&a).contains("(UTC)"), "{a:?}");
    }

    #[test]
    fn weekday_ranges() {
        let g = gate("0 9 * * MON-FRI", 8, "Europe/Berlin");
        // Friday 2026-11-27 10:00 open; Saturday closed until Monday 09:00.
        assert!(is_open(&evaluate(&g, ms("2026-11-27T10:00:00+01:00"))));
        let a = evaluate(&g, ms("2026-11-28T10:00:00+01:00"));
        assert!(is_closed(&a), "{a:?}");
        assert_eq!(next_ms(&a), ms("2026-11-30T09:00:00+01:00"));
    }

    #[test]
    fn window_spanning_midnight() {
        let g = gate("0 22 * * *", 4, "Europe/Berlin");
        let a = evaluate(&g, ms("2026-11-28T01:30:00+01:00"));
        assert!(is_open(&a), "{a:?}");
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
        let a = evaluate(&g, ms("2026-10-25T02:30:00+01:00"));
        assert!(is_open(&a), "{a:?}");
        assert!(reason(&a).contains("2026-10-25T01:00:00+02:00"), "{a:?}");
        assert!(is_closed(&evaluate(&g, ms("2026-10-25T03:00:00+01:00"))));
    }

    #[test]
    fn next_opening_far_away() {
        let g = gate("0 0 29 2 *", 1, "");
        let a = evaluate(&g, ms("2026-03-01T00:00:00Z"));
        assert!(is_closed(&a), "{a:?}");
        assert_eq!(next_ms(&a), ms("2028-02-29T00:00:00Z"));
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
}
