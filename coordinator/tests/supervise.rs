//! The coordinator under its supervisor, against a real nats-server: a part
//! that fails stops the whole coordinator at once, with that part's error;
//! stopped by its caller, it stops cleanly.

use std::time::{Duration, Instant};

use baton_coordinator::auth::Auth;
use baton_test_support::NatsServer;
use tokio_util::sync::CancellationToken;

async fn build(nats: &NatsServer) -> (baton_coordinator::Coordinator, baton_coordinator::Handle) {
    baton_coordinator::Options {
        nats_url: nats.url(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        auth: Auth::Off,
        lease_ttl: Duration::from_secs(1),
        ..Default::default()
    }
    .build()
    .await
    .expect("coordinator builds")
}

/// The engine's recovery reads the runs bucket; with the bucket gone it
/// fails. Before, the lease loop went on renewing and the gRPC server went on
/// serving a coordinator that folded nothing, and `run` never returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_whose_engine_cannot_recover_stops_within_a_second_with_its_error() {
    let nats = NatsServer::start();
    let (c, handle) = build(&nats).await;
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    js.delete_key_value(baton_proto::subjects::RUNS_BUCKET)
        .await
        .expect("runs bucket deleted");
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(1), c.run(cancel.clone()))
        .await
        .expect("the coordinator stopped within a second");
    let e = r.expect_err("a coordinator whose engine failed returns an error");
    assert!(matches!(e, baton_coordinator::Error::Bus(_)), "{e:?}");
    assert!(
        !cancel.is_cancelled(),
        "stopped by its own failure, not by its caller"
    );
    println!("stopped after {:?}: {e}", started.elapsed());
    // Nothing serves on: the gRPC listener is closed.
    assert!(
        tokio::net::TcpStream::connect(handle.grpc_addr)
            .await
            .is_err(),
        "the gRPC server still accepts connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_stopped_by_its_caller_stops_cleanly() {
    let nats = NatsServer::start();
    let (c, handle) = build(&nats).await;
    let cancel = CancellationToken::new();
    let run = tokio::spawn(c.run(cancel.clone()));
    baton_test_support::assert_eventually!(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(handle.grpc_addr)
            .await
            .is_ok(),
        "gRPC never served"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!run.is_finished(), "the coordinator stopped by itself");
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("stopped within 5 s")
        .unwrap()
        .expect("a coordinator stopped by its caller returns Ok");
}
