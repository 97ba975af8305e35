//! Turning what a task left behind into a verdict (pure).
//!
//! Rules, in order:
//! 1. The result is `/baton/out/result.json` if the file exists, else the
//!    last non-empty line of stdout.
//! 2. Exit code ≠ 0 → not ok, error `exit code N`; the report is kept if it parses.
//! 3. Exit 0 and `"result":"ok"` → ok.
//! 4. Exit 0 and `"result":"fail"` → not ok; error is the report's `action`
//!    or `task reported fail`.
//! 5. Exit 0 and the result does not parse → not ok,
//!    `result is not JSON: <first 200 bytes>` (or a more precise reason).
//! 6. Exit 0 and nothing at all → not ok, [`NO_RESULT`].
//! 7. Any other `result` value → not ok, naming the value.

use std::time::Duration;

use super::TaskReport;

/// Largest `result.json` accepted. The report rides in the `task_finished`
/// event, and NATS caps a message at 1 MiB by default; big data belongs in
/// `/baton/out/` as artifacts.
pub const MAX_RESULT_FILE_BYTES: usize = 256 * 1024;

/// How much of an unparseable result is quoted in the error.
pub const QUOTE_BYTES: usize = 200;

pub const NO_RESULT: &str = "task printed no result — print {\"result\":\"ok\"} as the last line of stdout or write /baton/out/result.json";

