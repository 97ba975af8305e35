//! The short human summary printed by `baton plan validate`.

use std::fmt::Write;

use super::duration::format_duration;
use super::model::*;
use super::task::DEFAULT_TIMEOUT;

/// Name, inputs, roles (with risk), each phase with its tasks (role, needs),
/// gates, on_fail and rollback steps. One item per line.
pub fn summary(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = write!(out, "plan {}", plan.name);
    if let Some(d) = &plan.description {
        let _ = write!(out, " — {d}");
    }
    out.push('\n');
    if !plan.inputs.is_empty() {
        out.push_str("inputs:\n");
        for i in &plan.inputs {
            let value = match &i.default {
                Some(d) => format!("default {d:?}"),
                None => "required".to_string(),
            };
            let about = i
                .description
                .as_deref()
                .map(|d| format!(" — {d}"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {} ({value}){about}", i.name);
        }
    }
    out.push_str("roles:\n");
    for r in plan.roles.values() {
        let risk = match r.risk {
            Risk::Auto => "auto",
            Risk::ApprovalRequired => "approval_required",
        };
        let _ = writeln!(out, "  {} image {} risk {risk}", r.id, r.image);
    }
    for (n, phase) in plan.phases.iter().enumerate() {
        let _ = writeln!(out, "phase {}/{} {}", n + 1, plan.phases.len(), phase.id);
        if let Some(w) = &phase.when {
            let _ = writeln!(out, "  when: {w}");
        }
        if phase.per_environment {
            let envs: Vec<&str> = plan.environments.iter().map(|e| e.name.as_str()).collect();
            let _ = writeln!(out, "  per environment: {}", envs.join(" → "));
        }
        if let Some(c) = &phase.canary {
            let steps: Vec<String> = c.steps.iter().map(|w| format!("{w}%")).collect();
            let _ = writeln!(
                out,
                "  canary: {} (hold {} each)",
                steps.join(" → "),
                format_duration(c.hold)
            );
        }
        for t in &phase.tasks {
            let _ = writeln!(out, "  task {}", task_line(t));
        }
        let gates: Vec<String> = phase.effective_gates().iter().map(gate_text).collect();
        let _ = writeln!(out, "  gates: {}", gates.join("; "));
        let on_fail = match phase.on_fail {
            OnFail::Rollback => "rollback".to_string(),
            OnFail::Retry => format!("retry (up to {} more times)", phase.max_retries),
            OnFail::Halt => "halt".to_string(),
        };
        let _ = writeln!(out, "  on_fail: {on_fail}");
        for t in &phase.rollback {
            let _ = writeln!(out, "  rollback {}", task_line(t));
        }
    }
    for r in &plan.repeats {
        let until: Vec<String> = r.until.iter().map(gate_text).collect();
        let _ = writeln!(
            out,
            "repeat {}: {} until {} (at most {} times)",
            r.id,
            r.phases.join(", "),
            until.join(" and "),
            r.max
        );
    }
    for s in &plan.stop_when {
        let _ = writeln!(out, "stop when: {s}");
    }
    if plan.stages.len() != plan.phases.len() {
        let ids: Vec<&str> = plan.stages.iter().map(|s| s.id.as_str()).collect();
        let _ = writeln!(out, "stages ({}): {}", ids.len(), ids.join(", "));
    }
    out
}

fn task_line(t: &Task) -> String {
    let mut line = format!("{} (role {}", t.id, t.role);
    if !t.needs.is_empty() {
        let _ = write!(line, ", needs {}", t.needs.join(", "));
    }
    if t.timeout != DEFAULT_TIMEOUT {
        let _ = write!(line, ", timeout {}", format_duration(t.timeout));
    }
    if t.retries > 0 {
        let _ = write!(line, ", retries {}", t.retries);
    }
    if let Some(w) = &t.when {
        let _ = write!(line, ", when {w}");
    }
    line.push(')');
    line
}

fn gate_text(g: &GateSpec) -> String {
    match g {
        GateSpec::Tasks { min_ok: None } => "tasks all_ok".to_string(),
        GateSpec::Tasks { min_ok: Some(n) } => format!("tasks min_ok {n}"),
        GateSpec::Expr { expr } => format!("expr `{expr}`"),
        GateSpec::Approval(a) => {
            let mut text = format!("approval (quorum {}", a.quorum);
            if !a.allow_self_approval {
                text.push_str(", not by the submitter");
            }
            if !a.expires.is_zero() {
                let _ = write!(
                    text,
                    ", expires {} then {}",
                    format_duration(a.expires),
                    a.on_expiry.as_str()
                );
            }
            text.push(')');
            text
        }
        GateSpec::Window {
            cron,
            duration,
            timezone,
        } => format!(
            "window `{cron}` for {} ({})",
            format_duration(*duration),
            if timezone.is_empty() { "UTC" } else { timezone }
        ),
    }
}
