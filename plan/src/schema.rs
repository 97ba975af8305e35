//! Field schemas for a role's `inputs:` and `outputs:`, and checking values
//! against them: task `with:` values at validation, reported outputs when a
//! task finishes.
//!
//! ```yaml
//! outputs:
//!   verdict:  { type: string, enum: [approve, request_changes], required: true }
//!   files:    { type: array, items: string }
//! ```
//!
//! Reading and writing schemas as YAML is in `schema_yaml`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::suggest;

pub(crate) const TYPES: &[&str] = &["string", "integer", "number", "boolean", "array", "object"];

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
    pub(crate) fn parse(text: &str) -> Option<FieldType> {
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
    pub(crate) fn article(self) -> String {
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
    pub(crate) fn reads(self, text: &str) -> bool {
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

/// `input_problems` as plain messages.
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
