//! `window`: passes while a maintenance window is open.
//!
//! When a window is open is [`baton_plan::window::status`]; this file turns
//! its answer into a verdict: open passes, closed is pending until the next
//! opening, and a spec that cannot be evaluated fails with the reason.
//!
//! The request may come from anywhere on the bus, not only from a validated
//! plan: `status` refuses a duration over 366 days or a clock outside
//! 1970–3999 and checks every time sum, so no input panics the evaluator
//! (`tests/window_hostile.rs`, `fuzz/fuzz_targets/window.rs`).

use baton_plan::window::{self, Status};
use baton_proto::v1::{Verdict, WindowGate};

use super::Answer;

pub fn evaluate(g: &WindowGate, now_ms: i64) -> Answer {
    match window::status(&g.cron, &g.timezone, g.duration_ms, now_ms) {
        Ok(Status::Open { reason }) => Answer::pass(reason),
        Ok(Status::Closed { reason, next_ms }) => Answer {
            verdict: Verdict::Pending,
            reasons: vec![reason],
            retry_at_ms: next_ms,
        },
        Err(reason) => Answer::fail(vec![reason]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(cron: &str, duration_ms: u64) -> WindowGate {
        WindowGate {
            cron: cron.into(),
            duration_ms,
            timezone: String::new(),
        }
    }

    #[test]
    fn open_passes_closed_is_pending_and_bad_specs_fail() {
        // 2026-06-10T02:00:00Z, when `0 2 * * *` opens.
        let start = 1_781_056_800_000;
        let a = evaluate(&gate("0 2 * * *", 3_600_000), start);
        assert_eq!(a.verdict, Verdict::Pass, "{a:?}");
        assert_eq!(a.retry_at_ms, 0);
        assert!(a.reasons[0].starts_with("window open since"), "{a:?}");
        let a = evaluate(&gate("0 2 * * *", 3_600_000), start - 1);
        assert_eq!(a.verdict, Verdict::Pending, "{a:?}");
        assert_eq!(a.retry_at_ms, start);
        assert!(a.reasons[0].starts_with("window closed"), "{a:?}");
        let a = evaluate(&gate("0 2 * *", 3_600_000), start);
        assert_eq!(a.verdict, Verdict::Fail, "{a:?}");
        assert!(a.reasons[0].contains("has 4 fields"), "{a:?}");
    }

    #[test]
    fn out_of_range_durations_and_clocks_fail_instead_of_panicking() {
        let start = 1_781_056_800_000;
        for d in [u64::MAX, i64::MAX as u64, 9_000_000_000 * 3_600_000] {
            let a = evaluate(&gate("* * * * *", d), start);
            assert_eq!(a.verdict, Verdict::Fail, "{a:?}");
            assert!(a.reasons[0].contains("is longer than 8784h"), "{a:?}");
        }
        for now in [i64::MIN, -1, i64::MAX] {
            let a = evaluate(&gate("* * * * *", 3_600_000), now);
            assert_eq!(a.verdict, Verdict::Fail, "{a:?}");
            assert!(a.reasons[0].contains("clock is out of range"), "{a:?}");
        }
    }
}
