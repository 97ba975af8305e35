//! Every seed workflow, as its example plan, end to end: real nats-server,
//! real Docker containers, the plan file exactly as shipped in `examples/`.

use std::time::Duration;

use baton_proto::{kinds, v1};
use baton_worker::runtime::Limits;

use crate::support::*;

const T: Duration = Duration::from_secs(240);

fn example(name: &str) -> String {
    let path = baton_test_support::workspace_root().join(format!("examples/{name}.yaml"));
    std::fs::read_to_string(path).expect("example exists")
}

/// A cluster whose worker serves the example's roles.
async fn cluster_for(yaml: &str) -> Cluster {
    cluster_allowing(yaml, Ceiling::default()).await
}

/// [`cluster_for`], the worker started with `ceiling` (`--allow-mounts`, …).
async fn cluster_allowing(yaml: &str, ceiling: Ceiling) -> Cluster {
    let plan = baton_plan::load("example.yaml", yaml).expect("example is valid");
    let roles: Vec<&str> = plan.roles.keys().map(String::as_str).collect();
    Cluster::start_with_ceiling(Rt::Docker, Limits::default(), 4, &roles, ceiling).await
}

fn phase<'a>(r: &'a v1::Run, id: &str) -> &'a v1::PhaseView {
    r.phases
        .iter()
        .find(|p| p.id == id)
        .unwrap_or_else(|| panic!("no stage {id} in {:?}", ids(r)))
}

fn ids(r: &v1::Run) -> Vec<(String, String)> {
    r.phases
        .iter()
        .map(|p| (p.id.clone(), p.phase_status().as_str().to_string()))
        .collect()
}

/// Say how long a run took, for people reading the test output.
fn report_run(name: &str, r: &v1::Run) {
    eprintln!(
        "example {name}: {} in {:.1} s, {} stages, {} task runs",
        r.run_status(),
        (r.finished_ms - r.created_ms) as f64 / 1000.0,
        r.phases.len(),
        r.phases.iter().map(|p| p.outcomes.len()).sum::<usize>()
    );
}

fn outputs(t: &v1::TaskView) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&t.result_json).unwrap_or_default();
    v["outputs"].clone()
}

