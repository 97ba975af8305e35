//! Role specs: input/output schemas (parsed with positions), task `with:`
//! checked against the role's inputs, task `outputs:` against the role's
//! outputs, registered roles standing in for undeclared ones, role files and
//! their normalized YAML, and checking values against a schema.

use std::collections::BTreeMap;

use baton_plan::{self as plan, Diagnostic, FieldType};
use serde_json::json;

const ROLES: &str = r#"
roles:
  reviewer:
    image: baton/agent:local
    risk: auto
    inputs:
      target:  { type: string, required: true, description: "path to review" }
      depth:   { type: integer, enum: [1, 2, 3] }
    outputs:
      verdict:  { type: string, enum: [approve, request_changes], required: true }
      findings: { type: integer, required: true }
      files:    { type: array, items: string }
      score:    { type: number }
      ok:       { type: boolean }
      meta:     { type: object }
"#;

/// A plan using `reviewer` (declared in the plan) with `task` as its task's extra lines.
fn plan_with(task: &str) -> String {
    let roles = ROLES.trim_start_matches("\nroles:\n");
    format!(
        "name: p\nroles:\n{roles}phases:\n  - id: one\n    tasks:\n      - id: a\n        role: reviewer\n        run: [x]\n{task}"
    )
}

fn diags(src: &str) -> Vec<String> {
    match plan::load("p.yaml", src) {
        Ok(_) => panic!("plan loaded but should not:\n{src}"),
        Err(e) => e.diagnostics.iter().map(short).collect(),
    }
}

fn short(d: &Diagnostic) -> String {
    format!("{}:{} {} — {}", d.line, d.col, d.message, d.hint)
}

#[test]
fn role_file_parses_every_type() {
    let roles = plan::load_roles("roles.yaml", ROLES).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(roles.len(), 1);
    let r = &roles[0];
    assert_eq!(r.image, "baton/agent:local");
    let out = &r.outputs.fields;
    assert_eq!(out["verdict"].ty, FieldType::String);
    assert!(out["verdict"].required);
    assert_eq!(out["verdict"].allowed, ["approve", "request_changes"]);
    assert_eq!(
        out["files"].items,
        Some(FieldType::Array).and(Some(FieldType::String))
    );
    assert!(!out["score"].required);
    assert_eq!(out["meta"].ty, FieldType::Object);
    assert_eq!(
        r.inputs.fields["target"].description.as_deref(),
        Some("path to review")
    );
}

#[test]
fn normalized_yaml_reads_back_the_same_and_ignores_layout() {
    let roles = plan::load_roles("roles.yaml", ROLES).unwrap();
    let text = plan::role_yaml(&roles[0]);
    let back =
        plan::parse_role("stored", "reviewer", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back, roles[0]);
    // Same content, other layout and key order: same normalized text.
    let other = "roles:\n  reviewer:\n    outputs:\n      meta: { type: object }\n      ok: { type: boolean }\n      score: { type: number }\n      files: { items: string, type: array }\n      findings: { required: true, type: integer }\n      verdict: { enum: [\"approve\", request_changes], type: string, required: true }\n    inputs:\n      depth: { type: integer, enum: [1, 2, 3] }\n      target: { type: string, required: true, description: path to review }\n    image: \"baton/agent:local\"\n";
    let other = plan::load_roles("o.yaml", other).unwrap();
    assert_eq!(plan::role_yaml(&other[0]), text);
}

#[test]
fn schema_problems_have_positions() {
    let src = "roles:\n  r:\n    image: i\n    outputs:\n      a: { type: strng }\n      b: { type: integer, enum: [1, two] }\n      c: { type: string, requird: true }\n      d: { type: string, items: string }\n      e: { required: yes, type: boolean }\n      f: [x]\n";
    let e = plan::load_roles("r.yaml", src).unwrap_err();
    let got: Vec<String> = e.diagnostics.iter().map(short).collect();
    assert_eq!(
        got,
        [
            "5:18 unknown type `strng` — did you mean `string`?",
            "6:37 `enum` value `two` is not an integer — every `enum` value must be an integer, like the field's `type`",
            "7:26 unknown key `requird` in field `c` of the outputs of role `r` — did you mean `required`?",
            "8:26 `items` only applies to arrays, and this field is a string — remove `items`, or use `type: array`",
            "9:22 `required` must be true or false, not `yes` — write `required: true`",
            "10:10 field `f` of the outputs of role `r` must be a mapping, not a list — write it as `key: value` lines; allowed keys: type, required, enum, items, description",
        ]
    );
    let e = plan::load_roles(
        "r.yaml",
        "roles:\n  r: { image: i, inputs: { a-b: { type: string } } }\n",
    )
    .unwrap_err();
    assert_eq!(
        short(&e.diagnostics[0]),
        "2:28 field name `a-b` in the inputs of role `r` is not a plain word — use letters, digits and `_`, not starting with a digit"
    );
}

