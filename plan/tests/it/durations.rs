//! Every duration a plan writes has a documented ceiling, and a value past
//! it (or past what a number can hold) is a diagnostic at the value naming
//! the field, the limit and the fix — never a plan that loads and later
//! overflows a clock somewhere (issue "durability gaps", gap 1).

use std::time::Duration;

use baton_plan::{
    self as plan, parse_duration, Diagnostic, GateSpec, MAX_APPROVAL_EXPIRY, MAX_CANARY_HOLD,
    MAX_DURATION, MAX_TIMEOUT, MAX_WINDOW_DURATION,
};

const H: u64 = 3600;
const DAY: u64 = 24 * H;

/// A one-phase plan with `phase_extra` under the phase and `task_extra` in its task.
fn plan_src(task_extra: &str, phase_extra: &str) -> String {
    format!(
        "name: t\nroles:\n  build: {{ image: img }}\nphases:\n  - id: one\n    tasks:\n      - id: a\n        role: build\n        run: make\n{task_extra}{phase_extra}"
    )
}

fn gate(g: &str) -> String {
    plan_src("", &format!("    gates:\n      - {g}\n"))
}

/// The one diagnostic of a plan with exactly one problem.
fn only(src: &str) -> Diagnostic {
    match plan::load("p.yaml", src) {
        Ok(_) => panic!("plan loaded but should not:\n{src}"),
        Err(mut e) => {
            assert_eq!(e.diagnostics.len(), 1, "{e}");
            e.diagnostics.remove(0)
        }
    }
}

#[test]
fn the_caps_are_the_documented_ones() {
    assert_eq!(MAX_TIMEOUT, Duration::from_secs(DAY));
    assert_eq!(MAX_CANARY_HOLD, Duration::from_secs(DAY));
    assert_eq!(MAX_APPROVAL_EXPIRY, Duration::from_secs(90 * DAY));
    assert_eq!(MAX_WINDOW_DURATION, Duration::from_secs(366 * DAY));
    assert_eq!(MAX_DURATION, Duration::from_secs(366 * DAY));
    for cap in [
        MAX_TIMEOUT,
        MAX_CANARY_HOLD,
        MAX_APPROVAL_EXPIRY,
        MAX_WINDOW_DURATION,
    ] {
        assert!(cap <= MAX_DURATION);
    }
}

/// The plan of the issue: it used to load, and its gate killed the evaluator.
#[test]
fn a_window_of_9000000000h_is_refused_with_the_limit() {
    let src = gate("window: { cron: \"* * * * *\", duration: 9000000000h }");
    let d = only(&src);
    assert_eq!((d.file.as_str(), d.line, d.col), ("p.yaml", 11, 48), "{d}");
    assert_eq!(
        d.message,
        "window duration 9000000000h is longer than 8784h (366 days)"
    );
    assert_eq!(
        d.hint,
        "a window that long is always open: use at most `duration: 8784h`, or drop the `window` gate"
    );
    assert_eq!(
        d.to_string(),
        "p.yaml:11:48: window duration 9000000000h is longer than 8784h (366 days) — a window that long is always open: use at most `duration: 8784h`, or drop the `window` gate"
    );
}

#[test]
fn window_durations_up_to_366_days_load() {
    let p = plan::load(
        "p.yaml",
        &gate("window: { cron: \"0 2 * * SAT\", duration: 8784h }"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let GateSpec::Window { duration, .. } = &p.phases[0].gates[0] else {
        panic!("{:?}", p.phases[0].gates)
    };
    assert_eq!(*duration, MAX_WINDOW_DURATION);
    for too_long in ["8785h", "8784h1ms", "527041m", "18446744073709551615ms"] {
        let d = only(&gate(&format!(
            "window: {{ cron: \"0 2 * * SAT\", duration: {too_long} }}"
        )));
        assert_eq!(
            d.message,
            format!("window duration {too_long} is longer than 8784h (366 days)")
        );
    }
}

#[test]
fn approval_expiry_is_capped_at_90_days() {
    plan::load("p.yaml", &gate("approval: { expires: 2160h }")).unwrap_or_else(|e| panic!("{e}"));
    let d = only(&gate("approval: { expires: 2161h }"));
    assert_eq!((d.line, d.col), (11, 30), "{d}");
    assert_eq!(
        d.message,
        "approval expires 2161h is longer than 2160h (90 days)"
    );
    assert_eq!(
        d.hint,
        "use at most `expires: 2160h`, or leave `expires` out to wait for people without a deadline"
    );
    let d = only(&gate("approval: { expires: 9000000000h }"));
    assert_eq!(
        d.message,
        "approval expires 9000000000h is longer than 2160h (90 days)"
    );
}

#[test]
fn task_timeouts_and_canary_holds_keep_their_24h_cap_for_any_number() {
    for text in [
        "25h",
        "9000000000h",
        "99999999999999999999h",
        "18446744073709551615ms",
    ] {
        let d = only(&plan_src(&format!("        timeout: {text}\n"), ""));
        assert_eq!((d.line, d.col), (10, 18), "{d}");
        assert_eq!(d.message, format!("timeout {text} is longer than 24h"));
        assert_eq!(
            d.hint,
            "split the work into several tasks, or use at most 24h"
        );
        let d = only(&plan_src(
            "",
            &format!("    canary: {{ steps: [50, 100], hold: {text} }}\n"),
        ));
        assert_eq!(d.message, format!("hold {text} is longer than 24h"));
        assert_eq!(d.hint, "hold each step at most 24h");
    }
}

#[test]
fn parse_duration_refuses_what_no_plan_may_ask_for() {
    assert_eq!(parse_duration("8784h"), Ok(Duration::from_secs(366 * DAY)));
    for text in ["9000000000h", "8785h", "18446744073709551615ms"] {
        assert_eq!(
            parse_duration(text),
            Err(format!(
                "duration `{text}` is longer than 8784h (366 days), the most a plan may ask for"
            )),
        );
    }
    // Past what a number holds: still a plain error, never a wrap or a panic.
    for text in [
        "18446744073709551616ms",
        "5124095576030432h",
        "99999999999999999999h",
    ] {
        assert_eq!(parse_duration(text), Err(format!("bad duration `{text}`")));
    }
}
