//! Templates in `run` and `env`: `${{ inputs.x }}` and
//! `${{ tasks.<id>.outputs.<key> }}` (spaces inside the braces optional).
//!
//! [`scan`] splits a string into literal text and references (used both by
//! validation and by [`render`]); [`render`] substitutes values at dispatch.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// What a template refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ref {
    /// `inputs.<name>`
    Input(String),
    /// `tasks.<task>.outputs.<key>`
    Output { task: String, key: String },
    /// Where the stage runs: `environment.name`, `canary.weight`, `loop.iteration`.
    Var(String),
}

/// The stage variables templates and expressions may read (see `Ref::Var`).
pub const VARS: &[&str] = &["environment.name", "canary.weight", "loop.iteration"];

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ref::Input(name) => write!(f, "inputs.{name}"),
            Ref::Output { task, key } => write!(f, "tasks.{task}.outputs.{key}"),
            Ref::Var(name) => f.write_str(name),
        }
    }
}

/// One piece of a scanned template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment<'a> {
    Text(&'a str),
    /// A reference; `offset` is the character offset of its `${{`.
    Ref {
        offset: usize,
        reference: Ref,
    },
}

/// A malformed template; `offset` is the character offset of its `${{`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
    pub hint: String,
}

const OPEN: &str = "${{";
const CLOSE: &str = "}}";
const FORMS: &str = "use ${{ inputs.<name> }}, ${{ tasks.<id>.outputs.<key> }}, \
                     ${{ environment.name }}, ${{ canary.weight }} or ${{ loop.iteration }}";

/// Split `text` into literal text and references.
pub fn scan(text: &str) -> Result<Vec<Segment<'_>>, TemplateError> {
    let mut segments = Vec::new();
    let mut rest = text;
    let mut consumed = 0; // bytes of `text` before `rest`
    while let Some(start) = rest.find(OPEN) {
        if start > 0 {
            segments.push(Segment::Text(&rest[..start]));
        }
        let offset = text[..consumed + start].chars().count();
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find(CLOSE) else {
            return Err(TemplateError {
                offset,
                message: "unclosed template: `${{` without `}}`".to_string(),
                hint: format!("close it with `}}}}`; {FORMS}"),
            });
        };
        let inner = after[..end].trim_matches([' ', '\t']);
        let reference = parse_ref(inner).ok_or_else(|| TemplateError {
            offset,
            message: format!("bad template `${{{{ {inner} }}}}`"),
            hint: FORMS.to_string(),
        })?;
        segments.push(Segment::Ref { offset, reference });
        let used = start + OPEN.len() + end + CLOSE.len();
        consumed += used;
        rest = &rest[used..];
    }
    if !rest.is_empty() {
        segments.push(Segment::Text(rest));
    }
    Ok(segments)
}

/// Just the references of `text`, with their offsets.
pub fn references(text: &str) -> Result<Vec<(usize, Ref)>, TemplateError> {
    Ok(scan(text)?
        .into_iter()
        .filter_map(|s| match s {
            Segment::Ref { offset, reference } => Some((offset, reference)),
            Segment::Text(_) => None,
        })
        .collect())
}

fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse_ref(inner: &str) -> Option<Ref> {
    let parts: Vec<&str> = inner.split('.').collect();
    if !parts.iter().all(|p| is_word(p)) {
        return None;
    }
    match parts.as_slice() {
        ["inputs", name] => Some(Ref::Input(name.to_string())),
        ["tasks", task, "outputs", key] => Some(Ref::Output {
            task: task.to_string(),
            key: key.to_string(),
        }),
        [scope, name] if VARS.contains(&format!("{scope}.{name}").as_str()) => {
            Some(Ref::Var(format!("{scope}.{name}")))
        }
        _ => None,
    }
}

/// Render `template` with resolved inputs and the outputs of finished tasks
/// (task id → its outputs object).
///
/// JSON strings are inserted raw, numbers and bools as their JSON text,
/// objects and arrays as compact JSON.
pub fn render(
    template: &str,
    inputs: &BTreeMap<String, String>,
    outputs: &BTreeMap<String, Map<String, Value>>,
) -> Result<String, String> {
    render_with(template, inputs, outputs, &BTreeMap::new())
}

/// [`render`], with the stage variables (`environment.name`, ...) of where the task runs.
pub fn render_with(
    template: &str,
    inputs: &BTreeMap<String, String>,
    outputs: &BTreeMap<String, Map<String, Value>>,
    vars: &BTreeMap<String, String>,
) -> Result<String, String> {
    let segments = scan(template).map_err(|e| {
        format!(
            "{} at character {} of `{template}` — {}",
            e.message,
            e.offset + 1,
            e.hint
        )
    })?;
    let mut out = String::with_capacity(template.len());
    for segment in segments {
        match segment {
            Segment::Text(text) => out.push_str(text),
            Segment::Ref {
                reference: Ref::Var(name),
                ..
            } => match vars.get(&name) {
                Some(v) => out.push_str(v),
                None => return Err(format!("{name} is not set where this task runs")),
            },
            Segment::Ref { reference, .. } => out.push_str(&value_of(&reference, inputs, outputs)?),
        }
    }
    Ok(out)
}

