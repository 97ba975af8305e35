//! The gates on a real NATS server: start-up makes every stream and bucket
//! of the topology (and again, on a server that has them), and a message on
//! the gate queue that is no gate request is dropped, not redelivered forever.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use baton_proto::subjects;
use baton_test_support::NatsServer;
use tokio_util::sync::CancellationToken;

async fn build(url: &str) -> baton_gates::Gates {
    baton_gates::Options {
        nats_url: url.into(),
        ..Default::default()
    }
    .build()
    .await
    .expect("the gates start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_makes_the_topology_and_takes_it_as_it_is_the_second_time() {
    let nats = NatsServer::start();
    let _first = build(&nats.url()).await;
    let _second = build(&nats.url()).await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    for (stream, subject) in [
        (subjects::EVENTS_STREAM, subjects::EVENTS_ALL),
        (subjects::TASKS_STREAM, subjects::TASKS_ALL),
        (subjects::GATES_STREAM, subjects::GATES_ALL),
        (subjects::LOGS_STREAM, subjects::LOGS_ALL),
        (subjects::DEADLETTER_STREAM, subjects::DEADLETTER_ALL),
        (subjects::AUDIT_STREAM, subjects::AUDIT_ALL),
    ] {
        let mut s = js.get_stream(stream).await.expect(stream);
        let info = s.info().await.unwrap();
        assert_eq!(info.config.subjects, vec![subject.to_string()], "{stream}");
    }
    let events = js.get_stream(subjects::EVENTS_STREAM).await.unwrap();
    assert!(events.cached_info().config.allow_direct);
    let audit = js.get_stream(subjects::AUDIT_STREAM).await.unwrap();
    assert!(audit.cached_info().config.deny_delete && audit.cached_info().config.deny_purge);
    for bucket in [
        subjects::PLANS_BUCKET,
        subjects::RUNS_BUCKET,
        subjects::LEASES_BUCKET,
        subjects::WORKERS_BUCKET,
        subjects::ROLES_BUCKET,
        subjects::HOOK_NONCES_BUCKET,
    ] {
        js.get_key_value(bucket).await.expect(bucket);
    }
    for store in [subjects::ARTIFACTS_BUCKET, subjects::EVIDENCE_BUCKET] {
        js.get_object_store(store).await.expect(store);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_gate_request_is_dropped() {
    let nats = NatsServer::start();
    let gates = build(&nats.url()).await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    js.publish(subjects::gate("expr"), b"\xff\xff\xff".as_slice().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let running = tokio::spawn(gates.run(cancel.clone()));
    // A work queue forgets what is acknowledged.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = js.get_stream(subjects::GATES_STREAM).await.unwrap();
        if s.info().await.unwrap().state.messages == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the undecodable request is still queued"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    running.await.unwrap().expect("the gates stop cleanly");
}
