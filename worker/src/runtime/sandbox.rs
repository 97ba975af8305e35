//! The Docker sandbox: from a [`SandboxPolicy`] and a [`TaskSpec`] to the
//! container's create body (pure).
//!
//! Always on: `cap_drop: [ALL]`, `no-new-privileges`, no `binds`, no mounts
//! but those of [`super::docker_files`] (`/baton/out`, `/baton/in`, workspace),
//! memory == memory+swap (no swap), CPU and pids limits, tmpfs `/tmp`.
//! A dispatch's [`super::grant::Grant`] (checked against the worker's
//! ceilings before) may lift `network_mode: none` and add bind mounts.
//! Policy switches: user, `network_mode: none`, read-only root,
//! tmpfs size, extra labels. Every field defaults to the strict setting.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountType};

use super::docker_files::IN_DIR;

use super::output::{END_MARKER, RESULT_MARKER};
use super::TaskSpec;

/// Where a task writes `result.json` (inside the container).
pub const OUT_DIR: &str = "/baton/out";

/// Label keys on every container the runtime creates.
pub const LABEL_RUN: &str = "org.baton.run";
pub const LABEL_TASK: &str = "org.baton.task";
pub const LABEL_ATTEMPT: &str = "org.baton.attempt";
pub const LABEL_MANAGED: &str = "org.baton.managed";
/// The worker that started the container, so that a worker restarted under
/// the same id removes what its predecessor left behind.
pub const LABEL_WORKER: &str = "org.baton.worker";

/// How much a container is fenced in. `Default` is the strict sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxPolicy {
    /// `uid:gid` (or a user name known to the image), e.g. `10001:10001`.
    pub user: String,
    /// `network_mode: none`: only a loopback interface.
    pub network_none: bool,
    pub read_only_root: bool,
    /// Size of the `/tmp` tmpfs, e.g. `64m` (`/baton/out` is a volume,
    /// bounded by the artifact limit when read back).
    pub out_tmpfs_size: String,
    /// Added to every container (cannot override the `org.baton.*` ones).
    pub extra_labels: Vec<(String, String)>,
}

impl Default for SandboxPolicy {
    fn default() -> Self {
        Self {
            user: "10001:10001".to_string(),
            network_none: true,
            read_only_root: true,
            out_tmpfs_size: "64m".to_string(),
            extra_labels: Vec::new(),
        }
    }
}

/// A [`SandboxPolicy`] the worker refuses to start with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnsafePolicy {
    #[error("the sandbox user {user:?} is root or unset — tasks never run as root; use a numeric uid:gid such as 10001:10001")]
    RootUser { user: String },
}

impl SandboxPolicy {
    /// Refuses a policy that would run tasks as root: uid 0, gid 0, the
    /// name `root`, or no user at all (the image's default, often root).
    pub fn check(&self) -> Result<(), UnsafePolicy> {
        let (user, group) = match self.user.split_once(':') {
            Some((u, g)) => (u.trim(), Some(g.trim())),
            None => (self.user.trim(), None),
        };
        let is_root = |s: &str| s == "0" || s == "root";
        if user.is_empty() || is_root(user) || group.is_some_and(|g| g.is_empty() || is_root(g)) {
            return Err(UnsafePolicy::RootUser {
                user: self.user.clone(),
            });
        }
        Ok(())
    }
}

/// The shell script that runs the task (`"$@"`), relays `result.json` over
/// stdout after [`RESULT_MARKER`], ends with [`END_MARKER`] and keeps the
/// task's exit code. The first `echo` terminates a last line the task left
/// open: Docker may drop an unterminated last line from a followed log.
pub fn wrapper_script() -> String {
    format!(
        "\"$@\"; rc=$?; echo; if [ -f {OUT_DIR}/result.json ]; then echo {RESULT_MARKER}; cat {OUT_DIR}/result.json; echo; fi; echo {END_MARKER}; exit $rc"
    )
}

/// `/bin/sh -c <script> baton-task`; the task's argv follows as `Cmd`.
pub fn wrapper_entrypoint() -> Vec<String> {
    vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        wrapper_script(),
        "baton-task".to_string(),
    ]
}

/// `baton-<run>-<task>-<attempt>-<suffix>`, with characters Docker rejects
/// replaced by `_` and long ids shortened.
pub fn container_name(spec: &TaskSpec, suffix: &str) -> String {
    format!(
        "baton-{}-{}-{}-{}",
        name_part(&spec.run_id),
        name_part(&spec.task_id),
        spec.attempt,
        suffix
    )
}

