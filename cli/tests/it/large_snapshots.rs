//! Runs whose state is bigger than one NATS message (1 MiB by default):
//! two tasks that each report about 245 KiB make a run state of about
//! 1.5 MiB (each report is held as text, as outputs, and as the stage's
//! outcome). Its snapshot must still be written, so that another
//! coordinator answers for the run and a restart does not replay it.
//! Separate `baton` processes on one nats-server.

use std::time::Duration;

use baton_chaos::cluster::{Cluster, ClusterOptions};
use baton_proto::client::Admin;
use baton_proto::v1;

use crate::support::{eventually, submit_to};

/// Bytes of each task's `outputs.blob`; with the JSON around it the
/// `result.json` is just under the worker's 256 KiB limit.
const BLOB: usize = 250_000;

/// A task writing a `result.json` of about 245 KiB: `outputs.blob`, [`BLOB`]
/// times `ch`, and `outputs.n`, 7.
fn big_task(id: &str, ch: char) -> String {
    format!(
        r#"      - id: {id}
        role: dev
        run: ["sh", "-c", "{{ printf '{{\"result\":\"ok\",\"outputs\":{{\"n\":7,\"blob\":\"'; head -c {BLOB} /dev/zero | tr '\\0' {ch}; printf '\"}}}}'; }} > \"$BATON_OUT/result.json\""]
"#
    )
}

/// Two such tasks in one phase, then `then` (phases, as YAML).
fn plan(then: &str) -> String {
    format!(
        "name: large-outputs\nroles:\n  dev: {{ image: \"baton/agent:local\" }}\nphases:\n  - id: big\n    tasks:\n{}{}{then}",
        big_task("left", 'l'),
        big_task("right", 'r')
    )
}

/// A 4 s task that renders `left`'s output `n` into its own.
const SLOW_AFTER: &str = r#"  - id: after
    tasks:
      - id: slow
        role: dev
        env: { N: "${{ tasks.left.outputs.n }}" }
        run: ["sh", "-c", "sleep 4; echo \"{\\\"result\\\":\\\"ok\\\",\\\"outputs\\\":{\\\"n\\\":$N}}\""]
"#;

fn options() -> ClusterOptions {
    ClusterOptions {
        baton_bin: env!("CARGO_BIN_EXE_baton").into(),
        name: format!("s{:06x}-", rand::random::<u32>() & 0xff_ffff),
        coordinators: 2,
        workers: 1,
        worker_concurrency: 2,
        roles: vec!["dev".into()],
        lease_ttl: Duration::from_secs(2),
        ack_wait: Duration::from_secs(5),
        runtime: "process".into(),
    }
}

async fn get(a: &Admin, run: &str) -> Result<v1::Run, String> {
    a.clone()
        .get_run(v1::GetRunRequest { run_id: run.into() })
        .await
        .map(|r| r.into_inner())
        .map_err(|e| e.to_string())
}

/// Each task's `outputs.blob`, as long as it was written.
fn assert_outputs_whole(r: &v1::Run, who: &str) {
    for (id, ch) in [("left", 'l'), ("right", 'r')] {
        let t = r
            .tasks
            .iter()
            .find(|t| t.id == id)
            .unwrap_or_else(|| panic!("{who}: no task {id}"));
        let result: serde_json::Value = serde_json::from_str(&t.result_json)
            .unwrap_or_else(|e| panic!("{who}: task {id}'s result is not JSON: {e}"));
        let blob = result["outputs"]["blob"].as_str().unwrap_or_default();
        assert!(
            blob.len() == BLOB && blob.chars().all(|c| c == ch),
            "{who}: task {id}'s outputs.blob is {} bytes, not {BLOB} of {ch:?}",
            blob.len()
        );
    }
}

