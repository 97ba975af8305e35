//! Governed approvals in the coordinator's fold, with the real approval
//! evaluator answering the gate requests the fold emits: quorum of distinct
//! people, the submitter refused, reasons required, expiry to `fail` or
//! `halt`, and the expiry timer a coordinator taking over arms again.
//!
//! It lives here, not in the coordinator, so the coordinator does not depend
//! on the gates crate, not even for its tests.

use baton_coordinator::run::{digest_of, view, Command, Mode, PhaseStatus, RunState, RunStatus};
use baton_proto::v1::{self, event::Body, Event};

/// The part of the coordinator's private fold simulator (`run/tests/mod.rs`)
/// these tests need, on the coordinator's public API only.
struct Sim {
    st: RunState,
    t: i64,
}

impl Sim {
    fn apply(&mut self, body: Body) -> Vec<Command> {
        self.t += 10;
        self.st.apply(&Event {
            run_id: "r1".into(),
            time_ms: self.t,
            body: Some(body),
        })
    }
    /// The worker's claim of an attempt, as the stream would hold it before
    /// its result; at the same time (claims do not move the clock).
    fn claim(&mut self, task: &str, attempt: u32) -> String {
        let role = self.st.tasks[task].role.clone();
        // As the coordinator's `claims::test_claim` makes them: the proof is
        // the secret in hex, the claim carries its digest.
        let secret = format!("secret of {task}#{attempt}");
        let started = v1::TaskStarted {
            task_id: task.into(),
            role,
            attempt,
            worker: "w1".into(),
            queue_seq: u64::from(attempt),
            claim_digest: digest_of(secret.as_bytes()),
            ..Default::default()
        };
        self.st.apply(&Event {
            run_id: "r1".into(),
            time_ms: self.t,
            body: Some(Body::TaskStarted(started)),
        });
        secret.bytes().map(|b| format!("{b:02x}")).collect()
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
}

const FOUR_EYES: &str = r#"
name: four-eyes
roles: { ops: { image: img } }
phases:
  - id: prod
    tasks: [ { id: deploy, role: ops, run: "true" } ]
    gates:
      - approval: { quorum: 2, allow_self_approval: false, expires: 2s, on_expiry: ON_EXPIRY }
    rollback: [ { id: undo, role: ops, run: "true" } ]
"#;

/// A run submitted by alice, with its task done: the gates were asked.
fn submitted_by_alice(on_expiry: &str) -> (Sim, Vec<Command>) {
    let sub = v1::RunSubmitted {
        plan_yaml: FOUR_EYES.replace("ON_EXPIRY", on_expiry),
        plan_file: "plan.yaml".into(),
        submitted_by: "alice".into(),
        ..Default::default()
    };
    let (st, _) = RunState::submitted("r1", &sub, 1_000).expect("plan loads");
    let mut sim = Sim { st, t: 1_000 };
    let cmds = sim.finish("deploy", 1, true, "{}");
    (sim, cmds)
}

/// Answer every gate request in `cmds` with the real evaluator; return what
/// the fold did with the answers, and the approval gate's reasons.
fn evaluate(sim: &mut Sim, cmds: Vec<Command>) -> (Vec<Command>, Vec<String>) {
    let mut out = Vec::new();
    let mut approval = Vec::new();
    for c in cmds {
        let Command::AskGate { kind, request } = c else {
            continue;
        };
        let a = baton_gates::kinds::evaluate(&request);
        if kind == "approval" {
            approval = a.reasons.clone();
        }
        out.extend(sim.apply(Body::GateEvaluated(v1::GateEvaluated {
            phase_id: request.phase_id,
            gate_index: request.gate_index,
            round: request.round,
            verdict: a.verdict as i32,
            reasons: a.reasons,
            kind,
            retry_at_ms: a.retry_at_ms,
        })));
    }
    (out, approval)
}

fn decide(sim: &mut Sim, by: &str, reason: &str) -> (Vec<Command>, Vec<String>) {
    let cmds = sim.apply(Body::Decision(v1::Decision {
        approve: true,
        by: by.into(),
        reason: reason.into(),
        task_id: String::new(),
    }));
    evaluate(sim, cmds)
}

fn expiry_timers(cmds: &[Command]) -> Vec<i64> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::StartStageTimer { at_ms, .. } => Some(*at_ms),
            _ => None,
        })
        .collect()
}

fn fire(sim: &mut Sim, at_ms: i64) -> Vec<Command> {
    let round = sim.st.phases[0].round;
    sim.t = at_ms;
    sim.apply(Body::TimerFired(v1::TimerFired {
        phase_id: "prod".into(),
        round,
        due_ms: at_ms,
        ..Default::default()
    }))
}

