//! A role's `sandbox:` opt-ins: what they load to, the warning each
//! widening earns (the plan still validates), the errors for bad values
//! with file:line:col and a hint, and that running as root cannot be asked for.

use baton_plan::{self as plan, Diagnostic, SandboxMount};

fn plan_with(sandbox: &str) -> String {
    format!(
        "\
name: t
roles:
  build:
    image: img
    sandbox: {sandbox}
phases:
  - id: one
    tasks:
      - id: a
        role: build
        run: make
"
    )
}

fn diags(src: &str) -> Vec<Diagnostic> {
    match plan::load("p.yaml", src) {
        Ok(_) => panic!("plan loaded but should not:\n{src}"),
        Err(e) => e.diagnostics,
    }
}

#[test]
fn opt_ins_load_and_each_widening_warns() {
    let src = plan_with(
        "{ network: true, mounts: [{ host: /srv/cache, path: /cache, read_only: true }, { host: /srv/out, path: /out, read_only: false }], memory: 2g, cpus: 2, pids: 512 }",
    );
    let p = plan::load("p.yaml", &src).unwrap_or_else(|e| panic!("{e}"));
    let s = &p.roles["build"].sandbox;
    assert!(s.network);
    assert_eq!(s.memory_bytes, 2 << 30);
    assert_eq!(s.nano_cpus, 2_000_000_000);
    assert_eq!(s.pids, 512);
    assert_eq!(
        s.mounts[0],
        SandboxMount {
            host: "/srv/cache".into(),
            path: "/cache".into(),
            read_only: true
        }
    );
    assert!(!s.mounts[1].read_only);
    let w = plan::sandbox_warnings(&p, "p.yaml");
    assert_eq!(w.len(), 6, "{w:#?}");
    assert!(
        w.iter()
            .all(|l| l.starts_with("p.yaml:5:5: warning: role `build` ")),
        "{w:#?}"
    );
    assert!(w[0].contains("network access") && w[0].contains("send out"));
    assert!(w[1].contains("/srv/cache at /cache read-only"));
    assert!(w[2].contains("read-write") && w[2].contains("change or delete host files"));
    assert!(w[3].contains("2048 MiB of memory"));
    assert!(w[4].contains("2 CPUs"));
    assert!(w[5].contains("512 processes") && w[5].contains("fork bomb"));
}

#[test]
fn strict_default_and_narrowing_do_not_warn() {
    let base = plan::load("p.yaml", &plan_with("{}")).unwrap();
    assert!(base.roles["build"].sandbox.is_default());
    assert!(plan::sandbox_warnings(&base, "p.yaml").is_empty());
    // Asking for less than the defaults narrows the sandbox: no warning.
    let less = plan::load("p.yaml", &plan_with("{ memory: 64m, cpus: 0.5, pids: 32 }")).unwrap();
    assert!(plan::sandbox_warnings(&less, "p.yaml").is_empty());
    // A mount is read-only unless it says otherwise.
    let ro = plan::load(
        "p.yaml",
        &plan_with("{ mounts: [{ host: /srv, path: /srv }] }"),
    )
    .unwrap();
    assert!(ro.roles["build"].sandbox.mounts[0].read_only);
}

#[test]
fn root_cannot_be_asked_for() {
    for key in [
        "user: root",
        "privileged: true",
        "root: true",
        "cap_add: [SYS_ADMIN]",
    ] {
        let d = diags(&plan_with(&format!("{{ {key} }}")));
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].line, d[0].col), (5, 16), "{}", d[0]);
        assert!(d[0].message.contains("never run as root"), "{}", d[0]);
        assert!(d[0].hint.contains("uid 10001"), "{}", d[0]);
    }
}

#[test]
fn bad_values_point_at_the_value_with_a_hint() {
    let cases = [
        ("{ network: yes }", "must be true or false", "network: true"),
        ("{ memory: lots }", "`memory` must be a size", "memory: 2g"),
        ("{ cpus: 0 }", "`cpus` must be a number", "cpus: 2"),
        ("{ pids: -1 }", "`pids` must be a whole number", "pids: 2"),
        (
            "{ mounts: [{ host: srv, path: /c }] }",
            "not an absolute path",
            "/srv/cache",
        ),
        (
            "{ mounts: [{ host: /srv/../etc, path: /c }] }",
            "not an absolute path",
            "without `..`",
        ),
        ("{ mounts: [{ path: /c }] }", "has no `host`", "add `host:`"),
        ("{ mounts: /srv }", "must be a list", "mounts: [{ host"),
        ("{ netwrok: true }", "unknown key `netwrok`", "network"),
    ];
    for (sandbox, message, hint) in cases {
        let d = diags(&plan_with(sandbox));
        assert_eq!(d.len(), 1, "{sandbox}: {d:?}");
        assert_eq!(d[0].line, 5, "{}", d[0]);
        assert!(d[0].message.contains(message), "{sandbox}: {}", d[0]);
        assert!(d[0].hint.contains(hint), "{sandbox}: {}", d[0]);
    }
}

#[test]
fn registered_role_keeps_its_sandbox() {
    let src = plan_with("{ network: true, mounts: [{ host: /srv/cache, path: /cache }], memory: 512m, cpus: 1.5, pids: 256 }");
    let p = plan::load("p.yaml", &src).unwrap();
    let role = &p.roles["build"];
    let yaml = plan::role_yaml(role);
    let back =
        plan::parse_role("registry", "build", &yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let (mut a, mut b) = (role.sandbox.clone(), back.sandbox.clone());
    (a.at, b.at) = ((0, 0), (0, 0));
    assert_eq!(a, b, "{yaml}");
}
