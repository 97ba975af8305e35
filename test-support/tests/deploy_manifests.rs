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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

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
    let file = rel(path);
    let docs = if multi {
        split_documents(&text)
    } else {
        vec![text]
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

fn k8s_docs() -> Vec<Doc> {
    let files = files_in("deploy/k8s", &[".yaml", ".yml"]);
    assert!(!files.is_empty(), "deploy/k8s has no YAML file");
    files.iter().flat_map(|p| parse_docs(p, true)).collect()
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
        self.containers()
            .into_iter()
            .filter(|c| get_str(c, &["image"]) == Some(BATON_IMAGE))
            .filter_map(|c| {
                let mut argv = words(c.get_node("command"));
                argv.extend(words(c.get_node("args")));
                BatonCmd::parse(&argv)
            })
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
            if !key.as_str().ends_with(".conf") {
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
