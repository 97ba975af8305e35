//! `window`: passes while a maintenance window is open.

use baton_proto::v1::WindowGate;

use super::Answer;

/// Placeholder until the cron evaluator lands: a window gate fails with a clear reason.
pub fn evaluate(_g: &WindowGate, _now_ms: i64) -> Answer {
    Answer::fail(vec!["window gates are not implemented yet".into()])
}

/// Placeholder: accepts every spec until the cron evaluator lands.
pub fn check(_cron: &str, _timezone: &str) -> Result<(), String> {
    Ok(())
}
