//! Resolving a dispatch's secret references on this worker's host.
//!
//! A dispatch names secrets only (`from_env: VAR` of the worker's
//! environment, `from_file: /abs/path` on its host). They are read when the
//! attempt starts, only if this worker's [`SecretPolicy`] allows them, handed
//! to the runtime as [`Secrets`], and every value seeds the attempt's
//! [`Redactor`]. A problem is a [`SecretError`] naming the reference, never
//! the value; no other attempt can fix it, so the task fails permanently.

mod policy;

pub use policy::{env_pattern, PolicyError, SecretPolicy};

use std::fmt;
use std::sync::Arc;

use baton_proto::v1;

use crate::redact::{Redactor, MIN_SECRET_BYTES};

/// Where secret files appear in a container (`$BATON_SECRETS`).
pub const SECRETS_DIR: &str = "/run/secrets";

/// The resolved secrets of one attempt. Its `Debug` shows names only.
#[derive(Clone, Default)]
pub struct Secrets {
    /// Variables to set in the task's environment.
    pub env: Vec<(String, String)>,
    /// `(file name, content)` for `$BATON_SECRETS/<name>`.
    pub files: Vec<(String, Vec<u8>)>,
    pub redactor: Arc<Redactor>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("env", &self.env.iter().map(|e| &e.0).collect::<Vec<_>>())
            .field(
                "files",
                &self.files.iter().map(|e| &e.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret `{name}`: the worker has no environment variable {var} — set it where the worker starts (the plan's `from_env` names the worker's variable)")]
    MissingEnv { name: String, var: String },
    #[error("secret `{name}`: cannot read {path} on worker {worker}: {reason} — create the file there, readable by the worker's user")]
    Unreadable {
        name: String,
        path: String,
        worker: String,
        reason: String,
    },
    #[error("secret `{name}` is shorter than {MIN_SECRET_BYTES} bytes — so short a value cannot be redacted from output without garbling it; use a longer secret")]
    TooShort { name: String },
    #[error("secret `{name}` is not UTF-8 text, so it cannot be an environment variable — deliver it `as: file`")]
    NotText { name: String },
    #[error("secret `{name}` names neither `from_env` nor `from_file` — the dispatch is damaged; submit the plan again")]
    NoSource { name: String },
    #[error("secret `{name}`: from_env {var} is {what} and is never given to tasks, whatever --allow-secret-env says — give the task a variable of its own")]
    ReservedEnv {
        name: String,
        var: String,
        what: &'static str,
    },
    #[error("secret `{name}`: from_env {var} is not allowed on worker {worker} — start the worker with --allow-secret-env {var} (or a prefix such as DEPLOY_*)")]
    EnvNotAllowed {
        name: String,
        var: String,
        worker: String,
    },
    #[error("secret `{name}`: from_file {path} {why}; such files are never given to tasks, whatever --allow-secret-dir says — give the task a file of its own")]
    ReservedFile {
        name: String,
        path: String,
        why: String,
    },
    #[error("secret `{name}`: from_file {path} is not allowed on worker {worker} — start the worker with --allow-secret-dir {dir}")]
    FileNotAllowed {
        name: String,
        path: String,
        worker: String,
        dir: String,
    },
    #[error("secret `{name}`: from_file {path} leads through a symbolic link outside every --allow-secret-dir of worker {worker} — keep the file itself in an allowed directory")]
    LinkOutside {
        name: String,
        path: String,
        worker: String,
    },
    #[error("secret `{name}`: from_file {path} is not a regular file — name a file (not a directory, device, FIFO or socket)")]
    NotAFile { name: String, path: String },
    #[error("secret `{name}`: {reference} holds the same value as one of Baton's own credentials, which is never given to tasks — give the task a credential of its own")]
    OwnValue { name: String, reference: String },
    /// The worker's own `--allow-secret-*` settings are wrong.
    #[error(transparent)]
    BadPolicy(#[from] PolicyError),
}

/// Read every reference that `policy` allows, failing at the first it does
/// not; `lookup` reads the worker's environment.
pub fn resolve(
    refs: &[v1::SecretRef],
    worker: &str,
    policy: &SecretPolicy,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Secrets, SecretError> {
    let mut secrets = Secrets::default();
    let mut values: Vec<(String, Vec<u8>)> = Vec::new();
    for r in refs {
        let raw = if !r.from_env.is_empty() {
            policy.env(&r.name, &r.from_env, worker, &lookup)?
        } else if !r.from_file.is_empty() {
            policy.file(&r.name, &r.from_file, worker)?
        } else {
            return Err(SecretError::NoSource {
                name: r.name.clone(),
            });
        };
        // A file usually ends in a newline the value does not include.
        let value = trim_end(&raw).to_vec();
        if value.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort {
                name: r.name.clone(),
            });
        }
        if r.as_file {
            secrets.files.push((r.name.clone(), raw));
        } else {
            let text = String::from_utf8(value.clone()).map_err(|_| SecretError::NotText {
                name: r.name.clone(),
            })?;
            secrets.env.push((r.name.clone(), text));
        }
        values.push((r.name.clone(), value));
    }
    secrets.redactor = Arc::new(Redactor::new(
        values.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
    ));
    Ok(secrets)
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, env: &str, file: &str, as_file: bool) -> v1::SecretRef {
        v1::SecretRef {
            name: name.into(),
            from_env: env.into(),
            from_file: file.into(),
            as_file,
        }
    }

    #[test]
    fn resolves_env_and_files_and_redacts_both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "file-secret-1\n").unwrap();
        let refs = [
            r("TOKEN", "CI_TOKEN", "", false),
            r("key", "", path.to_str().unwrap(), true),
        ];
        let policy = SecretPolicy::new(["CI_*"], [dir.path()]);
        let s = resolve(&refs, "w1", &policy, |v| {
            (v == "CI_TOKEN").then(|| "env-secret-1".into())
        })
        .unwrap();
        assert_eq!(s.env, [("TOKEN".to_string(), "env-secret-1".to_string())]);
        assert_eq!(s.files, [("key".to_string(), b"file-secret-1\n".to_vec())]);
        assert_eq!(
            s.redactor.str("env-secret-1 file-secret-1"),
            "[REDACTED:TOKEN] [REDACTED:key]"
        );
        assert!(!format!("{s:?}").contains("secret-1"));
    }

    #[test]
    fn problems_name_the_reference_never_the_value() {
        let policy = SecretPolicy::new(["NOPE", "SHORT"], ["/nonexistent"]);
        let e = resolve(&[r("T", "NOPE", "", false)], "w1", &policy, |_| None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "secret `T`: the worker has no environment variable NOPE — set it where the worker starts (the plan's `from_env` names the worker's variable)"
        );
        let e = resolve(
            &[r("k", "", "/nonexistent/baton/key", true)],
            "w1",
            &policy,
            |_| None,
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "secret `k`: cannot read /nonexistent/baton/key on worker w1: entity not found"
            ),
            "{e}"
        );
        let e = resolve(&[r("T", "SHORT", "", false)], "w1", &policy, |_| {
            Some("abc\n".into())
        })
        .unwrap_err();
        assert!(matches!(e, SecretError::TooShort { .. }), "{e}");
        assert!(!e.to_string().contains("abc"));
    }
}
