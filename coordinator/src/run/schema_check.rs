//! A successful result must match its role's declared outputs: a result
//! that does not is an attempt that failed (and may be retried), so a
//! downstream task or gate never reads outputs the role did not promise.

use baton_plan::{self as plan, Plan};
use baton_proto::v1;
use serde_json::{Map, Value};

/// Whether the attempt succeeded and its error, once the outputs it
/// reported are checked against the role of the task.
pub(super) fn outcome(
    plan: &Plan,
    role: &str,
    f: &v1::TaskFinished,
    outputs: &Map<String, Value>,
) -> (bool, String) {
    let Some(role) = plan.role(role).filter(|_| f.ok) else {
        return (f.ok, f.error.clone());
    };
    match plan::check_outputs(&role.outputs, &role.id, outputs) {
        Ok(()) => (true, f.error.clone()),
        Err(problems) => (
            false,
            format!(
                "result does not match role {}'s output schema: {}",
                role.id,
                problems.join("; ")
            ),
        ),
    }
}
