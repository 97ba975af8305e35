//! Who a service is to NATS: user and password, an nkey seed, or a creds
//! file, and TLS. The one place connection settings become
//! `async_nats::ConnectOptions`; [`crate::bus::connect_with`] uses it.
//!
//! Secrets are read here, from files or a value the caller took from the
//! environment, and never formatted: `Debug` shows the user name at most.

use std::path::{Path, PathBuf};

use async_nats::ConnectOptions;

/// The password's type, here with the settings that hold it.
pub use crate::secret::Secret;

/// Credentials and TLS for one connection. The default is what Baton did
/// before: no credentials, TLS only if the URL says `tls://`.
#[derive(Clone, Debug, Default)]
pub struct NatsAuth {
    pub user: Option<String>,
    /// Taken from the environment (`BATON_NATS_PASSWORD`), never argv.
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    /// A file holding an nkey seed (`SU…`).
    pub nkey_file: Option<PathBuf>,
    /// A `.creds` file: a user JWT and its nkey seed (operator mode).
    pub creds_file: Option<PathBuf>,
    /// PEM CA bundle to trust for the server's certificate.
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate and key, for servers that verify clients.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Refuse to talk to a server that does not offer TLS.
    pub require_tls: bool,
}

/// What is wrong with the connection settings, or with the connection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "NATS user `{user}` has no password — set BATON_NATS_PASSWORD or pass --nats-password-file"
    )]
    UserWithoutPassword { user: String },
    #[error("a NATS password was given without a user — pass --nats-user")]
    PasswordWithoutUser,
    #[error("NATS credentials conflict: {0} — give only one of user+password, --nats-nkey-file, --nats-creds")]
    Conflicting(String),
    #[error("cannot read the NATS {what} file {path}: {source} — check the path and that this user may read it")]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the NATS {what} file {path} is empty")]
    Empty { what: &'static str, path: PathBuf },
    #[error("{path} does not hold a user nkey seed (a line starting `SU`) — make one with `nk -gen user`")]
    NotAnNkeySeed { path: PathBuf },
    #[error("--nats-tls-cert and --nats-tls-key go together: give both or neither")]
    HalfClientCert,
    #[error("cannot reach NATS at {url}: {why} — start nats-server -js, or pass --nats-url")]
    Unreachable { url: String, why: String },
    #[error(
        "NATS at {url} refused {who}: {why} — check the user and password, nkey or creds file"
    )]
    Refused {
        url: String,
        who: String,
        why: String,
    },
    #[error("TLS with NATS at {url} failed: {why} — check --nats-tls-ca (the CA that signed the server's certificate) and the client certificate")]
    Tls { url: String, why: String },
}

impl NatsAuth {
    /// Who connects, for logs: the user name, `nkey`, `creds` or `anonymous`.
    pub fn who(&self) -> String {
        if let Some(u) = &self.user {
            format!("user `{u}`")
        } else if self.nkey_file.is_some() {
            "the nkey".into()
        } else if let Some(p) = &self.creds_file {
            format!("the creds in {}", p.display())
        } else {
            "an anonymous client".into()
        }
    }

    /// Whether the settings ask for TLS (so a `nats://` URL is upgraded).
    pub fn wants_tls(&self) -> bool {
        self.require_tls || self.tls_ca.is_some() || self.tls_cert.is_some()
    }

    /// Check the settings and read every secret, before any connection.
    pub fn apply(&self, mut opts: ConnectOptions) -> Result<ConnectOptions, Error> {
        let password = match (&self.password, &self.password_file) {
            (Some(_), Some(_)) => {
                return Err(Error::Conflicting(
                    "both BATON_NATS_PASSWORD and --nats-password-file".into(),
                ))
            }
            (Some(p), None) => Some(p.expose().to_string()),
            (None, Some(f)) => Some(read_secret("password", f)?),
            (None, None) => None,
        };
        let kinds = [
            self.user.is_some() || password.is_some(),
            self.nkey_file.is_some(),
            self.creds_file.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() > 1 {
            return Err(Error::Conflicting("more than one kind was given".into()));
        }
        match (&self.user, password) {
            (Some(u), Some(p)) => opts = opts.user_and_password(u.clone(), p),
            (Some(u), None) => return Err(Error::UserWithoutPassword { user: u.clone() }),
            (None, Some(_)) => return Err(Error::PasswordWithoutUser),
            (None, None) => {}
        }
        if let Some(f) = &self.nkey_file {
            let seed = read_secret("nkey seed", f)?;
            if !seed.starts_with("SU") {
                return Err(Error::NotAnNkeySeed { path: f.clone() });
            }
            opts = opts.nkey(seed);
        }
        if let Some(f) = &self.creds_file {
            let text = read_secret("creds", f)?;
            opts = opts.credentials(&text).map_err(|e| Error::Unreadable {
                what: "creds",
                path: f.clone(),
                source: e,
            })?;
        }
        if let Some(ca) = &self.tls_ca {
            readable("TLS CA", ca)?;
            opts = opts.add_root_certificates(ca.clone());
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => {
                readable("TLS certificate", c)?;
                readable("TLS key", k)?;
                opts = opts.add_client_certificate(c.clone(), k.clone());
            }
            (None, None) => {}
            _ => return Err(Error::HalfClientCert),
        }
        if self.wants_tls() {
            opts = opts.require_tls(true);
        }
        Ok(opts)
    }
}

/// A secret file's content, trimmed (an editor's trailing newline is not part of it).
fn read_secret(what: &'static str, path: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Unreadable {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    let text = text.trim().to_string();
    if text.is_empty() {
        return Err(Error::Empty {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(text)
}

/// async-nats reads TLS files only when it connects, and then reports a
/// missing one as a vague TLS error; say which file it is up front.
fn readable(what: &'static str, path: &Path) -> Result<(), Error> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|source| Error::Unreadable {
            what,
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let a = NatsAuth {
            user: Some("worker".into()),
            password: Some(Secret::new("hunter2-very-secret")),
            ..Default::default()
        };
        let shown = format!("{a:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("worker"));
    }

    #[test]
    fn a_user_needs_a_password_and_kinds_do_not_mix() {
        let a = NatsAuth {
            user: Some("worker".into()),
            ..Default::default()
        };
        let e = a.apply(ConnectOptions::new()).unwrap_err();
        assert!(e.to_string().contains("BATON_NATS_PASSWORD"), "{e}");
        let b = NatsAuth {
            user: Some("worker".into()),
            password: Some(Secret::new("x")),
            nkey_file: Some("/nonexistent".into()),
            ..Default::default()
        };
        let e = b.apply(ConnectOptions::new()).unwrap_err();
        assert!(matches!(e, Error::Conflicting(_)), "{e}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let a = NatsAuth {
            tls_ca: Some("/no/such/ca.pem".into()),
            ..Default::default()
        };
        let e = a.apply(ConnectOptions::new()).unwrap_err();
        assert!(e.to_string().contains("/no/such/ca.pem"), "{e}");
    }

    #[test]
    fn a_seed_file_must_hold_a_user_seed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("seed");
        std::fs::write(&f, "not a seed\n").unwrap();
        let a = NatsAuth {
            nkey_file: Some(f),
            ..Default::default()
        };
        let e = a.apply(ConnectOptions::new()).unwrap_err();
        assert!(matches!(e, Error::NotAnNkeySeed { .. }), "{e}");
    }
}
