//! Dispatching one attempt of a task: render its templates with the outputs
//! that exist now, and emit the work message.

use std::collections::BTreeMap;

use baton_proto::v1;

use super::fold::{find_task, Command};
use super::state::*;
use crate::plan;

impl RunState {
    /// Dispatch the next attempt of a task, rendering its templates now that
    /// the outputs it needs exist.
    pub(super) fn dispatch(&mut self, task_id: &str, now: i64, out: &mut Vec<Command>) {
        let Some(task) = find_task(&self.plan, task_id) else {
            return;
        };
        // Most tasks have no templates: do not copy every output for them.
        let templated = task
            .run
            .iter()
            .chain(task.env.values())
            .any(|s| s.contains("${{"));
        let outputs: BTreeMap<String, serde_json::Map<String, serde_json::Value>> = if templated {
            self.tasks
                .values()
                .filter(|t| t.status == TaskStatus::Succeeded)
                .map(|t| (t.id.clone(), t.outputs.clone()))
                .collect()
        } else {
            BTreeMap::new()
        };
        let argv: Result<Vec<String>, String> = task
            .run
            .iter()
            .map(|a| plan::render(a, &self.inputs, &outputs))
            .collect();
        let env: Result<BTreeMap<String, String>, String> = task
            .env
            .iter()
            .map(|(k, v)| plan::render(v, &self.inputs, &outputs).map(|v| (k.clone(), v)))
            .collect();
        let role = &self.plan.roles[&task.role];
        let image = role.image.clone();
        let timeout_ms = task.timeout.as_millis() as u64;
        let t = self.tasks.get_mut(task_id).expect("task of the plan");
        t.attempt += 1;
        t.dispatched_ms = now;
        let (argv, env) = match (argv, env) {
            (Ok(a), Ok(e)) => (a, e),
            (Err(e), _) | (_, Err(e)) => {
                // Rendering is deterministic: retrying cannot help.
                t.status = TaskStatus::Failed;
                t.error = format!("cannot render the task's templates: {e}");
                let rollback = t.rollback;
                if rollback {
                    self.rollback_step_done(false, now, out);
                } else {
                    self.advance_phase(now, out);
                }
                return;
            }
        };
        t.status = TaskStatus::Queued;
        out.push(Command::Dispatch(v1::TaskDispatch {
            run_id: self.run_id.clone(),
            phase_id: t.phase.clone(),
            task_id: t.id.clone(),
            attempt: t.attempt,
            role: t.role.clone(),
            image,
            argv,
            env: env.into_iter().collect(),
            timeout_ms,
            rollback: t.rollback,
            traceparent: self.traceparent.clone(),
            dispatched_at_ms: now,
        }));
    }
}
