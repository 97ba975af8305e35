//! Inputs given at submit time, merged with the plan's defaults.

use std::collections::BTreeMap;

use super::error::suggest;
use super::limits::{MAX_INPUTS_TOTAL_BYTES, MAX_INPUT_BYTES};
use super::model::Plan;

/// Inputs given at submit time + defaults → the full input map.
///
/// Every problem is reported at once, joined by `; `: a required input that
/// was not given, or a given name the plan does not declare (with a
/// did-you-mean).
pub fn resolve_inputs(
    plan: &Plan,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let declared: Vec<&str> = plan.inputs.iter().map(|i| i.name.as_str()).collect();
    let mut problems = Vec::new();
    for (name, value) in given {
        if value.len() > MAX_INPUT_BYTES {
            problems.push(format!(
                "input `{name}` is {} bytes, more than the limit of {MAX_INPUT_BYTES} — pass a reference (a URL, a path, a commit) instead of the data",
                value.len()
            ));
        }
    }
    let total: usize = given.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_INPUTS_TOTAL_BYTES {
        problems.push(format!(
            "the inputs are {total} bytes together, more than the limit of {MAX_INPUTS_TOTAL_BYTES}"
        ));
    }
    for name in given.keys() {
        if !declared.contains(&name.as_str()) {
            let hint = if declared.is_empty() {
                format!("plan {} declares no inputs", plan.name)
            } else {
                suggest(name, declared.iter().copied(), "declared inputs")
            };
            problems.push(format!("unknown input `{name}` — {hint}"));
        }
    }
    let mut resolved = BTreeMap::new();
    for spec in &plan.inputs {
        match given.get(&spec.name).or(spec.default.as_ref()) {
            Some(value) => {
                resolved.insert(spec.name.clone(), value.clone());
            }
            None => {
                let about = spec
                    .description
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                problems.push(format!(
                    "missing required input `{}`{about} — give it with `{}=<value>`",
                    spec.name, spec.name
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(resolved)
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InputSpec;

    fn plan() -> Plan {
        let input = |name: &str, default: Option<&str>| InputSpec {
            name: name.into(),
            default: default.map(Into::into),
            description: None,
        };
        Plan {
            name: "p".into(),
            description: None,
            inputs: vec![input("version", Some("v1")), input("target", None)],
            roles: BTreeMap::new(),
            phases: Vec::new(),
            ..Plan::default()
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_fill_in_and_given_wins() {
        let r = resolve_inputs(&plan(), &map(&[("target", "stage")])).unwrap();
        assert_eq!(r, map(&[("target", "stage"), ("version", "v1")]));
        let r = resolve_inputs(&plan(), &map(&[("target", "t"), ("version", "v2")])).unwrap();
        assert_eq!(r["version"], "v2");
    }

    #[test]
    fn missing_and_unknown_are_all_reported() {
        let e = resolve_inputs(&plan(), &map(&[("versoin", "v2")])).unwrap_err();
        assert_eq!(
            e,
            "unknown input `versoin` — did you mean `version`?; \
             missing required input `target` — give it with `target=<value>`"
        );
    }

    #[test]
    fn oversized_inputs_are_refused() {
        let big = "x".repeat(MAX_INPUT_BYTES + 1);
        let e = resolve_inputs(&plan(), &map(&[("target", &big)])).unwrap_err();
        assert_eq!(
            e,
            "input `target` is 16385 bytes, more than the limit of 16384 — pass a reference (a URL, a path, a commit) instead of the data"
        );
    }
}
