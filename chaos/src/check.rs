//! The chaos plan, and the invariants checked after the faults.
//!
//! Every task appends `<task> <attempt>` to its run's file in the sink folder:
//! its effect. The sink is idempotency-checked on `(run, task)`: the first
//! line is the effect applied, later ones are duplicates it suppressed (an
//! attempt superseded after its worker was lost that still finished, such as
//! a frozen worker waking up). A *duplicate effect* is what no idempotency key
//! on `(run, task)` could excuse: one attempt executed twice (two executors
//! handed the same attempt), or a task run more times than its lost attempts
//! explain (a coordinator dispatching twice).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use baton_proto::kinds;
use baton_proto::v1::{self, event::Body};
use serde::Serialize;

/// A plan of `phases` phases, each a chain of tasks, `tasks` tasks in all.
pub fn plan_yaml(tasks: usize, phases: usize, task_ms: u64, sink: &Path) -> String {
    let phases = phases.clamp(1, tasks.max(1));
    let mut y =
        String::from("name: chaos\nroles:\n  chaos: { image: \"baton/agent:local\" }\nphases:\n");
    let secs = format!("{}.{:03}", task_ms / 1000, task_ms % 1000);
    for p in 0..phases {
        y += &format!("  - id: p{p}\n    tasks:\n");
        let n = tasks / phases + usize::from(p < tasks % phases);
        for i in 0..n {
            y += &format!("      - id: p{p}-t{i}\n        role: chaos\n        timeout: 120s\n");
            if i > 0 {
                y += &format!("        needs: [p{p}-t{}]\n", i - 1);
            }
            y += &format!("        env: {{ SINK: \"{}\" }}\n", sink.display());
            y += &format!(
                "        run: [\"sh\", \"-c\", \"sleep {secs}; echo \\\"$BATON_TASK_ID $BATON_ATTEMPT\\\" >> \\\"$SINK/$BATON_RUN_ID\\\"; echo '{{\\\"result\\\":\\\"ok\\\"}}'\"]\n"
            );
        }
    }
    y
}

/// One event as read back from the stream.
pub struct Seen {
    pub time_ms: i64,
    pub event: v1::Event,
}

#[derive(Debug, Default, Serialize, Clone)]
pub struct Invariants {
    pub runs_submitted: usize,
    pub runs_succeeded: usize,
    /// Submitted runs that did not end `succeeded`. Must be 0.
    pub runs_lost: usize,
    /// Executions that reached the sink.
    pub deliveries: usize,
    pub duplicates_suppressed: usize,
    /// Must be 0.
    pub duplicate_effects: usize,
    /// Tasks folded as succeeded whose effect is not in the sink. Must be 0.
    pub effects_missing: usize,
    /// Phases of succeeded runs that never passed. Must be 0.
    pub phases_skipped: usize,
    /// Extra `running`/`passed` announcements of a phase. Must be 0.
    pub phases_repeated: usize,
    pub lost_attempts: u32,
    pub stale_results: usize,
    /// Explanations, one per violation found.
    pub violations: Vec<String>,
}

pub fn invariants(
    submitted: &[String],
    finals: &HashMap<String, v1::Run>,
    events: &HashMap<String, Vec<Seen>>,
    sink: &Path,
) -> Invariants {
    let mut inv = Invariants {
        runs_submitted: submitted.len(),
        ..Default::default()
    };
    for run in submitted {
        let Some(r) = finals.get(run) else {
            inv.runs_lost += 1;
            inv.violations.push(format!("run {run}: no final state"));
            continue;
        };
        if r.run_status() == v1::RunStatus::Succeeded {
            inv.runs_succeeded += 1;
        } else {
            inv.runs_lost += 1;
            inv.violations.push(format!(
                "run {run} ended {} ({}), waiting: {}",
                r.run_status(),
                r.reason,
                r.waiting
            ));
        }
        // Phases: each announced running once and passed once.
        let mut counts: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
        for s in events.get(run).into_iter().flatten() {
            if let Some(Body::PhaseChanged(p)) = &s.event.body {
                let c = counts.entry(p.phase_id.as_str()).or_default();
                match kinds::phase_status(p) {
                    v1::PhaseStatus::Running => c.0 += 1,
                    v1::PhaseStatus::Passed => c.1 += 1,
                    _ => {}
                }
            }
        }
        for p in &r.phases {
            let (running, passed) = counts.get(p.id.as_str()).copied().unwrap_or_default();
            if r.run_status() == v1::RunStatus::Succeeded && passed == 0 {
                inv.phases_skipped += 1;
                inv.violations
                    .push(format!("run {run}: phase {} never passed", p.id));
            }
            let extra = running.saturating_sub(1) + passed.saturating_sub(1);
            if extra > 0 {
                inv.phases_repeated += extra as usize;
                inv.violations.push(format!(
                    "run {run}: phase {} announced running {running}×, passed {passed}×",
                    p.id
                ));
            }
        }
        // Effects.
        let text = std::fs::read_to_string(sink.join(run)).unwrap_or_default();
        let mut per_attempt: HashMap<(&str, u32), usize> = HashMap::new();
        let mut per_task: HashMap<&str, usize> = HashMap::new();
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let (Some(task), Some(Ok(attempt))) = (it.next(), it.next().map(str::parse::<u32>))
            else {
                continue;
            };
            inv.deliveries += 1;
            *per_attempt.entry((task, attempt)).or_default() += 1;
            let n = per_task.entry(task).or_default();
            *n += 1;
            if *n > 1 {
                inv.duplicates_suppressed += 1;
            }
        }
        for ((task, attempt), n) in &per_attempt {
            if *n > 1 {
                inv.duplicate_effects += n - 1;
                inv.violations.push(format!(
                    "run {run}: task {task} attempt {attempt} executed {n} times"
                ));
            }
        }
        for t in &r.tasks {
            inv.lost_attempts += t.lost;
            inv.stale_results += t.stale_results.len();
            if t.task_status() != v1::TaskStatus::Succeeded {
                continue;
            }
            if t.attempts > 1 + t.lost {
                inv.duplicate_effects += (t.attempts - 1 - t.lost) as usize;
                inv.violations.push(format!(
                    "run {run}: task {} ran {} attempts with {} lost",
                    t.id, t.attempts, t.lost
                ));
            }
            if !per_attempt.contains_key(&(t.id.as_str(), t.attempts)) {
                inv.effects_missing += 1;
                inv.violations.push(format!(
                    "run {run}: task {} folded attempt {} has no effect in the sink",
                    t.id, t.attempts
                ));
            }
        }
    }
    inv
}

