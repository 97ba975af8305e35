//! Snapshots on their own: encoding, reading back, putting split ones
//! together from the events, with no bus.

use std::collections::HashMap;

use baton_proto::v1::{self, event::Body, Event};
use serde_json::Value;

use super::snapshot::{self, Head, NotEncoded, Unresolved, PARTS};
use super::*;
use crate::run::{RunStatus, TaskStatus};

/// One NATS message by default, less the headroom the engine keeps.
const LIMIT: usize = (1 << 20) - 16 * 1024;

#[test]
fn run_ids_are_tokens() {
    for _ in 0..100 {
        let id = new_run_id();
        assert!(valid_id(&id), "{id}");
    }
    for bad in ["", "a.b", "r1.>", "*", "R1", &"a".repeat(64)] {
        assert!(!valid_id(bad), "{bad:?}");
    }
}

/// A plan of `phases` phases of `per_phase` tasks each.
fn plan(phases: usize, per_phase: usize) -> String {
    let mut y =
        String::from("name: big\nroles:\n  dev: { image: \"baton/agent:local\" }\nphases:\n");
    for p in 0..phases {
        y.push_str(&format!("  - id: p{p}\n    tasks:\n"));
        for t in 0..per_phase {
            y.push_str(&format!(
                "      - id: t{p}x{t}\n        role: dev\n        run: [\"sh\", \"-c\", \"true\"]\n"
            ));
        }
    }
    y
}

/// A run fed by hand, and the events it was fed, as the stream holds them.
struct Sim {
    st: RunState,
    submitted: v1::RunSubmitted,
    finished: Vec<v1::TaskFinished>,
    t: i64,
}

impl Sim {
    fn new(yaml: &str) -> Sim {
        let submitted = v1::RunSubmitted {
            plan_yaml: yaml.into(),
            plan_file: "big.yaml".into(),
            inputs: [("version".to_string(), "v1".repeat(20))].into(),
            ..Default::default()
        };
        let (st, _) = RunState::submitted("r1", &submitted, 1_000).expect("plan loads");
        Sim {
            st,
            submitted,
            finished: Vec::new(),
            t: 1_000,
        }
    }

    fn apply(&mut self, body: Body) {
        self.t += 1;
        self.st.apply(&Event {
            run_id: "r1".into(),
            time_ms: self.t,
            body: Some(body),
        });
    }

    /// Every queued task reports `outputs.blob` of `size` bytes of its own letter.
    fn finish_queued(&mut self, size: usize) {
        let queued: Vec<(String, String)> = self
            .st
            .tasks
            .values()
            .filter(|t| t.status == TaskStatus::Queued)
            .map(|t| (t.id.clone(), t.role.clone()))
            .collect();
        for (i, (id, role)) in queued.into_iter().enumerate() {
            let (started, proof) = crate::run::claims::test_claim(&id, &role, 1, "w1");
            self.apply(Body::TaskStarted(started));
            let ch = (b'a' + (i % 26) as u8) as char;
            let report = serde_json::json!({
                "result": "ok",
                "outputs": { "blob": ch.to_string().repeat(size), "task": id },
            })
            .to_string();
            let f = v1::TaskFinished {
                claim_proof: proof,
                worker: "w1".into(),
                task_id: id,
                attempt: 1,
                ok: true,
                report_json: report,
                exit_code: Some(0),
                ..Default::default()
            };
            self.finished.push(f.clone());
            self.apply(Body::TaskFinished(f));
        }
    }

    /// Pass the current stage's gates.
    fn pass_gates(&mut self) {
        let si = self.st.current;
        let stage = self.st.plan.stages[si].clone();
        let round = self.st.phases[si].round;
        for i in 0..self.st.plan.stage_gates(&stage).len() as u32 {
            self.apply(Body::GateEvaluated(v1::GateEvaluated {
                phase_id: self.st.phases[si].id.clone(),
                gate_index: i,
                round,
                verdict: v1::Verdict::Pass as i32,
                ..Default::default()
            }));
        }
    }

    /// Run every stage to its end, each task reporting `size` bytes.
    fn run_to_end(&mut self, size: usize) {
        while !self.st.status.is_terminal() {
            self.finish_queued(size);
            self.pass_gates();
        }
    }

    /// What a reader finds in the events: the submission's state, and
    /// every result's values by hash.
    fn events(&self) -> (RunState, HashMap<String, Value>) {
        let (sub, _) = RunState::submitted("r1", &self.submitted, 1_000).unwrap();
        let finished = self
            .finished
            .iter()
            .flat_map(snapshot::finished_values)
            .map(|v| (snapshot::sha256_of(&v), v))
            .collect();
        (sub, finished)
    }
}

