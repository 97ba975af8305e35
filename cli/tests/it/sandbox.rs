//! A role's `sandbox:` end to end: `baton plan validate` warns and still
//! validates, and a worker that was not allowed a widening fails the task at
//! once and for good, naming the flag that would allow it.

use std::process::Command;
use std::time::Duration;

use baton_proto::v1;

use crate::support::*;

const WIDE: &str = include_str!("fixtures/wide.yaml");

#[test]
fn plan_validate_warns_per_widening_and_still_validates() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wide.yaml");
    std::fs::write(&file, WIDE).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["plan", "validate"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning:")).collect();
    assert_eq!(warnings.len(), 3, "{stderr}");
    let at = format!("{}:5:5: warning: role `dev` ", file.display());
    assert!(warnings.iter().all(|w| w.starts_with(&at)), "{stderr}");
    assert!(warnings[0].contains("network access"), "{stderr}");
    assert!(
        warnings[1].contains("/srv/cache at /cache read-only"),
        "{stderr}"
    );
    assert!(warnings[2].contains("512 processes"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("wide"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refuses_what_it_was_not_allowed_for_good() {
    // The refusal comes before any runtime, so the process runtime proves it.
    let c = Cluster::start(Rt::Process).await;
    let run = c.submit(WIDE, &[]).await;
    let r = c.wait_end(&run, Duration::from_secs(60)).await;
    // With no rollback steps, the phase's failure ends the run either way.
    assert!(
        [v1::RunStatus::Failed, v1::RunStatus::RolledBack].contains(&r.run_status()),
        "{r:#?}"
    );
    let t = task(&r, "fetch");
    assert_eq!(t.task_status(), v1::TaskStatus::Failed, "{t:#?}");
    assert_eq!(t.attempts, 1, "a refusal is permanent: no retries: {t:#?}");
    assert!(
        t.error.contains("sandbox refused by worker") && t.error.contains("--allow-network"),
        "{}",
        t.error
    );
}