/// Milliseconds from each task becoming ready (its predecessor's result, or
/// its phase starting) to its own result, for every task of these runs.
pub fn task_latencies(runs: &[String], events: &HashMap<String, Vec<Seen>>) -> Vec<f64> {
    let mut out = Vec::new();
    for run in runs {
        let mut phase_start: HashMap<&str, i64> = HashMap::new();
        let mut done: HashMap<&str, i64> = HashMap::new();
        for s in events.get(run).into_iter().flatten() {
            match &s.event.body {
                Some(Body::PhaseChanged(p))
                    if kinds::phase_status(p) == v1::PhaseStatus::Running =>
                {
                    phase_start.entry(p.phase_id.as_str()).or_insert(s.time_ms);
                }
                Some(Body::TaskFinished(f)) if f.ok => {
                    done.entry(f.task_id.as_str()).or_insert(s.time_ms);
                }
                _ => {}
            }
        }
        for (task, end) in &done {
            // Task ids are `p<phase>-t<i>`; t0 is ready when its phase starts.
            let Some((phase, i)) = task.split_once("-t") else {
                continue;
            };
            let Ok(i) = i.parse::<usize>() else { continue };
            let ready = if i == 0 {
                phase_start.get(phase).copied()
            } else {
                done.get(format!("{phase}-t{}", i - 1).as_str()).copied()
            };
            if let Some(ready) = ready {
                out.push((end - ready) as f64);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_loads_with_every_task_in_a_chain() {
        let dir = tempfile::tempdir().unwrap();
        let y = plan_yaml(7, 3, 250, dir.path());
        let plan = baton_plan::load("chaos.yaml", &y).expect("valid plan");
        let n: usize = plan.phases.iter().map(|p| p.tasks.len()).sum();
        assert_eq!((plan.phases.len(), n), (3, 7));
        assert_eq!(plan.phases[0].tasks[1].needs, vec!["p0-t0".to_string()]);
    }

    fn run(tasks: &[(&str, u32, u32)]) -> v1::Run {
        v1::Run {
            run_id: "r".into(),
            run_status: v1::RunStatus::Succeeded.into(),
            tasks: tasks
                .iter()
                .map(|(id, attempts, lost)| v1::TaskView {
                    id: id.to_string(),
                    task_status: v1::TaskStatus::Succeeded.into(),
                    attempts: *attempts,
                    lost: *lost,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_superseded_attempt_finishing_is_suppressed_but_one_attempt_twice_is_a_duplicate_effect() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r"), "a 1\na 2\nb 1\nb 1\n").unwrap();
        let finals = HashMap::from([("r".to_string(), run(&[("a", 2, 1), ("b", 1, 0)]))]);
        let inv = invariants(&["r".into()], &finals, &HashMap::new(), dir.path());
        assert_eq!(inv.deliveries, 4);
        assert_eq!(inv.duplicates_suppressed, 2);
        assert_eq!(inv.duplicate_effects, 1, "{:?}", inv.violations);
        assert_eq!(inv.runs_lost, 0);
    }

    #[test]
    fn an_attempt_nothing_explains_is_a_duplicate_effect_and_a_missing_effect_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r"), "a 1\na 2\n").unwrap();
        let finals = HashMap::from([("r".to_string(), run(&[("a", 2, 0), ("b", 1, 0)]))]);
        let inv = invariants(
            &["r".into(), "gone".into()],
            &finals,
            &HashMap::new(),
            dir.path(),
        );
        assert_eq!(inv.duplicate_effects, 1);
        assert_eq!(inv.effects_missing, 1, "b's effect is not in the sink");
        assert_eq!(inv.runs_lost, 1, "a submitted run with no state is lost");
    }
}
