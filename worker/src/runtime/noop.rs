//! [`NoopRuntime`]: runs nothing and succeeds at once (for benchmarks of the
//! orchestration itself).

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::{Outcome, TaskReport};

#[derive(Debug, Default)]
pub struct NoopRuntime;

impl NoopRuntime {
    pub fn new() -> Self {
        Self
    }

    pub(crate) fn run(&self, cancel: &CancellationToken) -> Outcome {
        let started = Instant::now();
        if cancel.is_cancelled() {
            return Outcome {
                ok: false,
                exit_code: None,
                report: None,
                error: Some("cancelled".to_string()),
                duration: started.elapsed(),
                artifacts: Vec::new(),
            };
        }
        Outcome {
            ok: true,
            exit_code: Some(0),
            report: Some(TaskReport {
                result: "ok".to_string(),
                ..TaskReport::default()
            }),
            error: None,
            duration: started.elapsed(),
            artifacts: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;
    use crate::runtime::TaskSpec;

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
