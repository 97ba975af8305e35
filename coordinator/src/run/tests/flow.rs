//! Stages: environments, canary steps, `when`, `repeat`, `stop_when`, windows.

use super::*;

fn sim_with(yaml: &str, inputs: &[(&str, &str)]) -> (Sim, Vec<Command>) {
    let sub = v1::RunSubmitted {
        plan_yaml: yaml.into(),
        plan_file: "plan.yaml".into(),
        inputs: inputs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    let (st, cmds) = RunState::submitted("r1", &sub, 1_000).expect("plan loads");
    (Sim { st, t: 1_000 }, cmds)
}

fn incidents(cmds: &[Command]) -> Vec<&v1::Incident> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Emit {
                body: Body::Incident(i),
                ..
            } => Some(i),
            _ => None,
        })
        .collect()
}

fn stage_ids(sim: &Sim) -> Vec<&str> {
    sim.st.phases.iter().map(|p| p.id.as_str()).collect()
}

fn phase_status(sim: &Sim, id: &str) -> PhaseStatus {
    sim.st.phases.iter().find(|p| p.id == id).unwrap().status
}

const ENVS: &str = r#"
name: envs
roles: { ops: { image: img } }
environments: [dev, { name: prod, gates: [ { approval: {} } ] }]
phases:
  - id: build
    tasks: [ { id: b, role: ops, run: "true" } ]
  - id: deploy
    per_environment: true
    tasks: [ { id: d, role: ops, run: "deploy ${{ environment.name }}" } ]
  - id: verify
    per_environment: true
    tasks: [ { id: v, role: ops, run: "true" } ]
"#;

#[test]
fn environments_expand_and_carry_their_own_gates() {
    let (mut sim, _) = sim_with(ENVS, &[]);
    assert_eq!(
        stage_ids(&sim),
        [
            "build",
            "deploy@dev",
            "verify@dev",
            "deploy@prod",
            "verify@prod"
        ]
    );
    sim.finish("b", 1, true, "{}");
    let cmds = sim.gate("build", 0, v1::Verdict::Pass);
    let d = dispatches(&cmds);
    assert_eq!(d[0].argv, ["sh", "-c", "deploy dev"]);
    assert_eq!(d[0].env["BATON_ENVIRONMENT"], "dev");
    assert_eq!(d[0].phase_id, "deploy@dev");
    sim.finish("d", 1, true, "{}");
    sim.gate("deploy@dev", 0, v1::Verdict::Pass);
    let cmds = sim.finish("v", 1, true, "{}");
    assert_eq!(gates_asked(&cmds), ["tasks"], "dev has no promotion gate");
    let cmds = sim.gate("verify@dev", 0, v1::Verdict::Pass);
    assert_eq!(dispatches(&cmds)[0].argv, ["sh", "-c", "deploy prod"]);
    assert_eq!(dispatches(&cmds)[0].attempt, 2, "attempts keep counting");
    sim.finish("d", 2, true, "{}");
    sim.gate("deploy@prod", 0, v1::Verdict::Pass);
    let cmds = sim.finish("v", 2, true, "{}");
    assert_eq!(gates_asked(&cmds), ["tasks", "approval"], "prod's own gate");
    sim.gate("verify@prod", 0, v1::Verdict::Pass);
    sim.gate("verify@prod", 1, v1::Verdict::Pass);
    assert_eq!(sim.st.status, RunStatus::Succeeded);
    let view = view::to_proto(&sim.st);
    assert_eq!(view.phases[3].environment, "prod");
    assert_eq!(view.phases[3].phase, "deploy");
    assert_eq!(
        view.phases[3].outcomes[0].task_status(),
        v1::TaskStatus::Succeeded
    );
    let d = view.tasks.iter().find(|t| t.id == "d").unwrap();
    assert_eq!(d.attempts, 1, "each environment counts its own attempts");
}

const CANARY: &str = r#"
name: canary
roles: { ops: { image: img } }
phases:
  - id: rollout
    canary: { steps: [10, 50, 100], hold: 30s }
    tasks: [ { id: shift, role: ops, run: "shift ${{ canary.weight }}" } ]
    gates: [ { expr: "tasks.shift.outputs.errors < 1" } ]
    rollback: [ { id: restore, role: ops, run: "true" } ]
"#;

