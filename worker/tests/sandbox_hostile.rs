//! Hostile tasks against the real Docker sandbox: each one tries to break out
//! and must fail *inside* its container, in the way the control promises.
//! docs/security.md (Sandbox) maps each test to its CIS Docker Benchmark item.
//!
//! Needs Docker and the agent image (busybox, no compilers): these tests fail,
//! never skip, when the engine is unreachable.

mod docker_common;

use std::time::{Duration, Instant};

use baton_test_support::LabelledContainers;
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
            Err(RuntimeError::InvalidSpec(e)) => {
                assert!(e.contains("root"), "{user}: {e}")
            }
            Err(e) => panic!("{user}: unexpected error {e}"),
            Ok(_) => panic!("a worker running tasks as {user:?} must be refused"),
        }
    }
}
