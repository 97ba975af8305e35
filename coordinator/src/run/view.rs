//! Read-only views of a run: the admin API's `Run`, the gate context, and
//! the one-line "what is it waiting for" that people need most.

use baton_proto::v1;
use serde_json::{json, Map, Value};

use super::state::*;

/// `{"inputs":{..},"tasks":{"<id>":{"status":..,"outputs":{..}}}, ...}` with
/// the stage variables of stage `si` (`environment.name`, `canary.weight`,
/// `loop.iteration`): the names that expressions may use.
pub fn gate_context(st: &RunState, si: usize) -> String {
    context(st, si).to_string()
}

/// [`gate_context`] as JSON.
pub fn context(st: &RunState, si: usize) -> Value {
    let mut ctx = base_context(st);
    if let (Some(stage), Some(obj)) = (st.plan.stages.get(si), ctx.as_object_mut()) {
        if let Some(env) = &stage.environment {
            obj.insert("environment".into(), json!({ "name": env }));
        }
        if let Some(c) = stage.canary {
            obj.insert(
                "canary".into(),
                json!({ "weight": c.weight, "step": c.step + 1 }),
            );
        }
        if let Some(it) = stage.iteration {
            obj.insert("loop".into(), json!({ "iteration": it.n }));
        }
    }
    ctx
}

/// The stage variables as strings, for templates and the task's environment.
pub fn stage_vars(st: &RunState, si: usize) -> std::collections::BTreeMap<String, String> {
    let mut vars = std::collections::BTreeMap::new();
    if let Some(stage) = st.plan.stages.get(si) {
        vars.insert("stage".into(), stage.id.clone());
        if let Some(env) = &stage.environment {
            vars.insert("environment.name".into(), env.clone());
        }
        if let Some(c) = stage.canary {
            vars.insert("canary.weight".into(), c.weight.to_string());
        }
        if let Some(it) = stage.iteration {
            vars.insert("loop.iteration".into(), it.n.to_string());
        }
    }
    vars
}

fn base_context(st: &RunState) -> Value {
    let mut tasks = Map::new();
    for t in st.tasks.values() {
        if t.status == TaskStatus::Pending && t.rollback {
            continue;
        }
        tasks.insert(
            t.id.clone(),
            json!({ "status": t.status.as_str(), "outputs": Value::Object(t.outputs.clone()) }),
        );
    }
    json!({ "inputs": st.inputs, "tasks": tasks })
}

/// What the run waits for now, or "" when it is simply working.
pub fn waiting(st: &RunState) -> String {
    if st.status.is_terminal() {
        return String::new();
    }
    let mut parts = Vec::new();
    for id in &st.task_order {
        let t = &st.tasks[id];
        match t.status {
            TaskStatus::AwaitingApproval => parts.push(format!(
                "approval for task {} (baton approve {})",
                t.id, st.run_id
            )),
            TaskStatus::RetryWait => {
                parts.push(format!("retry {} of task {}", t.attempt + 1, t.id))
            }
            _ => {}
        }
    }
    if let Some(p) = st.phases.get(st.current) {
        let pending_approval = p.status == PhaseStatus::Gating
            && p.gates
                .iter()
                .any(|g| g.kind == "approval" && g.verdict == Some(Verdict::Pending));
        if pending_approval {
            let expires = match p.approval_expires_ms {
                0 => String::new(),
                ms => format!(", expires {}", baton_plan::stages::format_ms(ms)),
            };
            parts.push(format!(
                "approval for phase {} (baton approve {}{expires})",
                p.id, st.run_id
            ));
        }
        let when = baton_plan::stages::format_ms(p.timer_at_ms);
        if p.status == PhaseStatus::Holding {
            parts.push(format!("canary hold of {} until {when}", p.id));
        }
        for g in &p.gates {
            if g.kind == "window" && g.verdict == Some(Verdict::Pending) {
                parts.push(format!(
                    "maintenance window for {} ({})",
                    p.id,
                    g.reasons.join("; ")
                ));
            }
        }
    }
    parts.join("; ")
}

/// Roles of queued tasks that no live worker serves, in plan order.
pub fn unserved_roles(st: &RunState, live: &std::collections::BTreeSet<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in &st.task_order {
        let t = &st.tasks[id];
        if t.status == TaskStatus::Queued && !live.contains(&t.role) && !out.contains(&t.role) {
            out.push(t.role.clone());
        }
    }
    out
}

/// Add "no worker for role …" to a run's `waiting`.
pub fn add_unserved(waiting: &mut String, roles: &[String]) {
    for r in roles {
        if !waiting.is_empty() {
            waiting.push_str("; ");
        }
        waiting.push_str(&format!(
            "no worker for role {r} (start one: baton worker --roles {r})"
        ));
    }
}

