//! The Docker runtime against the real engine. Needs Docker: these tests fail
//! (never skip) when the engine is unreachable. The agent image is built with
//! deploy/images/agent/build.sh when missing (it never pulls).

mod docker_common;

use std::time::{Duration, Instant};

use baton_test_support::LabelledContainers;
use baton_worker::runtime::{LogLine, Outcome, Runtime, RuntimeError, Stream, TaskSpec};
use docker_common::*;
use tokio_util::sync::CancellationToken;

/// Runs `script` in a fresh run and checks that no container is left behind.
async fn run_script(script: &str, tweak: impl FnOnce(&mut TaskSpec)) -> (Outcome, Vec<LogLine>) {
    let rt = Runtime::Docker(docker().await);
    let run_id = unique("rt-docker");
    let leftovers = LabelledContainers::new("org.baton.run", &run_id);
    let mut spec = spec(&run_id, script);
    tweak(&mut spec);
    let (outcome, logs) = run_with(&rt, &spec, CancellationToken::new()).await;
    let outcome = outcome.unwrap_or_else(|e| panic!("runtime error: {e}"));
    assert_eq!(
        leftovers.count().await,
        0,
        "container of {run_id} not removed"
    );
    (outcome, logs)
}

#[tokio::test]
async fn ok_result_from_stdout_and_logs_forwarded() {
    let (outcome, logs) = run_script(
        r#"echo "$GREETING"; echo warning >&2; for i in $(seq 1 100); do echo "line $i"; done; echo '{"result":"ok","evidence":["e1"],"outputs":{"n":1}}'"#,
        |_| {},
    )
    .await;
    assert!(outcome.ok, "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(0));
    let report = outcome.report.expect("report");
    assert_eq!(report.evidence, vec!["e1".to_string()]);
    assert_eq!(report.outputs["n"], serde_json::json!(1));
    let stdout = lines(&logs, Stream::Stdout);
    assert_eq!(stdout[0], "hello there");
    assert_eq!(stdout.len(), 102, "{stdout:?}");
    assert_eq!(stdout[100], "line 100");
    assert_eq!(lines(&logs, Stream::Stderr), vec!["warning"]);
}

#[tokio::test]
async fn result_file_wins_and_is_not_logged() {
    let (outcome, logs) = run_script(
        r#"echo '{"result":"fail"}'; printf '{"result":"ok",\n"outputs":{"from":"file"}}' > /baton/out/result.json"#,
        |_| {},
    )
    .await;
    assert!(outcome.ok, "{outcome:?}");
    assert_eq!(outcome.report.unwrap().outputs["from"], "file");
    let stdout = lines(&logs, Stream::Stdout);
    assert_eq!(
        stdout,
        vec![r#"{"result":"fail"}"#],
        "marker or file leaked into logs"
    );
}

/// Docker 20.10 can end a followed log before an unterminated last line
/// arrives; the wrapper and the catch-up read must not lose it.
#[tokio::test]
async fn unterminated_last_line_is_not_lost() {
    for _ in 0..5 {
        let (outcome, logs) = run_script(r#"echo first; printf '{"result":"ok"}'"#, |_| {}).await;
        assert!(outcome.ok, "{outcome:?}");
        assert_eq!(
            lines(&logs, Stream::Stdout),
            vec!["first", r#"{"result":"ok"}"#]
        );
    }
}

#[tokio::test]
async fn nonzero_exit_is_a_failure() {
    let (outcome, _) = run_script(r#"echo '{"result":"ok"}'; exit 3"#, |_| {}).await;
    assert_failed_with_exit_3(&outcome);
}

#[tokio::test]
async fn missing_or_bad_result() {
    let (outcome, _) = run_script("true", |_| {}).await;
    assert!(!outcome.ok);
    assert!(outcome.error.unwrap().starts_with("task printed no result"));
    let (outcome, _) = run_script("echo done", |_| {}).await;
    assert_eq!(outcome.error.as_deref(), Some("result is not JSON: done"));
    let (outcome, _) = run_script(
        r#"echo '{"result":"fail","action":"fix the tests"}'"#,
        |_| {},
    )
    .await;
    assert_eq!(outcome.error.as_deref(), Some("fix the tests"));
}

#[tokio::test]
async fn timeout_kills_the_container() {
    let started = Instant::now();
    let (outcome, logs) = run_script("echo started; sleep 30", |s| {
        s.timeout = Duration::from_secs(2);
    })
    .await;
    assert_timed_out_after_2s(&outcome, &logs, started);
}

#[tokio::test]
async fn memory_hog_is_killed_by_the_limit() {
    let (outcome, _) = run_script(
        r#"dd if=/dev/zero of=/dev/null bs=64M count=1; echo '{"result":"ok"}'"#,
        |s| s.limits.memory_bytes = 32 * 1024 * 1024,
    )
    .await;
    assert!(!outcome.ok, "{outcome:?}");
    let error = outcome.error.unwrap();
    assert!(
        error.starts_with("killed: exceeded memory limit 32 MiB (exit "),
        "{error}"
    );
}

#[tokio::test]
async fn sandbox_is_enforced() {
    let script = r#"
        uid=$(id -u)
        if touch /x 2>/dev/null; then rootfs=writable; else rootfs=read-only; fi
        if echo probe > /baton/out/probe && echo probe > /tmp/probe; then out=writable; else out=read-only; fi
        ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' ')
        if nc -w 2 1.1.1.1 80 </dev/null >/dev/null 2>&1; then net=reachable; else net=unreachable; fi
        caps=$(grep CapEff /proc/self/status | awk '{print $2}')
        nnp=$(grep NoNewPrivs /proc/self/status | awk '{print $2}')
        echo "{\"result\":\"ok\",\"outputs\":{\"uid\":\"$uid\",\"rootfs\":\"$rootfs\",\"out\":\"$out\",\"ifaces\":\"$ifaces\",\"net\":\"$net\",\"caps\":\"$caps\",\"nnp\":\"$nnp\",\"out_env\":\"$BATON_OUT\"}}"
    "#;
    let (outcome, logs) = run_script(script, |_| {}).await;
    assert!(outcome.ok, "{outcome:?} {logs:?}");
    let o = outcome.report.unwrap().outputs;
    assert_eq!(o["uid"], "10001");
    assert_eq!(o["rootfs"], "read-only");
    assert_eq!(o["out"], "writable");
    assert_eq!(o["ifaces"], "lo ", "network is not none");
    assert_eq!(o["net"], "unreachable");
    assert_eq!(o["caps"], "0000000000000000");
    assert_eq!(o["nnp"], "1");
    assert_eq!(o["out_env"], "/baton/out");
}

#[tokio::test]
async fn missing_image_is_an_infrastructure_error() {
    let rt = Runtime::Docker(docker().await);
    let mut spec = spec(&unique("rt-docker"), "true");
    spec.image = "baton/does-not-exist:never".into();
    let (outcome, _) = run_with(&rt, &spec, CancellationToken::new()).await;
    match outcome {
        Err(e @ RuntimeError::ImageMissing { .. }) => {
            assert!(
                e.to_string().contains("deploy/images/agent/build.sh"),
                "{e}"
            )
        }
        other => panic!("expected ImageMissing, got {other:?}"),
    }
}

#[tokio::test]
async fn cancel_kills_the_container() {
    let rt = Runtime::Docker(docker().await);
    assert_eq!(rt.name(), "docker");
    let run_id = unique("rt-docker");
    let leftovers = LabelledContainers::new("org.baton.run", &run_id);
    let spec = spec(&run_id, "sleep 30");
    let cancel = cancel_after(Duration::from_secs(1));
    let started = Instant::now();
    let (outcome, _) = run_with(&rt, &spec, cancel).await;
    let outcome = outcome.expect("outcome");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!outcome.ok);
    assert_eq!(outcome.error.as_deref(), Some("cancelled"));
    assert_eq!(leftovers.count().await, 0);
}

/// A silent task must outlive the client's (short) API request timeout: the
/// long `/wait` and `/logs` requests use their own.
#[tokio::test]
async fn silent_task_outlives_the_api_timeout() {
    let rt = Runtime::Docker(docker().await.with_api_timeout(Duration::from_secs(2)));
    let (outcome, _) = run_with(
        &rt,
        &spec(&unique("rt-docker"), r#"sleep 4; echo '{"result":"ok"}'"#),
        CancellationToken::new(),
    )
    .await;
    let outcome = outcome.expect("outcome");
    assert!(outcome.ok, "{outcome:?}");
}

#[tokio::test]
async fn remove_labelled_cleans_up_leftovers() {
    let rt = docker().await;
    let run_id = unique("rt-docker");
    let leftovers = LabelledContainers::new("org.baton.run", &run_id);
    for _ in 0..2 {
        let status = std::process::Command::new("docker")
            .args([
                "create",
                "--label",
                &format!("org.baton.run={run_id}"),
                IMAGE,
                "true",
            ])
            .output()
            .expect("docker create");
        assert!(status.status.success(), "{status:?}");
    }
    let removed = rt
        .remove_labelled(&format!("org.baton.run={run_id}"))
        .await
        .expect("remove_labelled");
    assert_eq!(removed, 2);
    assert_eq!(leftovers.count().await, 0);
}