/// An artifact's bytes from the object store, checked against its digest.
async fn artifact(c: &Cluster, a: &v1::Artifact) -> String {
    use sha2::Digest;
    use tokio::io::AsyncReadExt;
    let client = async_nats::connect(c.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let store = js
        .get_object_store(baton_proto::subjects::ARTIFACTS_BUCKET)
        .await
        .unwrap();
    let mut obj = store.get(&a.object).await.expect("artifact stored");
    let mut bytes = Vec::new();
    obj.read_to_end(&mut bytes).await.unwrap();
    assert_eq!(bytes.len() as u64, a.size, "{}", a.path);
    assert_eq!(hex(&sha2::Sha256::digest(&bytes)), a.sha256, "{}", a.path);
    String::from_utf8(bytes).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn remove_volume(run: &str) {
    let _ = std::process::Command::new("docker")
        .args(["volume", "rm", "-f", &format!("baton-ws-{run}")])
        .output();
}

/// The run succeeded; else its task ids and reason.
fn assert_succeeded(r: &v1::Run) {
    assert_eq!(
        r.run_status(),
        v1::RunStatus::Succeeded,
        "{:?} {}",
        ids(r),
        r.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enhancement_sprint_merges_eight_roles_in_dependency_order() {
    let yaml = example("enhancement-sprint");
    let c = cluster_for(&yaml).await;
    let run = c.submit(&yaml, &[]).await;
    let r = c.wait_end(&run, T).await;
    report_run("enhancement-sprint", &r);
    remove_volume(&run);
    assert_succeeded(&r);
    assert_eq!(
        outputs(task(&r, "build-arch"))["read_only"],
        true,
        "ci sees the workspace read-only"
    );
    let validate = task(&r, "validate");
    assert_eq!(
        outputs(validate)["order"],
        "arch plat sec obs net ops qa docs"
    );
    assert_eq!(outputs(task(&r, "test"))["passed"], 7);
    let merges = validate
        .artifacts
        .iter()
        .find(|a| a.path == "MERGES.txt")
        .expect("MERGES artifact");
    let text = artifact(&c, merges).await;
    let who: Vec<&str> = text.lines().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(
        who,
        ["arch", "plat", "sec", "obs", "net", "ops", "qa", "docs"]
    );
    let runbook = validate
        .artifacts
        .iter()
        .find(|a| a.path == "runbook.md")
        .unwrap();
    let text = artifact(&c, runbook).await;
    assert!(
        text.contains("kyverno.yaml") && text.contains("cilium.yaml"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_train_ga_promotes_through_environments_and_canary_then_flips_ga() {
    let yaml = example("release-train-ga");
    let c = cluster_for(&yaml).await;
    let good = c.submit(&yaml, &[("version", "v3.2.0")]).await;
    let breach = c.submit(&yaml, &[("breach_at", "50")]).await;
    for run in [&good, &breach] {
        let waiting = c.wait_waiting(run, T).await;
        assert_eq!(
            phase(&waiting, "p6-release@stage").phase_status(),
            v1::PhaseStatus::Passed
        );
        assert!(
            waiting
                .waiting
                .contains("approval for phase p6-release@prod"),
            "{}",
            waiting.waiting
        );
        c.decide(run, true, "prod go").await.expect("approve");
    }
    let r = c.wait_end(&good, T).await;
    report_run("release-train-ga", &r);
    assert_succeeded(&r);
    for s in [
        "p6-release@dev",
        "p6-release@stage",
        "p6-release@prod",
        "p6-prod-canary/10%",
        "p6-prod-canary/50%",
    ] {
        assert_eq!(phase(&r, s).phase_status(), v1::PhaseStatus::Passed, "{s}");
    }
    let last = phase(&r, "p6-prod-canary/100%");
    assert_eq!(
        (last.phase_status(), last.canary_weight),
        (v1::PhaseStatus::Passed, 100)
    );
    assert_eq!(last.reason, "canary promoted: every step passed");
    assert_eq!(outputs(task(&r, "evidence-pack"))["evidence_files"], 4);
    let deploys = logs_of(&c, &good, "deploy").await;
    for env in ["dev", "stage", "prod"] {
        assert!(
            deploys.contains(&format!("deploying v3.2.0-rc.1 to {env}")),
            "{deploys:?}"
        );
    }
    let holds = c
        .events(&good)
        .await
        .into_iter()
        .filter(
            |e| matches!(&e.body, Some(v1::event::Body::PhaseChanged(p)) if kinds::phase_status(p) == v1::PhaseStatus::Holding),
        )
        .count();
    assert_eq!(holds, 3, "one hold per canary step");

    let r = c.wait_end(&breach, T).await;
    report_run("release-train-ga breach_at=50", &r);
    assert_eq!(
        r.run_status(),
        v1::RunStatus::RolledBack,
        "{:?} {}",
        ids(&r),
        r.reason
    );
    assert_eq!(
        phase(&r, "p6-prod-canary/10%").phase_status(),
        v1::PhaseStatus::RolledBack
    );
    assert_eq!(
        phase(&r, "p6-prod-canary/100%").phase_status(),
        v1::PhaseStatus::Pending
    );
    assert_eq!(
        task(&r, "flip-ga-flags").task_status(),
        v1::TaskStatus::Pending,
        "GA is never flipped on a breach"
    );
    let inc = &r.incidents[0];
    assert_eq!(
        (inc.kind.as_str(), inc.phase_id.as_str()),
        ("canary_breach", "p6-prod-canary/50%")
    );
    assert!(
        inc.reasons.iter().any(|x| x == "last known good: 10%"),
        "{inc:?}"
    );
    let restore = logs_of(&c, &breach, "restore-known-good").await;
    assert!(
        restore.iter().any(|l| l.contains("weight 10%")),
        "{restore:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infra_enhancement_routes_by_risk_at_every_level() {
    let yaml = example("infra-enhancement");
    let c = cluster_for(&yaml).await;
    let mut runs = Vec::new();
    for risk in ["low", "medium", "high", "critical"] {
        runs.push((risk, c.submit(&yaml, &[("risk", risk)]).await));
    }
    for (risk, run) in runs {
        let r = c.wait_end(&run, T).await;
        report_run(&format!("infra-enhancement risk={risk}"), &r);
        assert_eq!(
            r.run_status(),
            v1::RunStatus::Succeeded,
            "{risk}: {:?} {}",
            ids(&r),
            r.reason
        );
        let high = matches!(risk, "high" | "critical");
        for t in ["security-review", "performance-tests", "security-scan"] {
            let want = if high {
                v1::TaskStatus::Succeeded
            } else {
                v1::TaskStatus::Skipped
            };
            assert_eq!(task(&r, t).task_status(), want, "{risk}: {t}");
        }
        let staging = task(&r, "staging-deploy");
        if risk == "low" {
            assert_eq!(staging.task_status(), v1::TaskStatus::Skipped);
            assert!(
                staging.error.contains(r#"inputs.risk = "low""#),
                "{}",
                staging.error
            );
        } else {
            assert_eq!(staging.task_status(), v1::TaskStatus::Succeeded, "{risk}");
        }
        assert_eq!(
            task(&r, "production-deploy").task_status(),
            v1::TaskStatus::Succeeded,
            "{risk}"
        );
        let window = phase(&r, "maintenance-window");
        if risk == "critical" {
            assert_eq!(window.phase_status(), v1::PhaseStatus::Passed);
            assert!(window
                .gates
                .iter()
                .any(|g| g.kind == "window" && g.verdict == "pass"));
        } else {
            assert_eq!(window.phase_status(), v1::PhaseStatus::Skipped, "{risk}");
            assert!(window.reason.contains("is false"), "{}", window.reason);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_dag_finds_the_planted_secret_and_patches_it_after_approval() {
    use std::os::unix::fs::PermissionsExt;
    const SECRET: &str = "AKIAIOSFODNN7EXAMPLE";
    let repo = tempfile::tempdir().unwrap();
    let config = repo.path().join("config");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(repo.path().join("README.md"), "# service\n").unwrap();
    let settings = config.join("settings.py");
    std::fs::write(
        &settings,
        format!("DEBUG = False\nREGION = 'eu-west-1'\nAWS_KEY = '{SECRET}'\n"),
    )
    .unwrap();
    // The patcher runs as uid 10001: let it write.
    for p in [repo.path(), config.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    std::fs::set_permissions(&settings, std::fs::Permissions::from_mode(0o666)).unwrap();

    let yaml = example("agent-dag");
    // The host path comes from an input: the worker allows the repository
    // only, as an operator would (`--allow-mounts`).
    let allow = Ceiling {
        allow_mounts: vec![repo.path().to_path_buf()],
        ..Default::default()
    };
    let c = cluster_allowing(&yaml, allow).await;
    let run = c
        .submit(&yaml, &[("repo", repo.path().to_str().unwrap())])
        .await;
    let waiting = c.wait_waiting(&run, T).await;
    assert_eq!(
        task(&waiting, "patch").task_status(),
        v1::TaskStatus::AwaitingApproval
    );
    let found = outputs(task(&waiting, "compliance"));
    assert_eq!(
        (found["violations"].as_i64(), found["severity"].as_str()),
        (Some(1), Some("critical"))
    );
    assert_eq!(
        outputs(task(&waiting, "review"))["verdict"],
        "request_changes"
    );
    let report = task(&waiting, "compliance")
        .artifacts
        .iter()
        .find(|a| a.path == "violations.txt")
        .unwrap();
    assert_eq!(
        artifact(&c, report).await,
        "./config/settings.py:3:aws-access-key\n"
    );
    assert!(
        std::fs::read_to_string(&settings).unwrap().contains(SECRET),
        "nothing patched before approval"
    );
    c.decide(&run, true, "patch it").await.expect("approve");
    let r = c.wait_end(&run, T).await;
    report_run("agent-dag", &r);
    assert_succeeded(&r);
    assert_eq!(outputs(task(&r, "rescan"))["passed"], true);
    let patched = std::fs::read_to_string(&settings).unwrap();
    assert!(
        !patched.contains(SECRET) && patched.contains("${AWS_ACCESS_KEY_ID}"),
        "{patched}"
    );
    for t in ["compliance", "review", "patch", "rescan"] {
        let logs = logs_of(&c, &run, t).await;
        assert!(
            !logs.iter().any(|l| l.contains(SECRET)),
            "{t} logged the secret"
        );
    }
    for e in c.events(&run).await {
        assert!(
            !format!("{e:?}").contains(SECRET),
            "an event carries the secret"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quality_loop_goes_green_on_iteration_three_or_gives_up_at_five() {
    let yaml = example("quality-loop");
    let c = cluster_for(&yaml).await;
    let green = c.submit(&yaml, &[]).await;
    let stuck = c.submit(&yaml, &[("fix_per_iteration", "0")]).await;
    let r = c.wait_end(&green, T).await;
    report_run("quality-loop", &r);
    remove_volume(&green);
    assert_succeeded(&r);
    let verdicts: Vec<(u32, &str)> = r
        .iterations
        .iter()
        .map(|i| (i.iteration, i.verdict.as_str()))
        .collect();
    assert_eq!(
        verdicts,
        [
            (1, "not green"),
            (2, "not green"),
            (3, "green"),
            (4, "skipped"),
            (5, "skipped")
        ]
    );
    assert_eq!(phase(&r, "scan#4").phase_status(), v1::PhaseStatus::Skipped);
    let scan3 = logs_of(&c, &green, "scan").await;
    assert!(
        scan3
            .iter()
            .any(|l| l.contains(r#"previous report: {"iteration":2,"remaining":1}"#)),
        "{scan3:?}"
    );
    let summary = logs_of(&c, &green, "summary").await;
    assert_eq!(
        summary[0], r#"{"iteration":3,"remaining":0}"#,
        "{summary:?}"
    );

    let r = c.wait_end(&stuck, T).await;
    report_run("quality-loop fix_per_iteration=0", &r);
    remove_volume(&stuck);
    assert_eq!(
        r.run_status(),
        v1::RunStatus::Halted,
        "{:?} {}",
        ids(&r),
        r.reason
    );
    assert!(
        r.reason
            .contains("repeat until-green gave up: not green after 5 iterations"),
        "{}",
        r.reason
    );
    assert_eq!(r.iterations.len(), 5);
    assert!(r.iterations.iter().all(|i| i.verdict == "not green"));
    assert_eq!(r.incidents[0].kind, "halt");
}
