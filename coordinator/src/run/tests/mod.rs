//! The fold on its own: no bus, no clock, no containers.

use baton_proto::v1::{self, event::Body, Event};

use super::*;

const RELEASE_TRAIN: &str = include_str!("../../../../examples/release-train.yaml");

/// An event of run `r1` at `time_ms`.
fn event(time_ms: i64, body: Body) -> Event {
    Event {
        run_id: "r1".into(),
        time_ms,
        body: Some(body),
    }
}

struct Sim {
    st: RunState,
    t: i64,
}

impl Sim {
    fn new(yaml: &str) -> (Sim, Vec<Command>) {
        let sub = v1::RunSubmitted {
            plan_yaml: yaml.into(),
            plan_file: "plan.yaml".into(),
            inputs: [("version".to_string(), "v3.0.0".to_string())].into(),
            ..Default::default()
        };
        let (st, cmds) = RunState::submitted("r1", &sub, 1_000).expect("plan loads");
        (Sim { st, t: 1_000 }, cmds)
    }
    fn apply(&mut self, body: Body) -> Vec<Command> {
        self.t += 10;
        self.st.apply(&event(self.t, body))
    }
    /// The worker's claim of an attempt, as the stream would hold it before
    /// its result; at the same time (claims do not move the clock).
    fn claim(&mut self, task: &str, attempt: u32) -> String {
        let role = self.st.tasks[task].role.clone();
        let (started, proof) = super::claims::test_claim(task, &role, attempt, "w1");
        self.st.apply(&event(self.t, Body::TaskStarted(started)));
        proof
    }
    fn finish(&mut self, task: &str, attempt: u32, ok: bool, report: &str) -> Vec<Command> {
        let claim_proof = self.claim(task, attempt);
        self.apply(Body::TaskFinished(v1::TaskFinished {
            claim_proof,
            worker: "w1".into(),
            task_id: task.into(),
            attempt,
            ok,
            report_json: report.into(),
            error: if ok {
                String::new()
            } else {
                "exit code 1".into()
            },
            exit_code: Some(if ok { 0 } else { 1 }),
            ..Default::default()
        }))
    }
    fn gate(&mut self, phase: &str, idx: u32, verdict: v1::Verdict) -> Vec<Command> {
        let round = self.st.phases.iter().find(|p| p.id == phase).unwrap().round;
        self.apply(Body::GateEvaluated(v1::GateEvaluated {
            phase_id: phase.into(),
            gate_index: idx,
            round,
            verdict: verdict as i32,
            reasons: vec![format!("{verdict:?}")],
            kind: String::new(),
            retry_at_ms: 0,
        }))
    }
    fn decide(&mut self, approve: bool) -> Vec<Command> {
        self.apply(Body::Decision(v1::Decision {
            approve,
            by: "alice".into(),
            reason: "looks fine".into(),
            task_id: String::new(),
        }))
    }
    fn status(&self, task: &str) -> TaskStatus {
        self.st.tasks[task].status
    }
}

fn dispatches(cmds: &[Command]) -> Vec<&v1::TaskDispatch> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Dispatch(d) => Some(d),
            _ => None,
        })
        .collect()
}

/// The task and attempt of each dispatch in `cmds`.
fn dispatched(cmds: &[Command]) -> Vec<(String, u32)> {
    dispatches(cmds)
        .iter()
        .map(|d| (d.task_id.clone(), d.attempt))
        .collect()
}

fn gates_asked(cmds: &[Command]) -> Vec<String> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::AskGate { kind, .. } => Some(kind.clone()),
            _ => None,
        })
        .collect()
}

/// Readiness's reports: what `types`, `scan` and `tests` print on success.
const TYPES_OK: &str = r#"{"result":"ok","outputs":{"modules":12}}"#;
const SCAN_OK: &str = r#"{"result":"ok","outputs":{"critical":0}}"#;
const TESTS_OK: &str = r#"{"result":"ok","outputs":{"coverage":84}}"#;

/// Readiness's three tasks succeed, in order; the commands of the last.
fn finish_readiness_tasks(sim: &mut Sim) -> Vec<Command> {
    sim.finish("types", 1, true, TYPES_OK);
    sim.finish("scan", 1, true, SCAN_OK);
    sim.finish("tests", 1, true, TESTS_OK)
}

fn pass_readiness(sim: &mut Sim) -> Vec<Command> {
    finish_readiness_tasks(sim);
    sim.gate("readiness", 0, v1::Verdict::Pass);
    sim.gate("readiness", 1, v1::Verdict::Pass)
}

