//! The sweep and the moves against a real nats-server, with no advisory
//! listener: what the sweep finds, it finds on its own.

use std::sync::Arc;

use async_nats::jetstream::consumer::{pull, AckPolicy, Consumer};
use async_nats::jetstream::AckKind;
use baton_proto::topology::{self, TopologyOptions};
use baton_test_support::NatsServer;

use super::*;

const SETTLE_IN_TESTS: Duration = Duration::from_millis(100);

async fn bus(nats: &NatsServer) -> DeadLetters {
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    let t = topology::ensure(&js, &TopologyOptions::default())
        .await
        .unwrap();
    DeadLetters {
        js,
        tasks: t.tasks,
        gates: t.gates,
        events: t.events,
    }
}

/// A consumer like a role's or the evaluators': 300 ms to answer, 2 deliveries.
async fn consumer(stream: &Stream, name: &str, filter: &str) -> Consumer<pull::Config> {
    stream
        .create_consumer(pull::Config {
            durable_name: Some(name.into()),
            filter_subject: filter.into(),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_millis(300),
            max_deliver: 2,
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn take(c: &Consumer<pull::Config>, expires: Duration) -> Option<jetstream::Message> {
    let mut b = c
        .fetch()
        .max_messages(1)
        .expires(expires)
        .messages()
        .await
        .unwrap();
    b.next().await.map(|m| m.unwrap())
}

/// Take the next message twice and never answer; then pull once more,
/// which is when JetStream notices it is spent (and sends the advisory
/// nobody listens to here). What that last pull got, if anything.
async fn spend_next(c: &Consumer<pull::Config>) -> Option<jetstream::Message> {
    let first = take(c, Duration::from_millis(500))
        .await
        .expect("a message");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = take(c, Duration::from_millis(500))
        .await
        .expect("redelivered");
    assert_eq!(
        again.info().unwrap().stream_sequence,
        first.info().unwrap().stream_sequence
    );
    assert_eq!(again.info().unwrap().delivered, 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    take(c, Duration::from_millis(500)).await
}

/// Keep `m` from being redelivered (as a worker running it does) until dropped.
fn hold(m: jetstream::Message) -> (Arc<jetstream::Message>, tokio::task::JoinHandle<()>) {
    let m = Arc::new(m);
    let held = m.clone();
    let h = tokio::spawn(async move {
        loop {
            let _ = held.ack_with(AckKind::Progress).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (m, h)
}

async fn dispatch(js: &jetstream::Context, task: &str) -> u64 {
    let d = v1::TaskDispatch {
        run_id: "run1".into(),
        task_id: task.into(),
        role: "r".into(),
        attempt: 1,
        ..Default::default()
    };
    js.publish(subjects::task("r", "run1", task), codec::encode(&d))
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

async fn count(s: &Stream) -> u64 {
    s.get_info().await.unwrap().state.messages
}

/// The run's events of `kind`, with their message ids.
async fn events_of(dl: &DeadLetters, kind: EventKind) -> Vec<(String, v1::Event)> {
    let subject = kind.subject("run1");
    let mut out = Vec::new();
    let mut from = 1;
    while let Ok(m) = dl
        .events
        .get_first_raw_message_by_subject(&subject, from)
        .await
    {
        from = m.sequence + 1;
        out.push((
            msg_id_of(&m),
            codec::decode_event(&m.subject, &m.payload).unwrap(),
        ));
    }
    out
}

/// The id a stored message was published under (`Nats-Msg-Id`), or "".
fn msg_id_of(m: &jetstream::message::StreamMessage) -> String {
    m.headers
        .get(async_nats::header::NATS_MESSAGE_ID)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_moves_spent_task_messages_only_and_two_sweeps_move_one_once() {
    let nats = NatsServer::start();
    let dl = bus(&nats).await;
    let c = consumer(&dl.tasks, "role-r", &subjects::role_tasks("r")).await;
    let held_seq = dispatch(&dl.js, "held").await;
    let spent_seq = dispatch(&dl.js, "spent").await;
    // `held` is with a worker, which keeps it; `spent` is given up on.
    let (held, keeping) = hold(take(&c, Duration::from_millis(500)).await.unwrap());
    assert_eq!(held.info().unwrap().stream_sequence, held_seq);
    assert!(spend_next(&c).await.is_none());
    // Never delivered yet.
    let fresh_seq = dispatch(&dl.js, "fresh").await;

    // While an older message is out, the consumer's ack floor stays
    // below the spent one: nothing tells it apart from one in flight.
    assert_eq!(sweep_once(&dl, SETTLE_IN_TESTS).await.unwrap(), 0);
    assert_eq!(count(&dl.tasks).await, 3);
    // Answered: the floor passes the spent message, which is moved.
    keeping.abort();
    held.double_ack().await.unwrap();
    assert_eq!(sweep_once(&dl, SETTLE_IN_TESTS).await.unwrap(), 1);
    let left = dl
        .tasks
        .get_first_raw_message_by_subject("baton.task.>", 1)
        .await
        .unwrap();
    assert_eq!(left.sequence, fresh_seq, "the undelivered message stays");
    assert_eq!(count(&dl.tasks).await, 1);
    assert_eq!(count(&dl.deadletter_stream().await).await, 1);
    let copy = dl
        .deadletter_stream()
        .await
        .get_last_raw_message_by_subject(&subjects::deadletter("r"))
        .await
        .unwrap();
    assert_eq!(
        msg_id_of(&copy),
        subjects::msg_id::deadletter_copy(spent_seq)
    );
    assert_eq!(copy.headers.get("Baton-Deliveries").unwrap().as_str(), "2");
    let lettered = events_of(&dl, EventKind::TaskDeadLettered).await;
    assert_eq!(lettered.len(), 1);
    assert_eq!(
        lettered[0].0,
        subjects::msg_id::dead_lettered("run1", "spent", 1)
    );
    assert_eq!(
        lettered[0].1.body,
        Some(Body::TaskDeadLettered(v1::TaskDeadLettered {
            task_id: "spent".into(),
            attempt: 1,
            deliveries: 2,
            dlq_seq: copy.sequence,
        }))
    );

    // Two coordinators sweeping at once move the next spent message once.
    assert!(spend_next(&c).await.is_none(), "`fresh` is spent too");
    let (a, b) = tokio::join!(
        sweep_once(&dl, SETTLE_IN_TESTS),
        sweep_once(&dl, SETTLE_IN_TESTS)
    );
    assert!(a.unwrap() + b.unwrap() >= 1);
    assert_eq!(count(&dl.tasks).await, 0);
    assert_eq!(
        count(&dl.deadletter_stream().await).await,
        2,
        "one copy each"
    );
    assert_eq!(events_of(&dl, EventKind::TaskDeadLettered).await.len(), 2);
    // And one already moved is skipped.
    assert_eq!(
        move_one(&dl, Queue::Tasks, fresh_seq, 2, FoundBy::Advisory)
            .await
            .unwrap(),
        Moved::Gone
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_gate_request_fails_its_gate_unless_the_evaluators_answered_it() {
    let nats = NatsServer::start();
    let dl = bus(&nats).await;
    let c = consumer(&dl.gates, subjects::GATES_CONSUMER, "").await;
    let request = |gate_index| v1::GateRequest {
        run_id: "run1".into(),
        phase_id: "prod".into(),
        gate_index,
        round: 3,
        ..Default::default()
    };
    // Gate 1's evaluator answered (pending: a window that opens later)
    // but never acknowledged; gate 0's never answered at all.
    let answered = Body::GateEvaluated(v1::GateEvaluated {
        phase_id: "prod".into(),
        gate_index: 1,
        round: 3,
        verdict: v1::Verdict::Pending as i32,
        reasons: vec!["window closed".into()],
        kind: "window".into(),
        retry_at_ms: 1,
    });
    let id1 = subjects::msg_id::gate_result("run1", "prod", 1, 3);
    bus::publish_event(&dl.js, "run1", &id1, answered, "")
        .await
        .unwrap();
    for (kind, i) in [("expr", 0), ("window", 1)] {
        dl.js
            .publish(subjects::gate(kind), codec::encode(&request(i)))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // Each taken twice, never answered.
    for _ in 0..4 {
        take(&c, Duration::from_millis(500))
            .await
            .expect("a request");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(take(&c, Duration::from_millis(500)).await.is_none());

    assert_eq!(sweep_once(&dl, SETTLE_IN_TESTS).await.unwrap(), 2);
    assert_eq!(count(&dl.gates).await, 0);
    let dlq = dl.deadletter_stream().await;
    let copy = dlq
        .get_last_raw_message_by_subject(&subjects::deadletter_gate("expr"))
        .await
        .unwrap();
    assert_eq!(msg_id_of(&copy), subjects::msg_id::deadletter_gate_copy(1));
    dlq.get_last_raw_message_by_subject(&subjects::deadletter_gate("window"))
        .await
        .unwrap();
    let answers = events_of(&dl, EventKind::GateEvaluated).await;
    assert_eq!(
        answers.len(),
        2,
        "gate 1's answer stands alone: {answers:#?}"
    );
    let (id0, ev0) = &answers[1];
    assert_eq!(*id0, subjects::msg_id::gate_result("run1", "prod", 0, 3));
    let Some(Body::GateEvaluated(g)) = &ev0.body else {
        panic!("{ev0:?}")
    };
    assert_eq!((g.gate_index, g.round), (0, 3));
    assert_eq!(g.verdict(), v1::Verdict::Fail);
    assert_eq!(
        g.reasons,
        vec![format!(
            "gate expr #0 of phase prod: the request was delivered 2 times and never answered — see BATON_DEADLETTER seq {}",
            copy.sequence
        )]
    );
    // The evaluators' late answer carries the same id: dropped as a duplicate.
    let late = Body::GateEvaluated(v1::GateEvaluated {
        gate_index: 0,
        verdict: v1::Verdict::Pass as i32,
        ..g.clone()
    });
    let id = subjects::msg_id::gate_result("run1", "prod", 0, 3);
    bus::publish_event(&dl.js, "run1", &id, late, "")
        .await
        .unwrap();
    assert_eq!(events_of(&dl, EventKind::GateEvaluated).await.len(), 2);
}

impl DeadLetters {
    async fn deadletter_stream(&self) -> Stream {
        self.js
            .get_stream(subjects::DEADLETTER_STREAM)
            .await
            .unwrap()
    }
}
