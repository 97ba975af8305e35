//! Size limits on a plan, checked before and after parsing, so that a huge
//! or pathological plan is refused with a clear message instead of eating the
//! coordinator's memory or every run's event budget.

use super::error::Pos;
use super::node::Cx;
use super::Plan;

/// Largest plan accepted, in bytes. NATS carries the plan inside the run's
/// first event, whose payload the server caps at 1 MiB by default.
pub const MAX_PLAN_BYTES: usize = 512 * 1024;
/// Largest value of one input given at submit time, and of all of them
/// together: inputs ride in the run's first event next to the plan.
pub const MAX_INPUT_BYTES: usize = 16 * 1024;
pub const MAX_INPUTS_TOTAL_BYTES: usize = 64 * 1024;
/// Most tasks (rollback steps included) in one plan.
pub const MAX_TASKS: usize = 500;
/// Most stages a plan may expand to (environments × canary steps × loop iterations).
pub const MAX_STAGES: usize = 1000;

/// `Some(message)` when the text alone is too large to parse.
pub fn check_size(yaml: &str) -> Option<String> {
    (yaml.len() > MAX_PLAN_BYTES).then(|| {
        format!(
            "the plan is {} bytes, more than the limit of {MAX_PLAN_BYTES} (512 KiB)",
            yaml.len()
        )
    })
}

/// Tasks, counted on the parsed plan.
pub(super) fn check_tasks(cx: &mut Cx, plan: &Plan) {
    let tasks: usize = plan
        .phases
        .iter()
        .map(|p| p.tasks.len() + p.rollback.len())
        .sum();
    if tasks > MAX_TASKS {
        cx.err(
            Pos::new(1, 1),
            format!("the plan has {tasks} tasks, more than the limit of {MAX_TASKS}"),
            "split it into several plans, or use `repeat` and `per_environment` instead of copies",
        );
    }
}

/// Stages, counted on the valid plan's expansion.
pub(super) fn check_stages(cx: &mut Cx, plan: &Plan) {
    let stages = plan.stages.len();
    if stages > MAX_STAGES {
        cx.err(
            Pos::new(1, 1),
            format!("the plan expands to {stages} stages, more than the limit of {MAX_STAGES}"),
            "use fewer environments, canary steps or loop iterations",
        );
    }
}