#[test]
fn dag_order_then_gates_then_approval_then_success() {
    let (mut sim, cmds) = Sim::new(RELEASE_TRAIN);
    assert_eq!(
        dispatched(&cmds),
        vec![("types".into(), 1)],
        "only the root is ready"
    );
    let cmds = sim.finish("types", 1, true, TYPES_OK);
    assert_eq!(
        dispatched(&cmds),
        vec![("scan".into(), 1), ("tests".into(), 1)]
    );
    sim.finish("scan", 1, true, SCAN_OK);
    let cmds = sim.finish("tests", 1, true, TESTS_OK);
    assert_eq!(gates_asked(&cmds), vec!["tasks", "expr"]);
    sim.gate("readiness", 0, v1::Verdict::Pass);
    let cmds = sim.gate("readiness", 1, v1::Verdict::Pass);
    assert!(
        dispatched(&cmds).is_empty(),
        "deploy's role needs an approval first"
    );
    assert_eq!(sim.status("deploy"), TaskStatus::AwaitingApproval);
    assert!(view::waiting(&sim.st).contains("approval for task deploy"));
    let cmds = sim.decide(true);
    let d = dispatches(&cmds);
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].env["VERSION"], "v3.0.0",
        "templates are rendered at dispatch"
    );
    let cmds = sim.finish(
        "deploy",
        1,
        true,
        r#"{"result":"ok","outputs":{"p95_ms":180}}"#,
    );
    assert_eq!(
        gates_asked(&cmds),
        vec!["tasks", "expr"],
        "implicit all_ok comes first"
    );
    sim.gate("stage", 0, v1::Verdict::Pass);
    sim.gate("stage", 1, v1::Verdict::Pass);
    assert_eq!(sim.st.status, RunStatus::Succeeded);
    assert_eq!(sim.st.tasks["deploy"].attempt, 1);
}

