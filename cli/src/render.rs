//! How runs look to a person, and as JSON.

use baton_proto::v1::{self, event::Body};
use serde_json::{json, Value};

/// The run as `--json` prints it.
pub fn run_json(r: &v1::Run) -> Value {
    json!({
        "run_id": r.run_id,
        "plan": r.plan,
        "status": r.status,
        "reason": r.reason,
        "waiting": r.waiting,
        "created_ms": r.created_ms,
        "finished_ms": r.finished_ms,
        "inputs": r.inputs,
        "phases": r.phases.iter().map(|p| json!({
            "id": p.id,
            "status": p.status,
            "reason": p.reason,
            "gates": p.gates.iter().map(|g| json!({
                "kind": g.kind, "verdict": g.verdict, "reasons": g.reasons,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "tasks": r.tasks.iter().map(|t| json!({
            "id": t.id,
            "phase": t.phase,
            "role": t.role,
            "rollback": t.rollback,
            "status": t.status,
            "attempts": t.attempts,
            "exit_code": t.exit_code,
            "result": serde_json::from_str::<Value>(&t.result_json).unwrap_or(Value::Null),
            "error": t.error,
            "duration_ms": t.duration_ms,
            "trace_id": t.trace_id,
        })).collect::<Vec<_>>(),
    })
}

fn mark(status: &str) -> &'static str {
    match status {
        "succeeded" | "passed" | "pass" => "✓",
        "failed" | "fail" => "✗",
        "skipped" | "rolled_back" => "↺",
        "awaiting_approval" | "pending" => "⏸",
        "running" | "queued" | "gating" => "…",
        _ => "·",
    }
}

pub fn run_text(r: &v1::Run) -> String {
    let mut s = format!("run {} · plan {} · {}", r.run_id, r.plan, r.status);
    if !r.reason.is_empty() {
        s += &format!("\n  reason: {}", r.reason);
    }
    if !r.waiting.is_empty() {
        s += &format!("\n  waiting: {}", r.waiting);
    }
    for p in &r.phases {
        s += &format!("\n{} phase {} ({})", mark(&p.status), p.id, p.status);
        for t in r
            .tasks
            .iter()
            .filter(|t| t.phase == p.id && (!t.rollback || t.status != "pending"))
        {
            let kind = if t.rollback { "rollback " } else { "" };
            s += &format!(
                "\n    {} {kind}{} [{}] {}",
                mark(&t.status),
                t.id,
                t.role,
                t.status
            );
            if t.attempts > 1 {
                s += &format!(" after {} attempts", t.attempts);
            }
            if t.duration_ms > 0 {
                s += &format!(" in {}ms", t.duration_ms);
            }
            if !t.error.is_empty() {
                s += &format!(" — {}", t.error);
            }
        }
        for g in &p.gates {
            s += &format!(
                "\n    {} gate {}: {}",
                mark(&g.verdict),
                g.kind,
                g.reasons.join("; ")
            );
        }
    }
    s
}

/// One line of live progress, or nothing for events a person does not need.
pub fn event_line(e: &v1::Event) -> Option<String> {
    Some(match e.body.as_ref()? {
        Body::RunSubmitted(s) => format!("submitted by {} via {}", s.submitted_by, s.trigger),
        Body::PhaseChanged(p) if p.reason.is_empty() => {
            format!("{} phase {} {}", mark(&p.status), p.phase_id, p.status)
        }
        Body::PhaseChanged(p) => format!(
            "{} phase {} {}: {}",
            mark(&p.status),
            p.phase_id,
            p.status,
            p.reason
        ),
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
                mark(v),
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
        Body::TimerFired(t) => format!(
            "  … retrying task {} (attempt {})",
            t.task_id,
            t.attempt + 1
        ),
        Body::RunFinished(f) if f.reason.is_empty() => format!("run {}", f.status),
        Body::RunFinished(f) => format!("run {}: {}", f.status, f.reason),
    })
}
