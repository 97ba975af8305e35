//! The process runtime (unsandboxed) with real child processes; the
//! artifact tests also start a real nats-server.

mod artifacts_common;
mod runtime_common;

use std::time::{Duration, Instant};

use artifacts_common::*;
use baton_proto::v1;
use baton_worker::runtime::{
    LogLine, Outcome, ProcessRuntime, Runtime, RuntimeError, Stream, TaskSpec,
};
use runtime_common::*;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn spec(script: &str) -> TaskSpec {
    TaskSpec {
        env: vec![("GREETING".into(), "hello there".into())],
        ..TaskSpec::new(
            format!("rt-process-{:08x}", rand::random::<u32>()),
            "t1",
            1,
            "",
            vec!["sh".into(), "-c".into(), script.into()],
            Duration::from_secs(30),
        )
    }
}

async fn run_with(spec: &TaskSpec, cancel: CancellationToken) -> (Outcome, Vec<LogLine>) {
    let rt = Runtime::Process(ProcessRuntime::new());
    assert_eq!(rt.name(), "process");
    let (outcome, logs) = runtime_common::run_with(&rt, spec, cancel).await;
    (outcome.expect("runtime error"), logs)
}

async fn run(script: &str) -> (Outcome, Vec<LogLine>) {
    run_with(&spec(script), CancellationToken::new()).await
}

