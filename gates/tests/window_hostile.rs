//! Hostile `window` gate requests: a gate request can come from anywhere on
//! the bus, not only from a validated plan, so no duration, clock or cron in
//! it may panic the evaluator. Each must answer `Fail` (or an honest
//! pending/pass) with a reason. Regression for "durability gaps", gap 1:
//! `window: { cron: "* * * * *", duration: 9000000000h }` panicked with
//! "`DateTime + TimeDelta` overflowed" and crash-looped `baton gates`.

use baton_gates::kinds::{self, window, Answer};
use baton_proto::v1::{gate_spec::Kind, GateRequest, GateSpec, Verdict, WindowGate};

const H: u64 = 3_600_000;
/// 2026-06-10T02:00:00Z.
const NOW: i64 = 1_781_056_800_000;

fn gate(cron: &str, duration_ms: u64, timezone: &str) -> WindowGate {
    WindowGate {
        cron: cron.into(),
        duration_ms,
        timezone: timezone.into(),
    }
}

fn request(g: WindowGate) -> GateRequest {
    GateRequest {
        run_id: "r1".into(),
        phase_id: "p".into(),
        spec: Some(GateSpec {
            kind: Some(Kind::Window(g)),
        }),
        ..Default::default()
    }
}

#[track_caller]
fn fails_with(a: &Answer, words: &str) {
    assert_eq!(a.verdict, Verdict::Fail, "{a:?}");
    assert_eq!(a.retry_at_ms, 0, "{a:?}");
    assert_eq!(a.reasons.len(), 1, "{a:?}");
    assert!(a.reasons[0].contains(words), "{a:?}");
}

/// The request of the issue, as the evaluator service sees it (its own clock).
#[test]
fn a_window_of_9000000000h_fails_with_a_reason_instead_of_panicking() {
    let g = gate("* * * * *", 9_000_000_000 * H, "");
    let a = kinds::evaluate(&request(g.clone()));
    fails_with(
        &a,
        "window duration 9000000000h is longer than 8784h (366 days)",
    );
    let a = window::evaluate(&g, NOW);
    fails_with(
        &a,
        "window duration 9000000000h is longer than 8784h (366 days)",
    );
}

#[test]
fn extreme_durations_fail_with_a_reason() {
    for cron in ["* * * * *", "0 2 * * *", "0 0 29 2 *"] {
        for tz in ["", "Europe/Berlin", "Pacific/Kiritimati", "Etc/GMT+12"] {
            for duration_ms in [
                u64::MAX,
                u64::MAX - 1,
                i64::MAX as u64,
                i64::MAX as u64 + 1,
                (i64::MAX / 1000) as u64,
                366 * 24 * H + 1,
            ] {
                let a = window::evaluate(&gate(cron, duration_ms, tz), NOW);
                fails_with(&a, "is longer than 8784h (366 days)");
                assert!(
                    a.reasons[0].contains("`duration`"),
                    "the reason says how to fix it: {a:?}"
                );
            }
            let a = window::evaluate(&gate(cron, 0, tz), NOW);
            fails_with(&a, "duration is 0");
        }
    }
}

#[test]
fn the_longest_window_allowed_still_evaluates() {
    // 366 days exactly: open (every minute starts one), never a panic.
    let a = window::evaluate(&gate("* * * * *", 366 * 24 * H, ""), NOW);
    assert_eq!(a.verdict, Verdict::Pass, "{a:?}");
    // A yearly window of 366 days is open all the time, across the merge walk.
    let a = window::evaluate(&gate("0 0 1 1 *", 366 * 24 * H, "Europe/Berlin"), NOW);
    assert_eq!(a.verdict, Verdict::Pass, "{a:?}");
    // One millisecond: open at the start, closed right after.
    let a = window::evaluate(&gate("0 2 * * *", 1, ""), NOW);
    assert_eq!(a.verdict, Verdict::Pass, "{a:?}");
    let a = window::evaluate(&gate("0 2 * * *", 1, ""), NOW + 1);
    assert_eq!(a.verdict, Verdict::Pending, "{a:?}");
}

#[test]
fn clocks_out_of_range_fail_with_a_reason() {
    for now in [
        i64::MIN,
        i64::MIN + 1,
        -1,
        i64::MAX,
        i64::MAX - 1,
        // 4000-01-01T00:00:00Z, just past the last moment a clock may read.
        64_060_588_800_000,
        // 10000-01-01T00:00:00Z.
        253_402_300_800_000,
        // Beyond what chrono can represent at all.
        8_210_298_412_800_000,
    ] {
        for tz in ["", "Asia/Kolkata", "America/St_Johns"] {
            let a = window::evaluate(&gate("* * * * *", H, tz), now);
            fails_with(&a, "clock is out of range");
        }
    }
}

#[test]
fn clocks_at_the_edges_answer_without_panicking() {
    // The first and last moments a clock may read, in zones far east and west,
    // with the longest window: whatever the answer, it is an answer.
    for now in [0, 1, 64_060_588_799_998, 64_060_588_799_999] {
        for tz in ["", "Pacific/Kiritimati", "Etc/GMT+12", "America/St_Johns"] {
            for cron in ["* * * * *", "59 23 31 12 *", "0 0 1 1 *", "0 0 29 2 *"] {
                for duration_ms in [1, H, 366 * 24 * H] {
                    let a = window::evaluate(&gate(cron, duration_ms, tz), now);
                    assert!(!a.reasons.is_empty(), "{cron} {tz} {now}: {a:?}");
                    if a.verdict == Verdict::Pending {
                        assert!(a.retry_at_ms > now, "{cron} {tz} {now}: {a:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn crons_that_never_match_fail_with_a_reason() {
    // 30 and 31 February, 31 April: valid fields, no start ever.
    for cron in ["0 0 30 2 *", "0 0 31 2 *", "0 0 31 4 *", "59 23 31 11 *"] {
        for tz in ["", "Europe/Berlin"] {
            let a = window::evaluate(&gate(cron, H, tz), NOW);
            fails_with(&a, "never starts a window");
            let a = window::evaluate(&gate(cron, u64::MAX, tz), NOW);
            assert_eq!(a.verdict, Verdict::Fail, "{a:?}");
        }
    }
}

#[test]
fn malformed_specs_fail_with_a_reason() {
    for (cron, tz, words) in [
        ("", "", "has 0 fields"),
        ("* * * * * *", "", "has 6 fields"),
        ("99 * * * *", "", "not valid"),
        ("* * * * *", "Mars/Olympus", "is unknown"),
        ("* * * * *", "+25:00", "is unknown"),
        // An empty list selects no minute; it used to cost seconds of CPU per ask.
        (", * * * *", "", "selects no minute"),
        ("0 0 * * ,", "Europe/Berlin", "selects no day-of-week"),
    ] {
        let a = window::evaluate(&gate(cron, u64::MAX, tz), NOW);
        fails_with(&a, words);
        let a = kinds::evaluate(&request(gate(cron, H, tz)));
        fails_with(&a, words);
    }
}
