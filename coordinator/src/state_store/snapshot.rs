//! How a run's state is stored in the `runs` bucket, whatever its size.
//!
//! A snapshot is one KV value, so it must fit in one NATS message
//! (`max_payload`, 1 MiB by default). Most runs fit: their snapshot is the
//! [`RunState`] as JSON, as it always was (a *whole* snapshot).
//!
//! What makes a state big is what its events carried: the plan (YAML up to
//! 512 KiB, and its parsed model, about twice that) and each task's report
//! (a `result.json` up to 256 KiB), which the state holds three times: as
//! text (`report_json`), as `outputs`, and again as the stage's outcome.
//! Two tasks reporting 245 KiB each make a 1.5 MiB state.
//!
//! Those values are already stored, durably and once, in the run's events
//! (`submitted`, `task_finished`), the source of truth a takeover replays.
//! So a state too big for one message is written *split*: the head, a
//! `RunState` JSON in which those values are emptied, lists each of them
//! as a [`Part`]: where it goes (a JSON pointer), which event kind of the
//! run carries it, and the SHA-256 and length of its JSON text. Nothing is
//! written twice and nothing is written elsewhere; a reader (a takeover,
//! `GetRun` on another coordinator) reads the run's submission and its
//! `task_finished` events back and puts each value in place, checking its
//! hash.
//!
//! The head stays readable as a `RunState` by a plain `serde_json` parse
//! (the start-up recovery's check of which runs ended) when the run ended:
//! its plan is then a stub with the plan's name. A running run's head has
//! no `plan` at all, so that a coordinator that predates split snapshots
//! fails to read it and rebuilds the run from its events, instead of
//! carrying on with emptied values.
//!
//! A head still too big (a run with thousands of stages and tasks) is not
//! written: [`encode`] says so, and the engine logs it as an error.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use baton_plan::Plan;
use baton_proto::v1;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::run::{RunState, RunStatus};

/// The head's field that lists its parts; a whole snapshot has none.
pub const PARTS: &str = "parts_in_events";

/// Values shorter than this stay in the head: a part's entry costs about 150 bytes.
const MIN_PART: usize = 512;

/// Which of the run's events a part's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The run's `submitted` event: the plan, its YAML, the inputs.
    Submitted,
    /// One of the run's `task_finished` events: a report, or its outputs.
    TaskFinished,
}

/// One value left out of a split snapshot's head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Where the value goes in the state: a JSON pointer (RFC 6901).
    pub at: String,
    pub from: Source,
    /// Lowercase hex SHA-256 of the value's JSON text. For the plan (`/plan`,
    /// parsed again from the submission) it is the plan YAML's (as a JSON string).
    pub sha256: String,
    /// Length of the value's JSON text.
    pub bytes: usize,
}

/// A snapshot ready to write.
#[derive(Debug)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// Values left in the events; 0 for a whole snapshot.
    pub parts: usize,
    /// Length of the whole state as JSON.
    pub whole: usize,
}

/// Why a snapshot cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum NotEncoded {
    #[error("the run state does not serialise: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "the snapshot is {head} bytes even with the plan, reports and outputs left in the \
         run's events ({parts} values; {whole} bytes whole), more than the {limit} bytes \
         one NATS message may carry"
    )]
    TooLarge {
        whole: usize,
        head: usize,
        parts: usize,
        limit: usize,
    },
}

