//! Reading one task (or rollback step) of a phase.

use std::collections::BTreeMap;
use std::time::Duration;

use marked_yaml::Node;

use super::duration::{capped, format_duration, MAX_TIMEOUT};
use super::error::Pos;
use super::model::Task;
use super::node::{is_null, kind, node_pos, span_pos, Cx, Field, TextPos};
use super::parse::TaskSpans;

const TASK_KEYS: &[&str] = &[
    "id", "role", "run", "env", "needs", "timeout", "retries", "outputs", "when", "with", "secrets",
];

/// The default per-attempt timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// The most extra attempts a task may ask for.
pub const MAX_TASK_RETRIES: u32 = 10;

/// Read a task; `rollback` when it is a rollback step.
pub(crate) fn task(cx: &mut Cx, node: &Node, rollback: bool) -> Option<(Task, TaskSpans)> {
    let what = if rollback { "rollback step" } else { "task" };
    let fs = cx.fields(node, node_pos(node), &format!("a {what}"), TASK_KEYS)?;
    let mut spans = TaskSpans {
        id: fs.pos,
        role: fs.pos,
        ..TaskSpans::default()
    };
    let mut task = Task {
        id: String::new(),
        role: String::new(),
        run: Vec::new(),
        env: BTreeMap::new(),
        needs: Vec::new(),
        timeout: DEFAULT_TIMEOUT,
        retries: 0,
        outputs: Vec::new(),
        when: None,
        with: BTreeMap::new(),
        secrets: Vec::new(),
    };
    if let Some(f) = cx.require(&fs, "id", what) {
        spans.id = f.pos();
        task.id = cx.id(f, &format!("{what} id")).unwrap_or_default();
    }
    let label = format!("{what} `{}`", task.id);
    if let Some(f) = cx.require(&fs, "role", &label) {
        spans.role = f.pos();
        task.role = cx.string(f).map(|(s, _)| s).unwrap_or_default();
    }
    if let Some(f) = cx.require(&fs, "run", &label) {
        (task.run, spans.run) = run(cx, f, &label);
    }
    if let Some(f) = fs.get("env").filter(|f| !is_null(f.node)) {
        (task.env, spans.env, task.secrets) = env(cx, f);
    }
    if let Some(f) = fs.get("secrets").filter(|f| !is_null(f.node)) {
        let listed = super::secrets::list(cx, f);
        super::secrets::check_unique(cx, f.key, &task.env, &task.secrets, &listed);
        task.secrets.extend(listed);
    }
    if let Some(f) = fs.get("needs").filter(|f| !is_null(f.node)) {
        if rollback {
            cx.err(
                f.key,
                "rollback steps do not take `needs`",
                "rollback steps run one after another in the order written; remove `needs`",
            );
        } else {
            for (name, pos) in names(cx, f) {
                task.needs.push(name);
                spans.needs.push(pos);
            }
        }
    }
    if let Some(f) = fs.get("timeout") {
        if let Some(d) = timeout(cx, f) {
            task.timeout = d;
        }
    }
    if let Some(f) = fs.get("retries") {
        task.retries = cx.uint(f, MAX_TASK_RETRIES).unwrap_or(0);
    }
    if let Some(f) = fs.get("outputs").filter(|f| !is_null(f.node)) {
        for (name, pos) in names(cx, f) {
            if !is_output_name(&name) {
                cx.err(
                    pos,
                    format!("output name `{name}` is not a plain word"),
                    "output names use letters, digits, `_` and `-` (they are read as tasks.<id>.outputs.<name>)",
                );
            }
            task.outputs.push(name);
            spans.outputs.push(pos);
        }
    }
    if let Some((text, at)) = super::flow::task_when(cx, &fs) {
        if rollback {
            cx.err(
                at.node,
                "rollback steps do not take `when`",
                "a rollback restores a known-good state and always runs every step; remove `when`",
            );
        }
        task.when = Some(text);
        spans.when = Some(at);
    }
    if let Some(f) = fs.get("with").filter(|f| !is_null(f.node)) {
        spans.with_key = Some(f.key);
        (task.with, spans.with) = super::with::values(cx, f);
    }
    Some((task, spans))
}

/// `run: [argv...]` or `run: "shell line"` (→ `sh -c "shell line"`).
fn run(cx: &mut Cx, f: Field<'_>, label: &str) -> (Vec<String>, Vec<TextPos>) {
    let empty = |cx: &mut Cx| {
        cx.err(
            f.pos(),
            format!("`run` of {label} is empty"),
            "give the command as a list, e.g. `run: [\"make\", \"test\"]`, or as one shell line",
        );
    };
    match f.node {
        _ if is_null(f.node) => empty(cx),
        Node::Scalar(s) => {
            if s.as_str().trim().is_empty() {
                empty(cx);
            } else {
                let at = TextPos {
                    node: f.pos(),
                    inline: None,
                };
                let argv = vec!["sh".to_string(), "-c".to_string(), s.as_str().to_string()];
                return (argv, vec![at, at, cx.text_pos(s)]);
            }
        }
        Node::Sequence(list) => {
            if list.is_empty() {
                empty(cx);
            }
            let mut argv = Vec::new();
            let mut spans = Vec::new();
            for item in list.iter() {
                match item {
                    Node::Scalar(s) if !is_null(item) => {
                        argv.push(s.as_str().to_string());
                        spans.push(cx.text_pos(s));
                    }
                    other => cx.err(
                        node_pos(other),
                        format!("`run` items must be strings, not {}", kind(other)),
                        "quote the argument, e.g. \"--flag\"",
                    ),
                }
            }
            return (argv, spans);
        }
        Node::Mapping(_) => cx.err(
            f.pos(),
            "`run` must be a list of strings or one shell line, not a mapping",
            "write `run: [\"make\", \"test\"]` or `run: \"make test\"`",
        ),
    }
    (Vec::new(), Vec::new())
}

