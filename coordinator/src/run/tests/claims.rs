//! Results and losses count only when they match their attempt's claim.

use super::*;
use crate::run::claims::test_claim;

fn forged_finish(task: &str, attempt: u32, worker: &str, proof: &str) -> Body {
    Body::TaskFinished(v1::TaskFinished {
        task_id: task.into(),
        attempt,
        ok: true,
        report_json: r#"{"result":"ok","outputs":{"modules":99}}"#.into(),
        worker: worker.into(),
        claim_proof: proof.into(),
        ..Default::default()
    })
}

#[test]
fn a_result_with_the_claimers_name_but_not_its_secret_is_refused() {
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    sim.claim("types", 1);
    let not_the_secret = hex::encode("guessed");
    let ev = event(2_000, forged_finish("types", 1, "w1", &not_the_secret));
    let refused = sim.st.admit(&ev).unwrap_err();
    assert_eq!(refused.reason(), "unclaimed");
    assert!(refused.to_string().contains("types#1 from w1"), "{refused}");
    assert!(sim.st.apply(&ev).is_empty());
    assert_eq!(sim.status("types"), TaskStatus::Running);
    assert!(sim.st.tasks["types"].outputs.is_empty());
    // The claimer's own result still counts.
    let cmds = sim.finish("types", 1, true, r#"{"result":"ok"}"#);
    assert_eq!(sim.status("types"), TaskStatus::Succeeded);
    assert!(!dispatched(&cmds).is_empty());
}

#[test]
fn the_right_secret_under_another_workers_name_is_refused() {
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    let proof = sim.claim("types", 1);
    let ev = event(2_000, forged_finish("types", 1, "w2", &proof));
    assert!(sim.st.admit(&ev).is_err());
}

#[test]
fn a_result_for_an_attempt_nobody_claimed_is_refused() {
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    let (_, proof) = test_claim("types", "arch", 1, "w1");
    let cmds = sim.apply(forged_finish("types", 1, "w1", &proof));
    assert!(cmds.is_empty());
    assert_eq!(sim.status("types"), TaskStatus::Queued);
}

#[test]
fn a_second_claim_of_an_attempt_claims_nothing() {
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    sim.claim("types", 1);
    let (mut second, proof) = test_claim("types", "arch", 1, "evil");
    second.claim_digest = crate::run::digest_of(b"evil's own secret");
    let claim = event(2_000, Body::TaskStarted(second));
    assert_eq!(sim.st.admit(&claim).unwrap_err().reason(), "unclaimed");
    sim.st.apply(&claim);
    assert_eq!(sim.st.tasks["types"].claims[&1].worker, "w1");
    let ev = event(2_010, forged_finish("types", 1, "evil", &proof));
    assert!(sim.st.admit(&ev).is_err());
}

#[test]
fn a_loss_must_name_the_message_the_claim_names() {
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    sim.claim("types", 1);
    let cmds = sim.apply(Body::TaskLost(v1::TaskLost {
        task_id: "types".into(),
        attempt: 1,
        deliveries: 2,
        worker: "w2".into(),
        queue_seq: 999,
    }));
    assert!(cmds.is_empty(), "a loss of another message moved the task");
    assert_eq!(sim.st.tasks["types"].lost, 0);
}

#[test]
fn claims_survive_a_snapshot() {
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    sim.claim("types", 1);
    let json = serde_json::to_vec(&sim.st).unwrap();
    let back: RunState = serde_json::from_slice(&json).unwrap();
    assert_eq!(back.tasks["types"].claims, sim.st.tasks["types"].claims);
}

#[test]
fn a_claim_under_another_role_claims_nothing() {
    // A credential confined to role `sec` claims an `arch` task first.
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    let (wrong, proof) = test_claim("types", "sec", 1, "sec-worker");
    let claim = event(2_000, Body::TaskStarted(wrong));
    assert_eq!(sim.st.admit(&claim).unwrap_err().reason(), "unclaimed");
    sim.st.apply(&claim);
    assert!(sim.st.tasks["types"].claims.is_empty());
    assert_eq!(sim.status("types"), TaskStatus::Queued);
    let result = forged_finish("types", 1, "sec-worker", &proof);
    assert!(sim.apply(result).is_empty());
    assert_eq!(sim.status("types"), TaskStatus::Queued);
}
