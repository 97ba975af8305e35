//! Which secret references this worker resolves.
//!
//! A plan is written by whoever holds an operator token; the worker's host,
//! its environment and its files belong to whoever runs the worker. Reading
//! any reference a plan names would let a plan take the worker's own NATS
//! password (`from_env: BATON_NATS_PASSWORD`) or any file the worker can
//! read, and a task can print a value in a form redaction cannot recognise
//! (reversed, encrypted). So the worker reads only what its operator listed
//! (`--allow-secret-env`, `--allow-secret-dir`; nothing by default), and
//! never Baton's own variables and files, whatever that list says.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use baton_proto::nats_auth::NatsAuth;
use sha2::{Digest, Sha256};

use super::{trim_end, SecretError};
use crate::redact::MIN_SECRET_BYTES;

/// No task secret lives here, and reading these exposes the worker itself:
/// `/proc/self/environ` is its whole environment, `/dev` its devices.
const SYSTEM_DIRS: &[&str] = &["/proc", "/sys", "/dev"];

/// Words that mark a variable as a credential rather than a setting.
const CREDENTIAL_WORDS: &[&str] = &[
    "PASS", "TOKEN", "SECRET", "KEY", "SEED", "CRED", "JWT", "AUTH", "HEADERS",
];

/// Own files larger than this are not compared by content (they are not
/// credentials, and reading them at start would be slow).
const MAX_OWN_FILE_BYTES: u64 = 1 << 20;

/// What a worker may hand to tasks as secrets. The default allows nothing.
#[derive(Clone, Default)]
pub struct SecretPolicy {
    /// Variable names, or prefixes ending in `*`.
    allow_env: Vec<String>,
    allow_dirs: Vec<PathBuf>,
    /// Baton's own files and folders: credentials, keys, state. A folder
    /// protects everything under it.
    protected: Vec<PathBuf>,
    /// SHA-256 of the values of Baton's own credentials, so that a copy of
    /// one under an allowed name or in an allowed folder is refused too.
    own_values: Vec<[u8; 32]>,
}

impl fmt::Debug for SecretPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretPolicy")
            .field("allow_env", &self.allow_env)
            .field("allow_dirs", &self.allow_dirs)
            .field("protected", &self.protected)
            .field("own_values", &self.own_values.len())
            .finish()
    }
}

