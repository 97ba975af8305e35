//! Rollback: the steps of every phase started so far, newest phase first,
//! one at a time.

use baton_proto::v1;

use super::fold::Command;
use super::state::*;

impl RunState {
    pub(super) fn rollback_step_done(&mut self, ok: bool, now: i64, out: &mut Vec<Command>) {
        if let Mode::RollingBack {
            pos, any_failed, ..
        } = &mut self.mode
        {
            *pos += 1;
            *any_failed |= !ok;
        }
        self.next_rollback_step(now, out);
    }

    pub(super) fn next_rollback_step(&mut self, now: i64, out: &mut Vec<Command>) {
        let Mode::RollingBack {
            steps,
            pos,
            any_failed,
        } = &self.mode
        else {
            return;
        };
        if let Some(id) = steps.get(*pos).cloned() {
            // Rollback steps restore a known-good state, so they never wait for
            // an approval: an automatic rollback that blocks on a person is not one.
            self.dispatch(&id, now, out);
            return;
        }
        let any_failed = *any_failed;
        for pi in (0..=self.current).rev() {
            let ran = !matches!(
                self.phases[pi].status,
                PhaseStatus::Pending | PhaseStatus::Skipped
            );
            if !any_failed && ran {
                self.phases[pi].status = PhaseStatus::RolledBack;
                self.phase_changed(pi, v1::PhaseStatus::RolledBack, String::new(), out);
            }
        }
        let reason = std::mem::take(&mut self.reason);
        if any_failed {
            let failed: Vec<&str> = self
                .tasks
                .values()
                .filter(|t| t.rollback && t.status == TaskStatus::Failed)
                .map(|t| t.id.as_str())
                .collect();
            let why = format!("{reason}; rollback step(s) failed: {}", failed.join(", "));
            self.finish(RunStatus::Failed, why, now, out);
        } else {
            self.finish(RunStatus::RolledBack, reason, now, out);
        }
    }
}
