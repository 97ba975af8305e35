//! Hostile tasks against the real Docker sandbox: each one tries to break out
//! and must fail *inside* its container, in the way the control promises.
//! docs/security.md (Sandbox) maps each test to its CIS Docker Benchmark item.
//!
//! Needs Docker and the agent image (busybox, no compilers), and nats-server
//! for the host workspace tests, which go through a real worker: these tests
//! fail, never skip, when either is missing.

mod docker_common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use baton_proto::v1::{self, event::Body};
use baton_proto::{bus, codec, subjects};
use baton_test_support::{LabelledContainers, NatsServer};
use baton_worker::runtime::grant::Ceiling;
use baton_worker::runtime::{
    DockerRuntime, LogLine, Outcome, Runtime, RuntimeError, SandboxPolicy, Stream, TaskSpec,
};
use docker_common::*;
use tokio_util::sync::CancellationToken;

/// Runs one hostile `script` in a fresh run; the run's containers are
/// removed when the guard drops, and none may outlive the attempt.
async fn hostile(script: &str, tweak: impl FnOnce(&mut TaskSpec)) -> (Outcome, Vec<LogLine>) {
    let rt = Runtime::Docker(docker().await);
    let run_id = unique("hostile");
    let leftovers = LabelledContainers::new("org.baton.run", &run_id);
    let mut spec = spec(&run_id, script);
    spec.timeout = Duration::from_secs(20);
    tweak(&mut spec);
    let (outcome, logs) = run_with(&rt, &spec, CancellationToken::new()).await;
    let outcome = outcome.unwrap_or_else(|e| panic!("runtime error: {e}"));
    assert_eq!(leftovers.count().await, 0, "container of {run_id} left");
    (outcome, logs)
}

