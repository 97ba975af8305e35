//! A role's `sandbox:`: what its tasks ask beyond the strict default
//! sandbox (network, host mounts, more memory, CPU or pids), and the
//! warnings each widening earns at validation; so does a workspace
//! `host_path` that the plan's inputs choose.
//!
//! The plan only *asks*: the worker grants a request within its own allow
//! flags and ceilings, or fails the task (see `baton_worker::runtime::grant`).
//! Running as root or privileged cannot even be asked for.

use marked_yaml::Node;
use serde::{Deserialize, Serialize};

use super::node::{is_null, kind, Cx, Field};

/// The worker's default limits (`baton_worker::runtime::Limits::default`):
/// asking for more than these is a widening, asking for less is not.
pub const DEFAULT_MEMORY_BYTES: i64 = 256 * 1024 * 1024;
pub const DEFAULT_NANO_CPUS: i64 = 1_000_000_000;
pub const DEFAULT_PIDS: i64 = 128;

const KEYS: &[&str] = &["network", "mounts", "memory", "cpus", "pids"];
/// Keys that would run a task as root; refused with their own message.
const ROOT_KEYS: &[&str] = &["user", "root", "privileged", "cap_add"];
const MOUNT_KEYS: &[&str] = &["host", "path", "read_only"];

/// What a role's tasks ask beyond the strict sandbox; `Default`: nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleSandbox {
    #[serde(default)]
    pub network: bool,
    #[serde(default)]
    pub mounts: Vec<SandboxMount>,
    /// 0: the worker's default.
    #[serde(default)]
    pub memory_bytes: i64,
    /// CPUs in units of 10^-9; 0: the worker's default.
    #[serde(default)]
    pub nano_cpus: i64,
    /// 0: the worker's default.
    #[serde(default)]
    pub pids: i64,
    /// Where `sandbox:` is written (line, column), for warnings.
    #[serde(skip)]
    pub at: (usize, usize),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SandboxMount {
    pub host: String,
    pub path: String,
    pub read_only: bool,
}

impl RoleSandbox {
    pub fn is_default(&self) -> bool {
        !self.network
            && self.mounts.is_empty()
            && self.memory_bytes == 0
            && self.nano_cpus == 0
            && self.pids == 0
    }

    /// One sentence per widening: what is asked and what it risks.
    pub fn widenings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.network {
            out.push("asks for network access: its tasks can reach any host the worker can, and send out what they read".to_string());
        }
        for m in &self.mounts {
            let (mode, risk) = if m.read_only {
                ("read-only", "its tasks can read everything there")
            } else {
                ("read-write", "its tasks can change or delete host files")
            };
            out.push(format!(
                "mounts host path {} at {} {mode}: {risk}",
                m.host, m.path
            ));
        }
        if self.memory_bytes > DEFAULT_MEMORY_BYTES {
            out.push(format!("asks for {} MiB of memory (default {} MiB): a runaway task can starve others on its worker", self.memory_bytes >> 20, DEFAULT_MEMORY_BYTES >> 20));
        }
        if self.nano_cpus > DEFAULT_NANO_CPUS {
            out.push(format!(
                "asks for {} CPUs (default 1): a busy task slows others on its worker",
                self.nano_cpus as f64 / 1e9
            ));
        }
        if self.pids > DEFAULT_PIDS {
            out.push(format!(
                "asks for {} processes (default {DEFAULT_PIDS}): a fork bomb has more room",
                self.pids
            ));
        }
        out
    }
}

