//! Any window gate a request on the bus may carry: whatever the cron text,
//! time zone, duration and evaluator clock, checking and evaluating the
//! window answers (open, closed with a later opening, or an error with a
//! reason) and never panics, overflows a clock or hangs.
//!
//! Input: 8 bytes duration_ms (u64, little endian), 8 bytes now_ms (i64,
//! little endian), 1 flags byte, then `cron` text, optionally followed by a
//! NUL and a time zone name. Flags: bit 0 folds the duration into the
//! allowed range and bit 1 the clock (so the fuzzer also walks windows that
//! evaluate), bits 2-4 pick a time zone when none is written.
#![no_main]

use baton_plan::window::{self, Status, MAX_NOW_MS, MIN_NOW_MS};
use baton_plan::MAX_WINDOW_DURATION;
use libfuzzer_sys::fuzz_target;

const ZONES: [&str; 8] = [
    "",
    "UTC",
    "Europe/Berlin",
    "America/St_Johns",
    "Pacific/Kiritimati",
    "Etc/GMT+12",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let mut duration_ms = u64::from_le_bytes(data[0..8].try_into().unwrap());
    let mut now_ms = i64::from_le_bytes(data[8..16].try_into().unwrap());
    let flags = data[16];
    let Ok(text) = std::str::from_utf8(&data[17..]) else {
        return;
    };
    let (cron, timezone) = match text.split_once('\0') {
        Some((cron, tz)) => (cron, tz),
        None => (text, ZONES[usize::from(flags >> 2) % ZONES.len()]),
    };
    let max_ms = MAX_WINDOW_DURATION.as_millis() as u64;
    if flags & 1 != 0 {
        duration_ms = duration_ms % max_ms + 1;
    }
    if flags & 2 != 0 {
        now_ms = MIN_NOW_MS + now_ms.rem_euclid(MAX_NOW_MS - MIN_NOW_MS + 1);
    }

    let checked = window::check(cron, timezone);
    let in_range =
        duration_ms > 0 && duration_ms <= max_ms && (MIN_NOW_MS..=MAX_NOW_MS).contains(&now_ms);
    match window::status(cron, timezone, duration_ms, now_ms) {
        Ok(Status::Open { reason }) => {
            assert!(in_range, "{reason}");
            assert!(reason.starts_with("window open since"), "{reason}");
        }
        Ok(Status::Closed { reason, next_ms }) => {
            assert!(in_range, "{reason}");
            assert!(
                next_ms > now_ms,
                "{reason}: opens at {next_ms}, now {now_ms}"
            );
            assert!(reason.starts_with("window closed"), "{reason}");
        }
        // A spec the validator accepts, with a duration and a clock in
        // range, fails only when its cron starts no window after now.
        Err(e) if checked.is_ok() && in_range => {
            assert!(
                e.contains("never starts a window"),
                "{cron} {timezone}: {e}"
            );
        }
        Err(e) => assert!(!e.is_empty()),
    }
});
