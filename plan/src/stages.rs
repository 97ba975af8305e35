//! Stages: the phases in the order they run.
//!
//! A plan's phases expand into stages before a run starts, so the state
//! machine only ever walks a flat list:
//! - a group of consecutive `per_environment` phases runs once per
//!   environment (`deploy@dev`, `verify@dev`, `deploy@stage`, ...), and the
//!   environment's own gates join the group's last phase;
//! - a canary phase runs once per step (`rollout/10%`, `rollout/50%`, ...);
//! - a `repeat` runs its phases up to `max` times (`scan#1`, ..., `scan#2`),
//!   and its `until` gates join each iteration's last phase. A green
//!   iteration skips the stages of the iterations it made unnecessary.
//!
//! Expanding up front keeps the fold a simple cursor over stages, and makes
//! every stage (and its gates, and its outcome) visible in `baton status`.

use serde::{Deserialize, Serialize};

use super::model::{GateSpec, Plan};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Unique label: `<phase>[@<environment>][#<iteration>][/<weight>%]`.
    pub id: String,
    /// Index into `Plan::phases`.
    pub phase: usize,
    pub environment: Option<String>,
    pub canary: Option<CanaryStep>,
    pub iteration: Option<Iteration>,
    /// The environment's promotion gates (on the last phase of its group).
    pub env_gates: Vec<GateSpec>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryStep {
    /// 0-based step number.
    pub step: usize,
    pub weight: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Iteration {
    /// Index into `Plan::repeats`.
    pub repeat: usize,
    /// 1-based.
    pub n: u32,
    /// The iteration's last phase: the loop's `until` gates are asked here.
    pub last: bool,
}

/// One gate of a stage, as asked.
#[derive(Clone, Debug, PartialEq)]
pub struct StageGate {
    pub spec: GateSpec,
    /// A loop's `until` gate: failing it means "iterate again", not "fail".
    pub until: bool,
}

impl Plan {
    /// The gates a stage asks, in order: the phase's (with the implicit
    /// `tasks: all_ok`), then its environment's, then its loop's `until`.
    pub fn stage_gates(&self, stage: &Stage) -> Vec<StageGate> {
        let phase = &self.phases[stage.phase];
        let mut gates: Vec<StageGate> = phase
            .effective_gates()
            .into_iter()
            .chain(stage.env_gates.iter().cloned())
            .map(|spec| StageGate { spec, until: false })
            .collect();
        if let Some(it) = stage.iteration.filter(|it| it.last) {
            gates.extend(self.repeats[it.repeat].until.iter().map(|g| StageGate {
                spec: g.clone(),
                until: true,
            }));
        }
        gates
    }

    /// The repeat whose first phase is `phase`, if any.
    fn repeat_starting_at(&self, phase: usize) -> Option<usize> {
        let id = &self.phases[phase].id;
        self.repeats
            .iter()
            .position(|r| r.phases.first() == Some(id))
    }
}

/// Expand a validated plan's phases into stages.
pub(crate) fn expand(plan: &Plan) -> Vec<Stage> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < plan.phases.len() {
        if let Some(r) = plan.repeat_starting_at(i) {
            let rep = &plan.repeats[r];
            let len = rep.phases.len().max(1).min(plan.phases.len() - i);
            for n in 1..=rep.max.max(1) {
                for p in i..i + len {
                    let it = Iteration {
                        repeat: r,
                        n,
                        last: p == i + len - 1,
                    };
                    push_phase(plan, p, None, Vec::new(), Some(it), &mut out);
                }
            }
            i += len;
        } else if plan.phases[i].per_environment && !plan.environments.is_empty() {
            let end = (i..plan.phases.len())
                .find(|&j| !plan.phases[j].per_environment)
                .unwrap_or(plan.phases.len());
            for env in &plan.environments {
                for p in i..end {
                    let gates = if p == end - 1 {
                        env.gates.clone()
                    } else {
                        Vec::new()
                    };
                    push_phase(plan, p, Some(&env.name), gates, None, &mut out);
                }
            }
            i = end;
        } else {
            push_phase(plan, i, None, Vec::new(), None, &mut out);
            i += 1;
        }
    }
    out
}

fn push_phase(
    plan: &Plan,
    p: usize,
    env: Option<&str>,
    env_gates: Vec<GateSpec>,
    iteration: Option<Iteration>,
    out: &mut Vec<Stage>,
) {
    let phase = &plan.phases[p];
    let mut id = phase.id.clone();
    if let Some(e) = env {
        id = format!("{id}@{e}");
    }
    if let Some(it) = iteration {
        id = format!("{id}#{}", it.n);
    }
    let base = Stage {
        id,
        phase: p,
        environment: env.map(str::to_string),
        canary: None,
        iteration,
        env_gates,
    };
    match &phase.canary {
        None => out.push(base),
        Some(c) => {
            for (step, &weight) in c.steps.iter().enumerate() {
                let last = step + 1 == c.steps.len();
                out.push(Stage {
                    id: format!("{}/{weight}%", base.id),
                    canary: Some(CanaryStep { step, weight }),
                    // Promotion gates of the environment follow the last step.
                    env_gates: if last {
                        base.env_gates.clone()
                    } else {
                        Vec::new()
                    },
                    ..base.clone()
                });
            }
        }
    }
}

/// Milliseconds since the epoch as `2026-11-22T20:15:03Z`, for people.
/// Clamped to 1970..=9999: the formatter writes no other year (and its
/// `to_string` would panic past 9999), and a timer that far out is a bug
/// to show, not to crash on.
pub fn format_ms(ms: i64) -> String {
    /// 9999-12-31T23:59:59.999Z.
    const LAST_MS: i64 = 253_402_300_799_999;
    let ms = ms.clamp(0, LAST_MS) as u64;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod format_ms_tests {
    use super::format_ms;

    #[test]
    fn any_time_formats_without_panicking() {
        assert_eq!(format_ms(1_781_056_800_000), "2026-06-10T02:00:00Z");
        assert_eq!(format_ms(-1), "1970-01-01T00:00:00Z");
        assert_eq!(format_ms(i64::MIN), "1970-01-01T00:00:00Z");
        assert_eq!(format_ms(253_402_300_800_000), "9999-12-31T23:59:59Z");
        assert_eq!(format_ms(i64::MAX), "9999-12-31T23:59:59Z");
    }
}
