//! Dispatching one attempt of a task: render its templates with the outputs
//! that exist now, and emit the work message.

use std::collections::BTreeMap;

use baton_plan as plan;
use baton_proto::v1;

use super::fold::{find_task, Command};
use super::state::*;

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
        let vars = super::view::stage_vars(self, t.stage);
        let render = || -> Result<(Vec<String>, BTreeMap<String, String>), String> {
            let argv = task
                .run
                .iter()
                .map(|a| plan::render_with(a, &self.inputs, &outputs, &vars))
                .collect::<Result<_, _>>()?;
            // A task's `with:` values reach it as `BATON_INPUT_<NAME>` (the
            // input's name uppercased), rendered like env values; a plan's own
            // `env` entry of the same name wins, as what the plan spelled out.
            let with = task
                .with
                .iter()
                .map(|(k, v)| (format!("BATON_INPUT_{}", k.to_uppercase()), v));
            let mut env: BTreeMap<String, String> = with
                .chain(task.env.iter().map(|(k, v)| (k.clone(), v)))
                .map(|(k, v)| plan::render_with(v, &self.inputs, &outputs, &vars).map(|v| (k, v)))
                .collect::<Result<_, _>>()?;
            // Where the task runs, for scripts that do not take templates.
            for (var, name) in [
                ("stage", "BATON_STAGE"),
                ("environment.name", "BATON_ENVIRONMENT"),
                ("canary.weight", "BATON_CANARY_WEIGHT"),
                ("loop.iteration", "BATON_ITERATION"),
            ] {
                if let Some(v) = vars.get(var) {
                    env.entry(name.to_string()).or_insert_with(|| v.clone());
                }
            }
            if t.rollback && self.plan.stages[t.stage].canary.is_some() {
                let good = self.known_good.get(&self.canary_key(t.stage)).copied();
                env.entry("BATON_CANARY_KNOWN_GOOD".into())
                    .or_insert_with(|| good.unwrap_or(0).to_string());
            }
            Ok((argv, env))
        };
        let workspace = match self.workspace_for(task) {
            Ok(w) => w,
            Err(e) => return Some(Err(e)),
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
            workspace,
            inputs: self.input_artifacts(task),
            max_artifact_bytes: self.plan.max_artifact_bytes,
            sandbox: sandbox_request(&self.plan.roles[&task.role].sandbox),
            secrets: task.secrets.iter().map(secret_ref).collect(),
        }))
    }

    /// The plan's workspace as this task's role sees it.
    fn workspace_for(&self, task: &plan::Task) -> Result<Option<v1::Workspace>, String> {
        let Some(ws) = &self.plan.workspace else {
            return Ok(None);
        };
        let access = self.plan.roles[&task.role].workspace;
        if access == plan::WorkspaceAccess::None {
            return Ok(None);
        }
        let (kind, source) = match &ws.source {
            plan::WorkspaceSource::Volume => ("volume", format!("baton-ws-{}", self.run_id)),
            plan::WorkspaceSource::HostPath(p) => {
                let path = plan::render(p, &self.inputs, &BTreeMap::new())?;
                if !path.starts_with('/') {
                    return Err(format!(
                        "workspace host_path `{path}` is not absolute; workers resolve it on their own host"
                    ));
                }
                ("host", path)
            }
        };
        Ok(Some(v1::Workspace {
            kind: kind.into(),
            source,
            mount: ws.mount.clone(),
            read_only: access == plan::WorkspaceAccess::ReadOnly,
        }))
    }

    /// Artifacts this task may read under `/baton/in/<task>/`: those of
    /// tasks that finished in earlier stages, and of the tasks it needs
    /// (transitively) in its own stage. Ordered by task id, so that a
    /// coordinator taking over renders the same message.
    fn input_artifacts(&self, task: &plan::Task) -> Vec<v1::InputArtifacts> {
        let Some(me) = self.tasks.get(&task.id) else {
            return Vec::new();
        };
        let mut ancestors = std::collections::BTreeSet::new();
        let mut todo: Vec<&str> = task.needs.iter().map(String::as_str).collect();
        while let Some(n) = todo.pop() {
            if ancestors.insert(n.to_string()) {
                if let Some(t) = find_task(&self.plan, n) {
                    todo.extend(t.needs.iter().map(String::as_str));
                }
            }
        }
        self.tasks
            .values()
            .filter(|t| !t.rollback && t.id != me.id && !t.artifacts.is_empty())
            .filter(|t| t.status == TaskStatus::Succeeded)
            .filter(|t| t.stage < me.stage || me.rollback || ancestors.contains(&t.id))
            .map(|t| v1::InputArtifacts {
                task_id: t.id.clone(),
                artifacts: t.artifacts.iter().map(v1::Artifact::from).collect(),
            })
            .collect()
    }
}

/// The role's `sandbox:` as the dispatch carries it; `None` when it widens nothing.
fn sandbox_request(s: &baton_plan::RoleSandbox) -> Option<v1::SandboxRequest> {
    (!s.is_default()).then(|| v1::SandboxRequest {
        network: s.network,
        mounts: s
            .mounts
            .iter()
            .map(|m| v1::SandboxMount {
                host: m.host.clone(),
                path: m.path.clone(),
                read_only: m.read_only,
            })
            .collect(),
        memory_bytes: s.memory_bytes,
        nano_cpus: s.nano_cpus,
        pids: s.pids,
    })
}

/// The reference only: the worker resolves it on its own host.
fn secret_ref(s: &plan::SecretRef) -> v1::SecretRef {
    let (from_env, from_file) = match &s.source {
        plan::SecretSource::FromEnv(var) => (var.clone(), String::new()),
        plan::SecretSource::FromFile(path) => (String::new(), path.clone()),
    };
    v1::SecretRef {
        name: s.name.clone(),
        from_env,
        from_file,
        as_file: s.as_file,
    }
}