fn split(bytes: &[u8]) -> snapshot::Split {
    match snapshot::read(bytes).unwrap() {
        Head::Split(s) => s,
        Head::Whole(_) => panic!("a whole snapshot"),
    }
}

/// The split snapshot `bytes`, restored from the run's events, is the
/// simulated state to the letter.
fn assert_restores_exactly(sim: &Sim, bytes: &[u8]) {
    let (sub, finished) = sim.events();
    let back = split(bytes).restore(Some(&sub), &finished).unwrap();
    assert_eq!(back, sim.st);
}

/// What makes a state big, measured: each report is held three times.
#[test]
fn two_reports_of_245_kib_make_a_state_of_1_5_mib() {
    let mut sim = Sim::new(&plan(1, 2));
    sim.run_to_end(245 * 1024);
    assert_eq!(sim.st.status, RunStatus::Succeeded);
    let v = serde_json::to_value(&sim.st).unwrap();
    let len = |v: &Value| serde_json::to_vec(v).unwrap().len();
    let whole = len(&v);
    let task = len(&v["tasks"]["t0x0"]["report_json"]) + len(&v["tasks"]["t0x0"]["outputs"]);
    let outcomes = len(&v["phases"][0]["outcomes"]);
    assert!(whole > 3 * 2 * 245 * 1024, "{whole}");
    assert!(
        task > 2 * 245 * 1024 && outcomes > 2 * 245 * 1024,
        "{task} {outcomes}"
    );
    assert!(whole - 2 * task - outcomes < 8 * 1024, "the rest is small");
}

#[test]
fn a_state_that_fits_is_written_whole_as_it_always_was() {
    let mut sim = Sim::new(&plan(2, 3));
    sim.run_to_end(1000);
    let e = snapshot::encode(&sim.st, LIMIT).unwrap();
    assert_eq!(e.parts, 0);
    assert_eq!(e.bytes, serde_json::to_vec(&sim.st).unwrap());
    match snapshot::read(&e.bytes).unwrap() {
        Head::Whole(st) => assert_eq!(*st, sim.st),
        Head::Split(_) => panic!("split"),
    }
}