#[test]
fn canary_holds_each_step_and_a_breach_rolls_back_to_the_known_good_weight() {
    let (mut sim, cmds) = sim_with(CANARY, &[]);
    assert_eq!(dispatches(&cmds)[0].argv, ["sh", "-c", "shift 10"]);
    let cmds = sim.finish("shift", 1, true, r#"{"outputs":{"errors":0}}"#);
    assert_eq!(phase_status(&sim, "rollout/10%"), PhaseStatus::Holding);
    let Some(Command::StartStageTimer {
        phase_id,
        round,
        at_ms,
    }) = cmds
        .iter()
        .find(|c| matches!(c, Command::StartStageTimer { .. }))
    else {
        panic!("no hold timer: {cmds:?}")
    };
    assert_eq!((phase_id.as_str(), *at_ms), ("rollout/10%", sim.t + 30_000));
    assert!(gates_asked(&cmds).is_empty(), "gates wait for the hold");
    let cmds = sim.apply(Body::TimerFired(v1::TimerFired {
        phase_id: phase_id.clone(),
        round: *round,
        ..Default::default()
    }));
    assert_eq!(gates_asked(&cmds), ["tasks", "expr"]);
    sim.gate("rollout/10%", 0, v1::Verdict::Pass);
    let cmds = sim.gate("rollout/10%", 1, v1::Verdict::Pass);
    assert_eq!(dispatches(&cmds)[0].env["BATON_CANARY_WEIGHT"], "50");
    sim.finish("shift", 2, true, r#"{"outputs":{"errors":3}}"#);
    let round = sim.st.phases[1].round;
    sim.apply(Body::TimerFired(v1::TimerFired {
        phase_id: "rollout/50%".into(),
        round,
        ..Default::default()
    }));
    sim.gate("rollout/50%", 0, v1::Verdict::Pass);
    let cmds = sim.gate("rollout/50%", 1, v1::Verdict::Fail);
    let inc = incidents(&cmds);
    assert_eq!(inc[0].kind, "canary_breach");
    assert_eq!(inc[0].phase_id, "rollout/50%");
    assert!(
        inc[0].reasons[1].contains("last known good: 10%"),
        "{inc:?}"
    );
    let d = dispatches(&cmds);
    assert_eq!(d[0].task_id, "restore");
    assert_eq!(d[0].env["BATON_CANARY_KNOWN_GOOD"], "10");
    sim.finish("restore", 1, true, "{}");
    assert_eq!(sim.st.status, RunStatus::RolledBack);
    assert_eq!(phase_status(&sim, "rollout/100%"), PhaseStatus::Pending);
}

const WHEN: &str = r#"
name: when
inputs: { risk: low }
roles: { ops: { image: img } }
phases:
  - id: assess
    tasks:
      - { id: a, role: ops, run: "true" }
      - { id: extra, role: ops, run: "true", when: "inputs.risk == 'high'" }
      - { id: after, role: ops, run: "true", needs: [extra] }
  - id: review
    when: "inputs.risk in ['high', 'critical']"
    tasks: [ { id: r, role: ops, run: "true" } ]
  - id: ship
    tasks: [ { id: s, role: ops, run: "true" } ]
"#;

#[test]
fn when_skips_tasks_and_phases_with_the_values_it_rests_on() {
    let (mut sim, cmds) = sim_with(WHEN, &[("risk", "low")]);
    let ids: Vec<&str> = dispatches(&cmds)
        .iter()
        .map(|d| d.task_id.as_str())
        .collect();
    assert_eq!(
        ids,
        ["a", "after"],
        "a skipped `when` does not block its dependents"
    );
    assert_eq!(sim.status("extra"), TaskStatus::Skipped);
    assert!(sim.st.tasks["extra"]
        .error
        .contains("inputs.risk = \"low\""));
    sim.finish("a", 1, true, "{}");
    let cmds = sim.finish("after", 1, true, "{}");
    let Some(Command::AskGate { request, .. }) =
        cmds.iter().find(|c| matches!(c, Command::AskGate { .. }))
    else {
        panic!("{cmds:?}")
    };
    let counted: Vec<&str> = request.tasks.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(
        counted,
        ["a", "after"],
        "tasks gate counts what was meant to run"
    );
    let cmds = sim.gate("assess", 0, v1::Verdict::Pass);
    assert_eq!(phase_status(&sim, "review"), PhaseStatus::Skipped);
    assert!(
        sim.st.phases[1].reason.contains("is false"),
        "{}",
        sim.st.phases[1].reason
    );
    assert_eq!(dispatched(&cmds), [("s".to_string(), 1)]);

    let (_, cmds) = sim_with(WHEN, &[("risk", "high")]);
    let ids: Vec<&str> = dispatches(&cmds)
        .iter()
        .map(|d| d.task_id.as_str())
        .collect();
    assert_eq!(ids, ["a", "extra"]);
}

const LOOP: &str = r#"
name: loop
roles: { qa: { image: img } }
repeat: { phases: [scan, fix], until: { expr: "tasks.fix.outputs.failures == 0" }, max: 5 }
phases:
  - id: scan
    tasks: [ { id: scan, role: qa, run: "echo ${{ loop.iteration }}" } ]
  - id: fix
    tasks: [ { id: fix, role: qa, run: "true" } ]
  - id: report
    tasks: [ { id: report, role: qa, run: "true" } ]
"#;

fn iterate(sim: &mut Sim, n: u32, failures: u32) -> Vec<Command> {
    sim.finish("scan", n, true, "{}");
    sim.gate(&format!("scan#{n}"), 0, v1::Verdict::Pass);
    sim.finish(
        "fix",
        n,
        true,
        &format!(r#"{{"outputs":{{"failures":{failures}}}}}"#),
    );
    let fix = format!("fix#{n}");
    sim.gate(&fix, 0, v1::Verdict::Pass);
    let v = if failures == 0 {
        v1::Verdict::Pass
    } else {
        v1::Verdict::Fail
    };
    sim.gate(&fix, 1, v)
}

#[test]
fn repeat_runs_until_green_and_skips_the_rest() {
    let (mut sim, cmds) = sim_with(LOOP, &[]);
    assert_eq!(dispatches(&cmds)[0].argv, ["sh", "-c", "echo 1"]);
    assert_eq!(sim.st.phases.len(), 11);
    iterate(&mut sim, 1, 4);
    let cmds = iterate(&mut sim, 2, 2);
    assert_eq!(dispatches(&cmds)[0].env["BATON_ITERATION"], "3");
    let cmds = iterate(&mut sim, 3, 0);
    assert_eq!(dispatched(&cmds), [("report".to_string(), 1)]);
    assert_eq!(phase_status(&sim, "scan#4"), PhaseStatus::Skipped);
    assert_eq!(phase_status(&sim, "fix#5"), PhaseStatus::Skipped);
    let report: Vec<(u32, String)> = view::to_proto(&sim.st)
        .iterations
        .iter()
        .map(|i| (i.iteration, i.verdict.clone()))
        .collect();
    assert_eq!(
        report,
        [
            (1, "not green".into()),
            (2, "not green".into()),
            (3, "green".into()),
            (4, "skipped".into()),
            (5, "skipped".into())
        ]
    );
}

#[test]
fn repeat_gives_up_after_max() {
    let (mut sim, _) = sim_with(LOOP, &[]);
    for n in 1..=5 {
        iterate(&mut sim, n, 1);
    }
    assert_eq!(sim.st.status, RunStatus::RolledBack);
    assert!(
        sim.st
            .reason
            .contains("repeat scan gave up: not green after 5 iterations"),
        "{}",
        sim.st.reason
    );
}

const STOP: &str = r#"
name: stop
roles: { sec: { image: img } }
stop_when: ["tasks.scan.outputs.critical > 0"]
incidents: { webhook: "https://hooks.example/x" }
phases:
  - id: audit
    tasks:
      - { id: scan, role: sec, run: "true" }
      - { id: slow, role: sec, run: "true" }
    rollback: [ { id: undo, role: sec, run: "true" } ]
"#;

#[test]
fn stop_when_stops_at_once_raises_an_incident_and_rolls_back() {
    let (mut sim, _) = sim_with(STOP, &[]);
    let cmds = sim.finish("scan", 1, true, r#"{"outputs":{"critical":2}}"#);
    let inc = incidents(&cmds);
    assert_eq!((inc[0].kind.as_str(), inc[0].stop), ("stop_when", true));
    // The URL may carry a token: it never goes on the bus; the engine
    // delivers to the plan's.
    assert_eq!(inc[0].webhook, "");
    assert_eq!(
        sim.st.plan.incident_webhook.as_deref(),
        Some("https://hooks.example/x")
    );
    assert!(inc[0].reasons[0].contains("tasks.scan.outputs.critical = 2"));
    assert_eq!(sim.status("slow"), TaskStatus::Cancelled);
    assert_eq!(dispatched(&cmds), [("undo".to_string(), 1)]);
    sim.finish("undo", 1, true, "{}");
    assert_eq!(sim.st.status, RunStatus::RolledBack);
    assert_eq!(view::to_proto(&sim.st).incidents.len(), 1);
}

#[test]
fn a_closed_window_sets_a_timer_and_is_asked_again() {
    let yaml = r#"
name: win
roles: { ops: { image: img } }
phases:
  - id: change
    tasks: [ { id: c, role: ops, run: "true" } ]
    gates: [ { window: { cron: "0 2 * * SAT", duration: 4h, timezone: Europe/Berlin } } ]
"#;
    let (mut sim, _) = sim_with(yaml, &[]);
    sim.finish("c", 1, true, "{}");
    sim.gate("change", 0, v1::Verdict::Pass);
    let round = sim.st.phases[0].round;
    let cmds = sim.apply(Body::GateEvaluated(v1::GateEvaluated {
        phase_id: "change".into(),
        gate_index: 1,
        round,
        verdict: v1::Verdict::Pending as i32,
        reasons: vec!["window closed; next opens Saturday".into()],
        kind: "window".into(),
        retry_at_ms: 99_000,
    }));
    assert!(cmds.contains(&Command::StartStageTimer {
        phase_id: "change".into(),
        round,
        at_ms: 99_000
    }));
    assert!(view::waiting(&sim.st).contains("maintenance window"));
    let cmds = sim.apply(Body::TimerFired(v1::TimerFired {
        phase_id: "change".into(),
        round,
        ..Default::default()
    }));
    assert_eq!(gates_asked(&cmds), ["tasks", "window"]);
    assert_eq!(sim.st.phases[0].round, round + 1);
}
