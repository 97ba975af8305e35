//! What a dispatch may widen in the sandbox, and what this worker grants
//! (pure).
//!
//! A role can ask for a network, host mounts and more memory, CPU or pids
//! (`v1::SandboxRequest`). The worker grants nothing it was not started to
//! allow: network only with `--allow-network`, a mount only under one of
//! its `--allow-mounts` prefixes, resources only up to its ceilings. A
//! request beyond that is refused as a whole, never silently shrunk, so
//! that a task does not run in a sandbox other than the one its plan
//! promised; the error names the flag that would allow it.

use std::path::{Component, Path, PathBuf};

use baton_proto::v1;

use super::result::format_mib;
use super::Limits;

/// Host paths never mounted, whatever the allow list says: the engine's
/// sockets hand out root on the host.
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

/// Container paths a mount may not cover: the runtime's own files and the
/// kernel interfaces.
const RESERVED: &[&str] = &["/baton", "/proc", "/sys", "/dev", "/tmp", "/bin", "/etc"];

/// What this worker lets a dispatch ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ceiling {
    pub allow_network: bool,
    /// Host directories under which mounts are allowed (absolute).
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

/// The limits and widenings of one attempt, or why the worker refuses it.
pub fn grant(
    req: Option<&v1::SandboxRequest>,
    defaults: &Limits,
    ceiling: &Ceiling,
) -> Result<(Limits, Grant), String> {
    let Some(req) = req else {
        return Ok((defaults.clone(), Grant::default()));
    };
    if req.network && !ceiling.allow_network {
        return Err("the role asks for network access, which this worker does not allow — start the worker with --allow-network, or remove `sandbox.network` from the role".into());
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
    Ok((limits, grant))
}

/// `asked` (0: the default) if it is within `max`.
fn resource(
    asked: i64,
    default: i64,
    max: i64,
    key: &str,
    flag: &str,
    show: impl Fn(i64) -> String,
) -> Result<i64, String> {
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
        return Err(format!(
            "the role asks for {key} {}, above this worker's ceiling of {} — start the worker with {flag} {asked_raw} or more, or lower `sandbox.{key}` in the role",
            show(asked),
            show(max),
            asked_raw = match key {
                "cpus" => format!("{}", asked as f64 / 1e9),
                "memory" => format!("{}m", (asked + (1 << 20) - 1) >> 20),
                _ => asked.to_string(),
            }
        ));
    }
    Ok(asked)
}

