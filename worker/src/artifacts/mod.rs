//! Artifacts: files tasks leave in `/baton/out/`, kept in the JetStream
//! object store bucket `baton_artifacts`, and handed to later tasks under
//! `/baton/in/<task_id>/`. Both runtimes use this module; how files get in
//! and out of a container is the Docker runtime's business
//! (`runtime::docker_files`).
//!
//! - Object names: `<run>/<task>/<attempt>/<path>` ([`object_name`]).
//! - Upload: every regular file except the top-level `result.json`, with its
//!   size and lowercase-hex SHA-256, sorted by path ([`upload`]).
//! - Limit: the total is checked before anything is uploaded
//!   ([`Collected::over_limit`]); 0 in the dispatch means the worker default.
//!   Reading a container's `/baton/out` back stops at the limit, from the
//!   sizes in the tar headers ([`local::extract_tar`]); while the task runs,
//!   `/baton/out` is a tmpfs of [`out_quota`] bytes
//!   (`runtime::docker_out`).
//! - Secrets: each file's content passes the attempt's redactor before it
//!   is stored; size and SHA-256 describe what was stored. So does each
//!   file's path, kept unique ([`names`]), and the name of each entry
//!   skipped, before it is logged.
//! - Inputs: fetched to the worker's disk and checked against size and
//!   SHA-256 before any task sees them ([`fetch_inputs`]).

pub mod local;
pub mod names;

use std::path::Path;

use async_nats::jetstream::object_store::{GetErrorKind, ObjectStore};
use baton_proto::v1;
use tokio::io::AsyncReadExt;

pub use local::{Collected, OutFile, Stopped};

use crate::redact::Redactor;
use crate::runtime::{Outcome, RuntimeError, TaskSpec};

/// Default total size of what one attempt may leave in `/baton/out/`.
pub const DEFAULT_MAX_ARTIFACT_BYTES: u64 = 64 * 1024 * 1024;

/// The limit in force: `max_artifact_bytes`, or the default for 0.
pub fn limit(max_artifact_bytes: u64) -> u64 {
    if max_artifact_bytes == 0 {
        DEFAULT_MAX_ARTIFACT_BYTES
    } else {
        max_artifact_bytes
    }
}

/// Size of the Docker runtime's `/baton/out` tmpfs for `limit`: the limit
/// plus a margin (an eighth of it, at least 4 MiB). The margin is what lets
/// a task write past the limit far enough to be told so, rather than fail
/// on a full disk at exactly the limit; it also absorbs the tmpfs rounding
/// every file up to whole 4 KiB pages, and `result.json`.
pub fn out_quota(limit: u64) -> u64 {
    const MIN_MARGIN: u64 = 4 * 1024 * 1024;
    limit.saturating_add((limit / 8).max(MIN_MARGIN))
}

/// After an attempt: fail it when over the limit (nothing is stored then),
/// else store what it left (also for failed attempts: their files help
/// find out why) and record it in `outcome.artifacts`.
pub(crate) async fn settle(
    store: Option<&ObjectStore>,
    spec: &TaskSpec,
    collected: &mut Collected,
    outcome: &mut Outcome,
) -> Result<(), RuntimeError> {
    for s in &collected.skipped {
        let path = spec.secrets.redactor.str(&s.path);
        tracing::warn!(task = %spec.task_id, path = %path, "{}", s.why);
    }
    if let Some(e) = collected.over_limit(limit(spec.max_artifact_bytes)) {
        // It may name a file, and a name may hold a secret.
        let e = spec.secrets.redactor.str(&e);
        outcome.ok = false;
        outcome.error = Some(match outcome.error.take() {
            Some(first) => format!("{first}; {e}"),
            None => e,
        });
        return Ok(());
    }
    if collected.files.is_empty() {
        return Ok(());
    }
    let Some(store) = store else {
        tracing::warn!(task = %spec.task_id, files = collected.files.len(), "no artifact store configured; /baton/out files not kept");
        return Ok(());
    };
    redact_files(&spec.secrets.redactor, collected).await?;
    outcome.artifacts = upload(store, &spec.run_id, &spec.task_id, spec.attempt, collected).await?;
    Ok(())
}