fn name_part(id: &str) -> String {
    let cleaned: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    if cleaned.is_empty() {
        "_".to_string()
    } else {
        cleaned
    }
}

/// `(uid, gid)` when `user` is numeric (`1000` or `1000:1000`).
pub fn numeric_ids(user: &str) -> Option<(u32, u32)> {
    let (uid, gid) = match user.split_once(':') {
        Some((u, g)) => (u, g),
        None => (user, user),
    };
    Some((uid.parse().ok()?, gid.parse().ok()?))
}

/// Mount options of the `/tmp` tmpfs.
pub fn tmpfs_options(policy: &SandboxPolicy) -> String {
    let mut opts = format!("rw,nosuid,nodev,size={}", policy.out_tmpfs_size);
    if let Some((uid, gid)) = numeric_ids(&policy.user) {
        opts.push_str(&format!(",uid={uid},gid={gid}"));
    }
    opts.push_str(",mode=0700");
    opts
}

pub fn labels(spec: &TaskSpec, policy: &SandboxPolicy) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = policy.extra_labels.iter().cloned().collect();
    labels.insert(LABEL_RUN.to_string(), spec.run_id.clone());
    labels.insert(LABEL_TASK.to_string(), spec.task_id.clone());
    labels.insert(LABEL_ATTEMPT.to_string(), spec.attempt.to_string());
    labels.insert(LABEL_MANAGED.to_string(), "true".to_string());
    labels
}

pub fn host_config(spec: &TaskSpec, policy: &SandboxPolicy, mut mounts: Vec<Mount>) -> HostConfig {
    mounts.extend(spec.grant.mounts.iter().map(|m| Mount {
        typ: Some(MountType::BIND),
        source: Some(m.host.display().to_string()),
        target: Some(m.path.clone()),
        read_only: Some(m.read_only),
        ..Default::default()
    }));
    let positive = |v: i64| (v > 0).then_some(v);
    let tmpfs = HashMap::from([("/tmp".to_string(), tmpfs_options(policy))]);
    // json-file explicitly: the runtime reads the output back through the
    // logs endpoint, which some drivers do not support.
    let log_config = HostConfigLogConfig {
        typ: Some("json-file".to_string()),
        config: Some(HashMap::from([
            ("max-size".to_string(), "32m".to_string()),
            ("max-file".to_string(), "2".to_string()),
        ])),
    };
    HostConfig {
        network_mode: (policy.network_none && !spec.grant.network).then(|| "none".to_string()),
        readonly_rootfs: Some(policy.read_only_root),
        cap_drop: Some(vec!["ALL".to_string()]),
        security_opt: Some(vec!["no-new-privileges".to_string()]),
        privileged: Some(false),
        memory: positive(spec.limits.memory_bytes),
        memory_swap: positive(spec.limits.memory_bytes),
        nano_cpus: positive(spec.limits.nano_cpus),
        pids_limit: positive(spec.limits.pids),
        tmpfs: Some(tmpfs),
        mounts: Some(mounts),
        binds: None,
        auto_remove: Some(false),
        log_config: Some(log_config),
        ..Default::default()
    }
}