/// `sandbox:` of role `role`.
pub(crate) fn sandbox(cx: &mut Cx, f: Field<'_>, role: &str) -> RoleSandbox {
    let pos = f.pos();
    // Warnings point at the `sandbox` key: the line a reviewer looks for.
    let mut out = RoleSandbox {
        at: (f.key.line, f.key.col),
        ..Default::default()
    };
    let what = format!("the sandbox of role `{role}`");
    let allowed: Vec<&str> = KEYS.iter().chain(ROOT_KEYS).copied().collect();
    let Some(fs) = cx.fields(f.node, pos, &what, &allowed) else {
        return out;
    };
    for e in &fs.entries {
        if ROOT_KEYS.contains(&e.name) {
            cx.err(
                e.key,
                format!("role `{role}` asks for `{}`: tasks never run as root, privileged or with added capabilities", e.name),
                "remove the key: the sandbox always runs tasks as uid 10001 with every capability dropped; do what needs root in the image build",
            );
        }
    }
    if let Some(f) = fs.get("network") {
        out.network = boolean(cx, f).unwrap_or(false);
    }
    if let Some(f) = fs.get("mounts") {
        let hint = "write `mounts: [{ host: /srv/cache, path: /cache, read_only: true }]`";
        if let Some(items) = cx.seq(f, hint) {
            for item in items.iter() {
                if let Some(m) = mount(cx, item, role) {
                    out.mounts.push(m);
                }
            }
        }
    }
    if let Some(f) = fs.get("memory") {
        out.memory_bytes = size(cx, f).unwrap_or(0);
    }
    if let Some(f) = fs.get("cpus") {
        out.nano_cpus = cpus(cx, f).unwrap_or(0);
    }
    if let Some(f) = fs.get("pids") {
        out.pids = cx.uint(f, 1 << 20).map(i64::from).unwrap_or(0);
    }
    out
}

fn mount(cx: &mut Cx, node: &Node, role: &str) -> Option<SandboxMount> {
    let at = super::node::node_pos(node);
    let what = format!("mount of role `{role}`");
    let fs = cx.fields(node, at, &what, MOUNT_KEYS)?;
    let path_of = |name: &str, cx: &mut Cx| -> Option<String> {
        let f = cx.require(&fs, name, &what)?;
        let (text, _) = cx.string(f)?;
        let ok = text.starts_with('/') && !text.split('/').any(|c| c == "..");
        if !ok {
            cx.err(
                f.pos(),
                format!("mount `{name}` `{text}` is not an absolute path"),
                format!("write an absolute path without `..`, e.g. `{name}: /srv/cache`"),
            );
            return None;
        }
        Some(text)
    };
    let host = path_of("host", cx);
    let path = path_of("path", cx);
    // Read-only unless said: the safe side is the default.
    let read_only = match fs.get("read_only") {
        Some(f) => boolean(cx, f).unwrap_or(true),
        None => true,
    };
    Some(SandboxMount {
        host: host?,
        path: path?,
        read_only,
    })
}

fn scalar<'a>(f: &Field<'a>) -> Option<&'a str> {
    match f.node {
        Node::Scalar(s) if !is_null(f.node) => Some(s.as_str().trim()),
        _ => None,
    }
}

fn boolean(cx: &mut Cx, f: Field<'_>) -> Option<bool> {
    match scalar(&f) {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => {
            cx.err(
                f.pos(),
                format!("`{}` must be true or false, not {}", f.name, kind(f.node)),
                format!("write `{}: true` or `{}: false`", f.name, f.name),
            );
            None
        }
    }
}

/// `512m`, `2g`, `1024k` or a number of bytes.
fn size(cx: &mut Cx, f: Field<'_>) -> Option<i64> {
    let text = scalar(&f).unwrap_or_default().to_ascii_lowercase();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text.as_str(), ""),
    };
    let unit = match unit.trim_end_matches(['b', 'i']) {
        "" => Some(1i64),
        "k" => Some(1 << 10),
        "m" => Some(1 << 20),
        "g" => Some(1 << 30),
        _ => None,
    };
    match (digits.parse::<i64>().ok(), unit) {
        (Some(n), Some(u)) if n > 0 && n.checked_mul(u).is_some_and(|b| b <= 1 << 40) => {
            Some(n * u)
        }
        _ => {
            cx.err(
                f.pos(),
                format!(
                    "`memory` must be a size such as 512m or 2g, not {}",
                    kind(f.node)
                ),
                "write a whole number with k, m or g (at most 1024g), e.g. `memory: 2g`",
            );
            None
        }
    }
}