#[test]
fn with_values_are_checked_against_the_role_inputs() {
    plan::load(
        "p.yaml",
        &plan_with("        with: { target: src, depth: 2 }\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Templated values are only known at dispatch.
    let ok = plan_with("        with: { target: src, depth: \"${{ inputs.d }}\" }\n")
        .replace("name: p\n", "name: p\ninputs:\n  d: \"2\"\n");
    plan::load("p.yaml", &ok).unwrap_or_else(|e| panic!("{e}"));
    let got = diags(&plan_with("        with: { depth: 4, targt: x }\n"));
    assert_eq!(
        got,
        [
            "22:9 task `a`: input \"target\" is missing (required by role reviewer) — add `with: { target: ... }` to the task",
            "22:24 task `a`: input \"depth\" is \"4\", expected one of 1, 2, 3 — use one of the values the role's `enum` allows",
            "22:34 task `a`: input \"targt\" is not declared by role reviewer — did you mean `target`?",
        ]
    );
    let got = diags(&plan_with("        with: { target: x, depth: deep }\n"));
    assert_eq!(got, ["22:35 task `a`: input \"depth\" is \"deep\", expected an integer — give an integer value"]);
    let got = diags(&plan_with(""));
    assert_eq!(got, ["20:15 task `a`: input \"target\" is missing (required by role reviewer) — add `with: { target: ... }` to the task"]);
}

#[test]
fn task_outputs_must_be_declared_by_the_role_and_reads_are_checked() {
    let got = diags(&plan_with(
        "        with: { target: x }\n        outputs: [verdict, verdikt]\n",
    ));
    assert_eq!(
        got,
        ["23:28 output `verdikt` of task `a` is not declared by role `reviewer` — did you mean `verdict`?"]
    );
    // Without its own list, a task's readable outputs are the role's.
    let gate =
        "        with: { target: x }\n    gates:\n      - expr: \"tasks.a.outputs.findngs == 0\"\n";
    let got = diags(&plan_with(gate));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("task `a` does not declare output `findngs` — did you mean `findings`?"),
        "{got:?}"
    );
    let gate = "        with: { target: x }\n    gates:\n      - expr: \"tasks.a.outputs.findings == 0\"\n";
    plan::load("p.yaml", &plan_with(gate)).unwrap_or_else(|e| panic!("{e}"));
}

const USES_QA: &str = "name: p\nphases:\n  - id: one\n    tasks:\n      - id: a\n        role: qa\n        run: [x]\n        with: { target: x }\n";

#[test]
fn registered_roles_stand_in_for_undeclared_ones() {
    let e = plan::load("p.yaml", USES_QA).unwrap_err();
    assert_eq!(
        short(&e.diagnostics[0]),
        "6:15 unknown role `qa` for task `a` — no roles are declared; declare it under roles: or register it with baton role apply"
    );
    let qa = "image: img\ninputs:\n  target: { type: string, required: true }\n";
    let registry = BTreeMap::from([
        ("qa".to_string(), qa.to_string()),
        ("unused".to_string(), "image: other\n".to_string()),
    ]);
    let (p, used) =
        plan::load_resolving("p.yaml", USES_QA, &registry).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.roles["qa"].image, "img");
    assert_eq!(
        used.keys().collect::<Vec<_>>(),
        ["qa"],
        "only the roles used are copied"
    );
    // A plan-declared role wins over a registered one.
    let own = USES_QA.replace(
        "phases:",
        "roles:\n  qa: { image: mine, inputs: { target: { type: string } } }\nphases:",
    );
    let (p, used) = plan::load_resolving("p.yaml", &own, &registry).unwrap();
    assert_eq!(p.roles["qa"].image, "mine");
    assert!(used.is_empty());
    // A registered role's schema applies to the task.
    let e = plan::load_with_roles("p.yaml", &USES_QA.replace("target: x", "tgt: x"), &registry)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("input \"target\" is missing (required by role qa)"),
        "{e}"
    );
}

#[test]
fn outputs_are_checked_with_precise_messages() {
    let roles = plan::load_roles("roles.yaml", ROLES).unwrap();
    let schema = &roles[0].outputs;
    let check =
        |v: serde_json::Value| plan::check_outputs(schema, "reviewer", v.as_object().unwrap());
    assert_eq!(
        check(
            json!({"verdict": "approve", "findings": 3, "files": ["a"], "score": 1, "ok": true, "meta": {}})
        ),
        Ok(())
    );
    assert_eq!(
        check(json!({"verdict": "maybe", "findings": "3", "files": ["a", 2], "score": "x", "ok": 1, "meta": [], "foo": 1})).unwrap_err(),
        [
            "output \"files\" item 1 is 2 (an integer), expected a string",
            "output \"findings\" is \"3\" (a string), expected an integer",
            "output \"meta\" is [] (an array), expected an object",
            "output \"ok\" is 1 (an integer), expected a boolean",
            "output \"score\" is \"x\" (a string), expected a number",
            "output \"verdict\" is \"maybe\", expected one of approve, request_changes",
            "output \"foo\" is not declared by role reviewer (declared: files, findings, meta, ok, score, verdict)",
        ]
    );
    assert_eq!(
        check(json!({"verdict": "approve"})).unwrap_err(),
        ["output \"findings\" is missing (required by role reviewer)"]
    );
    assert_eq!(
        check(json!({"verdict": "approve", "findings": 2.5})).unwrap_err(),
        ["output \"findings\" is 2.5 (a number), expected an integer"]
    );
    let inputs = &roles[0].inputs;
    let with = BTreeMap::from([
        ("target".to_string(), "x".to_string()),
        ("depth".to_string(), "9".to_string()),
    ]);
    assert_eq!(
        plan::check_inputs(inputs, "reviewer", &with).unwrap_err(),
        ["input \"depth\" is \"9\", expected one of 1, 2, 3"]
    );
}
