//! Files in and out of a task container: per-attempt volumes behind
//! `/baton/out` and `/baton/in`, the workspace volume, and reading
//! `/baton/out` back after the task.
//!
//! Why volumes and the archive API: a tmpfs vanishes with the container, the
//! root fs is read-only, and the worker may itself run in a container, so
//! bind mounts of worker directories are out. Everything goes through the
//! Docker API instead:
//! - `/baton/out`: a fresh volume `<container>-out`, mounted rw. A fresh
//!   volume's root is owned by root, so it is handed to the sandbox user by
//!   uploading a tar that holds only a `.` directory entry: Docker applies
//!   that entry's owner and mode to the existing directory. The upload goes
//!   through a *stager*, a container created with the volumes mounted and
//!   never started: no shell, no root process and no network needed.
//! - `/baton/in`: a fresh volume `<container>-in`, filled through the stager
//!   with a tar of the verified inputs (root-owned, files 0444, dirs 0555) and
//!   mounted read-only.
//! - workspace kind `volume`: created on first use, labelled
//!   `org.baton.run=<run>`; when this worker creates it, its root is handed
//!   to the sandbox user the same way (mode 0755). One that exists is used as
//!   it is. Kind `host` is a bind mount.
//! - After the task, `GET /containers/<id>/archive?path=/baton/out` on the
//!   stopped container streams a tar, unpacked on the worker's disk by
//!   [`local::extract_tar`].
//!
//! Per-attempt volumes carry the container's labels plus
//! [`LABEL_SCRATCH`]; they go with the container, and
//! `Runtime::adopt_leftovers` removes those a dead predecessor left.

use std::collections::HashMap;
use std::path::Path;

use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder, ListVolumesOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;

use super::docker::{is_status, remove_quietly};
use super::sandbox::{self, numeric_ids, SandboxPolicy, OUT_DIR};
use super::workspace::{self, Kind};
use super::{RuntimeError, TaskSpec};
use crate::artifacts::local::{self, Collected};

/// Where earlier tasks' artifacts appear (inside the container).
pub const IN_DIR: &str = "/baton/in";
/// Marks per-attempt volumes (never workspaces), for clean-up.
pub const LABEL_SCRATCH: &str = "org.baton.scratch";

/// Create the attempt's volumes and fill them; returns the task
/// container's mounts. Every volume created is pushed to `scratch` at once,
/// so that the caller removes it whatever fails later.
pub(crate) async fn prepare(
    docker: &Docker,
    spec: &TaskSpec,
    policy: &SandboxPolicy,
    name: &str,
    inputs: Option<&Path>,
    scratch: &mut Vec<String>,
) -> Result<Vec<Mount>, RuntimeError> {
    let mut labels = sandbox::labels(spec, policy);
    labels.insert(LABEL_SCRATCH.to_string(), "true".to_string());
    let out = format!("{name}-out");
    create_volume(docker, &out, &labels).await?;
    scratch.push(out.clone());
    let mut task_mounts = vec![volume_mount(&out, OUT_DIR, false)];
    let mut stage_mounts = vec![volume_mount(&out, OUT_DIR, false)];
    let mut uploads = vec![(OUT_DIR.to_string(), owner_tar(&policy.user, 0o700)?)];

    if let Some(dir) = inputs {
        let vol = format!("{name}-in");
        create_volume(docker, &vol, &labels).await?;
        scratch.push(vol.clone());
        task_mounts.push(volume_mount(&vol, IN_DIR, true));
        stage_mounts.push(volume_mount(&vol, IN_DIR, false));
        let dir = dir.to_path_buf();
        let tar = tokio::task::spawn_blocking(move || inputs_tar(&dir))
            .await
            .map_err(|e| std::io::Error::other(format!("packing inputs failed: {e}")))??;
        uploads.push((IN_DIR.to_string(), tar));
    }

    if let Some(ws) = &spec.workspace {
        let kind = workspace::check(ws)?;
        if kind == Kind::Volume && ensure_workspace(docker, &ws.source, &spec.run_id).await? {
            stage_mounts.push(volume_mount(&ws.source, &ws.mount, false));
            uploads.push((ws.mount.clone(), owner_tar(&policy.user, 0o755)?));
        }
        task_mounts.push(workspace::mount(ws, kind));
    }

    stage(docker, spec, policy, name, stage_mounts, uploads).await?;
    Ok(task_mounts)
}

