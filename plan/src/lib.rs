//! The plan format: YAML with positions → a validated [`Plan`], the template
//! rendering the coordinator does at dispatch, the expression language of
//! gates and conditions, and maintenance windows. Pure: no I/O, no bus.
//!
//! [`load`] reports every problem it finds (not just the first), each as a
//! [`Diagnostic`] with the line and column of the offending node, what is
//! wrong and how to fix it.
//!
//! # Layout
//! - `model`: the plan as the coordinator uses it (plain data).
//! - `error`: [`Diagnostic`], [`PlanError`] (the crate's one error type), the diagnostic sink and did-you-mean.
//! - `node`: reading marked-yaml nodes: positions, typed fields, unknown keys, ids.
//! - `parse`: the node tree → model (plan, inputs, roles, phases, gates), with positions.
//! - `task`: reading one task or rollback step.
//! - `approval`: the `approval` gate: quorum, self-approval, expiry.
//! - `validate`: cross-checks: unique ids, roles, `needs` and cycles.
//! - `refs`: who may read what: template references and gate expression names.
//! - [`template`]: scanning and rendering `${{ ... }}` templates.
//! - `flow`: how phases run: environments, canary, `when`, `repeat`, `stop_when`, workspace.
//! - `validate_flow`: cross-checks of those keys: `per_environment` phases, `repeat` lists, expressions, window gates.
//! - [`stages`]: phases expanded into the stages a run walks.
//! - `duration`: `250ms`, `30s`, `5m`, `1h30m`.
//! - `inputs`: submit-time inputs + defaults.
//! - `limits`: how large a plan may be (bytes, tasks, stages).
//! - `summary`: the human summary for `baton plan validate`.
//! - `role`: roles (in plans and role files) and their normalized YAML.
//! - `sandbox`: a role's `sandbox:` requests (network, mounts, resources) and their warnings.
//! - `schema`: field schemas of role inputs/outputs, and checking values.
//! - `schema_yaml`: reading schemas from YAML, writing them back normalized.
//! - `secrets`: `env` entries and `secrets:` lists naming secrets by reference (tests in `secrets_tests.rs`).
//! - `with`: a task's `with:` and checking tasks against their role's schemas.
//! - [`expr`]: the typed expression language of `expr` gates, `when:` and `stop_when:`.
//! - [`window`]: maintenance windows: open or when next, and checking a window's cron and time zone.
#![forbid(unsafe_code)]

mod approval;
mod duration;
mod error;
pub mod expr;
mod flow;
mod inputs;
mod limits;
mod model;
mod node;
mod parse;
mod refs;
mod role;
mod sandbox;
mod schema;
mod schema_yaml;
mod secrets;
pub mod stages;
mod summary;
mod task;
pub mod template;
mod validate;
mod validate_flow;
pub mod window;
mod with;

use std::collections::BTreeMap;

use marked_yaml::{parse_yaml_with_options, LoadError, LoaderOptions};

pub use duration::{
    format_duration, parse_duration, MAX_APPROVAL_EXPIRY, MAX_CANARY_HOLD, MAX_DURATION,
    MAX_TIMEOUT, MAX_WINDOW_DURATION,
};
pub use error::{Diagnostic, PlanError};
pub use inputs::resolve_inputs;
pub use limits::{MAX_INPUTS_TOTAL_BYTES, MAX_INPUT_BYTES, MAX_PLAN_BYTES, MAX_STAGES, MAX_TASKS};
pub use model::*;
pub use parse::DEFAULT_MAX_RETRIES;
pub use role::{load_roles, parse_role, role_yaml};
pub use sandbox::{warnings as sandbox_warnings, RoleSandbox, SandboxMount};
pub use schema::{check_inputs, check_outputs, FieldSpec, FieldType};
pub use summary::summary;
pub use task::{DEFAULT_TIMEOUT, MAX_TASK_RETRIES};
pub use template::{render, render_with};

use error::Pos;
use node::Cx;

/// Parse and validate; collect all problems found, sorted by line and column.
pub fn load(file_name: &str, yaml: &str) -> Result<Plan, PlanError> {
    load_with_roles(file_name, yaml, &BTreeMap::new())
}

/// [`load`], with registered roles (id → spec YAML) for tasks naming a role
/// the plan does not declare. Plan-declared roles win.
pub fn load_with_roles(
    file_name: &str,
    yaml: &str,
    registry: &BTreeMap<String, String>,
) -> Result<Plan, PlanError> {
    load_resolving(file_name, yaml, registry).map(|(plan, _)| plan)
}