#[tokio::test]
async fn ok_result_from_stdout_and_logs_forwarded() {
    let (outcome, logs) = run(
        r#"echo "$GREETING"; echo warning >&2; for i in $(seq 1 100); do echo "line $i"; done; echo '{"result":"ok","evidence":["e1"]}'"#,
    )
    .await;
    assert!(outcome.ok, "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(0));
    assert_eq!(outcome.report.unwrap().evidence, vec!["e1".to_string()]);
    let stdout = lines(&logs, Stream::Stdout);
    assert_eq!(stdout[0], "hello there");
    assert_eq!(stdout.len(), 102);
    assert_eq!(lines(&logs, Stream::Stderr), vec!["warning"]);
}

#[tokio::test]
async fn result_file_wins() {
    let (outcome, _) = run(
        r#"echo '{"result":"fail"}'; echo '{"result":"ok","outputs":{"from":"file"}}' > "$BATON_OUT/result.json""#,
    )
    .await;
    assert!(outcome.ok, "{outcome:?}");
    assert_eq!(outcome.report.unwrap().outputs["from"], "file");
}

#[tokio::test]
async fn environment_is_cleared_and_cwd_is_temporary() {
    std::env::var("HOME").expect("HOME is set for the test process");
    let (outcome, _) = run(
        r#"echo "{\"result\":\"ok\",\"outputs\":{\"home\":\"${HOME:-unset}\",\"cwd\":\"$(pwd)\",\"out\":\"$BATON_OUT\"}}""#,
    )
    .await;
    assert!(outcome.ok, "{outcome:?}");
    let o = outcome.report.unwrap().outputs;
    assert_eq!(o["home"], "unset");
    let cwd = o["cwd"].as_str().unwrap().to_string();
    assert_eq!(o["out"], format!("{cwd}/out"));
    assert!(!std::path::Path::new(&cwd).exists(), "{cwd} not removed");
}

#[tokio::test]
async fn nonzero_exit_is_a_failure() {
    let (outcome, _) = run(r#"echo '{"result":"ok"}'; exit 3"#).await;
    assert_failed_with_exit_3(&outcome);
}

#[tokio::test]
async fn missing_or_bad_result() {
    let (outcome, _) = run("true").await;
    assert!(outcome.error.unwrap().starts_with("task printed no result"));
    let (outcome, _) = run("echo done").await;
    assert_eq!(outcome.error.as_deref(), Some("result is not JSON: done"));
}

#[tokio::test]
async fn timeout_kills_the_process_group() {
    let mut spec = spec("echo started; sleep 30; echo never");
    spec.timeout = Duration::from_secs(2);
    let started = Instant::now();
    let (outcome, logs) = run_with(&spec, CancellationToken::new()).await;
    assert_timed_out_after_2s(&outcome, &logs, started);
}

#[tokio::test]
async fn cancel_stops_the_task() {
    let spec = spec("sleep 30");
    let cancel = cancel_after(Duration::from_millis(500));
    let started = Instant::now();
    let (outcome, _) = run_with(&spec, cancel).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(outcome.error.as_deref(), Some("cancelled"));
}

#[tokio::test]
async fn missing_program_is_a_task_failure() {
    let mut spec = spec("");
    spec.argv = vec!["/definitely/not/here".into()];
    let (outcome, _) = run_with(&spec, CancellationToken::new()).await;
    assert!(!outcome.ok);
    assert!(outcome.error.unwrap().starts_with("cannot start"));
}

async fn run_stored(
    store: &async_nats::jetstream::object_store::ObjectStore,
    spec: &TaskSpec,
) -> Result<Outcome, RuntimeError> {
    let rt = Runtime::Process(ProcessRuntime::new()).with_artifact_store(store.clone());
    let (tx, mut rx) = mpsc::channel(16);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    rt.run(spec, tx, CancellationToken::new()).await
}

#[tokio::test]
async fn artifacts_are_stored_and_given_to_the_next_task() {
    let (_nats, store) = artifact_store().await;
    let producer = spec(WRITE_TWO);
    let outcome = run_stored(&store, &producer).await.expect("runtime");
    assert!(outcome.ok, "{outcome:?}");
    let artifacts = check_two(&store, &producer.run_id, &outcome.artifacts).await;

    let mut consumer = spec(READ_TWO);
    consumer.run_id = producer.run_id.clone();
    consumer.task_id = "t2".into();
    consumer.inputs = inputs_of(artifacts);
    let outcome = run_stored(&store, &consumer).await.expect("runtime");
    assert!(outcome.ok, "{outcome:?}");
    let o = outcome.report.unwrap().outputs;
    assert_eq!(o["a"], "hello");
    assert_eq!(o["b"], "second file");
    // Read-only by mode only: a process running as root could still write.
    assert_eq!(o["mode"], "444");
    assert!(outcome.artifacts.is_empty());
}

#[tokio::test]
async fn tampered_input_fails_with_a_clear_error() {
    let (_nats, store) = artifact_store().await;
    let producer = spec(WRITE_TWO);
    let outcome = run_stored(&store, &producer).await.expect("runtime");
    let mut artifacts = outcome.artifacts;
    artifacts[0].sha256 = sha256_hex(b"something else");
    let mut consumer = spec(READ_TWO);
    consumer.inputs = inputs_of(artifacts);
    let msg = tampered_input_error(run_stored(&store, &consumer).await, "t1/a.txt");
    assert!(msg.contains("rerun task t1"), "{msg}");
}

#[tokio::test]
async fn over_the_artifact_limit_fails_the_attempt() {
    let (_nats, store) = artifact_store().await;
    let mut s = spec(r#"head -c 3000 /dev/zero > "$BATON_OUT/big"; echo '{"result":"ok"}'"#);
    s.max_artifact_bytes = 1000;
    assert_over_the_artifact_limit(&run_stored(&store, &s).await.expect("runtime"));
}

#[tokio::test]
async fn host_workspace_is_given_and_volumes_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("seed"), "from host").expect("seed");
    let mut s = spec(
        r#"echo "{\"result\":\"ok\",\"outputs\":{\"seed\":\"$(cat "$BATON_WORKSPACE/seed")\"}}""#,
    );
    s.workspace = Some(v1::Workspace {
        kind: "host".into(),
        source: dir.path().to_string_lossy().into_owned(),
        mount: "/workspace".into(),
        read_only: true,
    });
    let (outcome, _) = run_with(&s, CancellationToken::new()).await;
    assert!(outcome.ok, "{outcome:?}");
    assert_eq!(outcome.report.unwrap().outputs["seed"], "from host");

    s.workspace = Some(v1::Workspace {
        kind: "volume".into(),
        source: "ws-1".into(),
        mount: "/workspace".into(),
        read_only: false,
    });
    let rt = Runtime::Process(ProcessRuntime::new());
    let (tx, _rx) = mpsc::channel(16);
    let e = rt
        .run(&s, tx, CancellationToken::new())
        .await
        .expect_err("volume workspace in the process runtime");
    assert!(e.is_permanent());
    assert!(e.to_string().contains("needs the docker runtime"), "{e}");
}