/// The full create body: wrapped command, env (+ `BATON_OUT`, `BATON_IN`,
/// `BATON_WORKSPACE`), user, labels, host config with `mounts`.
pub fn container_body(
    spec: &TaskSpec,
    policy: &SandboxPolicy,
    mounts: Vec<Mount>,
) -> ContainerCreateBody {
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.extend(spec.secrets.env.iter().map(|(k, v)| format!("{k}={v}")));
    env.push(format!("BATON_OUT={OUT_DIR}"));
    env.push(format!("BATON_IN={IN_DIR}"));
    if !spec.secrets.files.is_empty() {
        env.push(format!("BATON_SECRETS={}", crate::secrets::SECRETS_DIR));
    }
    if let Some(ws) = &spec.workspace {
        env.push(format!("BATON_WORKSPACE={}", ws.mount));
    }
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: Some(wrapper_entrypoint()),
        cmd: Some(spec.argv.clone()),
        env: Some(env),
        user: Some(policy.user.clone()),
        labels: Some(labels(spec, policy)),
        tty: Some(false),
        open_stdin: Some(false),
        attach_stdin: Some(false),
        host_config: Some(host_config(spec, policy, mounts)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Limits;
    use std::time::Duration;

    fn spec() -> TaskSpec {
        TaskSpec {
            env: vec![("A".into(), "1".into())],
            ..TaskSpec::new(
                "run-1",
                "build/lint",
                2,
                "baton/agent:local",
                vec!["echo".into(), "hi".into()],
                Duration::from_secs(5),
            )
        }
    }

    #[test]
    fn default_policy_is_strict() {
        let p = SandboxPolicy::default();
        let hc = host_config(&spec(), &p, vec![]);
        assert_eq!(hc.network_mode.as_deref(), Some("none"));
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(hc.security_opt, Some(vec!["no-new-privileges".to_string()]));
        assert_eq!(hc.memory, Some(256 * 1024 * 1024));
        assert_eq!(hc.memory_swap, hc.memory);
        assert_eq!(hc.nano_cpus, Some(1_000_000_000));
        assert_eq!(hc.pids_limit, Some(128));
        assert!(hc.mounts.unwrap().is_empty() && hc.binds.is_none());
        let tmpfs = hc.tmpfs.unwrap();
        let expected = "rw,nosuid,nodev,size=64m,uid=10001,gid=10001,mode=0700";
        assert_eq!(tmpfs["/tmp"], expected);
        assert_eq!(tmpfs.len(), 1, "/baton/out is a volume, not a tmpfs");
    }

    #[test]
    fn relaxed_policy() {
        let p = SandboxPolicy {
            user: "agent".into(),
            network_none: false,
            read_only_root: false,
            out_tmpfs_size: "8m".into(),
            extra_labels: vec![],
        };
        let mut s = spec();
        s.limits = Limits {
            memory_bytes: 0,
            nano_cpus: 0,
            pids: -1,
        };
        let hc = host_config(&s, &p, vec![]);
        assert_eq!(hc.network_mode, None);
        assert_eq!(hc.readonly_rootfs, Some(false));
        assert_eq!(
            (hc.memory, hc.memory_swap, hc.nano_cpus, hc.pids_limit),
            (None, None, None, None)
        );
        assert_eq!(
            hc.tmpfs.unwrap()["/tmp"],
            "rw,nosuid,nodev,size=8m,mode=0700"
        );
    }

    #[test]
    fn body_wraps_command_and_labels() {
        let p = SandboxPolicy {
            extra_labels: vec![
                ("team".into(), "infra".into()),
                (LABEL_RUN.into(), "spoofed".into()),
            ],
            ..Default::default()
        };
        let body = container_body(&spec(), &p, vec![]);
        let entry = body.entrypoint.unwrap();
        assert_eq!(entry[0], "/bin/sh");
        assert_eq!(entry[1], "-c");
        assert!(entry[2].starts_with("\"$@\"; rc=$?;"));
        assert!(entry[2].contains("echo @@BATON-RESULT-FILE@@; cat /baton/out/result.json; echo;"));
        assert!(entry[2].contains("echo @@BATON-END@@; exit $rc"));
        assert!(entry[2].ends_with("exit $rc"));
        assert_eq!(entry[3], "baton-task");
        assert_eq!(body.cmd.unwrap(), vec!["echo", "hi"]);
        assert_eq!(body.user.as_deref(), Some("10001:10001"));
        assert_eq!(
            body.env.unwrap(),
            vec!["A=1", "BATON_OUT=/baton/out", "BATON_IN=/baton/in"]
        );
        let labels = body.labels.unwrap();
        assert_eq!(labels[LABEL_RUN], "run-1");
        assert_eq!(labels[LABEL_TASK], "build/lint");
        assert_eq!(labels[LABEL_ATTEMPT], "2");
        assert_eq!(labels[LABEL_MANAGED], "true");
        assert_eq!(labels["team"], "infra");
    }

    #[test]
    fn names_are_docker_safe() {
        assert_eq!(
            container_name(&spec(), "0a1b"),
            "baton-run-1-build_lint-2-0a1b"
        );
        let mut s = spec();
        s.run_id = "r".repeat(100);
        s.task_id = String::new();
        let name = container_name(&s, "ffff");
        assert_eq!(name, format!("baton-{}-_-2-ffff", "r".repeat(48)));
    }

    #[test]
    fn numeric_user_ids() {
        assert_eq!(numeric_ids("10001:10002"), Some((10001, 10002)));
        assert_eq!(numeric_ids("1000"), Some((1000, 1000)));
        assert_eq!(numeric_ids("agent"), None);
        assert_eq!(numeric_ids("1000:staff"), None);
    }
}
