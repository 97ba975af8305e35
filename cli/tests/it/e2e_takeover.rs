//! Components as separate `baton` processes, killed for real: a run, once
//! accepted, finishes whatever dies, and nothing is done twice.

use std::time::{Duration, Instant};

use baton_chaos::cluster::{Cluster, ClusterOptions};
use baton_proto::client::Admin;
use baton_proto::{kinds, v1};

use crate::support::{ensure_agent_image, events, eventually, SLOW_THEN_TEMPLATED};

fn options(coordinators: usize, workers: usize, runtime: &str) -> ClusterOptions {
    ClusterOptions {
        baton_bin: env!("CARGO_BIN_EXE_baton").into(),
        name: format!("t{:06x}-", rand::random::<u32>() & 0xff_ffff),
        coordinators,
        workers,
        worker_concurrency: 2,
        roles: vec!["dev".into()],
        lease_ttl: Duration::from_secs(2),
        ack_wait: Duration::from_secs(2),
        runtime: runtime.into(),
    }
}

async fn admin(c: &Cluster, i: usize) -> Admin {
    c.admin(i).await.expect("coordinator answers")
}

async fn submit(a: &Admin, yaml: &str) -> String {
    crate::support::submit_to(a, yaml, "takeover.yaml").await
}

async fn get(a: &Admin, run: &str) -> Option<v1::Run> {
    a.clone()
        .get_run(v1::GetRunRequest { run_id: run.into() })
        .await
        .ok()
        .map(|r| r.into_inner())
}

/// Poll `a` until `f` holds for the run; the run as it was then.
async fn wait_for(
    a: &Admin,
    run: &str,
    timeout: Duration,
    what: &str,
    f: impl Fn(&v1::Run) -> bool,
) -> v1::Run {
    eventually(what, timeout, async || match get(a, run).await {
        Some(r) if f(&r) => Ok(r),
        last => Err(last),
    })
    .await
}

/// Wait until the run ends; the run then.
async fn wait_end(a: &Admin, run: &str, timeout: Duration) -> v1::Run {
    baton::local::wait_end(a, run, timeout)
        .await
        .unwrap_or_else(|e| panic!("run ends: {e}"))
}

async fn lease_owner(c: &Cluster, run: &str) -> Option<String> {
    let client = async_nats::connect(c.nats_url()).await.ok()?;
    let kv = async_nats::jetstream::new(client)
        .get_key_value(baton_proto::subjects::LEASES_BUCKET)
        .await
        .ok()?;
    let v = kv.get(format!("run.{run}")).await.ok()??;
    serde_json::from_slice::<serde_json::Value>(&v)
        .ok()?
        .get("owner")?
        .as_str()
        .map(str::to_string)
}

