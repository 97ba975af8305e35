use super::*;

const GIB: i64 = 1024 * 1024 * 1024;

fn req() -> v1::SandboxRequest {
    v1::SandboxRequest::default()
}

/// `grant` without a workspace.
fn grant(
    req: Option<&v1::SandboxRequest>,
    defaults: &Limits,
    ceiling: &Ceiling,
) -> Result<(Limits, Grant), Refused> {
    super::grant(req, None, defaults, ceiling).map(|(l, g, _)| (l, g))
}

fn allow(dirs: &[&Path]) -> Ceiling {
    Ceiling {
        allow_mounts: dirs.iter().map(|d| d.to_path_buf()).collect(),
        ..Default::default()
    }
}

fn mount_of(host: &Path) -> v1::SandboxRequest {
    v1::SandboxRequest {
        mounts: vec![v1::SandboxMount {
            host: host.to_string_lossy().into_owned(),
            path: "/cache".into(),
            read_only: true,
        }],
        ..req()
    }
}

fn host_ws(source: &str) -> v1::Workspace {
    v1::Workspace {
        kind: "host".into(),
        source: source.into(),
        mount: "/workspace".into(),
        read_only: false,
    }
}

#[test]
fn no_request_keeps_the_defaults() {
    let d = Limits::default();
    let (limits, grant) = self::grant(None, &d, &Ceiling::default()).unwrap();
    assert_eq!((limits, grant), (d.clone(), Grant::default()));
    let (limits, _) = self::grant(Some(&req()), &d, &Ceiling::default()).unwrap();
    assert_eq!(limits, d);
}

#[test]
fn network_needs_the_allow_flag() {
    let r = v1::SandboxRequest {
        network: true,
        ..req()
    };
    let e = grant(Some(&r), &Limits::default(), &Ceiling::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("--allow-network"), "{e}");
    let open = Ceiling {
        allow_network: true,
        ..Default::default()
    };
    let (_, g) = grant(Some(&r), &Limits::default(), &open).unwrap();
    assert!(g.network);
}

#[test]
fn mounts_only_under_allowed_directories() {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    let r = mount_of(&cache);
    let e = grant(Some(&r), &Limits::default(), &Ceiling::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("--allow-mounts {}", cache.display())) && e.contains("none"),
        "{e}"
    );
    let (_, g) = grant(Some(&r), &Limits::default(), &allow(&[root.path()])).unwrap();
    assert_eq!(g.mounts[0].host, cache.canonicalize().unwrap());
    assert!(g.mounts[0].read_only);
    // Directories are path components, not string prefixes.
    let sibling = PathBuf::from(format!("{}2", root.path().display()));
    std::fs::create_dir(&sibling).unwrap();
    let e = grant(
        Some(&mount_of(&sibling)),
        &Limits::default(),
        &allow(&[root.path()]),
    );
    std::fs::remove_dir(&sibling).unwrap();
    assert!(e.unwrap_err().to_string().contains("outside"));
}

#[test]
fn dangerous_mounts_are_refused_even_when_everything_is_allowed() {
    let all = allow(&[Path::new("/")]);
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().to_str().unwrap();
    for (host, path) in [
        ("/var/run/docker.sock", "/x"),
        ("/run/containerd/containerd.sock", "/x"),
        ("/var/run", "/x"),
        ("/run", "/x"),
        ("/", "/x"),
        ("/etc", "/x"),
        ("/proc/1", "/x"),
        ("/sys/kernel", "/x"),
        ("/dev", "/x"),
        ("/var", "/x"),
        ("/var/lib/docker/volumes", "/x"),
        ("/srv/../etc", "/x"),
        ("srv", "/x"),
        (ok, "/baton/out"),
        (ok, "/"),
        (ok, "/proc/1"),
        (ok, "cache"),
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
            grant(Some(&r), &Limits::default(), &all).is_err(),
            "{host} -> {path}"
        );
    }
    let fine = mount_of(dir.path());
    assert!(grant(Some(&fine), &Limits::default(), &all).is_ok());
}