impl SecretPolicy {
    /// Allow variables matching `allow_env` (exact names, or prefixes
    /// ending in `*`) and files under `allow_dirs` (absolute).
    pub fn new<E, D>(allow_env: E, allow_dirs: D) -> Self
    where
        E: IntoIterator,
        E::Item: Into<String>,
        D: IntoIterator,
        D::Item: Into<PathBuf>,
    {
        SecretPolicy {
            allow_env: allow_env.into_iter().map(Into::into).collect(),
            allow_dirs: allow_dirs.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// Also refuse these files and folders (and everything under a folder):
    /// keys and state of other Baton parts that share this host or process.
    pub fn protect<P>(mut self, paths: P) -> Self
    where
        P: IntoIterator,
        P::Item: Into<PathBuf>,
    {
        self.protected.extend(paths.into_iter().map(Into::into));
        self
    }

    /// The patterns and folders given, for the worker's start-up log.
    pub fn allowed(&self) -> (&[String], &[PathBuf]) {
        (&self.allow_env, &self.allow_dirs)
    }

    /// Check the lists and learn Baton's own credentials: the files of
    /// `auth` and of [`SecretPolicy::protect`], any path held by one of
    /// Baton's variables in `env` (the process's environment), and the
    /// values of its credential variables and files.
    pub fn prepare(
        mut self,
        auth: &NatsAuth,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SecretError> {
        for p in &self.allow_env {
            env_pattern(p)?;
        }
        for d in &self.allow_dirs {
            if !d.is_absolute() {
                return Err(PolicyError::RelativeDir { dir: d.clone() }.into());
            }
            if !std::fs::metadata(d).is_ok_and(|m| m.is_dir()) {
                return Err(PolicyError::NotADir { dir: d.clone() }.into());
            }
        }
        // Their contents are compared too; certificates are public, so a
        // task may have a copy of the CA, but not the worker's own file.
        let mut secret_files: Vec<PathBuf> = self.protected.clone();
        let secrets = [
            &auth.password_file,
            &auth.nkey_file,
            &auth.creds_file,
            &auth.tls_key,
        ];
        secret_files.extend(secrets.into_iter().flatten().cloned());
        self.protected.extend(secret_files.iter().cloned());
        let public = [&auth.tls_cert, &auth.tls_ca];
        self.protected.extend(public.into_iter().flatten().cloned());
        for (var, value) in env {
            if reserved_env(&var).is_none() {
                continue;
            }
            let upper = var.to_ascii_uppercase();
            // Every Baton variable that names a file (BATON_EVIDENCE_KEY,
            // BATON_NATS_PASSWORD_FILE, BATON_TOKEN_FILE, …) protects it,
            // whichever part of Baton reads it; so does the state folder,
            // which holds `baton dev`'s admin tokens. Not the allow-lists
            // themselves: they name what tasks may have.
            if !upper.starts_with("BATON_ALLOW_") {
                let credential = is_credential_name(&upper);
                for part in value.split(',') {
                    let p = Path::new(part);
                    if p.is_absolute() && (credential || upper == "BATON_STATE_DIR" || p.is_file())
                    {
                        self.protected.push(p.to_path_buf());
                        if credential {
                            secret_files.push(p.to_path_buf());
                        }
                    }
                }
            }
            if is_credential_name(&upper) {
                self.remember_value(value.as_bytes());
            }
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let mut protected = Vec::new();
        for p in std::mem::take(&mut self.protected) {
            let p = if p.is_absolute() { p } else { cwd.join(p) };
            if let Ok(real) = std::fs::canonicalize(&p) {
                if real != p {
                    protected.push(real);
                }
            }
            protected.push(p);
        }
        protected.sort();
        protected.dedup();
        self.protected = protected;
        for p in secret_files {
            let small_file =
                std::fs::metadata(&p).is_ok_and(|m| m.is_file() && m.len() <= MAX_OWN_FILE_BYTES);
            if small_file {
                if let Ok(bytes) = std::fs::read(&p) {
                    self.remember_value(&bytes);
                }
            }
        }
        Ok(self)
    }

    fn remember_value(&mut self, value: &[u8]) {
        let value = trim_end(value);
        if value.len() >= MIN_SECRET_BYTES {
            self.own_values.push(Sha256::digest(value).into());
        }
    }

    /// The value of variable `var` for secret `name`, if this worker gives it.
    pub(super) fn env(
        &self,
        name: &str,
        var: &str,
        worker: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<u8>, SecretError> {
        if let Some(what) = reserved_env(var) {
            return Err(SecretError::ReservedEnv {
                name: name.into(),
                var: var.into(),
                what,
            });
        }
        if !self.allow_env.iter().any(|p| pattern_matches(p, var)) {
            return Err(SecretError::EnvNotAllowed {
                name: name.into(),
                var: var.into(),
                worker: worker.into(),
            });
        }
        let value = lookup(var).ok_or_else(|| SecretError::MissingEnv {
            name: name.into(),
            var: var.into(),
        })?;
        self.not_own(name, &format!("from_env {var}"), value.as_bytes())?;
        Ok(value.into_bytes())
    }

    /// The content of file `given` for secret `name`, if this worker gives it.
    pub(super) fn file(
        &self,
        name: &str,
        given: &str,
        worker: &str,
    ) -> Result<Vec<u8>, SecretError> {
        let path = Path::new(given);
        let reserved = |why: String| SecretError::ReservedFile {
            name: name.into(),
            path: given.into(),
            why,
        };
        // Decided on the path as written first, before touching the file
        // system: a plan must not learn which files exist outside what it
        // may read.
        match self.reserved_path(path) {
            Some(Reserved::System(dir)) => {
                return Err(reserved(format!("is under {dir}, a system folder")))
            }
            Some(Reserved::Own) => return Err(reserved(format!("is {OWN_FILES}"))),
            None => {}
        }
        let dirs = self.allowed_dirs();
        if !dirs.iter().any(|d| inside(path, d)) {
            return Err(SecretError::FileNotAllowed {
                name: name.into(),
                path: given.into(),
                worker: worker.into(),
                dir: path
                    .parent()
                    .map_or_else(|| "/".into(), |p| p.display().to_string()),
            });
        }
        let unreadable = |e: std::io::Error| SecretError::Unreadable {
            name: name.into(),
            path: given.into(),
            worker: worker.into(),
            reason: e.kind().to_string(),
        };
        // Symbolic links in the path are followed, and the checks repeated
        // on where they lead: a link in an allowed folder may point anywhere.
        let real = std::fs::canonicalize(path).map_err(unreadable)?;
        match self.reserved_path(&real) {
            Some(Reserved::System(dir)) => {
                return Err(reserved(format!(
                    "leads through a symbolic link into {dir}, a system folder"
                )))
            }
            Some(Reserved::Own) => {
                return Err(reserved(format!(
                    "leads through a symbolic link to {OWN_FILES}"
                )))
            }
            None => {}
        }
        if !dirs.iter().any(|d| inside(&real, d)) {
            return Err(SecretError::LinkOutside {
                name: name.into(),
                path: given.into(),
                worker: worker.into(),
            });
        }
        let meta = std::fs::metadata(&real).map_err(unreadable)?;
        // Reading a FIFO would block the worker, a device has no end.
        if !meta.is_file() {
            return Err(SecretError::NotAFile {
                name: name.into(),
                path: given.into(),
            });
        }
        // A hard link has no path to follow back to the original.
        if self.is_protected_inode(&meta) {
            return Err(reserved(format!("is a hard link to {OWN_FILES}")));
        }
        let mut f = std::fs::File::open(&real).map_err(unreadable)?;
        let opened = f.metadata().map_err(unreadable)?;
        // Swapped between the checks and the open: read nothing.
        if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) || !opened.is_file() {
            return Err(SecretError::Unreadable {
                name: name.into(),
                path: given.into(),
                worker: worker.into(),
                reason: "it changed while it was being checked".into(),
            });
        }
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(unreadable)?;
        self.not_own(name, &format!("from_file {given}"), &bytes)?;
        Ok(bytes)
    }

    /// Allowed folders as given and as resolved, so that a path written
    /// either way is recognised.
    fn allowed_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = self.allow_dirs.clone();
        dirs.extend(
            self.allow_dirs
                .iter()
                .filter_map(|d| std::fs::canonicalize(d).ok()),
        );
        dirs
    }

    /// Why `path` is never read, if it is not.
    fn reserved_path(&self, path: &Path) -> Option<Reserved> {
        if let Some(dir) = SYSTEM_DIRS.iter().find(|d| path.starts_with(d)) {
            return Some(Reserved::System(dir));
        }
        if self.protected.iter().any(|p| path.starts_with(p)) {
            return Some(Reserved::Own);
        }
        None
    }

    fn is_protected_inode(&self, meta: &std::fs::Metadata) -> bool {
        self.protected.iter().any(|p| {
            std::fs::metadata(p)
                .is_ok_and(|m| m.is_file() && m.dev() == meta.dev() && m.ino() == meta.ino())
        })
    }

    fn not_own(&self, name: &str, reference: &str, value: &[u8]) -> Result<(), SecretError> {
        let value = trim_end(value);
        if value.len() >= MIN_SECRET_BYTES {
            let digest: [u8; 32] = Sha256::digest(value).into();
            if self.own_values.contains(&digest) {
                return Err(SecretError::OwnValue {
                    name: name.into(),
                    reference: reference.into(),
                });
            }
        }
        Ok(())
    }
}

const OWN_FILES: &str = "one of Baton's own files (credentials, keys, state)";

enum Reserved {
    System(&'static str),
    Own,
}

/// Whether `path` lies strictly inside `dir`.
fn inside(path: &Path, dir: &Path) -> bool {
    path != dir && path.starts_with(dir)
}

fn pattern_matches(pattern: &str, var: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => var.starts_with(prefix),
        None => pattern == var,
    }
}

fn is_credential_name(upper: &str) -> bool {
    CREDENTIAL_WORDS.iter().any(|w| upper.contains(w))
}

/// Why variable `var` is never given to a task, if it is not. Names are
/// compared without case: a lowercase twin is no less Baton's.
pub(super) fn reserved_env(var: &str) -> Option<&'static str> {
    let u = var.to_ascii_uppercase();
    let credential = is_credential_name(&u);
    if u.starts_with("BATON_") {
        return Some(if credential {
            "Baton's own credential"
        } else {
            "Baton's own setting"
        });
    }
    if u.contains("NKEY") || u.contains("CREDS") || (u.contains("NATS") && credential) {
        return Some("named like a NATS credential, which Baton keeps to itself,");
    }
    if u.starts_with("OTEL_") && u.contains("HEADERS") {
        return Some("the telemetry exporter's headers, which carry its credentials,");
    }
    None
}

/// The worker's own `--allow-secret-*` settings are wrong: it does not start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("--allow-secret-env {pattern:?} is neither a variable name nor a prefix ending in `*` — write e.g. DEPLOY_TOKEN or DEPLOY_*")]
    EnvPattern { pattern: String },
    #[error("--allow-secret-dir {} is not an absolute path — give it from /", dir.display())]
    RelativeDir { dir: PathBuf },
    #[error("--allow-secret-dir {} is not a directory on this host — create it, or drop the flag", dir.display())]
    NotADir { dir: PathBuf },
}

/// Check one `--allow-secret-env` pattern: a variable name, or a prefix
/// ending in `*` (`DEPLOY_*`, or `*` for every variable).
pub fn env_pattern(p: &str) -> Result<String, PolicyError> {
    let (body, wildcard) = match p.strip_suffix('*') {
        Some(b) => (b, true),
        None => (p, false),
    };
    let ok = body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !body.starts_with(|c: char| c.is_ascii_digit())
        && (wildcard || !body.is_empty());
    if ok {
        Ok(p.to_string())
    } else {
        Err(PolicyError::EnvPattern {
            pattern: p.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn env_of<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |v| pairs.iter().find(|p| p.0 == v).map(|p| p.1.to_string())
    }

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    fn ready(policy: SecretPolicy) -> SecretPolicy {
        policy.prepare(&NatsAuth::default(), no_env()).unwrap()
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("deploy.key");
        std::fs::write(&key, "deploy-key-1").unwrap();
        let p = ready(SecretPolicy::default());
        let e = p
            .env(
                "T",
                "DEPLOY_TOKEN",
                "w1",
                env_of(&[("DEPLOY_TOKEN", "tok-123456")]),
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "secret `T`: from_env DEPLOY_TOKEN is not allowed on worker w1 — start the worker with --allow-secret-env DEPLOY_TOKEN (or a prefix such as DEPLOY_*)"
        );
        let e = p.file("k", key.to_str().unwrap(), "w1").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "secret `k`: from_file {} is not allowed on worker w1 — start the worker with --allow-secret-dir {}",
                key.display(),
                dir.path().display()
            )
        );
    }

    #[test]
    fn patterns_allow_exact_names_and_prefixes() {
        let p = ready(SecretPolicy::new(
            ["DEPLOY_*", "CI_TOKEN"],
            Vec::<PathBuf>::new(),
        ));
        let env = [
            ("DEPLOY_KEY", "value-1"),
            ("CI_TOKEN", "value-2"),
            ("CI_TOKEN2", "value-3"),
            ("XDEPLOY_KEY", "value-4"),
        ];
        assert_eq!(
            p.env("a", "DEPLOY_KEY", "w", env_of(&env)).unwrap(),
            b"value-1"
        );
        assert_eq!(
            p.env("b", "CI_TOKEN", "w", env_of(&env)).unwrap(),
            b"value-2"
        );
        for var in ["CI_TOKEN2", "XDEPLOY_KEY"] {
            assert!(
                matches!(
                    p.env("c", var, "w", env_of(&env)),
                    Err(SecretError::EnvNotAllowed { .. })
                ),
                "{var}"
            );
        }
    }

    #[test]
    fn batons_own_variables_are_never_given_even_to_a_star() {
        let p = ready(SecretPolicy::new(["*"], Vec::<PathBuf>::new()));
        let any = |_: &str| Some("some-value-123".to_string());
        let e = p.env("P", "BATON_NATS_PASSWORD", "w1", any).unwrap_err();
        assert_eq!(
            e.to_string(),
            "secret `P`: from_env BATON_NATS_PASSWORD is Baton's own credential and is never given to tasks, whatever --allow-secret-env says — give the task a variable of its own"
        );
        for var in [
            "BATON_WORKER_ID",
            "BATON_TOKEN",
            "baton_nats_password",
            "NATS_PASSWORD",
            "MY_NATS_TOKEN",
            "NATS_USER_PASS",
            "NKEY_SEED",
            "NATS_CREDS",
            "WORKER_CREDS",
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            assert!(
                matches!(
                    p.env("P", var, "w1", any),
                    Err(SecretError::ReservedEnv { .. })
                ),
                "{var} was given"
            );
        }
        for var in ["HOME", "NATS_URL", "DEPLOY_TOKEN", "OTEL_SERVICE_NAME"] {
            assert!(p.env("P", var, "w1", any).is_ok(), "{var} was refused");
        }
    }

    #[test]
    fn files_outside_the_allowed_dirs_are_refused_without_looking() {
        let allowed = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let outside = other.path().join("key");
        std::fs::write(&outside, "outside-1").unwrap();
        let inside = allowed.path().join("key");
        std::fs::write(&inside, "inside-1\n").unwrap();
        let p = ready(SecretPolicy::new(Vec::<String>::new(), [allowed.path()]));
        assert_eq!(
            p.file("k", inside.to_str().unwrap(), "w").unwrap(),
            b"inside-1\n"
        );
        assert!(matches!(
            p.file("k", outside.to_str().unwrap(), "w"),
            Err(SecretError::FileNotAllowed { .. })
        ));
        // A missing file outside says the same as a present one: a plan
        // learns nothing about what exists outside what it may read.
        let missing = other.path().join("nope");
        assert!(matches!(
            p.file("k", missing.to_str().unwrap(), "w"),
            Err(SecretError::FileNotAllowed { .. })
        ));
        // The allowed folder itself is not a file in it.
        assert!(matches!(
            p.file("k", allowed.path().to_str().unwrap(), "w"),
            Err(SecretError::FileNotAllowed { .. })
        ));
        let dotdot = format!(
            "{}/../{}/key",
            allowed.path().display(),
            other.path().file_name().unwrap().to_str().unwrap()
        );
        assert!(
            matches!(
                p.file("k", &dotdot, "w"),
                Err(SecretError::LinkOutside { .. })
            ),
            "{dotdot}"
        );
    }

    #[test]
    fn system_files_are_never_given_even_under_root() {
        let p = ready(SecretPolicy::new(Vec::<String>::new(), ["/"]));
        for path in [
            "/proc/self/environ",
            "/proc/1/cmdline",
            "/dev/null",
            "/sys/kernel/hostname",
        ] {
            let e = p.file("k", path, "w1").unwrap_err();
            assert!(matches!(e, SecretError::ReservedFile { .. }), "{path}: {e}");
        }
        let e = p.file("k", "/proc/self/environ", "w1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "secret `k`: from_file /proc/self/environ is under /proc, a system folder; such files are never given to tasks, whatever --allow-secret-dir says — give the task a file of its own"
        );
    }

    #[test]
    fn links_in_an_allowed_dir_are_followed_before_checking() {
        let allowed = tempfile::tempdir().unwrap();
        let own = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let password = own.path().join("nats.pw");
        std::fs::write(&password, "nats-password-1\n").unwrap();
        let elsewhere = other.path().join("key");
        std::fs::write(&elsewhere, "elsewhere-1").unwrap();
        let a = allowed.path();
        symlink(&password, a.join("to-own")).unwrap();
        symlink("/proc/self/environ", a.join("to-environ")).unwrap();
        symlink("/proc/self", a.join("proc-dir")).unwrap();
        symlink(&elsewhere, a.join("to-elsewhere")).unwrap();
        let auth = NatsAuth {
            password_file: Some(password.clone()),
            ..Default::default()
        };
        let p = SecretPolicy::new(Vec::<String>::new(), [a])
            .prepare(&auth, no_env())
            .unwrap();
        let path = |n: &str| a.join(n).to_str().unwrap().to_string();
        let e = p.file("k", &path("to-own"), "w1").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("secret `k`: from_file {} leads through a symbolic link to one of Baton's own files (credentials, keys, state); such files are never given to tasks, whatever --allow-secret-dir says — give the task a file of its own", path("to-own"))
        );
        for n in ["to-environ", "proc-dir/environ"] {
            let e = p.file("k", &path(n), "w1").unwrap_err();
            assert!(
                e.to_string()
                    .contains("leads through a symbolic link into /proc, a system folder"),
                "{n}: {e}"
            );
        }
        let e = p.file("k", &path("to-elsewhere"), "w1").unwrap_err();
        assert!(matches!(e, SecretError::LinkOutside { .. }), "{e}");
        assert!(
            !e.to_string().contains(other.path().to_str().unwrap()),
            "{e}"
        );
    }

