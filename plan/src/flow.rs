//! Reading the keys that shape how phases run: `environments`, `repeat`,
//! `stop_when`, `incidents`, `workspace`, `artifacts` at the top level, and
//! `when`, `per_environment`, `canary` on phases.

use marked_yaml::Node;

use super::duration::{capped, format_duration, MAX_CANARY_HOLD};
use super::error::Pos;
use super::model::*;
use super::node::{is_null, kind, node_pos, Cx, Field, Fields, TextPos};
use super::parse::{gate, GateSpans, PhaseSpans, Spans};

const ENV_KEYS: &[&str] = &["name", "gates"];
const REPEAT_KEYS: &[&str] = &["id", "phases", "until", "max"];
const CANARY_KEYS: &[&str] = &["steps", "hold"];
const WORKSPACE_KEYS: &[&str] = &["volume", "host_path", "mount"];
/// The most iterations a `repeat` may ask for.
pub const MAX_ITERATIONS: u32 = 100;
/// Where the workspace is mounted unless the plan says otherwise.
pub const DEFAULT_MOUNT: &str = "/workspace";

#[derive(Debug, Default)]
pub(crate) struct EnvSpans {
    pub name: Pos,
    pub gates: Vec<GateSpans>,
}

#[derive(Debug, Default)]
pub(crate) struct RepeatSpans {
    pub at: Pos,
    pub phases: Vec<Pos>,
    pub until: Vec<GateSpans>,
}

/// Read the top-level flow keys into `plan` and `spans`.
pub(crate) fn top(cx: &mut Cx, top: &Fields<'_>, plan: &mut Plan, spans: &mut Spans) {
    if let Some(f) = top.get("environments").filter(|f| !is_null(f.node)) {
        environments(cx, f, plan, spans);
    }
    if let Some(f) = top.get("repeat").filter(|f| !is_null(f.node)) {
        let items: Vec<&Node> = match f.node {
            Node::Sequence(s) => s.iter().collect(),
            other => vec![other],
        };
        for item in items {
            repeat(cx, item, plan, spans);
        }
    }
    if let Some(f) = top.get("stop_when").filter(|f| !is_null(f.node)) {
        match f.node {
            Node::Sequence(s) => {
                for item in s.iter() {
                    let field = Field {
                        name: "stop_when",
                        key: f.key,
                        node: item,
                    };
                    if let Some((text, at)) = cx.string(field) {
                        plan.stop_when.push(text);
                        spans.stop_when.push(at);
                    }
                }
            }
            _ => {
                if let Some((text, at)) = cx.string(f) {
                    plan.stop_when.push(text);
                    spans.stop_when.push(at);
                }
            }
        }
    }
    if let Some(f) = top.get("incidents").filter(|f| !is_null(f.node)) {
        if let Some(fs) = cx.fields(f.node, f.pos(), "`incidents`", &["webhook"]) {
            if let Some(w) = fs.get("webhook") {
                if let Some((url, _)) = cx.string(w) {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        cx.err(
                            w.pos(),
                            format!("incident webhook `{url}` is not an http(s) URL"),
                            "write e.g. `webhook: https://alerts.example.com/hooks/baton`",
                        );
                    }
                    plan.incident_webhook = Some(url);
                }
            }
        }
    }
    if let Some(f) = top.get("workspace").filter(|f| !is_null(f.node)) {
        plan.workspace = workspace(cx, f);
    }
    if let Some(f) = top.get("artifacts").filter(|f| !is_null(f.node)) {
        if let Some(fs) = cx.fields(f.node, f.pos(), "`artifacts`", &["max_bytes"]) {
            if let Some(m) = fs.get("max_bytes") {
                plan.max_artifact_bytes = cx.uint(m, u32::MAX).unwrap_or(0) as u64;
            }
        }
    }
}