fn phase_announcements(events: &[v1::Event], status: v1::PhaseStatus) -> usize {
    events
        .iter()
        .filter(|e| matches!(&e.body, Some(v1::event::Body::PhaseChanged(p)) if kinds::phase_status(p) == status))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_coordinators_run_is_taken_over_by_its_peer_without_repeating_anything() {
    let mut c = Cluster::start(&options(2, 1, "process")).await.unwrap();
    let (a0, a1) = (admin(&c, 0).await, admin(&c, 1).await);
    let run = submit(&a0, SLOW_THEN_TEMPLATED).await;
    let owner0 = format!("{}-g0", c.coordinators[0].name);
    assert_eq!(
        lease_owner(&c, &run).await.as_deref(),
        Some(owner0.as_str())
    );
    wait_for(&a1, &run, Duration::from_secs(30), "slow runs", |r| {
        r.tasks
            .iter()
            .any(|t| t.id == "slow" && t.task_status() == v1::TaskStatus::Running)
    })
    .await;
    let killed = Instant::now();
    c.coordinators[0].kill9();
    let owner1 = format!("{}-g0", c.coordinators[1].name);
    baton_test_support::assert_eventually!(
        Duration::from_secs(10),
        lease_owner(&c, &run).await.as_deref() == Some(owner1.as_str()),
        "coordinator 1 never took the run over"
    );
    let took = killed.elapsed();
    let r = wait_end(&a1, &run, Duration::from_secs(30)).await;
    assert_eq!(
        r.run_status(),
        v1::RunStatus::Succeeded,
        "{r:#?}\n{}",
        c.logs(30)
    );
    let slow = r.tasks.iter().find(|t| t.id == "slow").unwrap();
    assert_eq!((slow.attempts, slow.lost), (1, 0), "slow was run again");
    let after: serde_json::Value = serde_json::from_str(
        &r.tasks
            .iter()
            .find(|t| t.id == "after")
            .unwrap()
            .result_json,
    )
    .unwrap();
    assert_eq!(
        after["outputs"]["n"], 7,
        "outputs folded by the dead coordinator reached the next phase"
    );
    let evs = events(&a1, &run).await;
    assert_eq!(
        phase_announcements(&evs, v1::PhaseStatus::Running),
        2,
        "a phase was started twice"
    );
    assert_eq!(
        phase_announcements(&evs, v1::PhaseStatus::Passed),
        2,
        "a phase passed twice"
    );
    // The peer's clock starts at the last renewal it saw, up to a third of
    // the 2 s lease before the kill: takeover comes after 1.33 s at the
    // earliest, and should not wait much past the lease.
    assert!(
        took >= Duration::from_millis(1300) && took < Duration::from_secs(6),
        "takeover took {took:?}; the lease is 2s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_that_stops_hands_its_runs_over_at_once() {
    let mut c = Cluster::start(&ClusterOptions {
        lease_ttl: Duration::from_secs(20),
        ..options(2, 1, "process")
    })
    .await
    .unwrap();
    let (a0, a1) = (admin(&c, 0).await, admin(&c, 1).await);
    let run = submit(&a0, SLOW_THEN_TEMPLATED).await;
    wait_for(&a1, &run, Duration::from_secs(30), "slow runs", |r| {
        r.tasks
            .iter()
            .any(|t| t.id == "slow" && t.task_status() == v1::TaskStatus::Running)
    })
    .await;
    let stopped = Instant::now();
    let status = c.coordinators[0].terminate(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM did not stop it cleanly"
    );
    let owner1 = format!("{}-g0", c.coordinators[1].name);
    baton_test_support::assert_eventually!(
        Duration::from_secs(5),
        lease_owner(&c, &run).await.as_deref() == Some(owner1.as_str()),
        "the lease was not handed over"
    );
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "handover waited for the 20s lease to expire"
    );
    let r = wait_end(&a1, &run, Duration::from_secs(30)).await;
    assert_eq!(r.run_status(), v1::RunStatus::Succeeded, "{r:#?}");
    assert_eq!(r.tasks.iter().find(|t| t.id == "slow").unwrap().attempts, 1);
}

/// The worker running the run's task, as the registry says (it refreshes
/// every few seconds, so wait for it).
async fn holder(a: &Admin, run: &str) -> String {
    eventually(
        "no worker lists the task",
        Duration::from_secs(10),
        async || {
            let ws = a
                .clone()
                .list_workers(v1::ListWorkersRequest {})
                .await
                .unwrap()
                .into_inner()
                .workers;
            match ws
                .iter()
                .find(|w| w.running.iter().any(|r| r.starts_with(run)))
            {
                Some(w) => Ok(w.id.clone()),
                None => Err(ws),
            }
        },
    )
    .await
}

/// Submit [`ONE_SLOW`], wait until it runs, and say which worker runs it.
async fn slow_task_running(c: &Cluster) -> (Admin, String, usize) {
    let a = admin(c, 0).await;
    let run = submit(&a, ONE_SLOW).await;
    wait_for(&a, &run, Duration::from_secs(30), "slow runs", |r| {
        r.tasks
            .iter()
            .any(|t| t.task_status() == v1::TaskStatus::Running)
    })
    .await;
    let holder = holder(&a, &run).await;
    let i = c.workers.iter().position(|w| w.name == holder).unwrap();
    (a, run, i)
}

const ONE_SLOW: &str = include_str!("fixtures/one-slow.yaml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_worker_is_killed_runs_again_as_the_next_attempt_within_the_ack_deadline() {
    let mut c = Cluster::start(&options(1, 2, "process")).await.unwrap();
    let (a, run, i) = slow_task_running(&c).await;
    let killed = Instant::now();
    c.workers[i].kill9();
    let r = wait_for(&a, &run, Duration::from_secs(15), "attempt 2 starts", |r| {
        r.tasks[0].attempts == 2
    })
    .await;
    let rerun = killed.elapsed();
    assert_eq!(r.tasks[0].lost, 1);
    assert!(
        rerun < Duration::from_secs(2 + 5),
        "attempt 2 came {rerun:?} after the kill; the ack deadline is 2s"
    );
    let r = wait_end(&a, &run, Duration::from_secs(30)).await;
    assert_eq!(r.run_status(), v1::RunStatus::Succeeded, "{r:#?}");
    assert_eq!((r.tasks[0].attempts, r.tasks[0].lost), (2, 1));
    // What `baton status` prints for it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["status", &run, "--server", &format!("http://{}", c.grpc[0])])
        .env("BATON_TOKEN", c.token.expose())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("after 2 attempts (1 lost with their worker)"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_workers_late_result_is_recorded_but_not_folded() {
    let c = Cluster::start(&options(1, 2, "process")).await.unwrap();
    let (a, run, i) = slow_task_running(&c).await;
    let holder = c.workers[i].name.clone();
    c.workers[i].pause();
    wait_for(&a, &run, Duration::from_secs(15), "attempt 2 starts", |r| {
        r.tasks[0].attempts == 2
    })
    .await;
    c.workers[i].resume();
    let r = wait_for(
        &a,
        &run,
        Duration::from_secs(30),
        "late result recorded",
        |r| !r.tasks[0].stale_results.is_empty() && r.run_status() != v1::RunStatus::Running,
    )
    .await;
    assert_eq!(r.run_status(), v1::RunStatus::Succeeded);
    let t = &r.tasks[0];
    assert_eq!((t.attempts, t.lost), (2, 1));
    assert_eq!(t.stale_results[0].attempt, 1);
    assert_eq!(t.stale_results[0].worker, holder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_under_its_id_removes_the_containers_its_predecessor_left() {
    ensure_agent_image();
    let mut c = Cluster::start(&options(1, 1, "docker")).await.unwrap();
    let id = c.workers[0].name.clone();
    let left = baton_test_support::LabelledContainers::new("org.baton.worker", &id);
    let a = admin(&c, 0).await;
    submit(&a, &ONE_SLOW.replace("sleep 4", "sleep 60")).await;
    baton_test_support::assert_eventually!(
        Duration::from_secs(30),
        left.count().await == 1,
        "the task's container never appeared with label org.baton.worker={id}:\n{}",
        c.logs(30)
    );
    c.workers[0].kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(left.count().await, 1, "the container outlives its worker");
    c.workers[0].spawn().unwrap();
    baton_test_support::assert_eventually!(
        Duration::from_secs(30),
        left.count().await == 0,
        "the restarted worker left its predecessor's container running"
    );
}
