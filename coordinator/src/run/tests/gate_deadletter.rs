//! A gate request no evaluator answered: the coordinator answers in the
//! evaluators' place (`deadletter::move_gate`), a `GateEvaluated` with
//! verdict fail, under the id of their answer. The fold takes one answer per
//! gate and round: the first that is not pending. So the dead-letter answer
//! fails an unanswered gate with its reason, and neither it nor a late
//! answer of the evaluators counts once the other did.

use super::*;

/// The reason `deadletter::gate_reason` writes.
const WHY: &str = "gate expr #1 of phase readiness: the request was delivered 10 times and never answered — see BATON_DEADLETTER seq 7";

/// Readiness's tasks done: its gates (`tasks` #0, `expr` #1) are asked, round 1.
fn readiness_gating() -> Sim {
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    let cmds = finish_readiness_tasks(&mut sim);
    assert_eq!(gates_asked(&cmds), vec!["tasks", "expr"]);
    assert_eq!(sim.st.phases[0].status, PhaseStatus::Gating);
    sim
}

/// An answer to readiness's gate `idx` for `round`, as the evaluators or
/// the dead-letter path publish it.
fn answer(sim: &mut Sim, idx: u32, round: u32, verdict: v1::Verdict, why: &str) -> Vec<Command> {
    sim.apply(Body::GateEvaluated(v1::GateEvaluated {
        phase_id: "readiness".into(),
        gate_index: idx,
        round,
        verdict: verdict as i32,
        reasons: vec![why.into()],
        kind: "expr".into(),
        retry_at_ms: 0,
    }))
}

#[test]
fn a_dead_lettered_gate_request_fails_its_phase_saying_where_the_request_went() {
    let mut sim = readiness_gating();
    sim.gate("readiness", 0, v1::Verdict::Pass);
    let cmds = answer(&mut sim, 1, 1, v1::Verdict::Fail, WHY);
    let p = &sim.st.phases[0];
    assert_eq!(p.status, PhaseStatus::Failed, "{cmds:?}");
    assert_eq!(p.reason, format!("gate failed: expr: {WHY}"));
    assert_eq!(p.gates[1].verdict, Some(Verdict::Fail));
    // As any failed gate: readiness rolls back.
    assert_eq!(dispatched(&cmds), vec![("revert-types".into(), 1)]);
}

#[test]
fn a_late_answer_of_the_evaluators_after_the_dead_letter_answer_changes_nothing() {
    let mut sim = readiness_gating();
    sim.gate("readiness", 0, v1::Verdict::Pass);
    answer(&mut sim, 1, 1, v1::Verdict::Fail, WHY);
    let before = sim.st.clone();
    for late in [v1::Verdict::Pass, v1::Verdict::Pending, v1::Verdict::Fail] {
        let cmds = answer(&mut sim, 1, 1, late, "evaluated at last");
        assert!(cmds.is_empty(), "{late:?} moved the run: {cmds:?}");
        assert_eq!(sim.st.phases, before.phases, "{late:?} changed the phase");
    }
}

#[test]
fn an_answer_of_the_evaluators_before_the_dead_letter_answer_stands() {
    let mut sim = readiness_gating();
    sim.gate("readiness", 0, v1::Verdict::Pass);
    // Answered (pass), but never acknowledged: the request is spent anyway.
    let cmds = answer(&mut sim, 1, 1, v1::Verdict::Pass, "coverage 84 >= 80");
    assert_eq!(sim.st.phases[0].status, PhaseStatus::Passed, "{cmds:?}");
    let before = sim.st.clone();
    let cmds = answer(&mut sim, 1, 1, v1::Verdict::Fail, WHY);
    assert!(cmds.is_empty(), "{cmds:?}");
    assert_eq!(sim.st.phases, before.phases);
    assert_eq!(sim.st.status, before.status);
}

#[test]
fn a_dead_letter_answer_for_an_older_round_changes_nothing() {
    let mut sim = readiness_gating();
    assert_eq!(sim.st.phases[0].round, 1);
    // A request of a round before this one: its answer is stale.
    let before = sim.st.clone();
    let cmds = answer(&mut sim, 1, 0, v1::Verdict::Fail, WHY);
    assert!(cmds.is_empty(), "{cmds:?}");
    assert_eq!(sim.st.phases, before.phases);
    assert_eq!(sim.st.phases[0].status, PhaseStatus::Gating);
}
