//! Cross-checks of the flow keys: environments against `per_environment`
//! phases, `repeat` phase lists, and every `when`/`stop_when`/`until`
//! expression and window gate.

use super::error::{did_you_mean, Sink};
use super::model::*;
use super::parse::{GateSpans, Spans};
use super::refs::{Reader, Refs};

/// Structure: what the stage expansion relies on.
pub(crate) fn structure(sink: &mut Sink, plan: &Plan, spans: &Spans) {
    let per_env: Vec<usize> = (0..plan.phases.len())
        .filter(|&p| plan.phases[p].per_environment)
        .collect();
    if plan.environments.is_empty() {
        for &p in &per_env {
            if let Some(at) = spans.phases[p].per_environment {
                sink.err(
                    at,
                    format!(
                        "phase `{}` runs per environment, but the plan lists none",
                        plan.phases[p].id
                    ),
                    "add `environments: [dev, stage, prod]` at the top of the plan",
                );
            }
        }
    } else if per_env.is_empty() {
        let at = spans
            .environments
            .first()
            .map(|e| e.name)
            .unwrap_or_default();
        sink.err(
            at,
            "the plan lists environments, but no phase runs per environment",
            "add `per_environment: true` to the phases that deploy to each environment",
        );
    }
    let ids: Vec<&str> = plan.phases.iter().map(|p| p.id.as_str()).collect();
    let mut in_repeat = vec![None::<usize>; plan.phases.len()];
    for (r, (rep, rs)) in plan.repeats.iter().zip(&spans.repeats).enumerate() {
        let mut found = Vec::new();
        for (name, &at) in rep.phases.iter().zip(&rs.phases) {
            let Some(p) = ids.iter().position(|i| i == name) else {
                let hint = match did_you_mean(name, ids.iter().copied()) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => format!("phases: {}", ids.join(", ")),
                };
                sink.err(at, format!("`repeat` names unknown phase `{name}`"), hint);
                continue;
            };
            if let Some(other) = in_repeat[p] {
                if other != r {
                    sink.err(
                        at,
                        format!(
                            "phase `{name}` is already in repeat `{}`",
                            plan.repeats[other].id
                        ),
                        "a phase belongs to one loop at most",
                    );
                }
            }
            in_repeat[p] = Some(r);
            if plan.phases[p].per_environment {
                sink.err(
                    at,
                    format!("phase `{name}` runs per environment and cannot also repeat"),
                    "loop inside one environment's phases by listing phases that are not per_environment",
                );
            }
            found.push((p, at));
        }
        for w in found.windows(2) {
            if w[1].0 != w[0].0 + 1 {
                sink.err(
                    w[1].1,
                    format!(
                        "repeat `{}` lists `{}` after `{}`, but they are not consecutive phases",
                        rep.id, plan.phases[w[1].0].id, plan.phases[w[0].0].id
                    ),
                    "list consecutive phases in plan order, e.g. [scan, fix, validate]",
                );
            }
        }
        if rep.until.is_empty() {
            sink.err(
                rs.at,
                format!("repeat `{}` has no `until` gate", rep.id),
                "add e.g. `until: { expr: \"tasks.validate.outputs.failures == 0\" }`",
            );
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (rep, rs) in plan.repeats.iter().zip(&spans.repeats) {
        if !seen.insert(rep.id.as_str()) {
            sink.err(
                rs.at,
                format!("two loops are called `{}`", rep.id),
                "give each `repeat` its own `id`",
            );
        }
    }
}

/// Expressions and window gates, with the read rules of `refs`.
pub(crate) fn expressions(refs: &mut Refs<'_>) {
    let (plan, spans) = (refs.plan, refs.spans);
    for (p, (phase, ps)) in plan.phases.iter().zip(&spans.phases).enumerate() {
        if let (Some(w), Some(at)) = (&phase.when, ps.when) {
            refs.expr(Reader::When { phase: p }, w, at);
        }
        for (i, (t, ts)) in phase.tasks.iter().zip(&ps.tasks).enumerate() {
            if let (Some(w), Some(at)) = (&t.when, ts.when) {
                refs.expr(Reader::Task { phase: p, index: i }, w, at);
            }
        }
        windows(refs.sink, &phase.gates, &ps.gates);
    }
    // With no phases there is nothing to read yet (the plan already fails for
    // that); checking would index a phase that does not exist. Found by fuzzing.
    let last = plan.phases.len().saturating_sub(1);
    let checked = if plan.phases.is_empty() {
        0
    } else {
        plan.stop_when.len()
    };
    for (s, at) in plan.stop_when.iter().zip(&spans.stop_when).take(checked) {
        refs.expr(Reader::StopWhen { last }, s, *at);
    }
    // A loop's `until` and an environment's gates are asked with the last phase of their group.
    for (rep, rs) in plan.repeats.iter().zip(&spans.repeats) {
        let Some(p) = rep
            .phases
            .last()
            .and_then(|id| plan.phases.iter().position(|ph| &ph.id == id))
        else {
            continue;
        };
        gate_exprs(refs, p, &rep.until, &rs.until);
        windows(refs.sink, &rep.until, &rs.until);
    }
    if let Some(p) = plan.phases.iter().rposition(|ph| ph.per_environment) {
        for (env, es) in plan.environments.iter().zip(&spans.environments) {
            gate_exprs(refs, p, &env.gates, &es.gates);
            windows(refs.sink, &env.gates, &es.gates);
        }
    }
}

fn gate_exprs(refs: &mut Refs<'_>, p: usize, gates: &[GateSpec], spans: &[GateSpans]) {
    for (g, gs) in gates.iter().zip(spans) {
        if let GateSpec::Expr { expr } = g {
            refs.expr(Reader::Gate { phase: p }, expr, gs.value);
        }
    }
}

fn windows(sink: &mut Sink, gates: &[GateSpec], spans: &[GateSpans]) {
    for (g, gs) in gates.iter().zip(spans) {
        if let GateSpec::Window { cron, timezone, .. } = g {
            if let Err(problem) = crate::window::check(cron, timezone) {
                sink.err(
                    gs.value.node,
                    format!("bad window: {problem}"),
                    "write a five-field cron (minute hour day month weekday), e.g. `0 2 * * SAT`, and an IANA zone such as `Europe/Berlin`",
                );
            }
        }
    }
}