/// The snapshot of `st` in at most `limit` bytes: whole if it fits, else split.
pub fn encode(st: &RunState, limit: usize) -> Result<Encoded, NotEncoded> {
    let whole = serde_json::to_vec(st)?;
    if whole.len() <= limit {
        return Ok(Encoded {
            parts: 0,
            whole: whole.len(),
            bytes: whole,
        });
    }
    let whole = whole.len();
    let mut v = serde_json::to_value(st)?;
    let mut parts = vec![Part {
        at: "/plan".into(),
        from: Source::Submitted,
        sha256: sha256_of(&Value::String(st.plan_yaml.clone())),
        bytes: json_len(&v["plan"]),
    }];
    let obj = v
        .as_object_mut()
        .expect("a RunState serialises to a JSON object");
    if st.status.is_terminal() {
        obj.insert("plan".into(), serde_json::to_value(stub(&st.plan))?);
    } else {
        obj.remove("plan");
    }
    // Every value worth a part's entry: a head as small as it gets, for
    // the writes every 100 ms while the run goes on.
    for (at, from) in candidates(st) {
        let Some(x) = v.pointer_mut(&at) else {
            continue;
        };
        let bytes = json_len(x);
        if bytes < MIN_PART {
            continue;
        }
        parts.push(Part {
            sha256: sha256_of(x),
            at,
            from,
            bytes,
        });
        *x = empty_like(x);
    }
    let n = parts.len();
    v.as_object_mut()
        .expect("still an object")
        .insert(PARTS.into(), serde_json::to_value(parts)?);
    let head = serde_json::to_vec(&v)?;
    if head.len() > limit {
        return Err(NotEncoded::TooLarge {
            whole,
            head: head.len(),
            parts: n,
            limit,
        });
    }
    Ok(Encoded {
        bytes: head,
        parts: n,
        whole,
    })
}

/// The values a split snapshot may leave in the run's events, and which
/// event carries each: exactly what the fold copies from them.
fn candidates(st: &RunState) -> impl Iterator<Item = (String, Source)> + '_ {
    let submitted = ["/plan_yaml", "/inputs"]
        .into_iter()
        .map(|at| (at.to_string(), Source::Submitted));
    let tasks = st.tasks.keys().flat_map(|id| {
        ["report_json", "outputs"]
            .into_iter()
            .map(move |f| (pointer(&["tasks", id, f]), Source::TaskFinished))
    });
    let outcomes = st.phases.iter().enumerate().flat_map(|(i, p)| {
        (0..p.outcomes.len()).map(move |j| {
            (
                pointer(&[
                    "phases",
                    &i.to_string(),
                    "outcomes",
                    &j.to_string(),
                    "outputs",
                ]),
                Source::TaskFinished,
            )
        })
    });
    submitted.chain(tasks).chain(outcomes)
}

/// A plan with nothing but its name: what an ended run's split head holds.
fn stub(plan: &Plan) -> Plan {
    Plan {
        name: plan.name.clone(),
        description: plan.description.clone(),
        ..Default::default()
    }
}

fn empty_like(v: &Value) -> Value {
    match v {
        Value::String(_) => Value::String(String::new()),
        Value::Array(_) => Value::Array(Vec::new()),
        Value::Object(_) => Value::Object(Default::default()),
        other => other.clone(),
    }
}

/// A JSON pointer to `tokens`, each escaped (`~` → `~0`, `/` → `~1`).
pub fn pointer(tokens: &[&str]) -> String {
    tokens
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect()
}

fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(0, |b| b.len())
}

/// Lowercase hex SHA-256 of `v`'s JSON text.
pub fn sha256_of(v: &Value) -> String {
    hex::encode(Sha256::digest(
        serde_json::to_vec(v).unwrap_or_default().as_slice(),
    ))
}

/// The values a `task_finished` event gives a task's state, as the fold
/// takes them: the report as text, and its `outputs` object.
pub fn finished_values(f: &v1::TaskFinished) -> [Value; 2] {
    let outputs = serde_json::from_str::<Value>(&f.report_json)
        .ok()
        .and_then(|v| v.get("outputs").and_then(|o| o.as_object()).cloned())
        .unwrap_or_default();
    [Value::String(f.report_json.clone()), Value::Object(outputs)]
}

/// A snapshot as read from the bucket.
pub enum Head {
    Whole(Box<RunState>),
    Split(Split),
}

/// A split snapshot's head: the state without its parts.
pub struct Split {
    state: Value,
    parts: Vec<Part>,
    status: RunStatus,
}

/// Read a snapshot: a whole one (of any version), or a split one's head.
pub fn read(bytes: &[u8]) -> Result<Head, serde_json::Error> {
    let mut v: Value = serde_json::from_slice(bytes)?;
    let parts = v.as_object_mut().and_then(|o| o.remove(PARTS));
    let Some(parts) = parts else {
        return serde_json::from_value(v).map(|st| Head::Whole(Box::new(st)));
    };
    let parts: Vec<Part> = serde_json::from_value(parts)?;
    let status: RunStatus =
        serde_json::from_value(v.get("status").cloned().unwrap_or(Value::Null))?;
    Ok(Head::Split(Split {
        state: v,
        parts,
        status,
    }))
}

