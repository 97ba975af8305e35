//! Which running tasks belong to which run, so a run's cancellation (or a
//! `stop_when` stop) kills them.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

/// The running tasks of one run: a token they all watch, how many there are,
/// and which generation of the run's entry they joined.
struct Entry {
    token: CancellationToken,
    tasks: usize,
    generation: u64,
}

#[derive(Default)]
pub struct CancelRegistry {
    runs: Mutex<(HashMap<String, Entry>, u64)>,
}

/// A task's registration: its token, and what [`CancelRegistry::release`] needs.
pub struct Registration {
    pub token: CancellationToken,
    run: String,
    generation: u64,
}

impl CancelRegistry {
    /// A token that fires when `run` is cancelled; release it when the task ends.
    pub fn register(&self, run: &str) -> Registration {
        let mut guard = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        let (runs, next) = &mut *guard;
        let e = runs.entry(run.to_string()).or_insert_with(|| {
            *next += 1;
            Entry {
                token: CancellationToken::new(),
                tasks: 0,
                generation: *next,
            }
        });
        e.tasks += 1;
        Registration {
            token: e.token.child_token(),
            run: run.to_string(),
            generation: e.generation,
        }
    }

    pub fn release(&self, reg: &Registration) {
        let mut guard = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        let runs = &mut guard.0;
        if let Some(e) = runs.get_mut(&reg.run) {
            // A task of an older generation (killed by a stop) is no longer counted.
            if e.generation == reg.generation {
                e.tasks -= 1;
                if e.tasks == 0 {
                    runs.remove(&reg.run);
                }
            }
        }
    }

    /// Kill the run's running tasks. Tasks that start later (a stopped run's
    /// rollback steps) get a fresh token and are not killed.
    pub fn cancel_run(&self, run: &str) {
        let mut guard = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = guard.0.remove(run) {
            tracing::info!(run, tasks = e.tasks, "run stopped; killing its tasks");
            e.token.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_kills_running_tasks_but_not_later_ones() {
        let reg = CancelRegistry::default();
        let a = reg.register("r");
        reg.cancel_run("r");
        assert!(a.token.is_cancelled());
        let b = reg.register("r");
        assert!(!b.token.is_cancelled(), "a rollback step after a stop runs");
        reg.release(&a);
        reg.cancel_run("r");
        assert!(
            b.token.is_cancelled(),
            "the late release did not drop b's entry"
        );
        reg.release(&b);
        assert!(reg.runs.lock().unwrap().0.is_empty());
    }
}