fn all_output(logs: &[LogLine]) -> String {
    logs.iter()
        .map(|l| l.line.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn error_of(outcome: &Outcome) -> &str {
    outcome.error.as_deref().unwrap_or("")
}

#[tokio::test]
async fn host_file_is_not_readable() {
    let dir = tempfile::tempdir().unwrap();
    let secret = format!("host-secret-{:016x}", rand::random::<u64>());
    let path = dir.path().join("secret.txt");
    std::fs::write(&path, &secret).unwrap();
    let name = "secret.txt";
    // The exact host path, then a search of the whole container tree.
    let script = format!(
        "cat {p} || echo no-such-path; find / -name {name} 2>/dev/null | head -1 | xargs -r cat; \
         grep -rs {secret} / --exclude-dir=proc --exclude-dir=sys -l | head -1; exit 3",
        p = path.display()
    );
    let (outcome, logs) = hostile(&script, |_| {}).await;
    assert_eq!(outcome.exit_code, Some(3), "{outcome:?}");
    let output = all_output(&logs);
    assert!(output.contains("no-such-path"), "{output}");
    assert!(
        lines(&logs, Stream::Stderr)
            .iter()
            .any(|l| l.contains("No such file or directory")),
        "{logs:?}"
    );
    // The command line names the secret; only a file's *content* would add
    // a line made of it alone.
    assert!(
        !logs.iter().any(|l| l.line.trim() == secret),
        "host file leaked: {output}"
    );
}

#[tokio::test]
async fn network_is_unreachable() {
    let script = r#"
        tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' '; echo
        nc -w 2 1.1.1.1 80 </dev/null && echo REACHED-IP
        nslookup example.com && echo RESOLVED
        exit 4
    "#;
    let started = Instant::now();
    let (outcome, logs) = hostile(script, |_| {}).await;
    assert_eq!(outcome.exit_code, Some(4), "{outcome:?}");
    let stdout = lines(&logs, Stream::Stdout);
    assert_eq!(stdout[0].trim(), "lo", "only loopback: {stdout:?}");
    let output = all_output(&logs);
    assert!(!output.contains("REACHED-IP") && !output.contains("RESOLVED"));
    let stderr = lines(&logs, Stream::Stderr).join("\n");
    assert!(
        stderr.matches("Network is unreachable").count() >= 2,
        "nc and DNS must both fail for lack of a route: {stderr}"
    );
    // No route fails at once; a firewall that drops would hang until timeouts.
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn docker_socket_is_absent() {
    let script = r#"
        for s in /var/run/docker.sock /run/docker.sock /run/containerd/containerd.sock; do
            [ -e "$s" ] && echo "FOUND $s"
        done
        env | grep -i '^DOCKER_' && echo DOCKER-ENV
        nc -w 2 127.0.0.1 2375 </dev/null && echo TCP-API
        exit 5
    "#;
    let (outcome, logs) = hostile(script, |_| {}).await;
    assert_eq!(outcome.exit_code, Some(5), "{outcome:?}");
    let output = all_output(&logs);
    assert!(!output.contains("FOUND"), "{output}");
    assert!(!output.contains("DOCKER-ENV"), "{output}");
    assert!(!output.contains("TCP-API"), "{output}");
}

#[tokio::test]
async fn root_filesystem_is_read_only() {
    let script = r#"
        for f in /x /bin/x /etc/passwd /baton/x; do
            touch "$f" 2>&1 && echo "WROTE $f"
        done
        exit 6
    "#;
    let (outcome, logs) = hostile(script, |_| {}).await;
    assert_eq!(outcome.exit_code, Some(6), "{outcome:?}");
    let output = all_output(&logs);
    assert!(!output.contains("WROTE"), "{output}");
    let read_only = lines(&logs, Stream::Stdout)
        .iter()
        .filter(|l| l.contains("Read-only file system"))
        .count();
    assert_eq!(read_only, 4, "{output}");
}

/// Forks until the pids limit bites: the shell cannot fork any more and the
/// task fails on its own, long before its timeout.
#[tokio::test]
async fn fork_loop_is_stopped_by_the_pids_limit() {
    let script =
        "for i in $(seq 1 1000); do sleep 60 & echo \"started $i\"; done; echo ALL-STARTED";
    let started = Instant::now();
    let (outcome, logs) = hostile(script, |s| s.limits.pids = 48).await;
    assert!(!outcome.ok);
    assert_eq!(outcome.exit_code, Some(2), "{outcome:?}");
    let stdout = lines(&logs, Stream::Stdout);
    assert!(!stdout.contains(&"ALL-STARTED"));
    let last: usize = stdout
        .last()
        .and_then(|l| l.strip_prefix("started "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout:?}"));
    assert!(last < 48, "{last} processes under a limit of 48");
    let stderr = lines(&logs, Stream::Stderr).join("\n");
    assert!(stderr.contains("can't fork"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// The classic bomb never ends by itself: the timeout kills it, the container
/// goes, and the same runtime runs the next task normally.
#[tokio::test]
async fn fork_bomb_ends_at_its_timeout_and_the_host_is_fine() {
    let started = Instant::now();
    let (outcome, _) = hostile("bomb() { bomb | bomb & }; bomb; sleep 60", |s| {
        s.timeout = Duration::from_secs(3);
    })
    .await;
    assert!(!outcome.ok);
    assert_eq!(error_of(&outcome), "timed out after 3s");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let host_fork = std::process::Command::new("true").status().unwrap();
    assert!(host_fork.success(), "the host can still fork");
    let (after, _) = hostile(r#"echo '{"result":"ok"}'"#, |_| {}).await;
    assert!(after.ok, "{after:?}");
}

#[tokio::test]
async fn memory_past_the_limit_is_oom_killed() {
    let (outcome, _) = hostile(
        "dd if=/dev/zero of=/dev/null bs=128M count=1; echo '{\"result\":\"ok\"}'",
        |s| s.limits.memory_bytes = 48 * 1024 * 1024,
    )
    .await;
    assert!(!outcome.ok, "{outcome:?}");
    assert!(
        error_of(&outcome).starts_with("killed: exceeded memory limit 48 MiB"),
        "{outcome:?}"
    );
    // dd as the last command: its SIGKILL is the task's exit code.
    let (outcome, _) = hostile("dd if=/dev/zero of=/dev/null bs=128M count=1", |s| {
        s.limits.memory_bytes = 48 * 1024 * 1024
    })
    .await;
    assert_eq!(outcome.exit_code, Some(137), "{outcome:?}");
    assert_eq!(
        error_of(&outcome),
        "killed: exceeded memory limit 48 MiB (exit 137)"
    );
}

#[tokio::test]
async fn capabilities_cannot_be_gained() {
    let script = r#"
        grep -E '^Cap(Eff|Prm|Bnd|Amb):' /proc/self/status
        grep NoNewPrivs /proc/self/status
        echo x > /tmp/f
        chown 0:0 /tmp/f && echo CHOWNED
        mknod /tmp/null c 1 3 && echo MKNOD
        ping -c 1 -W 1 127.0.0.1 && echo RAW-SOCKET
        exit 7
    "#;
    let (outcome, logs) = hostile(script, |_| {}).await;
    assert_eq!(outcome.exit_code, Some(7), "{outcome:?}");
    let stdout = lines(&logs, Stream::Stdout);
    for set in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        let line = format!("{set}:\t0000000000000000");
        assert!(
            stdout.contains(&line.as_str()),
            "{set} not empty: {stdout:?}"
        );
    }
    // no-new-privileges: a setuid binary could not raise them either.
    assert!(stdout.contains(&"NoNewPrivs:\t1"), "{stdout:?}");
    let output = all_output(&logs);
    for gained in ["CHOWNED", "MKNOD", "RAW-SOCKET"] {
        assert!(!output.contains(gained), "{gained}: {output}");
    }
    let stderr = lines(&logs, Stream::Stderr).join("\n");
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
}

#[tokio::test]
async fn task_runs_as_uid_10001_not_root() {
    let script = r#"id -u; id -g; su -c id root </dev/null && echo BECAME-ROOT; exit 8"#;
    let (outcome, logs) = hostile(script, |_| {}).await;
    assert_eq!(outcome.exit_code, Some(8), "{outcome:?}");
    let stdout = lines(&logs, Stream::Stdout);
    assert_eq!(&stdout[..2], &["10001", "10001"], "{stdout:?}");
    assert!(!all_output(&logs).contains("BECAME-ROOT"));
}

#[tokio::test]
async fn a_root_sandbox_policy_is_refused() {
    for user in ["0", "0:0", "root", "root:root", "10001:0", ""] {
        let policy = SandboxPolicy {
            user: user.to_string(),
            ..Default::default()
        };
        match DockerRuntime::connect(policy).await {
            Err(RuntimeError::UnsafePolicy(e)) => {
                assert!(e.to_string().contains("root"), "{user}: {e}")
            }
            Err(e) => panic!("{user}: unexpected error {e}"),
            Ok(_) => panic!("a worker running tasks as {user:?} must be refused"),
        }
    }
}

// ------------------------------------------------- host workspaces
//
// A plan's `workspace: { host_path: "${{ inputs.repo }}" }` lets whoever
// triggers it choose a host path. These go the way a trigger does: a task
// message on NATS to a real worker, whose `--allow-mounts` is `allow`.

/// How one dispatch with a host workspace ended, and what its task logged.
struct Dispatched {
    finished: v1::TaskFinished,
    logs: Vec<String>,
}

/// Sends one task whose workspace is the host path `source` to a real
/// worker (Docker runtime) started with `--allow-mounts allow`.
async fn dispatch_host_workspace(
    source: &str,
    read_only: bool,
    allow: Vec<PathBuf>,
    script: &str,
) -> Dispatched {
    use futures::StreamExt;
    let nats = NatsServer::start();
    let run_id = unique("hostpath");
    let leftovers = LabelledContainers::new("org.baton.run", &run_id);
    let worker = baton_worker::Options {
        nats_url: nats.url(),
        roles: vec!["repo".into()],
        ceiling: Ceiling {
            allow_mounts: allow,
            ..Default::default()
        },
        grace: Duration::from_secs(1),
        ..Default::default()
    }
    .build(Runtime::Docker(docker().await))
    .await
    .expect("the worker starts");
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));
    let nc = async_nats::connect(nats.url()).await.unwrap();
    let mut events = nc.subscribe(subjects::run_events(&run_id)).await.unwrap();
    let mut logs = nc.subscribe(subjects::run_logs(&run_id)).await.unwrap();
    nc.flush().await.unwrap();
    let dispatch = v1::TaskDispatch {
        run_id: run_id.clone(),
        task_id: "t1".into(),
        attempt: 1,
        role: "repo".into(),
        image: IMAGE.into(),
        argv: vec!["sh".into(), "-c".into(), script.into()],
        timeout_ms: 20_000,
        workspace: Some(v1::Workspace {
            kind: "host".into(),
            source: source.into(),
            mount: "/workspace".into(),
            read_only,
        }),
        ..Default::default()
    };
    let js = async_nats::jetstream::new(nc.clone());
    bus::publish_acked(
        &js,
        subjects::task("repo", &run_id, "t1"),
        &subjects::msg_id::dispatch(&run_id, "t1", 1),
        &dispatch,
        "",
    )
    .await
    .expect("dispatch published");
    let finished = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(m) = events.next().await {
            let ev = codec::decode::<v1::Event>(&m.payload).expect("an event");
            if let Some(Body::TaskFinished(f)) = ev.body {
                return f;
            }
        }
        panic!("the event subscription ended")
    })
    .await
    .expect("the task finishes within 60 s");
    let mut lines = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), logs.next()).await {
        lines.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    stop.cancel();
    let _ = running.await;
    assert_eq!(leftovers.count().await, 0, "container of {run_id} left");
    Dispatched {
        finished,
        logs: lines,
    }
}

/// A file the hostile task tries to create on the host; removed on drop,
/// so that a run against a vulnerable worker leaves nothing behind.
struct HostMarker(PathBuf);

impl HostMarker {
    fn new() -> Self {
        HostMarker(PathBuf::from(format!(
            "/tmp/baton-hostile-{:016x}",
            rand::random::<u64>()
        )))
    }
    fn name(&self) -> String {
        self.0.file_name().unwrap().to_string_lossy().into_owned()
    }
}

impl Drop for HostMarker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[track_caller]
fn assert_refused(d: &Dispatched, path: &str, why: &str) {
    let f = &d.finished;
    assert!(!f.ok && f.permanent, "refused for good: {f:?}");
    assert!(
        f.error.contains(&format!("workspace host path {path}")) && f.error.contains(why),
        "the refusal names the path and why: {}",
        f.error
    );
    assert!(
        f.error.contains("--allow-mounts"),
        "the refusal names the flag: {}",
        f.error
    );
    assert!(d.logs.is_empty(), "nothing ran: {:?}", d.logs);
    eprintln!("refused: {}", f.error);
}

/// The attack: `repo=/`, read-write. Refused whatever the worker allows,
/// even `--allow-mounts /`; nothing of the host root reaches a container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_root_workspace_is_refused_even_when_everything_is_allowed() {
    for allow in [vec![], vec![PathBuf::from("/")]] {
        let marker = HostMarker::new();
        let script = format!(
            "cat /workspace/etc/hostname && echo SAW-HOST-ROOT; \
             echo pwned > /workspace/tmp/{m} && echo WROTE-HOST-ROOT; echo '{{\"result\":\"ok\"}}'",
            m = marker.name()
        );
        let d = dispatch_host_workspace("/", false, allow.clone(), &script).await;
        assert!(
            !marker.0.exists(),
            "the task wrote {} on the host",
            marker.0.display()
        );
        let output = d.logs.join("\n");
        assert!(!output.contains("SAW-HOST-ROOT"), "{allow:?}: {output}");
        assert_refused(&d, "/", "root");
    }
}

/// `/var/run` holds the engine's socket: root on the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_socket_directory_workspace_is_refused() {
    let script = "ls -la /workspace; [ -S /workspace/docker.sock ] && echo SOCKET; echo '{\"result\":\"ok\"}'";
    let d = dispatch_host_workspace("/var/run", true, vec!["/".into()], script).await;
    assert!(!d.logs.join("\n").contains("SOCKET"), "{:?}", d.logs);
    assert_refused(&d, "/var/run", "socket");
}