/// [`load_with_roles`], also returning the registered roles the plan used
/// (id → spec YAML): what a submission stores so replays see the same roles.
pub fn load_resolving(
    file_name: &str,
    yaml: &str,
    registry: &BTreeMap<String, String>,
) -> Result<(Plan, BTreeMap<String, String>), PlanError> {
    let mut cx = Cx::new(file_name, yaml);
    if let Some(message) = limits::check_size(yaml) {
        cx.err(
            Pos::new(1, 1),
            message,
            "move data the plan carries into inputs or artifacts, or split the plan",
        );
        return Err(cx.sink.into_error());
    }
    let options = LoaderOptions::default()
        .prevent_coercion(true)
        .error_on_duplicate_keys(true);
    match parse_yaml_with_options(0, yaml, options) {
        Ok(root) => {
            let (mut plan, spans) = parse::plan(&mut cx, &root);
            let used = add_registered(&mut cx, &mut plan, &spans, registry);
            validate::check(&mut cx.sink, &plan, &spans);
            with::check(&mut cx.sink, &plan, &spans);
            limits::check_tasks(&mut cx, &plan);
            let (mut plan, used) = cx.sink.finish((plan, used))?;
            plan.stages = stages::expand(&plan);
            let mut cx = Cx::new(file_name, yaml);
            limits::check_stages(&mut cx, &plan);
            cx.sink.finish((plan, used))
        }
        Err(e) => {
            let (pos, message, hint) = load_error(&e);
            cx.err(pos, message, hint);
            Err(cx.sink.into_error())
        }
    }
}

/// Add the registered roles that tasks name and the plan does not declare;
/// returns their YAML by id.
fn add_registered(
    cx: &mut Cx,
    plan: &mut Plan,
    spans: &parse::Spans,
    registry: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    if registry.is_empty() {
        return BTreeMap::new();
    }
    let mut used: BTreeMap<String, Pos> = BTreeMap::new();
    for (phase, ps) in plan.phases.iter().zip(&spans.phases) {
        let main = phase.tasks.iter().zip(&ps.tasks);
        for (t, ts) in main.chain(phase.rollback.iter().zip(&ps.rollback)) {
            if !plan.roles.contains_key(&t.role) && registry.contains_key(&t.role) {
                used.entry(t.role.clone()).or_insert(ts.role);
            }
        }
    }
    let (roles, broken) = role::registered(used.keys().cloned(), registry);
    for (id, why) in broken {
        cx.err(
            used[&id],
            format!("registered role `{id}` no longer loads: {why}"),
            "register it again with `baton role apply`",
        );
    }
    let yaml = roles
        .keys()
        .map(|id| (id.clone(), registry[id].clone()))
        .collect();
    plan.roles.extend(roles);
    yaml
}