fn value_of(
    reference: &Ref,
    inputs: &BTreeMap<String, String>,
    outputs: &BTreeMap<String, Map<String, Value>>,
) -> Result<String, String> {
    match reference {
        Ref::Input(name) => inputs.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = inputs.keys().map(String::as_str).collect();
            format!(
                "{reference} is not set: the run has inputs {}",
                list_or_none(&known)
            )
        }),
        Ref::Output { task, key } => {
            let Some(map) = outputs.get(task) else {
                return Err(format!(
                    "{reference} is not set: task {task} reported no outputs \
                     (it was skipped, failed or has not finished)"
                ));
            };
            match map.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Ok(other.to_string()),
                None => {
                    let mut known: Vec<&str> = map.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    Err(format!(
                        "{reference} is not set: task {task} reported outputs {}",
                        list_or_none(&known)
                    ))
                }
            }
        }
        Ref::Var(name) => Err(format!("{name} is not set where this task runs")),
    }
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outputs() -> BTreeMap<String, Map<String, Value>> {
        let v = json!({"critical": 0, "high": 1, "name": "x y", "ok": true, "list": [1, "a"], "obj": {"a": 1}});
        BTreeMap::from([("scan".to_string(), v.as_object().unwrap().clone())])
    }

    #[test]
    fn scans_text_and_references() {
        let segs = scan("a ${{inputs.v}} b ${{  tasks.t-1.outputs.k_2 }}").unwrap();
        assert_eq!(
            segs,
            vec![
                Segment::Text("a "),
                Segment::Ref {
                    offset: 2,
                    reference: Ref::Input("v".into())
                },
                Segment::Text(" b "),
                Segment::Ref {
                    offset: 18,
                    reference: Ref::Output {
                        task: "t-1".into(),
                        key: "k_2".into()
                    }
                },
            ]
        );
        assert_eq!(
            scan("plain $ {{ x }}").unwrap(),
            vec![Segment::Text("plain $ {{ x }}")]
        );
    }

    #[test]
    fn offsets_count_characters() {
        let refs = references("é ${{ inputs.v }}").unwrap();
        assert_eq!(refs, vec![(2, Ref::Input("v".into()))]);
    }

    #[test]
    fn malformed_templates() {
        let e = scan("x ${{ foo }}").unwrap_err();
        assert_eq!(e.offset, 2);
        assert_eq!(e.message, "bad template `${{ foo }}`");
        let e = scan("ok ${{ inputs.a }} ${{ inputs.b").unwrap_err();
        assert_eq!(e.offset, 19);
        assert!(e.message.contains("unclosed"), "{}", e.message);
        for bad in [
            "${{}}",
            "${{ tasks.t.status }}",
            "${{ inputs.a.b }}",
            "${{ inputs. }}",
            "${{ inputs.a b }}",
        ] {
            assert!(scan(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn renders_values_by_json_type() {
        let inputs = BTreeMap::from([("version".to_string(), "v3".to_string())]);
        let out = render(
            "${{inputs.version}}|${{ tasks.scan.outputs.critical }}|${{ tasks.scan.outputs.name }}|\
             ${{ tasks.scan.outputs.ok }}|${{ tasks.scan.outputs.list }}|${{ tasks.scan.outputs.obj }}",
            &inputs,
            &outputs(),
        )
        .unwrap();
        assert_eq!(out, r#"v3|0|x y|true|[1,"a"]|{"a":1}"#);
    }

    #[test]
    fn unresolvable_references_say_why() {
        let inputs = BTreeMap::new();
        let e = render("${{ tasks.scan.outputs.x }}", &inputs, &outputs()).unwrap_err();
        assert_eq!(
            e,
            "tasks.scan.outputs.x is not set: task scan reported outputs critical, high, list, name, obj, ok"
        );
        let e = render("${{ tasks.gone.outputs.x }}", &inputs, &outputs()).unwrap_err();
        assert!(
            e.starts_with("tasks.gone.outputs.x is not set: task gone reported no outputs"),
            "{e}"
        );
        let e = render("${{ inputs.v }}", &inputs, &outputs()).unwrap_err();
        assert_eq!(e, "inputs.v is not set: the run has inputs (none)");
        let e = render("${{ inputs.v", &inputs, &outputs()).unwrap_err();
        assert!(e.contains("unclosed") && e.contains("character 1"), "{e}");
    }
}
