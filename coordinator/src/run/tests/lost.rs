//! Attempts lost with their worker, dead-lettered, or answering late.

use super::*;

fn lost(sim: &mut Sim, task: &str, attempt: u32) -> Vec<Command> {
    sim.claim(task, attempt);
    sim.apply(Body::TaskLost(v1::TaskLost {
        task_id: task.into(),
        attempt,
        deliveries: 2,
        worker: "w2".into(),
        // The message the claim names (see `claims::test_claim`).
        queue_seq: u64::from(attempt),
    }))
}

#[test]
fn a_lost_attempt_is_run_again_at_once_as_the_next_attempt() {
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    let cmds = lost(&mut sim, "types", 1);
    assert_eq!(dispatched(&cmds), vec![("types".into(), 2)]);
    assert_eq!(sim.status("types"), TaskStatus::Queued);
    assert_eq!(sim.st.tasks["types"].lost, 1);
    assert!(sim.st.tasks["types"].error.contains("attempt 1 lost"));
    // The same report again (a second redelivery) changes nothing.
    assert!(lost(&mut sim, "types", 1).is_empty());
    assert_eq!(sim.st.tasks["types"].attempt, 2);
}

#[test]
fn a_late_result_of_a_lost_attempt_is_recorded_not_folded() {
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    lost(&mut sim, "types", 1);
    let cmds = sim.finish(
        "types",
        1,
        true,
        r#"{"result":"ok","outputs":{"modules":1}}"#,
    );
    assert!(cmds.is_empty(), "the stale result moved the run: {cmds:?}");
    let t = &sim.st.tasks["types"];
    assert_eq!(t.status, TaskStatus::Queued, "attempt 2 still decides");
    assert!(t.outputs.is_empty(), "stale outputs were folded");
    assert_eq!(t.stale.len(), 1);
    assert_eq!((t.stale[0].attempt, t.stale[0].ok), (1, true));
    let cmds = sim.finish("types", 2, true, TYPES_OK);
    assert_eq!(
        dispatched(&cmds),
        vec![("scan".into(), 1), ("tests".into(), 1)]
    );
    assert_eq!(sim.st.tasks["types"].outputs["modules"], 12);
    let run = view::to_proto(&sim.st);
    let types = run.tasks.iter().find(|t| t.id == "types").unwrap();
    assert_eq!((types.lost, types.stale_results.len()), (1, 1));
}

#[test]
fn lost_attempts_do_not_use_up_retries() {
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    sim.finish("types", 1, true, TYPES_OK);
    // scan has `retries: 2`: three failures are allowed, losses aside.
    lost(&mut sim, "scan", 1);
    lost(&mut sim, "scan", 2);
    for attempt in 3..=4 {
        let cmds = sim.finish("scan", attempt, false, "");
        assert_eq!(sim.status("scan"), TaskStatus::RetryWait, "{cmds:?}");
        sim.apply(Body::TimerFired(v1::TimerFired {
            task_id: "scan".into(),
            attempt,
            ..Default::default()
        }));
    }
    sim.finish("scan", 5, false, "");
    assert_eq!(sim.status("scan"), TaskStatus::Failed);
    assert_eq!(sim.st.tasks["scan"].attempt, 5);
}

#[test]
fn a_task_that_keeps_losing_its_worker_fails_after_max_lost() {
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    let max = super::super::lost::MAX_LOST;
    for attempt in 1..max {
        assert_eq!(dispatched(&lost(&mut sim, "types", attempt)).len(), 1);
    }
    let cmds = lost(&mut sim, "types", max);
    assert!(dispatched(&cmds).is_empty());
    assert_eq!(sim.status("types"), TaskStatus::Failed);
    assert!(
        sim.st.tasks["types"]
            .error
            .contains("gave up after 5 lost attempts"),
        "{}",
        sim.st.tasks["types"].error
    );
}

#[test]
fn a_dead_lettered_attempt_fails_the_task_and_says_where_the_message_is() {
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    sim.apply(Body::TaskDeadLettered(v1::TaskDeadLettered {
        task_id: "types".into(),
        attempt: 1,
        deliveries: 5,
        dlq_seq: 42,
    }));
    let t = &sim.st.tasks["types"];
    assert_eq!(t.status, TaskStatus::Failed);
    assert!(t.dead_lettered);
    assert!(
        t.error.contains("BATON_DEADLETTER at sequence 42"),
        "{}",
        t.error
    );
    // Its dependants are skipped and the phase goes to its gates as usual.
    assert_eq!(sim.status("scan"), TaskStatus::Skipped);
}

#[test]
fn rebuilt_messages_equal_the_ones_first_sent() {
    let (mut sim, _) = Sim::new(RELEASE_TRAIN);
    pass_readiness(&mut sim);
    let cmds = sim.decide(true);
    let first = dispatches(&cmds)[0].clone();
    let t = &sim.st.tasks["deploy"];
    let again = sim
        .st
        .dispatch_message("deploy", t.attempt, t.dispatched_ms)
        .unwrap()
        .unwrap();
    assert_eq!(first, again);
}
