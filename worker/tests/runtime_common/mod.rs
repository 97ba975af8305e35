//! Shared by the runtime tests, whichever the runtime: a run that collects
//! the log lines, and checks of what every runtime does alike.

use std::time::{Duration, Instant};

use baton_worker::runtime::{LogLine, Outcome, Runtime, RuntimeError, Stream, TaskSpec};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub async fn run_with(
    rt: &Runtime,
    spec: &TaskSpec,
    cancel: CancellationToken,
) -> (Result<Outcome, RuntimeError>, Vec<LogLine>) {
    let (tx, mut rx) = mpsc::channel(16);
    let drain = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Some(line) = rx.recv().await {
            lines.push(line);
        }
        lines
    });
    let outcome = rt.run(spec, tx, cancel).await;
    (outcome, drain.await.expect("log drain"))
}

pub fn lines(logs: &[LogLine], stream: Stream) -> Vec<&str> {
    logs.iter()
        .filter(|l| l.stream == stream)
        .map(|l| l.line.as_str())
        .collect()
}

/// A token that is cancelled `delay` from now.
pub fn cancel_after(delay: Duration) -> CancellationToken {
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        trigger.cancel();
    });
    cancel
}

/// The outcome of `echo '{"result":"ok"}'; exit 3`: the exit code wins.
pub fn assert_failed_with_exit_3(outcome: &Outcome) {
    assert!(!outcome.ok);
    assert_eq!(outcome.exit_code, Some(3));
    assert_eq!(outcome.error.as_deref(), Some("exit code 3"));
    assert!(outcome.report.is_some());
}

/// The outcome of `echo started; sleep 30` with a 2 s timeout, begun at
/// `started`.
pub fn assert_timed_out_after_2s(outcome: &Outcome, logs: &[LogLine], started: Instant) {
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(!outcome.ok);
    assert_eq!(outcome.error.as_deref(), Some("timed out after 2s"));
    assert_eq!(lines(logs, Stream::Stdout), vec!["started"]);
}
