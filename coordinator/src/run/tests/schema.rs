//! A successful result is checked against its role's declared outputs.

use baton_proto::v1;

use super::*;

const REVIEW: &str = r#"
name: review
inputs:
  version:
roles:
  reviewer:
    image: img
    inputs:
      target: { type: string, required: true }
    outputs:
      verdict:  { type: string, enum: [approve, request_changes], required: true }
      findings: { type: integer, required: true }
phases:
  - id: one
    tasks:
      - id: check
        role: reviewer
        retries: 1
        with: { target: "src/${{ inputs.version }}" }
        run: ["review"]
"#;

#[test]
fn mismatching_result_fails_the_attempt_with_the_schema_message() {
    let (mut sim, cmds) = Sim::new(REVIEW);
    let d = dispatches(&cmds)[0].clone();
    assert_eq!(
        d.env["BATON_INPUT_TARGET"], "src/v3.0.0",
        "with: is rendered into env"
    );
    let bad = r#"{"result":"ok","outputs":{"verdict":"maybe","findings":"3","extra":1}}"#;
    let cmds = sim.finish("check", 1, true, bad);
    assert_eq!(sim.status("check"), TaskStatus::RetryWait, "retries apply");
    assert!(cmds.iter().any(|c| matches!(c, Command::StartTimer { .. })));
    sim.apply(Body::TimerFired(v1::TimerFired {
        task_id: "check".into(),
        attempt: 1,
        ..Default::default()
    }));
    sim.finish("check", 2, true, bad);
    assert_eq!(sim.status("check"), TaskStatus::Failed);
    assert_eq!(
        sim.st.tasks["check"].error,
        "result does not match role reviewer's output schema: \
         output \"findings\" is \"3\" (a string), expected an integer; \
         output \"verdict\" is \"maybe\", expected one of approve, request_changes; \
         output \"extra\" is not declared by role reviewer (declared: findings, verdict)"
    );
}

#[test]
fn matching_result_passes() {
    let (mut sim, _) = Sim::new(REVIEW);
    sim.finish(
        "check",
        1,
        true,
        r#"{"result":"ok","outputs":{"verdict":"approve","findings":2}}"#,
    );
    assert_eq!(sim.status("check"), TaskStatus::Succeeded);
    assert_eq!(sim.st.tasks["check"].error, "");
}

#[test]
fn registered_roles_of_the_submission_are_used_on_replay() {
    let plan = "name: p\nphases:\n  - id: one\n    tasks:\n      - { id: a, role: qa, run: [x] }\n";
    let sub = v1::RunSubmitted {
        plan_yaml: plan.into(),
        plan_file: "plan.yaml".into(),
        roles: [(
            "qa".to_string(),
            "image: img\noutputs:\n  n: { type: integer, required: true }\n".to_string(),
        )]
        .into(),
        ..Default::default()
    };
    let (mut st, _) = RunState::submitted("r1", &sub, 1_000).expect("plan loads");
    let (claim, claim_proof) = crate::run::claims::test_claim("a", "qa", 1, "w1");
    st.apply(&Event {
        run_id: "r1".into(),
        time_ms: 1_005,
        body: Some(Body::TaskStarted(claim)),
    });
    st.apply(&Event {
        run_id: "r1".into(),
        time_ms: 1_010,
        body: Some(Body::TaskFinished(v1::TaskFinished {
            task_id: "a".into(),
            attempt: 1,
            ok: true,
            report_json: r#"{"outputs":{}}"#.into(),
            worker: "w1".into(),
            claim_proof,
            ..Default::default()
        })),
    });
    assert_eq!(st.tasks["a"].status, TaskStatus::Failed);
    assert!(st.tasks["a"]
        .error
        .contains("output \"n\" is missing (required by role qa)"));
}