    #[test]
    fn the_workers_own_credentials_are_never_given() {
        let allowed = tempfile::tempdir().unwrap();
        let a = allowed.path();
        // The operator keeps Baton's files in the folder it allows tasks:
        // Baton's own stay refused, by path, by hard link and by value.
        let password = a.join("nats.pw");
        std::fs::write(&password, "nats-password-1\n").unwrap();
        let evidence = a.join("evidence.key");
        std::fs::write(&evidence, "evidence-key-1").unwrap();
        std::fs::hard_link(&password, a.join("hard")).unwrap();
        std::fs::write(a.join("copy"), "nats-password-1").unwrap();
        std::fs::write(a.join("env-copy"), "env-password-1").unwrap();
        std::fs::write(a.join("fine"), "fine-value-1").unwrap();
        let auth = NatsAuth {
            password_file: Some(password.clone()),
            ..Default::default()
        };
        let env = vec![
            (
                "BATON_EVIDENCE_KEY".to_string(),
                evidence.display().to_string(),
            ),
            (
                "BATON_NATS_PASSWORD".to_string(),
                "env-password-1".to_string(),
            ),
            (
                "BATON_ALLOW_SECRET_DIR".to_string(),
                a.display().to_string(),
            ),
        ];
        let p = SecretPolicy::new(["DEPLOY_*"], [a])
            .prepare(&auth, env)
            .unwrap();
        let path = |n: &str| a.join(n).to_str().unwrap().to_string();
        for (n, want) in [
            ("nats.pw", "is one of Baton's own files"),
            ("evidence.key", "is one of Baton's own files"),
            ("hard", "is a hard link to one of Baton's own files"),
        ] {
            let e = p.file("k", &path(n), "w1").unwrap_err();
            assert!(
                matches!(e, SecretError::ReservedFile { .. }) && e.to_string().contains(want),
                "{n}: {e}"
            );
        }
        for n in ["copy", "env-copy"] {
            let e = p.file("k", &path(n), "w1").unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("secret `k`: from_file {} holds the same value as one of Baton's own credentials, which is never given to tasks — give the task a credential of its own", path(n))
            );
            assert!(!e.to_string().contains("password-1"));
        }
        let copied = [("DEPLOY_COPY", "env-password-1")];
        assert!(matches!(
            p.env("P", "DEPLOY_COPY", "w1", env_of(&copied)),
            Err(SecretError::OwnValue { .. })
        ));
        assert_eq!(p.file("k", &path("fine"), "w1").unwrap(), b"fine-value-1");
        assert!(!format!("{p:?}").contains("password-1"));
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let allowed = tempfile::tempdir().unwrap();
        let fifo = allowed.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let p = ready(SecretPolicy::new(Vec::<String>::new(), [allowed.path()]));
        let e = p.file("k", fifo.to_str().unwrap(), "w").unwrap_err();
        assert!(matches!(e, SecretError::NotAFile { .. }), "{e}");
    }

    #[test]
    fn bad_settings_are_refused_at_start() {
        for bad in ["", "A*B", "DEPLOY-X", "1ABC", "**"] {
            assert!(env_pattern(bad).is_err(), "{bad:?}");
            let p = SecretPolicy::new([bad], Vec::<PathBuf>::new());
            assert!(matches!(
                p.prepare(&NatsAuth::default(), no_env()),
                Err(SecretError::BadPolicy(_))
            ));
        }
        for good in ["*", "DEPLOY_*", "DEPLOY_TOKEN", "_X"] {
            assert_eq!(env_pattern(good).as_deref(), Ok(good));
        }
        for dir in ["relative/dir", "/nonexistent/baton/secrets"] {
            let e = SecretPolicy::new(Vec::<String>::new(), [dir])
                .prepare(&NatsAuth::default(), no_env())
                .unwrap_err();
            assert!(e.to_string().contains(dir), "{e}");
        }
    }
}
