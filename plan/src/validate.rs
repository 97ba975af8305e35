//! Semantic checks across the parsed plan: unique ids, known roles, `needs`
//! within a phase and without cycles, template references and gates.
//! Reference rules (who may read what) live in `refs`.

use std::collections::{BTreeMap, BTreeSet};

use super::error::{did_you_mean, Pos, Sink};
use super::model::*;
use super::parse::Spans;
use super::refs::{Reader, Refs};

/// Where a task id is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub phase: usize,
    pub rollback: bool,
    pub index: usize,
}

/// Run every cross-reference check, reporting to `sink`.
pub(crate) fn check(sink: &mut Sink, plan: &Plan, spans: &Spans) {
    check_phase_ids(sink, plan, spans);
    super::validate_flow::structure(sink, plan, spans);
    let index = index_tasks(sink, plan, spans);
    check_roles(sink, plan, spans);
    let mut ancestors = Vec::with_capacity(plan.phases.len());
    for (p, phase) in plan.phases.iter().enumerate() {
        let edges = check_needs(sink, plan, spans, &index, p);
        report_cycles(sink, phase, &edges);
        ancestors.push(transitive(&edges));
    }
    let mut refs = Refs {
        sink,
        plan,
        spans,
        index: &index,
        ancestors: &ancestors,
    };
    for (p, phase) in plan.phases.iter().enumerate() {
        for i in 0..phase.tasks.len() {
            refs.templates(Reader::Task { phase: p, index: i });
        }
        for i in 0..phase.rollback.len() {
            refs.templates(Reader::Rollback { phase: p, index: i });
        }
        refs.gates(p);
    }
    super::validate_flow::expressions(&mut refs);
}

fn check_phase_ids(sink: &mut Sink, plan: &Plan, spans: &Spans) {
    let mut seen: BTreeMap<&str, Pos> = BTreeMap::new();
    for (phase, ps) in plan.phases.iter().zip(&spans.phases) {
        if phase.id.is_empty() {
            continue;
        }
        if let Some(first) = seen.get(phase.id.as_str()) {
            sink.err(
                ps.id,
                format!(
                    "duplicate phase id `{}` (first used at line {})",
                    phase.id, first.line
                ),
                "give every phase its own id",
            );
        } else {
            seen.insert(&phase.id, ps.id);
        }
    }
}

/// Task id → where it is defined; ids of tasks and rollback steps are unique
/// across the whole plan.
fn index_tasks<'a>(sink: &mut Sink, plan: &'a Plan, spans: &Spans) -> BTreeMap<&'a str, Loc> {
    let mut index: BTreeMap<&str, Loc> = BTreeMap::new();
    let mut first_pos: BTreeMap<&str, Pos> = BTreeMap::new();
    for (p, (phase, ps)) in plan.phases.iter().zip(&spans.phases).enumerate() {
        let main = phase
            .tasks
            .iter()
            .zip(&ps.tasks)
            .map(|(t, s)| (t, s, false));
        let back = phase
            .rollback
            .iter()
            .zip(&ps.rollback)
            .map(|(t, s)| (t, s, true));
        for (i, (task, ts, rollback)) in main.enumerate().chain(back.enumerate()) {
            if task.id.is_empty() {
                continue;
            }
            if let Some(first) = first_pos.get(task.id.as_str()) {
                sink.err(
                    ts.id,
                    format!(
                        "duplicate task id `{}` (first used at line {})",
                        task.id, first.line
                    ),
                    "task and rollback step ids are unique across the whole plan \
                     (they are addressed as tasks.<id>); rename one of them",
                );
            } else {
                first_pos.insert(&task.id, ts.id);
                index.insert(
                    &task.id,
                    Loc {
                        phase: p,
                        rollback,
                        index: i,
                    },
                );
            }
        }
    }
    index
}

fn check_roles(sink: &mut Sink, plan: &Plan, spans: &Spans) {
    let declared: Vec<&str> = plan.roles.keys().map(String::as_str).collect();
    for (phase, ps) in plan.phases.iter().zip(&spans.phases) {
        let all = phase
            .tasks
            .iter()
            .zip(&ps.tasks)
            .chain(phase.rollback.iter().zip(&ps.rollback));
        for (task, ts) in all {
            if task.role.is_empty() || plan.roles.contains_key(&task.role) {
                continue;
            }
            let listed = if declared.is_empty() {
                "no roles are declared; declare it under roles: or register it with baton role apply"
                    .to_string()
            } else {
                format!(
                    "declared roles: {}; declare it under roles: or register it with baton role apply",
                    declared.join(", ")
                )
            };
            let hint = match did_you_mean(&task.role, declared.iter().copied()) {
                Some(c) => format!("did you mean `{c}`? {listed}"),
                None => listed,
            };
            sink.err(
                ts.role,
                format!("unknown role `{}` for task `{}`", task.role, task.id),
                hint,
            );
        }
    }
}