impl Head {
    /// The run's status, which a split head holds too.
    pub fn status(&self) -> RunStatus {
        match self {
            Head::Whole(st) => st.status,
            Head::Split(s) => s.status(),
        }
    }
}

/// Why a split snapshot's parts could not be put back.
#[derive(Debug, thiserror::Error)]
pub enum Unresolved {
    /// The bus did not answer: try again later.
    #[error("{0}")]
    Bus(String),
    /// The events do not hold what the head says (purged, or another version's).
    #[error("{0}")]
    Missing(String),
}

impl Split {
    pub fn status(&self) -> RunStatus {
        self.status
    }

    /// The head as it is, its parts empty (an ended run's plan a stub with
    /// its name, a running run's none): what is left of a run whose events
    /// were purged. Its status, times, errors and verdicts are all there.
    pub fn without_parts(mut self) -> Result<RunState, serde_json::Error> {
        if let Some(o) = self.state.as_object_mut() {
            if !o.contains_key("plan") {
                o.insert("plan".into(), serde_json::to_value(Plan::default())?);
            }
        }
        serde_json::from_value(self.state)
    }

    /// Whether a part comes from `from`.
    pub fn needs(&self, from: Source) -> bool {
        self.parts.iter().any(|p| p.from == from)
    }

    /// The hashes of the values to find in the run's `task_finished` events.
    pub fn wanted(&self) -> HashSet<String> {
        self.parts
            .iter()
            .filter(|p| p.from == Source::TaskFinished)
            .map(|p| p.sha256.clone())
            .collect()
    }

    /// The state, each part back in place: `submitted` is the state the
    /// run's submission alone folds to, `finished` the values of its
    /// `task_finished` events by hash.
    pub fn restore(
        mut self,
        submitted: Option<&RunState>,
        finished: &HashMap<String, Value>,
    ) -> Result<RunState, Unresolved> {
        let missing = |what: String| Unresolved::Missing(what);
        let fresh = submitted
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| missing(e.to_string()))?;
        let mut plan: Option<Arc<Plan>> = None;
        // Last left out, first put back (no part lies inside another today).
        for part in self.parts.iter().rev() {
            let value = match part.from {
                Source::Submitted => {
                    let (Some(sub), Some(fresh)) = (submitted, &fresh) else {
                        return Err(missing("the run's submission is not on the stream".into()));
                    };
                    if part.at == "/plan" {
                        if sha256_of(&Value::String(sub.plan_yaml.clone())) != part.sha256 {
                            return Err(missing(
                                "the run's submission is not the plan the snapshot was taken of"
                                    .into(),
                            ));
                        }
                        plan = Some(sub.plan.clone());
                        continue;
                    }
                    fresh
                        .pointer(&part.at)
                        .cloned()
                        .ok_or_else(|| missing(format!("the submission gives no {}", part.at)))?
                }
                Source::TaskFinished => finished.get(&part.sha256).cloned().ok_or_else(|| {
                    missing(format!(
                        "{} ({} bytes, sha256 {}) is in none of the run's task_finished events",
                        part.at, part.bytes, part.sha256
                    ))
                })?,
            };
            if sha256_of(&value) != part.sha256 {
                return Err(missing(format!(
                    "{} in the run's events is not the value the snapshot was taken with",
                    part.at
                )));
            }
            let slot = self
                .state
                .pointer_mut(&part.at)
                .ok_or_else(|| missing(format!("the head has no {}", part.at)))?;
            *slot = value;
        }
        if plan.is_some() {
            // A running run's head has none: any plan parses, the real one goes in below.
            let placeholder =
                serde_json::to_value(Plan::default()).map_err(|e| missing(e.to_string()))?;
            if let Some(o) = self.state.as_object_mut() {
                o.insert("plan".into(), placeholder);
            }
        }
        let mut st: RunState =
            serde_json::from_value(self.state).map_err(|e| missing(e.to_string()))?;
        if let Some(plan) = plan {
            st.plan = plan;
        }
        Ok(st)
    }
}
