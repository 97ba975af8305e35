use super::*;

fn ev(body: Body) -> v1::Event {
    v1::Event {
        run_id: "r1".into(),
        time_ms: 42,
        body: Some(body),
    }
}

#[test]
fn an_approval_names_who_and_why() {
    let e = from_event(
        &ev(Body::Decision(v1::Decision {
            approve: true,
            by: "alice".into(),
            reason: "reviewed the diff".into(),
            task_id: String::new(),
        })),
        7,
        "coord-1",
    )
    .unwrap();
    assert_eq!((e.kind, e.actor.as_str()), ("approved", "alice"));
    assert_eq!(
        (e.reason.as_str(), e.event_seq, e.time_ms),
        ("reviewed the diff", 7, 42)
    );
    let rejected = from_event(
        &ev(Body::Decision(v1::Decision {
            approve: false,
            ..Default::default()
        })),
        8,
        "c",
    )
    .unwrap();
    assert_eq!(
        (rejected.kind, rejected.actor.as_str()),
        ("rejected", "unknown")
    );
}

#[test]
fn a_submission_names_the_plan_by_hash_never_its_inputs() {
    let e = from_event(
        &ev(Body::RunSubmitted(v1::RunSubmitted {
            plan_yaml: "name: p\n".into(),
            plan_file: "p.yaml".into(),
            inputs: [("token".to_string(), "s3cr3t".to_string())].into(),
            submitted_by: "bob".into(),
            trigger: "grpc".into(),
            ..Default::default()
        })),
        1,
        "c",
    )
    .unwrap();
    assert_eq!(
        (e.kind, e.actor.as_str(), e.subject.as_str()),
        ("submitted", "bob", "p.yaml")
    );
    assert_eq!(e.detail["plan_sha256"].len(), 64);
    assert!(!format!("{e:?}").contains("s3cr3t"));
}

#[test]
fn gate_results_name_the_evaluator_and_verdict() {
    let e = from_event(
        &ev(Body::GateEvaluated(v1::GateEvaluated {
            phase_id: "test".into(),
            gate_index: 1,
            round: 2,
            verdict: v1::Verdict::Fail as i32,
            reasons: vec!["2 < 3".into(), "x".into()],
            kind: "expr".into(),
            retry_at_ms: 0,
        })),
        9,
        "c",
    )
    .unwrap();
    assert_eq!(
        (e.kind, e.actor.as_str(), e.subject.as_str()),
        ("gate", "gate:expr", "test#1")
    );
    assert_eq!(
        (e.detail["verdict"].as_str(), e.reason.as_str()),
        ("fail", "2 < 3; x")
    );
}

#[test]
fn phase_decisions_are_the_coordinators_and_progress_is_skipped() {
    let phase = |status: &str| {
        let record = |p| from_event(&ev(Body::PhaseChanged(p)), 3, "coord-1");
        let new = kinds::phase_changed("p".into(), status.parse().unwrap(), "r".into());
        // An event written before the enum: the same record.
        #[allow(deprecated)] // an event written before `phase_status`
        let old = v1::PhaseChanged {
            phase_id: "p".into(),
            status: status.into(),
            reason: "r".into(),
            ..Default::default()
        };
        assert_eq!(record(old), record(new.clone()), "{status}");
        record(new)
    };
    let kinds: Vec<_> = ["passed", "rolled_back", "failed", "retrying", "skipped"]
        .iter()
        .map(|s| phase(s).unwrap())
        .map(|e| (e.kind, e.actor))
        .collect();
    assert_eq!(kinds[0], ("promoted", "coord-1".to_string()));
    assert_eq!(kinds[1].0, "rolled_back");
    assert_eq!(kinds[2].0, "phase_failed");
    for s in [
        "running",
        "gating",
        "holding",
        "waiting",
        "awaiting_approval",
    ] {
        assert_eq!(phase(s), None, "{s}");
    }
    assert_eq!(
        from_event(&ev(Body::TimerFired(Default::default())), 4, "c"),
        None
    );
}

#[test]
fn incidents_leave_the_webhook_out_and_long_errors_are_clipped() {
    let i = from_event(
        &ev(Body::Incident(v1::Incident {
            kind: "halt".into(),
            webhook: "https://hooks.example/T0K3N".into(),
            reasons: vec!["down".into()],
            ..Default::default()
        })),
        5,
        "c",
    )
    .unwrap();
    assert!(!format!("{i:?}").contains("T0K3N"));
    let f = from_event(
        &ev(Body::TaskFinished(v1::TaskFinished {
            task_id: "t".into(),
            ok: false,
            error: "e".repeat(5000),
            exit_code: Some(3),
            ..Default::default()
        })),
        6,
        "c",
    )
    .unwrap();
    assert_eq!((f.kind, f.detail["exit_code"].as_str()), ("completed", "3"));
    assert!(f.reason.chars().count() <= MAX_TEXT + 10);
}

#[test]
fn a_run_end_records_its_status_by_name_from_events_of_either_shape() {
    let new = kinds::run_finished(v1::RunStatus::RolledBack, "phase deploy failed".into());
    #[allow(deprecated)] // an event written before `run_status`
    let old = v1::RunFinished {
        status: "rolled_back".into(),
        reason: "phase deploy failed".into(),
        ..Default::default()
    };
    let record = |f| from_event(&ev(Body::RunFinished(f)), 9, "coord-1").unwrap();
    let e = record(new);
    assert_eq!(
        (e.kind, e.detail["status"].as_str()),
        ("finished", "rolled_back")
    );
    assert_eq!(record(old), e);
}
