//! Who may read what: template references in `run`/`env` and the names in
//! gate expressions.
//!
//! A task reads outputs of tasks in earlier phases, or of tasks of its own
//! phase that it needs (directly or transitively). A rollback step reads any
//! task of its own or an earlier phase. A gate reads any task of its own or
//! an earlier phase. Rollback steps' outputs are never readable. When a task
//! declares `outputs`, only those keys may be read.

use std::collections::{BTreeMap, BTreeSet};

use super::error::{did_you_mean, suggest, Pos, Sink};
use super::model::*;
use super::node::TextPos;
use super::parse::Spans;
use super::template::{references, Ref, VARS};
use super::validate::Loc;

/// Who is reading.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reader {
    Task {
        phase: usize,
        index: usize,
    },
    Rollback {
        phase: usize,
        index: usize,
    },
    Gate {
        phase: usize,
    },
    /// A phase's `when`: reads earlier phases only.
    When {
        phase: usize,
    },
    /// A `stop_when` expression: reads any task, whenever it has finished.
    StopWhen {
        last: usize,
    },
}

impl Reader {
    fn phase(self) -> usize {
        match self {
            Reader::Task { phase, .. }
            | Reader::Rollback { phase, .. }
            | Reader::Gate { phase }
            | Reader::When { phase } => phase,
            Reader::StopWhen { last } => last,
        }
    }
}

pub(crate) struct Refs<'a> {
    pub sink: &'a mut Sink,
    pub plan: &'a Plan,
    pub spans: &'a Spans,
    pub index: &'a BTreeMap<&'a str, Loc>,
    /// Per phase, per task: the tasks it needs transitively.
    pub ancestors: &'a [Vec<BTreeSet<usize>>],
}