fn environments(cx: &mut Cx, f: Field<'_>, plan: &mut Plan, spans: &mut Spans) {
    let hint =
        "write `environments: [dev, stage, prod]`, or items `- { name: prod, gates: [...] }`";
    let Some(list) = cx.seq(f, hint) else { return };
    for item in list.iter() {
        let mut env = Environment {
            name: String::new(),
            gates: Vec::new(),
        };
        let mut es = EnvSpans {
            name: node_pos(item),
            gates: Vec::new(),
        };
        if let Node::Scalar(_) = item {
            let field = Field {
                name: "environment",
                key: node_pos(item),
                node: item,
            };
            env.name = cx.id(field, "environment").unwrap_or_default();
        } else if let Some(fs) = cx.fields(item, node_pos(item), "an environment", ENV_KEYS) {
            if let Some(n) = cx.require(&fs, "name", "environment") {
                es.name = n.pos();
                env.name = cx.id(n, "environment").unwrap_or_default();
            }
            if let Some(g) = fs.get("gates").filter(|g| !is_null(g.node)) {
                if let Some(gl) = cx.seq(g, "write `gates:` followed by `- approval: {}` items") {
                    for gi in gl.iter() {
                        if let Some((spec, s)) = gate(cx, gi) {
                            env.gates.push(spec);
                            es.gates.push(s);
                        }
                    }
                }
            }
        }
        if plan.environments.iter().any(|e| e.name == env.name) {
            cx.err(
                es.name,
                format!("environment `{}` is listed twice", env.name),
                "list each environment once, in promotion order",
            );
        }
        plan.environments.push(env);
        spans.environments.push(es);
    }
}

fn repeat(cx: &mut Cx, node: &Node, plan: &mut Plan, spans: &mut Spans) {
    let at = node_pos(node);
    let Some(fs) = cx.fields(node, at, "a `repeat`", REPEAT_KEYS) else {
        return;
    };
    let mut rep = Repeat {
        id: String::new(),
        phases: Vec::new(),
        until: Vec::new(),
        max: 1,
    };
    let mut rs = RepeatSpans {
        at,
        ..RepeatSpans::default()
    };
    if let Some(f) = cx.require(&fs, "phases", "the `repeat`") {
        if let Some(list) = cx.seq(f, "write `phases: [scan, fix, validate]`") {
            for item in list.iter() {
                let field = Field {
                    name: "phases",
                    key: f.key,
                    node: item,
                };
                if let Some((text, _)) = cx.string(field) {
                    rep.phases.push(text);
                    rs.phases.push(node_pos(item));
                }
            }
            if rep.phases.is_empty() {
                cx.err(
                    f.pos(),
                    "the `repeat` has no phases",
                    "name the phases it runs again",
                );
            }
        }
    }
    if let Some(f) = cx.require(&fs, "until", "the `repeat`") {
        let items: Vec<&Node> = match f.node {
            Node::Sequence(s) => s.iter().collect(),
            other => vec![other],
        };
        for item in items {
            if let Some((spec, s)) = gate(cx, item) {
                rep.until.push(spec);
                rs.until.push(s);
            }
        }
    }
    if let Some(f) = cx.require(&fs, "max", "the `repeat`") {
        match cx.uint(f, MAX_ITERATIONS) {
            Some(0) => cx.err(f.pos(), "max is 0, so nothing would run", "use at least 1"),
            Some(n) => rep.max = n,
            None => {}
        }
    }
    rep.id = match fs.get("id") {
        Some(f) => cx.id(f, "repeat id").unwrap_or_default(),
        None => rep.phases.first().cloned().unwrap_or_default(),
    };
    plan.repeats.push(rep);
    spans.repeats.push(rs);
}

