//! Assembly and sealing without a bus: a real plan folded from events.

use std::collections::BTreeMap;

use baton_proto::v1::{self, event::Body, Event};
use ed25519_dalek::SigningKey;

use super::assemble::{assemble, empty_log, sha256_hex, LogHasher};
use super::statement::*;
use super::{dsse, verify};
use crate::run::RunState;

const PLAN: &str = "name: tiny
roles:
  dev: { image: \"baton/agent:local\" }
phases:
  - id: only
    tasks:
      - id: a
        role: dev
        run: [\"sh\", \"-c\", \"echo hi\"]
    gates:
      - approval: { }
";

fn ev(t: i64, body: Body) -> Event {
    Event {
        run_id: "r1".into(),
        time_ms: t,
        body: Some(body),
    }
}

fn run() -> (RunState, Vec<Event>) {
    let sub = v1::RunSubmitted {
        plan_yaml: PLAN.into(),
        plan_file: "tiny.yaml".into(),
        inputs: [("token".to_string(), "s3cret".to_string())].into(),
        ..Default::default()
    };
    let (mut st, _) = RunState::submitted("r1", &sub, 1_000).expect("plan loads");
    let (claim1, _) = crate::run::claims::test_claim("a", "dev", 1, "w0");
    let (claim2, claim_proof) = crate::run::claims::test_claim("a", "dev", 2, "w1");
    let events = vec![
        ev(1_000, Body::RunSubmitted(sub)),
        ev(1_005, Body::TaskStarted(claim1)),
        ev(
            1_010,
            Body::TaskLost(v1::TaskLost {
                task_id: "a".into(),
                attempt: 1,
                queue_seq: 1,
                ..Default::default()
            }),
        ),
        ev(1_015, Body::TaskStarted(claim2)),
        ev(
            1_020,
            Body::TaskFinished(v1::TaskFinished {
                task_id: "a".into(),
                attempt: 2,
                ok: true,
                exit_code: Some(0),
                report_json: "{\"result\":\"ok\"}".into(),
                worker: "w1".into(),
                claim_proof,
                artifacts: vec![v1::Artifact {
                    path: "out.txt".into(),
                    size: 3,
                    sha256: "ab".repeat(32),
                    object: "r1/a/2/out.txt".into(),
                }],
                ..Default::default()
            }),
        ),
        ev(
            1_030,
            Body::Decision(v1::Decision {
                approve: true,
                by: "alice".into(),
                reason: "reviewed".into(),
                task_id: String::new(),
            }),
        ),
        ev(
            1_040,
            Body::RunFinished(baton_proto::kinds::run_finished(
                v1::RunStatus::Succeeded,
                String::new(),
            )),
        ),
    ];
    for e in &events[1..] {
        st.apply(e);
    }
    (st, events)
}

#[test]
fn log_digest_is_sha256_of_lines_each_followed_by_newline() {
    let mut h = LogHasher::default();
    h.add("a", 2, b"hello");
    h.add("b", 1, b"other");
    h.add("a", 2, b"world");
    let d = h.finish();
    assert_eq!(d[&("a".into(), 2)].sha256, sha256_hex(b"hello\nworld\n"));
    assert_eq!(d[&("a".into(), 2)].lines, 2);
    assert_eq!(d[&("b".into(), 1)].sha256, sha256_hex(b"other\n"));
    assert_eq!(
        empty_log().sha256,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn statement_holds_plan_hash_attempts_approvals_and_decisions() {
    let (st, events) = run();
    let mut h = LogHasher::default();
    h.add("a", 2, b"hi");
    let head = AuditHead {
        n: 4,
        hash: "cd".repeat(32),
    };
    let s = assemble(&st, &events, &h.finish(), Some(head.clone()));
    assert_eq!(s.type_, STATEMENT_TYPE);
    assert_eq!(s.subject[0].name, "plan/tiny");
    assert_eq!(s.subject[0].digest["sha256"], sha256_hex(PLAN.as_bytes()));
    assert_eq!(s.subject[1].name, "artifact/r1/a/2/out.txt");
    let p = &s.predicate;
    assert_eq!(p.plan.sha256, sha256_hex(PLAN.as_bytes()));
    assert_eq!(p.input_names, vec!["token"]);
    let a = &p.tasks[0];
    assert_eq!(a.task_id, "a");
    assert_eq!(a.attempts.len(), 2);
    assert_eq!(a.attempts[0].outcome, "lost");
    assert_eq!(a.attempts[0].log, empty_log());
    assert_eq!(a.attempts[1].outcome, "finished");
    assert!(a.attempts[1].ok);
    assert_eq!(a.attempts[1].log.sha256, sha256_hex(b"hi\n"));
    assert_eq!(
        a.attempts[1].report_sha256,
        sha256_hex(b"{\"result\":\"ok\"}")
    );
    assert_eq!(p.approvals.len(), 1);
    assert_eq!(
        (p.approvals[0].by.as_str(), p.approvals[0].reason.as_str()),
        ("alice", "reviewed")
    );
    assert_eq!(p.approvals[0].time_ms, 1_030);
    assert!(matches!(
        p.decisions.last(),
        Some(DecisionEvidence::End { status, .. }) if status == "succeeded"
    ));
    assert_eq!(p.audit_head, Some(head));
}

#[test]
fn no_input_value_reaches_the_evidence() {
    let (st, events) = run();
    let s = assemble(&st, &events, &BTreeMap::new(), None);
    let text = serde_json::to_string(&s).unwrap();
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("\"audit_head\":null"), "{text}");
}

#[test]
fn sealed_statement_verifies_and_reads_back_equal() {
    let (st, events) = run();
    let s = assemble(&st, &events, &BTreeMap::new(), None);
    let key = SigningKey::from_bytes(&[3; 32]);
    let body = serde_json::to_vec(&s).unwrap();
    let bytes = dsse::to_canonical(&dsse::sign(dsse::PAYLOAD_TYPE, &body, &key));
    assert_eq!(verify(&bytes, &key.verifying_key()).unwrap(), s);
    // A statement of another type, even well signed, is refused.
    let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["predicateType"] = "https://example.com/other".into();
    let env = dsse::sign(dsse::PAYLOAD_TYPE, &serde_json::to_vec(&v).unwrap(), &key);
    let e = verify(&dsse::to_canonical(&env), &key.verifying_key()).unwrap_err();
    assert!(e.to_string().contains("predicateType"), "{e}");
}

#[test]
fn a_result_the_fold_refused_is_no_evidence() {
    let (st, mut events) = run();
    // A forged success for attempt 2, ahead of the real one, under the
    // claimer's name but without its secret.
    let forged = ev(
        1_016,
        Body::TaskFinished(v1::TaskFinished {
            task_id: "a".into(),
            attempt: 2,
            ok: false,
            report_json: "{\"result\":\"forged\"}".into(),
            worker: "w1".into(),
            claim_proof: hex::encode("not the secret"),
            ..Default::default()
        }),
    );
    events.insert(4, forged);
    let s = assemble(&st, &events, &BTreeMap::new(), None);
    let shown = serde_json::to_string(&s).unwrap();
    assert!(
        !shown.contains(&sha256_hex(b"{\"result\":\"forged\"}")),
        "{shown}"
    );
    let a = &s.predicate.tasks[0];
    assert!(a.attempts[1].ok, "the real result stands");
}
