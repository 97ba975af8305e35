//! Structure checks of the deployment files: `deploy/compose`, `deploy/k8s`
//! and the NATS configuration in `deploy/nats`.
//!
//! No cluster and no Docker: every YAML file is parsed (the Kubernetes ones
//! as multi-document streams) and the tests assert what people deploying
//! Baton rely on: a 3-node NATS cluster with JetStream and
//! `sync_interval: always`, two coordinators, three workers whose role sets
//! cover every role, the Docker socket only in workers, local images that are
//! never pulled, resource limits, `--replicas 3` for every Baton service.
//!
//! Every problem names the file (and line, where there is one) and what is
//! wrong; a test reports all of its problems at once.
//!
//! The trust boundary (docs/security.md): NATS loads the users of
//! `deploy/nats/auth/baton-auth.conf` and requires TLS, routes are mutual
//! TLS, every Baton service connects as its own user over TLS with the CA,
//! and no password or key is committed. Beyond the static checks, the tests
//! run the scripts that make the secrets (`deploy/compose/up.sh
//! --secrets-only`, `deploy/k8s/secrets.sh`, no Docker or cluster needed),
//! check their modes and that git ignores them, then start three real
//! nats-servers (`BATON_NATS_SERVER`) with the compose config and with the
//! Kubernetes ConfigMap, each with the generated certificate and passwords,
//! and connect with every service's credentials, and without them.
//! `kubectl kustomize` and `kubernetes-validate --strict` must be installed (`scripts/setup.sh`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{LoaderOptions, Node};

/// The roles the three workers must cover between them.
const REQUIRED_ROLES: [&str; 8] = ["arch", "plat", "sec", "obs", "net", "ops", "qa", "docs"];
const NATS_NODES: usize = 3;
const COORDINATORS: usize = 2;
const WORKERS: usize = 3;
const NATS_IMAGE: &str = "baton/nats:local";
const BATON_IMAGE: &str = "baton/baton:local";
const NAMESPACE: &str = "baton";
/// The NATS users, one per component (docs/security.md).
const AUTH_CONF: &str = "deploy/nats/auth/baton-auth.conf";
/// Its copy in the Kubernetes ConfigMap `nats-config`.
const AUTH_CONF_KEY: &str = "baton-auth.conf";

// ---------------------------------------------------------------------------
// Problems: collect, then fail once with all of them.

#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }

    fn add(&mut self, what: String) {
        self.0.push(what);
    }

    #[track_caller]
    fn assert_none(self, topic: &str) {
        if !self.0.is_empty() {
            let mut msg = format!("{topic}: {} problem(s)\n", self.0.len());
            for p in &self.0 {
                let _ = writeln!(msg, "  - {p}");
            }
            panic!("{msg}");
        }
    }
}

// ---------------------------------------------------------------------------
// Loading YAML.

struct Doc {
    /// Path relative to the workspace root, for messages.
    file: String,
    map: MarkedMappingNode,
}

impl Doc {
    /// `file:line` of a node of this document.
    fn at(&self, node: &Node) -> String {
        match node.span().start() {
            Some(m) => format!("{}:{}", self.file, m.line()),
            None => self.file.clone(),
        }
    }

    fn at_map(&self, map: &MarkedMappingNode) -> String {
        match map.span().start() {
            Some(m) => format!("{}:{}", self.file, m.line()),
            None => self.file.clone(),
        }
    }
}

fn root() -> PathBuf {
    baton_test_support::workspace_root()
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Files in `dir` (relative to the workspace root) whose name ends in one of `exts`, sorted.
fn files_in(dir: &str, exts: &[&str]) -> Vec<PathBuf> {
    let dir = root().join(dir);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| exts.iter().any(|x| n.ends_with(x)))
        })
        .collect();
    out.sort();
    out
}

/// Split a YAML stream into documents at `---` lines. Each document keeps its
/// place in the file (earlier lines are blanked), so parse errors and
/// markers give the line in the file.
fn split_documents(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut docs = Vec::new();
    let mut start = 0;
    let mut flush = |from: usize, to: usize| {
        let body: Vec<&str> = lines[from..to].to_vec();
        let has_content = body.iter().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        });
        if has_content {
            let mut doc = "\n".repeat(from);
            doc.push_str(&body.join("\n"));
            doc.push('\n');
            docs.push(doc);
        }
    };
    for (i, line) in lines.iter().enumerate() {
        // `---` starts a document, `...` ends one.
        let is_separator = *line == "---"
            || *line == "..."
            || line.starts_with("--- ")
            || line.starts_with("---\t")
            || line.starts_with("---#");
        if is_separator {
            flush(start, i);
            start = i + 1;
        }
    }
    flush(start, lines.len());
    docs
}

fn parse_docs(path: &Path, multi: bool) -> Vec<Doc> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse_docs_text(&rel(path), &text, multi)
}

/// The documents of YAML text; `file` names it in messages.
fn parse_docs_text(file: &str, text: &str, multi: bool) -> Vec<Doc> {
    let file = file.to_string();
    let docs = if multi {
        split_documents(text)
    } else {
        vec![text.to_string()]
    };
    docs.into_iter()
        .map(|doc| {
            let opts = LoaderOptions::default().error_on_duplicate_keys(true);
            let node = marked_yaml::parse_yaml_with_options(0, &doc, opts)
                .unwrap_or_else(|e| panic!("{file}: not valid YAML (or not a mapping): {e}"));
            let map = node
                .as_mapping()
                .unwrap_or_else(|| panic!("{file}: a document is not a mapping"))
                .clone();
            Doc {
                file: file.clone(),
                map,
            }
        })
        .collect()
}

/// The Kubernetes objects of deploy/k8s (its kustomization.yaml is not one).
fn k8s_docs() -> Vec<Doc> {
    let files = files_in("deploy/k8s", &[".yaml", ".yml"]);
    assert!(!files.is_empty(), "deploy/k8s has no YAML file");
    files
        .iter()
        .flat_map(|p| parse_docs(p, true))
        .filter(|d| {
            !get_str(&d.map, &["apiVersion"])
                .is_some_and(|a| a.starts_with("kustomize.config.k8s.io/"))
        })
        .collect()
}

fn compose_docs() -> Vec<Doc> {
    let files = files_in("deploy/compose", &[".yaml", ".yml"]);
    assert!(!files.is_empty(), "deploy/compose has no YAML file");
    files.iter().flat_map(|p| parse_docs(p, false)).collect()
}

// ---------------------------------------------------------------------------
// YAML helpers.

fn get<'a>(map: &'a MarkedMappingNode, path: &[&str]) -> Option<&'a Node> {
    let (first, rest) = path.split_first()?;
    let node = map.get_node(first)?;
    if rest.is_empty() {
        Some(node)
    } else {
        get(node.as_mapping()?, rest)
    }
}

fn get_str<'a>(map: &'a MarkedMappingNode, path: &[&str]) -> Option<&'a str> {
    get(map, path)?.as_scalar().map(MarkedScalarNode::as_str)
}

fn get_map<'a>(map: &'a MarkedMappingNode, path: &[&str]) -> Option<&'a MarkedMappingNode> {
    get(map, path)?.as_mapping()
}

/// A sequence's items, or nothing when it is absent or not a sequence.
fn seq<'a>(map: &'a MarkedMappingNode, path: &[&str]) -> Vec<&'a Node> {
    get(map, path)
        .and_then(Node::as_sequence)
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

fn scalars(nodes: &[&Node]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| n.as_scalar().map(|s| s.as_str().to_string()))
        .collect()
}

/// A command as a list of words: a YAML sequence, or a string split on whitespace.
fn words(node: Option<&Node>) -> Vec<String> {
    match node {
        Some(Node::Sequence(s)) => scalars(&s.iter().collect::<Vec<_>>()),
        Some(Node::Scalar(s)) => s.as_str().split_whitespace().map(String::from).collect(),
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Baton command lines.

/// `baton <sub> --flag value ...`, from an argv whose first word may be the binary.
#[derive(Debug, Clone)]
struct BatonCmd {
    sub: String,
    flags: BTreeMap<String, String>,
}

impl BatonCmd {
    fn parse(argv: &[String]) -> Option<Self> {
        let mut it = argv.iter().peekable();
        if it
            .peek()
            .is_some_and(|w| *w == "baton" || w.ends_with("/baton"))
        {
            it.next();
        }
        let sub = it.next()?.clone();
        if sub.starts_with('-') {
            return None;
        }
        let mut flags = BTreeMap::new();
        while let Some(w) = it.next() {
            let Some(name) = w.strip_prefix("--") else {
                continue;
            };
            if let Some((k, v)) = name.split_once('=') {
                flags.insert(k.to_string(), v.to_string());
            } else {
                let value = match it.peek() {
                    Some(v) if !v.starts_with("--") => it.next().cloned().unwrap_or_default(),
                    _ => String::new(),
                };
                flags.insert(name.to_string(), value);
            }
        }
        Some(Self { sub, flags })
    }

    fn roles(&self) -> BTreeSet<String> {
        self.flags
            .get("roles")
            .map(|r| {
                r.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Hosts named by --nats-url (a comma-separated list of URLs).
    fn nats_hosts(&self) -> BTreeSet<String> {
        self.flags
            .get("nats-url")
            .map(|u| u.split(',').filter_map(url_host).collect())
            .unwrap_or_default()
    }
}

/// The host of `scheme://[user[:pass]@]host[:port]`.
fn url_host(url: &str) -> Option<String> {
    let rest = url.trim().split_once("://")?.1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = rest.split(['/', ':']).next()?;
    (!host.is_empty()).then(|| host.to_string())
}

/// The checks every Baton service shares: `--replicas 3`, and `--nats-url`
/// naming every NATS node.
fn check_baton_cmd(p: &mut Problems, at: &str, cmd: &BatonCmd, nats_nodes: &BTreeSet<String>) {
    if !matches!(cmd.sub.as_str(), "coordinator" | "gates" | "worker") {
        return;
    }
    p.check(
        cmd.flags.get("replicas").map(String::as_str) == Some("3"),
        || {
            format!(
                "{at}: `baton {}` must get `--replicas 3` (JetStream R3), has {:?}",
                cmd.sub,
                cmd.flags.get("replicas")
            )
        },
    );
    let hosts = cmd.nats_hosts();
    p.check(&hosts == nats_nodes, || {
        format!(
            "{at}: `baton {}` --nats-url names {hosts:?}, expected every NATS node {nats_nodes:?}",
            cmd.sub
        )
    });
}

/// The role sets of the workers: distinct, and together covering every required role.
fn check_worker_roles(p: &mut Problems, what: &str, workers: &[(String, BatonCmd)]) {
    p.check(workers.len() == WORKERS, || {
        format!(
            "{what}: expected {WORKERS} workers, found {}: {:?}",
            workers.len(),
            workers.iter().map(|(a, _)| a).collect::<Vec<_>>()
        )
    });
    let mut seen: BTreeMap<BTreeSet<String>, &str> = BTreeMap::new();
    let mut all = BTreeSet::new();
    for (at, cmd) in workers {
        let roles = cmd.roles();
        p.check(!roles.is_empty(), || {
            format!("{at}: worker without --roles")
        });
        if let Some(other) = seen.insert(roles.clone(), at) {
            p.add(format!(
                "{at}: worker has the same roles {roles:?} as the worker at {other}; each worker needs its own role set"
            ));
        }
        p.check(
            cmd.flags.get("runtime").map(String::as_str) == Some("docker"),
            || format!("{at}: worker must use --runtime docker"),
        );
        all.extend(roles);
    }
    let missing: Vec<_> = REQUIRED_ROLES
        .iter()
        .filter(|r| !all.contains(**r))
        .collect();
    p.check(missing.is_empty(), || {
        format!("{what}: no worker serves the roles {missing:?}")
    });
}

// ---------------------------------------------------------------------------
// NATS configuration files (not YAML: nats-server's own format).

#[derive(Debug, Clone)]
enum Conf {
    Str(String),
    Map(Vec<(String, Conf)>),
    List(Vec<Conf>),
}

impl Conf {
    fn get(&self, key: &str) -> Option<&Conf> {
        match self {
            Conf::Map(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Conf::Str(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Open(char),
    Close(char),
}

fn conf_tokens(text: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() || c == ',' || c == ';' => {
                chars.next();
            }
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' => {
                // `//` starts a comment only where a token would start.
                let mut look = chars.clone();
                look.next();
                if look.peek() == Some(&'/') {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            break;
                        }
                    }
                } else {
                    toks.push(Tok::Word(conf_word(&mut chars)));
                }
            }
            '{' | '[' => {
                chars.next();
                toks.push(Tok::Open(c));
            }
            '}' | ']' => {
                chars.next();
                toks.push(Tok::Close(c));
            }
            '"' | '\'' => {
                chars.next();
                let mut s = String::new();
                let mut closed = false;
                for d in chars.by_ref() {
                    if d == c {
                        closed = true;
                        break;
                    }
                    if d == '\n' {
                        break;
                    }
                    s.push(d);
                }
                if !closed {
                    return Err(format!("unterminated string {c}{s}"));
                }
                toks.push(Tok::Word(s));
            }
            _ => toks.push(Tok::Word(conf_word(&mut chars))),
        }
    }
    Ok(toks)
}

fn conf_word(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    let mut w = String::new();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() || matches!(c, ',' | ';' | '{' | '}' | '[' | ']' | '#') {
            break;
        }
        w.push(c);
        chars.next();
    }
    w
}

/// Parse a nats-server configuration into a tree (keys lower-cased).
fn parse_conf(text: &str) -> Result<Conf, String> {
    let toks = conf_tokens(text)?;
    let mut pos = 0;
    let map = conf_block(&toks, &mut pos, None)?;
    Ok(map)
}

fn conf_block(toks: &[Tok], pos: &mut usize, close: Option<char>) -> Result<Conf, String> {
    let mut entries = Vec::new();
    loop {
        match toks.get(*pos) {
            None if close.is_none() => return Ok(Conf::Map(entries)),
            None => return Err("missing `}`".into()),
            Some(Tok::Close(c)) if Some(*c) == close => {
                *pos += 1;
                return Ok(Conf::Map(entries));
            }
            Some(Tok::Word(w)) => {
                *pos += 1;
                // `key: value`, `key = value`, `key value`, `key:value`.
                let (key, inline) = match w.find([':', '=']) {
                    Some(i) => (&w[..i], w[i + 1..].to_string()),
                    None => (w.as_str(), String::new()),
                };
                let key = key.to_ascii_lowercase();
                let value = if !inline.is_empty() {
                    Conf::Str(inline)
                } else {
                    if let Some(Tok::Word(sep)) = toks.get(*pos) {
                        if sep == ":" || sep == "=" {
                            *pos += 1;
                        }
                    }
                    conf_value(toks, pos)?
                };
                entries.push((key, value));
            }
            Some(t) => return Err(format!("unexpected {t:?}")),
        }
    }
}

fn conf_value(toks: &[Tok], pos: &mut usize) -> Result<Conf, String> {
    match toks.get(*pos) {
        Some(Tok::Open('{')) => {
            *pos += 1;
            conf_block(toks, pos, Some('}'))
        }
        Some(Tok::Open('[')) => {
            *pos += 1;
            let mut items = Vec::new();
            loop {
                match toks.get(*pos) {
                    Some(Tok::Close(']')) => {
                        *pos += 1;
                        return Ok(Conf::List(items));
                    }
                    None => return Err("missing `]`".into()),
                    _ => items.push(conf_value(toks, pos)?),
                }
            }
        }
        Some(Tok::Word(w)) => {
            *pos += 1;
            Ok(Conf::Str(w.clone()))
        }
        other => Err(format!("a value expected, found {other:?}")),
    }
}

/// A NATS configuration must run JetStream with `sync_interval: always`, and
/// its cluster routes must name exactly the expected nodes.
fn check_nats_conf(p: &mut Problems, at: &str, text: &str, nodes: &BTreeSet<String>) {
    let conf = match parse_conf(text) {
        Ok(c) => c,
        Err(e) => {
            p.add(format!("{at}: cannot parse the NATS configuration: {e}"));
            return;
        }
    };
    match conf.get("jetstream") {
        Some(js @ Conf::Map(_)) => {
            let sync = js.get("sync_interval").and_then(Conf::as_str);
            p.check(sync.is_some_and(|s| s.eq_ignore_ascii_case("always")), || {
                format!(
                    "{at}: jetstream {{ sync_interval }} is {sync:?}, must be `always` (the default lazy fsync can lose acknowledged writes)"
                )
            });
            p.check(js.get("store_dir").is_some(), || {
                format!("{at}: jetstream has no store_dir (data would land in a temporary folder)")
            });
        }
        Some(other) => p.add(format!(
            "{at}: `jetstream` is {other:?}, expected a block with `sync_interval: always`"
        )),
        None => p.add(format!("{at}: no `jetstream` block: JetStream is off")),
    }
    let routes: BTreeSet<String> = match conf.get("cluster").and_then(|c| c.get("routes")) {
        Some(Conf::List(items)) => items
            .iter()
            .filter_map(Conf::as_str)
            .filter_map(url_host)
            .collect(),
        Some(Conf::Str(one)) => url_host(one).into_iter().collect(),
        _ => BTreeSet::new(),
    };
    p.check(&routes == nodes, || {
        format!("{at}: cluster routes name {routes:?}, expected all {NATS_NODES} nodes {nodes:?}")
    });
    p.check(
        conf.get("cluster")
            .and_then(|c| c.get("name"))
            .is_some_and(|n| n.as_str().is_some()),
        || format!("{at}: the cluster has no name"),
    );
    p.check(conf.get("server_name").is_some(), || {
        format!("{at}: no server_name (JetStream clustering needs a distinct name per node)")
    });
}

// ---------------------------------------------------------------------------
// Compose.

struct Service<'a> {
    doc: &'a Doc,
    name: String,
    map: &'a MarkedMappingNode,
}

impl Service<'_> {
    fn at(&self) -> String {
        format!("{} service {}", self.doc.at_map(self.map), self.name)
    }

    fn image(&self) -> Option<&str> {
        get_str(self.map, &["image"])
    }

    fn cmd(&self) -> Option<BatonCmd> {
        if self.image() != Some(BATON_IMAGE) {
            return None;
        }
        BatonCmd::parse(&words(self.map.get_node("command")))
    }

    /// Short-syntax volumes as written (`source:target[:mode]`), long syntax as `source:target`.
    fn volumes(&self) -> Vec<String> {
        seq(self.map, &["volumes"])
            .into_iter()
            .filter_map(|v| match v {
                Node::Scalar(s) => Some(s.as_str().to_string()),
                Node::Mapping(m) => Some(format!(
                    "{}:{}",
                    get_str(m, &["source"]).unwrap_or(""),
                    get_str(m, &["target"]).unwrap_or("")
                )),
                Node::Sequence(_) => None,
            })
            .collect()
    }
}

/// `source:target[:mode]`, where source may hold `${VAR:-default}`.
fn split_volume(v: &str) -> (String, String) {
    // Drop a trailing `:ro`/`:rw`/... mode, then split at the last `:`.
    let v = match v.rsplit_once(':') {
        Some((head, mode)) if !mode.starts_with('/') && head.contains(':') => head,
        _ => v,
    };
    match v.rsplit_once(':') {
        Some((s, t)) => (s.to_string(), t.to_string()),
        None => (String::new(), v.to_string()),
    }
}

fn compose_services(docs: &[Doc]) -> Vec<Service<'_>> {
    let mut out = Vec::new();
    for doc in docs {
        let Some(services) = get_map(&doc.map, &["services"]) else {
            continue;
        };
        for (name, svc) in services.iter() {
            let map = svc.as_mapping().unwrap_or_else(|| {
                panic!("{}: service {} is not a mapping", doc.file, name.as_str())
            });
            out.push(Service {
                doc,
                name: name.as_str().to_string(),
                map,
            });
        }
    }
    assert!(
        !out.is_empty(),
        "deploy/compose: no file has a `services` section"
    );
    out
}

