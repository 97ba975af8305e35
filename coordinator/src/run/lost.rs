//! Attempts that went missing: a worker died, froze or was cut off, so the
//! queue delivered the attempt again (`TaskLost`), or gave up on it
//! (`TaskDeadLettered`); and late results of attempts already superseded.

use baton_proto::v1;

use super::fold::Command;
use super::state::*;

/// Attempts of one task that may be lost before the task fails: a task that
/// takes its worker down every time must not take the fleet down with it.
pub const MAX_LOST: u32 = 5;

/// Late results kept per task, for people; older ones are dropped.
const MAX_STALE_KEPT: usize = 10;

impl RunState {
    /// The queue handed an attempt out again: its first holder is gone. Run
    /// the next attempt now; it does not use up one of the task's retries.
    pub(super) fn task_lost(&mut self, l: &v1::TaskLost, now: i64, out: &mut Vec<Command>) {
        let Some(t) = self.tasks.get_mut(&l.task_id) else {
            return;
        };
        if t.attempt != l.attempt || !matches!(t.status, TaskStatus::Queued | TaskStatus::Running) {
            return;
        }
        t.lost += 1;
        let why = format!(
            "attempt {} lost: delivered {} times without an answer (its worker died, froze or was cut off); {} found it",
            l.attempt,
            l.deliveries,
            who(&l.worker)
        );
        if t.lost >= MAX_LOST {
            t.status = TaskStatus::Failed;
            t.error = format!("{why}; gave up after {MAX_LOST} lost attempts");
            let id = t.id.clone();
            self.task_ended(&id, now, out);
        } else {
            t.error = why;
            let id = t.id.clone();
            self.dispatch(&id, now, out);
        }
    }

    /// The queue gave up on an attempt; the task fails with where to find it.
    pub(super) fn task_dead_lettered(
        &mut self,
        d: &v1::TaskDeadLettered,
        now: i64,
        out: &mut Vec<Command>,
    ) {
        let Some(t) = self.tasks.get_mut(&d.task_id) else {
            return;
        };
        if t.attempt != d.attempt || !matches!(t.status, TaskStatus::Queued | TaskStatus::Running) {
            return;
        }
        t.status = TaskStatus::Failed;
        t.dead_lettered = true;
        t.error = format!(
            "dead-lettered: attempt {} was delivered {} times and never answered; the message is in stream {} at sequence {}",
            d.attempt,
            d.deliveries,
            baton_proto::subjects::DEADLETTER_STREAM,
            d.dlq_seq
        );
        let id = t.id.clone();
        self.task_ended(&id, now, out);
    }

    /// A result for an attempt that is no longer current: kept for people to
    /// see, never folded (the current attempt's result decides).
    pub(super) fn record_stale(t: &mut TaskState, f: &v1::TaskFinished, now: i64) {
        if t.stale.len() >= MAX_STALE_KEPT {
            t.stale.remove(0);
        }
        t.stale.push(StaleResult {
            attempt: f.attempt,
            worker: f.worker.clone(),
            ok: f.ok,
            time_ms: now,
        });
    }

    /// A task reached a terminal status: move its phase or its rollback on.
    pub(super) fn task_ended(&mut self, task_id: &str, now: i64, out: &mut Vec<Command>) {
        let rollback = self.tasks.get(task_id).is_some_and(|t| t.rollback);
        if rollback {
            let ok = self.tasks[task_id].status == TaskStatus::Succeeded;
            self.rollback_step_done(ok, now, out);
        } else {
            self.advance_phase(now, out);
        }
    }
}

fn who(w: &str) -> &str {
    if w.is_empty() {
        "another worker"
    } else {
        w
    }
}
