//! Bounds on `/baton/out` in the Docker runtime, against the real engine:
//! a quota while the task runs, a size limit that is checked from the tar
//! headers before any content is read, and a collection that honours
//! cancellation (issue "durability gaps", gap 5).

#[allow(dead_code)]
mod artifacts_common;
mod docker_common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use artifacts_common::*;
use async_nats::jetstream::object_store::ObjectStore;
use baton_test_support::{LabelledContainers, NatsServer};
use baton_worker::runtime::{LogLine, Outcome, Runtime, Stream, TaskSpec};
use docker_common::*;
use tokio_util::sync::CancellationToken;

/// 10 TiB: busybox `truncate` takes no `T` suffix.
const TEN_TIB: u64 = 10 * 1024 * 1024 * 1024 * 1024;
/// How long an attempt may outlast its timeout.
const SLACK: Duration = Duration::from_secs(30);

async fn assert_nothing_left(run: &str, leftovers: &LabelledContainers) {
    assert_eq!(leftovers.count().await, 0, "containers of {run} left");
    assert!(
        volumes_labelled("org.baton.run", run).is_empty(),
        "volumes of {run} left"
    );
}

/// The Docker runtime with the artifact store, and a fresh run for it.
struct Stored {
    _nats: NatsServer,
    store: ObjectStore,
    rt: Runtime,
    run: String,
    leftovers: LabelledContainers,
}

impl Stored {
    async fn new() -> Self {
        let (nats, store) = artifact_store().await;
        let rt = Runtime::Docker(docker().await).with_artifact_store(store.clone());
        let run = unique("rt-bounds");
        let leftovers = LabelledContainers::new("org.baton.run", &run);
        Self {
            _nats: nats,
            store,
            rt,
            run,
            leftovers,
        }
    }

    /// Runs `s` (of this run); checks that it ends within its timeout plus
    /// [`SLACK`] and leaves nothing behind. Returns how long it took.
    async fn run_bounded(&self, s: &TaskSpec) -> (Outcome, Vec<LogLine>, Duration) {
        let started = Instant::now();
        let (outcome, logs) = tokio::time::timeout(
            s.timeout + SLACK,
            run_with(&self.rt, s, CancellationToken::new()),
        )
        .await
        .unwrap_or_else(|_| panic!("still running after {:?}", s.timeout + SLACK));
        let took = started.elapsed();
        let outcome = outcome.expect("runtime");
        assert!(took < s.timeout + SLACK, "took {took:?}");
        assert_nothing_left(&self.run, &self.leftovers).await;
        (outcome, logs, took)
    }
}

/// The reported bug: a sparse 10 TiB file in `/baton/out` and a 5 s timeout.
/// The task itself ends at once; reading `/baton/out` back never did.
#[tokio::test]
async fn sparse_10_tib_file_fails_within_the_timeout() {
    let stored = Stored::new().await;
    let mut s = spec(
        &stored.run,
        &format!(
            r#"truncate -s {TEN_TIB} /baton/out/huge && ls -l /baton/out/huge; echo '{{"result":"ok"}}'"#
        ),
    );
    s.timeout = Duration::from_secs(5);
    let (outcome, logs, took) = stored.run_bounded(&s).await;
    assert!(
        lines(&logs, Stream::Stdout)
            .iter()
            .any(|l| l.contains(&TEN_TIB.to_string())),
        "the sparse file was created: {logs:?}"
    );
    assert!(!outcome.ok, "{outcome:?}");
    assert_eq!(
        outcome.error.as_deref(),
        Some("artifacts in /baton/out exceed the 64 MiB limit (max_artifact_bytes): huge is 10 TiB — write less, or raise artifacts.max_bytes in the plan")
    );
    assert!(outcome.artifacts.is_empty());
    eprintln!("sparse 10 TiB file refused after {took:?}");
}

/// Writing past the quota fails inside the task (the volume is full, nothing
/// reaches the host's disk) and the attempt fails with the limit's error.
#[tokio::test]
async fn writing_past_the_quota_fails_clearly_and_stays_off_the_disk() {
    let stored = Stored::new().await;
    let mut s = spec(
        &stored.run,
        r#"dd if=/dev/zero of=/baton/out/big bs=1M count=200; echo "dd exit $?"; df -k /baton/out | tail -n 1; echo '{"result":"ok"}'"#,
    );
    s.max_artifact_bytes = 1024 * 1024;
    s.timeout = Duration::from_secs(20);
    let (outcome, logs, took) = stored.run_bounded(&s).await;
    let stderr = lines(&logs, Stream::Stderr).join("\n");
    assert!(stderr.contains("No space left on device"), "{logs:?}");
    let stdout = lines(&logs, Stream::Stdout);
    assert!(stdout.contains(&"dd exit 1"), "{stdout:?}");
    assert!(
        stdout.iter().any(|l| l.starts_with("tmpfs ")),
        "/baton/out is not a tmpfs: {stdout:?}"
    );
    assert!(!outcome.ok, "{outcome:?}");
    let error = outcome.error.unwrap_or_default();
    assert!(
        error.starts_with(
            "artifacts in /baton/out exceed the 1 MiB limit (max_artifact_bytes): big is "
        ),
        "{error}"
    );
    assert!(
        error.ends_with(" — write less, or raise artifacts.max_bytes in the plan"),
        "{error}"
    );
    assert!(outcome.artifacts.is_empty());
    eprintln!("quota hit, attempt failed after {took:?}: {error}");
}