/// Rewrites each collected file (the worker's own copy) with the attempt's
/// secrets redacted, and records its new size and SHA-256; redacts each
/// path (the local copy keeps its name).
async fn redact_files(redactor: &Redactor, collected: &mut Collected) -> std::io::Result<()> {
    if redactor.is_empty() {
        return Ok(());
    }
    names::redact_paths(redactor, &mut collected.files);
    for f in &mut collected.files {
        let content = tokio::fs::read(&f.local).await?;
        let clean = redactor.bytes(&content);
        if clean != content {
            tokio::fs::write(&f.local, &clean).await?;
            (f.size, f.sha256) = local::copy_hashed(&mut &clean[..], &mut std::io::sink())?;
        }
    }
    Ok(())
}

/// `<run>/<task>/<attempt>/<path>`.
pub fn object_name(run: &str, task: &str, attempt: u32, path: &str) -> String {
    format!("{run}/{task}/{attempt}/{path}")
}

/// Store `collected` under the attempt's prefix; returns the records for
/// `TaskFinished.artifacts`, in path order.
pub async fn upload(
    store: &ObjectStore,
    run: &str,
    task: &str,
    attempt: u32,
    collected: &Collected,
) -> Result<Vec<v1::Artifact>, RuntimeError> {
    let mut out = Vec::with_capacity(collected.files.len());
    for f in &collected.files {
        let object = object_name(run, task, attempt, &f.path);
        let mut file = tokio::fs::File::open(&f.local).await?;
        store.put(object.as_str(), &mut file).await.map_err(|e| {
            RuntimeError::ArtifactStore(format!("cannot store artifact {object}: {e}"))
        })?;
        out.push(v1::Artifact {
            path: f.path.clone(),
            size: f.size,
            sha256: f.sha256.clone(),
            object,
        });
    }
    Ok(out)
}

/// Fetch every input to `dest/<task_id>/<path>`, verifying size and
/// SHA-256. A missing, damaged or unsafely named input is a
/// [`RuntimeError::Input`] (the attempt cannot succeed as dispatched).
pub async fn fetch_inputs(
    store: Option<&ObjectStore>,
    inputs: &[v1::InputArtifacts],
    dest: &Path,
) -> Result<(), RuntimeError> {
    if inputs.iter().all(|i| i.artifacts.is_empty()) {
        return Ok(());
    }
    let Some(store) = store else {
        return Err(RuntimeError::InvalidSpec(
            "task has input artifacts but this runtime has no artifact store".into(),
        ));
    };
    for input in inputs {
        let task_dir = local::safe_rel_path(Path::new(&input.task_id)).ok_or_else(|| {
            RuntimeError::Input(format!(
                "input task id {:?} cannot be a directory under /baton/in/",
                input.task_id
            ))
        })?;
        for a in &input.artifacts {
            let rel = local::safe_rel_path(Path::new(&a.path))
                .filter(|_| !a.path.starts_with('/'))
                .ok_or_else(|| {
                    RuntimeError::Input(format!(
                        "input {}/{} has an unsafe path (absolute or with ..)",
                        input.task_id, a.path
                    ))
                })?;
            let target = dest.join(&task_dir).join(&rel);
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            fetch_one(store, &input.task_id, a, &target).await?;
        }
    }
    Ok(())
}

async fn fetch_one(
    store: &ObjectStore,
    task: &str,
    a: &v1::Artifact,
    target: &Path,
) -> Result<(), RuntimeError> {
    let mut object = match store.get(&a.object).await {
        Ok(o) => o,
        Err(e) if e.kind() == GetErrorKind::NotFound => {
            return Err(RuntimeError::Input(format!(
                "input {task}/{} (object {}) is not in the {} bucket — it was deleted or never stored; rerun task {task}",
                a.path, a.object, baton_proto::subjects::ARTIFACTS_BUCKET
            )))
        }
        Err(e) => {
            return Err(RuntimeError::ArtifactStore(format!(
                "cannot fetch input {}: {e}",
                a.object
            )))
        }
    };
    // Read one byte past the recorded size, so a longer object is noticed
    // without reading all of it.
    let mut bytes = Vec::new();
    (&mut object)
        .take(a.size.saturating_add(1))
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| RuntimeError::ArtifactStore(format!("cannot read input {}: {e}", a.object)))?;
    let (size, sha256) = local::copy_hashed(&mut &bytes[..], &mut std::io::sink())?;
    if size != a.size || sha256 != a.sha256.to_ascii_lowercase() {
        return Err(RuntimeError::Input(format!(
            "input {task}/{} (object {}) does not match its record: sha256 {sha256} ({size} bytes), expected {} ({} bytes) — the stored artifact was changed or damaged; rerun task {task}",
            a.path, a.object, a.sha256, a.size
        )));
    }
    tokio::fs::write(target, &bytes).await?;
    Ok(())
}