/// A snapshot written before `incidents`, `known_good`, `claims`... existed.
#[test]
fn snapshots_of_older_versions_still_read() {
    let mut sim = Sim::new(&plan(1, 2));
    sim.run_to_end(10);
    let mut v = serde_json::to_value(&sim.st).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("incidents");
    o.remove("known_good");
    for t in o["tasks"].as_object_mut().unwrap().values_mut() {
        for f in [
            "lost",
            "stale",
            "claims",
            "artifacts",
            "stage",
            "base_attempt",
        ] {
            t.as_object_mut().unwrap().remove(f);
        }
    }
    let head = snapshot::read(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(head.status(), RunStatus::Succeeded);
    assert!(matches!(head, Head::Whole(_)));
}

#[test]
fn an_ended_run_too_big_for_a_message_is_split_and_put_back_exactly() {
    let mut sim = Sim::new(&plan(1, 2));
    sim.run_to_end(245 * 1024);
    let e = snapshot::encode(&sim.st, LIMIT).unwrap();
    assert!(e.whole > 1 << 20, "{}", e.whole);
    assert!(
        e.parts > 0 && e.bytes.len() < 16 * 1024,
        "{} bytes",
        e.bytes.len()
    );
    // What start-up recovery reads: an ended run, with a plain parse.
    let plain: RunState = serde_json::from_slice(&e.bytes).expect("an ended head parses");
    assert_eq!(plain.status, RunStatus::Succeeded);
    assert_eq!(plain.plan.name, "big");
    let head = snapshot::read(&e.bytes).unwrap();
    assert!(matches!(head, Head::Split(_)));
    assert_eq!(head.status(), RunStatus::Succeeded);
    assert_restores_exactly(&sim, &e.bytes);
}

/// Its events purged (the full-disk runbook): what the head alone says.
#[test]
fn an_ended_split_head_alone_still_says_how_the_run_ended() {
    let mut sim = Sim::new(&plan(1, 2));
    sim.run_to_end(245 * 1024);
    let e = snapshot::encode(&sim.st, LIMIT).unwrap();
    let st = split(&e.bytes).without_parts().unwrap();
    assert_eq!(
        (st.status, st.finished_ms, st.plan.name.as_str()),
        (RunStatus::Succeeded, sim.st.finished_ms, "big")
    );
    assert!(st.tasks.values().all(|t| t.status == TaskStatus::Succeeded));
    assert!(st.tasks.values().all(|t| t.report_json.is_empty()));
}

#[test]
fn a_running_runs_split_head_lacks_the_plan_so_older_coordinators_rebuild_instead() {
    let mut sim = Sim::new(&plan(2, 2));
    sim.finish_queued(400 * 1024);
    sim.pass_gates();
    sim.finish_queued(10);
    assert_eq!(sim.st.status, RunStatus::Running);
    let e = snapshot::encode(&sim.st, LIMIT).unwrap();
    assert!(e.parts > 0);
    let plain = serde_json::from_slice::<RunState>(&e.bytes).unwrap_err();
    assert!(
        plain.to_string().contains("missing field `plan`"),
        "{plain}"
    );
    assert_eq!(
        snapshot::read(&e.bytes).unwrap().status(),
        RunStatus::Running
    );
    assert_restores_exactly(&sim, &e.bytes);
}

#[test]
fn a_part_missing_from_the_events_or_changed_is_an_error_never_a_blank() {
    let mut sim = Sim::new(&plan(1, 2));
    sim.run_to_end(245 * 1024);
    let e = snapshot::encode(&sim.st, LIMIT).unwrap();
    let (sub, mut finished) = sim.events();
    let err = split(&e.bytes)
        .restore(Some(&sub), &HashMap::new())
        .unwrap_err();
    assert!(
        matches!(&err, Unresolved::Missing(m) if m.contains("task_finished")),
        "{err}"
    );
    for v in finished.values_mut() {
        *v = Value::String("forged".into());
    }
    assert!(split(&e.bytes).restore(Some(&sub), &finished).is_err());
    let other = Sim::new(&plan(1, 3));
    let (other_sub, _) = other.events();
    let err = split(&e.bytes)
        .restore(Some(&other_sub), &sim.events().1)
        .unwrap_err();
    assert!(err.to_string().contains("not the plan"), "{err}");
}

/// The plan limits: 500 tasks (each reporting 2 KiB), and a plan of almost
/// 512 KiB of YAML, whose model is larger still.
#[test]
fn runs_at_the_plan_limits_fit_in_one_message() {
    let mut sim = Sim::new(&plan(5, 100));
    sim.run_to_end(2048);
    assert_eq!(sim.st.status, RunStatus::Succeeded);
    let e = snapshot::encode(&sim.st, LIMIT).unwrap();
    assert!(e.whole > 3 << 20, "{}", e.whole);
    assert!(e.bytes.len() <= LIMIT, "{}", e.bytes.len());
    assert_restores_exactly(&sim, &e.bytes);

    let mut yaml = plan(1, 2);
    yaml.push_str(&format!(
        "description: \"{}\"\n",
        "d".repeat(baton_plan::MAX_PLAN_BYTES - yaml.len() - 64)
    ));
    let mut sim = Sim::new(&yaml);
    assert!(yaml.len() > 500 * 1024);
    sim.finish_queued(100);
    let e = snapshot::encode(&sim.st, LIMIT).unwrap();
    assert!(e.whole > 1 << 20, "{}", e.whole);
    assert!(e.bytes.len() < 16 * 1024, "{}", e.bytes.len());
    assert_restores_exactly(&sim, &e.bytes);
}

#[test]
fn a_head_still_too_big_is_refused_with_its_sizes() {
    let mut sim = Sim::new(&plan(5, 100));
    sim.run_to_end(10);
    let err = snapshot::encode(&sim.st, 64 * 1024).unwrap_err();
    let NotEncoded::TooLarge {
        head, limit, whole, ..
    } = err
    else {
        panic!("{err}")
    };
    assert!(head > limit && whole > head, "{head} {limit} {whole}");
    assert!(err.to_string().contains("65536 bytes"), "{err}");
}

#[test]
fn pointers_escape_task_ids() {
    assert_eq!(snapshot::pointer(&["tasks", "a/b~c"]), "/tasks/a~1b~0c");
    let v = serde_json::json!({ "tasks": { "a/b~c": 1 } });
    assert_eq!(
        v.pointer(&snapshot::pointer(&["tasks", "a/b~c"])),
        Some(&Value::from(1))
    );
    assert!(PARTS.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
}