/// A symlink inside an allowed directory is resolved before the check: it
/// cannot smuggle `/etc` in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlink_out_of_the_allowed_root_is_refused() {
    let allowed = tempfile::tempdir().unwrap();
    let link = allowed.path().join("repo");
    std::os::unix::fs::symlink("/etc", &link).unwrap();
    let script = "cat /workspace/passwd && echo SAW-HOST-ETC; echo '{\"result\":\"ok\"}'";
    let d = dispatch_host_workspace(
        link.to_str().unwrap(),
        true,
        vec![allowed.path().to_path_buf()],
        script,
    )
    .await;
    assert!(!d.logs.join("\n").contains("SAW-HOST-ETC"), "{:?}", d.logs);
    assert_refused(&d, &link.display().to_string(), "/etc");
}

/// What `--allow-mounts` allows works, read-write, and only there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_workspace_inside_the_allowed_root_works() {
    use std::os::unix::fs::PermissionsExt;
    let allowed = tempfile::tempdir().unwrap();
    let repo = allowed.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    std::fs::write(repo.join("seed"), "from the host").unwrap();
    // The task runs as 10001: let it write, so only the mount decides.
    std::fs::set_permissions(&repo, std::fs::Permissions::from_mode(0o777)).unwrap();
    let script =
        "cat /workspace/seed; echo; echo patched > /workspace/new; echo '{\"result\":\"ok\"}'";
    let d = dispatch_host_workspace(
        repo.to_str().unwrap(),
        false,
        vec![allowed.path().to_path_buf()],
        script,
    )
    .await;
    assert!(d.finished.ok, "{:?} {:?}", d.finished, d.logs);
    assert!(d.logs.iter().any(|l| l == "from the host"), "{:?}", d.logs);
    assert_eq!(
        std::fs::read_to_string(repo.join("new")).unwrap(),
        "patched\n"
    );
}