/// `env: { NAME: scalar | { secret: … } }`; numbers and bools become their text.
fn env(
    cx: &mut Cx,
    f: Field<'_>,
) -> (
    BTreeMap<String, String>,
    BTreeMap<String, TextPos>,
    Vec<super::model::SecretRef>,
) {
    if let Node::Mapping(map) = f.node {
        for k in map.keys().filter(|k| !is_env_name(k.as_str())) {
            cx.err(
                span_pos(k.span()),
                format!("`{}` is not a valid environment variable name", k.as_str()),
                "use letters, digits and `_`, not starting with a digit",
            );
        }
    }
    super::secrets::env(cx, f)
}

/// A list of plain strings (for `needs` and `outputs`).
fn names(cx: &mut Cx, f: Field<'_>) -> Vec<(String, Pos)> {
    let hint = format!("write `{}: [a, b]`", f.name);
    let Some(list) = cx.seq(f, &hint) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in list.iter() {
        match item {
            Node::Scalar(s) if !is_null(item) => out.push((s.as_str().to_string(), node_pos(item))),
            other => cx.err(
                node_pos(other),
                format!("`{}` items must be names, not {}", f.name, kind(other)),
                hint.clone(),
            ),
        }
    }
    out
}

fn timeout(cx: &mut Cx, f: Field<'_>) -> Option<Duration> {
    let (text, _) = cx.string(f)?;
    let d = capped(
        cx,
        f,
        &text,
        "timeout",
        MAX_TIMEOUT,
        "use a number and a unit, e.g. 30s, 5m, 1h",
        &format!(
            "split the work into several tasks, or use at most {}",
            format_duration(MAX_TIMEOUT)
        ),
    )?;
    if d.is_zero() {
        cx.err(
            f.pos(),
            "timeout must be more than 0",
            "use a positive duration, e.g. 30s, 5m, 1h",
        );
        return None;
    }
    Some(d)
}

pub(crate) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_output_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use marked_yaml::{parse_yaml_with_options, LoaderOptions};

    fn read(src: &str) -> (Option<(Task, TaskSpans)>, Vec<String>) {
        let root = parse_yaml_with_options(0, src, LoaderOptions::default().prevent_coercion(true))
            .unwrap();
        let mut cx = Cx::new("f", src);
        let t = task(&mut cx, &root, false);
        let diags = match cx.sink.finish(()) {
            Ok(()) => Vec::new(),
            Err(e) => e
                .diagnostics
                .iter()
                .map(|d| format!("{}:{} {}", d.line, d.col, d.message))
                .collect(),
        };
        (t, diags)
    }

    #[test]
    fn defaults_and_shell_line() {
        let (t, d) = read("id: a\nrole: r\nrun: make test\nenv: { N: 3, B: true }\n");
        assert!(d.is_empty(), "{d:?}");
        let (t, s) = t.unwrap();
        assert_eq!(t.run, ["sh", "-c", "make test"]);
        assert_eq!(t.timeout, DEFAULT_TIMEOUT);
        assert_eq!(t.retries, 0);
        assert_eq!(t.env["N"], "3");
        assert_eq!(t.env["B"], "true");
        assert_eq!(s.run[2].at(0).col, 6);
    }

    #[test]
    fn full_task() {
        let src = "id: a\nrole: r\nrun: [x, \"y\"]\nneeds: [b, c]\ntimeout: 1h30m\nretries: 3\noutputs: [k]\n";
        let (t, d) = read(src);
        assert!(d.is_empty(), "{d:?}");
        let (t, s) = t.unwrap();
        assert_eq!(t.needs, ["b", "c"]);
        assert_eq!(s.needs[1].col, 12);
        assert_eq!(t.timeout, Duration::from_secs(5400));
        assert_eq!(t.retries, 3);
        assert_eq!(t.outputs, ["k"]);
    }

    #[test]
    fn local_problems() {
        let src = "id: A\nrun: []\ntimeout: 0s\nretries: 11\nenv: { 1X: [] }\n";
        let (_, d) = read(src);
        assert_eq!(
            d,
            [
                "1:1 task `A` has no `role`",
                "1:5 task id `A` starts with `A`",
                "2:6 `run` of task `A` is empty",
                "3:10 timeout must be more than 0",
                "4:10 `retries` is 11, more than the limit of 10",
                "5:8 `1X` is not a valid environment variable name",
                "5:12 env `1X` must be a string, number, bool or `{ secret: … }`, not a list",
            ]
        );
        let (_, d) = read("id: a\nrole: r\nrun: x\ntimeout: 25h\n");
        assert_eq!(d, ["4:10 timeout 25h is longer than 24h"]);
    }
}
