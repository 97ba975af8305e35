//! `baton_plan`: the release-train example loads into the
//! expected model, and every validation check reports the exact position,
//! what is wrong and how to fix it.

use std::collections::BTreeMap;
use std::time::Duration;

use baton_plan::{
    self as plan, ApprovalSpec, Diagnostic, GateSpec, OnFail, Plan, Risk, DEFAULT_TIMEOUT,
};
use serde_json::json;

const RELEASE_TRAIN: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/plans/release-train.yaml"
));

fn release_train() -> Plan {
    plan::load("release-train.yaml", RELEASE_TRAIN).unwrap_or_else(|e| panic!("{e}"))
}

/// All diagnostics of a plan that must not load.
fn diags(src: &str) -> Vec<Diagnostic> {
    match plan::load("p.yaml", src) {
        Ok(_) => panic!("plan loaded but should not:\n{src}"),
        Err(e) => e.diagnostics,
    }
}

/// The one diagnostic of a plan with exactly one problem.
fn only(src: &str) -> Diagnostic {
    let mut d = diags(src);
    assert_eq!(d.len(), 1, "expected one diagnostic, got:\n{}", lines(&d));
    d.remove(0)
}

fn lines(d: &[Diagnostic]) -> String {
    d.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[track_caller]
fn at(d: &Diagnostic, line: usize, col: usize) {
    assert_eq!((d.line, d.col), (line, col), "wrong position for: {d}");
}

/// A valid one-phase plan; tests append or replace lines.
const BASE: &str = "\
name: t
roles:
  build: { image: img }
phases:
  - id: one
    tasks:
      - id: a
        role: build
        run: make
";

// ---------------------------------------------------------------- model

#[test]
fn release_train_model() {
    let p = release_train();
    assert_eq!(p.name, "release-train");
    assert_eq!(
        p.description.as_deref(),
        Some("readiness checks, gated promotion to stage, rollback on breach")
    );
    assert_eq!(p.inputs.len(), 1);
    assert_eq!(p.inputs[0].name, "version");
    assert_eq!(p.inputs[0].default.as_deref(), Some("v3.0.0"));

    let roles: Vec<(&str, Risk)> = p.roles.values().map(|r| (r.id.as_str(), r.risk)).collect();
    assert_eq!(
        roles,
        [
            ("arch", Risk::Auto),
            ("ops", Risk::ApprovalRequired),
            ("qa", Risk::Auto),
            ("sec", Risk::Auto)
        ]
    );
    assert!(p.roles.values().all(|r| r.image == "baton/agent:local"));

    let phases: Vec<&str> = p.phases.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(phases, ["readiness", "stage"]);

    let ready = &p.phases[0];
    let tasks: Vec<(&str, &str, Vec<&str>)> = ready
        .tasks
        .iter()
        .map(|t| {
            (
                t.id.as_str(),
                t.role.as_str(),
                t.needs.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        tasks,
        [
            ("types", "arch", vec![]),
            ("scan", "sec", vec!["types"]),
            ("tests", "qa", vec!["types"])
        ]
    );
    let scan = &ready.tasks[1];
    assert_eq!(scan.timeout, Duration::from_secs(30));
    assert_eq!(scan.retries, 2);
    assert_eq!(ready.tasks[0].timeout, DEFAULT_TIMEOUT);
    assert_eq!(ready.tasks[0].timeout, Duration::from_secs(600));
    assert_eq!(ready.tasks[0].retries, 0);
    assert_eq!(scan.run[0..2], ["sh", "-c"]);
    assert_eq!(
        scan.run[2],
        r#"echo '{"result":"ok","evidence":["sbom.json"],"outputs":{"critical":0,"high":1}}'"#
    );
    assert!(scan.outputs.is_empty());

    let expr = "tasks.scan.outputs.critical == 0 && tasks.tests.outputs.coverage >= 80";
    assert_eq!(
        ready.gates,
        [
            GateSpec::Tasks { min_ok: None },
            GateSpec::Expr { expr: expr.into() }
        ]
    );
    assert_eq!(ready.effective_gates(), ready.gates);
    assert_eq!(ready.on_fail, OnFail::Rollback);
    assert_eq!(ready.max_retries, 2);
    assert_eq!(ready.rollback.len(), 1);
    assert_eq!(ready.rollback[0].id, "revert-types");
    assert_eq!(ready.rollback[0].role, "arch");

    let stage = &p.phases[1];
    let deploy = &stage.tasks[0];
    assert_eq!(deploy.role, "ops");
    assert_eq!(
        deploy.env,
        BTreeMap::from([("VERSION".to_string(), "${{ inputs.version }}".to_string())])
    );
    let p95 = GateSpec::Expr {
        expr: "tasks.deploy.outputs.p95_ms < 250".into(),
    };
    assert_eq!(stage.gates, std::slice::from_ref(&p95));
    // No `tasks` gate written: an implicit all_ok comes first.
    assert_eq!(
        stage.effective_gates(),
        [GateSpec::Tasks { min_ok: None }, p95]
    );
    assert_eq!(stage.rollback[0].id, "undeploy");
}

#[test]
fn release_train_fixture_matches_example() {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/release-train.yaml"
    ));
    if let Ok(example) = example {
        assert_eq!(
            example, RELEASE_TRAIN,
            "examples/release-train.yaml and tests/plans/release-train.yaml differ"
        );
    }
}

#[test]
fn release_train_summary() {
    let s = plan::summary(&release_train());
    assert_eq!(
        s,
        "\
plan release-train — readiness checks, gated promotion to stage, rollback on breach
inputs:
  version (default \"v3.0.0\")
roles:
  arch image baton/agent:local risk auto
  ops image baton/agent:local risk approval_required
  qa image baton/agent:local risk auto
  sec image baton/agent:local risk auto
phase 1/2 readiness
  task types (role arch)
  task scan (role sec, needs types, timeout 30s, retries 2)
  task tests (role qa, needs types)
  gates: tasks all_ok; expr `tasks.scan.outputs.critical == 0 && tasks.tests.outputs.coverage >= 80`
  on_fail: rollback
  rollback revert-types (role arch)
phase 2/2 stage
  task deploy (role ops)
  gates: tasks all_ok; expr `tasks.deploy.outputs.p95_ms < 250`
  on_fail: rollback
  rollback undeploy (role ops)
"
    );
}

#[test]
fn shapes_and_defaults() {
    let src = "\
name: shapes
inputs:
  a:
  b: {}
  c: plain
  d: { default: 3, description: the d }
roles:
  r: { image: img }
phases:
  - id: one
    tasks:
      - id: t
        role: r
        run: echo hi
        env: { N: 1, B: true, S: text }
        outputs: [x]
    gates:
      - tasks: { min_ok: 1 }
      - approval: {}
      - approval: { quorum: 2 }
    on_fail: retry
    max_retries: 5
";
    let p = plan::load("shapes.yaml", src).unwrap_or_else(|e| panic!("{e}"));
    let inputs: Vec<(&str, Option<&str>)> = p
        .inputs
        .iter()
        .map(|i| (i.name.as_str(), i.default.as_deref()))
        .collect();
    assert_eq!(
        inputs,
        [
            ("a", None),
            ("b", None),
            ("c", Some("plain")),
            ("d", Some("3"))
        ]
    );
    assert_eq!(p.inputs[3].description.as_deref(), Some("the d"));
    let phase = &p.phases[0];
    let t = &phase.tasks[0];
    assert_eq!(t.run, ["sh", "-c", "echo hi"]);
    assert_eq!(t.env["N"], "1");
    assert_eq!(t.env["B"], "true");
    assert_eq!(t.outputs, ["x"]);
    assert_eq!(
        phase.gates,
        [
            GateSpec::Tasks { min_ok: Some(1) },
            GateSpec::Approval(ApprovalSpec::default()),
            GateSpec::Approval(ApprovalSpec {
                quorum: 2,
                ..Default::default()
            })
        ]
    );
    assert_eq!(phase.effective_gates(), phase.gates);
    assert_eq!(phase.on_fail, OnFail::Retry);
    assert_eq!(phase.max_retries, 5);
    assert_eq!(p.roles["r"].risk, Risk::Auto);
}

// ---------------------------------------------------------------- YAML and keys

#[test]
fn yaml_syntax_error() {
    let d = only("name: t\nphases:\n  - id: one\n     tasks: []\n");
    at(&d, 4, 11);
    assert!(d.message.starts_with("YAML syntax error: "), "{d}");
    assert!(d.message.contains("mapping values are not allowed"), "{d}");
}

#[test]
fn yaml_duplicate_role_key() {
    let src = BASE.replace(
        "  build: { image: img }\n",
        "  build: { image: img }\n  build: { image: other }\n",
    );
    let d = only(&src);
    at(&d, 4, 3);
    assert_eq!(
        d.message,
        "duplicate key `build` (first at line 3, column 3)"
    );
}

#[test]
fn unknown_key_with_did_you_mean() {
    let d = only(&format!("{BASE}        timout: 30s\n"));
    at(&d, 10, 9);
    assert_eq!(d.message, "unknown key `timout` in a task");
    assert_eq!(d.hint, "did you mean `timeout`?");
}

#[test]
fn unknown_key_lists_allowed_keys() {
    let d = only(&format!("colour: red\n{BASE}"));
    at(&d, 1, 1);
    assert_eq!(d.message, "unknown key `colour` in the plan");
    assert_eq!(
        d.hint,
        "allowed keys: name, description, inputs, roles, phases, environments, repeat, stop_when, incidents, workspace, artifacts"
    );
}

#[test]
fn missing_required_key() {
    let d = only(&BASE.replace("        role: build\n", ""));
    at(&d, 7, 9);
    assert_eq!(d.message, "task `a` has no `role`");
    assert_eq!(d.hint, "add `role:` to the task `a`");
}

#[test]
fn wrong_type() {
    let d = only(&format!("{BASE}        retries: \"two\"\n"));
    at(&d, 10, 18);
    assert_eq!(d.message, "`retries` must be a whole number, not `two`");
    let d = only(&format!("{BASE}        retries: 11\n"));
    assert_eq!(d.message, "`retries` is 11, more than the limit of 10");
    let d = only(&BASE.replace("    tasks:\n", "    tasks: nope\n").replace(
        "      - id: a\n        role: build\n        run: make\n",
        "",
    ));
    at(&d, 6, 12);
    assert_eq!(d.message, "`tasks` must be a list, not `nope`");
}

#[test]
fn bad_ids() {
    let d = only(&BASE.replace("id: a\n", "id: a.b\n"));
    at(&d, 7, 13);
    assert_eq!(d.message, "task id `a.b` contains a dot");
    assert!(d.hint.contains("NATS subject"), "{d}");
    let d = only(&BASE.replace("name: t\n", "name: My Plan\n"));
    at(&d, 1, 7);
    assert_eq!(d.message, "plan name `My Plan` starts with `M`");
    let d = only(&BASE.replace("- id: one", "- id: \"one>\""));
    at(&d, 5, 9);
    assert_eq!(d.message, "phase id `one>` contains `>`");
    let src = BASE
        .replace("  build: { image: img }", "  Build: { image: img }")
        .replace("role: build", "role: Build");
    let d = only(&src);
    at(&d, 3, 3);
    assert_eq!(d.message, "role `Build` starts with `B`");
}

// ---------------------------------------------------------------- roles and needs

#[test]
fn unknown_role() {
    let d = only(&BASE.replace("role: build", "role: biuld"));
    at(&d, 8, 15);
    assert_eq!(d.message, "unknown role `biuld` for task `a`");
    assert_eq!(
        d.hint,
        "did you mean `build`? declared roles: build; declare it under roles: or register it with baton role apply"
    );
    let src = BASE.replace("role: build", "role: deployer");
    assert_eq!(
        only(&src).hint,
        "declared roles: build; declare it under roles: or register it with baton role apply"
    );
}

#[test]
fn malformed_role_is_reported_once() {
    let d = only(&BASE.replace("  build: { image: img }", "  build: [img]"));
    at(&d, 3, 10);
    assert_eq!(d.message, "role `build` must be a mapping, not a list");
    let d = only(&BASE.replace("  build: { image: img }", "  build: { risk: auto }"));
    at(&d, 3, 12);
    assert_eq!(d.message, "role `build` has no `image`");
}

#[test]
fn unknown_role_in_rollback_step() {
    let d = only(&format!(
        "{BASE}    rollback:\n      - id: undo\n        role: nobody\n        run: undo\n"
    ));
    at(&d, 12, 15);
    assert_eq!(d.message, "unknown role `nobody` for task `undo`");
}

fn three_tasks(needs_a: &str, needs_b: &str, needs_c: &str) -> String {
    format!(
        "\
name: t
roles:
  r: {{ image: img }}
phases:
  - id: one
    tasks:
      - id: a
        role: r
        needs: [{needs_a}]
        run: x
      - id: b
        role: r
        needs: [{needs_b}]
        run: x
      - id: c
        role: r
        needs: [{needs_c}]
        run: x
"
    )
}

#[test]
fn dependency_cycle_named_in_order() {
    let d = only(&three_tasks("c", "a", "b"));
    at(&d, 9, 17);
    assert_eq!(d.message, "dependency cycle: a → c → b → a");
    assert!(d.hint.contains("remove one of these needs"), "{d}");
    // A two-task cycle beside an acyclic task.
    let d = only(&three_tasks("", "c", "b"));
    at(&d, 13, 17);
    assert_eq!(d.message, "dependency cycle: b → c → b");
}

#[test]
fn task_needing_itself() {
    let d = only(&three_tasks("a", "", ""));
    at(&d, 9, 17);
    assert_eq!(d.message, "task `a` needs itself");
}

#[test]
fn needs_unknown_task() {
    let d = only(&three_tasks("", "", "bb"));
    at(&d, 17, 17);
    assert_eq!(d.message, "`needs` names unknown task `bb`");
    assert_eq!(d.hint, "did you mean `b`?");
    let d = only(&three_tasks("", "", "zzz"));
    assert_eq!(d.hint, "tasks of phase `one`: a, b");
}

#[test]
fn needs_task_of_another_phase() {
    let src = format!("{BASE}  - id: two\n    tasks:\n      - id: b\n        role: build\n        needs: [a]\n        run: x\n");
    let d = only(&src);
    at(&d, 14, 17);
    assert_eq!(
        d.message,
        "`a` is a task of phase `one`, not of phase `two`"
    );
    assert_eq!(
        d.hint,
        "needs only names tasks of the same phase; earlier phases always finish first"
    );
}

#[test]
fn needs_in_rollback_step() {
    let d = only(&format!("{BASE}    rollback:\n      - id: undo\n        role: build\n        needs: [a]\n        run: undo\n"));
    at(&d, 13, 9);
    assert_eq!(d.message, "rollback steps do not take `needs`");
}

// ---------------------------------------------------------------- duplicates

#[test]
fn duplicate_task_ids_across_the_plan() {
    let src = format!(
        "{BASE}  - id: two\n    tasks:\n      - id: a\n        role: build\n        run: x\n"
    );
    let d = only(&src);
    at(&d, 12, 13);
    assert_eq!(d.message, "duplicate task id `a` (first used at line 7)");
    assert!(d.hint.contains("unique across the whole plan"), "{d}");
}

#[test]
fn rollback_step_reusing_a_task_id() {
    let d = only(&format!(
        "{BASE}    rollback:\n      - id: a\n        role: build\n        run: undo\n"
    ));
    at(&d, 11, 13);
    assert_eq!(d.message, "duplicate task id `a` (first used at line 7)");
}

#[test]
fn duplicate_phase_ids() {
    let src = format!(
        "{BASE}  - id: one\n    tasks:\n      - id: b\n        role: build\n        run: x\n"
    );
    let d = only(&src);
    at(&d, 10, 9);
    assert_eq!(d.message, "duplicate phase id `one` (first used at line 5)");
}

// ---------------------------------------------------------------- templates

/// BASE plus a declared input and a second phase whose task `d` runs `run`.
fn with_run(run: &str) -> String {
    format!(
        "\
name: t
inputs:
  version: v1
roles:
  build: {{ image: img }}
phases:
  - id: one
    tasks:
      - id: a
        role: build
        outputs: [digest]
        run: make
  - id: two
    tasks:
      - id: b
        role: build
        run: make
      - id: d
        role: build
        run: {run}
"
    )
}

#[test]
fn valid_templates_load() {
    let src =
        with_run("echo ${{ inputs.version }} ${{tasks.a.outputs.digest}} ${{ tasks.b.outputs.x }}")
            .replace(
                "      - id: d\n        role: build\n",
                "      - id: d\n        role: build\n        needs: [b]\n",
            );
    plan::load("p.yaml", &src).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn template_unknown_input() {
    let d = only(&with_run("echo ${{ inputs.verison }}"));
    at(&d, 20, 19);
    assert_eq!(d.message, "unknown input `verison` in template");
    assert_eq!(d.hint, "did you mean `version`?");
}

#[test]
fn template_unknown_input_in_env() {
    let src = with_run("x").replace(
        "        run: x\n",
        "        env: { V: \"${{ inputs.nope }}\" }\n        run: x\n",
    );
    let d = only(&src);
    at(&d, 20, 20);
    assert_eq!(d.message, "unknown input `nope` in template");
    assert!(d.hint.contains("declare it under `inputs:`"), "{d}");
}

#[test]
fn template_unknown_task() {
    let d = only(&with_run("[\"echo\", \"${{ tasks.zz.outputs.k }}\"]"));
    at(&d, 20, 24);
    assert_eq!(d.message, "unknown task `zz` in template");
    assert_eq!(d.hint, "tasks it can read: a, b, d");
}

#[test]
fn template_task_that_does_not_run_before() {
    let d = only(&with_run("echo ${{ tasks.b.outputs.k }}"));
    at(&d, 20, 19);
    assert_eq!(
        d.message,
        "task `d` reads outputs of `b`, which does not run before it"
    );
    assert_eq!(
        d.hint,
        "add `b` to the `needs` of `d` (directly or through a task it needs)"
    );
}

#[test]
fn template_task_of_later_phase() {
    let src = with_run("x").replace(
        "        run: make\n  - id: two",
        "        run: echo ${{ tasks.d.outputs.k }}\n  - id: two",
    );
    let d = only(&src);
    at(&d, 12, 19);
    assert_eq!(
        d.message,
        "task `d` runs in a later phase (`two`) than phase `one`"
    );
}

#[test]
fn template_undeclared_output() {
    let d = only(&with_run("echo ${{ tasks.a.outputs.digets }}"));
    at(&d, 20, 19);
    assert_eq!(d.message, "task `a` does not declare output `digets`");
    assert_eq!(d.hint, "did you mean `digest`?");
}

#[test]
fn template_reading_a_rollback_step() {
    let src = format!(
        "{}    rollback:\n      - id: undo\n        role: build\n        run: x\n",
        with_run("echo ${{ tasks.undo.outputs.k }}")
    );
    let d = only(&src);
    at(&d, 20, 19);
    assert_eq!(
        d.message,
        "`undo` is a rollback step, which templates and gates cannot read"
    );
}

#[test]
fn rollback_steps_read_tasks_of_their_phase() {
    let src = format!(
        "{}    rollback:\n      - id: undo\n        role: build\n        run: echo ${{{{ tasks.d.outputs.k }}}} ${{{{ tasks.a.outputs.digest }}}}\n",
        with_run("x")
    );
    plan::load("p.yaml", &src).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn malformed_templates() {
    let d = only(&with_run("echo ${{ foo }}"));
    at(&d, 20, 19);
    assert_eq!(d.message, "bad template `${{ foo }}`");
    assert!(d.hint.contains("${{ inputs.<name> }}"), "{d}");
    let d = only(&with_run("\"echo ${{ inputs.version\""));
    at(&d, 20, 20);
    assert_eq!(d.message, "unclosed template: `${{` without `}}`");
}

#[test]
fn template_position_falls_back_to_the_node_for_escaped_strings() {
    let d = only(&with_run("\"say \\\"${{ inputs.nope }}\\\"\""));
    at(&d, 20, 14);
}

// ---------------------------------------------------------------- gates

fn with_gate(gate: &str) -> String {
    format!("{}    gates:\n      - {gate}\n", with_run("make"))
}

#[test]
fn gate_expression_parse_error_points_inside_the_string() {
    // The expression ends where a value is expected: column of `"` + 1 + 26.
    let d = only(&with_gate("expr: \"tasks.a.outputs.digest == \""));
    at(&d, 22, 42);
    assert!(d.message.starts_with("bad gate expression: "), "{d}");
}

#[test]
fn gate_expression_parse_error_in_a_folded_string_points_at_the_node() {
    let src = format!(
        "{}    gates:\n      - expr: >\n          tasks.a.outputs.digest ==\n          ==\n",
        with_run("make")
    );
    let d = only(&src);
    at(&d, 23, 11);
    assert!(d.message.starts_with("bad gate expression: "), "{d}");
}

#[test]
fn gate_expression_unknown_names() {
    let d = only(&with_gate(
        "expr: \"tasks.a.outputs.digest == 'x' && tasks.q.status == 'ok'\"",
    ));
    at(&d, 22, 49);
    assert_eq!(d.message, "unknown task `q` in gate expression");
    let d = only(&with_gate("expr: \"inputs.versoin == 'v1'\""));
    at(&d, 22, 16);
    assert_eq!(d.message, "unknown input `versoin` in gate expression");
    assert_eq!(d.hint, "did you mean `version`?");
    let d = only(&with_gate("expr: \"tasks.a.outputs.size > 3\""));
    assert_eq!(d.message, "task `a` does not declare output `size`");
    assert_eq!(d.hint, "declared outputs: digest");
    let d = only(&with_gate("expr: \"tasks.a.digest == 'x'\""));
    at(&d, 22, 16);
    assert_eq!(
        d.message,
        "gate expression reads `tasks.a.digest`, which is not something it can read"
    );
    assert_eq!(
        d.hint,
        "use tasks.<id>.outputs.<key>, tasks.<id>.status, inputs.<name>, \
         environment.name, canary.weight or loop.iteration"
    );
}

#[test]
fn gate_expression_cannot_read_later_phases() {
    let src = with_run("make").replace(
        "        run: make\n  - id: two",
        "        run: make\n    gates:\n      - expr: \"tasks.b.status == 'ok'\"\n  - id: two",
    );
    let d = only(&src);
    at(&d, 14, 16);
    assert_eq!(
        d.message,
        "task `b` runs in a later phase (`two`) than phase `one`"
    );
}

#[test]
fn min_ok_more_than_tasks() {
    let d = only(&with_gate("tasks: { min_ok: 3 }"));
    at(&d, 22, 26);
    assert_eq!(d.message, "min_ok is 3 but phase `two` has only 2 tasks");
}

#[test]
fn quorum_zero() {
    let d = only(&with_gate("approval: { quorum: 0 }"));
    at(&d, 22, 29);
    assert_eq!(d.message, "quorum 0 means nobody has to approve");
}

#[test]
fn unknown_gate_kind() {
    let d = only(&with_gate("expresion: \"true\""));
    at(&d, 22, 9);
    assert_eq!(d.message, "unknown key `expresion` in a gate");
    assert_eq!(d.hint, "did you mean `expr`?");
}

#[test]
fn max_retries_needs_on_fail_retry() {
    let d = only(&format!("{BASE}    max_retries: 3\n"));
    at(&d, 10, 5);
    assert_eq!(d.message, "max_retries only applies with on_fail: retry");
    plan::load(
        "p.yaml",
        &format!("{BASE}    on_fail: retry\n    max_retries: 3\n"),
    )
    .unwrap();
}

#[test]
fn unknown_on_fail() {
    let d = only(&format!("{BASE}    on_fail: rolback\n"));
    at(&d, 10, 14);
    assert_eq!(d.message, "unknown on_fail `rolback`");
    assert_eq!(d.hint, "did you mean `rollback`?");
}

// ---------------------------------------------------------------- durations and emptiness

#[test]
fn bad_duration() {
    let d = only(&format!("{BASE}        timeout: 30 seconds\n"));
    at(&d, 10, 18);
    assert_eq!(d.message, "bad duration `30 seconds`");
    assert_eq!(d.hint, "use a number and a unit, e.g. 30s, 5m, 1h");
    let d = only(&format!("{BASE}        timeout: 0s\n"));
    assert_eq!(d.message, "timeout must be more than 0");
    let d = only(&format!("{BASE}        timeout: 25h\n"));
    assert_eq!(d.message, "timeout 25h is longer than 24h");
}

#[test]
fn empty_phase() {
    let src = BASE.replace(
        "    tasks:\n      - id: a\n        role: build\n        run: make\n",
        "    tasks: []\n",
    );
    let d = only(&src);
    at(&d, 6, 12);
    assert_eq!(d.message, "phase `one` has no tasks");
}

#[test]
fn empty_run() {
    let d = only(&BASE.replace("run: make", "run: []"));
    at(&d, 9, 14);
    assert_eq!(d.message, "`run` of task `a` is empty");
    let d = only(&BASE.replace("run: make", "run:"));
    at(&d, 9, 9);
}

#[test]
fn no_phases() {
    let d = only("name: t\nphases: []\n");
    at(&d, 2, 9);
    assert_eq!(d.message, "the plan has no phases");
    let d = only("name: t\n");
    at(&d, 1, 1);
    assert_eq!(d.message, "the plan has no `phases`");
}

#[test]
fn all_problems_are_reported_sorted() {
    let src = "\
name: t
roles:
  r: { image: img }
phases:
  - id: one
    tasks:
      - id: a
        role: q
        timeout: soon
        run: echo ${{ inputs.x }}
      - id: b
        role: r
        needs: [zz]
        retries: many
        run: []
";
    let d = diags(src);
    let got: Vec<(usize, usize)> = d.iter().map(|d| (d.line, d.col)).collect();
    assert_eq!(
        got,
        [(8, 15), (9, 18), (10, 19), (13, 17), (14, 18), (15, 14)],
        "{}",
        lines(&d)
    );
    let text = plan::load("p.yaml", src).unwrap_err().to_string();
    assert!(
        text.starts_with("p.yaml:8:15: unknown role `q` for task `a` — "),
        "{text}"
    );
    assert_eq!(text.lines().count(), 6);
}

// ---------------------------------------------------------------- inputs and rendering

#[test]
fn resolve_inputs_uses_defaults_and_rejects_unknown_names() {
    let p = release_train();
    let none = BTreeMap::new();
    assert_eq!(
        plan::resolve_inputs(&p, &none).unwrap(),
        BTreeMap::from([("version".to_string(), "v3.0.0".to_string())])
    );
    let given = BTreeMap::from([("version".to_string(), "v3.1.0".to_string())]);
    assert_eq!(
        plan::resolve_inputs(&p, &given).unwrap()["version"],
        "v3.1.0"
    );
    let typo = BTreeMap::from([("verison".to_string(), "v3.1.0".to_string())]);
    let e = plan::resolve_inputs(&p, &typo).unwrap_err();
    assert_eq!(e, "unknown input `verison` — did you mean `version`?");

    let required = plan::load("p.yaml", &format!("inputs:\n  target:\n{BASE}")).unwrap();
    let e = plan::resolve_inputs(&required, &none).unwrap_err();
    assert_eq!(
        e,
        "missing required input `target` — give it with `target=<value>`"
    );
}

#[test]
fn render_inputs_and_outputs() {
    let p = release_train();
    let inputs = plan::resolve_inputs(&p, &BTreeMap::new()).unwrap();
    let outputs = BTreeMap::from([(
        "scan".to_string(),
        json!({"critical": 0, "high": 1, "tag": "v3", "ok": true, "files": ["a", "b"]})
            .as_object()
            .unwrap()
            .clone(),
    )]);
    let env = &p.phases[1].tasks[0].env["VERSION"];
    assert_eq!(plan::render(env, &inputs, &outputs).unwrap(), "v3.0.0");
    let out = plan::render(
        "${{tasks.scan.outputs.critical}}/${{ tasks.scan.outputs.tag }}/${{ tasks.scan.outputs.ok }}/${{ tasks.scan.outputs.files }}",
        &inputs,
        &outputs,
    )
    .unwrap();
    assert_eq!(out, r#"0/v3/true/["a","b"]"#);
    assert_eq!(
        plan::render("no templates", &inputs, &outputs).unwrap(),
        "no templates"
    );

    let e = plan::render("${{ tasks.scan.outputs.x }}", &inputs, &outputs).unwrap_err();
    assert_eq!(e, "tasks.scan.outputs.x is not set: task scan reported outputs critical, files, high, ok, tag");
    let e = plan::render("${{ tasks.deploy.outputs.p95_ms }}", &inputs, &outputs).unwrap_err();
    assert!(
        e.starts_with("tasks.deploy.outputs.p95_ms is not set: task deploy reported no outputs"),
        "{e}"
    );
    assert!(plan::render("${{ bogus }}", &inputs, &outputs).is_err());
}

// ---------------------------------------------------------------- workspace host_path

/// A workspace whose host path the plan's inputs choose, shared by a
/// read-only and a read-write role and a role without the workspace.
const TEMPLATED_HOST_PATH: &str = "\
name: t
inputs:
  repo: {}
workspace:
  host_path: \"${{ inputs.repo }}\"
roles:
  reader: { image: img }
  writer: { image: img, workspace: rw }
  other: { image: img, workspace: none }
phases:
  - id: scan
    tasks:
      - id: check
        role: reader
        run: make check
  - id: fix
    tasks:
      - id: patch
        role: writer
        run: make fix
      - id: notify
        role: other
        run: echo done
";

#[test]
fn templated_host_path_warns_naming_tasks_line_and_risk() {
    let p = plan::load("p.yaml", TEMPLATED_HOST_PATH).unwrap_or_else(|e| panic!("{e}"));
    let w = plan::sandbox_warnings(&p, "p.yaml");
    assert_eq!(w.len(), 1, "{w:#?}");
    let w = &w[0];
    assert!(
        w.starts_with("p.yaml:5:3: warning: workspace host_path `${{ inputs.repo }}` is templated from inputs: whoever triggers the plan chooses the host path"),
        "{w}"
    );
    assert!(
        w.contains("tasks `check` (phase `scan`), `patch` (phase `fix`, read-write) mount it"),
        "{w}"
    );
    assert!(!w.contains("notify"), "{w}");
    assert!(w.contains("--allow-mounts is what confines it"), "{w}");
}

#[test]
fn fixed_host_path_and_volume_do_not_warn() {
    for workspace in ["host_path: /srv/repos/app", "volume: true"] {
        let src = TEMPLATED_HOST_PATH.replace("host_path: \"${{ inputs.repo }}\"", workspace);
        let p = plan::load("p.yaml", &src).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            plan::sandbox_warnings(&p, "p.yaml").is_empty(),
            "{workspace}"
        );
    }
}
