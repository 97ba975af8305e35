//! Which running tasks belong to which run, so a run's cancellation kills them.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct CancelRegistry {
    runs: Mutex<HashMap<String, (CancellationToken, usize)>>,
}

impl CancelRegistry {
    /// A token that fires when `run` is cancelled; call [`Self::release`] when the task ends.
    pub fn register(&self, run: &str) -> CancellationToken {
        let mut m = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        let e = m
            .entry(run.to_string())
            .or_insert_with(|| (CancellationToken::new(), 0));
        e.1 += 1;
        e.0.child_token()
    }

    pub fn release(&self, run: &str) {
        let mut m = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = m.get_mut(run) {
            e.1 -= 1;
            if e.1 == 0 {
                m.remove(run);
            }
        }
    }

    pub fn cancel_run(&self, run: &str) {
        let m = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = m.get(run) {
            tracing::info!(run, tasks = e.1, "run cancelled; killing its tasks");
            e.0.cancel();
        }
    }
}
