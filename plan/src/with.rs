//! A task's `with:` (values for its role's declared inputs) and the checks
//! of tasks against their role's schemas: `with:` against `inputs:`, the
//! task's `outputs:` list against the role's `outputs:`.

use std::collections::BTreeMap;

use super::error::{suggest, Sink};
use super::model::Plan;
use super::node::{Cx, Field, TextPos};
use super::parse::Spans;
use super::schema::input_problems;

/// `with: { name: scalar }`; numbers and bools become their text, and are
/// checked against the declared type later.
pub(crate) fn values(
    cx: &mut Cx,
    f: Field<'_>,
) -> (BTreeMap<String, String>, BTreeMap<String, TextPos>) {
    cx.scalar_map(
        f,
        |name| format!("input `{name}` in `with`"),
        "write `with: { name: \"value\" }`, one entry per input the role declares",
        "write the value as text; arrays and objects as JSON in quotes, e.g. '[\"a\"]'",
    )
}

/// Check every task (and rollback step) against its role's schemas.
pub(crate) fn check(sink: &mut Sink, plan: &Plan, spans: &Spans) {
    for (phase, ps) in plan.phases.iter().zip(&spans.phases) {
        let main = phase.tasks.iter().zip(&ps.tasks);
        let back = phase.rollback.iter().zip(&ps.rollback);
        for (task, ts) in main.chain(back) {
            let Some(role) = plan.roles.get(&task.role) else {
                continue; // reported as an unknown role
            };
            if !role.inputs.fields.is_empty() || !task.with.is_empty() {
                for (name, message, hint) in input_problems(&role.inputs, &role.id, &task.with) {
                    let pos = match &name {
                        Some(n) => ts.with.get(n).map(|t| t.node).or(ts.with_key),
                        None => ts.with_key,
                    };
                    sink.err(
                        pos.unwrap_or(ts.role),
                        format!("task `{}`: {message}", task.id),
                        hint,
                    );
                }
            }
            if role.outputs.fields.is_empty() {
                continue;
            }
            let declared = role.outputs.fields.keys().map(String::as_str);
            for (name, pos) in task.outputs.iter().zip(&ts.outputs) {
                if !role.outputs.fields.contains_key(name) {
                    sink.err(
                        *pos,
                        format!(
                            "output `{name}` of task `{}` is not declared by role `{}`",
                            task.id, role.id
                        ),
                        suggest(name, declared.clone(), "the role's outputs"),
                    );
                }
            }
        }
    }
}
