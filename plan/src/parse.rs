//! YAML node tree → [`Plan`], with the positions later checks point at.
//!
//! Parsing is lenient: every local problem (unknown key, wrong type, bad id,
//! bad duration, empty list, ...) is reported and parsing goes on with a
//! best-effort value, so one run of `load` finds as many problems as it can.
//! Cross-references (roles, needs, templates, gate expressions) are checked
//! afterwards by `validate`, using [`Spans`].

use std::collections::BTreeMap;

use marked_yaml::Node;

use super::error::{suggest, Pos};
use super::model::*;
use super::node::{is_null, kind, node_pos, span_pos, Cx, Field, TextPos};
use super::task::task;

const PLAN_KEYS: &[&str] = &[
    "name",
    "description",
    "inputs",
    "roles",
    "phases",
    "environments",
    "repeat",
    "stop_when",
    "incidents",
    "workspace",
    "artifacts",
];
const INPUT_KEYS: &[&str] = &["default", "description"];
const PHASE_KEYS: &[&str] = &[
    "id",
    "tasks",
    "gates",
    "on_fail",
    "max_retries",
    "rollback",
    "when",
    "per_environment",
    "canary",
];
const GATE_KINDS: &[&str] = &["tasks", "expr", "approval", "window"];
const WINDOW_KEYS: &[&str] = &["cron", "duration", "timezone"];

/// The default `max_retries` of a phase.
pub const DEFAULT_MAX_RETRIES: u32 = 2;

/// Positions of the parts of a plan, parallel to the model's vectors.
#[derive(Debug, Default)]
pub(crate) struct Spans {
    pub phases: Vec<PhaseSpans>,
    pub environments: Vec<super::flow::EnvSpans>,
    pub repeats: Vec<super::flow::RepeatSpans>,
    pub stop_when: Vec<TextPos>,
}

#[derive(Debug, Default)]
pub(crate) struct PhaseSpans {
    /// The `id` value (or the phase itself when it has none).
    pub id: Pos,
    pub tasks: Vec<TaskSpans>,
    pub rollback: Vec<TaskSpans>,
    /// Parallel to `Phase::gates`.
    pub gates: Vec<GateSpans>,
    pub when: Option<TextPos>,
    /// The `per_environment` and `canary` keys, when written.
    pub per_environment: Option<Pos>,
    pub canary: Option<Pos>,
}

#[derive(Debug, Default)]
pub(crate) struct TaskSpans {
    pub id: Pos,
    pub role: Pos,
    /// Parallel to `Task::needs`.
    pub needs: Vec<Pos>,
    /// Parallel to `Task::run`.
    pub run: Vec<TextPos>,
    pub env: BTreeMap<String, TextPos>,
    pub when: Option<TextPos>,
    /// Parallel to `Task::outputs`.
    pub outputs: Vec<Pos>,
    /// The `with` key, when written; and each value.
    pub with_key: Option<Pos>,
    pub with: BTreeMap<String, TextPos>,
}

#[derive(Debug, Default)]
pub(crate) struct GateSpans {
    /// The gate's value: the expression string, or the `min_ok` number.
    pub value: TextPos,
}

/// Read the whole plan.
pub(crate) fn plan(cx: &mut Cx, root: &Node) -> (Plan, Spans) {
    let mut spans = Spans::default();
    let mut plan = Plan {
        name: String::new(),
        description: None,
        inputs: Vec::new(),
        roles: BTreeMap::new(),
        phases: Vec::new(),
        environments: Vec::new(),
        repeats: Vec::new(),
        stop_when: Vec::new(),
        incident_webhook: None,
        workspace: None,
        max_artifact_bytes: 0,
        stages: Vec::new(),
    };
    let Some(top) = cx.fields(root, node_pos(root), "the plan", PLAN_KEYS) else {
        return (plan, spans);
    };
    if let Some(f) = cx.require(&top, "name", "the plan") {
        plan.name = cx.id(f, "plan name").unwrap_or_default();
    }
    plan.description = top
        .get("description")
        .and_then(|f| cx.string(f))
        .map(|(s, _)| s);
    if let Some(f) = top.get("inputs").filter(|f| !is_null(f.node)) {
        inputs(cx, f, &mut plan);
    }
    if let Some(f) = top.get("roles").filter(|f| !is_null(f.node)) {
        for role in super::role::roles(cx, f) {
            plan.roles.insert(role.id.clone(), role);
        }
    }
    super::flow::top(cx, &top, &mut plan, &mut spans);
    if let Some(f) = cx.require(&top, "phases", "the plan") {
        let hint = "write `phases:` followed by `- id: ...` items";
        if is_null(f.node) {
            cx.err(
                f.pos(),
                "the plan has no phases",
                "add at least one phase under `phases:`",
            );
        } else if let Some(list) = cx.seq(f, hint) {
            if list.is_empty() {
                cx.err(
                    f.pos(),
                    "the plan has no phases",
                    "add at least one phase under `phases:`",
                );
            }
            for item in list.iter() {
                if let Some((p, s)) = phase(cx, item) {
                    plan.phases.push(p);
                    spans.phases.push(s);
                }
            }
        }
    }
    (plan, spans)
}

