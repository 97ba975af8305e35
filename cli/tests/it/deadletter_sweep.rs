//! Work-queue messages the queue gave up on never sit unnoticed: a task
//! message that reached its maximum deliveries while no coordinator heard
//! the advisory is found by the coordinators' sweep, and a gate request no
//! evaluator ever answered fails its gate, saying where the request went.
//!
//! The coordinators (and the worker and gate evaluators a test needs) run
//! here, each started and stopped on its own, on a real nats-server. In the
//! gate test no evaluator runs: the test takes the evaluators' place, as one
//! that takes requests and dies every time.

use std::time::Duration;

use baton_coordinator::auth::Auth;
use baton_proto::client::Admin;
use baton_proto::{subjects, v1};
use baton_test_support::NatsServer;
use tokio_util::sync::CancellationToken;

use crate::support::*;

const ROLE_NOBODY_SERVES: &str = include_str!("fixtures/role-nobody-serves.yaml");

/// One task a worker of role `n0` runs at once (a no-op), then one gate.
const ONE_GATE: &str = "name: one-gate
roles:
  n0: { image: none }
phases:
  - id: only
    tasks:
      - id: t
        role: n0
        run: [\"noop\"]
    gates:
      - expr: \"tasks.t.outputs.n == 0\"
";

/// A coordinator of its own, with an admin client.
struct Coordinator {
    admin: Admin,
    cancel: CancellationToken,
    done: tokio::task::JoinHandle<Result<(), baton_coordinator::Error>>,
}

impl Coordinator {
    async fn start(nats: &NatsServer) -> Coordinator {
        let (token, tokens) = baton::local::admin_token(ADMIN_NAME);
        let opts = baton_coordinator::Options {
            nats_url: nats.url(),
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            auth: Auth::Tokens(tokens),
            ..Default::default()
        };
        let (coordinator, handle) = Box::pin(opts.build()).await.expect("coordinator builds");
        let cancel = CancellationToken::new();
        let done = tokio::spawn(coordinator.run(cancel.clone()));
        let admin = client_at(handle.grpc_addr, &token).await;
        Coordinator {
            admin,
            cancel,
            done,
        }
    }

    /// Stop, handing its runs over, and wait until it has.
    async fn stop(self) {
        self.cancel.cancel();
        self.done
            .await
            .unwrap()
            .expect("the coordinator stops cleanly");
    }
}

/// A no-op worker of role `n0`, until the token is cancelled.
async fn worker(nats: &NatsServer, cancel: CancellationToken) {
    let w = Box::pin(
        baton_worker::Options {
            nats_url: nats.url(),
            worker_id: worker_id(),
            roles: vec!["n0".into()],
            ..Default::default()
        }
        .build(runtime(Rt::Noop).await),
    )
    .await
    .expect("worker builds");
    tokio::spawn(w.run(cancel));
}

/// The gate evaluators, until the token is cancelled.
async fn evaluators(nats: &NatsServer, cancel: CancellationToken) {
    let g = Box::pin(
        baton_gates::Options {
            nats_url: nats.url(),
            ..Default::default()
        }
        .build(),
    )
    .await
    .expect("gates build");
    tokio::spawn(g.run(cancel));
}

/// Every `GateEvaluated` of the run in the EVENTS stream, in order (also
/// those published after the run ended, which `WatchRun` does not show).
async fn gate_answers(js: &async_nats::jetstream::Context, run: &str) -> Vec<v1::GateEvaluated> {
    let events = js.get_stream(subjects::EVENTS_STREAM).await.unwrap();
    let subject = baton_proto::kinds::EventKind::GateEvaluated.subject(run);
    let mut out = Vec::new();
    let mut from = 1;
    while let Ok(m) = events
        .get_first_raw_message_by_subject(&subject, from)
        .await
    {
        from = m.sequence + 1;
        if let Ok(v1::Event {
            body: Some(v1::event::Body::GateEvaluated(g)),
            ..
        }) = baton_proto::codec::decode_event(&m.subject, &m.payload)
        {
            out.push(g);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_message_spent_while_no_coordinator_listened_is_swept_and_the_run_says_so() {
    let nats = NatsServer::start();
    let a = Coordinator::start(&nats).await;
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let consumer = dying_consumer(
        &js,
        subjects::TASKS_STREAM,
        &subjects::role_consumer("nobody"),
        &subjects::role_tasks("nobody"),
    )
    .await;
    let run = submit_to(&a.admin, ROLE_NOBODY_SERVES, "orphan.yaml").await;
    baton_test_support::assert_eventually!(
        Duration::from_secs(10),
        messages(&js, subjects::TASKS_STREAM).await == 1,
        "the task was never queued"
    );
    // Nobody listens for advisories while the message is spent.
    a.stop().await;
    exhaust(&consumer, 1).await;
    assert_eq!(
        messages(&js, subjects::TASKS_STREAM).await,
        1,
        "the spent message stays in the queue"
    );

    // A coordinator starting afterwards never hears that advisory.
    let b = Coordinator::start(&nats).await;
    let stop_gates = CancellationToken::new();
    evaluators(&nats, stop_gates.clone()).await;
    assert_rolled_back_on_a_dead_letter(&b.admin, &run, "the run never learnt of its spent task")
        .await;
    assert_eq!(messages(&js, subjects::DEADLETTER_STREAM).await, 1);
    assert_eq!(messages(&js, subjects::TASKS_STREAM).await, 0);
    stop_gates.cancel();
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_request_no_evaluator_answers_fails_its_gate_saying_where_it_went() {
    let nats = NatsServer::start();
    let c = Coordinator::start(&nats).await;
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    // The gate evaluators' consumer, of evaluators that die on every request.
    let gates = dying_consumer(
        &js,
        subjects::GATES_STREAM,
        subjects::GATES_CONSUMER,
        subjects::GATES_ALL,
    )
    .await;
    let stop_worker = CancellationToken::new();
    worker(&nats, stop_worker.clone()).await;
    let run = submit_to(&c.admin, ONE_GATE, "one-gate.yaml").await;
    // Two requests: the stage's implicit `tasks` gate (#0) and the `expr` (#1).
    exhaust(&gates, 2).await;

    let r = baton::local::wait_end(&c.admin, &run, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("the gate was never failed: {e}"));
    assert_ne!(r.run_status(), v1::RunStatus::Succeeded, "{r:#?}");
    let phase = r.phases.iter().find(|p| p.id == "only").unwrap();
    assert!(
        phase
            .reason
            .contains("of phase only: the request was delivered 2 times and never answered")
            && phase.reason.contains("see BATON_DEADLETTER seq ")
            && (phase.reason.contains("gate tasks #0 of phase only")
                || phase.reason.contains("gate expr #1 of phase only")),
        "{}",
        phase.reason
    );
    // The requests moved: kept in DEADLETTER under their kinds, gone from the
    // queue (the second may move after the run ended on the first).
    baton_test_support::assert_eventually!(
        Duration::from_secs(5),
        messages(&js, subjects::GATES_STREAM).await == 0
            && messages(&js, subjects::DEADLETTER_STREAM).await == 2,
        "the gate requests were not both moved"
    );
    let dlq = js.get_stream(subjects::DEADLETTER_STREAM).await.unwrap();
    for (kind, index) in [("tasks", 0), ("expr", 1)] {
        let raw = dlq
            .get_last_raw_message_by_subject(&format!("baton.dlq.gate.{kind}"))
            .await
            .unwrap_or_else(|e| panic!("no dead-lettered {kind} request: {e}"));
        let req = baton_proto::codec::decode::<v1::GateRequest>(&raw.payload).unwrap();
        assert_eq!(
            (req.run_id.as_str(), req.phase_id.as_str(), req.gate_index),
            (run.as_str(), "only", index)
        );
    }
    // One answer per gate: the coordinator's, in the evaluators' place.
    let answers = gate_answers(&js, &run).await;
    assert_eq!(answers.len(), 2, "{answers:#?}");
    assert!(
        answers.iter().all(|a| a.verdict() == v1::Verdict::Fail),
        "{answers:#?}"
    );
    stop_worker.cancel();
    c.stop().await;
}
