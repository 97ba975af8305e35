//! Roles: reading `id → { image, risk, workspace, inputs, outputs, sandbox }` (in a plan, or in
//! a role file for the registry), and writing one back as the normalized
//! YAML the registry stores.

use std::collections::BTreeMap;

use marked_yaml::{parse_yaml_with_options, LoaderOptions, Node};

use super::error::{suggest, PlanError, Pos};
use super::model::{Risk, Role, WorkspaceAccess};
use super::node::{is_null, kind, node_pos, span_pos, Cx, Field};
use super::sandbox::RoleSandbox;
use super::schema::Schema;
use super::schema_yaml::{quote, schema, to_yaml};

const ROLE_KEYS: &[&str] = &["image", "risk", "workspace", "inputs", "outputs", "sandbox"];

/// `roles:` of a plan or a role file: every role, in the order written.
pub(crate) fn roles(cx: &mut Cx, f: Field<'_>) -> Vec<Role> {
    let Node::Mapping(map) = f.node else {
        cx.err(
            f.pos(),
            format!("`roles` must be a mapping, not {}", kind(f.node)),
            "write `roles:` followed by `id: { image: ... }` lines",
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in map.iter() {
        let id = k.as_str().to_string();
        let key = span_pos(k.span());
        cx.check_id(&id, key, "role");
        out.push(role(cx, id, key, v));
    }
    out
}

/// One role's spec. On problems (already reported) the role keeps its id,
/// so tasks using it are not also flagged.
pub(crate) fn role(cx: &mut Cx, id: String, key: Pos, v: &Node) -> Role {
    let mut role = Role {
        id,
        image: String::new(),
        risk: Risk::Auto,
        workspace: WorkspaceAccess::default(),
        inputs: Schema::default(),
        outputs: Schema::default(),
        sandbox: RoleSandbox::default(),
    };
    let what = format!("role `{}`", role.id);
    let at = if is_null(v) { key } else { node_pos(v) };
    let Some(fs) = cx.fields(v, at, &what, ROLE_KEYS) else {
        return role;
    };
    if let Some(f) = cx.require(&fs, "image", &what) {
        role.image = cx.string(f).map(|(s, _)| s).unwrap_or_default();
    }
    if let Some((f, Some((text, _)))) = fs.get("risk").map(|f| (f, cx.string(f))) {
        role.risk = match text.as_str() {
            "auto" => Risk::Auto,
            "approval_required" => Risk::ApprovalRequired,
            other => {
                let allowed = ["auto", "approval_required"];
                cx.err(
                    f.pos(),
                    format!("unknown risk `{other}`"),
                    suggest(other, allowed, "allowed values"),
                );
                Risk::Auto
            }
        };
    }
    if let Some((f, Some((text, _)))) = fs.get("workspace").map(|f| (f, cx.string(f))) {
        role.workspace = match text.as_str() {
            "rw" => WorkspaceAccess::ReadWrite,
            "ro" => WorkspaceAccess::ReadOnly,
            "none" => WorkspaceAccess::None,
            other => {
                cx.err(
                    f.pos(),
                    format!("unknown workspace access `{other}`"),
                    suggest(other, ["rw", "ro", "none"], "allowed values"),
                );
                WorkspaceAccess::default()
            }
        };
    }
    if let Some(f) = fs.get("inputs").filter(|f| !is_null(f.node)) {
        role.inputs = schema(cx, f, &format!("the inputs of {what}"), true);
    }
    if let Some(f) = fs.get("outputs").filter(|f| !is_null(f.node)) {
        role.outputs = schema(cx, f, &format!("the outputs of {what}"), false);
    }
    if let Some(f) = fs.get("sandbox").filter(|f| !is_null(f.node)) {
        role.sandbox = super::sandbox::sandbox(cx, f, &role.id);
    }
    role
}

fn yaml_root(cx: &mut Cx, yaml: &str) -> Option<Node> {
    let options = LoaderOptions::default()
        .prevent_coercion(true)
        .error_on_duplicate_keys(true);
    match parse_yaml_with_options(0, yaml, options) {
        Ok(root) => Some(root),
        Err(e) => {
            let (pos, message, hint) = super::load_error(&e);
            cx.err(pos, message, hint);
            None
        }
    }
}

/// A role file: `roles: { <id>: <spec>, ... }`, every role in file order.
pub fn load_roles(file: &str, yaml: &str) -> Result<Vec<Role>, PlanError> {
    let mut cx = Cx::new(file, yaml);
    let mut out = Vec::new();
    if let Some(root) = yaml_root(&mut cx, yaml) {
        let hint_at = node_pos(&root);
        if let Some(fs) = cx.fields(&root, hint_at, "a role file", &["roles"]) {
            match cx.require(&fs, "roles", "role file") {
                Some(f) if !is_null(f.node) => out = roles(&mut cx, f),
                Some(f) => cx.err(
                    f.pos(),
                    "the role file has no roles",
                    "add `id: { image: ... }` lines under `roles:`",
                ),
                None => {}
            }
        }
    }
    cx.sink.finish(out)
}

/// One role's spec as YAML (the registry's value, see [`role_yaml`]).
pub fn parse_role(file: &str, id: &str, yaml: &str) -> Result<Role, PlanError> {
    let mut cx = Cx::new(file, yaml);
    let mut role = None;
    if let Some(root) = yaml_root(&mut cx, yaml) {
        role = Some(self::role(&mut cx, id.to_string(), Pos::new(1, 1), &root));
    }
    match role {
        Some(r) => cx.sink.finish(r),
        None => Err(cx.sink.into_error()),
    }
}

/// The normalized YAML of a role's spec: fixed key order and quoting, so
/// that two files saying the same thing store the same text.
pub fn role_yaml(role: &Role) -> String {
    let risk = match role.risk {
        Risk::Auto => "auto",
        Risk::ApprovalRequired => "approval_required",
    };
    let workspace = match role.workspace {
        WorkspaceAccess::ReadOnly => "ro",
        WorkspaceAccess::ReadWrite => "rw",
        WorkspaceAccess::None => "none",
    };
    let mut out = format!(
        "image: {}\nrisk: {risk}\nworkspace: {workspace}\n",
        quote(&role.image)
    );
    to_yaml("inputs", &role.inputs, &mut out);
    to_yaml("outputs", &role.outputs, &mut out);
    super::sandbox::to_yaml(&role.sandbox, &mut out);
    out
}

/// Registered roles (id → spec YAML) that tasks of `plan` name without the
/// plan declaring them, parsed; `Err` carries the ids whose YAML no longer
/// loads, with why.
pub(crate) fn registered(
    used: impl IntoIterator<Item = String>,
    registry: &BTreeMap<String, String>,
) -> (BTreeMap<String, Role>, Vec<(String, String)>) {
    let mut roles = BTreeMap::new();
    let mut broken = Vec::new();
    for id in used {
        let Some(yaml) = registry.get(&id) else {
            continue;
        };
        match parse_role(&format!("registered role {id}"), &id, yaml) {
            Ok(r) => {
                roles.insert(id, r);
            }
            Err(e) => broken.push((id, e.to_string())),
        }
    }
    (roles, broken)
}
