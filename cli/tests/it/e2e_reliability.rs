//! Nothing sits unnoticed: dead letters, the worker registry, and a NATS
//! restart in the middle of many runs.

use std::time::Duration;

use baton_proto::{subjects, v1};

use crate::support::*;

const ROLE_NOBODY_SERVES: &str = include_str!("fixtures/role-nobody-serves.yaml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_delivered_too_often_is_dead_lettered_and_the_run_says_so() {
    let c = Cluster::start(Rt::Process).await;
    let client = async_nats::connect(c.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    // Two workers of role `nobody` that each take the task and die before
    // answering: a consumer that fetches and never acknowledges.
    let consumer = dying_consumer(
        &js,
        subjects::TASKS_STREAM,
        &subjects::role_consumer("nobody"),
        &subjects::role_tasks("nobody"),
    )
    .await;
    let run = c.submit(ROLE_NOBODY_SERVES, &[]).await;
    // Delivered twice, then spent: JetStream notices the exhausted message
    // when it would deliver it again, that is while a pull waits.
    exhaust(&consumer, 1).await;

    assert_rolled_back_on_a_dead_letter(&c.admin, &run, "the run never learnt of its dead letter")
        .await;
    // The message moved: kept in DEADLETTER, gone from the work queue.
    let mut dlq = js.get_stream(subjects::DEADLETTER_STREAM).await.unwrap();
    assert_eq!(dlq.info().await.unwrap().state.messages, 1);
    let raw = dlq
        .get_last_raw_message_by_subject(&subjects::deadletter("nobody"))
        .await
        .unwrap();
    let d = baton_proto::codec::decode::<v1::TaskDispatch>(&raw.payload).unwrap();
    assert_eq!(
        (d.run_id.as_str(), d.task_id.as_str()),
        (run.as_str(), "lonely")
    );
    let mut tasks = js.get_stream(subjects::TASKS_STREAM).await.unwrap();
    assert_eq!(tasks.info().await.unwrap().state.messages, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_listed_and_a_role_nobody_serves_is_named() {
    let c = Cluster::start(Rt::Process).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["workers", "--json", "--server", &c.server()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let ws: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ws = ws.as_array().unwrap();
    assert_eq!(ws.len(), 1, "{ws:?}");
    assert_eq!(ws[0]["roles"], serde_json::json!(ROLES));
    assert_eq!(ws[0]["runtime"], "process");

    let run = c.submit(ROLE_NOBODY_SERVES, &[]).await;
    baton_test_support::assert_eventually!(
        Duration::from_secs(10),
        c.get(&run)
            .await
            .waiting
            .contains("no worker for role nobody"),
        "status never said nobody serves role `nobody`: {:?}",
        c.get(&run).await.waiting
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["status", &run, "--server", &c.server()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "waiting: no worker for role nobody (start one: baton worker --roles nobody)"
        ),
        "{text}"
    );
}

const QUICK: &str = include_str!("fixtures/quick.yaml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_in_the_middle_of_100_runs_loses_none() {
    let mut c = Cluster::start_with(Rt::Process, Default::default(), 16).await;
    let mut runs = Vec::new();
    for _ in 0..100 {
        runs.push(c.submit(QUICK, &[]).await);
    }
    // Some have finished, most have not.
    baton_test_support::assert_eventually!(
        Duration::from_secs(60),
        {
            let mut done = 0;
            for r in runs.iter().take(20) {
                done += usize::from(c.get(r).await.run_status() != v1::RunStatus::Running);
            }
            done >= 3
        },
        "no run finished before the restart"
    );
    c.nats.restart();
    let mut failed = Vec::new();
    for r in &runs {
        match baton::local::wait_end(&c.admin, r, Duration::from_secs(120)).await {
            Ok(run) if run.run_status() == v1::RunStatus::Succeeded => {}
            Ok(run) => failed.push(format!("{r}: {} {}", run.run_status(), run.reason)),
            Err(e) => failed.push(e),
        }
    }
    assert!(
        failed.is_empty(),
        "{} of 100 runs did not succeed: {failed:#?}",
        failed.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comma_separated_server_list_connects_to_whichever_answers() {
    let nats = baton_test_support::NatsServer::start();
    let list = format!("nats://127.0.0.1:1, {}", nats.url());
    let client = baton_proto::bus::connect(&list, "list-test")
        .await
        .expect("the live server in the list is used");
    client.flush().await.unwrap();
    let err = baton_proto::bus::connect("nats://127.0.0.1:1,nats://host:notaport", "bad")
        .await
        .unwrap_err();
    assert!(err.contains("`nats://host:notaport`"), "{err}");
}