/// Why a task's result document is not a report. The text becomes the
/// attempt's error.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("result.json is larger than {} KiB — put large data in /baton/out/ as artifacts and keep outputs small", MAX_RESULT_FILE_BYTES / 1024)]
    TooLarge,
    /// `what` is `result` (the last stdout line) or `result.json`; `quoted`
    /// the first [`QUOTE_BYTES`] of the text.
    #[error("{what} is not JSON: {quoted}")]
    NotJson {
        what: &'static str,
        quoted: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what} is not a JSON object: {quoted}")]
    NotAnObject { what: &'static str, quoted: String },
    #[error("{what} has no \"result\" field (expected \"ok\" or \"fail\"): {quoted}")]
    NoResultField { what: &'static str, quoted: String },
    #[error("{what} is malformed: {source}")]
    Malformed {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// What [`evaluate`] decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub ok: bool,
    pub report: Option<TaskReport>,
    pub error: Option<String>,
}

/// Decide the outcome of a task that exited by itself.
///
/// `exit_code` is `None` when the process ended without one (killed by a
/// signal); `last_stdout_line` is the last non-empty stdout line;
/// `result_file` is the content of `result.json` when the file existed.
pub fn evaluate(
    exit_code: Option<i64>,
    last_stdout_line: Option<&str>,
    result_file: Option<&[u8]>,
) -> Verdict {
    let parsed: Option<Result<TaskReport, ReportError>> = match (result_file, last_stdout_line) {
        (Some(bytes), _) => Some(parse_file(bytes)),
        (None, Some(line)) if !line.trim().is_empty() => Some(parse_report(line, "result")),
        _ => None,
    };

    match exit_code {
        Some(0) => {}
        Some(code) => return fail(parsed.and_then(Result::ok), format!("exit code {code}")),
        None => {
            return fail(
                parsed.and_then(Result::ok),
                "task ended without an exit code".to_string(),
            )
        }
    }

    let report = match parsed {
        None => return fail(None, NO_RESULT.to_string()),
        Some(Err(e)) => return fail(None, e.to_string()),
        Some(Ok(report)) => report,
    };
    match report.result.as_str() {
        "ok" => Verdict {
            ok: true,
            report: Some(report),
            error: None,
        },
        "fail" => {
            let reason = report
                .action
                .as_deref()
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .unwrap_or("task reported fail")
                .to_string();
            fail(Some(report), reason)
        }
        other => {
            let reason = format!(
                "task reported unknown result {:?} (expected \"ok\" or \"fail\")",
                quote(other)
            );
            fail(Some(report), reason)
        }
    }
}

fn fail(report: Option<TaskReport>, error: String) -> Verdict {
    Verdict {
        ok: false,
        report,
        error: Some(error),
    }
}

fn parse_file(bytes: &[u8]) -> Result<TaskReport, ReportError> {
    if bytes.len() > MAX_RESULT_FILE_BYTES {
        return Err(ReportError::TooLarge);
    }
    parse_report(&String::from_utf8_lossy(bytes), "result.json")
}

/// Parse one result document. `what` names the source in error messages
/// (`result` for stdout, `result.json` for the file).
pub fn parse_report(text: &str, what: &'static str) -> Result<TaskReport, ReportError> {
    let text = text.trim();
    let quoted = || quote(text).to_string();
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|source| ReportError::NotJson {
            what,
            quoted: quoted(),
            source,
        })?;
    let Some(object) = value.as_object() else {
        return Err(ReportError::NotAnObject {
            what,
            quoted: quoted(),
        });
    };
    if !object.contains_key("result") {
        return Err(ReportError::NoResultField {
            what,
            quoted: quoted(),
        });
    }
    serde_json::from_value(value).map_err(|source| ReportError::Malformed { what, source })
}

/// The first [`QUOTE_BYTES`] bytes of `s`, cut at a character boundary.
pub fn quote(s: &str) -> &str {
    truncate_at_char(s, QUOTE_BYTES)
}

/// `s` cut to at most `max` bytes at a character boundary.
pub fn truncate_at_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `1h 2m 3s`, `2s`, `1s 500ms`, `250ms` (humantime-like).
pub fn format_duration(d: Duration) -> String {
    let total_ms = d.as_millis();
    if total_ms == 0 {
        return "0s".to_string();
    }
    let (h, rest) = (total_ms / 3_600_000, total_ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, ms) = (rest / 1000, rest % 1000);
    let parts: Vec<String> = [(h, "h"), (m, "m"), (s, "s"), (ms, "ms")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    parts.join(" ")
}

/// `64 MiB`, `1.5 MiB`.
pub fn format_mib(bytes: i64) -> String {
    const MIB: i64 = 1024 * 1024;
    if bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(v: &Verdict) -> &str {
        v.error.as_deref().unwrap_or("")
    }

    #[test]
    fn ok_from_last_stdout_line() {
        let v = evaluate(Some(0), Some(r#"{"result":"ok","evidence":["a"]}"#), None);
        assert!(v.ok, "{v:?}");
        let report = v.report.unwrap();
        assert_eq!(report.result, "ok");
        assert_eq!(report.evidence, vec!["a".to_string()]);
        assert!(report.outputs.is_empty());
    }

    #[test]
    fn file_wins_over_stdout() {
        let v = evaluate(
            Some(0),
            Some(r#"{"result":"ok"}"#),
            Some(br#"{"result":"fail","action":"retry with more memory"}"#),
        );
        assert!(!v.ok);
        assert_eq!(err(&v), "retry with more memory");
        assert_eq!(v.report.unwrap().result, "fail");
    }

    #[test]
    fn file_with_outputs() {
        let v = evaluate(
            Some(0),
            None,
            Some(b"{\n  \"result\": \"ok\",\n  \"outputs\": {\"n\": 3}\n}\n"),
        );
        assert!(v.ok);
        assert_eq!(v.report.unwrap().outputs["n"], serde_json::json!(3));
    }

    #[test]
    fn nonzero_exit_keeps_report() {
        let v = evaluate(Some(3), Some(r#"{"result":"ok"}"#), None);
        assert!(!v.ok);
        assert_eq!(err(&v), "exit code 3");
        assert!(v.report.is_some());
        let v = evaluate(Some(1), Some("boom"), None);
        assert_eq!(err(&v), "exit code 1");
        assert!(v.report.is_none());
    }

    #[test]
    fn fail_without_action() {
        let v = evaluate(Some(0), Some(r#"{"result":"fail"}"#), None);
        assert!(!v.ok);
        assert_eq!(err(&v), "task reported fail");
    }

    #[test]
    fn not_json() {
        let v = evaluate(Some(0), Some("all done!"), None);
        assert!(!v.ok);
        assert_eq!(err(&v), "result is not JSON: all done!");
        let long = "x".repeat(1000);
        let v = evaluate(Some(0), Some(&long), None);
        assert_eq!(err(&v), format!("result is not JSON: {}", "x".repeat(200)));
        let v = evaluate(Some(0), None, Some(b"{oops"));
        assert_eq!(err(&v), "result.json is not JSON: {oops");
    }

    #[test]
    fn not_an_object_or_no_result_field() {
        let v = evaluate(Some(0), Some("[1,2]"), None);
        assert!(err(&v).starts_with("result is not a JSON object"), "{v:?}");
        let v = evaluate(Some(0), Some(r#"{"status":"ok"}"#), None);
        assert!(err(&v).contains("no \"result\" field"), "{v:?}");
        let v = evaluate(Some(0), Some(r#"{"result":"ok","evidence":"nope"}"#), None);
        assert!(err(&v).starts_with("result is malformed"), "{v:?}");
    }

    #[test]
    fn no_output_at_all() {
        let v = evaluate(Some(0), None, None);
        assert!(!v.ok);
        assert_eq!(err(&v), NO_RESULT);
        let v = evaluate(Some(0), Some("   "), None);
        assert_eq!(err(&v), NO_RESULT);
    }

    #[test]
    fn unknown_result_value() {
        let v = evaluate(Some(0), Some(r#"{"result":"maybe"}"#), None);
        assert!(!v.ok);
        assert_eq!(
            err(&v),
            r#"task reported unknown result "maybe" (expected "ok" or "fail")"#
        );
    }

    #[test]
    fn no_exit_code() {
        let v = evaluate(None, Some(r#"{"result":"ok"}"#), None);
        assert!(!v.ok);
        assert!(v.report.is_some());
    }

    #[test]
    fn oversized_file() {
        let big = vec![b' '; MAX_RESULT_FILE_BYTES + 1];
        let v = evaluate(Some(0), None, Some(&big));
        assert!(err(&v).contains("larger than"), "{v:?}");
    }

    #[test]
    fn quote_cuts_at_char_boundary() {
        let s = format!("{}é", "a".repeat(199));
        assert_eq!(quote(&s), "a".repeat(199));
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s 500ms");
        assert_eq!(format_duration(Duration::from_secs(3723)), "1h 2m 3s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_mib(64 * 1024 * 1024), "64 MiB");
        assert_eq!(format_mib(1024 * 1024 * 3 / 2), "1.5 MiB");
    }
}