/// Upload each `(path, tar)` through a created-but-never-started container.
async fn stage(
    docker: &Docker,
    spec: &TaskSpec,
    policy: &SandboxPolicy,
    name: &str,
    mounts: Vec<Mount>,
    uploads: Vec<(String, Vec<u8>)>,
) -> Result<(), RuntimeError> {
    let stager = format!("{name}-stage");
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        // Never started; Docker only wants a command to create it.
        entrypoint: Some(vec!["/bin/true".to_string()]),
        labels: Some(sandbox::labels(spec, policy)),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            mounts: Some(mounts),
            network_mode: Some("none".to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new().name(&stager).build();
    let id = docker.create_container(Some(options), body).await?.id;
    let mut result = Ok(());
    for (path, tar) in uploads {
        let options = UploadToContainerOptionsBuilder::new().path(&path).build();
        if let Err(e) = docker
            .upload_to_container(&id, Some(options), bollard::body_full(tar.into()))
            .await
        {
            result = Err(RuntimeError::Workspace(format!(
                "cannot prepare {path} for task {}: {e} — check that the volume behind it is writable by the Docker engine",
                spec.task_id
            )));
            break;
        }
    }
    remove_quietly(docker, &id).await;
    result
}

/// Creates the workspace volume if missing; true when this call created it.
async fn ensure_workspace(docker: &Docker, volume: &str, run: &str) -> Result<bool, RuntimeError> {
    match docker.inspect_volume(volume).await {
        Ok(_) => return Ok(false),
        Err(e) if is_status(&e, 404) => {}
        Err(source) => {
            return Err(RuntimeError::Volume {
                volume: volume.to_string(),
                source,
            })
        }
    }
    let labels = HashMap::from([(sandbox::LABEL_RUN.to_string(), run.to_string())]);
    // Creating an existing volume is a no-op in Docker, so two tasks
    // racing here both succeed (and both hand the root over: harmless).
    create_volume(docker, volume, &labels).await?;
    Ok(true)
}

async fn create_volume(
    docker: &Docker,
    volume: &str,
    labels: &HashMap<String, String>,
) -> Result<(), RuntimeError> {
    let request = VolumeCreateRequest {
        name: Some(volume.to_string()),
        labels: Some(labels.clone()),
        ..Default::default()
    };
    docker
        .create_volume(request)
        .await
        .map(drop)
        .map_err(|source| RuntimeError::Volume {
            volume: volume.to_string(),
            source,
        })
}

fn volume_mount(volume: &str, target: &str, read_only: bool) -> Mount {
    Mount {
        target: Some(target.to_string()),
        source: Some(volume.to_string()),
        typ: Some(MountType::VOLUME),
        read_only: Some(read_only),
        ..Default::default()
    }
}

/// A tar with only `.`, owned by the sandbox user. A user given by name
/// cannot be resolved here, so the directory is then left to root but
/// open to everyone (0777).
fn owner_tar(user: &str, mode: u32) -> std::io::Result<Vec<u8>> {
    let (uid, gid, mode) = match numeric_ids(user) {
        Some((uid, gid)) => (uid, gid, mode),
        None => (0, 0, 0o777),
    };
    let mut b = tar::Builder::new(Vec::new());
    let mut h = dir_header(mode);
    h.set_uid(u64::from(uid));
    h.set_gid(u64::from(gid));
    b.append_data(&mut h, ".", std::io::empty())?;
    b.into_inner()
}

fn dir_header(mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(mode);
    h
}

/// The fetched inputs under `dir` as a root-owned, read-only tree.
fn inputs_tar(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut dir_header(0o755), ".", std::io::empty())?;
    append_tree(&mut b, dir, dir)?;
    b.into_inner()
}

fn append_tree(b: &mut tar::Builder<Vec<u8>>, root: &Path, dir: &Path) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let rel = path.strip_prefix(root).map_err(std::io::Error::other)?;
        // Written by `fetch_inputs` only: directories and regular files.
        if entry.file_type()?.is_dir() {
            b.append_data(&mut dir_header(0o555), rel, std::io::empty())?;
            append_tree(b, root, &path)?;
        } else {
            let file = std::fs::File::open(&path)?;
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(file.metadata()?.len());
            h.set_mode(0o444);
            b.append_data(&mut h, rel, file)?;
        }
    }
    Ok(())
}

/// Read `/baton/out` of the (stopped) container into `dest`.
pub(crate) async fn collect(
    docker: &Docker,
    id: &str,
    dest: &Path,
    limit: u64,
) -> Result<Collected, RuntimeError> {
    let options = DownloadFromContainerOptionsBuilder::new()
        .path(OUT_DIR)
        .build();
    // The tar is parsed as it arrives, on a blocking thread, so that an
    // oversized /baton/out is counted without being kept.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    let mut stream = Box::pin(docker.download_from_container(id, Some(options)));
    let pump = async move {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(std::io::Error::other);
            let stop = chunk.is_err();
            if tx.send(chunk).await.is_err() || stop {
                break;
            }
        }
    };
    let reader =
        tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(tokio_stream_from(rx)));
    let dest = dest.to_path_buf();
    let parse = tokio::task::spawn_blocking(move || local::extract_tar(reader, &dest, limit));
    let (_, parsed) = tokio::join!(pump, parse);
    let collected =
        parsed.map_err(|e| std::io::Error::other(format!("unpacking /baton/out failed: {e}")))?;
    Ok(collected?)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin {
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// Remove this worker's per-attempt volumes (`label_filter`: its worker label).
pub(crate) async fn remove_scratch_volumes(
    docker: &Docker,
    label_filter: &str,
) -> Result<usize, RuntimeError> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![label_filter.to_string(), format!("{LABEL_SCRATCH}=true")],
    )]);
    let options = ListVolumesOptionsBuilder::new().filters(&filters).build();
    let volumes = docker
        .list_volumes(Some(options))
        .await?
        .volumes
        .unwrap_or_default();
    let mut removed = 0;
    for v in volumes {
        match remove_volume(docker, &v.name).await {
            Ok(()) => removed += 1,
            Err(e) if is_status(&e, 404) => {}
            Err(e) => tracing::warn!(volume = %v.name, error = %e, "cannot remove leftover volume"),
        }
    }
    Ok(removed)
}

pub(crate) async fn remove_volume(docker: &Docker, volume: &str) -> Result<(), DockerError> {
    docker
        .remove_volume(
            volume,
            None::<bollard::query_parameters::RemoveVolumeOptions>,
        )
        .await
}