/// `name → { default, description }`, `name → scalar` (the default) or
/// `name → null / {}` (required).
fn inputs(cx: &mut Cx, f: Field<'_>, plan: &mut Plan) {
    let Node::Mapping(map) = f.node else {
        cx.err(
            f.pos(),
            format!("`inputs` must be a mapping, not {}", kind(f.node)),
            "write `inputs:` followed by `name: { default: ... }` lines",
        );
        return;
    };
    for (k, v) in map.iter() {
        let name = k.as_str().to_string();
        let key = Field {
            name: k.as_str(),
            key: span_pos(k.span()),
            node: v,
        };
        cx.check_id(&name, key.key, "input name");
        let mut spec = InputSpec {
            name: name.clone(),
            default: None,
            description: None,
        };
        match v {
            _ if is_null(v) => {}
            Node::Scalar(s) => spec.default = Some(s.as_str().to_string()),
            Node::Mapping(_) => {
                if let Some(fs) = cx.fields(v, key.pos(), &format!("input `{name}`"), INPUT_KEYS) {
                    let text = |cx: &mut Cx, n: &str| {
                        fs.get(n).filter(|f| !is_null(f.node)).and_then(|f| cx.string(f)).map(|(s, _)| s)
                    };
                    spec.default = text(cx, "default");
                    spec.description = text(cx, "description");
                }
            }
            Node::Sequence(_) => cx.err(
                key.pos(),
                format!("input `{name}` must be a default value or a mapping, not a list"),
                "write `name: { default: \"...\" }`, `name: \"default\"` or `name: {}` for a required input",
            ),
        }
        plan.inputs.push(spec);
    }
}

fn phase(cx: &mut Cx, node: &Node) -> Option<(Phase, PhaseSpans)> {
    let fs = cx.fields(node, node_pos(node), "a phase", PHASE_KEYS)?;
    let mut spans = PhaseSpans {
        id: fs.pos,
        ..PhaseSpans::default()
    };
    let mut phase = Phase {
        id: String::new(),
        tasks: Vec::new(),
        gates: Vec::new(),
        on_fail: OnFail::Rollback,
        max_retries: DEFAULT_MAX_RETRIES,
        rollback: Vec::new(),
        when: None,
        per_environment: false,
        canary: None,
    };
    if let Some(f) = cx.require(&fs, "id", "phase") {
        spans.id = f.pos();
        phase.id = cx.id(f, "phase id").unwrap_or_default();
    }
    let label = format!("phase `{}`", phase.id);
    super::flow::phase(cx, &fs, &mut phase, &mut spans);
    if let Some(f) = cx.require(&fs, "tasks", &label) {
        let hint = "write `tasks:` followed by `- id: ...` items";
        if is_null(f.node) {
            cx.err(
                f.pos(),
                format!("{label} has no tasks"),
                "add at least one task under `tasks:`",
            );
        } else if let Some(list) = cx.seq(f, hint) {
            if list.is_empty() {
                cx.err(
                    f.pos(),
                    format!("{label} has no tasks"),
                    "add at least one task under `tasks:`",
                );
            }
            for item in list.iter() {
                if let Some((t, s)) = task(cx, item, false) {
                    phase.tasks.push(t);
                    spans.tasks.push(s);
                }
            }
        }
    }
    if let Some(f) = fs.get("rollback").filter(|f| !is_null(f.node)) {
        if let Some(list) = cx.seq(f, "write `rollback:` followed by `- id: ...` steps") {
            for item in list.iter() {
                if let Some((t, s)) = task(cx, item, true) {
                    phase.rollback.push(t);
                    spans.rollback.push(s);
                }
            }
        }
    }
    if let Some(f) = fs.get("gates").filter(|f| !is_null(f.node)) {
        let hint = "write `gates:` followed by `- tasks: all_ok`, `- expr: \"...\"` or `- approval: {}` items";
        if let Some(list) = cx.seq(f, hint) {
            for item in list.iter() {
                if let Some((g, s)) = gate(cx, item) {
                    phase.gates.push(g);
                    spans.gates.push(s);
                }
            }
        }
    }
    if let Some(f) = fs.get("on_fail") {
        if let Some((text, _)) = cx.string(f) {
            phase.on_fail = match text.as_str() {
                "rollback" => OnFail::Rollback,
                "retry" => OnFail::Retry,
                "halt" => OnFail::Halt,
                other => {
                    let allowed = ["rollback", "retry", "halt"];
                    cx.err(
                        f.pos(),
                        format!("unknown on_fail `{other}`"),
                        suggest(other, allowed, "allowed values"),
                    );
                    OnFail::Rollback
                }
            };
        }
    }
    if let Some(f) = fs.get("max_retries") {
        if let Some(n) = cx.uint(f, 100) {
            phase.max_retries = n;
        }
        let retry_written = fs
            .get("on_fail")
            .is_some_and(|f| matches!(f.node, Node::Scalar(s) if s.as_str() == "retry"));
        if !retry_written {
            cx.err(
                f.key,
                "max_retries only applies with on_fail: retry",
                "add `on_fail: retry` to the phase, or remove `max_retries`",
            );
        }
    }
    Some((phase, spans))
}