/// Check the `needs` of phase `p`; returns the valid edges
/// (task index → (needed task index, position of the `needs` entry)).
fn check_needs(
    sink: &mut Sink,
    plan: &Plan,
    spans: &Spans,
    index: &BTreeMap<&str, Loc>,
    p: usize,
) -> Vec<Vec<(usize, Pos)>> {
    let phase = &plan.phases[p];
    let mut edges = vec![Vec::new(); phase.tasks.len()];
    for (i, (task, ts)) in phase.tasks.iter().zip(&spans.phases[p].tasks).enumerate() {
        for (need, &pos) in task.needs.iter().zip(&ts.needs) {
            match index.get(need.as_str()) {
                Some(loc) if loc.phase == p && !loc.rollback => {
                    if loc.index == i {
                        sink.err(
                            pos,
                            format!("task `{need}` needs itself"),
                            "remove it from its own `needs`",
                        );
                    } else if !edges[i].iter().any(|&(j, _)| j == loc.index) {
                        edges[i].push((loc.index, pos));
                    }
                }
                Some(loc) => {
                    let other = &plan.phases[loc.phase].id;
                    let what = if loc.rollback {
                        "a rollback step"
                    } else {
                        "a task"
                    };
                    sink.err(
                        pos,
                        format!("`{need}` is {what} of phase `{other}`, not of phase `{}`", phase.id),
                        "needs only names tasks of the same phase; earlier phases always finish first",
                    );
                }
                None => {
                    let same: Vec<&str> = phase
                        .tasks
                        .iter()
                        .map(|t| t.id.as_str())
                        .filter(|t| *t != task.id)
                        .collect();
                    let hint = match did_you_mean(need, same.iter().copied()) {
                        Some(c) => format!("did you mean `{c}`?"),
                        None if same.is_empty() => "this phase has no other tasks".to_string(),
                        None => format!("tasks of phase `{}`: {}", phase.id, same.join(", ")),
                    };
                    sink.err(pos, format!("`needs` names unknown task `{need}`"), hint);
                }
            }
        }
    }
    edges
}

fn report_cycles(sink: &mut Sink, phase: &Phase, edges: &[Vec<(usize, Pos)>]) {
    for cycle in cycles(edges) {
        let mut names: Vec<&str> = cycle.iter().map(|&i| phase.tasks[i].id.as_str()).collect();
        names.push(names[0]);
        let pos = edges[cycle[0]]
            .iter()
            .find(|(j, _)| *j == cycle[1 % cycle.len()])
            .map(|(_, pos)| *pos)
            .unwrap_or_default();
        sink.err(
            pos,
            format!("dependency cycle: {}", names.join(" → ")),
            "each arrow reads \"needs\"; remove one of these needs so the tasks can run in order",
        );
    }
}

/// Every elementary cycle found by a depth-first walk, each listed in
/// `needs` order starting from its earliest-declared task; one report per
/// set of tasks.
pub(crate) fn cycles(edges: &[Vec<(usize, Pos)>]) -> Vec<Vec<usize>> {
    fn walk(
        u: usize,
        edges: &[Vec<(usize, Pos)>],
        state: &mut [u8],
        path: &mut Vec<usize>,
        found: &mut Vec<Vec<usize>>,
    ) {
        state[u] = 1;
        path.push(u);
        for &(v, _) in &edges[u] {
            match state[v] {
                0 => walk(v, edges, state, path, found),
                1 => {
                    let start = path.iter().position(|&n| n == v).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    let min_at = cycle
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, &n)| n)
                        .map_or(0, |(k, _)| k);
                    cycle.rotate_left(min_at);
                    found.push(cycle);
                }
                _ => {}
            }
        }
        path.pop();
        state[u] = 2;
    }
    let mut state = vec![0u8; edges.len()];
    let mut found = Vec::new();
    for u in 0..edges.len() {
        if state[u] == 0 {
            walk(u, edges, &mut state, &mut Vec::new(), &mut found);
        }
    }
    let mut seen = BTreeSet::new();
    found.retain(|c| seen.insert(c.iter().copied().collect::<BTreeSet<_>>()));
    found
}

/// For each task, every task it needs directly or transitively.
pub(crate) fn transitive(edges: &[Vec<(usize, Pos)>]) -> Vec<BTreeSet<usize>> {
    (0..edges.len())
        .map(|start| {
            let mut seen = BTreeSet::new();
            let mut todo = vec![start];
            while let Some(u) = todo.pop() {
                for &(v, _) in &edges[u] {
                    if seen.insert(v) {
                        todo.push(v);
                    }
                }
            }
            seen
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(adj: &[&[usize]]) -> Vec<Vec<(usize, Pos)>> {
        adj.iter()
            .map(|a| a.iter().map(|&v| (v, Pos::default())).collect())
            .collect()
    }

    #[test]
    fn finds_cycles_in_needs_order() {
        // 0 needs 1, 1 needs 2, 2 needs 0; 3 needs 0.
        let g = graph(&[&[1], &[2], &[0], &[0]]);
        assert_eq!(cycles(&g), vec![vec![0, 1, 2]]);
        // Entered from the middle: still reported from the earliest task.
        let g = graph(&[&[], &[2], &[1]]);
        assert_eq!(cycles(&g), vec![vec![1, 2]]);
        assert!(cycles(&graph(&[&[1, 2], &[2], &[]])).is_empty());
    }

    #[test]
    fn transitive_needs() {
        let g = graph(&[&[], &[0], &[1], &[0]]);
        let t = transitive(&g);
        assert_eq!(t[2], BTreeSet::from([0, 1]));
        assert_eq!(t[3], BTreeSet::from([0]));
        assert!(t[0].is_empty());
    }
}
