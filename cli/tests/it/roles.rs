//! Registered roles through the binary: `baton role apply` is idempotent, a
//! plan uses a registered role without declaring it, and a result that does
//! not match the role's output schema fails the task.

use std::process::Command;
use std::time::Duration;

use baton_proto::v1;

use crate::support::*;

fn baton() -> Command {
    Command::new(env!("CARGO_BIN_EXE_baton"))
}

const ROLE_FILE: &str = include_str!("fixtures/role-file.yaml");

/// A plan whose `qa` task prints `report` as its result; `qa` is not declared.
fn plan(report: &str) -> String {
    // JSON is YAML: no quoting of the shell line by hand.
    let run = serde_json::to_string(&["sh", "-c", &format!("echo '{report}'")]).unwrap();
    format!(
        r#"
name: review
phases:
  - id: review
    tasks:
      - id: check
        role: qa
        with: {{ target: src/lib.rs }}
        run: {run}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_role_schema_fails_a_mismatching_result_and_passes_a_matching_one() {
    let c = Cluster::start(Rt::Process).await;
    let server = c.server();
    let dir = tempfile::tempdir().unwrap();
    let roles = dir.path().join("roles.yaml");
    std::fs::write(&roles, ROLE_FILE).unwrap();
    let apply = || {
        baton()
            .args([
                "role",
                "apply",
                roles.to_str().unwrap(),
                "--server",
                &server,
            ])
            .output()
            .unwrap()
    };
    let out = apply();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "qa: created\n");
    let out = apply();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "qa: unchanged\n");
    let out = baton()
        .args(["role", "list", "--server", &server])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.starts_with("qa\n  image: \"baton/agent:local\"\n"),
        "{listed}"
    );

    // An invalid role file: exit 2 with file:line:col messages.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "roles:\n  qa: { image: x, outputs: { n: { type: int } } }\n",
    )
    .unwrap();
    let out = baton()
        .args(["role", "apply", bad.to_str().unwrap(), "--server", &server])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:2:41: unknown type `int`"), "{err}");

    // The task's output does not match: the run fails with the precise message.
    let run = c
        .submit(
            &plan(r#"{"result":"ok","outputs":{"verdict":"maybe"}}"#),
            &[],
        )
        .await;
    let r = c.wait_end(&run, Duration::from_secs(60)).await;
    assert_ne!(r.run_status(), v1::RunStatus::Succeeded);
    let t = task(&r, "check");
    assert_eq!(
        t.error,
        "result does not match role qa's output schema: output \"findings\" is missing \
         (required by role qa); output \"verdict\" is \"maybe\", expected one of approve, request_changes"
    );

    // A matching result passes; `with:` values arrive as BATON_INPUT_<NAME>.
    let report = r#"{"result":"ok","outputs":{"verdict":"approve","findings":0,"target":"'"$BATON_INPUT_TARGET"'"}}"#;
    let run = c.submit(&plan(report), &[]).await;
    let r = c.wait_end(&run, Duration::from_secs(60)).await;
    assert_eq!(r.run_status(), v1::RunStatus::Succeeded, "{r:?}");
    let out = baton()
        .args(["status", &run, "--json", "--server", &server])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = &v["tasks"][0];
    assert_eq!(check["result"]["outputs"]["target"], "src/lib.rs", "{v}");

    // Offline: `plan validate --roles` stands in for the registry.
    let plan_file = dir.path().join("plan.yaml");
    std::fs::write(&plan_file, plan("{}")).unwrap();
    let validate = |extra: &[&str]| {
        baton()
            .args(["plan", "validate", plan_file.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = validate(&["--roles", roles.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = validate(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown role `qa` for task `check` — no roles are declared; declare it under roles: or register it with baton role apply"),
        "{err}"
    );
}
