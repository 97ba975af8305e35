//! Field schemas for a role's `inputs:` and `outputs:`, and checking values
//! against them: task `with:` values at validation, reported outputs when a
//! task finishes.
//!
//! ```yaml
//! outputs:
//!   verdict:  { type: string, enum: [approve, request_changes], required: true }
//!   files:    { type: array, items: string }
//! ```

use std::collections::BTreeMap;

use marked_yaml::Node;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::suggest;
use super::node::{is_null, kind, node_pos, span_pos, Cx, Field};

const FIELD_KEYS: &[&str] = &["type", "required", "enum", "items", "description"];
const TYPES: &[&str] = &["string", "integer", "number", "boolean", "array", "object"];

/// Declared fields by name; empty means "not declared" (anything goes).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub fields: BTreeMap<String, FieldSpec>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldSpec {
    pub ty: FieldType,
    pub required: bool,
    /// Allowed values, as written (already checked against `ty`); empty = any.
    pub allowed: Vec<String>,
    /// With `ty: array`: the type of every item, when given.
    pub items: Option<FieldType>,
    pub description: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Integer,
    Number,
    Boolean,
    Array,
    Object,
}

impl FieldType {
    fn parse(text: &str) -> Option<FieldType> {
        Some(match text {
            "string" => FieldType::String,
            "integer" => FieldType::Integer,
            "number" => FieldType::Number,
            "boolean" => FieldType::Boolean,
            "array" => FieldType::Array,
            "object" => FieldType::Object,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        TYPES[self as usize]
    }

    /// "a string", "an integer", ... for messages.
    fn article(self) -> String {
        match self {
            FieldType::Integer | FieldType::Array | FieldType::Object => {
                format!("an {}", self.name())
            }
            _ => format!("a {}", self.name()),
        }
    }

    /// Whether a JSON value has this type (integers are numbers too).
    fn holds(self, v: &Value) -> bool {
        match self {
            FieldType::String => v.is_string(),
            FieldType::Integer => v.is_i64() || v.is_u64(),
            FieldType::Number => v.is_number(),
            FieldType::Boolean => v.is_boolean(),
            FieldType::Array => v.is_array(),
            FieldType::Object => v.is_object(),
        }
    }

    /// Whether a literal written in YAML (`with:` values, `enum` items) reads as this type.
    fn reads(self, text: &str) -> bool {
        match self {
            FieldType::String => true,
            FieldType::Integer => text.trim().parse::<i64>().is_ok(),
            FieldType::Number => text.trim().parse::<f64>().is_ok_and(f64::is_finite),
            FieldType::Boolean => matches!(text, "true" | "false"),
            FieldType::Array => serde_json::from_str::<Value>(text).is_ok_and(|v| v.is_array()),
            FieldType::Object => serde_json::from_str::<Value>(text).is_ok_and(|v| v.is_object()),
        }
    }
}

impl FieldSpec {
    /// Whether `v` is one of the allowed values (always, without `enum`).
    fn allows(&self, v: &Value) -> bool {
        self.allowed.is_empty()
            || self.allowed.iter().any(|a| match (self.ty, v) {
                (FieldType::String, Value::String(s)) => a == s,
                (FieldType::Boolean, Value::Bool(b)) => a == &b.to_string(),
                (_, Value::Number(n)) => a.trim().parse::<f64>().ok() == n.as_f64(),
                _ => false,
            })
    }

    fn allows_text(&self, text: &str) -> bool {
        self.allowed.is_empty()
            || self.allowed.iter().any(|a| match self.ty {
                FieldType::Integer | FieldType::Number => {
                    a.trim().parse::<f64>().ok() == text.trim().parse::<f64>().ok()
                }
                _ => a == text,
            })
    }
}

/// How a JSON value reads in a message: its JSON text and its kind.
fn shown(v: &Value) -> (String, &'static str) {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    (v.to_string(), kind)
}

/// Check a finished task's outputs against its role's output schema.
/// Every problem is returned, in name order.
pub fn check_outputs(
    schema: &Schema,
    role: &str,
    outputs: &Map<String, Value>,
) -> Result<(), Vec<String>> {
    if schema.fields.is_empty() {
        return Ok(());
    }
    let mut problems = Vec::new();
    for (name, spec) in &schema.fields {
        match outputs.get(name) {
            None if spec.required => problems.push(format!(
                "output \"{name}\" is missing (required by role {role})"
            )),
            None => {}
            Some(v) => {
                if let Some(p) = value_problem(spec, v) {
                    problems.push(format!("output \"{name}\" {p}"));
                }
            }
        }
    }
    let declared: Vec<&str> = schema.fields.keys().map(String::as_str).collect();
    for name in outputs.keys().filter(|k| !schema.fields.contains_key(*k)) {
        problems.push(format!(
            "output \"{name}\" is not declared by role {role} (declared: {})",
            declared.join(", ")
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// What is wrong with one value, phrased to follow `output "x" `.
fn value_problem(spec: &FieldSpec, v: &Value) -> Option<String> {
    let (text, kind) = shown(v);
    if !spec.ty.holds(v) {
        return Some(format!(
            "is {text} ({kind}), expected {}",
            spec.ty.article()
        ));
    }
    if !spec.allows(v) {
        return Some(format!(
            "is {text}, expected one of {}",
            spec.allowed.join(", ")
        ));
    }
    if let (Some(items), Value::Array(list)) = (spec.items, v) {
        if let Some((i, item)) = list.iter().enumerate().find(|(_, x)| !items.holds(x)) {
            let (text, kind) = shown(item);
            return Some(format!(
                "item {i} is {text} ({kind}), expected {}",
                items.article()
            ));
        }
    }
    None
}

/// One problem with a task's `with:` values: the input it is about (`None`
/// for the whole `with:`), what is wrong and how to fix it.
pub type InputProblem = (Option<String>, String, String);

/// Check a task's `with:` values against its role's input schema: missing
/// required inputs, undeclared names, literal values of the wrong type or
/// not in `enum`. Values holding `${{ }}` templates are only known at dispatch.
pub fn input_problems(
    schema: &Schema,
    role: &str,
    with: &BTreeMap<String, String>,
) -> Vec<InputProblem> {
    let mut problems = Vec::new();
    let declared: Vec<&str> = schema.fields.keys().map(String::as_str).collect();
    for (name, value) in with {
        let Some(spec) = schema.fields.get(name) else {
            let hint = suggest(name, declared.iter().copied(), "declared inputs");
            problems.push((
                Some(name.clone()),
                format!("input \"{name}\" is not declared by role {role}"),
                hint,
            ));
            continue;
        };
        if value.contains("${{") {
            continue;
        }
        if !spec.ty.reads(value) {
            problems.push((
                Some(name.clone()),
                format!(
                    "input \"{name}\" is \"{value}\", expected {}",
                    spec.ty.article()
                ),
                format!("give {} value", spec.ty.article()),
            ));
        } else if !spec.allows_text(value) {
            problems.push((
                Some(name.clone()),
                format!(
                    "input \"{name}\" is \"{value}\", expected one of {}",
                    spec.allowed.join(", ")
                ),
                "use one of the values the role's `enum` allows".to_string(),
            ));
        }
    }
    for (name, spec) in &schema.fields {
        if spec.required && !with.contains_key(name) {
            problems.push((
                None,
                format!("input \"{name}\" is missing (required by role {role})"),
                format!("add `with: {{ {name}: ... }}` to the task"),
            ));
        }
    }
    problems
}

/// [`input_problems`] as plain messages.
pub fn check_inputs(
    schema: &Schema,
    role: &str,
    with: &BTreeMap<String, String>,
) -> Result<(), Vec<String>> {
    let problems: Vec<String> = input_problems(schema, role, with)
        .into_iter()
        .map(|(_, m, _)| m)
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Read `inputs:` or `outputs:` of a role (`what` names it in messages).
/// Input names become `BATON_INPUT_<NAME>` variables, so they use letters,
/// digits and `_`; output names may also use `-`.
pub(crate) fn schema(cx: &mut Cx, f: Field<'_>, what: &str, inputs: bool) -> Schema {
    let mut schema = Schema::default();
    let Node::Mapping(map) = f.node else {
        cx.err(
            f.pos(),
            format!("{what} must be a mapping, not {}", kind(f.node)),
            format!(
                "write `{}:` followed by `name: {{ type: string }}` lines",
                f.name
            ),
        );
        return schema;
    };
    for (k, v) in map.iter() {
        let name = k.as_str().to_string();
        let key = span_pos(k.span());
        let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || (!inputs && c == '-');
        if name.is_empty()
            || !name.chars().all(ok)
            || name.starts_with(|c: char| c.is_ascii_digit())
        {
            let allowed = if inputs {
                "letters, digits and `_`"
            } else {
                "letters, digits, `_` and `-`"
            };
            cx.err(
                key,
                format!("field name `{name}` in {what} is not a plain word"),
                format!("use {allowed}, not starting with a digit"),
            );
        }
        let label = format!("field `{name}` of {what}");
        let at = if is_null(v) { key } else { node_pos(v) };
        if let Some(spec) = field(cx, v, at, &label) {
            schema.fields.insert(name, spec);
        }
    }
    schema
}

fn field(cx: &mut Cx, node: &Node, at: super::error::Pos, label: &str) -> Option<FieldSpec> {
    let fs = cx.fields(node, at, label, FIELD_KEYS)?;
    let f = cx.require(&fs, "type", label)?;
    let ty = type_of(cx, f)?;
    let mut spec = FieldSpec {
        ty,
        required: false,
        allowed: Vec::new(),
        items: None,
        description: None,
    };
    if let Some(f) = fs.get("required") {
        match cx.string(f).map(|(s, _)| s) {
            Some(s) if s == "true" => spec.required = true,
            Some(s) if s == "false" => {}
            Some(s) => cx.err(
                f.pos(),
                format!("`required` must be true or false, not `{s}`"),
                "write `required: true`",
            ),
            None => {}
        }
    }
    if let Some(f) = fs.get("description").filter(|f| !is_null(f.node)) {
        spec.description = cx.string(f).map(|(s, _)| s);
    }
    if let Some(f) = fs.get("items") {
        if ty != FieldType::Array {
            cx.err(
                f.key,
                format!(
                    "`items` only applies to arrays, and this field is {}",
                    ty.article()
                ),
                "remove `items`, or use `type: array`",
            );
        } else {
            spec.items = type_of(cx, f);
        }
    }
    if let Some(f) = fs.get("enum") {
        if matches!(ty, FieldType::Array | FieldType::Object) {
            cx.err(
                f.key,
                format!("`enum` does not apply to {}", ty.article()),
                "use `enum` with string, integer, number or boolean fields",
            );
        } else if let Some(list) = cx.seq(f, "write `enum: [a, b]`") {
            if list.is_empty() {
                cx.err(
                    f.pos(),
                    "`enum` is empty, so no value would do",
                    "list the allowed values, or remove `enum`",
                );
            }
            for item in list.iter() {
                match item {
                    Node::Scalar(s) if !is_null(item) && ty.reads(s.as_str()) => {
                        spec.allowed.push(s.as_str().to_string())
                    }
                    other => cx.err(
                        node_pos(other),
                        format!("`enum` value {} is not {}", kind(other), ty.article()),
                        format!(
                            "every `enum` value must be {}, like the field's `type`",
                            ty.article()
                        ),
                    ),
                }
            }
        }
    }
    Some(spec)
}

fn type_of(cx: &mut Cx, f: Field<'_>) -> Option<FieldType> {
    let (text, _) = cx.string(f)?;
    let ty = FieldType::parse(&text);
    if ty.is_none() {
        cx.err(
            f.pos(),
            format!("unknown type `{text}`"),
            suggest(&text, TYPES.iter().copied(), "types"),
        );
    }
    ty
}

/// The schema as YAML lines under `key:` (two-space indented), the form the
/// role registry stores; reading it back gives the same schema.
pub(crate) fn to_yaml(key: &str, schema: &Schema, out: &mut String) {
    if schema.fields.is_empty() {
        return;
    }
    out.push_str(key);
    out.push_str(":\n");
    for (name, spec) in &schema.fields {
        let mut parts = vec![format!("type: {}", spec.ty.name())];
        if spec.required {
            parts.push("required: true".into());
        }
        if !spec.allowed.is_empty() {
            let items: Vec<String> = spec.allowed.iter().map(|a| scalar(spec.ty, a)).collect();
            parts.push(format!("enum: [{}]", items.join(", ")));
        }
        if let Some(items) = spec.items {
            parts.push(format!("items: {}", items.name()));
        }
        if let Some(d) = &spec.description {
            parts.push(format!("description: {}", quote(d)));
        }
        out.push_str(&format!("  {}: {{ {} }}\n", quote(name), parts.join(", ")));
    }
}

/// A string as a YAML double-quoted scalar (JSON's quoting is valid YAML).
pub(crate) fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn scalar(ty: FieldType, text: &str) -> String {
    match ty {
        FieldType::String => quote(text),
        _ => text.trim().to_string(),
    }
}
