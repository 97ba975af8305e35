//! A coordinator stopped in the middle of a run loses nothing: the next one
//! picks the run up from its snapshot and the events after it.

use std::time::Duration;

use baton_proto::v1;
use baton_test_support::NatsServer;
use tokio_util::sync::CancellationToken;

use crate::support::*;

async fn start_coordinator(
    url: &str,
) -> (
    baton_proto::client::Admin,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let (token, tokens) = baton::local::admin_token(ADMIN_NAME);
    let (c, h) = baton_coordinator::Options {
        nats_url: url.into(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        auth: baton_coordinator::auth::Auth::Tokens(tokens),
        ..Default::default()
    }
    .build()
    .await
    .expect("coordinator builds");
    let stop = CancellationToken::new();
    let t = stop.clone();
    let j = tokio::spawn(async move { c.run(t).await.expect("coordinator runs") });
    let admin = client_at(h.grpc_addr, &token).await;
    (admin, stop, j)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_coordinator_finishes_the_run_in_flight() {
    let nats = NatsServer::start();
    // The gates and a worker live on; only the coordinator is restarted.
    let root = CancellationToken::new();
    let gates = baton_gates::Options {
        nats_url: nats.url(),
        ..Default::default()
    }
    .build()
    .await
    .unwrap();
    let worker = baton_worker::Options {
        nats_url: nats.url(),
        worker_id: worker_id(),
        roles: vec!["dev".into()],
        concurrency: 2,
        ..Default::default()
    }
    .build(runtime(Rt::Docker).await)
    .await
    .unwrap();
    let t = root.child_token();
    tokio::spawn(async move { gates.run(t).await });
    let t = root.child_token();
    tokio::spawn(async move { worker.run(t).await });
    let _stop_all = root.drop_guard();
    let (admin, stop, join) = start_coordinator(&nats.url()).await;
    let run = submit_to(&admin, SLOW_THEN_TEMPLATED, "restart.yaml").await;
    baton_test_support::assert_eventually!(
        Duration::from_secs(60),
        admin
            .clone()
            .get_run(v1::GetRunRequest {
                run_id: run.clone()
            })
            .await
            .is_ok_and(|r| r
                .into_inner()
                .tasks
                .iter()
                .any(|t| t.id == "slow" && t.task_status() == v1::TaskStatus::Running)),
        "slow never ran"
    );
    stop.cancel();
    join.await.unwrap();
    let (admin2, _stop2, _j2) = start_coordinator(&nats.url()).await;
    let r = baton::local::wait_end(&admin2, &run, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(r.run_status(), v1::RunStatus::Succeeded, "{r:#?}");
    let slow = task(&r, "slow");
    assert_eq!(slow.attempts, 1, "the task was not run again");
    let after: serde_json::Value = serde_json::from_str(&task(&r, "after").result_json).unwrap();
    assert_eq!(
        after["outputs"]["n"], 7,
        "outputs folded before the restart reached the next phase"
    );
}