fn workspace(cx: &mut Cx, f: Field<'_>) -> Option<WorkspaceSpec> {
    let fs = cx.fields(f.node, f.pos(), "`workspace`", WORKSPACE_KEYS)?;
    let volume = fs.get("volume");
    let host = fs.get("host_path");
    let at = host.map_or((0, 0), |h| (h.key.line, h.key.col));
    let source = match (volume, host) {
        (Some(v), None) => {
            if !matches!(v.node, Node::Scalar(s) if s.as_str() == "true") {
                cx.err(
                    v.pos(),
                    format!("`volume` must be true, not {}", kind(v.node)),
                    "write `volume: true` for a Docker volume made for the run",
                );
            }
            WorkspaceSource::Volume
        }
        (None, Some(h)) => WorkspaceSource::HostPath(cx.string(h).map(|(s, _)| s)?),
        _ => {
            cx.err(
                fs.pos,
                "a workspace is either `volume: true` or `host_path: <path>`",
                "write exactly one of them",
            );
            return None;
        }
    };
    let mut mount = DEFAULT_MOUNT.to_string();
    if let Some(m) = fs.get("mount") {
        if let Some((text, _)) = cx.string(m) {
            if !text.starts_with('/') || text.starts_with("/baton") || text == "/" {
                cx.err(
                    m.pos(),
                    format!("workspace mount `{text}` must be an absolute path outside /baton"),
                    "use e.g. `mount: /workspace`",
                );
            }
            mount = text;
        }
    }
    Some(WorkspaceSpec { source, mount, at })
}

/// Phase keys: `when`, `per_environment`, `canary`.
pub(crate) fn phase(cx: &mut Cx, fs: &Fields<'_>, phase: &mut Phase, spans: &mut PhaseSpans) {
    if let Some(f) = fs.get("when") {
        if let Some((text, at)) = cx.string(f) {
            phase.when = Some(text);
            spans.when = Some(at);
        }
    }
    if let Some(f) = fs.get("per_environment") {
        match f.node {
            Node::Scalar(s) if s.as_str() == "true" => phase.per_environment = true,
            Node::Scalar(s) if s.as_str() == "false" => {}
            other => cx.err(
                f.pos(),
                format!(
                    "`per_environment` must be true or false, not {}",
                    kind(other)
                ),
                "write `per_environment: true`",
            ),
        }
        spans.per_environment = Some(f.key);
    }
    if let Some(f) = fs.get("canary").filter(|f| !is_null(f.node)) {
        spans.canary = Some(f.key);
        phase.canary = canary(cx, f);
    }
}

fn canary(cx: &mut Cx, f: Field<'_>) -> Option<Canary> {
    let fs = cx.fields(f.node, f.pos(), "`canary`", CANARY_KEYS)?;
    let mut steps = Vec::new();
    if let Some(s) = cx.require(&fs, "steps", "`canary`") {
        let list = cx.seq(s, "write `steps: [10, 50, 100]` (percent of traffic)")?;
        for item in list.iter() {
            let field = Field {
                name: "steps",
                key: s.key,
                node: item,
            };
            let w = cx.uint(field, 100)?;
            if w == 0 || steps.last().is_some_and(|&l| w <= l) {
                cx.err(
                    node_pos(item),
                    format!("canary step {w} does not increase the weight"),
                    "list weights from 1 to 100 in increasing order, e.g. [10, 50, 100]",
                );
            }
            steps.push(w);
        }
        if steps.last() != Some(&100) {
            cx.err(
                s.pos(),
                "the last canary step is not 100",
                "end with 100, so that passing every step means the change is fully promoted",
            );
        }
    }
    let mut hold = std::time::Duration::ZERO;
    if let Some(h) = fs.get("hold") {
        let (text, _) = cx.string(h)?;
        if let Some(d) = capped(
            cx,
            h,
            &text,
            "hold",
            MAX_CANARY_HOLD,
            "use a number and a unit, e.g. 30s, 5m",
            &format!(
                "hold each step at most {}",
                format_duration(MAX_CANARY_HOLD)
            ),
        ) {
            hold = d;
        }
    }
    Some(Canary { steps, hold })
}

/// A task's `when`.
pub(crate) fn task_when(cx: &mut Cx, fs: &Fields<'_>) -> Option<(String, TextPos)> {
    fs.get("when").and_then(|f| cx.string(f))
}
