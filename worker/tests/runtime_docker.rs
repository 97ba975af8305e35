//! The Docker runtime against the real engine. Needs Docker: these tests fail
//! (never skip) when the engine is unreachable. The agent image is built with
//! deploy/images/agent/build.sh when missing (it never pulls).

use std::sync::Once;
use std::time::{Duration, Instant};

use baton_test_support::{workspace_root, LabelledContainers};
use baton_worker::runtime::{
    DockerRuntime, Limits, LogLine, Outcome, Runtime, RuntimeError, SandboxPolicy, Stream, TaskSpec,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const IMAGE: &str = "baton/agent:local";

fn ensure_image() {
    static BUILT: Once = Once::new();
    BUILT.call_once(|| {
        let present = std::process::Command::new("docker")
            .args(["image", "inspect", IMAGE])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if present {
            return;
        }
        let script = workspace_root().join("deploy/images/agent/build.sh");
        let out = std::process::Command::new(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "building {IMAGE} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

async fn docker() -> DockerRuntime {
    ensure_image();
    DockerRuntime::connect(SandboxPolicy::default())
        .await
        .unwrap_or_else(|e| panic!("these tests need a running Docker engine: {e}"))
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

fn spec(run_id: &str, script: &str) -> TaskSpec {
    TaskSpec {
        run_id: run_id.to_string(),
        task_id: "t1".to_string(),
        attempt: 1,
        image: IMAGE.to_string(),
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![("GREETING".into(), "hello there".into())],
        timeout: Duration::from_secs(30),
        limits: Limits::default(),
        workspace: None,
        inputs: vec![],
        max_artifact_bytes: 0,
    }
}

async fn run_with(
    rt: &Runtime,
    spec: &TaskSpec,
    cancel: CancellationToken,
) -> (Result<Outcome, RuntimeError>, Vec<LogLine>) {
    let (tx, mut rx) = mpsc::channel(16);
    let drain = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Some(line) = rx.recv().await {
            lines.push(line);
        }
        lines
    });
    let outcome = rt.run(spec, tx, cancel).await;
    (outcome, drain.await.expect("log drain"))
}

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

fn lines(logs: &[LogLine], stream: Stream) -> Vec<&str> {
    logs.iter()
        .filter(|l| l.stream == stream)
        .map(|l| l.line.as_str())
        .collect()
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
    assert!(!outcome.ok);
    assert_eq!(outcome.exit_code, Some(3));
    assert_eq!(outcome.error.as_deref(), Some("exit code 3"));
    assert!(outcome.report.is_some());
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
    assert_eq!(lines(&logs, Stream::Stdout), vec!["started"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(!outcome.ok);
    assert_eq!(outcome.error.as_deref(), Some("timed out after 2s"));
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
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        trigger.cancel();
    });
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

mod artifacts_common;
use artifacts_common::*;
use async_nats::jetstream::object_store::ObjectStore;
use baton_proto::v1;

/// Docker volumes carrying `label=value`.
fn volumes_labelled(label: &str, value: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["volume", "ls", "-q", "--filter"])
        .arg(format!("label={label}={value}"))
        .output()
        .expect("docker volume ls");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Removes the named volumes when the test ends, pass or fail.
struct RemoveVolumes(Vec<String>);

impl Drop for RemoveVolumes {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["volume", "rm", "-f"])
            .args(&self.0)
            .output();
    }
}

/// Runs `spec` with the artifact store; checks that neither its container
/// nor its per-attempt volumes are left.
async fn run_stored(
    store: &ObjectStore,
    spec: &TaskSpec,
) -> (Result<Outcome, RuntimeError>, Vec<LogLine>) {
    let rt = Runtime::Docker(docker().await).with_artifact_store(store.clone());
    let leftovers = LabelledContainers::new("org.baton.run", &spec.run_id);
    let result = run_with(&rt, spec, CancellationToken::new()).await;
    assert_eq!(
        leftovers.count().await,
        0,
        "container of {} not removed",
        spec.run_id
    );
    let scratch: Vec<_> = volumes_labelled("org.baton.run", &spec.run_id)
        .into_iter()
        .filter(|v| v.starts_with("baton-"))
        .collect();
    assert!(scratch.is_empty(), "per-attempt volumes left: {scratch:?}");
    result
}

#[tokio::test]
async fn artifacts_are_stored_and_given_to_the_next_task() {
    let (_nats, store) = artifact_store().await;
    let run_id = unique("rt-docker");
    let producer = spec(&run_id, WRITE_TWO);
    let (outcome, logs) = run_stored(&store, &producer).await;
    let outcome = outcome.expect("runtime");
    assert!(outcome.ok, "{outcome:?} {logs:?}");
    let artifacts = check_two(&store, &run_id, &outcome.artifacts).await;

    let mut consumer = spec(&run_id, READ_TWO);
    consumer.task_id = "t2".into();
    consumer.inputs = inputs_of(artifacts);
    let (outcome, logs) = run_stored(&store, &consumer).await;
    let outcome = outcome.expect("runtime");
    assert!(outcome.ok, "{outcome:?} {logs:?}");
    let o = outcome.report.unwrap().outputs;
    assert_eq!(o["a"], "hello");
    assert_eq!(o["b"], "second file");
    assert_eq!(o["mode"], "444");
    assert_eq!(o["in"], "read-only");
    assert!(outcome.artifacts.is_empty());
}

#[tokio::test]
async fn tampered_input_fails_with_a_clear_error() {
    let (_nats, store) = artifact_store().await;
    let run_id = unique("rt-docker");
    let (outcome, _) = run_stored(&store, &spec(&run_id, WRITE_TWO)).await;
    let mut artifacts = outcome.expect("runtime").artifacts;
    artifacts[1].sha256 = sha256_hex(b"tampered");
    let mut consumer = spec(&run_id, READ_TWO);
    consumer.task_id = "t2".into();
    consumer.inputs = inputs_of(artifacts);
    match run_stored(&store, &consumer).await.0 {
        Err(e @ RuntimeError::Input(_)) => {
            assert!(e.is_permanent());
            let msg = e.to_string();
            assert!(msg.starts_with("input t1/sub/b.txt (object "), "{msg}");
            assert!(msg.contains("does not match its record"), "{msg}");
        }
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[tokio::test]
async fn over_the_artifact_limit_fails_the_attempt() {
    let (_nats, store) = artifact_store().await;
    let mut s = spec(
        &unique("rt-docker"),
        r#"head -c 3000 /dev/zero > /baton/out/big; echo '{"result":"ok"}'"#,
    );
    s.max_artifact_bytes = 1000;
    let (outcome, _) = run_stored(&store, &s).await;
    let outcome = outcome.expect("runtime");
    assert!(!outcome.ok);
    assert_eq!(
        outcome.error.as_deref(),
        Some("task left 2.9 KiB in /baton/out/, over the 1000 bytes limit (raise max_artifact_bytes or write less)")
    );
    assert!(outcome.artifacts.is_empty());
}

#[tokio::test]
async fn volume_workspace_is_shared_and_read_only_when_asked() {
    let (_nats, store) = artifact_store().await;
    let run_id = unique("rt-docker");
    let volume = unique("ws-test");
    let _cleanup = RemoveVolumes(vec![volume.clone()]);
    let ws = |read_only| {
        Some(v1::Workspace {
            kind: "volume".into(),
            source: volume.clone(),
            mount: "/workspace".into(),
            read_only,
        })
    };
    let mut writer = spec(
        &run_id,
        r#"echo shared > "$BATON_WORKSPACE/note" && echo "{\"result\":\"ok\",\"outputs\":{\"ws\":\"$BATON_WORKSPACE\",\"in\":\"$BATON_IN\"}}""#,
    );
    writer.workspace = ws(false);
    let (outcome, logs) = run_stored(&store, &writer).await;
    let outcome = outcome.expect("runtime");
    assert!(outcome.ok, "{outcome:?} {logs:?}");
    let o = outcome.report.unwrap().outputs;
    assert_eq!(
        (o["ws"].as_str(), o["in"].as_str()),
        (Some("/workspace"), Some("/baton/in"))
    );
    assert_eq!(
        volumes_labelled("org.baton.run", &run_id),
        vec![volume.clone()]
    );

    let mut reader = spec(
        &run_id,
        r#"echo "read $(cat /workspace/note)"; echo again > /workspace/note && echo '{"result":"ok"}'"#,
    );
    reader.task_id = "t2".into();
    reader.workspace = ws(true);
    let (outcome, logs) = run_stored(&store, &reader).await;
    let outcome = outcome.expect("runtime");
    assert_eq!(lines(&logs, Stream::Stdout)[0], "read shared", "{logs:?}");
    let stderr = lines(&logs, Stream::Stderr).join("\n");
    assert!(stderr.contains("Read-only file system"), "{stderr}");
    assert!(!outcome.ok);
    assert_eq!(outcome.error.as_deref(), Some("exit code 1"));
}

#[tokio::test]
async fn adopt_leftovers_removes_scratch_volumes_only() {
    let worker = unique("rt-docker-worker");
    let scratch = unique("baton-test-scratch");
    let keep = unique("baton-test-keep");
    let _cleanup = RemoveVolumes(vec![scratch.clone(), keep.clone()]);
    for (name, extra) in [
        (&scratch, "org.baton.scratch=true"),
        (&keep, "org.baton.keep=true"),
    ] {
        let out = std::process::Command::new("docker")
            .args(["volume", "create", "--label"])
            .arg(format!("org.baton.worker={worker}"))
            .args(["--label", extra, name])
            .output()
            .expect("docker volume create");
        assert!(out.status.success(), "{out:?}");
    }
    let mut rt = Runtime::Docker(docker().await);
    let removed = rt.adopt_leftovers(&worker).await.expect("adopt");
    let left = volumes_labelled("org.baton.worker", &worker);
    assert_eq!(removed, 1);
    assert_eq!(left, vec![keep.clone()]);
}