impl Refs<'_> {
    /// Check every template in the `run` and `env` of one task.
    pub(crate) fn templates(&mut self, reader: Reader) {
        let (phase, ps) = (
            &self.plan.phases[reader.phase()],
            &self.spans.phases[reader.phase()],
        );
        let (task, ts) = match reader {
            Reader::Task { index, .. } => (&phase.tasks[index], &ps.tasks[index]),
            Reader::Rollback { index, .. } => (&phase.rollback[index], &ps.rollback[index]),
            _ => return,
        };
        let run = task.run.iter().zip(&ts.run).map(|(s, at)| (s, *at));
        let env = task
            .env
            .iter()
            .map(|(k, v)| (v, ts.env.get(k).copied().unwrap_or_default()));
        let with = task
            .with
            .iter()
            .map(|(k, v)| (v, ts.with.get(k).copied().unwrap_or_default()));
        for (text, at) in run.chain(env).chain(with) {
            match references(text) {
                Err(e) => self.sink.err(at.at(e.offset), e.message, e.hint),
                Ok(refs) => {
                    for (offset, reference) in refs {
                        let pos = at.at(offset);
                        match reference {
                            Ref::Input(name) => self.input(&name, pos, "template"),
                            Ref::Output { task: t, key } => self.task(reader, &t, Some(&key), pos),
                            Ref::Var(name) => self.var(reader, &name, pos),
                        }
                    }
                }
            }
        }
    }

    /// Check the gates of phase `p`: `min_ok` against the task count, and
    /// gate expressions (syntax and names).
    pub(crate) fn gates(&mut self, p: usize) {
        let phase = &self.plan.phases[p];
        for (gate, gs) in phase.gates.iter().zip(&self.spans.phases[p].gates) {
            match gate {
                GateSpec::Tasks { min_ok: Some(n) } if *n as usize > phase.tasks.len() => {
                    let count = phase.tasks.len();
                    self.sink.err(
                        gs.value.node,
                        format!(
                            "min_ok is {n} but phase `{}` has only {count} tasks",
                            phase.id
                        ),
                        format!("use a number from 1 to {count}, or `tasks: all_ok`"),
                    );
                }
                GateSpec::Expr { expr } => self.expr(Reader::Gate { phase: p }, expr, gs.value),
                _ => {}
            }
        }
    }

    /// Check one expression (a gate's, a `when`, a `stop_when`) read by `reader`.
    pub(crate) fn expr(&mut self, reader: Reader, expr: &str, at: TextPos) {
        let parsed = match crate::expr::parse(expr) {
            Ok(parsed) => parsed,
            Err(e) => {
                let (message, hint) = match e.message.split_once(" — ") {
                    Some((m, h)) => (m.to_string(), h.to_string()),
                    None => (
                        e.message.clone(),
                        "fix the expression; e.g. `tasks.scan.outputs.critical == 0`".to_string(),
                    ),
                };
                self.sink.err(
                    at.at(e.offset),
                    format!("bad {}: {message}", place(reader)),
                    hint,
                );
                return;
            }
        };
        for name in parsed.names() {
            let pos = match expr.find(name.as_str()) {
                Some(byte) => at.at(expr[..byte].chars().count()),
                None => at.node,
            };
            let parts: Vec<&str> = name.split('.').collect();
            match parts.as_slice() {
                ["inputs", input] => self.input(input, pos, place(reader)),
                ["tasks", t, "status"] => self.task(reader, t, None, pos),
                ["tasks", t, "outputs", key] => self.task(reader, t, Some(key), pos),
                _ if VARS.contains(&name.as_str()) => self.var(reader, &name, pos),
                _ => self.sink.err(
                    pos,
                    format!(
                        "{} reads `{name}`, which is not something it can read",
                        place(reader)
                    ),
                    "use tasks.<id>.outputs.<key>, tasks.<id>.status, inputs.<name>, \
                     environment.name, canary.weight or loop.iteration",
                ),
            }
        }
    }

    fn input(&mut self, name: &str, pos: Pos, place: &str) {
        if self.plan.inputs.iter().any(|i| i.name == name) {
            return;
        }
        let declared: Vec<&str> = self.plan.inputs.iter().map(|i| i.name.as_str()).collect();
        let hint = match did_you_mean(name, declared.iter().copied()) {
            Some(c) => format!("did you mean `{c}`?"),
            None => format!("declare it under `inputs:`, e.g. `{name}: {{ default: \"...\" }}`"),
        };
        self.sink
            .err(pos, format!("unknown input `{name}` in {place}"), hint);
    }

    /// `tasks.<t>.outputs.<key>` (or `.status` when `key` is `None`) read by `reader`.
    fn task(&mut self, reader: Reader, t: &str, key: Option<&str>, pos: Pos) {
        let p = reader.phase();
        let phase_id = &self.plan.phases[p].id;
        let Some(&loc) = self.index.get(t) else {
            let visible: Vec<&str> = self.plan.phases[..=p]
                .iter()
                .flat_map(|ph| ph.tasks.iter().map(|t| t.id.as_str()))
                .collect();
            let hint = suggest(t, visible.iter().copied(), "tasks it can read");
            self.sink.err(
                pos,
                format!("unknown task `{t}` in {}", place(reader)),
                hint,
            );
            return;
        };
        if loc.rollback {
            self.sink.err(
                pos,
                format!("`{t}` is a rollback step, which templates and gates cannot read"),
                "read tasks listed under a phase's `tasks:`",
            );
            return;
        }
        if let Reader::When { .. } = reader {
            if loc.phase >= p {
                self.sink.err(
                    pos,
                    format!("the `when` of phase `{phase_id}` reads task `{t}`, which has not run when it is decided"),
                    "a phase's `when` may read tasks of earlier phases only",
                );
                return;
            }
        }
        if loc.phase > p {
            let later = &self.plan.phases[loc.phase].id;
            self.sink.err(
                pos,
                format!("task `{t}` runs in a later phase (`{later}`) than phase `{phase_id}`"),
                "only tasks of this phase or earlier phases can be read",
            );
            return;
        }
        if let (Reader::Task { index, .. }, true) = (reader, loc.phase == p) {
            let me = &self.plan.phases[p].tasks[index].id;
            if loc.index == index {
                self.sink.err(
                    pos,
                    format!("task `{t}` reads its own outputs"),
                    "a task's outputs exist only after it finishes; pass the value within the task",
                );
                return;
            }
            if !self.ancestors[p][index].contains(&loc.index) {
                self.sink.err(
                    pos,
                    format!("task `{me}` reads outputs of `{t}`, which does not run before it"),
                    format!(
                        "add `{t}` to the `needs` of `{me}` (directly or through a task it needs)"
                    ),
                );
                return;
            }
        }
        let read = &self.plan.phases[loc.phase].tasks[loc.index];
        // The task's own list, else the outputs its role declares (if any).
        let declared: Vec<&String> = match self.plan.roles.get(&read.role) {
            Some(r) if read.outputs.is_empty() => r.outputs.fields.keys().collect(),
            _ => read.outputs.iter().collect(),
        };
        if let Some(key) = key.filter(|k| !declared.is_empty() && !declared.iter().any(|d| d == k))
        {
            self.sink.err(
                pos,
                format!("task `{t}` does not declare output `{key}`"),
                suggest(key, declared.iter().map(|d| d.as_str()), "declared outputs"),
            );
        }
    }
}

impl Refs<'_> {
    /// `environment.name`, `canary.weight`, `loop.iteration`: each exists only
    /// where the phase runs per environment, as a canary, or in a loop.
    fn var(&mut self, reader: Reader, name: &str, pos: Pos) {
        let phase = &self.plan.phases[reader.phase()];
        let (ok, hint) = match name {
            _ if matches!(reader, Reader::StopWhen { .. }) => {
                (false, "stop_when reads inputs and tasks only".to_string())
            }
            "environment.name" => (
                phase.per_environment,
                format!(
                    "add `per_environment: true` to phase `{}` (and list `environments:`)",
                    phase.id
                ),
            ),
            "canary.weight" => (
                phase.canary.is_some(),
                format!(
                    "add `canary: {{ steps: [10, 50, 100] }}` to phase `{}`",
                    phase.id
                ),
            ),
            _ => (
                self.plan
                    .repeats
                    .iter()
                    .any(|r| r.phases.contains(&phase.id)),
                format!("list phase `{}` in a `repeat:`", phase.id),
            ),
        };
        if !ok {
            self.sink.err(
                pos,
                format!(
                    "{} reads `{name}`, which phase `{}` does not have",
                    place(reader),
                    phase.id
                ),
                hint,
            );
        }
    }
}

fn place(reader: Reader) -> &'static str {
    match reader {
        Reader::Gate { .. } => "gate expression",
        Reader::When { .. } => "`when` expression",
        Reader::StopWhen { .. } => "`stop_when` expression",
        _ => "template",
    }
}
