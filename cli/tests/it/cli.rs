//! The `baton` binary as people use it.

use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn baton() -> Command {
    Command::new(env!("CARGO_BIN_EXE_baton"))
}

/// Run `cmd`; its output, after asserting that it succeeded.
fn succeeds(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn example(name: &str) -> String {
    baton_test_support::workspace_root()
        .join("examples")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn plan_validate_prints_a_summary() {
    let out = succeeds(baton().args(["plan", "validate", &example("release-train.yaml")]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("release-train"), "{text}");
    assert!(text.contains("deploy"), "{text}");
}

#[test]
fn plan_validate_reports_file_line_col_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.yaml");
    std::fs::write(
        &f,
        "name: bad\nroles:\n  dev: { image: x }\nphases:\n  - id: p\n    tasks:\n      - id: a\n        role: dev\n        timout: 5s\n        run: [\"true\"]\n",
    )
    .unwrap();
    let out = baton().args(["plan", "validate"]).arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:9:9:", f.display())), "{err}");
    assert!(err.contains("did you mean `timeout`"), "{err}");
}

#[test]
fn run_of_a_missing_file_or_bad_input_exits_2() {
    let out = baton()
        .args(["run", "/nonexistent/plan.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = baton()
        .args(["run", &example("release-train.yaml"), "--input", "noequals"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn docker_unreachable_is_one_clear_line() {
    let out = baton()
        .args([
            "worker",
            "--roles",
            "dev",
            "--nats-url",
            "nats://127.0.0.1:1",
        ])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        line.contains("cannot reach Docker") && line.contains("DOCKER_HOST"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_wait_json_and_approve_through_the_cli() {
    let c = Cluster::start(Rt::Docker).await;
    let server = c.server();
    let file = example("release-train.yaml");
    let s2 = server.clone();
    let waiter = tokio::process::Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["run", &file, "--wait", "--json", "--server", &s2])
        .kill_on_drop(true)
        .output();
    let waiter = tokio::spawn(tokio::time::timeout(Duration::from_secs(120), waiter));
    // Find the run and approve it the way a person would.
    let run = eventually(
        "the run never waited for approval",
        Duration::from_secs(60),
        async || {
            // The client flags are global: before the command, as
            // deploy/README.md prints them.
            let out = baton()
                .args(["--server", &server, "runs", "--json"])
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            match v.as_array().and_then(|a| a.first()) {
                Some(r) if r["waiting"].as_str().unwrap_or("").contains("approval") => {
                    Some(r["run_id"].as_str().unwrap().to_string())
                }
                _ => None,
            }
        },
    )
    .await;
    succeeds(baton().args(["approve", &run, "--reason", "ship it", "--server", &server]));
    let out = waiter
        .await
        .unwrap()
        .expect("baton run --wait ends after the approval")
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["run_id"], run.as_str());
    assert_eq!(v["status"], "succeeded");
    assert_eq!(v["phases"][0]["gates"][1]["kind"], "expr");
    assert_eq!(v["phases"][0]["gates"][1]["verdict"], "pass");
    let deploy = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "deploy")
        .unwrap();
    assert_eq!(deploy["role"], "ops");
    assert_eq!(deploy["attempts"], 1);
    assert_eq!(deploy["exit_code"], 0);
    assert_eq!(deploy["result"]["outputs"]["p95_ms"], 180);

    // Without --wait, --json prints the id at once.
    let out = baton()
        .args([
            "run",
            &example("release-train.yaml"),
            "--json",
            "--server",
            &server,
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["run_id"].as_str().is_some(), "{v}");
    // Status of an unknown run: NOT_FOUND, exit 2.
    let out = baton()
        .args(["status", "0000000000000000000", "--server", &server])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    // Logs of a finished task.
    let out = baton()
        .args(["logs", &run, "deploy", "--server", &server])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().next(),
        Some("deploying v3.0.0")
    );
}

#[test]
fn nats_unreachable_is_one_clear_line_not_a_hang() {
    let t = std::time::Instant::now();
    let out = baton()
        .args(["gates", "--nats-url", "nats://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error: cannot reach NATS at nats://127.0.0.1:1"),
        "{err}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "gave up in {:?}",
        t.elapsed()
    );
}