pub(crate) fn load_error(e: &LoadError) -> (Pos, String, String) {
    let at = |m: &marked_yaml::Marker| Pos::new(m.line(), m.column());
    match e {
        LoadError::ScanError(m, se) => (
            at(m),
            format!("YAML syntax error: {}", se.info()),
            "check the indentation, quotes and brackets around here".into(),
        ),
        LoadError::DuplicateKey(inner) => {
            let first = inner.prev_key.span().start().map(at).unwrap_or_default();
            let second = inner.key.span().start().map(at).unwrap_or_default();
            (
                second,
                format!("duplicate key `{}` (first at line {}, column {})", inner.key.as_str(), first.line, first.col),
                "each key may appear once in a mapping; remove or rename one (role and input ids must be unique)"
                    .into(),
            )
        }
        LoadError::TopLevelMustBeMapping(m) | LoadError::TopLevelMustBeSequence(m) => (
            at(m),
            "a plan must be a YAML mapping".into(),
            "start the file with `name:` and `phases:`".into(),
        ),
        LoadError::UnexpectedAnchor(m) => (
            at(m),
            "YAML anchors and aliases are not supported".into(),
            "write the value out in full".into(),
        ),
        LoadError::MappingKeyMustBeScalar(m) => (
            at(m),
            "mapping keys must be plain strings".into(),
            "write keys as `name:`".into(),
        ),
        LoadError::UnexpectedTag(m) => (
            at(m),
            "YAML tags (`!tag`) are not supported".into(),
            "remove the tag; quote the value if it must be a string".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages `load(file, yaml)` refuses the plan with.
    fn refused(file: &str, yaml: &str) -> Vec<String> {
        let e = load(file, yaml).unwrap_err();
        e.diagnostics.into_iter().map(|d| d.message).collect()
    }

    const SMALL: &str = "\
name: small
inputs:
  who:
  greeting: hi
roles:
  r: { image: img, risk: approval_required }
phases:
  - id: one
    tasks:
      - id: a
        role: r
        run: echo ${{ inputs.greeting }} ${{ inputs.who }}
        outputs: [n]
      - id: b
        role: r
        needs: [a]
        timeout: 90s
        retries: 1
        run: [\"echo\", \"${{ tasks.a.outputs.n }}\"]
    gates:
      - approval: { quorum: 2 }
    on_fail: retry
    max_retries: 3
";

    #[test]
    fn loads_and_summarises() {
        let plan = load("small.yaml", SMALL).unwrap();
        assert_eq!(plan.inputs[0].default, None);
        assert_eq!(plan.inputs[1].default.as_deref(), Some("hi"));
        assert_eq!(plan.phases[0].max_retries, 3);
        assert_eq!(
            summary(&plan),
            "plan small\n\
             inputs:\n  who (required)\n  greeting (default \"hi\")\n\
             roles:\n  r image img risk approval_required\n\
             phase 1/1 one\n\
             \x20 task a (role r)\n\
             \x20 task b (role r, needs a, timeout 1m30s, retries 1)\n\
             \x20 gates: tasks all_ok; approval (quorum 2)\n\
             \x20 on_fail: retry (up to 3 more times)\n"
        );
    }

    #[test]
    fn yaml_errors_have_positions() {
        let e = load("p.yaml", "name: x\nphases: [\n").unwrap_err();
        assert_eq!(e.diagnostics.len(), 1);
        assert!(
            e.diagnostics[0].message.starts_with("YAML syntax error"),
            "{e}"
        );
        let e = load("p.yaml", "name: x\nname: y\n").unwrap_err();
        let d = &e.diagnostics[0];
        assert_eq!((d.line, d.col), (2, 1));
        assert_eq!(
            d.message,
            "duplicate key `name` (first at line 1, column 1)"
        );
        let e = load("p.yaml", "- a\n").unwrap_err();
        assert_eq!(e.diagnostics[0].message, "a plan must be a YAML mapping");
    }

    #[test]
    fn oversized_plans_are_refused_before_parsing() {
        let yaml = format!("name: big\n# {}\n", "x".repeat(MAX_PLAN_BYTES));
        let e = load("big.yaml", &yaml).unwrap_err();
        assert_eq!(e.diagnostics.len(), 1);
        assert_eq!(
            e.diagnostics[0].message,
            format!(
                "the plan is {} bytes, more than the limit of 524288 (512 KiB)",
                yaml.len()
            )
        );
    }

    #[test]
    fn too_many_tasks_are_refused() {
        let mut yaml = String::from(
            "name: many\nroles:\n  r: { image: img }\nphases:\n  - id: p\n    tasks:\n",
        );
        for i in 0..=MAX_TASKS {
            yaml.push_str(&format!("      - {{ id: t{i}, role: r, run: x }}\n"));
        }
        assert_eq!(
            refused("many.yaml", &yaml),
            ["the plan has 501 tasks, more than the limit of 500"]
        );
    }

    #[test]
    fn too_many_stages_are_refused() {
        let mut yaml = String::from("name: loopy\nroles:\n  r: { image: img }\nphases:\n");
        let ids: Vec<String> = (0..11).map(|i| format!("p{i}")).collect();
        for id in &ids {
            yaml.push_str(&format!(
                "  - id: {id}\n    tasks: [{{ id: t{id}, role: r, run: x }}]\n"
            ));
        }
        yaml.push_str(&format!(
            "repeat:\n  phases: [{}]\n  until: {{ expr: \"true\" }}\n  max: 100\n",
            ids.join(", ")
        ));
        assert_eq!(
            refused("loopy.yaml", &yaml),
            ["the plan expands to 1100 stages, more than the limit of 1000"]
        );
    }

    #[test]
    fn stop_when_without_phases_is_an_error_not_a_panic() {
        // Found by `cargo fuzz run plan_parse`: indexing the last phase of none.
        assert_eq!(
            refused(
                "p.yaml",
                "name: x\nstop_when: \"tasks.a.status == 'failed'\"\n",
            ),
            ["the plan has no `phases`"]
        );
    }

    #[test]
    fn empty_file_reports_missing_keys() {
        assert_eq!(
            refused("p.yaml", ""),
            ["the plan has no `name`", "the plan has no `phases`"]
        );
    }
}