/// The worker's copy of `name` while `/baton/out` is being read back (the
/// runtime stages it under the temporary directory).
fn staged_copy(name: &str) -> Option<PathBuf> {
    std::fs::read_dir(std::env::temp_dir())
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("baton-files-"))
        .map(|e| e.path().join("out").join(name))
        .find(|p| p.exists())
}

/// Cancel (a `baton cancel`, or the worker's shutdown) while `/baton/out`
/// is being read back: the attempt ends at once as cancelled and its
/// container and volumes go, which frees the worker's slot. The limit is
/// raised so that the 10 TiB sparse file is within it and its zeros stream.
#[tokio::test]
async fn cancel_during_collection_frees_the_slot() {
    let rt = Runtime::Docker(docker().await);
    let run = unique("rt-bounds");
    let leftovers = LabelledContainers::new("org.baton.run", &run);
    let name = format!("huge-{run}");
    let mut s: TaskSpec = spec(
        &run,
        &format!(r#"truncate -s {TEN_TIB} /baton/out/{name}; echo '{{"result":"ok"}}'"#),
    );
    s.max_artifact_bytes = 2 * TEN_TIB;
    s.timeout = Duration::from_secs(20);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let watched = name.clone();
    let cancelled_at = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(p) = staged_copy(&watched) {
                if std::fs::metadata(&p).map(|m| m.len() > 0).unwrap_or(false) {
                    trigger.cancel();
                    return Some(Instant::now());
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    });
    let started = Instant::now();
    let (outcome, _) = tokio::time::timeout(s.timeout + SLACK, run_with(&rt, &s, cancel.clone()))
        .await
        .unwrap_or_else(|_| panic!("still running after {:?}", s.timeout + SLACK));
    let ended = Instant::now();
    let cancelled_at = cancelled_at
        .await
        .expect("watcher")
        .expect("collection never started");
    let outcome = outcome.expect("runtime");
    assert!(!outcome.ok, "{outcome:?}");
    assert_eq!(outcome.error.as_deref(), Some("cancelled"));
    let after_cancel = ended - cancelled_at;
    assert!(
        after_cancel < Duration::from_secs(5),
        "ended {after_cancel:?} after the cancel"
    );
    assert!(staged_copy(&name).is_none(), "the staged copy is left");
    assert_nothing_left(&run, &leftovers).await;
    eprintln!(
        "cancelled {:?} into the attempt, ended {after_cancel:?} later",
        cancelled_at - started
    );
}

/// The quota is not a tmpfs that dies with the task: what a task left
/// before it was killed at its timeout is still collected and stored.
#[tokio::test]
async fn files_of_a_timed_out_task_are_still_collected() {
    let stored = Stored::new().await;
    let mut s = spec(
        &stored.run,
        r#"printf 'hello\n' > /baton/out/a.txt; sleep 60"#,
    );
    s.timeout = Duration::from_secs(2);
    let (outcome, _) = run_with(&stored.rt, &s, CancellationToken::new()).await;
    let outcome = outcome.expect("runtime");
    assert_eq!(outcome.error.as_deref(), Some("timed out after 2s"));
    let paths: Vec<_> = outcome.artifacts.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(paths, vec!["a.txt"]);
    assert_eq!(
        read_object(&stored.store, &outcome.artifacts[0].object).await,
        A_TXT
    );
    assert_nothing_left(&stored.run, &stored.leftovers).await;
}

/// A worker that died mid-task left the holder of `/baton/out` (labelled
/// `org.baton.holder-of`, not `org.baton.worker`) and the out volume: its
/// successor under the same id removes both.
#[tokio::test]
async fn a_restarted_worker_removes_the_holder_its_predecessor_left() {
    let worker = unique("rt-bounds-worker");
    let volume = unique("baton-test-out");
    let docker = |args: &[&str]| {
        let out = std::process::Command::new("docker")
            .args(args)
            .output()
            .expect("docker");
        assert!(out.status.success(), "docker {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    docker(&[
        "volume",
        "create",
        "--label",
        &format!("org.baton.worker={worker}"),
        "--label",
        "org.baton.scratch=true",
        &volume,
    ]);
    let holder = docker(&[
        "run",
        "-d",
        "-i",
        "--label",
        &format!("org.baton.holder-of={worker}"),
        "-v",
        &format!("{volume}:/baton/out:ro"),
        "--entrypoint",
        "/bin/sh",
        IMAGE,
    ]);
    let mut rt = Runtime::Docker(docker_common::docker().await);
    let removed = rt.adopt_leftovers(&worker).await.expect("adopt");
    assert_eq!(removed, 2, "the holder and the volume");
    let left = std::process::Command::new("docker")
        .args(["inspect", &holder])
        .output()
        .expect("docker inspect");
    assert!(!left.status.success(), "holder {holder} left");
    let volumes = std::process::Command::new("docker")
        .args(["volume", "ls", "-q", "--filter"])
        .arg(format!("name={volume}"))
        .output()
        .expect("docker volume ls");
    assert!(String::from_utf8_lossy(&volumes.stdout).trim().is_empty());
}
