//! [`NoopRuntime`]: runs nothing and succeeds at once (for benchmarks of the
//! orchestration itself).

use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{LogLine, Outcome, RuntimeError, TaskReport, TaskSpec};

#[derive(Debug, Default)]
pub struct NoopRuntime;

impl NoopRuntime {
    pub fn new() -> Self {
        Self
    }

    pub(crate) async fn run(
        &self,
        _spec: &TaskSpec,
        _logs: mpsc::Sender<LogLine>,
        cancel: CancellationToken,
    ) -> Result<Outcome, RuntimeError> {
        let started = Instant::now();
        if cancel.is_cancelled() {
            return Ok(Outcome {
                ok: false,
                exit_code: None,
                report: None,
                error: Some("cancelled".to_string()),
                duration: started.elapsed(),
                artifacts: Vec::new(),
            });
        }
        Ok(Outcome {
            ok: true,
            exit_code: Some(0),
            report: Some(TaskReport {
                result: "ok".to_string(),
                ..TaskReport::default()
            }),
            error: None,
            duration: started.elapsed(),
            artifacts: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn succeeds_immediately() {
        let spec = TaskSpec::new("r", "t", 1, "", vec![], std::time::Duration::from_secs(1));
        let (tx, _rx) = mpsc::channel(1);
        let rt = crate::runtime::Runtime::Noop(NoopRuntime::new());
        let outcome = rt.run(&spec, tx, CancellationToken::new()).await.unwrap();
        assert!(outcome.ok);
        assert_eq!(outcome.report.unwrap().result, "ok");
        assert_eq!(rt.name(), "noop");
    }
}
