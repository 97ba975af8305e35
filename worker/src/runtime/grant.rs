//! What a dispatch may widen in the sandbox, and what this worker grants
//! (pure but for resolving host paths).
//!
//! A role can ask for a network, host mounts and more memory, CPU or pids
//! (`v1::SandboxRequest`); a plan's `host_path` workspace asks for a host
//! directory too. The worker grants nothing it was not started to allow:
//! network only with `--allow-network`, a host path (role mount or
//! workspace) only under one of its `--allow-mounts` directories, resources
//! only up to its ceilings. A request beyond that is refused as a whole,
//! never silently shrunk, so that a task does not run in a sandbox other
//! than the one its plan promised; the error names the flag that would
//! allow it.
//!
//! Host paths are resolved (symlinks, `..`) before they are checked, and the
//! resolved path is what gets mounted: a link planted inside an allowed
//! directory cannot point the task elsewhere. Some host paths are never
//! mounted whatever the allow list says ([`never_mounted`]).

use std::path::{Component, Path, PathBuf};

use baton_proto::v1;

use super::result::format_mib;
use super::Limits;

#[path = "grant_refused.rs"]
mod refused;
pub use refused::Refused;

/// Path components never mounted, wherever they are: an engine's socket
/// hands out root on the host.
const NEVER_MOUNT: &[&str] = &["docker.sock", "containerd.sock", "podman.sock"];

/// Where engines put their sockets: a mount of any directory above one of
/// these would carry the socket in with it.
const SOCKET_PATHS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
    "/run/podman/podman.sock",
];

/// Host trees never mounted, whatever `--allow-mounts` says: the tree, all
/// under it, and any directory holding it. A task given one of these
/// owns the host.
const NEVER_HOST: &[(&str, &str)] = &[
    ("/proc", "the host's processes and kernel interfaces"),
    ("/sys", "the host's kernel settings"),
    ("/dev", "the host's devices"),
    ("/run", "the host's runtime state and its engine sockets"),
    (
        "/var/run",
        "the host's runtime state and its engine sockets",
    ),
    ("/etc", "the host's configuration and credentials"),
    ("/boot", "the host's kernel and boot loader"),
    (
        "/var/lib/docker",
        "the container engine's images and containers",
    ),
    (
        "/var/lib/containerd",
        "the container engine's images and containers",
    ),
];

/// Container paths a mount may not cover: the runtime's own files and the
/// kernel interfaces.
const RESERVED: &[&str] = &["/baton", "/proc", "/sys", "/dev", "/tmp", "/bin", "/etc"];

/// What this worker lets a dispatch ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ceiling {
    pub allow_network: bool,
    /// Host directories (absolute) under which role mounts and host
    /// workspaces are allowed (`--allow-mounts`); empty: no host path.
    pub allow_mounts: Vec<PathBuf>,
    /// The most a task may get (`<= 0`: no ceiling on that resource).
    pub max: Limits,
}

impl Default for Ceiling {
    /// Nothing widened: no network, no mounts, the default limits.
    fn default() -> Self {
        Self {
            allow_network: false,
            allow_mounts: Vec::new(),
            max: Limits::default(),
        }
    }
}

/// A host directory bind-mounted into the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindMount {
    pub host: PathBuf,
    pub path: String,
    pub read_only: bool,
}

/// What one attempt was granted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    pub network: bool,
    pub mounts: Vec<BindMount>,
}

/// The limits, widenings and workspace of one attempt, or why the worker
/// refuses it. The workspace is the dispatch's (`None` for an empty kind),
/// with a host path resolved: the path to mount.
pub fn grant(
    req: Option<&v1::SandboxRequest>,
    ws: Option<&v1::Workspace>,
    defaults: &Limits,
    ceiling: &Ceiling,
) -> Result<(Limits, Grant, Option<v1::Workspace>), Refused> {
    let ws = workspace(ws, ceiling)?;
    let Some(req) = req else {
        return Ok((defaults.clone(), Grant::default(), ws));
    };
    if req.network && !ceiling.allow_network {
        return Err(Refused::Network);
    }
    let mut mounts = Vec::new();
    for m in &req.mounts {
        mounts.push(mount(m, ceiling)?);
    }
    let limits = Limits {
        memory_bytes: resource(
            req.memory_bytes,
            defaults.memory_bytes,
            ceiling.max.memory_bytes,
            "memory",
            "--max-memory",
            format_mib,
        )?,
        nano_cpus: resource(
            req.nano_cpus,
            defaults.nano_cpus,
            ceiling.max.nano_cpus,
            "cpus",
            "--max-cpus",
            |n| format!("{} CPUs", n as f64 / 1e9),
        )?,
        pids: resource(
            req.pids,
            defaults.pids,
            ceiling.max.pids,
            "pids",
            "--max-pids",
            |n| n.to_string(),
        )?,
    };
    let grant = Grant {
        network: req.network,
        mounts,
    };
    Ok((limits, grant, ws))
}