fn mount(m: &v1::SandboxMount, ceiling: &Ceiling) -> Result<BindMount, String> {
    let host = Path::new(&m.host);
    if !host.is_absolute() || host.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "mount host path {:?} must be absolute and without `..`",
            m.host
        ));
    }
    let socket_inside = SOCKET_PATHS.iter().any(|s| Path::new(s).starts_with(host));
    if socket_inside
        || NEVER_MOUNT
            .iter()
            .any(|s| host.components().any(|c| c.as_os_str() == *s))
    {
        return Err(format!(
            "mount host path {} is or holds a container engine socket, which would give the task root on the host — never mounted",
            m.host
        ));
    }
    if !ceiling.allow_mounts.iter().any(|p| host.starts_with(p)) {
        let allowed = if ceiling.allow_mounts.is_empty() {
            "none".to_string()
        } else {
            ceiling
                .allow_mounts
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(format!(
            "the role asks to mount host path {}, which this worker does not allow (allowed: {allowed}) — start the worker with --allow-mounts {}, or remove the mount from the role",
            m.host, m.host
        ));
    }
    let path = Path::new(&m.path);
    let reserved = RESERVED
        .iter()
        .any(|r| path.starts_with(r) || Path::new(r).starts_with(path));
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) || reserved {
        return Err(format!(
            "mount path {:?} in the container must be absolute, without `..`, and outside {}",
            m.path,
            RESERVED.join(", ")
        ));
    }
    Ok(BindMount {
        host: host.to_path_buf(),
        path: m.path.clone(),
        read_only: m.read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: i64 = 1024 * 1024 * 1024;

    fn req() -> v1::SandboxRequest {
        v1::SandboxRequest::default()
    }

    fn cache_mount() -> v1::SandboxMount {
        v1::SandboxMount {
            host: "/srv/cache".into(),
            path: "/cache".into(),
            read_only: true,
        }
    }

    #[test]
    fn no_request_keeps_the_defaults() {
        let d = Limits::default();
        let (limits, grant) = super::grant(None, &d, &Ceiling::default()).unwrap();
        assert_eq!((limits, grant), (d.clone(), Grant::default()));
        let (limits, _) = super::grant(Some(&req()), &d, &Ceiling::default()).unwrap();
        assert_eq!(limits, d);
    }

    #[test]
    fn network_needs_the_allow_flag() {
        let r = v1::SandboxRequest {
            network: true,
            ..req()
        };
        let e = super::grant(Some(&r), &Limits::default(), &Ceiling::default()).unwrap_err();
        assert!(e.contains("--allow-network"), "{e}");
        let open = Ceiling {
            allow_network: true,
            ..Default::default()
        };
        let (_, g) = super::grant(Some(&r), &Limits::default(), &open).unwrap();
        assert!(g.network);
    }

    #[test]
    fn mounts_only_under_allowed_prefixes() {
        let r = v1::SandboxRequest {
            mounts: vec![cache_mount()],
            ..req()
        };
        let e = super::grant(Some(&r), &Limits::default(), &Ceiling::default()).unwrap_err();
        assert!(e.contains("--allow-mounts /srv/cache"), "{e}");
        let srv = Ceiling {
            allow_mounts: vec!["/srv".into()],
            ..Default::default()
        };
        let (_, g) = super::grant(Some(&r), &Limits::default(), &srv).unwrap();
        assert_eq!(g.mounts[0].host, PathBuf::from("/srv/cache"));
        assert!(g.mounts[0].read_only);
        // Prefixes are path components, not strings.
        let other = v1::SandboxRequest {
            mounts: vec![v1::SandboxMount {
                host: "/srv2/x".into(),
                ..cache_mount()
            }],
            ..req()
        };
        assert!(super::grant(Some(&other), &Limits::default(), &srv).is_err());
    }

    #[test]
    fn dangerous_mounts_are_refused_even_when_allowed() {
        let all = Ceiling {
            allow_mounts: vec!["/".into()],
            ..Default::default()
        };
        for (host, path) in [
            ("/var/run/docker.sock", "/x"),
            ("/run/containerd/containerd.sock", "/x"),
            ("/var/run", "/x"),
            ("/run", "/x"),
            ("/", "/x"),
            ("/srv/../etc", "/x"),
            ("srv", "/x"),
            ("/srv", "/baton/out"),
            ("/srv", "/"),
            ("/srv", "/proc/1"),
            ("/srv", "cache"),
        ] {
            let r = v1::SandboxRequest {
                mounts: vec![v1::SandboxMount {
                    host: host.into(),
                    path: path.into(),
                    read_only: true,
                }],
                ..req()
            };
            assert!(
                super::grant(Some(&r), &Limits::default(), &all).is_err(),
                "{host} -> {path}"
            );
        }
    }

    #[test]
    fn resources_within_the_ceiling_or_refused() {
        let ceiling = Ceiling {
            max: Limits {
                memory_bytes: 2 * GIB,
                nano_cpus: 2_000_000_000,
                pids: 512,
            },
            ..Default::default()
        };
        let r = v1::SandboxRequest {
            memory_bytes: 2 * GIB,
            nano_cpus: 2_000_000_000,
            pids: 512,
            ..req()
        };
        let (limits, _) = super::grant(Some(&r), &Limits::default(), &ceiling).unwrap();
        assert_eq!(limits, ceiling.max);
        let more = v1::SandboxRequest {
            memory_bytes: 3 * GIB,
            ..req()
        };
        let e = super::grant(Some(&more), &Limits::default(), &ceiling).unwrap_err();
        assert!(
            e.contains("memory 3072 MiB") && e.contains("2048 MiB"),
            "{e}"
        );
        assert!(e.contains("--max-memory"), "{e}");
        let cpus = v1::SandboxRequest {
            nano_cpus: 4_000_000_000,
            ..req()
        };
        let e = super::grant(Some(&cpus), &Limits::default(), &ceiling).unwrap_err();
        assert!(e.contains("--max-cpus 4"), "{e}");
        // The default ceiling is the default limits: nothing above them.
        let e = super::grant(Some(&r), &Limits::default(), &Ceiling::default()).unwrap_err();
        assert!(e.contains("ceiling"), "{e}");
        // ... unless the worker's own limits are higher: those are never refused.
        let roomy = Limits {
            memory_bytes: 4 * GIB,
            nano_cpus: 4_000_000_000,
            pids: 1024,
        };
        let (limits, _) = super::grant(Some(&r), &roomy, &Ceiling::default()).unwrap();
        assert_eq!(limits, ceiling.max);
    }
}
