//! Follow streams end with their reader: `baton logs --follow` and
//! `WatchRun` (`baton status --wait`) hold an ordered consumer on the LOGS
//! or EVENTS stream while a client reads; once the client is gone (killed,
//! or its stream dropped), the coordinator stops polling and the consumer
//! is deleted within seconds, not when the run ends or 30 s later.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use baton_proto::{subjects, v1};
use futures::StreamExt;

use crate::support::*;

/// Waits for an approval before its one task: a run that stays running,
/// with no output, for as long as the test likes.
const GATED: &str = include_str!("fixtures/gated.yaml");

/// Follow streams of each kind, and of each client: 2 processes, 2 in-test streams.
const PER_KIND: usize = 4;

async fn consumer_count(js: &async_nats::jetstream::Context, stream: &str) -> usize {
    stream_state(js, stream).await.consumer_count
}

/// (LOGS, EVENTS) consumers now.
async fn counts(js: &async_nats::jetstream::Context) -> (usize, usize) {
    (
        consumer_count(js, subjects::LOGS_STREAM).await,
        consumer_count(js, subjects::EVENTS_STREAM).await,
    )
}

fn baton(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_streams_end_and_drop_their_consumers_within_seconds_of_the_client_leaving() {
    let c = Cluster::start(Rt::Process).await;
    let js = async_nats::jetstream::new(async_nats::connect(c.nats.url()).await.unwrap());
    let run = c.submit(GATED, &[]).await;
    c.wait_waiting(&run, Duration::from_secs(20)).await;
    // Nothing else comes and goes: the engine's own consumers are steady.
    let base = counts(&js).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        counts(&js).await,
        base,
        "consumers changed with nobody following"
    );

    // Clients in other processes: `baton logs --follow`, `baton status --wait`.
    let server = c.server();
    let mut children = Vec::new();
    for _ in 0..2 {
        children.push(baton(&["logs", &run, "--follow", "--server", &server]));
        children.push(baton(&["status", &run, "--wait", "--server", &server]));
    }
    // And in this process: streams dropped without reading to the end.
    let mut logs_streams = Vec::new();
    let mut watches = Vec::new();
    for _ in 0..2 {
        logs_streams.push(
            c.admin
                .clone()
                .logs(v1::LogsRequest {
                    run_id: run.clone(),
                    task_id: String::new(),
                    follow: true,
                })
                .await
                .expect("logs --follow")
                .into_inner(),
        );
        watches.push(watch(&c.admin, &run).await);
    }
    let want = (base.0 + PER_KIND, base.1 + PER_KIND);
    eventually(
        "every follow stream holds its consumer",
        Duration::from_secs(20),
        async || {
            let now = counts(&js).await;
            if now == want {
                Ok(())
            } else {
                Err(format!("(LOGS, EVENTS) consumers {now:?}, want {want:?}"))
            }
        },
    )
    .await;
    // Still following, still there: a follow stream does not end by
    // itself, and its consumer outlives the server's inactivity limit
    // (5 s) while the client reads.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(counts(&js).await, want, "a follow stream ended while read");

    // Every client leaves at once.
    for ch in &mut children {
        ch.kill().unwrap();
    }
    drop(logs_streams);
    drop(watches);
    let left = Instant::now();
    for ch in &mut children {
        ch.wait().unwrap();
    }
    eventually(
        "the consumers of the gone clients were deleted",
        Duration::from_secs(3),
        async || {
            let now = counts(&js).await;
            if now == base {
                Ok(())
            } else {
                Err(format!(
                    "(LOGS, EVENTS) consumers {now:?} after {:?}, want {base:?}",
                    left.elapsed()
                ))
            }
        },
    )
    .await;
    let gone_after = left.elapsed();
    // Nothing polls on, so the server tasks ended: an ordered reader
    // that lived on would make its consumer again at once (its waiting
    // pull is told the consumer was deleted, and it recreates it).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        counts(&js).await,
        base,
        "a consumer came back: its follow stream still polls"
    );
    // The run itself goes on, and a new follower still sees it.
    assert_eq!(c.get(&run).await.run_status(), v1::RunStatus::Running);
    let mut w = watch(&c.admin, &run).await;
    let first = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("a new watch is served")
        .unwrap()
        .unwrap();
    assert!(matches!(
        first.event.unwrap().body,
        Some(v1::event::Body::RunSubmitted(_))
    ));
    println!("consumers gone {gone_after:?} after the clients left");
}