/// One gate: a single-key mapping.
pub(crate) fn gate(cx: &mut Cx, node: &Node) -> Option<(GateSpec, GateSpans)> {
    let at = node_pos(node);
    let fs = cx.fields(node, at, "a gate", GATE_KINDS)?;
    let [f] = fs.entries.as_slice() else {
        let written = node.as_mapping().map_or(0, |m| m.len());
        if fs.entries.len() > 1 {
            let keys: Vec<&str> = fs.entries.iter().map(|f| f.name).collect();
            cx.err(
                at,
                format!("a gate has one kind, this one has {}", keys.join(", ")),
                "write each gate as its own `- ` item",
            );
        } else if written == 0 {
            cx.err(
                at,
                "empty gate",
                format!("use one of: {}", GATE_KINDS.join(", ")),
            );
        }
        return None;
    };
    let f = *f;
    let value = TextPos {
        node: f.pos(),
        inline: None,
    };
    match f.name {
        "tasks" => match f.node {
            Node::Scalar(s) if s.as_str() == "all_ok" => {
                Some((GateSpec::Tasks { min_ok: None }, GateSpans { value }))
            }
            Node::Mapping(_) => {
                let inner = cx.fields(f.node, f.pos(), "the `tasks` gate", &["min_ok"])?;
                let m = cx.require(&inner, "min_ok", "the `tasks` gate")?;
                let n = cx.uint(m, u32::MAX)?;
                if n == 0 {
                    cx.err(
                        m.pos(),
                        "min_ok is 0, so the gate could never fail",
                        "use at least 1, or `tasks: all_ok`",
                    );
                }
                let value = TextPos {
                    node: m.pos(),
                    inline: None,
                };
                Some((GateSpec::Tasks { min_ok: Some(n) }, GateSpans { value }))
            }
            other => {
                cx.err(
                    f.pos(),
                    format!("unknown `tasks` gate {}", kind(other)),
                    "write `tasks: all_ok` or `tasks: { min_ok: N }`",
                );
                None
            }
        },
        "expr" => {
            let (expr, value) = cx.string(f)?;
            Some((GateSpec::Expr { expr }, GateSpans { value }))
        }
        "window" => window(cx, f, value),
        _ => {
            let spec = super::approval::approval(cx, f)?;
            Some((GateSpec::Approval(spec), GateSpans { value }))
        }
    }
}

/// `window: { cron: "0 2 * * SAT", duration: 4h, timezone: Europe/Berlin }`.
fn window(cx: &mut Cx, f: Field<'_>, value: TextPos) -> Option<(GateSpec, GateSpans)> {
    let fs = cx.fields(f.node, f.pos(), "the `window` gate", WINDOW_KEYS)?;
    let (cron, cron_at) = cx
        .require(&fs, "cron", "the `window` gate")
        .and_then(|c| cx.string(c))?;
    let d = cx.require(&fs, "duration", "the `window` gate")?;
    let (text, _) = cx.string(d)?;
    let max = super::duration::MAX_WINDOW_DURATION;
    let duration = super::duration::capped(
        cx,
        d,
        &text,
        "window duration",
        max,
        "use a number and a unit, e.g. 30m, 4h",
        &format!(
            "a window that long is always open: use at most `duration: {}`, or drop the `window` gate",
            super::duration::format_duration(max)
        ),
    )?;
    if duration.is_zero() {
        cx.err(
            d.pos(),
            "a window of 0 never opens",
            "use e.g. `duration: 4h`",
        );
        return None;
    }
    let timezone = match fs.get("timezone") {
        Some(t) => cx.string(t)?.0,
        None => String::new(),
    };
    let _ = value;
    Some((
        GateSpec::Window {
            cron,
            duration,
            timezone,
        },
        GateSpans { value: cron_at },
    ))
}
