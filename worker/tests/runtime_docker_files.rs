//! The Docker runtime's files against the real engine and a real
//! nats-server: artifacts out of `/baton/out`, inputs in `/baton/in`,
//! workspaces, and clean-up of per-attempt volumes.

mod artifacts_common;
mod docker_common;

use artifacts_common::*;
use async_nats::jetstream::object_store::ObjectStore;
use baton_proto::v1;
use baton_test_support::LabelledContainers;
use baton_worker::runtime::{LogLine, Outcome, Runtime, RuntimeError, Stream, TaskSpec};
use docker_common::*;
use tokio_util::sync::CancellationToken;

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
    tampered_input_error(run_stored(&store, &consumer).await.0, "t1/sub/b.txt");
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
    assert_over_the_artifact_limit(&outcome.expect("runtime"));
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

#[tokio::test]
async fn host_workspace_is_bind_mounted_and_a_missing_path_is_named() {
    let (_nats, store) = artifact_store().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("seed"), "from host").expect("seed");
    // The sandbox user is not the owner of the test's temporary directory.
    {
        use std::os::unix::fs::PermissionsExt;
        let open = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(dir.path(), open).expect("chmod");
    }
    let mut s = spec(
        &unique("rt-docker"),
        r#"echo "{\"result\":\"ok\",\"outputs\":{\"seed\":\"$(cat "$BATON_WORKSPACE/seed")\"}}""#,
    );
    let host = |source: String| {
        Some(v1::Workspace {
            kind: "host".into(),
            source,
            mount: "/src".into(),
            read_only: true,
        })
    };
    s.workspace = host(dir.path().to_string_lossy().into_owned());
    let (outcome, logs) = run_stored(&store, &s).await;
    let outcome = outcome.expect("runtime");
    assert!(outcome.ok, "{outcome:?} {logs:?}");
    assert_eq!(outcome.report.unwrap().outputs["seed"], "from host");

    let missing = format!("/nonexistent/{}", unique("baton"));
    s.workspace = host(missing.clone());
    match run_stored(&store, &s).await.0 {
        Err(e @ RuntimeError::Workspace(_)) => {
            assert!(e.is_permanent());
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("cannot bind-mount host path {missing} at /src")),
                "{msg}"
            );
        }
        other => panic!("expected a workspace error, got {other:?}"),
    }
}
