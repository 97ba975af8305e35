//! A lone coordinator whose NATS stalls for longer than its lease can renew
//! drops its runs (it must: a peer might be taking them over), and then takes
//! them back when nobody did. Before, it never looked at them again until it
//! restarted, and the run stayed `running` for good.

use std::time::Duration;

use baton_proto::v1;

use crate::support::*;

const ONE_SLOW: &str = include_str!("fixtures/one-slow.yaml");

/// `kill -<signal>` of a process (the test crate has no unsafe code).
fn signal(pid: u32, signal: &str) {
    let st = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill {signal} {pid} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_coordinator_takes_back_the_runs_a_nats_stall_made_it_drop() {
    let c = Cluster::start(Rt::Process).await;
    let run = c.submit(ONE_SLOW, &[]).await;
    eventually(
        "the slow task to start",
        Duration::from_secs(30),
        async || {
            let r = c.get(&run).await;
            (task(&r, "slow").task_status() == v1::TaskStatus::Running).then_some(())
        },
    )
    .await;

    // Frozen for longer than the whole lease (5 s by default): the renewals
    // fail, so the coordinator drops the run, as it must.
    let pid = c.nats.pid().expect("nats-server runs");
    signal(pid, "-STOP");
    tokio::time::sleep(Duration::from_secs(7)).await;
    signal(pid, "-CONT");

    let r = c.wait_end(&run, Duration::from_secs(60)).await;
    assert_eq!(r.run_status(), v1::RunStatus::Succeeded, "{r:#?}");
}