pub fn to_proto(st: &RunState) -> v1::Run {
    v1::Run {
        run_id: st.run_id.clone(),
        plan: st.plan.name.clone(),
        run_status: v1::RunStatus::from(st.status).into(),
        reason: st.reason.clone(),
        created_ms: st.created_ms,
        finished_ms: st.finished_ms,
        phases: st
            .phases
            .iter()
            .zip(&st.plan.stages)
            .map(|(p, stage)| v1::PhaseView {
                phase: st.plan.phases[stage.phase].id.clone(),
                environment: stage.environment.clone().unwrap_or_default(),
                canary_weight: stage.canary.map_or(0, |c| c.weight),
                iteration: stage.iteration.map_or(0, |it| it.n),
                outcomes: p
                    .outcomes
                    .iter()
                    .map(|o| v1::TaskOutcome {
                        task_id: o.task_id.clone(),
                        task_status: v1::TaskStatus::from(o.status).into(),
                        error: o.error.clone(),
                        outputs_json: Value::Object(o.outputs.clone()).to_string(),
                        artifacts: o.artifacts.iter().map(v1::Artifact::from).collect(),
                    })
                    .collect(),
                id: p.id.clone(),
                phase_status: v1::PhaseStatus::from(p.status).into(),
                gates: p
                    .gates
                    .iter()
                    .map(|g| v1::GateResult {
                        kind: g.kind.clone(),
                        verdict: g.verdict.map(|v| v.as_str()).unwrap_or("").to_string(),
                        reasons: g.reasons.clone(),
                    })
                    .collect(),
                round: p.round,
                reason: p.reason.clone(),
            })
            .collect(),
        tasks: st
            .task_order
            .iter()
            .map(|id| {
                let t = &st.tasks[id];
                v1::TaskView {
                    id: t.id.clone(),
                    phase: t.phase.clone(),
                    role: t.role.clone(),
                    task_status: v1::TaskStatus::from(t.status).into(),
                    attempts: t.attempt - t.base_attempt.min(t.attempt),
                    exit_code: t.exit_code,
                    result_json: t.report_json.clone(),
                    error: t.error.clone(),
                    rollback: t.rollback,
                    duration_ms: t.duration_ms,
                    trace_id: t.trace_id.clone(),
                    lost: t.lost,
                    stale_results: t
                        .stale
                        .iter()
                        .map(|s| v1::StaleResult {
                            attempt: s.attempt,
                            worker: s.worker.clone(),
                            ok: s.ok,
                            time_ms: s.time_ms,
                        })
                        .collect(),
                    artifacts: t.artifacts.iter().map(v1::Artifact::from).collect(),
                }
            })
            .collect(),
        inputs: st.inputs.clone().into_iter().collect(),
        waiting: waiting(st),
        incidents: st
            .incidents
            .iter()
            .map(|i| v1::Incident {
                kind: i.kind.clone(),
                run_id: st.run_id.clone(),
                plan: st.plan.name.clone(),
                phase_id: i.phase.clone(),
                reasons: i.reasons.clone(),
                webhook: String::new(),
                time_ms: i.time_ms,
                stop: i.stop,
            })
            .collect(),
        iterations: iterations(st),
    }
}

/// One report per loop iteration, from the stage that asks the loop's `until`.
fn iterations(st: &RunState) -> Vec<v1::IterationReport> {
    let mut out = Vec::new();
    for (p, stage) in st.phases.iter().zip(&st.plan.stages) {
        let Some(it) = stage.iteration.filter(|it| it.last) else {
            continue;
        };
        let until: Vec<&GateState> = p.gates.iter().filter(|g| g.until).collect();
        let verdict = match p.status {
            PhaseStatus::Skipped => "skipped",
            PhaseStatus::Pending => continue,
            _ if until.is_empty() => "running",
            _ if until.iter().all(|g| g.verdict == Some(Verdict::Pass)) => "green",
            _ if until.iter().any(|g| g.verdict == Some(Verdict::Fail)) => "not green",
            _ => "running",
        };
        out.push(v1::IterationReport {
            r#loop: st.plan.repeats[it.repeat].id.clone(),
            iteration: it.n,
            verdict: verdict.to_string(),
            reasons: until.iter().flat_map(|g| g.reasons.clone()).collect(),
        });
    }
    out
}

pub fn summary(st: &RunState) -> v1::RunSummary {
    v1::RunSummary {
        run_id: st.run_id.clone(),
        plan: st.plan.name.clone(),
        run_status: v1::RunStatus::from(st.status).into(),
        created_ms: st.created_ms,
        waiting: waiting(st),
    }
}
