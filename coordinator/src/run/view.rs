//! Read-only views of a run: the admin API's `Run`, the gate context, and
//! the one-line "what is it waiting for" that people need most.

use baton_proto::v1;
use serde_json::{json, Map, Value};

use super::state::*;

/// `{"inputs":{..},"tasks":{"<id>":{"status":..,"outputs":{..}}}}`, the
/// names that gate expressions may use.
pub fn gate_context(st: &RunState) -> String {
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
    json!({ "inputs": st.inputs, "tasks": tasks }).to_string()
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
            parts.push(format!(
                "approval for phase {} (baton approve {})",
                p.id, st.run_id
            ));
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
        status: st.status.as_str().to_string(),
        reason: st.reason.clone(),
        created_ms: st.created_ms,
        finished_ms: st.finished_ms,
        phases: st
            .phases
            .iter()
            .map(|p| v1::PhaseView {
                id: p.id.clone(),
                status: p.status.as_str().to_string(),
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
                ..Default::default()
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
                    status: t.status.as_str().to_string(),
                    attempts: t.attempt,
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
                    artifacts: Vec::new(),
                }
            })
            .collect(),
        inputs: st.inputs.clone().into_iter().collect(),
        waiting: waiting(st),
        incidents: Vec::new(),
        iterations: Vec::new(),
    }
}

pub fn summary(st: &RunState) -> v1::RunSummary {
    v1::RunSummary {
        run_id: st.run_id.clone(),
        plan: st.plan.name.clone(),
        status: st.status.as_str().to_string(),
        created_ms: st.created_ms,
        waiting: waiting(st),
    }
}
