//! How runs look to a person, and as JSON.

use baton_proto::kinds;
use baton_proto::v1::{self, event::Body};
use serde_json::{json, Value};

/// The run as `--json` prints it.
pub fn run_json(r: &v1::Run) -> Value {
    json!({
        "run_id": r.run_id,
        "plan": r.plan,
        "status": r.run_status().as_str(),
        "reason": r.reason,
        "waiting": r.waiting,
        "created_ms": r.created_ms,
        "finished_ms": r.finished_ms,
        "inputs": r.inputs,
        "incidents": r.incidents.iter().map(|i| json!({
            "kind": i.kind, "phase": i.phase_id, "reasons": i.reasons,
            "time_ms": i.time_ms, "stop": i.stop,
        })).collect::<Vec<_>>(),
        "iterations": r.iterations.iter().map(|i| json!({
            "loop": i.r#loop, "iteration": i.iteration, "verdict": i.verdict, "reasons": i.reasons,
        })).collect::<Vec<_>>(),
        "phases": r.phases.iter().map(|p| json!({
            "id": p.id,
            "phase": p.phase,
            "environment": p.environment,
            "canary_weight": p.canary_weight,
            "iteration": p.iteration,
            "status": p.phase_status().as_str(),
            "reason": p.reason,
            "outcomes": p.outcomes.iter().map(|o| json!({
                "task": o.task_id, "status": o.task_status().as_str(), "error": o.error,
                "outputs": serde_json::from_str::<Value>(&o.outputs_json).unwrap_or(Value::Null),
                "artifacts": o.artifacts.iter().map(artifact_json).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "gates": p.gates.iter().map(|g| json!({
                "kind": g.kind, "verdict": g.verdict, "reasons": g.reasons,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "tasks": r.tasks.iter().map(|t| json!({
            "id": t.id,
            "phase": t.phase,
            "role": t.role,
            "rollback": t.rollback,
            "status": t.task_status().as_str(),
            "attempts": t.attempts,
            "exit_code": t.exit_code,
            "result": serde_json::from_str::<Value>(&t.result_json).unwrap_or(Value::Null),
            "error": t.error,
            "duration_ms": t.duration_ms,
            "trace_id": t.trace_id,
            "lost": t.lost,
            "artifacts": t.artifacts.iter().map(artifact_json).collect::<Vec<_>>(),
            "stale_results": t.stale_results.iter().map(|x| json!({
                "attempt": x.attempt, "worker": x.worker, "ok": x.ok, "time_ms": x.time_ms,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn artifact_json(a: &v1::Artifact) -> Value {
    json!({ "path": a.path, "size": a.size, "sha256": a.sha256, "object": a.object })
}

fn artifacts_line(list: &[v1::Artifact]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|a| {
            let short = a.sha256.get(..12).unwrap_or(&a.sha256);
            format!("{} ({} B, sha256 {short}…)", a.path, a.size)
        })
        .collect();
    format!("\n        artifacts: {}", items.join(", "))
}

/// The mark before a stage's line: where it is, at a glance.
fn phase_mark(status: v1::PhaseStatus) -> &'static str {
    use v1::PhaseStatus as S;
    match status {
        S::Passed => "✓",
        S::Failed => "✗",
        S::Skipped | S::RolledBack => "↺",
        S::Holding | S::Waiting => "⏳",
        S::AwaitingApproval | S::Pending => "⏸",
        S::Running | S::Gating => "…",
        S::Retrying | S::Unspecified => "·",
    }
}

/// The mark before a task's line.
fn task_mark(status: v1::TaskStatus) -> &'static str {
    use v1::TaskStatus as S;
    match status {
        S::Succeeded => "✓",
        S::Failed => "✗",
        S::Skipped => "↺",
        S::AwaitingApproval | S::Pending => "⏸",
        S::Running | S::Queued => "…",
        S::RetryWait | S::Cancelled | S::Unspecified => "·",
    }
}

/// The mark before a gate's line: its verdict as the admin API names it.
fn verdict_mark(verdict: &str) -> &'static str {
    match verdict {
        "pass" => "✓",
        "fail" => "✗",
        "pending" => "⏸",
        _ => "·",
    }
}

fn task_line(t: &v1::TaskView) -> String {
    let kind = if t.rollback { "rollback " } else { "" };
    let mut s = format!(
        "\n    {} {kind}{} [{}] {}",
        task_mark(t.task_status()),
        t.id,
        t.role,
        t.task_status().as_str()
    );
    if t.attempts > 1 {
        s += &format!(" after {} attempts", t.attempts);
    }
    if t.lost > 0 {
        s += &format!(" ({} lost with their worker)", t.lost);
    }
    if !t.stale_results.is_empty() {
        let late: Vec<String> = t
            .stale_results
            .iter()
            .map(|x| format!("attempt {} from {}", x.attempt, x.worker))
            .collect();
        s += &format!(" [late results recorded, not folded: {}]", late.join(", "));
    }
    if t.duration_ms > 0 {
        s += &format!(" in {}ms", t.duration_ms);
    }
    if !t.error.is_empty() {
        s += &format!(" — {}", t.error);
    }
    if !t.artifacts.is_empty() {
        s += &artifacts_line(&t.artifacts);
    }
    s
}

pub fn run_text(r: &v1::Run) -> String {
    let mut s = format!(
        "run {} · plan {} · {}",
        r.run_id,
        r.plan,
        r.run_status().as_str()
    );
    if !r.reason.is_empty() {
        s += &format!("\n  reason: {}", r.reason);
    }
    if !r.waiting.is_empty() {
        s += &format!("\n  waiting: {}", r.waiting);
    }
    for i in &r.incidents {
        s += &format!(
            "\n  ! incident {} in {}: {}",
            i.kind,
            i.phase_id,
            i.reasons.join("; ")
        );
    }
    for p in &r.phases {
        let status = p.phase_status();
        s += &format!(
            "\n{} phase {} ({})",
            phase_mark(status),
            p.id,
            status.as_str()
        );
        if !p.reason.is_empty() && status != v1::PhaseStatus::Failed {
            s += &format!(" — {}", p.reason);
        }
        // A stage that ended keeps its tasks' outcomes (later stages may run
        // them again); where the task's latest run is this stage, show it in full.
        let here = |t: &&v1::TaskView| {
            t.phase == p.id && (!t.rollback || t.task_status() != v1::TaskStatus::Pending)
        };
        if p.outcomes.is_empty() {
            for t in r.tasks.iter().filter(here) {
                s += &task_line(t);
            }
        } else {
            for o in &p.outcomes {
                match r
                    .tasks
                    .iter()
                    .filter(here)
                    .find(|t| t.id == o.task_id && !t.rollback)
                {
                    Some(t) => s += &task_line(t),
                    None => {
                        let status = o.task_status();
                        s += &format!(
                            "\n    {} {} {}",
                            task_mark(status),
                            o.task_id,
                            status.as_str()
                        );
                        if !o.error.is_empty() {
                            s += &format!(" — {}", o.error);
                        }
                        if !o.artifacts.is_empty() {
                            s += &artifacts_line(&o.artifacts);
                        }
                    }
                }
            }
            for t in r.tasks.iter().filter(here).filter(|t| t.rollback) {
                s += &task_line(t);
            }
        }
        for g in &p.gates {
            s += &format!(
                "\n    {} gate {}: {}",
                verdict_mark(&g.verdict),
                g.kind,
                g.reasons.join("; ")
            );
        }
    }
    if !r.iterations.is_empty() {
        s += "\niterations:";
        for i in &r.iterations {
            s += &format!("\n  {} #{}: {}", i.r#loop, i.iteration, i.verdict);
            if !i.reasons.is_empty() && i.verdict != "skipped" {
                s += &format!(" — {}", i.reasons.join("; "));
            }
        }
    }
    s
}

/// One line of live progress, or nothing for events a person does not need.
pub fn event_line(e: &v1::Event) -> Option<String> {
    Some(match e.body.as_ref()? {
        Body::RunSubmitted(s) => format!("submitted by {} via {}", s.submitted_by, s.trigger),
        Body::PhaseChanged(p) => {
            let status = kinds::phase_status(p);
            let mark = phase_mark(status);
            let status = status.as_str();
            if p.reason.is_empty() {
                format!("{mark} phase {} {status}", p.phase_id)
            } else {
                format!("{mark} phase {} {status}: {}", p.phase_id, p.reason)
            }
        }
        Body::TaskStarted(t) => format!(
            "  … task {} started (attempt {}, {})",
            t.task_id, t.attempt, t.worker
        ),
        Body::TaskFinished(t) if t.ok => {
            format!("  ✓ task {} succeeded in {}ms", t.task_id, t.duration_ms)
        }
        Body::TaskFinished(t) => format!(
            "  ✗ task {} failed (attempt {}): {}",
            t.task_id, t.attempt, t.error
        ),
        Body::GateEvaluated(g) => {
            let v = match v1::Verdict::try_from(g.verdict) {
                Ok(v1::Verdict::Pass) => "pass",
                Ok(v1::Verdict::Pending) => "pending",
                _ => "fail",
            };
            format!(
                "  {} gate {} {}: {}",
                verdict_mark(v),
                g.kind,
                v,
                g.reasons.join("; ")
            )
        }
        Body::Decision(d) => format!(
            "  {} by {}: {}",
            if d.approve { "approved" } else { "rejected" },
            d.by,
            d.reason
        ),
        Body::CancelRequested(c) => format!("cancel requested by {}", c.by),
        Body::Incident(i) => format!(
            "! incident ({}) in phase {}: {}",
            i.kind,
            i.phase_id,
            i.reasons.join("; ")
        ),
        Body::TimerFired(t) => format!(
            "  … retrying task {} (attempt {})",
            t.task_id,
            t.attempt + 1
        ),
        Body::TaskLost(l) => format!(
            "  ! task {} attempt {} lost (delivered {} times without an answer); running attempt {}",
            l.task_id,
            l.attempt,
            l.deliveries,
            l.attempt + 1
        ),
        Body::TaskDeadLettered(d) => format!(
            "  ✗ task {} attempt {} dead-lettered after {} deliveries",
            d.task_id, d.attempt, d.deliveries
        ),
        Body::RunFinished(f) if f.reason.is_empty() => format!("run {}", kinds::run_status(f)),
        Body::RunFinished(f) => format!("run {}: {}", kinds::run_status(f), f.reason),
    })
}

pub fn workers_json(ws: &[v1::WorkerInfo]) -> Value {
    Value::Array(
        ws.iter()
            .map(|w| {
                json!({
                    "id": w.id, "host": w.host, "roles": w.roles, "concurrency": w.concurrency,
                    "running": w.running, "runtime": w.runtime,
                    "started_ms": w.started_ms, "seen_ms": w.seen_ms,
                })
            })
            .collect(),
    )
}

pub fn workers_text(ws: &[v1::WorkerInfo]) -> String {
    if ws.is_empty() {
        return "no live workers — start one with `baton worker --roles …`\n".to_string();
    }
    let mut s = format!(
        "{:<28} {:<16} {:<8} {:<9} {:<24} RUNNING\n",
        "WORKER", "HOST", "RUNTIME", "SLOTS", "ROLES"
    );
    for w in ws {
        s += &format!(
            "{:<28} {:<16} {:<8} {:<9} {:<24} {}\n",
            w.id,
            w.host,
            w.runtime,
            format!("{}/{}", w.running.len(), w.concurrency),
            w.roles.join(","),
            w.running.join(" ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The marks as they were chosen from a status's text, before the
    /// statuses were enums: every status keeps its mark.
    fn mark_by_name(status: &str) -> &'static str {
        match status {
            "succeeded" | "passed" | "pass" => "✓",
            "failed" | "fail" => "✗",
            "skipped" | "rolled_back" => "↺",
            "holding" | "waiting" => "⏳",
            "awaiting_approval" | "pending" => "⏸",
            "running" | "queued" | "gating" => "…",
            _ => "·",
        }
    }

    #[test]
    fn every_status_keeps_its_mark() {
        for v in 0..20 {
            if let Ok(s) = v1::PhaseStatus::try_from(v) {
                assert_eq!(phase_mark(s), mark_by_name(s.as_str()), "{s}");
            }
            if let Ok(s) = v1::TaskStatus::try_from(v) {
                assert_eq!(task_mark(s), mark_by_name(s.as_str()), "{s}");
            }
        }
        for v in ["pass", "fail", "pending", "", "other"] {
            assert_eq!(verdict_mark(v), mark_by_name(v), "{v}");
        }
    }

    #[test]
    fn statuses_print_by_their_names() {
        let r = v1::Run {
            run_id: "r1".into(),
            plan: "p".into(),
            run_status: v1::RunStatus::RolledBack.into(),
            phases: vec![v1::PhaseView {
                id: "build".into(),
                phase_status: v1::PhaseStatus::AwaitingApproval.into(),
                outcomes: vec![v1::TaskOutcome {
                    task_id: "old".into(),
                    task_status: v1::TaskStatus::Skipped.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            tasks: vec![v1::TaskView {
                id: "make".into(),
                phase: "build".into(),
                role: "dev".into(),
                task_status: v1::TaskStatus::RetryWait.into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            run_text(&r),
            "run r1 · plan p · rolled_back\n⏸ phase build (awaiting_approval)\n    ↺ old skipped"
        );
        let j = run_json(&r);
        assert_eq!(j["status"], "rolled_back");
        assert_eq!(j["phases"][0]["status"], "awaiting_approval");
        assert_eq!(j["phases"][0]["outcomes"][0]["status"], "skipped");
        assert_eq!(j["tasks"][0]["status"], "retry_wait");
    }
}
