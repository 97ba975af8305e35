//! Role `inputs:`/`outputs:` schemas as YAML: read with positions, and
//! written back in the normalized form the role registry stores.

use marked_yaml::Node;
use serde_json::Value;

use super::error::{suggest, Pos};
use super::node::{is_null, kind, node_pos, span_pos, Cx, Field};
use super::schema::{FieldSpec, FieldType, Schema, TYPES};

const FIELD_KEYS: &[&str] = &["type", "required", "enum", "items", "description"];

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

fn field(cx: &mut Cx, node: &Node, at: Pos, label: &str) -> Option<FieldSpec> {
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
