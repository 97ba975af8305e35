//! End to end in real containers: real nats-server, real Docker, the whole loop.

use std::time::Duration;

use baton_proto::v1::{self, event::Body};
use baton_worker::runtime::Limits;

use crate::support::*;

const T: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_train_succeeds_after_approval() {
    let c = Cluster::start(Rt::Docker).await;
    let run = c.submit(&release_train(), &[("version", "v3.1.0")]).await;
    let waiting = c.wait_waiting(&run, T).await;
    assert_eq!(
        task(&waiting, "deploy").task_status(),
        v1::TaskStatus::AwaitingApproval
    );
    assert_eq!(
        task(&waiting, "types").task_status(),
        v1::TaskStatus::Succeeded
    );
    assert_eq!(waiting.phases[0].phase_status(), v1::PhaseStatus::Passed);
    c.decide(&run, true, "reviewed").await.expect("approve");
    let r = c.wait_end(&run, T).await;
    assert_eq!(r.run_status(), v1::RunStatus::Succeeded, "{r:#?}");
    let deploy = task(&r, "deploy");
    assert_eq!(deploy.exit_code, Some(0));
    let result: serde_json::Value = serde_json::from_str(&deploy.result_json).unwrap();
    assert_eq!(result["outputs"]["p95_ms"], 180);
    assert_eq!(deploy.trace_id.len(), 32, "the result carries the trace id");
    for t in r
        .tasks
        .iter()
        .filter(|t| t.task_status() == v1::TaskStatus::Succeeded)
    {
        assert_eq!(
            t.trace_id, deploy.trace_id,
            "one run is one trace: task {}",
            t.id
        );
    }
    assert!(task(&r, "scan").result_json.contains("sbom.json"));
    // Rollback steps never ran.
    assert_eq!(task(&r, "undeploy").task_status(), v1::TaskStatus::Pending);
    // The env template reached the container: its log says so.
    let logs = logs_of(&c, &run, "deploy").await;
    assert!(logs.iter().any(|l| l == "deploying v3.1.0"), "{logs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_expr_gate_rolls_back_newest_phase_first() {
    let c = Cluster::start(Rt::Docker).await;
    let yaml = release_train().replace(r#"\"p95_ms\":180"#, r#"\"p95_ms\":900"#);
    let run = c.submit(&yaml, &[]).await;
    c.wait_waiting(&run, T).await;
    c.decide(&run, true, "go").await.unwrap();
    let r = c.wait_end(&run, T).await;
    assert_eq!(r.run_status(), v1::RunStatus::RolledBack, "{r:#?}");
    let stage = r.phases.iter().find(|p| p.id == "stage").unwrap();
    let expr_gate = stage.gates.iter().find(|g| g.kind == "expr").unwrap();
    assert_eq!(expr_gate.verdict, "fail");
    assert!(
        expr_gate.reasons[0].contains("tasks.deploy.outputs.p95_ms = 900"),
        "{:?}",
        expr_gate.reasons
    );
    assert_eq!(
        task(&r, "undeploy").task_status(),
        v1::TaskStatus::Succeeded
    );
    assert_eq!(
        task(&r, "revert-types").task_status(),
        v1::TaskStatus::Succeeded
    );
    // Order: stage's rollback finished before readiness's started.
    let events = c.events(&run).await;
    let pos = |want: &str, started: bool| {
        events
            .iter()
            .position(|e| match &e.body {
                Some(Body::TaskStarted(s)) if started => s.task_id == want,
                Some(Body::TaskFinished(f)) if !started => f.task_id == want,
                _ => false,
            })
            .unwrap_or_else(|| panic!("no event for {want}"))
    };
    assert!(
        pos("undeploy", false) < pos("revert-types", true),
        "rollback ran newest phase first"
    );
    assert!(r.reason.contains("phase stage failed"), "{}", r.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_retries_then_succeeds_and_phase_retry_reruns() {
    let c = Cluster::start(Rt::Docker).await;
    let yaml = include_str!("fixtures/retries.yaml");
    let run = c.submit(yaml, &[]).await;
    let r = c.wait_end(&run, T).await;
    let t = task(&r, "second-time-lucky");
    assert_eq!(
        (t.task_status(), t.attempts),
        (v1::TaskStatus::Succeeded, 2),
        "{r:#?}"
    );
    assert_eq!(r.run_status(), v1::RunStatus::Failed, "{r:#?}");
    assert!(r.reason.contains("failed after 1 retries"), "{}", r.reason);
    let events = c.events(&run).await;
    let check_runs = events
        .iter()
        .filter(|e| matches!(&e.body, Some(Body::TaskFinished(f)) if f.task_id == "check"))
        .count();
    assert_eq!(check_runs, 2, "on_fail: retry ran the phase twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_memory_limit_bad_result_and_missing_image_fail_clearly() {
    let limits = Limits {
        memory_bytes: 48 * 1024 * 1024,
        ..Limits::default()
    };
    let c = Cluster::start_with(Rt::Docker, limits, 8).await;
    let yaml = include_str!("fixtures/failures.yaml");
    let started = std::time::Instant::now();
    let run = c.submit(yaml, &[]).await;
    let r = c.wait_end(&run, T).await;
    assert_eq!(r.run_status(), v1::RunStatus::Halted, "{r:#?}");
    let slow = task(&r, "slow");
    assert_eq!(slow.task_status(), v1::TaskStatus::Failed);
    assert!(slow.error.contains("timed out after 2s"), "{}", slow.error);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the timeout was enforced"
    );
    let hog = task(&r, "hog");
    assert_eq!(hog.task_status(), v1::TaskStatus::Failed, "{hog:#?}");
    assert!(hog.error.contains("memory limit"), "{}", hog.error);
    let chatty = task(&r, "chatty");
    assert_eq!(chatty.task_status(), v1::TaskStatus::Failed);
    assert!(
        chatty.error.contains("not JSON: this is not json at all"),
        "{}",
        chatty.error
    );
    let ghost = task(&r, "ghost");
    assert_eq!(ghost.task_status(), v1::TaskStatus::Failed);
    assert_eq!(
        ghost.attempts, 1,
        "a missing image is permanent: no retries burnt"
    );
    assert!(
        ghost
            .error
            .contains("image baton/no-such-image:local not found — build it with"),
        "{}",
        ghost.error
    );
    let gate = &r.phases[0].gates[0];
    assert_eq!(
        (gate.kind.as_str(), gate.verdict.as_str()),
        ("tasks", "fail")
    );
    assert!(
        gate.reasons.iter().any(|x| x.contains("task slow failed")),
        "{:?}",
        gate.reasons
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejection_fails_the_task_and_rolls_back() {
    let c = Cluster::start(Rt::Docker).await;
    let run = c.submit(&release_train(), &[]).await;
    c.wait_waiting(&run, T).await;
    c.decide(&run, false, "not on a Friday")
        .await
        .expect("reject");
    let r = c.wait_end(&run, T).await;
    assert_eq!(r.run_status(), v1::RunStatus::RolledBack, "{r:#?}");
    let deploy = task(&r, "deploy");
    assert_eq!(deploy.task_status(), v1::TaskStatus::Failed);
    assert_eq!(deploy.attempts, 0, "a rejected task never reaches a worker");
    assert!(
        deploy
            .error
            .contains(&format!("rejected by {ADMIN_NAME}: not on a Friday")),
        "{}",
        deploy.error
    );
    assert_eq!(
        task(&r, "undeploy").task_status(),
        v1::TaskStatus::Succeeded
    );
    // Nothing waits any more, so a second decision is refused.
    let e = c.decide(&run, true, "late").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_kills_running_containers() {
    let c = Cluster::start(Rt::Docker).await;
    let yaml = r#"
name: long
roles:
  dev: { image: "baton/agent:local" }
phases:
  - id: p
    tasks:
      - id: sleeper
        role: dev
        run: ["sh", "-c", "echo started; sleep 120"]
"#;
    let run = c.submit(yaml, &[]).await;
    baton_test_support::assert_eventually!(
        T,
        task(&c.get(&run).await, "sleeper").task_status() == v1::TaskStatus::Running,
        "sleeper never ran"
    );
    let t0 = std::time::Instant::now();
    c.admin
        .clone()
        .cancel_run(baton_proto::v1::CancelRunRequest {
            run_id: run.clone(),
            reason: "test".into(),
            by: "tester".into(),
        })
        .await
        .unwrap();
    let r = c.wait_end(&run, T).await;
    assert_eq!(r.run_status(), v1::RunStatus::Cancelled);
    let containers = baton_test_support::LabelledContainers::new("org.baton.run", &run);
    baton_test_support::assert_eventually!(
        Duration::from_secs(20),
        containers.count().await == 0,
        "container of a cancelled run still exists"
    );
    assert!(t0.elapsed() < Duration::from_secs(30));
}

/// Whoever triggers this plan chooses the host path its read-write agent
/// works in.
const HOST_PATH_FROM_INPUT: &str = include_str!("fixtures/hostpath-attack.yaml");

/// The attack end to end: a worker allowed one repository directory, a
/// trigger over NATS with `repo=/` (and with a symlink to `/` planted in
/// the allowed directory). The task fails at once, for good, with the
/// refusal; nothing is read or written on the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_path_from_a_trigger_input_cannot_reach_the_host_root() {
    let allowed = tempfile::tempdir().unwrap();
    let planted = allowed.path().join("repo");
    std::os::unix::fs::symlink("/", &planted).unwrap();
    let ceiling = Ceiling {
        allow_mounts: vec![allowed.path().to_path_buf()],
        ..Default::default()
    };
    let c = Cluster::start_with_ceiling(Rt::Docker, Limits::default(), 4, ROLES, ceiling).await;
    c.admin
        .clone()
        .apply_plan(baton_proto::v1::ApplyPlanRequest {
            plan_yaml: HOST_PATH_FROM_INPUT.into(),
            plan_file: "attack.yaml".into(),
        })
        .await
        .expect("apply");
    let nc = async_nats::connect(c.nats.url()).await.unwrap();
    for repo in ["/".to_string(), planted.display().to_string()] {
        let marker = format!("baton-attack-{:016x}", rand::random::<u64>());
        let host_file = std::path::Path::new("/tmp").join(&marker);
        let body = serde_json::json!({ "repo": repo, "marker": marker }).to_string();
        let reply = nc
            .request("baton.trigger.hostpath-attack", body.into())
            .await
            .expect("a coordinator answers the trigger");
        let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
        let run = v["run_id"].as_str().unwrap_or_else(|| panic!("{v}"));
        let r = c.wait_end(run, T).await;
        let written = host_file.exists();
        let _ = std::fs::remove_file(&host_file);
        assert!(
            !written,
            "repo={repo}: the task wrote {}",
            host_file.display()
        );
        let logs = logs_of(&c, run, "patch").await;
        assert!(
            !logs
                .iter()
                .any(|l| l.contains("SAW-HOST-ROOT") || l.contains("WROTE")),
            "repo={repo}: {logs:?}"
        );
        assert_ne!(r.run_status(), v1::RunStatus::Succeeded, "{r:#?}");
        let t = task(&r, "patch");
        assert_eq!(
            t.task_status(),
            v1::TaskStatus::Failed,
            "repo={repo}: {t:#?}"
        );
        assert_eq!(t.attempts, 1, "a refusal is permanent: no retries: {t:#?}");
        assert!(
            t.error.contains(&format!("workspace host path {repo}"))
                && t.error.contains("root")
                && t.error.contains("--allow-mounts"),
            "repo={repo}: {}",
            t.error
        );
        eprintln!("repo={repo}: {}", t.error);
    }
}
