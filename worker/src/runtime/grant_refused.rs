//! Why a worker refuses a dispatch's sandbox request ([`super::grant`]).

use std::path::{Path, PathBuf};

use super::RESERVED;

/// Why this worker refuses what a dispatch asks for. The text goes into
/// the attempt's `TaskFinished.error`: it names what was asked and the flag
/// (or the change to the plan) that would allow it.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the role asks for network access, which this worker does not allow — start the worker with --allow-network, or remove `sandbox.network` from the role")]
    Network,
    #[error("the role asks for {key} {asked}, above this worker's ceiling of {max} — start the worker with {flag} {flag_value} or more, or lower `sandbox.{key}` in the role")]
    AboveCeiling {
        /// The role's `sandbox.<key>`.
        key: &'static str,
        asked: String,
        max: String,
        flag: &'static str,
        /// `asked` as the flag takes it.
        flag_value: String,
    },
    #[error("mount path {path:?} in the container must be absolute, without `..`, and outside {}", RESERVED.join(", "))]
    ContainerPath { path: String },
    #[error("{what} {given:?} must be absolute and without `..` — give the full path on the worker's host")]
    NotAbsolute { what: &'static str, given: String },
    #[error("{what} {} is refused: {why}; it is never mounted, whatever --allow-mounts says — use a directory of its own (e.g. /srv/baton/<name>) under one of the worker's --allow-mounts DIR", show(given, resolved.as_deref()))]
    NeverMounted {
        what: &'static str,
        given: String,
        resolved: Option<PathBuf>,
        /// From [`super::never_mounted`].
        why: String,
    },
    #[error("{what} {} is outside what this worker allows (--allow-mounts: {}) — start the worker with --allow-mounts DIR for a directory holding it (e.g. --allow-mounts {}), {fix}", show(given, resolved.as_deref()), allowed_list(allowed), resolved.as_deref().map_or(given.to_string(), |r| r.display().to_string()))]
    Outside {
        what: &'static str,
        given: String,
        resolved: Option<PathBuf>,
        /// The worker's `--allow-mounts`.
        allowed: Vec<PathBuf>,
        fix: &'static str,
    },
    #[error("{what} {given} cannot be resolved on this worker ({source}) — create it under one of the worker's --allow-mounts DIR, {fix}")]
    Unresolvable {
        what: &'static str,
        given: String,
        fix: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("workspace host path {given} resolves to {}, which is not UTF-8 — use a path of plain characters", resolved.display())]
    NotUtf8 { given: String, resolved: PathBuf },
}

/// `given`, and what it resolves to when that differs.
fn show(given: &str, resolved: Option<&Path>) -> String {
    match resolved {
        Some(r) => format!("{given} (resolves to {})", r.display()),
        None => given.to_string(),
    }
}

/// `--allow-mounts` as the refusal shows it.
fn allowed_list(allowed: &[PathBuf]) -> String {
    if allowed.is_empty() {
        return "none".to_string();
    }
    allowed
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