#[test]
fn never_mounted_names_why() {
    let why = |p: &str| never_mounted(Path::new(p));
    assert!(why("/").unwrap().contains("root filesystem"));
    assert!(why("/var/run").unwrap().contains("/var/run/docker.sock"));
    assert!(why("/etc/ssh").unwrap().contains("/etc holds"));
    assert!(why("/proc/self/root").unwrap().contains("/proc holds"));
    assert!(why("/var/lib")
        .unwrap()
        .contains("it holds /var/lib/docker"));
    assert!(why("/home/x/docker.sock").unwrap().contains("socket"));
    for fine in ["/srv/repos/app", "/tmp/x", "/home/ci/work", "/var/tmp"] {
        assert_eq!(why(fine), None, "{fine}");
    }
}

#[test]
fn symlinks_are_resolved_before_the_check() {
    let root = tempfile::tempdir().unwrap();
    let ceiling = allow(&[root.path()]);
    let etc = root.path().join("etc-link");
    std::os::unix::fs::symlink("/etc", &etc).unwrap();
    let e = host_path("workspace host path", etc.to_str().unwrap(), &ceiling, "")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("(resolves to /etc)") && e.contains("never mounted"),
        "{e}"
    );
    // Out of the allowed directory, to a place not otherwise refused.
    let out = tempfile::tempdir().unwrap();
    let away = root.path().join("away");
    std::os::unix::fs::symlink(out.path(), &away).unwrap();
    let e = host_path("workspace host path", away.to_str().unwrap(), &ceiling, "")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("outside") && e.contains("--allow-mounts DIR"),
        "{e}"
    );
    // A link that stays inside is fine, and the target is what is mounted.
    let real = root.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let inside = root.path().join("inside");
    std::os::unix::fs::symlink(&real, &inside).unwrap();
    let got = host_path(
        "workspace host path",
        inside.to_str().unwrap(),
        &ceiling,
        "",
    );
    assert_eq!(
        got.map_err(|e| e.to_string()),
        Ok(real.canonicalize().unwrap())
    );
}

#[test]
fn host_workspaces_get_the_same_check_and_are_resolved() {
    let root = tempfile::tempdir().unwrap();
    let repo = root.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let d = Limits::default();
    let check = |ws: &v1::Workspace, c: &Ceiling| super::grant(None, Some(ws), &d, c);
    let e = check(&host_ws("/"), &allow(&[Path::new("/")]))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("workspace host path / is refused: it is the host's root filesystem")
            && e.contains("--allow-mounts DIR"),
        "{e}"
    );
    let e = check(&host_ws(repo.to_str().unwrap()), &Ceiling::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("--allow-mounts: none"), "{e}");
    let missing = root.path().join("missing");
    let e = check(&host_ws(missing.to_str().unwrap()), &allow(&[root.path()]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot be resolved"), "{e}");
    let (_, _, ws) = check(&host_ws(repo.to_str().unwrap()), &allow(&[root.path()])).unwrap();
    let want = repo.canonicalize().unwrap().to_string_lossy().into_owned();
    assert_eq!(ws.map(|w| w.source), Some(want));
    // Volumes are Docker's, not the host's; an empty kind is no workspace.
    let volume = v1::Workspace {
        kind: "volume".into(),
        source: "baton-ws-1".into(),
        ..host_ws("")
    };
    let (_, _, ws) = check(&volume, &Ceiling::default()).unwrap();
    assert_eq!(ws, Some(volume));
    let none = v1::Workspace::default();
    assert_eq!(check(&none, &Ceiling::default()).unwrap().2, None);
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
    let (limits, _) = grant(Some(&r), &Limits::default(), &ceiling).unwrap();
    assert_eq!(limits, ceiling.max);
    let more = v1::SandboxRequest {
        memory_bytes: 3 * GIB,
        ..req()
    };
    let e = grant(Some(&more), &Limits::default(), &ceiling)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("memory 3072 MiB") && e.contains("2048 MiB"),
        "{e}"
    );
    assert!(e.contains("--max-memory"), "{e}");
    let cpus = v1::SandboxRequest {
        nano_cpus: 4_000_000_000,
        ..req()
    };
    let e = grant(Some(&cpus), &Limits::default(), &ceiling)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--max-cpus 4"), "{e}");
    // The default ceiling is the default limits: nothing above them.
    let e = grant(Some(&r), &Limits::default(), &Ceiling::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("ceiling"), "{e}");
    // ... unless the worker's own limits are higher: those are never refused.
    let roomy = Limits {
        memory_bytes: 4 * GIB,
        nano_cpus: 4_000_000_000,
        pids: 1024,
    };
    let (limits, _) = grant(Some(&r), &roomy, &Ceiling::default()).unwrap();
    assert_eq!(limits, ceiling.max);
}