/// The lines of a coordinator's log that say it took `run` over.
fn takeovers(c: &Cluster, i: usize, run: &str) -> Vec<String> {
    c.coordinators[i]
        .log_tail(100_000)
        .lines()
        .filter(|l| l.contains("run taken over") && l.contains(run))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_bigger_than_a_nats_message_is_succeeded_for_every_coordinator_and_never_replayed() {
    let mut c = Cluster::start(&options()).await.unwrap();
    let a0 = c.admin(0).await.expect("coordinator 0 answers");
    let a1 = c.admin(1).await.expect("coordinator 1 answers");
    let run = submit_to(&a0, &plan(""), "large-outputs.yaml").await;

    // Coordinator 0 took the submission: it owns and folds the run.
    let r = baton::local::wait_end(&a0, &run, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("run ends: {e}\n{}", c.logs(30)));
    assert_eq!(r.run_status(), v1::RunStatus::Succeeded, "{}", c.logs(30));
    assert_outputs_whole(&r, "the owner");

    // Coordinator 1 never folded the run: it answers from the snapshot.
    let r1 = eventually(
        "coordinator 1 to answer the run as succeeded",
        Duration::from_secs(10),
        async || match get(&a1, &run).await {
            Ok(r) if r.run_status() == v1::RunStatus::Succeeded => Ok(r),
            Ok(r) => Err(format!(
                "status {:?}, tasks {:?}",
                r.run_status(),
                r.tasks
                    .iter()
                    .map(|t| (t.id.clone(), t.task_status()))
                    .collect::<Vec<_>>()
            )),
            Err(e) => Err(e),
        },
    )
    .await;
    assert_outputs_whole(&r1, "the peer");
    // What the bucket holds: a split snapshot, in one message.
    let client = async_nats::connect(c.nats_url()).await.unwrap();
    let runs = async_nats::jetstream::new(client)
        .get_key_value(baton_proto::subjects::RUNS_BUCKET)
        .await
        .unwrap();
    let head = runs.get(&run).await.unwrap().expect("a snapshot");
    let head: serde_json::Value = serde_json::from_slice(&head).unwrap();
    assert!(
        head["parts_in_events"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "not a split snapshot"
    );
    assert_eq!(head["status"], "succeeded");

    // A restart of the owner finds the run ended in its snapshot: nothing
    // to take over, nothing replayed.
    c.coordinators[0].restart().unwrap();
    assert!(
        baton_chaos::cluster::wait_listening(c.grpc[0].port(), Duration::from_secs(30)).await,
        "coordinator 0 did not come back: {}",
        c.coordinators[0].log_tail(30)
    );
    let a0 = c.admin(0).await.expect("coordinator 0 answers again");
    let again = get(&a0, &run).await.unwrap();
    assert_eq!(again.run_status(), v1::RunStatus::Succeeded);
    assert_outputs_whole(&again, "the restarted owner");
    // Start-up recovery runs before the first events are read; give it time.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 0..2 {
        let lines = takeovers(&c, i, &run);
        assert!(
            lines.is_empty(),
            "coordinator {i} took the ended run over again (replayed it):\n{}",
            lines.join("\n")
        );
    }
}

/// The owner dies while the run goes on: its peer takes the run over from a
/// split snapshot (its plan, reports and outputs read back from the run's
/// events), runs nothing twice, and the outputs reach the next phase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_takes_over_a_running_run_bigger_than_a_nats_message() {
    let mut c = Cluster::start(&options()).await.unwrap();
    let a0 = c.admin(0).await.expect("coordinator 0 answers");
    let a1 = c.admin(1).await.expect("coordinator 1 answers");
    let run = submit_to(&a0, &plan(SLOW_AFTER), "large-outputs.yaml").await;

    // Coordinator 1 sees the slow task run: it reads the running run's
    // split snapshot, put back together.
    let running = eventually(
        "coordinator 1 to see the slow task run",
        Duration::from_secs(30),
        async || match get(&a1, &run).await {
            Ok(r)
                if r.tasks
                    .iter()
                    .any(|t| t.id == "slow" && t.task_status() == v1::TaskStatus::Running) =>
            {
                Ok(r)
            }
            other => Err(other.map(|r| r.run_status())),
        },
    )
    .await;
    assert_outputs_whole(&running, "the peer, while the run goes on");
    c.coordinators[0].kill9();

    let r = baton::local::wait_end(&a1, &run, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("run ends: {e}\n{}", c.logs(30)));
    assert_eq!(r.run_status(), v1::RunStatus::Succeeded, "{}", c.logs(30));
    assert_outputs_whole(&r, "the peer, after the takeover");
    for t in &r.tasks {
        assert_eq!((t.id.as_str(), t.attempts), (t.id.as_str(), 1), "ran twice");
    }
    let slow: serde_json::Value =
        serde_json::from_str(&r.tasks.iter().find(|t| t.id == "slow").unwrap().result_json)
            .unwrap();
    assert_eq!(
        slow["outputs"]["n"], 7,
        "left's output did not reach the next phase"
    );
    let taken = takeovers(&c, 1, &run);
    assert_eq!(taken.len(), 1, "{}", c.coordinators[1].log_tail(30));
    assert!(
        !c.coordinators[1]
            .log_tail(100_000)
            .contains("rebuilding the run"),
        "the peer rebuilt the run instead of reading its snapshot:\n{}",
        c.coordinators[1].log_tail(30)
    );
}