#[test]
fn gate_failure_rolls_back_newest_phase_first() {
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    pass_readiness(&mut sim);
    sim.decide(true);
    sim.finish(
        "deploy",
        1,
        true,
        r#"{"result":"ok","outputs":{"p95_ms":900}}"#,
    );
    sim.gate("stage", 0, v1::Verdict::Pass);
    let cmds = sim.gate("stage", 1, v1::Verdict::Fail);
    assert_eq!(
        dispatched(&cmds),
        vec![("undeploy".into(), 1)],
        "stage's rollback first, with no approval"
    );
    let cmds = sim.finish("undeploy", 1, true, r#"{"result":"ok"}"#);
    assert_eq!(dispatched(&cmds), vec![("revert-types".into(), 1)]);
    sim.finish("revert-types", 1, true, r#"{"result":"ok"}"#);
    assert_eq!(sim.st.status, RunStatus::RolledBack);
    assert!(
        sim.st.reason.contains("phase stage failed"),
        "{}",
        sim.st.reason
    );
    assert_eq!(sim.st.phases[0].status, PhaseStatus::RolledBack);
}

#[test]
fn failed_rollback_step_fails_the_run() {
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    sim.finish("types", 1, false, "");
    sim.gate("readiness", 0, v1::Verdict::Fail);
    sim.finish("revert-types", 1, false, "");
    assert_eq!(sim.st.status, RunStatus::Failed);
    assert!(sim.st.reason.contains("revert-types"), "{}", sim.st.reason);
}

#[test]
fn task_retries_with_backoff_then_fails_and_skips_dependents() {
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    sim.finish("types", 1, true, "{}");
    let cmds = sim.finish("scan", 1, false, "");
    let timer = cmds
        .iter()
        .find_map(|c| match c {
            Command::StartTimer {
                task_id,
                attempt,
                at_ms,
            } => Some((task_id.clone(), *attempt, *at_ms)),
            _ => None,
        })
        .expect("a retry timer");
    assert_eq!((timer.0.as_str(), timer.1), ("scan", 1));
    assert!(
        timer.2 - sim.t >= 400 && timer.2 - sim.t <= 600,
        "500ms ±20%"
    );
    assert_eq!(sim.status("scan"), TaskStatus::RetryWait);
    let cmds = sim.apply(Body::TimerFired(v1::TimerFired {
        task_id: "scan".into(),
        attempt: 1,
        ..Default::default()
    }));
    assert_eq!(dispatched(&cmds), vec![("scan".into(), 2)]);
    // A late result of attempt 1 is stale and changes nothing.
    assert!(sim.finish("scan", 1, true, "{}").is_empty());
    assert_eq!(sim.status("scan"), TaskStatus::Queued);
    sim.finish("scan", 2, false, "");
    sim.apply(Body::TimerFired(v1::TimerFired {
        task_id: "scan".into(),
        attempt: 2,
        ..Default::default()
    }));
    sim.finish("tests", 1, true, "{}");
    let cmds = sim.finish("scan", 3, false, "");
    assert_eq!(
        sim.status("scan"),
        TaskStatus::Failed,
        "retries: 2 means 3 attempts"
    );
    assert_eq!(gates_asked(&cmds), vec!["tasks", "expr"]);
}

#[test]
fn backoff_grows_and_is_capped() {
    assert!(backoff_ms("r", "t", 1) <= 600);
    assert!(backoff_ms("r", "t", 3) >= 1600);
    assert!(backoff_ms("r", "t", 30) <= 36_000);
    assert_eq!(
        backoff_ms("r", "t", 2),
        backoff_ms("r", "t", 2),
        "replays agree"
    );
}

#[test]
fn duplicate_result_is_folded_once() {
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    let first = sim.finish("types", 1, true, "{}");
    assert_eq!(dispatched(&first).len(), 2);
    let again = sim.finish("types", 1, true, "{}");
    assert!(
        again.is_empty(),
        "a redelivered result dispatches nothing twice"
    );
}

#[test]
fn stale_gate_round_is_ignored() {
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    sim.finish("types", 1, true, "{}");
    sim.finish("scan", 1, true, "{}");
    sim.finish("tests", 1, true, "{}");
    let cmds = sim.apply(Body::GateEvaluated(v1::GateEvaluated {
        phase_id: "readiness".into(),
        gate_index: 0,
        round: 99,
        verdict: v1::Verdict::Fail as i32,
        ..Default::default()
    }));
    assert!(cmds.is_empty());
    assert_eq!(sim.st.phases[0].status, PhaseStatus::Gating);
}

#[test]
fn rejection_fails_the_waiting_task_and_rolls_back() {
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    pass_readiness(&mut sim);
    let cmds = sim.decide(false);
    assert_eq!(sim.status("deploy"), TaskStatus::Failed);
    assert!(sim.st.tasks["deploy"].error.contains("rejected by alice"));
    assert_eq!(gates_asked(&cmds), vec!["tasks", "expr"]);
    let cmds = sim.gate("stage", 0, v1::Verdict::Fail);
    assert_eq!(dispatched(&cmds), vec![("undeploy".into(), 1)]);
}

const RETRY_PLAN: &str = r#"
name: retry-plan
roles:
  qa: { image: "baton/agent:local" }
phases:
  - id: flaky
    tasks:
      - id: check
        role: qa
        run: ["true"]
    gates:
      - expr: "tasks.check.outputs.green == true"
    on_fail: retry
    max_retries: 1
"#;

#[test]
fn on_fail_retry_reruns_the_phase_then_fails() {
    let (mut sim, _) = Sim::new(RETRY_PLAN);
    sim.finish("check", 1, true, r#"{"outputs":{"green":false}}"#);
    sim.gate("flaky", 0, v1::Verdict::Pass);
    let cmds = sim.gate("flaky", 1, v1::Verdict::Fail);
    assert_eq!(
        dispatched(&cmds),
        vec![("check".into(), 2)],
        "the phase runs again, attempts keep counting"
    );
    assert_eq!(sim.st.phases[0].retries_used, 1);
    assert!(
        sim.finish("check", 1, true, "{}").is_empty(),
        "a late result of the first round is stale"
    );
    sim.finish("check", 2, true, r#"{"outputs":{"green":false}}"#);
    sim.gate("flaky", 0, v1::Verdict::Pass);
    sim.gate("flaky", 1, v1::Verdict::Fail);
    assert_eq!(sim.st.status, RunStatus::Failed);
    assert!(
        sim.st.reason.contains("after 1 retries"),
        "{}",
        sim.st.reason
    );
}

#[test]
fn halt_stops_the_run() {
    let yaml = RETRY_PLAN.replace("on_fail: retry\n    max_retries: 1", "on_fail: halt");
    let (mut sim, _) = Sim::new(&yaml);
    sim.finish("check", 1, false, "");
    sim.gate("flaky", 0, v1::Verdict::Fail);
    assert_eq!(sim.st.status, RunStatus::Halted);
}

#[test]
fn cancel_ends_the_run_and_ignores_later_events() {
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    sim.apply(Body::CancelRequested(v1::CancelRequested {
        by: "bob".into(),
        reason: "wrong branch".into(),
    }));
    assert_eq!(sim.st.status, RunStatus::Cancelled);
    assert_eq!(sim.status("types"), TaskStatus::Cancelled);
    assert!(sim.finish("types", 1, true, "{}").is_empty());
}

const APPROVAL_GATE_PLAN: &str = r#"
name: gate-approval
roles:
  qa: { image: "baton/agent:local" }
phases:
  - id: release
    tasks:
      - id: build
        role: qa
        run: ["true"]
    gates:
      - approval: { quorum: 1 }
"#;

#[test]
fn approval_gate_is_asked_again_after_a_decision() {
    let (mut sim, _) = Sim::new(APPROVAL_GATE_PLAN);
    sim.finish("build", 1, true, "{}");
    sim.gate("release", 0, v1::Verdict::Pass);
    sim.gate("release", 1, v1::Verdict::Pending);
    assert!(view::waiting(&sim.st).contains("approval for phase release"));
    let cmds = sim.decide(true);
    assert_eq!(gates_asked(&cmds), vec!["tasks", "approval"]);
    let req = cmds
        .iter()
        .find_map(|c| match c {
            Command::AskGate { request, .. } if request.gate_index == 1 => Some(request.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(req.decisions.len(), 1);
    assert_eq!(req.round, 2);
}

mod claims;
mod flow;
mod gate_deadletter;
mod lost;
mod schema;
