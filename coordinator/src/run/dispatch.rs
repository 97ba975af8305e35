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
        let Some(attempt) = self.tasks.get(task_id).map(|t| t.attempt + 1) else {
            return;
        };
        let Some(msg) = self.dispatch_message(task_id, attempt, now) else {
            return;
        };
        let t = self.tasks.get_mut(task_id).expect("task of the plan");
        t.attempt = attempt;
        t.dispatched_ms = now;
        match msg {
            Ok(d) => {
                t.status = TaskStatus::Queued;
                out.push(Command::Dispatch(d));
            }
            Err(e) => {
                // Rendering is deterministic: retrying cannot help.
                t.status = TaskStatus::Failed;
                t.error = format!("cannot render the task's templates: {e}");
                self.task_ended(task_id, now, out);
            }
        }
    }

    /// The work message of one attempt, rendered from the state as it is.
    /// Templates only name tasks that ran before this one, so rendering it
    /// again later (a coordinator taking over) gives the same message.
    pub fn dispatch_message(
        &self,
        task_id: &str,
        attempt: u32,
        now: i64,
    ) -> Option<Result<v1::TaskDispatch, String>> {
        let task = find_task(&self.plan, task_id)?;
        let t = self.tasks.get(task_id)?;
        // Most tasks have no templates: do not copy every output for them.
        let templated = task
            .run
            .iter()
            .chain(task.env.values())
            .chain(task.with.values())
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
        let render = || -> Result<(Vec<String>, BTreeMap<String, String>), String> {
            let argv = task
                .run
                .iter()
                .map(|a| plan::render(a, &self.inputs, &outputs))
                .collect::<Result<_, _>>()?;
            // A task's `with:` values reach it as `BATON_INPUT_<NAME>` (the
            // input's name uppercased), rendered like env values; a plan's own
            // `env` entry of the same name wins, as what the plan spelled out.
            let with = task
                .with
                .iter()
                .map(|(k, v)| (format!("BATON_INPUT_{}", k.to_uppercase()), v));
            let env = with
                .chain(task.env.iter().map(|(k, v)| (k.clone(), v)))
                .map(|(k, v)| plan::render(v, &self.inputs, &outputs).map(|v| (k, v)))
                .collect::<Result<_, _>>()?;
            Ok((argv, env))
        };
        Some(render().map(|(argv, env)| v1::TaskDispatch {
            run_id: self.run_id.clone(),
            phase_id: t.phase.clone(),
            task_id: t.id.clone(),
            attempt,
            role: t.role.clone(),
            image: self.plan.roles[&task.role].image.clone(),
            argv,
            env: env.into_iter().collect(),
            timeout_ms: task.timeout.as_millis() as u64,
            rollback: t.rollback,
            traceparent: self.traceparent.clone(),
            dispatched_at_ms: now,
            workspace: None,
            inputs: Vec::new(),
            max_artifact_bytes: 0,
        }))
    }
}