/// `2`, `0.5`: in units of 10^-9 CPUs.
fn cpus(cx: &mut Cx, f: Field<'_>) -> Option<i64> {
    match scalar(&f).and_then(|t| t.parse::<f64>().ok()) {
        Some(c) if c > 0.0 && c <= 1024.0 => Some((c * 1e9).round() as i64),
        _ => {
            cx.err(
                f.pos(),
                format!(
                    "`cpus` must be a number of CPUs above 0, not {}",
                    kind(f.node)
                ),
                "write e.g. `cpus: 2` or `cpus: 0.5`",
            );
            None
        }
    }
}

/// The role's sandbox as normalized YAML lines (for `role_yaml`), or nothing.
pub(crate) fn to_yaml(s: &RoleSandbox, out: &mut String) {
    if s.is_default() {
        return;
    }
    out.push_str("sandbox:\n");
    if s.network {
        out.push_str("  network: true\n");
    }
    if !s.mounts.is_empty() {
        out.push_str("  mounts:\n");
        for m in &s.mounts {
            out.push_str(&format!(
                "    - {{ host: {}, path: {}, read_only: {} }}\n",
                super::schema_yaml::quote(&m.host),
                super::schema_yaml::quote(&m.path),
                m.read_only
            ));
        }
    }
    if s.memory_bytes > 0 {
        out.push_str(&format!("  memory: {}\n", s.memory_bytes));
    }
    if s.nano_cpus > 0 {
        out.push_str(&format!("  cpus: {}\n", s.nano_cpus as f64 / 1e9));
    }
    if s.pids > 0 {
        out.push_str(&format!("  pids: {}\n", s.pids));
    }
}

/// Every widening of every role, and a host path whose trigger chooses it,
/// as `file:line:col: warning: …` lines.
pub fn warnings(plan: &super::Plan, file: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (id, role) in &plan.roles {
        let (line, col) = role.sandbox.at;
        for w in role.sandbox.widenings() {
            out.push(format!("{file}:{line}:{col}: warning: role `{id}` {w}"));
        }
    }
    out.extend(templated_host_path(plan, file));
    out
}

/// Tasks named in one warning before the rest are counted.
const NAMED_TASKS: usize = 6;

/// `host_path: "${{ inputs.repo }}"` lets whoever triggers the plan (a
/// webhook caller, `nats request baton.trigger.…`) choose a host directory,
/// `/` included: only the worker's `--allow-mounts` stands in the way.
fn templated_host_path(plan: &super::Plan, file: &str) -> Option<String> {
    use super::{WorkspaceAccess, WorkspaceSource};
    let ws = plan.workspace.as_ref()?;
    let WorkspaceSource::HostPath(path) = &ws.source else {
        return None;
    };
    if !path.contains("${{") {
        return None;
    }
    let mut tasks = Vec::new();
    for phase in &plan.phases {
        for t in phase.tasks.iter().chain(&phase.rollback) {
            let access = plan.roles.get(&t.role).map(|r| r.workspace);
            let mode = match access {
                Some(WorkspaceAccess::ReadWrite) => ", read-write",
                Some(WorkspaceAccess::ReadOnly) => "",
                _ => continue,
            };
            tasks.push(format!("`{}` (phase `{}`{mode})", t.id, phase.id));
        }
    }
    let who = match tasks.len() {
        0 => "no task mounts it yet".to_string(),
        n if n > NAMED_TASKS => format!(
            "tasks {} and {} more mount it",
            tasks[..NAMED_TASKS].join(", "),
            n - NAMED_TASKS
        ),
        _ => format!("tasks {} mount it", tasks.join(", ")),
    };
    let (line, col) = ws.at;
    Some(format!(
        "{file}:{line}:{col}: warning: workspace host_path `{path}` is templated from inputs: whoever triggers the plan chooses the host path, `/` included, and {who}; the worker's --allow-mounts is what confines it — start workers with --allow-mounts set to the directories such paths may be in, or use `volume: true`"
    ))
}
