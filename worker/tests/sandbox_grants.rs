//! What a granted sandbox request changes in the real container, and that
//! it changes nothing else: the other controls stay on.

mod docker_common;

use baton_test_support::LabelledContainers;
use baton_worker::runtime::grant::{BindMount, Grant};
use baton_worker::runtime::{LogLine, Outcome, Runtime, Stream};
use docker_common::*;
use tokio_util::sync::CancellationToken;

async fn granted(script: &str, grant: Grant) -> (Outcome, Vec<LogLine>) {
    let rt = Runtime::Docker(docker().await);
    let run_id = unique("granted");
    let leftovers = LabelledContainers::new("org.baton.run", &run_id);
    let mut spec = spec(&run_id, script);
    spec.grant = grant;
    let (outcome, logs) = run_with(&rt, &spec, CancellationToken::new()).await;
    let outcome = outcome.unwrap_or_else(|e| panic!("runtime error: {e}"));
    assert_eq!(leftovers.count().await, 0, "container of {run_id} left");
    (outcome, logs)
}

#[tokio::test]
async fn granted_network_adds_an_interface_and_nothing_else() {
    let script = r#"
        tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' '; echo
        grep CapEff /proc/self/status; id -u
        touch /x 2>&1
        echo '{"result":"ok"}'
    "#;
    let grant = Grant {
        network: true,
        ..Default::default()
    };
    let (outcome, logs) = granted(script, grant).await;
    assert!(outcome.ok, "{outcome:?}");
    let stdout = lines(&logs, Stream::Stdout);
    assert!(stdout[0].contains("eth0"), "{stdout:?}");
    assert!(stdout.contains(&"CapEff:\t0000000000000000"), "{stdout:?}");
    assert!(stdout.contains(&"10001"), "{stdout:?}");
    assert!(
        stdout.iter().any(|l| l.contains("Read-only file system")),
        "{stdout:?}"
    );
}

#[tokio::test]
async fn granted_read_only_mount_is_readable_not_writable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.txt"), "cached").unwrap();
    // The task runs as 10001: let it read, so that only the mount mode decides writes.
    let status = std::process::Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let grant = Grant {
        mounts: vec![BindMount {
            host: dir.path().to_path_buf(),
            path: "/cache".into(),
            read_only: true,
        }],
        ..Default::default()
    };
    let script = r#"cat /cache/data.txt; echo; touch /cache/new 2>&1; echo '{"result":"ok"}'"#;
    let (outcome, logs) = granted(script, grant).await;
    assert!(outcome.ok, "{outcome:?}");
    let stdout = lines(&logs, Stream::Stdout);
    assert_eq!(stdout[0], "cached");
    assert!(
        stdout.iter().any(|l| l.contains("Read-only file system")),
        "{stdout:?}"
    );
    assert!(!dir.path().join("new").exists());
}
