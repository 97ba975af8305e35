//! Resolving dotted names in the JSON context. Most gate failures in
//! practice are typos in output names, so a miss explains itself: the closest
//! existing key, or the keys that do exist at that level.

use serde_json::{Map, Value as Json};

use super::{ExprError, Value};

pub(crate) fn lookup(path: &str, offset: usize, ctx: &Json) -> Result<Value, ExprError> {
    let segments: Vec<&str> = path.split('.').collect();
    let mut current = ctx;
    for (i, segment) in segments.iter().enumerate() {
        let prefix = segments[..i].join(".");
        let Json::Object(map) = current else {
            let hint = if prefix.is_empty() {
                "the evaluation context has no fields".to_string()
            } else {
                format!(
                    "`{prefix}` is {}, which has no fields — use `{prefix}` itself",
                    json_kind(current)
                )
            };
            return Err(ExprError::new(
                offset,
                format!("unknown name `{path}` — {hint}"),
            ));
        };
        match map.get(*segment) {
            Some(next) => current = next,
            None => return Err(unknown(path, &segments, i, map, ctx, offset)),
        }
    }
    to_value(path, current, offset)
}

fn unknown(
    path: &str,
    segments: &[&str],
    missing: usize,
    siblings: &Map<String, Json>,
    ctx: &Json,
    offset: usize,
) -> ExprError {
    let prefix = segments[..missing].join(".");
    let full = |key: &str| {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    };
    let hint = if let Some(best) = closest(segments[missing], siblings) {
        let mut fixed = segments.to_vec();
        fixed[missing] = best;
        // Only offer the whole corrected path if it really exists; otherwise
        // the part we know is right is the most honest suggestion. The
        // corrected segments are walked as they are: joined and split again,
        // a key holding a dot (`{"sc.an": …}`) would read as two segments,
        // miss again, and suggest itself again without end.
        let suggestion = if resolves(&fixed, ctx).is_some_and(|v| to_value("", v, offset).is_ok()) {
            fixed.join(".")
        } else {
            full(best)
        };
        format!("did you mean `{suggestion}`?")
    } else if siblings.is_empty() {
        match prefix.is_empty() {
            true => "the evaluation context is empty".to_string(),
            false => format!("`{prefix}` has no fields"),
        }
    } else {
        // Sorted so the message does not depend on serde_json's map ordering feature.
        let mut keys: Vec<&String> = siblings.keys().collect();
        keys.sort();
        let known: Vec<String> = keys.iter().take(8).map(|k| full(k)).collect();
        let more = siblings.len().saturating_sub(8);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!("known here: {}{more}", known.join(", "))
    };
    ExprError::new(offset, format!("unknown name `{path}` — {hint}"))
}

/// The value at `segments` (each one key, dots and all), without suggestions.
fn resolves<'a>(segments: &[&str], ctx: &'a Json) -> Option<&'a Json> {
    segments
        .iter()
        .try_fold(ctx, |current, segment| match current {
            Json::Object(map) => map.get(*segment),
            _ => None,
        })
}

/// The sibling key most like `wanted`. The edit-distance rule additionally
/// needs fewer edits than `wanted` has chars, or every key of two chars would
/// "match" a one-char typo.
fn closest<'a>(wanted: &str, siblings: &'a Map<String, Json>) -> Option<&'a str> {
    let wanted_len = wanted.chars().count();
    siblings
        .keys()
        .filter_map(|key| {
            let similarity = strsim::jaro_winkler(wanted, key);
            let edits = strsim::levenshtein(wanted, key);
            (similarity >= 0.8 || (edits <= 2 && edits < wanted_len))
                .then_some((key, similarity, edits))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.2.cmp(&a.2)))
        .map(|(key, _, _)| key.as_str())
}

fn json_kind(json: &Json) -> String {
    match json {
        Json::Null => "null".to_string(),
        Json::Object(_) => "an object".to_string(),
        Json::Array(_) => "a list".to_string(),
        Json::Bool(b) => format!("a boolean ({b})"),
        Json::Number(n) => format!("a number ({n})"),
        Json::String(s) => format!("a string ({})", Value::String(s.clone())),
    }
}

fn to_value(path: &str, json: &Json, offset: usize) -> Result<Value, ExprError> {
    let scalar = |json: &Json| match json {
        Json::Bool(b) => Some(Value::Bool(*b)),
        Json::Number(n) => n.as_f64().map(Value::Number),
        Json::String(s) => Some(Value::String(s.clone())),
        _ => None,
    };
    let fail = |message: String| Err(ExprError::new(offset, message));
    match json {
        Json::Null => fail(format!(
            "`{path}` is null — gates only use numbers, strings, booleans and lists of them; make sure it is set"
        )),
        Json::Object(map) => {
            let example = map.keys().min().map_or(String::new(), |k| format!(", e.g. `{path}.{k}`"));
            fail(format!("`{path}` is an object, not a value — pick one of its fields{example}"))
        }
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                scalar(item).ok_or_else(|| {
                    ExprError::new(
                        offset,
                        format!(
                            "`{path}` is a list holding {} at index {i} — only lists of numbers, strings and booleans can be used",
                            json_kind(item)
                        ),
                    )
                })
            })
            .collect::<Result<_, _>>()
            .map(Value::List),
        other => scalar(other).map_or_else(
            || fail(format!("`{path}` is a number too large to use")),
            Ok,
        ),
    }
}