#[test]
fn a_quorum_of_two_distinct_people_who_are_not_the_submitter() {
    let (mut sim, cmds) = submitted_by_alice("fail");
    let (_, why) = evaluate(&mut sim, cmds);
    assert!(why[0].starts_with("0/2 approvals"), "{why:?}");
    assert!(view::waiting(&sim.st).contains("approval for phase prod"));

    let (_, why) = decide(&mut sim, "alice", "my own change, trust me");
    assert!(
        why[0].starts_with("0/2 approvals"),
        "the submitter counts: {why:?}"
    );
    assert!(
        why[1].contains("alice ignored: they submitted the run"),
        "{why:?}"
    );

    let (_, why) = decide(&mut sim, "bob", "");
    assert!(
        why[0].starts_with("0/2 approvals"),
        "no reason counts: {why:?}"
    );
    assert!(why
        .iter()
        .any(|r| r.contains("bob ignored: it gives no reason")));

    let (_, why) = decide(&mut sim, "bob", "diff reviewed");
    assert!(why[0].starts_with("1/2 approvals, approved so far by bob; 1 more needed"));
    let (_, why) = decide(&mut sim, "bob", "really reviewed");
    assert!(
        why[0].starts_with("1/2 approvals"),
        "bob counts once: {why:?}"
    );
    assert_eq!(sim.st.status, RunStatus::Running);

    decide(&mut sim, "carol", "canary metrics fine");
    assert_eq!(
        sim.st.status,
        RunStatus::Succeeded,
        "{:?}",
        sim.st.phases[0]
    );
    assert_eq!(sim.st.phases[0].status, PhaseStatus::Passed);
}

#[test]
fn expiry_with_fail_fails_the_phase_and_its_on_fail_rolls_back() {
    let (mut sim, cmds) = submitted_by_alice("fail");
    let asked_at = sim.t;
    let (cmds, _) = evaluate(&mut sim, cmds);
    let deadline = asked_at + 2_000;
    assert_eq!(expiry_timers(&cmds), [deadline]);
    let (cmds, _) = decide(&mut sim, "bob", "ok from me");
    assert_eq!(
        expiry_timers(&cmds),
        [deadline],
        "a decision keeps the deadline"
    );

    // The timer of the earlier round is stale; the current one expires it.
    let cmds = fire(&mut sim, deadline);
    let p = &sim.st.phases[0];
    assert_eq!(p.status, PhaseStatus::Failed);
    assert_eq!(p.reason, "approval expired after 2s (1/2 approvals)");
    assert!(matches!(sim.st.mode, Mode::RollingBack { .. }));
    assert!(cmds
        .iter()
        .any(|c| matches!(c, Command::Dispatch(d) if d.task_id == "undo")));
    // A decision after the expiry changes nothing.
    let (cmds, _) = decide(&mut sim, "carol", "too late");
    assert!(cmds.is_empty(), "{cmds:?}");
}

#[test]
fn expiry_with_halt_raises_a_halt_incident_and_stops_the_run() {
    let (mut sim, cmds) = submitted_by_alice("halt");
    let deadline = sim.t + 2_000;
    evaluate(&mut sim, cmds);
    let cmds = fire(&mut sim, deadline);
    assert_eq!(sim.st.status, RunStatus::Halted);
    let incident = cmds
        .iter()
        .find_map(|c| match c {
            Command::Emit {
                body: Body::Incident(i),
                ..
            } => Some(i),
            _ => None,
        })
        .expect("a halt incident");
    assert_eq!(incident.kind, "halt");
    assert_eq!(
        incident.reasons,
        ["approval expired after 2s (0/2 approvals)"]
    );
    assert!(
        sim.st.reason.contains("halted the run"),
        "{}",
        sim.st.reason
    );
    assert!(
        !cmds.iter().any(|c| matches!(c, Command::Dispatch(_))),
        "halt runs no rollback"
    );
}

#[test]
fn the_expiry_timer_survives_a_takeover() {
    let (mut sim, cmds) = submitted_by_alice("halt");
    let deadline = sim.t + 2_000;
    evaluate(&mut sim, cmds);
    decide(&mut sim, "bob", "fine");
    // The new owner has only the snapshot; the old owner's timer is gone.
    let json = serde_json::to_string(&sim.st).unwrap();
    let st: RunState = serde_json::from_str(&json).unwrap();
    let rearmed = st.stage_timers();
    assert_eq!(
        rearmed,
        [Command::StartStageTimer {
            phase_id: "prod".into(),
            round: st.phases[0].round,
            at_ms: deadline
        }]
    );
    let mut new_owner = Sim { st, t: sim.t };
    // Its clock lags the old owner's: the timer's due time still decides.
    let round = new_owner.st.phases[0].round;
    new_owner.t = deadline - 500;
    new_owner.apply(Body::TimerFired(v1::TimerFired {
        phase_id: "prod".into(),
        round,
        due_ms: deadline,
        ..Default::default()
    }));
    assert_eq!(new_owner.st.status, RunStatus::Halted);
    assert!(new_owner.st.phases[0].reason.contains("(1/2 approvals)"));
}

#[test]
fn an_answer_in_flight_at_the_deadline_wins_over_the_timer() {
    let (mut sim, cmds) = submitted_by_alice("fail");
    let deadline = sim.t + 2_000;
    evaluate(&mut sim, cmds);
    decide(&mut sim, "bob", "ok");
    // carol approves just before the deadline; her round's answers come after it.
    let asked = sim.apply(Body::Decision(v1::Decision {
        approve: true,
        by: "carol".into(),
        reason: "ok".into(),
        task_id: String::new(),
    }));
    fire(&mut sim, deadline);
    assert_eq!(
        sim.st.status,
        RunStatus::Running,
        "the quorum is being counted"
    );
    evaluate(&mut sim, asked);
    assert_eq!(sim.st.status, RunStatus::Succeeded);
}
