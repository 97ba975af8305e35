//! The worker under its supervisor, against a real nats-server: when its
//! registry can no longer register it (the workers bucket is gone), the
//! worker stops at once with that error instead of running on unseen;
//! stopped by its caller, it stops cleanly and removes its entry.

use std::time::{Duration, Instant};

use baton_proto::subjects::WORKERS_BUCKET;
use baton_proto::topology::TopologyOptions;
use baton_test_support::NatsServer;
use baton_worker::runtime::NoopRuntime;
use tokio_util::sync::CancellationToken;

/// A worker whose registry refreshes every 300 ms (a third of the TTL).
async fn build(nats: &NatsServer, id: &str) -> baton_worker::Worker {
    baton_worker::Options {
        nats_url: nats.url(),
        roles: vec!["dev".into()],
        worker_id: id.into(),
        grace: Duration::from_secs(2),
        topology: TopologyOptions {
            worker_ttl: Duration::from_millis(900),
            ..Default::default()
        },
        ..Default::default()
    }
    .build(NoopRuntime::new().into())
    .await
    .expect("worker builds")
}

async fn registered(js: &async_nats::jetstream::Context, id: &str) -> bool {
    match js.get_key_value(WORKERS_BUCKET).await {
        Ok(kv) => kv.get(id).await.ok().flatten().is_some(),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_registry_bucket_is_deleted_stops_within_a_second_with_its_error() {
    let nats = NatsServer::start();
    let w = build(&nats, "w-doomed").await;
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let cancel = CancellationToken::new();
    let run = tokio::spawn(w.run(cancel.clone()));
    baton_test_support::assert_eventually!(
        Duration::from_secs(5),
        registered(&js, "w-doomed").await,
        "the worker never registered"
    );
    js.delete_key_value(WORKERS_BUCKET)
        .await
        .expect("workers bucket deleted");
    let deleted = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(1), run)
        .await
        .expect("the worker stopped within a second")
        .expect("the worker's task did not panic");
    let e = r.expect_err("a worker whose registry failed returns an error");
    println!("stopped {:?} after the deletion: {e}", deleted.elapsed());
    assert!(
        e.to_string().contains(WORKERS_BUCKET),
        "the error names the bucket: {e}"
    );
    assert!(
        !cancel.is_cancelled(),
        "stopped by its own failure, not by its caller"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_by_its_caller_stops_cleanly_and_removes_its_entry() {
    let nats = NatsServer::start();
    let w = build(&nats, "w-polite").await;
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let cancel = CancellationToken::new();
    let run = tokio::spawn(w.run(cancel.clone()));
    baton_test_support::assert_eventually!(
        Duration::from_secs(5),
        registered(&js, "w-polite").await,
        "the worker never registered"
    );
    // Several refreshes: a registry that works does not stop the worker.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!run.is_finished(), "the worker stopped by itself");
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("stopped within 5 s")
        .unwrap()
        .expect("a worker stopped by its caller returns Ok");
    assert!(!registered(&js, "w-polite").await, "its entry was removed");
}
