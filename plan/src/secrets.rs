//! Secrets by reference: `env: { NAME: { secret: { from_env: VAR } } }` and
//! `secrets: [{ name, secret: { from_file: /abs/path }, as: file }]`.
//!
//! A reference says where the *worker* finds the value (its own environment
//! or an absolute path on its host); no key can hold a value, so a plan,
//! its snapshot and every dispatch carry names only.

use std::collections::{BTreeMap, BTreeSet};

use marked_yaml::Node;

use super::error::Pos;
use super::model::{SecretRef, SecretSource};
use super::node::{is_null, kind, node_pos, Cx, Field, TextPos};
use super::task::is_env_name;

const REF_HINT: &str =
    "write `secret: { from_env: NAME }` or `secret: { from_file: /absolute/path }` — secrets are named, never written into a plan";

/// `env:` entries: scalars are values, `{ secret: … }` mappings are secrets
/// delivered as that variable.
pub(crate) fn env(
    cx: &mut Cx,
    f: Field<'_>,
) -> (
    BTreeMap<String, String>,
    BTreeMap<String, TextPos>,
    Vec<SecretRef>,
) {
    let (mut values, mut spans, mut secrets) = (BTreeMap::new(), BTreeMap::new(), Vec::new());
    let Node::Mapping(map) = f.node else {
        cx.err(
            f.pos(),
            format!("`env` must be a mapping, not {}", kind(f.node)),
            "write `env: { NAME: \"value\" }`",
        );
        return (values, spans, secrets);
    };
    for (k, v) in map.iter() {
        let name = k.as_str();
        match v {
            Node::Scalar(s) if !is_null(v) => {
                values.insert(name.to_string(), s.as_str().to_string());
                spans.insert(name.to_string(), cx.text_pos(s));
            }
            Node::Mapping(_) => {
                let what = format!("env `{name}`");
                let Some(fs) = cx.fields(v, node_pos(v), &what, &["secret"]) else {
                    continue;
                };
                let Some(secret) = cx.require(&fs, "secret", &what) else {
                    continue;
                };
                if let Some(source) = source(cx, secret) {
                    secrets.push(SecretRef {
                        name: name.to_string(),
                        source,
                        as_file: false,
                    });
                }
            }
            other => cx.err(
                node_pos(other),
                format!(
                    "env `{name}` must be a string, number, bool or `{{ secret: … }}`, not {}",
                    kind(other)
                ),
                "quote the value, e.g. `NAME: \"value\"`, or name a secret: `NAME: { secret: { from_env: NAME } }`",
            ),
        }
    }
    (values, spans, secrets)
}

/// `secrets: [{ name, secret: { from_env | from_file }, as: file | env }]`;
/// `as` defaults to `file`.
pub(crate) fn list(cx: &mut Cx, f: Field<'_>) -> Vec<SecretRef> {
    let hint =
        "write `secrets: [{ name: deploy_key, secret: { from_file: /etc/baton/deploy.key } }]`";
    let Some(items) = cx.seq(f, hint) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items.iter() {
        let Some(fs) = cx.fields(item, node_pos(item), "a secret", &["name", "secret", "as"])
        else {
            continue;
        };
        let name = cx.require(&fs, "name", "secret").and_then(|n| cx.string(n));
        let as_file = match fs.get("as") {
            None => Some(true),
            Some(a) => match cx.string(a) {
                Some((t, _)) if t == "file" => Some(true),
                Some((t, _)) if t == "env" => Some(false),
                Some((t, _)) => {
                    cx.err(
                        a.pos(),
                        format!("`as: {t}` is not a way to deliver a secret"),
                        "use `as: file` (read-only at /run/secrets/<name>) or `as: env` (a variable named <name>)",
                    );
                    None
                }
                None => None,
            },
        };
        let source = cx
            .require(&fs, "secret", "secret")
            .and_then(|s| source(cx, s));
        let (Some((name, at)), Some(as_file), Some(source)) = (name, as_file, source) else {
            continue;
        };
        if let Some(problem) = name_problem(&name, as_file) {
            cx.err(
                at.node,
                format!("secret name `{name}` {problem}"),
                name_hint(as_file),
            );
            continue;
        }
        out.push(SecretRef {
            name,
            source,
            as_file,
        });
    }
    out
}

/// One variable or file per name: `secrets:` entries may not repeat each
/// other or an `env` key.
pub(crate) fn check_unique(
    cx: &mut Cx,
    at: Pos,
    env: &BTreeMap<String, String>,
    env_secrets: &[SecretRef],
    listed: &[SecretRef],
) {
    let mut vars: BTreeSet<&str> = env.keys().map(String::as_str).collect();
    vars.extend(env_secrets.iter().map(|s| s.name.as_str()));
    let mut files = BTreeSet::new();
    for s in listed {
        let fresh = if s.as_file {
            files.insert(s.name.as_str())
        } else {
            vars.insert(s.name.as_str())
        };
        if !fresh {
            let what = if s.as_file { "file" } else { "variable" };
            cx.err(
                at,
                format!("secret `{}` is given twice as a {what}", s.name),
                "give each secret its own name",
            );
        }
    }
}

/// `{ from_env: NAME }` or `{ from_file: /abs/path }`.
fn source(cx: &mut Cx, f: Field<'_>) -> Option<SecretSource> {
    if let Node::Scalar(_) = f.node {
        cx.err(
            f.pos(),
            "`secret` must name where the worker finds the value, not hold it",
            REF_HINT,
        );
        return None;
    }
    let fs = cx.fields(f.node, f.pos(), "`secret`", &["from_env", "from_file"])?;
    match (fs.get("from_env"), fs.get("from_file")) {
        (Some(_), Some(_)) | (None, None) => {
            cx.err(
                fs.pos,
                "`secret` needs exactly one of `from_env` and `from_file`",
                REF_HINT,
            );
            None
        }
        (Some(e), None) => {
            let (var, at) = cx.string(e)?;
            if !is_env_name(&var) {
                cx.err(
                    at.node,
                    format!("`{var}` is not a valid environment variable name"),
                    "use letters, digits and `_`, not starting with a digit",
                );
                return None;
            }
            Some(SecretSource::FromEnv(var))
        }
        (None, Some(p)) => {
            let (path, at) = cx.string(p)?;
            if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
                cx.err(
                    at.node,
                    format!("`from_file: {path}` is not an absolute path"),
                    "give the full path on the worker host, e.g. /etc/baton/deploy.key (relative paths would depend on where the worker was started)",
                );
                return None;
            }
            Some(SecretSource::FromFile(path))
        }
    }
}

fn name_problem(name: &str, as_file: bool) -> Option<&'static str> {
    if as_file {
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if name.is_empty() || name.len() > 64 || name.starts_with('.') || !name.chars().all(ok) {
            return Some("is not a valid file name");
        }
    } else if !is_env_name(name) {
        return Some("is not a valid environment variable name");
    }
    None
}

fn name_hint(as_file: bool) -> &'static str {
    if as_file {
        "file names use letters, digits, `_`, `-` and `.`, do not start with `.` and have at most 64 characters"
    } else {
        "use letters, digits and `_`, not starting with a digit"
    }
}

#[cfg(test)]
#[path = "secrets_tests.rs"]
mod tests;