/// A host workspace goes through the same check as a role's mount: whoever
/// triggers a plan may have chosen its path (`${{ inputs.repo }}`).
fn workspace(
    ws: Option<&v1::Workspace>,
    ceiling: &Ceiling,
) -> Result<Option<v1::Workspace>, Refused> {
    let Some(ws) = ws.filter(|w| !w.kind.is_empty()) else {
        return Ok(None);
    };
    if ws.kind != "host" {
        return Ok(Some(ws.clone()));
    }
    let fix = "or point the plan's workspace.host_path (or the input that fills it) there";
    let host = host_path("workspace host path", &ws.source, ceiling, fix)?;
    let Some(source) = host.to_str() else {
        return Err(Refused::NotUtf8 {
            given: ws.source.clone(),
            resolved: host,
        });
    };
    Ok(Some(v1::Workspace {
        source: source.to_string(),
        ..ws.clone()
    }))
}

/// `asked` (0: the default) if it is within `max`.
fn resource(
    asked: i64,
    default: i64,
    max: i64,
    key: &'static str,
    flag: &'static str,
    show: impl Fn(i64) -> String,
) -> Result<i64, Refused> {
    if asked <= 0 {
        return Ok(default);
    }
    // Never refuse what this worker gives every task anyway.
    let max = if default <= 0 || max <= 0 {
        0
    } else {
        max.max(default)
    };
    if max > 0 && asked > max {
        return Err(Refused::AboveCeiling {
            key,
            asked: show(asked),
            max: show(max),
            flag,
            flag_value: match key {
                "cpus" => format!("{}", asked as f64 / 1e9),
                "memory" => format!("{}m", (asked + (1 << 20) - 1) >> 20),
                _ => asked.to_string(),
            },
        });
    }
    Ok(asked)
}

fn mount(m: &v1::SandboxMount, ceiling: &Ceiling) -> Result<BindMount, Refused> {
    let path = Path::new(&m.path);
    let reserved = RESERVED
        .iter()
        .any(|r| path.starts_with(r) || Path::new(r).starts_with(path));
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) || reserved {
        return Err(Refused::ContainerPath {
            path: m.path.clone(),
        });
    }
    let fix = "or remove the mount from the role";
    Ok(BindMount {
        host: host_path("mount host path", &m.host, ceiling, fix)?,
        path: m.path.clone(),
        read_only: m.read_only,
    })
}

/// The one check of a host path a dispatch asks for (`what` names it in
/// errors; `fix` is the other way out): absolute, not [`never_mounted`],
/// resolved on this host, and under one of `--allow-mounts`. Returns the
/// resolved path, which is what must be mounted.
pub fn host_path(
    what: &'static str,
    given: &str,
    ceiling: &Ceiling,
    fix: &'static str,
) -> Result<PathBuf, Refused> {
    let lexical = Path::new(given);
    if !lexical.is_absolute() || lexical.components().any(|c| c == Component::ParentDir) {
        return Err(Refused::NotAbsolute {
            what,
            given: given.to_string(),
        });
    }
    let never = |resolved: Option<&Path>, why: String| Refused::NeverMounted {
        what,
        given: given.to_string(),
        resolved: resolved.map(Path::to_path_buf),
        why,
    };
    let outside = |resolved: Option<&Path>| Refused::Outside {
        what,
        given: given.to_string(),
        resolved: resolved.map(Path::to_path_buf),
        allowed: ceiling.allow_mounts.clone(),
        fix,
    };
    if let Some(why) = never_mounted(lexical) {
        return Err(never(None, why));
    }
    if ceiling.allow_mounts.is_empty() {
        return Err(outside(None));
    }
    let resolved = std::fs::canonicalize(lexical).map_err(|source| Refused::Unresolvable {
        what,
        given: given.to_string(),
        fix,
        source,
    })?;
    let shown = (resolved != lexical).then_some(resolved.as_path());
    if let Some(why) = never_mounted(&resolved).or_else(|| socket_file(&resolved)) {
        return Err(never(shown, why));
    }
    let allowed = ceiling
        .allow_mounts
        .iter()
        .any(|root| resolved.starts_with(std::fs::canonicalize(root).unwrap_or(root.clone())));
    if !allowed {
        return Err(outside(shown));
    }
    Ok(resolved)
}

/// Why the host path `p` (absolute, normalized) is never mounted, whatever
/// `--allow-mounts` says; `None` if it may be.
pub fn never_mounted(p: &Path) -> Option<String> {
    if p.parent().is_none() {
        return Some("it is the host's root filesystem".into());
    }
    let engine = std::env::var("DOCKER_HOST").ok();
    let engine = engine.as_deref().and_then(|h| h.strip_prefix("unix://"));
    if let Some(socket) = SOCKET_PATHS
        .iter()
        .copied()
        .chain(engine)
        .find(|s| Path::new(s).starts_with(p))
    {
        return Some(format!(
            "it is or holds the container engine socket {socket}, which gives root on the host"
        ));
    }
    if NEVER_MOUNT
        .iter()
        .any(|s| p.components().any(|c| c.as_os_str() == *s))
    {
        return Some("it is a container engine socket, which gives root on the host".into());
    }
    NEVER_HOST.iter().find_map(|(tree, what)| {
        if p.starts_with(tree) {
            Some(format!("{tree} holds {what}"))
        } else if Path::new(tree).starts_with(p) {
            Some(format!("it holds {tree} ({what})"))
        } else {
            None
        }
    })
}

/// A socket of any program: a door into whatever serves it.
fn socket_file(p: &Path) -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(p).ok()?;
    meta.file_type()
        .is_socket()
        .then(|| "it is a socket, a door into the program serving it".to_string())
}

#[cfg(test)]
#[path = "grant_tests.rs"]
mod tests;