fn compose_nats(services: &[Service<'_>]) -> BTreeSet<String> {
    services
        .iter()
        .filter(|s| s.image() == Some(NATS_IMAGE))
        .map(|s| s.name.clone())
        .collect()
}

#[test]
fn compose_runs_three_nats_nodes_two_coordinators_gates_and_three_workers() {
    let docs = compose_docs();
    let services = compose_services(&docs);
    let mut p = Problems::default();

    // NATS: three nodes, each with a volume of its own and a config that exists.
    let nats: Vec<&Service> = services
        .iter()
        .filter(|s| s.image() == Some(NATS_IMAGE))
        .collect();
    p.check(nats.len() == NATS_NODES, || {
        format!(
            "deploy/compose: expected {NATS_NODES} NATS services ({NATS_IMAGE}), found {:?}",
            nats.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    });
    let mut data_volumes: BTreeMap<String, String> = BTreeMap::new();
    let mut server_names = BTreeSet::new();
    for s in &nats {
        let vols: Vec<(String, String)> = s.volumes().iter().map(|v| split_volume(v)).collect();
        match vols.iter().find(|(_, t)| t == "/data") {
            Some((src, _)) if !src.is_empty() && !src.starts_with(['.', '/', '$']) => {
                if let Some(other) = data_volumes.insert(src.clone(), s.name.clone()) {
                    p.add(format!(
                        "{}: shares the volume {src} with {other}; each NATS node needs its own",
                        s.at()
                    ));
                }
                let declared = get_map(&s.doc.map, &["volumes"])
                    .is_some_and(|v| v.get_node(src.as_str()).is_some());
                p.check(declared, || {
                    format!(
                        "{}: volume {src} is not declared under the top-level `volumes`",
                        s.at()
                    )
                });
            }
            other => p.add(format!(
                "{}: no named volume at /data (JetStream's store_dir), found {other:?}",
                s.at()
            )),
        }
        let conf = vols.iter().find(|(_, t)| t.ends_with(".conf"));
        match conf {
            Some((src, _)) => {
                let path = root().join("deploy/compose").join(src);
                p.check(path.is_file(), || {
                    format!(
                        "{}: mounts the NATS config {src}, which does not exist",
                        s.at()
                    )
                });
                if let Ok(text) = std::fs::read_to_string(&path) {
                    // A config templated by $VAR needs the variable set per node, distinct.
                    let templated = text.lines().find_map(|l| {
                        let l = l.trim();
                        l.starts_with("server_name")
                            .then(|| l.split_once('$').map(|(_, v)| v.trim().to_string()))
                            .flatten()
                    });
                    if let Some(var) = templated {
                        match get_str(s.map, &["environment", var.as_str()]) {
                            Some(v) => {
                                if !server_names.insert(v.to_string()) {
                                    p.add(format!("{}: ${var}={v} is used by another node; server names must be distinct", s.at()));
                                }
                            }
                            None => p.add(format!(
                                "{}: {src} takes server_name from ${var}, which the service does not set",
                                s.at()
                            )),
                        }
                    }
                }
            }
            None => p.add(format!(
                "{}: mounts no NATS config (*.conf) from deploy/nats",
                s.at()
            )),
        }
    }

    // Coordinators: two, each publishing the gRPC port on a host port of its own.
    let nats_nodes = compose_nats(&services);
    let coordinators: Vec<&Service> = services
        .iter()
        .filter(|s| s.cmd().is_some_and(|c| c.sub == "coordinator"))
        .collect();
    p.check(coordinators.len() == COORDINATORS, || {
        format!(
            "deploy/compose: expected {COORDINATORS} coordinator services, found {:?}",
            coordinators.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    });
    let mut host_ports: BTreeMap<String, String> = BTreeMap::new();
    for s in &coordinators {
        let cmd = s.cmd().expect("coordinator command");
        let grpc = cmd.flags.get("grpc-addr").cloned().unwrap_or_default();
        p.check(grpc == "0.0.0.0:7233" || grpc == "[::]:7233", || {
            format!(
                "{}: --grpc-addr is {grpc:?}; it must listen on 0.0.0.0:7233, or the published port reaches nothing",
                s.at()
            )
        });
        let published: Vec<String> = scalars(&seq(s.map, &["ports"]))
            .into_iter()
            .filter_map(|port| {
                // [ip:]host:container[/proto]; the ip may be `${VAR:-127.0.0.1}`.
                let mut parts = port.rsplitn(3, ':');
                let container = parts.next()?.split('/').next()?.to_string();
                let host = parts.next()?.to_string();
                (container == "7233").then_some(host)
            })
            .collect();
        p.check(published.len() == 1, || {
            format!(
                "{}: must publish the gRPC port 7233 on one host port, publishes {published:?}",
                s.at()
            )
        });
        for host in published {
            if let Some(other) = host_ports.insert(host.clone(), s.name.clone()) {
                p.add(format!(
                    "{}: host port {host} is also used by {other}",
                    s.at()
                ));
            }
        }
    }

    let gates = services
        .iter()
        .filter(|s| s.cmd().is_some_and(|c| c.sub == "gates"))
        .count();
    p.check(gates >= 1, || {
        "deploy/compose: no gates service".to_string()
    });

    // Workers: three, each its own role set, together every role.
    let workers: Vec<(String, BatonCmd)> = services
        .iter()
        .filter_map(|s| s.cmd().filter(|c| c.sub == "worker").map(|c| (s.at(), c)))
        .collect();
    check_worker_roles(&mut p, "deploy/compose", &workers);
    // Stable, distinct ids: a worker removes the containers labelled with
    // its id when it starts, so two sharing one would kill each other's tasks.
    let mut ids = BTreeSet::new();
    for (at, c) in &workers {
        match c.flags.get("id").filter(|id| !id.is_empty()) {
            Some(id) => p.check(ids.insert(id.clone()), || {
                format!("{at}: --id {id} is another worker's too; they would remove each other's task containers")
            }),
            None => p.add(format!(
                "{at}: no --id; restarted, it could not remove what its predecessor left running"
            )),
        }
    }

    // Every Baton service: --replicas 3, all NATS nodes in --nats-url.
    for s in &services {
        if let Some(cmd) = s.cmd() {
            check_baton_cmd(&mut p, &s.at(), &cmd, &nats_nodes);
        }
    }
    p.assert_none("compose topology");
}

#[test]
fn compose_images_are_local_never_pulled_and_limited() {
    let docs = compose_docs();
    let services = compose_services(&docs);
    let mut p = Problems::default();
    for s in &services {
        let image = s.image().unwrap_or("");
        p.check(
            image.starts_with("baton/") && image.ends_with(":local"),
            || {
                format!(
                    "{}: image {image:?} is not a local baton/*:local image (no registry is reachable)",
                    s.at()
                )
            },
        );
        let policy = get_str(s.map, &["pull_policy"]);
        p.check(
            policy == Some("never") || s.map.get_node("build").is_some(),
            || {
                format!(
                    "{}: pull_policy is {policy:?}; must be `never` (or the service must have a build section)",
                    s.at()
                )
            },
        );
        let limited = s.map.get_node("mem_limit").is_some()
            || get(s.map, &["deploy", "resources", "limits", "memory"]).is_some();
        p.check(limited, || {
            format!(
                "{}: no memory limit (mem_limit or deploy.resources.limits.memory)",
                s.at()
            )
        });
        let cpus = s.map.get_node("cpus").is_some()
            || get(s.map, &["deploy", "resources", "limits", "cpus"]).is_some();
        p.check(cpus, || {
            format!(
                "{}: no CPU limit (cpus or deploy.resources.limits.cpus)",
                s.at()
            )
        });
    }
    p.assert_none("compose images and limits");
}

// ---------------------------------------------------------------------------
// Kubernetes.

/// A pod template inside a workload (Deployment, StatefulSet, DaemonSet, ...).
struct Workload<'a> {
    doc: &'a Doc,
    kind: String,
    name: String,
    replicas: Option<u64>,
    pod: &'a MarkedMappingNode,
    labels: BTreeMap<String, String>,
}

impl Workload<'_> {
    fn at(&self) -> String {
        format!(
            "{} {} {}",
            self.doc.at_map(&self.doc.map),
            self.kind,
            self.name
        )
    }

    /// Every container, init containers included.
    fn containers(&self) -> Vec<&MarkedMappingNode> {
        seq(self.pod, &["containers"])
            .into_iter()
            .chain(seq(self.pod, &["initContainers"]))
            .filter_map(Node::as_mapping)
            .collect()
    }

    fn baton_cmds(&self) -> Vec<BatonCmd> {
        self.baton_containers()
            .into_iter()
            .map(|(_, c)| c)
            .collect()
    }

    /// Every container of the Baton image, with its command line.
    fn baton_containers(&self) -> Vec<(&MarkedMappingNode, BatonCmd)> {
        self.containers()
            .into_iter()
            .filter(|c| get_str(c, &["image"]) == Some(BATON_IMAGE))
            .filter_map(|c| {
                let mut argv = words(c.get_node("command"));
                argv.extend(words(c.get_node("args")));
                Some((c, BatonCmd::parse(&argv)?))
            })
            .collect()
    }

    /// The containers that run a Baton service (coordinator, gates, worker).
    fn baton_services(&self) -> Vec<(&MarkedMappingNode, BatonCmd)> {
        self.baton_containers()
            .into_iter()
            .filter(|(_, cmd)| matches!(cmd.sub.as_str(), "coordinator" | "gates" | "worker"))
            .collect()
    }

    fn runs(&self, sub: &str) -> bool {
        self.baton_cmds().iter().any(|c| c.sub == sub)
    }

    fn is_nats(&self) -> bool {
        self.containers()
            .iter()
            .any(|c| get_str(c, &["image"]) == Some(NATS_IMAGE))
    }

    /// Names of volumes that are hostPaths, with their path.
    fn host_paths(&self) -> Vec<(String, String)> {
        seq(self.pod, &["volumes"])
            .into_iter()
            .filter_map(Node::as_mapping)
            .filter_map(|v| {
                let path = get_str(v, &["hostPath", "path"])?;
                Some((
                    get_str(v, &["name"]).unwrap_or("").to_string(),
                    path.to_string(),
                ))
            })
            .collect()
    }
}

fn workloads(docs: &[Doc]) -> Vec<Workload<'_>> {
    docs.iter()
        .filter_map(|doc| {
            let pod = get_map(&doc.map, &["spec", "template", "spec"])?;
            let labels = get_map(&doc.map, &["spec", "template", "metadata", "labels"])
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| {
                            Some((k.as_str().to_string(), v.as_scalar()?.as_str().to_string()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(Workload {
                doc,
                kind: get_str(&doc.map, &["kind"]).unwrap_or("?").to_string(),
                name: get_str(&doc.map, &["metadata", "name"])
                    .unwrap_or("?")
                    .to_string(),
                replicas: get_str(&doc.map, &["spec", "replicas"]).and_then(|r| r.parse().ok()),
                pod,
                labels,
            })
        })
        .collect()
}

fn kind_is(doc: &Doc, kind: &str) -> bool {
    get_str(&doc.map, &["kind"]) == Some(kind)
}

/// The NATS StatefulSet's pod DNS names (`<name>-<i>.<serviceName>`).
fn k8s_nats_nodes(docs: &[Doc]) -> BTreeSet<String> {
    workloads(docs)
        .iter()
        .filter(|w| w.kind == "StatefulSet" && w.is_nats())
        .flat_map(|w| {
            let svc = get_str(&w.doc.map, &["spec", "serviceName"]).unwrap_or("");
            (0..w.replicas.unwrap_or(1)).map(move |i| format!("{}-{i}.{svc}", w.name))
        })
        .collect()
}

#[test]
fn k8s_objects_are_named_and_live_in_the_baton_namespace() {
    let docs = k8s_docs();
    let mut p = Problems::default();
    let mut names: BTreeMap<(String, String), String> = BTreeMap::new();
    for doc in &docs {
        let at = doc.at_map(&doc.map);
        let api = get_str(&doc.map, &["apiVersion"]).unwrap_or("");
        let kind = get_str(&doc.map, &["kind"]).unwrap_or("");
        let name = get_str(&doc.map, &["metadata", "name"]).unwrap_or("");
        p.check(!api.is_empty(), || format!("{at}: no apiVersion"));
        p.check(!kind.is_empty(), || format!("{at}: no kind"));
        p.check(!name.is_empty(), || format!("{at}: no metadata.name"));
        if kind == "Namespace" {
            p.check(name == NAMESPACE, || {
                format!("{at}: a Namespace other than {NAMESPACE}: {name}")
            });
        } else {
            let ns = get_str(&doc.map, &["metadata", "namespace"]);
            p.check(ns == Some(NAMESPACE), || {
                format!("{at}: {kind} {name} has namespace {ns:?}, must be {NAMESPACE:?}")
            });
        }
        if let Some(other) = names.insert((kind.to_string(), name.to_string()), at.clone()) {
            p.add(format!("{at}: {kind} {name} is also defined at {other}"));
        }
    }
    p.check(
        docs.iter().any(|d| {
            kind_is(d, "Namespace") && get_str(&d.map, &["metadata", "name"]) == Some(NAMESPACE)
        }),
        || format!("deploy/k8s: no Namespace {NAMESPACE}"),
    );
    p.assert_none("k8s objects");
}

#[test]
fn k8s_runs_three_nats_nodes_two_coordinators_gates_and_three_workers() {
    let docs = k8s_docs();
    let loads = workloads(&docs);
    let mut p = Problems::default();

    // NATS: one StatefulSet of 3 behind a headless Service, with its config mounted.
    let nats: Vec<&Workload> = loads.iter().filter(|w| w.is_nats()).collect();
    p.check(nats.len() == 1, || {
        format!(
            "deploy/k8s: expected one NATS workload, found {:?}",
            nats.iter().map(|w| w.at()).collect::<Vec<_>>()
        )
    });
    for w in &nats {
        p.check(w.kind == "StatefulSet", || {
            format!(
                "{}: NATS must be a StatefulSet (stable names and volumes)",
                w.at()
            )
        });
        p.check(w.replicas == Some(NATS_NODES as u64), || {
            format!(
                "{}: replicas is {:?}, expected {NATS_NODES}",
                w.at(),
                w.replicas
            )
        });
        let svc = get_str(&w.doc.map, &["spec", "serviceName"]).unwrap_or("");
        let headless = docs.iter().any(|d| {
            kind_is(d, "Service")
                && get_str(&d.map, &["metadata", "name"]) == Some(svc)
                && get_str(&d.map, &["spec", "clusterIP"]) == Some("None")
        });
        p.check(headless, || {
            format!(
                "{}: serviceName {svc:?} is not a headless Service (clusterIP: None) in deploy/k8s",
                w.at()
            )
        });
        let claims = seq(&w.doc.map, &["spec", "volumeClaimTemplates"]).len();
        p.check(claims >= 1, || {
            format!(
                "{}: no volumeClaimTemplates: each node needs a volume of its own",
                w.at()
            )
        });
        let config_maps: Vec<String> = seq(w.pod, &["volumes"])
            .into_iter()
            .filter_map(Node::as_mapping)
            .filter_map(|v| get_str(v, &["configMap", "name"]).map(String::from))
            .collect();
        for cm in &config_maps {
            let exists = docs.iter().any(|d| {
                kind_is(d, "ConfigMap") && get_str(&d.map, &["metadata", "name"]) == Some(cm)
            });
            p.check(exists, || {
                format!(
                    "{}: mounts ConfigMap {cm}, which deploy/k8s does not define",
                    w.at()
                )
            });
        }
        p.check(!config_maps.is_empty(), || {
            format!("{}: mounts no ConfigMap with the NATS config", w.at())
        });
    }

    // Coordinators: a Deployment of 2, live on tcp 7233, behind a Service on 7233.
    let coordinators: Vec<&Workload> = loads.iter().filter(|w| w.runs("coordinator")).collect();
    p.check(coordinators.len() == 1, || {
        format!(
            "deploy/k8s: expected one coordinator workload, found {:?}",
            coordinators.iter().map(|w| w.at()).collect::<Vec<_>>()
        )
    });
    for w in &coordinators {
        p.check(
            w.kind == "Deployment" && w.replicas == Some(COORDINATORS as u64),
            || {
                format!(
                    "{}: expected a Deployment with {COORDINATORS} replicas, found {} with {:?}",
                    w.at(),
                    w.kind,
                    w.replicas
                )
            },
        );
        for c in w.containers() {
            if get_str(c, &["image"]) != Some(BATON_IMAGE) {
                continue;
            }
            let port = get_str(c, &["livenessProbe", "tcpSocket", "port"]);
            let named_7233 = port.is_some_and(|port| {
                seq(c, &["ports"])
                    .into_iter()
                    .filter_map(Node::as_mapping)
                    .any(|cp| {
                        get_str(cp, &["name"]) == Some(port)
                            && get_str(cp, &["containerPort"]) == Some("7233")
                    })
            });
            p.check(port == Some("7233") || named_7233, || {
                format!(
                    "{}: the coordinator's livenessProbe must be tcpSocket on 7233, is {port:?}",
                    w.at()
                )
            });
        }
        let served = docs.iter().any(|d| {
            kind_is(d, "Service")
                && get_map(&d.map, &["spec", "selector"]).is_some_and(|sel| {
                    !sel.is_empty()
                        && sel.iter().all(|(k, v)| {
                            v.as_scalar().is_some_and(|v| {
                                w.labels.get(k.as_str()).map(String::as_str) == Some(v.as_str())
                            })
                        })
                })
                && seq(&d.map, &["spec", "ports"])
                    .into_iter()
                    .filter_map(Node::as_mapping)
                    .any(|sp| get_str(sp, &["port"]) == Some("7233"))
        });
        p.check(served, || {
            format!(
                "{}: no Service selects the coordinator pods on port 7233",
                w.at()
            )
        });
    }

    let gates = loads.iter().filter(|w| w.runs("gates")).count();
    p.check(gates >= 1, || "deploy/k8s: no gates workload".to_string());

    // Workers: three workloads, each its own role set.
    let workers: Vec<(String, BatonCmd)> = loads
        .iter()
        .flat_map(|w| {
            w.baton_cmds()
                .into_iter()
                .filter(|c| c.sub == "worker")
                .map(|c| (w.at(), c))
        })
        .collect();
    check_worker_roles(&mut p, "deploy/k8s", &workers);
    // A worker's id comes from its node, so at most one pod of a worker
    // workload may run on a node.
    for w in loads.iter().filter(|w| w.runs("worker")) {
        let spread = seq(
            w.pod,
            &[
                "affinity",
                "podAntiAffinity",
                "requiredDuringSchedulingIgnoredDuringExecution",
            ],
        )
        .into_iter()
        .filter_map(Node::as_mapping)
        .any(|t| get_str(t, &["topologyKey"]) == Some("kubernetes.io/hostname"));
        p.check(spread || w.kind == "DaemonSet", || {
            format!(
                "{}: worker pods need a required podAntiAffinity on kubernetes.io/hostname (their id is per node)",
                w.at()
            )
        });
    }

    // Every Baton service: --replicas 3, all NATS pods in --nats-url.
    let nats_nodes = k8s_nats_nodes(&docs);
    for w in &loads {
        for cmd in w.baton_cmds() {
            check_baton_cmd(&mut p, &w.at(), &cmd, &nats_nodes);
        }
    }
    p.assert_none("k8s topology");
}

#[test]
fn k8s_containers_are_local_never_pulled_limited_and_locked_down() {
    let docs = k8s_docs();
    let loads = workloads(&docs);
    let mut p = Problems::default();
    p.check(!loads.is_empty(), || "deploy/k8s: no workload".to_string());
    for w in &loads {
        let worker = w.runs("worker");
        let pod_non_root = get_str(w.pod, &["securityContext", "runAsNonRoot"]) == Some("true");
        for c in w.containers() {
            let cname = get_str(c, &["name"]).unwrap_or("?");
            let at = format!("{} container {cname}", w.at());
            let image = get_str(c, &["image"]).unwrap_or("");
            p.check(
                image.starts_with("baton/") && image.ends_with(":local"),
                || format!("{at}: image {image:?} is not a local baton/*:local image"),
            );
            let policy = get_str(c, &["imagePullPolicy"]);
            p.check(policy == Some("Never"), || {
                format!("{at}: imagePullPolicy is {policy:?}, must be Never")
            });
            for res in ["cpu", "memory"] {
                p.check(get(c, &["resources", "limits", res]).is_some(), || {
                    format!("{at}: no resources.limits.{res}")
                });
                p.check(get(c, &["resources", "requests", res]).is_some(), || {
                    format!("{at}: no resources.requests.{res}")
                });
            }
            p.check(
                get_str(c, &["securityContext", "readOnlyRootFilesystem"]) == Some("true"),
                || format!("{at}: securityContext.readOnlyRootFilesystem must be true"),
            );
            p.check(
                get_str(c, &["securityContext", "allowPrivilegeEscalation"]) == Some("false"),
                || format!("{at}: securityContext.allowPrivilegeEscalation must be false"),
            );
            let drops = scalars(&seq(c, &["securityContext", "capabilities", "drop"]));
            p.check(drops.iter().any(|d| d == "ALL"), || {
                format!("{at}: securityContext.capabilities.drop must contain ALL, is {drops:?}")
            });
            p.check(
                get(c, &["securityContext", "capabilities", "add"]).is_none(),
                || format!("{at}: adds capabilities"),
            );
            p.check(
                get_str(c, &["securityContext", "privileged"]) != Some("true"),
                || format!("{at}: is privileged"),
            );
            // Workers run as the Docker socket's owner (workers.yaml says why).
            if !worker {
                let non_root = get_str(c, &["securityContext", "runAsNonRoot"])
                    .map_or(pod_non_root, |v| v == "true");
                p.check(non_root, || {
                    format!("{at}: must run with runAsNonRoot: true")
                });
            }
        }
    }
    p.assert_none("k8s containers");
}

// ---------------------------------------------------------------------------
// Across both.

#[test]
fn nats_configs_run_jetstream_with_fsync_always_and_route_to_all_three_nodes() {
    let mut p = Problems::default();
    let mut checked = 0;

    // deploy/nats: the compose cluster, whose nodes are the compose NATS services.
    let compose = compose_docs();
    let compose_nodes = compose_nats(&compose_services(&compose));
    let confs = files_in("deploy/nats", &[".conf"]);
    p.check(!confs.is_empty(), || "deploy/nats: no *.conf".to_string());
    for path in confs {
        let text = std::fs::read_to_string(&path).expect("read NATS config");
        check_nats_conf(&mut p, &rel(&path), &text, &compose_nodes);
        checked += 1;
    }

    // deploy/k8s: every *.conf in a ConfigMap; the nodes are the StatefulSet's pods.
    let docs = k8s_docs();
    let k8s_nodes = k8s_nats_nodes(&docs);
    for doc in docs.iter().filter(|d| kind_is(d, "ConfigMap")) {
        let Some(data) = get_map(&doc.map, &["data"]) else {
            continue;
        };
        for (key, value) in data.iter() {
            // The users (a copy of deploy/nats/auth/baton-auth.conf) are not a server config.
            if !key.as_str().ends_with(".conf") || key.as_str() == AUTH_CONF_KEY {
                continue;
            }
            let at = format!("{} data.{}", doc.at(value), key.as_str());
            match value.as_scalar() {
                Some(text) => check_nats_conf(&mut p, &at, text.as_str(), &k8s_nodes),
                None => p.add(format!("{at}: is not a string")),
            }
            checked += 1;
        }
    }
    p.check(checked >= 2, || {
        format!(
            "expected NATS configs in deploy/nats and in a deploy/k8s ConfigMap, found {checked}"
        )
    });
    p.check(compose_nodes.len() == NATS_NODES, || {
        format!("deploy/compose: NATS nodes {compose_nodes:?}, expected {NATS_NODES}")
    });
    p.check(k8s_nodes.len() == NATS_NODES, || {
        format!("deploy/k8s: NATS pods {k8s_nodes:?}, expected {NATS_NODES}")
    });
    p.assert_none("NATS configs");
}

#[test]
fn only_workers_mount_the_docker_socket() {
    let mut p = Problems::default();

    let compose = compose_docs();
    for s in compose_services(&compose) {
        let worker = s.cmd().is_some_and(|c| c.sub == "worker");
        let sock = s.volumes().iter().any(|v| v.contains("docker.sock"));
        if worker {
            p.check(sock, || {
                format!(
                    "{}: a worker without the Docker socket cannot start tasks",
                    s.at()
                )
            });
        } else {
            p.check(!sock, || {
                format!(
                    "{}: mounts the Docker socket (root on the host) but is not a worker",
                    s.at()
                )
            });
        }
        p.check(get_str(s.map, &["privileged"]) != Some("true"), || {
            format!("{}: is privileged", s.at())
        });
    }

    let docs = k8s_docs();
    for w in workloads(&docs) {
        let worker = w.runs("worker");
        let host_paths = w.host_paths();
        let sock_volumes: Vec<&String> = host_paths
            .iter()
            .filter(|(_, path)| path.contains("docker.sock"))
            .map(|(name, _)| name)
            .collect();
        if worker {
            let mounted = w.containers().iter().any(|c| {
                get_str(c, &["image"]) == Some(BATON_IMAGE)
                    && seq(c, &["volumeMounts"])
                        .into_iter()
                        .filter_map(Node::as_mapping)
                        .any(|m| {
                            get_str(m, &["name"])
                                .is_some_and(|n| sock_volumes.iter().any(|s| *s == n))
                        })
            });
            p.check(mounted, || {
                format!(
                    "{}: a worker must mount the host's docker.sock (hostPath) to start tasks",
                    w.at()
                )
            });
        }
        for (name, path) in &host_paths {
            p.check(worker && path.contains("docker.sock"), || {
                format!(
                    "{}: hostPath volume {name} ({path}) in a pod that is not a worker, or not the Docker socket",
                    w.at()
                )
            });
        }
    }
    p.assert_none("Docker socket");
}

// ---------------------------------------------------------------------------
// The checker's own checks: a wrong file must be reported.

const GOOD_CONF: &str = r#"
server_name: $NAME   # per node
jetstream {
  store_dir: /data
  sync_interval: always
}
cluster {
  name: baton
  listen: 0.0.0.0:6222
  routes: [
    nats://a:6222
    nats://user:pw@b:6222, "nats://c:6222"
  ]
}
"#;

fn nodes(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn conf_problems(text: &str) -> Vec<String> {
    let mut p = Problems::default();
    check_nats_conf(&mut p, "test.conf", text, &nodes(&["a", "b", "c"]));
    p.0
}

#[test]
fn the_nats_config_check_reports_what_is_wrong() {
    assert_eq!(conf_problems(GOOD_CONF), Vec::<String>::new());
    let lazy = GOOD_CONF.replace("sync_interval: always", "sync_interval: 2m");
    assert!(conf_problems(&lazy)[0].contains("sync_interval"));
    let commented = GOOD_CONF.replace("sync_interval: always", "# sync_interval: always");
    assert!(conf_problems(&commented)[0].contains("sync_interval"));
    let no_js = GOOD_CONF.replace("jetstream {", "jetstream_off {");
    assert!(conf_problems(&no_js)[0].contains("no `jetstream` block"));
    let flat_js = "jetstream: enabled\n".to_string() + &GOOD_CONF.replace("jetstream {", "x {");
    assert!(conf_problems(&flat_js)[0].contains("expected a block"));
    let two_routes = GOOD_CONF.replace("nats://a:6222", "");
    assert!(conf_problems(&two_routes)[0].contains("routes"));
    assert!(!conf_problems("jetstream { sync_interval: always ").is_empty());
}

#[test]
fn multi_document_yaml_is_split_with_file_lines_kept() {
    let docs = split_documents("# head\n---\na: 1\n---\n# only a comment\n---\nb: 2\n...\n");
    assert_eq!(docs.len(), 2);
    let b = marked_yaml::parse_yaml(0, &docs[1]).unwrap();
    let line = b
        .as_mapping()
        .unwrap()
        .get_node("b")
        .unwrap()
        .span()
        .start()
        .unwrap()
        .line();
    assert_eq!(line, 7);
}

#[test]
fn baton_commands_are_parsed_with_their_flags() {
    let argv: Vec<String> =
        "/usr/local/bin/baton worker --roles a,b --replicas=3 --nats-url nats://x:4222,nats://u@y"
            .split_whitespace()
            .map(String::from)
            .collect();
    let cmd = BatonCmd::parse(&argv).unwrap();
    assert_eq!(cmd.sub, "worker");
    assert_eq!(cmd.roles(), nodes(&["a", "b"]));
    assert_eq!(cmd.flags["replicas"], "3");
    assert_eq!(cmd.nats_hosts(), nodes(&["x", "y"]));
    let mut p = Problems::default();
    check_baton_cmd(&mut p, "t", &cmd, &nodes(&["x", "y", "z"]));
    assert_eq!(p.0.len(), 1, "{:?}", p.0);
    assert!(p.0[0].contains("--nats-url"));
}

// ---------------------------------------------------------------------------
// NATS users and TLS: the trust boundary is on by default.

/// `(user, variable)` for every user of a NATS authorization config whose
/// password comes from a variable (`password: $VAR`), in file order.
fn auth_users(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut user: Option<String> = None;
    for line in text.lines() {
        let l = line.trim();
        if let Some(u) = l.strip_prefix("user:") {
            user = Some(u.trim().trim_matches('"').to_string());
        } else if let Some(v) = l.strip_prefix("password:") {
            if let (Some(u), Some(var)) = (user.take(), v.trim().strip_prefix('$')) {
                out.push((u, var.to_string()));
            }
        }
    }
    out
}

fn auth_conf_text() -> String {
    std::fs::read_to_string(root().join(AUTH_CONF))
        .unwrap_or_else(|e| panic!("cannot read {AUTH_CONF}: {e}"))
}

/// The variable holding `user`'s password in baton-auth.conf.
fn user_var(users: &[(String, String)], user: &str) -> Option<String> {
    users
        .iter()
        .find(|(u, _)| u == user)
        .map(|(_, v)| v.clone())
}

/// Whether `user` is the NATS user a `baton <sub>` must connect as.
fn is_own_user(sub: &str, user: &str) -> bool {
    match sub {
        "coordinator" => user == "coordinator",
        "gates" => user == "gates",
        // `worker`, or a role-limited pool like `worker-build`.
        "worker" => user == "worker" || user.starts_with("worker-"),
        _ => false,
    }
}

/// A file path of a NATS `tls` block.
fn conf_paths(block: &Conf, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .filter_map(|k| block.get(k).and_then(Conf::as_str).map(String::from))
        .collect()
}

/// A NATS server config must load the users (include the auth file), require
/// TLS of clients and authenticate routes by mutual TLS. Returns the TLS
/// files it names (certificate, key, CA).
fn check_nats_security(p: &mut Problems, at: &str, text: &str) -> Vec<String> {
    let conf = match parse_conf(text) {
        Ok(c) => c,
        Err(e) => {
            p.add(format!("{at}: cannot parse the NATS configuration: {e}"));
            return Vec::new();
        }
    };
    let include = conf.get("include").and_then(Conf::as_str);
    p.check(
        include.is_some_and(|i| i.trim_start_matches("./") == "auth/baton-auth.conf"),
        || format!("{at}: must `include ./auth/baton-auth.conf` (the users), includes {include:?}"),
    );
    for key in ["no_auth_user", "authorization", "accounts"] {
        p.check(conf.get(key).is_none(), || {
            format!("{at}: sets `{key}` itself; the users come from baton-auth.conf only")
        });
    }
    let mut files = Vec::new();
    match conf.get("tls") {
        Some(tls @ Conf::Map(_)) => {
            let f = conf_paths(tls, &["cert_file", "key_file"]);
            p.check(f.len() == 2, || {
                format!("{at}: the client `tls` block needs cert_file and key_file, has {f:?}")
            });
            files.extend(f);
        }
        _ => p.add(format!(
            "{at}: no `tls` block: clients (and their passwords) would travel in clear"
        )),
    }
    match conf.get("cluster").and_then(|c| c.get("tls")) {
        Some(tls @ Conf::Map(_)) => {
            let f = conf_paths(tls, &["cert_file", "key_file", "ca_file"]);
            p.check(f.len() == 3, || {
                format!("{at}: cluster `tls` needs cert_file, key_file and ca_file (routes are mutual TLS), has {f:?}")
            });
            files.extend(f);
        }
        _ => p.add(format!(
            "{at}: no `cluster {{ tls {{ ... }} }}`: anything that reaches the route port could join as a server and bypass every permission"
        )),
    }
    files.sort();
    files.dedup();
    files
}

/// `NAME` of a value that is exactly `${NAME}`, `${NAME:?msg}` or
/// `${NAME?msg}`, optionally inside double quotes; `None` for anything else
/// (a literal, or a `${NAME:-default}` whose default would be a literal).
fn interpolated_var(value: &str) -> Option<String> {
    let v = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    let inner = v.strip_prefix("${")?.strip_suffix('}')?;
    let name_end = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let (name, rest) = inner.split_at(name_end);
    let ok =
        !name.is_empty() && (rest.is_empty() || rest.starts_with(":?") || rest.starts_with('?'));
    (ok && !rest.contains('$')).then(|| name.to_string())
}

/// Compose's `${...}` interpolation of `value` from `vars`.
fn interpolate(value: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(a) = after.strip_prefix('{') {
            let end = a
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {value:?}"))?;
            let inner = &a[..end];
            let name_end = inner
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inner.len());
            let (name, op) = inner.split_at(name_end);
            let set = vars.get(name).filter(|v| !v.is_empty());
            match (set, op) {
                (Some(v), _) => out.push_str(v),
                (None, op) if op.starts_with(":-") => out.push_str(&op[2..]),
                (None, op) if op.starts_with(":?") || op.starts_with('?') => {
                    return Err(format!(
                        "{name} is not set: {}",
                        op.trim_start_matches([':', '?'])
                    ))
                }
                (None, _) => {}
            }
            rest = &a[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A compose service's environment (mapping or `KEY=value` list).
fn service_env(s: &Service<'_>) -> BTreeMap<String, String> {
    match s.map.get_node("environment") {
        Some(Node::Mapping(m)) => m
            .iter()
            .filter_map(|(k, v)| {
                Some((k.as_str().to_string(), v.as_scalar()?.as_str().to_string()))
            })
            .collect(),
        Some(Node::Sequence(items)) => items
            .iter()
            .filter_map(|n| n.as_scalar())
            .filter_map(|s| {
                let (k, v) = s.as_str().split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// A compose volume: source, target, read-only.
struct Mount {
    source: String,
    target: String,
    ro: bool,
}

fn mounts(s: &Service<'_>) -> Vec<Mount> {
    s.volumes()
        .iter()
        .map(|v| {
            let (source, target) = split_volume(v);
            Mount {
                source,
                target,
                ro: v.ends_with(":ro"),
            }
        })
        .collect()
}

/// The password, as the `.env` variable or file it comes from, of a
/// compose Baton service: `BATON_NATS_PASSWORD` interpolated from one
/// variable, or `--nats-password-file` mounted read-only.
enum PasswordSource {
    Var(String),
    File(String),
}

fn compose_password(p: &mut Problems, s: &Service<'_>, cmd: &BatonCmd) -> Option<PasswordSource> {
    let env = service_env(s);
    let from_env = env.get("BATON_NATS_PASSWORD");
    let from_file = cmd.flags.get("nats-password-file");
    match (from_env, from_file) {
        (Some(v), None) => match interpolated_var(v) {
            Some(var) => Some(PasswordSource::Var(var)),
            None => {
                p.add(format!(
                    "{}: BATON_NATS_PASSWORD must be `${{VAR:?...}}` from .env, not a literal or a default",
                    s.at()
                ));
                None
            }
        },
        (None, Some(path)) => match mounts(s).into_iter().find(|m| &m.target == path) {
            Some(m) if m.ro && m.source.starts_with("./.secrets/") => {
                Some(PasswordSource::File(m.source))
            }
            other => {
                p.add(format!(
                        "{}: --nats-password-file {path} must be mounted read-only from ./.secrets/, is {:?}",
                        s.at(),
                        other.map(|m| (m.source, m.ro))
                    ));
                None
            }
        },
        (Some(_), Some(_)) => {
            p.add(format!(
                "{}: both BATON_NATS_PASSWORD and --nats-password-file (Baton refuses that)",
                s.at()
            ));
            None
        }
        (None, None) => {
            p.add(format!(
                "{}: `baton {}` has no NATS password (BATON_NATS_PASSWORD or --nats-password-file)",
                s.at(),
                cmd.sub
            ));
            None
        }
    }
}

/// Checks shared by compose and Kubernetes on a Baton service's command:
/// its own user, and every URL `tls://` with a CA.
fn check_baton_nats_auth(p: &mut Problems, at: &str, cmd: &BatonCmd) {
    let user = cmd.flags.get("nats-user").map(String::as_str).unwrap_or("");
    p.check(is_own_user(&cmd.sub, user), || {
        format!(
            "{at}: `baton {}` must connect as its own NATS user (--nats-user), has {user:?}",
            cmd.sub
        )
    });
    let urls: Vec<&str> = cmd
        .flags
        .get("nats-url")
        .map(|u| u.split(',').map(str::trim).collect())
        .unwrap_or_default();
    p.check(
        !urls.is_empty() && urls.iter().all(|u| u.starts_with("tls://")),
        || format!("{at}: every --nats-url must be tls://, is {urls:?}"),
    );
    p.check(
        cmd.flags.get("nats-tls-ca").is_some_and(|c| !c.is_empty()),
        || format!("{at}: no --nats-tls-ca: the NATS server's certificate would not be checked"),
    );
    for flag in ["nats-nkey-file", "nats-creds"] {
        p.check(!cmd.flags.contains_key(flag), || {
            format!(
                "{at}: --{flag}: the deployments use the users and passwords of baton-auth.conf"
            )
        });
    }
}

#[test]
fn compose_nats_loads_the_users_and_tls_and_every_baton_service_connects_as_its_own_user() {
    let docs = compose_docs();
    let services = compose_services(&docs);
    let users = auth_users(&auth_conf_text());
    assert!(
        !users.is_empty(),
        "{AUTH_CONF}: no user with `password: $VAR`"
    );
    let mut p = Problems::default();
    let auth_path = root()
        .join(AUTH_CONF)
        .canonicalize()
        .expect("auth conf path");

    let mut nats = 0;
    for s in services.iter().filter(|s| s.image() == Some(NATS_IMAGE)) {
        nats += 1;
        let ms = mounts(s);
        let Some(conf) = ms
            .iter()
            .find(|m| m.target.ends_with(".conf") && !m.target.contains("/auth/"))
        else {
            p.add(format!("{}: mounts no NATS config", s.at()));
            continue;
        };
        let conf_file = root().join("deploy/compose").join(&conf.source);
        let text = std::fs::read_to_string(&conf_file).unwrap_or_default();
        let tls_files =
            check_nats_security(&mut p, &format!("{} ({})", s.at(), conf.source), &text);
        // The include is relative to the config's folder in the container.
        let conf_dir = conf.target.rsplit_once('/').map_or("", |(d, _)| d);
        let auth_target = format!("{conf_dir}/auth/baton-auth.conf");
        match ms.iter().find(|m| m.target == auth_target) {
            Some(m) => {
                let same = root()
                    .join("deploy/compose")
                    .join(&m.source)
                    .canonicalize()
                    .is_ok_and(|p| p == auth_path);
                p.check(same && m.ro, || {
                    format!(
                        "{}: {auth_target} must be {AUTH_CONF}, read-only; is {} (ro: {})",
                        s.at(),
                        m.source,
                        m.ro
                    )
                });
            }
            None => p.add(format!(
                "{}: the config includes ./auth/baton-auth.conf but nothing is mounted at {auth_target}",
                s.at()
            )),
        }
        for f in &tls_files {
            match ms.iter().find(|m| &m.target == f) {
                Some(m) => p.check(m.ro && m.source.starts_with("./.secrets/"), || {
                    format!(
                        "{}: {f} must be mounted read-only from the git-ignored ./.secrets/, is {} (ro: {})",
                        s.at(),
                        m.source,
                        m.ro
                    )
                }),
                None => p.add(format!("{}: the config reads {f}, which is not mounted", s.at())),
            }
        }
        // Every password variable of baton-auth.conf: set, from .env, quoted.
        let env = service_env(s);
        for (user, var) in &users {
            match env.get(var) {
                Some(v) => p.check(
                    v.starts_with('"') && v.ends_with('"') && interpolated_var(v).is_some(),
                    || {
                        format!(
                            "{}: {var} (user {user}) must be `\"${{VAR:?...}}\"`: from .env, and quoted, since nats-server reads the value as config text (a bare bcrypt hash `$2y$...` is taken for a variable); is {v:?}",
                            s.at()
                        )
                    },
                ),
                None => p.add(format!(
                    "{}: {var} (the password of user {user}) is not set; nats-server would not start",
                    s.at()
                )),
            }
        }
    }
    p.check(nats == NATS_NODES, || {
        format!("deploy/compose: {nats} NATS services")
    });

    let mut baton = 0;
    for s in &services {
        let Some(cmd) = s.cmd() else { continue };
        if !matches!(cmd.sub.as_str(), "coordinator" | "gates" | "worker") {
            continue;
        }
        baton += 1;
        check_baton_nats_auth(&mut p, &s.at(), &cmd);
        let ms = mounts(s);
        if let Some(ca) = cmd.flags.get("nats-tls-ca") {
            match ms.iter().find(|m| &m.target == ca) {
                Some(m) => p.check(m.ro && m.source.ends_with("ca.crt"), || {
                    format!(
                        "{}: --nats-tls-ca {ca} must be the CA, read-only, is {} (ro: {})",
                        s.at(),
                        m.source,
                        m.ro
                    )
                }),
                None => p.add(format!("{}: --nats-tls-ca {ca} is not mounted", s.at())),
            }
        }
        for m in &ms {
            p.check(!m.source.ends_with(".key") && !m.source.ends_with("nats.env"), || {
                format!("{}: mounts {}: only the NATS nodes hold keys, and a service only its own password", s.at(), m.source)
            });
        }
        let user = cmd.flags.get("nats-user").cloned().unwrap_or_default();
        if let Some(PasswordSource::Var(var)) = compose_password(&mut p, s, &cmd) {
            let want = user_var(&users, &user);
            p.check(want.as_deref() == Some(var.as_str()), || {
                format!(
                    "{}: BATON_NATS_PASSWORD comes from ${var}, but user {user}'s password is ${} in {AUTH_CONF}",
                    s.at(),
                    want.unwrap_or_default()
                )
            });
        }
    }
    p.check(baton > COORDINATORS + WORKERS, || {
        format!("deploy/compose: only {baton} Baton services")
    });

    // Gates and workers start after the coordinators: only they may create streams.
    for s in &services {
        let Some(cmd) = s.cmd() else { continue };
        if matches!(cmd.sub.as_str(), "gates" | "worker") {
            let deps = scalars(&seq(s.map, &["depends_on"]));
            let coords: Vec<&Service> = services
                .iter()
                .filter(|c| c.cmd().is_some_and(|c| c.sub == "coordinator"))
                .collect();
            p.check(coords.iter().all(|c| deps.contains(&c.name)), || {
                format!("{}: must depend on every coordinator (only a coordinator creates streams), depends on {deps:?}", s.at())
            });
        }
    }
    p.assert_none("compose NATS users and TLS");
}

// ---------------------------------------------------------------------------
// Kubernetes: which Secret a container reads at a path.

/// The `(Secret, key)` a container reads at `path`, through its volumeMounts
/// and the pod's `secret` and `projected` volumes.
fn secret_at(
    pod: &MarkedMappingNode,
    container: &MarkedMappingNode,
    path: &str,
) -> Option<(String, String)> {
    for m in seq(container, &["volumeMounts"])
        .into_iter()
        .filter_map(Node::as_mapping)
    {
        let mount_path = get_str(m, &["mountPath"])?;
        let rel = match get_str(m, &["subPath"]) {
            Some(sub) if mount_path == path => sub.to_string(),
            Some(_) => continue,
            None => match path
                .strip_prefix(mount_path)
                .and_then(|r| r.strip_prefix('/'))
            {
                Some(r) => r.to_string(),
                None => continue,
            },
        };
        let name = get_str(m, &["name"])?;
        let volume = seq(pod, &["volumes"])
            .into_iter()
            .filter_map(Node::as_mapping)
            .find(|v| get_str(v, &["name"]) == Some(name))?;
        let in_secret = |secret: &MarkedMappingNode, name_key: &str| -> Option<(String, String)> {
            let sname = get_str(secret, &[name_key])?.to_string();
            let items = seq(secret, &["items"]);
            if items.is_empty() {
                return Some((sname, rel.clone()));
            }
            items
                .into_iter()
                .filter_map(Node::as_mapping)
                .find(|i| get_str(i, &["path"]) == Some(rel.as_str()))
                .and_then(|i| Some((sname.clone(), get_str(i, &["key"])?.to_string())))
        };
        if let Some(secret) = get_map(volume, &["secret"]) {
            return in_secret(secret, "secretName");
        }
        for source in seq(volume, &["projected", "sources"])
            .into_iter()
            .filter_map(Node::as_mapping)
        {
            if let Some(found) = get_map(source, &["secret"]).and_then(|s| in_secret(s, "name")) {
                return Some(found);
            }
        }
        return None;
    }
    None
}

/// Every Secret the manifests read: `(name, Some(key))` for a key named
/// (volume items, secretKeyRef), `(name, None)` for a whole Secret (envFrom,
/// a secret volume without items).
fn k8s_secret_refs(docs: &[Doc]) -> BTreeSet<(String, Option<String>)> {
    let mut out = BTreeSet::new();
    for w in workloads(docs) {
        for v in seq(w.pod, &["volumes"])
            .into_iter()
            .filter_map(Node::as_mapping)
        {
            let mut secrets: Vec<(&MarkedMappingNode, &str)> = Vec::new();
            if let Some(s) = get_map(v, &["secret"]) {
                secrets.push((s, "secretName"));
            }
            for source in seq(v, &["projected", "sources"])
                .into_iter()
                .filter_map(Node::as_mapping)
            {
                if let Some(s) = get_map(source, &["secret"]) {
                    secrets.push((s, "name"));
                }
            }
            for (s, key) in secrets {
                let Some(name) = get_str(s, &[key]) else {
                    continue;
                };
                let items: Vec<String> = seq(s, &["items"])
                    .into_iter()
                    .filter_map(Node::as_mapping)
                    .filter_map(|i| get_str(i, &["key"]).map(String::from))
                    .collect();
                if items.is_empty() {
                    out.insert((name.to_string(), None));
                }
                for i in items {
                    out.insert((name.to_string(), Some(i)));
                }
            }
        }
        for c in w.containers() {
            for e in seq(c, &["envFrom"])
                .into_iter()
                .filter_map(Node::as_mapping)
            {
                if let Some(name) = get_str(e, &["secretRef", "name"]) {
                    out.insert((name.to_string(), None));
                }
            }
            for e in seq(c, &["env"]).into_iter().filter_map(Node::as_mapping) {
                if let (Some(name), Some(key)) = (
                    get_str(e, &["valueFrom", "secretKeyRef", "name"]),
                    get_str(e, &["valueFrom", "secretKeyRef", "key"]),
                ) {
                    out.insert((name.to_string(), Some(key.to_string())));
                }
            }
        }
    }
    out
}

/// The `nats-config` ConfigMap's data: (key → text).
fn k8s_nats_config(docs: &[Doc]) -> BTreeMap<String, String> {
    docs.iter()
        .filter(|d| kind_is(d, "ConfigMap"))
        .filter_map(|d| get_map(&d.map, &["data"]))
        .filter(|data| data.get_node("nats.conf").is_some())
        .flat_map(|data| {
            data.iter()
                .filter_map(|(k, v)| {
                    Some((k.as_str().to_string(), v.as_scalar()?.as_str().to_string()))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn k8s_nats_requires_tls_and_the_users_and_every_baton_service_connects_with_tls_and_its_own_user()
{
    let docs = k8s_docs();
    let loads = workloads(&docs);
    let users = auth_users(&auth_conf_text());
    let mut p = Problems::default();

    let data = k8s_nats_config(&docs);
    let conf = data.get("nats.conf").cloned().unwrap_or_default();
    p.check(!conf.is_empty(), || {
        "deploy/k8s: no ConfigMap with nats.conf".to_string()
    });
    let tls_files = check_nats_security(&mut p, "deploy/k8s/nats.yaml data.nats.conf", &conf);
    p.check(data.get(AUTH_CONF_KEY) == Some(&auth_conf_text()), || {
        format!("deploy/k8s/nats.yaml: data.{AUTH_CONF_KEY} must be a byte-for-byte copy of {AUTH_CONF}: run deploy/k8s/sync-auth-config.sh")
    });

    let mut tls_secret = None;
    for w in loads.iter().filter(|w| w.is_nats()) {
        for c in w
            .containers()
            .into_iter()
            .filter(|c| get_str(c, &["image"]) == Some(NATS_IMAGE))
        {
            let argv = words(c.get_node("args"));
            let conf_path = argv
                .iter()
                .position(|a| a == "--config" || a == "-c")
                .and_then(|i| argv.get(i + 1))
                .cloned()
                .unwrap_or_default();
            // The ConfigMap's auth key must land at <config dir>/auth/baton-auth.conf.
            let conf_dir = conf_path
                .rsplit_once('/')
                .map_or("", |(d, _)| d)
                .to_string();
            let auth_mounted = seq(c, &["volumeMounts"])
                .into_iter()
                .filter_map(Node::as_mapping)
                .any(|m| {
                    let Some(mp) = get_str(m, &["mountPath"]) else {
                        return false;
                    };
                    let Some(vol) = seq(w.pod, &["volumes"])
                        .into_iter()
                        .filter_map(Node::as_mapping)
                        .find(|v| get_str(v, &["name"]) == get_str(m, &["name"]))
                    else {
                        return false;
                    };
                    seq(vol, &["configMap", "items"])
                        .into_iter()
                        .filter_map(Node::as_mapping)
                        .any(|i| {
                            get_str(i, &["key"]) == Some(AUTH_CONF_KEY)
                                && get_str(i, &["path"]).is_some_and(|pth| {
                                    format!("{mp}/{pth}")
                                        == format!("{conf_dir}/auth/baton-auth.conf")
                                })
                        })
                });
            p.check(auth_mounted, || {
                format!("{}: {AUTH_CONF_KEY} of the ConfigMap is not mounted at {conf_dir}/auth/baton-auth.conf, where the config includes it", w.at())
            });
            for f in &tls_files {
                match secret_at(w.pod, c, f) {
                    Some((name, _)) => {
                        tls_secret = Some(name);
                    }
                    None => p.add(format!(
                        "{}: the config reads {f}, which no Secret provides",
                        w.at()
                    )),
                }
            }
            let env_from: Vec<String> = seq(c, &["envFrom"])
                .into_iter()
                .filter_map(Node::as_mapping)
                .filter_map(|e| get_str(e, &["secretRef", "name"]).map(String::from))
                .collect();
            p.check(!env_from.is_empty(), || {
                format!("{}: no envFrom secretRef: the users' password variables ({} of them) would be unset", w.at(), users.len())
            });
            for e in seq(c, &["env"]).into_iter().filter_map(Node::as_mapping) {
                let name = get_str(e, &["name"]).unwrap_or("");
                p.check(
                    !(name.ends_with("_PASSWORD") && get(e, &["value"]).is_some()),
                    || {
                        format!(
                            "{}: env {name} has a literal value; passwords come from Secrets",
                            w.at()
                        )
                    },
                );
            }
        }
    }

    let mut password_secrets: BTreeMap<String, String> = BTreeMap::new();
    let mut baton = 0;
    for w in &loads {
        for (c, cmd) in w.baton_services() {
            baton += 1;
            let at = w.at();
            check_baton_nats_auth(&mut p, &at, &cmd);
            if let Some(ca) = cmd.flags.get("nats-tls-ca") {
                match secret_at(w.pod, c, ca) {
                    Some((name, key)) => p.check(Some(&name) != tls_secret.as_ref() && key == "ca.crt", || {
                        format!("{at}: --nats-tls-ca {ca} must be ca.crt of a Secret without the server's key, is {name}/{key}")
                    }),
                    None => p.add(format!("{at}: --nats-tls-ca {ca} is not mounted from a Secret")),
                }
            }
            let user = cmd.flags.get("nats-user").cloned().unwrap_or_default();
            let env: Vec<&MarkedMappingNode> = seq(c, &["env"])
                .into_iter()
                .filter_map(Node::as_mapping)
                .collect();
            let env_pw = env
                .iter()
                .find(|e| get_str(e, &["name"]) == Some("BATON_NATS_PASSWORD"));
            let source = match (cmd.flags.get("nats-password-file"), env_pw) {
                (Some(f), None) => match secret_at(w.pod, c, f) {
                    Some(s) => Some(s),
                    None => {
                        p.add(format!(
                            "{at}: --nats-password-file {f} is not mounted from a Secret"
                        ));
                        None
                    }
                },
                (None, Some(e)) => {
                    let r = (
                        get_str(e, &["valueFrom", "secretKeyRef", "name"]),
                        get_str(e, &["valueFrom", "secretKeyRef", "key"]),
                    );
                    match r {
                        (Some(n), Some(k)) => Some((n.to_string(), k.to_string())),
                        _ => {
                            p.add(format!("{at}: BATON_NATS_PASSWORD must come from a secretKeyRef, never a literal"));
                            None
                        }
                    }
                }
                (Some(_), Some(_)) => {
                    p.add(format!(
                        "{at}: both --nats-password-file and BATON_NATS_PASSWORD"
                    ));
                    None
                }
                (None, None) => {
                    p.add(format!("{at}: `baton {}` has no NATS password: it would connect without credentials", cmd.sub));
                    None
                }
            };
            if let Some((secret, key)) = source {
                let id = format!("{secret}/{key}");
                if let Some(other) = password_secrets.insert(id.clone(), user.clone()) {
                    p.check(other == user, || {
                        format!("{at}: user {user} reads its password from {id}, which is user {other}'s too")
                    });
                }
                p.check(Some(&secret) != tls_secret.as_ref(), || {
                    format!("{at}: reads its password from {secret}, the Secret with the NATS server's key")
                });
            }
            for (name, key) in k8s_secret_refs(std::slice::from_ref(w.doc)) {
                p.check(Some(&name) != tls_secret.as_ref(), || {
                    format!("{at}: mounts the Secret {name} ({key:?}), which holds the NATS server's key")
                });
            }
        }
    }
    p.check(baton >= 3, || {
        format!("deploy/k8s: only {baton} Baton containers")
    });
    for d in &docs {
        p.check(!kind_is(d, "Secret"), || {
            format!("{}: a Secret in deploy/k8s; secrets are made by deploy/k8s/secrets.sh, never committed", d.at_map(&d.map))
        });
    }
    p.assert_none("k8s NATS users and TLS");
}

// ---------------------------------------------------------------------------
// The scripts that make the secrets, run for real (no Docker, no cluster).

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every file below `dir`, recursively, sorted.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = e.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let name = e.file_name();
        let name_s = name.to_string_lossy();
        // What the scripts generate is never copied from the working tree.
        if name_s == ".secrets" || name_s.starts_with(".env") {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        if src.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap_or_else(|err| panic!("copy {}: {err}", src.display()));
        }
    }
}

fn require_tool(name: &str) {
    assert!(
        has_tool(name),
        "{name} is not installed; the deploy scripts need it (apt-get install {name})"
    );
}

/// A tool the Kubernetes checks need: `scripts/setup.sh` installs it
/// (into `.baton/bin` when it is not on PATH). Missing is a failure, never
/// a skip: an unchecked manifest is how a broken deploy lands.
fn required_tool(name: &str) -> PathBuf {
    let local = root().join(".baton/bin").join(name);
    if local.exists() {
        return local;
    }
    assert!(
        has_tool(name),
        "{name} is not installed: run scripts/setup.sh (it installs it), or put it on PATH"
    );
    PathBuf::from(name)
}

/// `kubernetes-validate --strict` on `file`; a refusal is a problem that
/// quotes what the validator said.
fn validate_strict(p: &mut Problems, file: &Path, what: &str) {
    let out = Command::new(required_tool("kubernetes-validate"))
        .arg("--strict")
        .arg(file)
        .output()
        .expect("run kubernetes-validate");
    p.check(out.status.success(), || {
        format!(
            "kubernetes-validate --strict refused {what}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
}

fn has_tool(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run_script(what: &str, cmd: &mut Command) {
    // Settings that would change what the scripts make.
    for var in [
        "BATON_NATS_HOSTS",
        "BATON_NATS_AUTH_CONF",
        "BATON_NATS_REPLICAS",
        "BATON_K8S_NAMESPACE",
        "BATON_K8S_CLUSTER_DOMAIN",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether git ignores `path` (relative to the workspace root).
fn git_ignored(path: &str) -> bool {
    Command::new("git")
        .args(["check-ignore", "-q", "--no-index", path])
        .current_dir(root())
        .status()
        .unwrap_or_else(|e| panic!("cannot run git: {e}"))
        .success()
}

/// `NAME=value` / `NAME='value'` lines of an env file.
fn read_env_file(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// A copy of deploy/compose and deploy/nats in a temporary folder where
/// `up.sh --secrets-only` has run: what up.sh makes, without Docker.
struct ComposeSecrets {
    _tmp: tempfile::TempDir,
    /// `<tmp>/deploy/compose`.
    compose: PathBuf,
}

impl ComposeSecrets {
    fn make() -> Self {
        require_tool("openssl");
        let tmp = tempfile::tempdir().expect("tempdir");
        copy_tree(
            &root().join("deploy/compose"),
            &tmp.path().join("deploy/compose"),
        );
        copy_tree(&root().join("deploy/nats"), &tmp.path().join("deploy/nats"));
        let compose = tmp.path().join("deploy/compose");
        let s = ComposeSecrets { _tmp: tmp, compose };
        s.run();
        s
    }

    fn run(&self) {
        run_script(
            "deploy/compose/up.sh --secrets-only",
            Command::new("sh")
                .arg(self.compose.join("up.sh"))
                .arg("--secrets-only")
                .env("DOCKER_SOCKET", "/nonexistent/docker.sock"),
        );
    }

    fn env(&self) -> BTreeMap<String, String> {
        read_env_file(&self.compose.join(".env"))
    }
}

#[test]
fn compose_secrets_are_made_once_private_and_git_ignored() {
    let gen = ComposeSecrets::make();
    let mut p = Problems::default();
    let env = gen.env();
    let nats_env = read_env_file(&gen.compose.join(".secrets/nats.env"));
    let users = auth_users(&auth_conf_text());

    // One password per user, random, and the pair for nats-server.
    let mut seen = BTreeSet::new();
    for (user, var) in &users {
        let pw = nats_env.get(var).cloned().unwrap_or_default();
        p.check(pw.len() >= 32 && seen.insert(pw.clone()), || {
            format!(
                "nats.env: {var} (user {user}) must be a password of its own, of 32+ characters"
            )
        });
        let server = nats_env
            .get(&format!("{var}_SERVER"))
            .cloned()
            .unwrap_or_default();
        p.check(server == pw || server.starts_with("$2"), || {
            format!("nats.env: {var}_SERVER must be the password or its bcrypt hash")
        });
        p.check(
            env.get(var) == Some(&pw) && env.get(&format!("{var}_SERVER")) == Some(&server),
            || format!(".env: {var} and {var}_SERVER must be those of .secrets/nats.env"),
        );
    }

    // Every file that holds a secret is private, and everything is git-ignored.
    let secret_values: Vec<String> = nats_env.values().cloned().collect();
    let mut files = walk(&gen.compose.join(".secrets"));
    files.push(gen.compose.join(".env"));
    for f in &files {
        let rel_path = f
            .strip_prefix(gen.compose.parent().unwrap().parent().unwrap())
            .unwrap();
        let rel_s = rel_path.display().to_string();
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let secret = text.contains("PRIVATE KEY")
            || text.starts_with("baton_")
            || secret_values.iter().any(|v| text.contains(v.as_str()));
        if secret {
            p.check(mode(f) & 0o077 == 0, || {
                format!(
                    "{rel_s}: holds a secret but is mode {:o}, must be 0600",
                    mode(f)
                )
            });
        }
        p.check(git_ignored(&rel_s), || {
            format!("{rel_s}: is not git-ignored")
        });
    }
    for d in [".secrets", ".secrets/nats-tls"] {
        let m = mode(&gen.compose.join(d));
        p.check(m == 0o700, || {
            format!("deploy/compose/{d}: mode {m:o}, must be 0700")
        });
    }
    p.check(
        files.iter().any(|f| f.ends_with("nats-tls/server.key")),
        || "secrets.sh made no nats-tls/server.key".to_string(),
    );

    // Made once: a second run keeps every secret as it is.
    let before: Vec<(PathBuf, Vec<u8>)> = files
        .iter()
        .map(|f| (f.clone(), std::fs::read(f).unwrap()))
        .collect();
    gen.run();
    for (f, old) in before {
        p.check(std::fs::read(&f).unwrap() == old, || {
            format!(
                "{}: changed on the second run of up.sh; secrets must be kept",
                f.display()
            )
        });
    }

    // Every `${VAR:?...}` of compose.yaml is in .env (DOCKER_GID aside: no Docker here).
    let yaml = std::fs::read_to_string(gen.compose.join("compose.yaml")).unwrap();
    for part in yaml.split("${").skip(1) {
        if let Some((name, _)) = part.split_once(":?") {
            if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && name != "DOCKER_GID" {
                p.check(env.contains_key(name), || {
                    format!(".env: no {name}, which compose.yaml requires")
                });
            }
        }
    }

    // The compose tool, when there is one, accepts the file with this .env.
    let tool: Option<Vec<&str>> = if Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        Some(vec!["docker", "compose"])
    } else if has_tool("docker-compose") {
        Some(vec!["docker-compose"])
    } else {
        None
    };
    match tool {
        Some(t) => {
            let out = Command::new(t[0])
                .args(&t[1..])
                .args(["-f", "compose.yaml", "config", "-q"])
                .current_dir(&gen.compose)
                .env("DOCKER_GID", "0")
                .output()
                .expect("run compose config");
            p.check(out.status.success(), || {
                format!(
                    "`{} config` refused compose.yaml with up.sh's .env: {}",
                    t.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        }
        None => eprintln!("skipped `docker compose config`: no compose tool installed"),
    }
    p.assert_none("compose secrets");
}

/// deploy/k8s/secrets.sh run into a temporary folder, and the Secrets it wrote.
struct K8sSecrets {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl K8sSecrets {
    fn make() -> Self {
        require_tool("openssl");
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join(".secrets");
        let s = K8sSecrets { _tmp: tmp, dir };
        s.run();
        s
    }

    fn run(&self) {
        run_script(
            "deploy/k8s/secrets.sh",
            Command::new("sh")
                .arg(root().join("deploy/k8s/secrets.sh"))
                .arg(&self.dir),
        );
    }

    /// Secret name → key → decoded value.
    fn secrets(&self) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
        let path = self.dir.join("secrets.yaml");
        let text = std::fs::read_to_string(&path).expect("secrets.yaml");
        parse_docs_text("secrets.yaml", &text, true)
            .iter()
            .map(|d| {
                assert_eq!(
                    get_str(&d.map, &["kind"]),
                    Some("Secret"),
                    "secrets.yaml holds only Secrets"
                );
                assert_eq!(get_str(&d.map, &["metadata", "namespace"]), Some(NAMESPACE));
                let name = get_str(&d.map, &["metadata", "name"])
                    .expect("name")
                    .to_string();
                let data = get_map(&d.map, &["data"])
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| {
                                (
                                    k.as_str().to_string(),
                                    base64_decode(v.as_scalar().expect("a string").as_str()),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (name, data)
            })
            .collect()
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b'\n' | b'\r' | b' ' => continue,
            _ => panic!("not base64: {c:?} in {s:?}"),
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

/// The DNS and IP names of a PEM certificate (`openssl x509 -ext subjectAltName`).
fn cert_names(pem: &[u8]) -> BTreeSet<String> {
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl");
    child.stdin.take().unwrap().write_all(pem).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split([',', '\n'])
        .filter_map(|n| {
            let n = n.trim();
            n.strip_prefix("DNS:")
                .or_else(|| n.strip_prefix("IP Address:"))
                .map(String::from)
        })
        .collect()
}

#[test]
fn k8s_secrets_script_makes_every_secret_the_manifests_read_private_and_git_ignored() {
    let gen = K8sSecrets::make();
    let docs = k8s_docs();
    let secrets = gen.secrets();
    let users = auth_users(&auth_conf_text());
    let mut p = Problems::default();

    // Everything private and git-ignored.
    let m = mode(&gen.dir);
    p.check(m == 0o700, || {
        format!("secrets.sh's folder is mode {m:o}, must be 0700")
    });
    for f in walk(&gen.dir) {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        p.check(mode(&f) & 0o077 == 0, || {
            format!("{name}: mode {:o}, must be 0600", mode(&f))
        });
        let rel_s = format!("deploy/k8s/.secrets/{name}");
        p.check(git_ignored(&rel_s), || {
            format!("{rel_s}: is not git-ignored")
        });
    }

    // Every Secret and key the manifests read exists.
    for (name, key) in k8s_secret_refs(&docs) {
        match (secrets.get(&name), &key) {
            (None, _) => p.add(format!(
                "the manifests read the Secret {name}, which secrets.sh does not make"
            )),
            (Some(data), Some(k)) => p.check(data.get(k).is_some_and(|v| !v.is_empty()), || {
                format!("Secret {name} has no key {k}, which the manifests read")
            }),
            (Some(_), None) => {}
        }
    }
    // The NATS pods' variables: one per user, quoted for nats-server.
    let env_secret = workloads(&docs)
        .iter()
        .filter(|w| w.is_nats())
        .flat_map(|w| w.containers())
        .flat_map(|c| seq(c, &["envFrom"]))
        .filter_map(|e| {
            e.as_mapping()
                .and_then(|e| get_str(e, &["secretRef", "name"]).map(String::from))
        })
        .next()
        .unwrap_or_default();
    let vars = secrets.get(&env_secret).cloned().unwrap_or_default();
    for (user, var) in &users {
        let v = vars
            .get(var)
            .map(|v| String::from_utf8_lossy(v).to_string());
        p.check(v.as_ref().is_some_and(|v| v.len() > 2 && v.starts_with('"') && v.ends_with('"')), || {
            format!("Secret {env_secret}: {var} (user {user}) must be set, in double quotes (nats-server reads it as config text), is {v:?}")
        });
    }

    // The certificate names every address a client or a route dials.
    let cert_file = parse_conf(
        k8s_nats_config(&docs)
            .get("nats.conf")
            .map_or("", String::as_str),
    )
    .ok()
    .and_then(|c| {
        c.get("tls")
            .and_then(|t| t.get("cert_file"))
            .and_then(Conf::as_str)
            .map(String::from)
    })
    .unwrap_or_default();
    let tls = workloads(&docs)
        .iter()
        .filter(|w| w.is_nats())
        .flat_map(|w| {
            w.containers()
                .into_iter()
                .filter_map(|c| secret_at(w.pod, c, &cert_file))
                .collect::<Vec<_>>()
        })
        .next();
    match tls.and_then(|(s, k)| secrets.get(&s).and_then(|d| d.get(&k)).cloned()) {
        Some(pem) => {
            let names = cert_names(&pem);
            let mut dialed: BTreeSet<String> = k8s_nats_nodes(&docs);
            for w in workloads(&docs) {
                for c in w.baton_cmds() {
                    dialed.extend(c.nats_hosts());
                }
            }
            for host in dialed {
                p.check(names.contains(&host), || {
                    format!("the NATS certificate does not name {host} (it names {names:?})")
                });
            }
        }
        None => {
            p.add("no NATS certificate (tls.crt) in the Secret the NATS pods mount".to_string())
        }
    }

    // Made once: a second run writes the same Secrets.
    let before = std::fs::read(gen.dir.join("secrets.yaml")).unwrap();
    gen.run();
    p.check(
        std::fs::read(gen.dir.join("secrets.yaml")).unwrap() == before,
        || "secrets.yaml changed on the second run of secrets.sh; secrets must be kept".to_string(),
    );

    validate_strict(&mut p, &gen.dir.join("secrets.yaml"), "secrets.yaml");
    p.assert_none("k8s secrets");
}

#[test]
fn k8s_kustomization_renders_every_manifest_and_passes_strict_validation() {
    let mut p = Problems::default();
    let kust = parse_docs(&root().join("deploy/k8s/kustomization.yaml"), false);
    let listed: BTreeSet<String> = scalars(&seq(&kust[0].map, &["resources"]))
        .into_iter()
        .collect();
    let files: BTreeSet<String> = files_in("deploy/k8s", &[".yaml", ".yml"])
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().to_string()))
        .filter(|n| n != "kustomization.yaml")
        .collect();
    p.check(listed == files, || {
        format!("deploy/k8s/kustomization.yaml lists {listed:?}, the folder has {files:?}")
    });
    for key in ["secretGenerator", "configMapGenerator"] {
        p.check(kust[0].map.get_node(key).is_none(), || {
            format!("deploy/k8s/kustomization.yaml: {key} would need files a fresh clone does not have (secrets.sh applies the Secrets)")
        });
    }

    let out = Command::new(required_tool("kubectl"))
        .args(["kustomize", "deploy/k8s"])
        .current_dir(root())
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/k8s failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8(out.stdout).expect("utf-8");
    let ids = |docs: &[Doc]| -> BTreeSet<String> {
        docs.iter()
            .map(|d| {
                format!(
                    "{}/{}",
                    get_str(&d.map, &["kind"]).unwrap_or("?"),
                    get_str(&d.map, &["metadata", "name"]).unwrap_or("?")
                )
            })
            .collect()
    };
    let got = ids(&parse_docs_text(
        "kubectl kustomize deploy/k8s",
        &rendered,
        true,
    ));
    let want = ids(&k8s_docs());
    p.check(got == want, || {
        format!("kubectl kustomize renders {got:?}, the files hold {want:?}")
    });

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("rendered.yaml");
    std::fs::write(&file, &rendered).unwrap();
    validate_strict(&mut p, &file, "the rendered manifests");
    p.assert_none("k8s kustomization");
}

#[test]
fn no_password_or_private_key_is_committed() {
    // What git would commit: tracked files, and untracked ones not ignored.
    let out = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run git: {e}"));
    assert!(out.status.success(), "git ls-files failed");
    let mut p = Problems::default();
    let mut seen = 0;
    for path in String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .filter(|s| !s.is_empty())
    {
        let Ok(text) = std::fs::read_to_string(root().join(path)) else {
            continue;
        };
        seen += 1;
        if path.starts_with("deploy/") {
            let name = path.rsplit('/').next().unwrap_or("");
            p.check(
                !path.contains("/.secrets/") && !name.starts_with(".env"),
                || format!("{path}: generated secrets would be committed (not git-ignored)"),
            );
        }
        for problem in secrets_in(&text) {
            p.add(format!("{path}: {problem}"));
        }
    }
    assert!(seen > 50, "git listed only {seen} readable files");
    p.assert_none("committed secrets");
}

/// What in `text` looks like a real secret: a PEM private key with its body,
/// a complete bcrypt hash.
fn secrets_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.contains("-----BEGIN") && l.contains("PRIVATE KEY-----") {
            let body = lines.get(i + 1).map(|b| b.trim()).unwrap_or("");
            if body.len() >= 40
                && body
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'=')
            {
                out.push(format!("line {}: a PEM private key", i + 1));
            }
        }
        let b = l.as_bytes();
        for j in 0..b.len() {
            let hash = b.len() >= j + 60
                && b[j] == b'$'
                && b[j + 1] == b'2'
                && matches!(b[j + 2], b'a' | b'b' | b'y')
                && b[j + 3] == b'$'
                && b[j + 4].is_ascii_digit()
                && b[j + 5].is_ascii_digit()
                && b[j + 6] == b'$'
                && b[j + 7..j + 60]
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/');
            if hash {
                out.push(format!("line {}: a bcrypt password hash", i + 1));
                break;
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Real nats-servers with the deployments' configs.

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

struct NatsNode {
    child: Child,
    client: u16,
    route: u16,
    http: u16,
    log: PathBuf,
}

/// Three nats-servers running one deployment's config, on local ports.
struct Cluster {
    what: String,
    nodes: Vec<NatsNode>,
    /// Configs, logs and stores; removed with the cluster.
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.child.kill();
            let _ = n.child.wait();
        }
    }
}

impl Cluster {
    /// Start one node per `route_hosts` entry with `conf`, whose container
    /// paths the caller already pointed at files under `dir`. The listen
    /// addresses, the store and the routes are moved to this machine; each
    /// rewrite must match, so a changed config cannot make this test vacuous.
    fn start(
        what: &str,
        dir: tempfile::TempDir,
        conf: &str,
        route_hosts: &[String],
        env: &dyn Fn(usize) -> Vec<(String, String)>,
    ) -> Self {
        let ports: Vec<(u16, u16, u16)> = route_hosts
            .iter()
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let mut nodes = Vec::new();
        for (i, (client, route, http)) in ports.iter().copied().enumerate() {
            let mut text = conf.to_string();
            let mut rewrite = |from: &str, to: &str| {
                assert!(
                    text.contains(from),
                    "{what}: the config has no `{from}` any more; update this test"
                );
                text = text.replace(from, to);
            };
            rewrite("0.0.0.0:4222", &format!("127.0.0.1:{client}"));
            rewrite("0.0.0.0:6222", &format!("127.0.0.1:{route}"));
            rewrite("0.0.0.0:8222", &format!("127.0.0.1:{http}"));
            let store = dir.path().join(format!("data-{i}"));
            rewrite(
                "store_dir: /data",
                &format!("store_dir: \"{}\"", store.display()),
            );
            for (j, host) in route_hosts.iter().enumerate() {
                rewrite(
                    &format!("nats://{host}:6222"),
                    &format!("nats://127.0.0.1:{}", ports[j].1),
                );
            }
            let conf_file = dir.path().join(format!("node-{i}.conf"));
            std::fs::write(&conf_file, text).unwrap();
            let log = dir.path().join(format!("node-{i}.log"));
            let child = Command::new(baton_test_support::nats_server_binary())
                .arg("-c")
                .arg(&conf_file)
                .env_clear()
                .envs(env(i))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start nats-server: {e} — run scripts/setup.sh or set BATON_NATS_SERVER"));
            nodes.push(NatsNode {
                child,
                client,
                route,
                http,
                log,
            });
        }
        let c = Cluster {
            what: what.to_string(),
            nodes,
            _dir: dir,
        };
        // Healthy (JetStream with a meta leader) only once the routes are up.
        let deadline = Instant::now() + Duration::from_secs(45);
        for n in 0..c.nodes.len() {
            while !c.healthy(n) {
                assert!(
                    Instant::now() < deadline,
                    "{what}: node {n} not healthy within 45 s:\n{}",
                    c.logs()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        c
    }

    fn healthy(&self, n: usize) -> bool {
        http_get(self.nodes[n].http, "/healthz")
            .is_some_and(|r| r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200"))
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                format!(
                    "--- node {i}\n{}",
                    std::fs::read_to_string(&n.log).unwrap_or_default()
                )
            })
            .collect()
    }
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// The INFO a NATS port sends first, then what it answers to a plaintext
/// CONNECT and PING (empty when it closes the connection).
fn plaintext_probe(port: u16) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    // A client port sends INFO at once; a TLS-first port sends nothing.
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = [0u8; 8192];
    let n = s.read(&mut buf).unwrap_or(0);
    let info = String::from_utf8_lossy(&buf[..n]).to_string();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    (info, String::from_utf8_lossy(&answer).to_string())
}

/// Connect as `user` (or anonymously) with `ca` (or without TLS settings).
async fn nats_connect(
    port: u16,
    user: Option<(&str, &str)>,
    ca: Option<&Path>,
) -> Result<async_nats::Client, String> {
    let mut o = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(5));
    if let Some((u, pw)) = user {
        o = o
            .user_and_password(u.to_string(), pw.to_string())
            .custom_inbox_prefix(format!("_INBOX.{u}"));
    }
    let url = match ca {
        Some(ca) => {
            o = o.add_root_certificates(ca.to_path_buf()).require_tls(true);
            format!("tls://127.0.0.1:{port}")
        }
        None => format!("nats://127.0.0.1:{port}"),
    };
    let client = match tokio::time::timeout(Duration::from_secs(20), o.connect(url)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("timed out".into()),
    };
    match tokio::time::timeout(Duration::from_secs(10), client.flush()).await {
        Ok(Ok(())) => Ok(client),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("flush timed out".into()),
    }
}

/// A Baton service's credentials, as its deployment hands them over.
struct Credential {
    at: String,
    user: String,
    password: String,
    ca: PathBuf,
}

/// What every deployment must hold to: each service's credentials work over
/// TLS with its CA (and the coordinator can create an R3 stream over the
/// mutual-TLS routes), and nothing without a user, a right password or the
/// CA gets in; a plaintext route is refused.
fn check_cluster(p: &mut Problems, cluster: &Cluster, creds: &[Credential]) {
    let what = cluster.what.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let n = cluster.nodes.len();
    let (info, answer) = plaintext_probe(cluster.nodes[0].client);
    p.check(
        info.contains("\"tls_required\":true") && info.contains("\"auth_required\":true"),
        || format!("{what}: the client port must require TLS and authentication, says {info}"),
    );
    p.check(!answer.contains("PONG"), || {
        format!("{what}: a plaintext client was answered: {answer:?}")
    });
    // A route must start with TLS: a plaintext "server" gets nothing back.
    let (route_info, route_answer) = plaintext_probe(cluster.nodes[0].route);
    p.check(
        !route_info.contains("INFO")
            && !route_answer.contains("INFO")
            && !route_answer.contains("PONG"),
        || format!("{what}: a plaintext route was answered: {route_info:?} {route_answer:?}"),
    );

    rt.block_on(async {
        for (i, c) in creds.iter().enumerate() {
            let port = cluster.nodes[i % n].client;
            match nats_connect(port, Some((&c.user, &c.password)), Some(&c.ca)).await {
                Ok(client) => {
                    if c.user == "coordinator" && i < n {
                        // Replicated on all three nodes: the routes carry JetStream.
                        let js = async_nats::jetstream::new(client);
                        let made = js
                            .create_stream(async_nats::jetstream::stream::Config {
                                name: format!("DEPLOY_CHECK_{i}"),
                                subjects: vec![format!("baton.deploycheck.{i}.>")],
                                num_replicas: 3,
                                ..Default::default()
                            })
                            .await;
                        p.check(made.is_ok(), || {
                            format!(
                                "{what}: {} could not create an R3 stream: {:?}",
                                c.at,
                                made.err()
                            )
                        });
                    }
                }
                Err(e) => p.add(format!(
                    "{what}: {} (user {}) could not connect over TLS: {e}",
                    c.at, c.user
                )),
            }
        }
        let port = cluster.nodes[0].client;
        let ca = creds.first().map(|c| c.ca.clone()).expect("credentials");
        let coordinator = creds
            .iter()
            .find(|c| c.user == "coordinator")
            .expect("a coordinator");
        let refusals = [
            (
                "an anonymous client with the CA",
                nats_connect(port, None, Some(&ca)).await,
            ),
            (
                "the coordinator with a wrong password",
                nats_connect(port, Some(("coordinator", "wrong")), Some(&ca)).await,
            ),
            (
                "the coordinator's credentials without the CA",
                nats_connect(port, Some(("coordinator", &coordinator.password)), None).await,
            ),
        ];
        for (who, r) in refusals {
            p.check(r.is_err(), || format!("{what}: {who} got in"));
        }
    });
    let log = cluster.logs();
    p.check(
        log.contains("TLS route handshake error") || log.contains("TLS Handshake"),
        || format!("{what}: no node logged the refused plaintext route"),
    );
}

#[test]
fn compose_nats_cluster_runs_with_the_users_and_tls_and_every_service_connects() {
    let gen = ComposeSecrets::make();
    let env_file = gen.env();
    let docs = compose_docs();
    let services = compose_services(&docs);
    let nats: Vec<&Service> = services
        .iter()
        .filter(|s| s.image() == Some(NATS_IMAGE))
        .collect();
    assert_eq!(nats.len(), NATS_NODES, "compose NATS services");

    // The node's files where the container would see them: every mount but
    // the data volume, from the repository or from what up.sh generated.
    let dir = tempfile::tempdir().unwrap();
    let ms = mounts(nats[0]);
    let conf_mount = ms
        .iter()
        .find(|m| m.target.ends_with("/nats.conf"))
        .expect("a nats.conf mount");
    let conf_dir = conf_mount.target.rsplit_once('/').unwrap().0.to_string();
    let mut conf =
        std::fs::read_to_string(root().join("deploy/compose").join(&conf_mount.source)).unwrap();
    for m in ms
        .iter()
        .filter(|m| m.target != "/data" && m.target != conf_mount.target)
    {
        let src = if m.source.starts_with("./.secrets/") {
            gen.compose.join(&m.source)
        } else {
            root().join("deploy/compose").join(&m.source)
        };
        // Files next to the config stay there (relative includes); others go to files/.
        let local = match m.target.strip_prefix(&format!("{conf_dir}/")) {
            Some(rel) => dir.path().join(rel),
            None => dir
                .path()
                .join("files")
                .join(m.target.trim_start_matches('/')),
        };
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        std::fs::copy(&src, &local).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        conf = conf.replace(&m.target, &local.display().to_string());
    }
    // Each node's environment as compose would give it, from up.sh's .env.
    let envs: Vec<Vec<(String, String)>> = nats
        .iter()
        .map(|s| {
            service_env(s)
                .into_iter()
                .map(|(k, v)| {
                    let v = interpolate(&v, &env_file)
                        .unwrap_or_else(|e| panic!("{}: {k}: {e}", s.at()));
                    (k, v)
                })
                .collect()
        })
        .collect();
    let hosts: Vec<String> = nats.iter().map(|s| s.name.clone()).collect();
    let cluster = Cluster::start("compose NATS", dir, &conf, &hosts, &|i| envs[i].clone());

    // Every Baton service's credentials, as compose hands them over.
    let mut creds = Vec::new();
    let mut p = Problems::default();
    for s in &services {
        let Some(cmd) = s.cmd() else { continue };
        if !matches!(cmd.sub.as_str(), "coordinator" | "gates" | "worker") {
            continue;
        }
        let user = cmd.flags.get("nats-user").cloned().unwrap_or_default();
        let password = match compose_password(&mut p, s, &cmd) {
            Some(PasswordSource::Var(var)) => env_file.get(&var).cloned().unwrap_or_default(),
            Some(PasswordSource::File(src)) => std::fs::read_to_string(gen.compose.join(src))
                .unwrap_or_default()
                .trim()
                .to_string(),
            None => continue,
        };
        let ca_target = cmd.flags.get("nats-tls-ca").cloned().unwrap_or_default();
        let Some(ca) = mounts(s).into_iter().find(|m| m.target == ca_target) else {
            p.add(format!("{}: --nats-tls-ca is not mounted", s.at()));
            continue;
        };
        creds.push(Credential {
            at: s.at(),
            user,
            password,
            ca: gen.compose.join(ca.source),
        });
    }
    creds.sort_by_key(|c| c.user != "coordinator");
    assert!(
        creds.len() > COORDINATORS + WORKERS,
        "compose: credentials of only {} services",
        creds.len()
    );
    check_cluster(&mut p, &cluster, &creds);
    p.assert_none("compose NATS cluster, run for real");
}

#[test]
fn k8s_nats_cluster_runs_with_the_users_and_tls_and_every_service_connects() {
    let gen = K8sSecrets::make();
    let secrets = gen.secrets();
    let docs = k8s_docs();
    let loads = workloads(&docs);
    let data = k8s_nats_config(&docs);
    let nats = loads
        .iter()
        .find(|w| w.is_nats())
        .expect("the NATS StatefulSet");
    let container = nats
        .containers()
        .into_iter()
        .find(|c| get_str(c, &["image"]) == Some(NATS_IMAGE))
        .expect("the NATS container");

    // The ConfigMap as mounted (items → paths), and the TLS Secret's files.
    let dir = tempfile::tempdir().unwrap();
    let mut conf = data.get("nats.conf").cloned().expect("nats.conf");
    std::fs::create_dir_all(dir.path().join("auth")).unwrap();
    std::fs::write(
        dir.path().join("auth/baton-auth.conf"),
        data.get(AUTH_CONF_KEY).expect("the auth copy"),
    )
    .unwrap();
    let mut p = Problems::default();
    for f in check_nats_security(&mut p, "k8s nats.conf", &conf) {
        let (secret, key) = secret_at(nats.pod, container, &f)
            .unwrap_or_else(|| panic!("{f} is not mounted from a Secret"));
        let value = secrets
            .get(&secret)
            .and_then(|d| d.get(&key))
            .unwrap_or_else(|| panic!("no {secret}/{key}"));
        let local = dir.path().join("files").join(f.trim_start_matches('/'));
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        std::fs::write(&local, value).unwrap();
        conf = conf.replace(&f, &local.display().to_string());
    }
    // The pod's environment: POD_NAME, and the users' variables from envFrom.
    let mut base_env: Vec<(String, String)> = Vec::new();
    for e in seq(container, &["envFrom"])
        .into_iter()
        .filter_map(Node::as_mapping)
    {
        if let Some(name) = get_str(e, &["secretRef", "name"]) {
            for (k, v) in secrets.get(name).cloned().unwrap_or_default() {
                base_env.push((k, String::from_utf8(v).unwrap()));
            }
        }
    }
    let hosts: Vec<String> = k8s_nats_nodes(&docs).into_iter().collect();
    let pods: Vec<String> = hosts
        .iter()
        .map(|h| h.split('.').next().unwrap().to_string())
        .collect();
    let cluster = Cluster::start("k8s NATS", dir, &conf, &hosts, &|i| {
        let mut env = base_env.clone();
        env.push(("POD_NAME".into(), pods[i].clone()));
        env
    });

    // Every Baton container's credentials, through its mounts.
    let files = tempfile::tempdir().unwrap();
    let mut creds = Vec::new();
    for w in &loads {
        for (c, cmd) in w.baton_services() {
            let read = |flag: &str| -> Option<Vec<u8>> {
                let (s, k) = secret_at(w.pod, c, cmd.flags.get(flag)?)?;
                secrets.get(&s)?.get(&k).cloned()
            };
            let (Some(password), Some(ca)) = (read("nats-password-file"), read("nats-tls-ca"))
            else {
                p.add(format!(
                    "{}: password or CA not found in the Secrets secrets.sh made",
                    w.at()
                ));
                continue;
            };
            let ca_file = files.path().join(format!("ca-{}.crt", creds.len()));
            std::fs::write(&ca_file, ca).unwrap();
            creds.push(Credential {
                at: w.at(),
                user: cmd.flags.get("nats-user").cloned().unwrap_or_default(),
                password: String::from_utf8(password).unwrap().trim().to_string(),
                ca: ca_file,
            });
        }
    }
    creds.sort_by_key(|c| c.user != "coordinator");
    assert!(
        creds.len() >= 5,
        "k8s: credentials of only {} containers",
        creds.len()
    );
    check_cluster(&mut p, &cluster, &creds);
    p.assert_none("k8s NATS cluster, run for real");
}

// The checker's own checks for the trust-boundary helpers.

#[test]
fn the_nats_security_check_reports_what_is_missing() {
    let good = "listen: 0.0.0.0:4222\ninclude ./auth/baton-auth.conf\ntls { cert_file: /c, key_file: /k }\ncluster { tls { cert_file: /c, key_file: /k, ca_file: /a } }\n";
    let mut p = Problems::default();
    assert_eq!(
        check_nats_security(&mut p, "t", good),
        vec!["/a", "/c", "/k"]
    );
    assert!(p.0.is_empty(), "{:?}", p.0);
    for (bad, want) in [
        (
            good.replace("include ./auth/baton-auth.conf", ""),
            "include",
        ),
        (
            good.replace("tls { cert_file: /c, key_file: /k }\n", ""),
            "no `tls` block",
        ),
        (
            good.replace(
                "cluster { tls { cert_file: /c, key_file: /k, ca_file: /a } }",
                "cluster { }",
            ),
            "cluster",
        ),
        (good.replace(", ca_file: /a", ""), "ca_file"),
        (format!("{good}no_auth_user: worker\n"), "no_auth_user"),
    ] {
        let mut p = Problems::default();
        check_nats_security(&mut p, "t", &bad);
        assert!(p.0.iter().any(|m| m.contains(want)), "{want}: {:?}", p.0);
    }
}

#[test]
fn interpolation_and_secret_detection_work() {
    assert_eq!(interpolated_var("${A_B:?run up.sh}"), Some("A_B".into()));
    assert_eq!(interpolated_var("\"${A}\""), Some("A".into()));
    assert_eq!(interpolated_var("${A:-literal}"), None);
    assert_eq!(interpolated_var("literal"), None);
    assert_eq!(interpolated_var("x${A}"), None);
    let vars: BTreeMap<String, String> = [("A".to_string(), "$2y$x".to_string())].into();
    assert_eq!(interpolate("'\"${A:?no}\"'", &vars).unwrap(), "'\"$2y$x\"'");
    assert!(interpolate("${B:?run up.sh}", &vars)
        .unwrap_err()
        .contains("run up.sh"));
    assert_eq!(interpolate("${B:-d}$$", &vars).unwrap(), "d$");
    assert_eq!(
        auth_users(
            "user: a\n  password: $PW_A\nuser: b\n password: plain\nuser: c\npassword: $PW_C"
        ),
        vec![
            ("a".to_string(), "PW_A".to_string()),
            ("c".to_string(), "PW_C".to_string())
        ]
    );
    // Built at run time, so this file holds no hash for the scan to find.
    let hash = format!(
        "$2b$11${}",
        "avnAni93xPg0pOw87HPsMOwvb.UBzIWslCjHN/yAgPgebbPdew/96"
    );
    assert_eq!(secrets_in(&format!("pw: '{hash}'")).len(), 1);
    assert!(secrets_in("BATON_NATS_WORKER_PASSWORD='$2y$11$…'").is_empty());
    let key = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----";
    assert_eq!(secrets_in(key).len(), 1);
    assert!(secrets_in("a `-----BEGIN RSA PRIVATE KEY-----` header\nis redacted").is_empty());
    assert_eq!(base64_decode("aGVsbG8gd29ybGQ="), b"hello world");
}
