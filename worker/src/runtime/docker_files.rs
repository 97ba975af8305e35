//! Files in and out of a task container: per-attempt volumes behind
//! `/baton/out` and `/baton/in`, the workspace volume, and reading
//! `/baton/out` back after the task.
//!
//! Why volumes and the archive API: a tmpfs vanishes with the container, the
//! root fs is read-only, and the worker may itself run in a container, so
//! bind mounts of worker directories are out. Everything goes through the
//! Docker API instead:
//! - `/baton/out`: a fresh volume `<container>-out`, mounted rw. A fresh
//!   volume's root belongs to root (unless the image has the directory: Docker
//!   then copies its owner), and the archive API cannot change the owner of
//!   the directory it extracts into. So a *stager* hands it to the sandbox
//!   user: a container from the task's image, with the volumes mounted, that
//!   runs only `chown <sandbox user> /baton/out [workspace]` as root, with
//!   no network, no capability but `CHOWN`, and a read-only root. The image
//!   therefore needs `chown` (busybox has it), as it needs `/bin/sh`.
//! - `/baton/in`: a fresh volume `<container>-in`, filled before the stager
//!   starts by uploading a tar of the verified inputs (root-owned, files
//!   0444, dirs 0555), and mounted read-only in the task container (an
//!   upload into a read-only mount is refused, hence the stager).
//! - `/run/secrets` (only when the attempt has secret files): a fresh
//!   volume `<container>-secrets`, filled like `/baton/in` and mounted
//!   read-only. A volume rather than a tmpfs because a tmpfs cannot be
//!   filled before the task starts without a writable, long-lived step in
//!   the task container; it is a per-attempt scratch volume, so it goes with
//!   the container after the attempt (or at the next start of a worker that
//!   died), and `docker commit` never sees volumes.
//! - workspace kind `volume`: created on first use, labelled
//!   `org.baton.run=<run>`; when this worker creates it, the stager hands its
//!   root to the sandbox user. One that exists is used as it is. Kind `host`
//!   is a bind mount.
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
    StartContainerOptions, UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;

use super::docker::wait_exit;
use super::docker_cleanup::{is_status, RemoveOnDrop};
use super::sandbox::{self, SandboxPolicy, OUT_DIR};
use super::workspace::{self, Kind};
use super::{RuntimeError, TaskSpec};
use crate::artifacts::local::{self, Collected};
use crate::secrets::SECRETS_DIR;

/// Where earlier tasks' artifacts appear (inside the container).
pub const IN_DIR: &str = "/baton/in";
/// Bound on the stager's `chown`.
const STAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
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
    let mut chown = vec![OUT_DIR.to_string()];
    let mut uploads = Vec::new();

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

    if !spec.secrets.files.is_empty() {
        let vol = format!("{name}-secrets");
        create_volume(docker, &vol, &labels).await?;
        scratch.push(vol.clone());
        task_mounts.push(volume_mount(&vol, SECRETS_DIR, true));
        stage_mounts.push(volume_mount(&vol, SECRETS_DIR, false));
        uploads.push((SECRETS_DIR.to_string(), secrets_tar(&spec.secrets.files)?));
    }

    if let Some(ws) = &spec.workspace {
        let kind = workspace::check(ws)?;
        if kind == Kind::Volume && ensure_workspace(docker, &ws.source, &spec.run_id).await? {
            stage_mounts.push(volume_mount(&ws.source, &ws.mount, false));
            chown.push(ws.mount.clone());
        }
        task_mounts.push(workspace::mount(ws, kind));
    }

    stage(docker, spec, policy, name, stage_mounts, chown, uploads).await?;
    Ok(task_mounts)
}

/// Upload each `(path, tar)` into the stager, then run it to `chown` the
/// `chown` paths to the sandbox user.
async fn stage(
    docker: &Docker,
    spec: &TaskSpec,
    policy: &SandboxPolicy,
    name: &str,
    mounts: Vec<Mount>,
    chown: Vec<String>,
    uploads: Vec<(String, Vec<u8>)>,
) -> Result<(), RuntimeError> {
    let mut command = vec!["chown".to_string(), policy.user.clone()];
    command.extend(chown.iter().cloned());
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: Some(command),
        user: Some("0:0".to_string()),
        labels: Some(sandbox::labels(spec, policy)),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            mounts: Some(mounts),
            network_mode: Some("none".to_string()),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".to_string()]),
            cap_add: Some(vec!["CHOWN".to_string()]),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            memory: Some(64 * 1024 * 1024),
            pids_limit: Some(16),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new()
        .name(&format!("{name}-stage"))
        .build();
    let id = docker.create_container(Some(options), body).await?.id;
    // Removed also when the attempt is dropped half-way (cancelled worker).
    let mut guard = RemoveOnDrop {
        docker: docker.clone(),
        id: Some(id.clone()),
        volumes: Vec::new(),
    };
    let result = run_stager(docker, spec, policy, &id, &chown, uploads).await;
    guard.remove().await;
    result
}

async fn run_stager(
    docker: &Docker,
    spec: &TaskSpec,
    policy: &SandboxPolicy,
    id: &str,
    chown: &[String],
    uploads: Vec<(String, Vec<u8>)>,
) -> Result<(), RuntimeError> {
    for (path, tar) in uploads {
        let options = UploadToContainerOptionsBuilder::new().path(&path).build();
        if let Err(e) = docker
            .upload_to_container(id, Some(options), bollard::body_full(tar.into()))
            .await
        {
            return Err(RuntimeError::Workspace(format!(
                "cannot copy the inputs of task {} to {path}: {e} — check the Docker engine's free disk space",
                spec.task_id
            )));
        }
    }
    docker
        .start_container(id, None::<StartContainerOptions>)
        .await?;
    let code = tokio::time::timeout(STAGE_TIMEOUT, wait_exit(docker, id))
        .await
        .map_err(|_| {
            std::io::Error::other(format!(
                "chown of {} did not finish within {STAGE_TIMEOUT:?}",
                chown.join(" ")
            ))
        })??;
    if code != 0 {
        return Err(RuntimeError::Workspace(format!(
            "cannot hand {} to user {}: `chown` in image {} exited {code} — the image needs a chown binary on PATH (busybox has one)",
            chown.join(" "),
            policy.user,
            spec.image
        )));
    }
    Ok(())
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

/// Secret files, root-owned and 0444: the task runs as another user, and
/// nothing but the task runs in its container.
fn secrets_tar(files: &[(String, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(content.len() as u64);
        h.set_mode(0o444);
        b.append_data(&mut h, name, content.as_slice())?;
    }
    b.into_inner()
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
