//! Connecting to a coordinator's admin API with a token, over TLS when the
//! address says `https://`.
//!
//! The token comes from the environment or a file, never from a flag: a
//! flag's value shows in `ps` and in shell history.

use std::path::{Path, PathBuf};

use crate::secret::Secret;
use crate::v1::admin_client::AdminClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

pub const TOKEN_ENV: &str = "BATON_TOKEN";
pub const TOKEN_FILE_ENV: &str = "BATON_TOKEN_FILE";

/// Why a client could not be set up or connect. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the token holds characters a header cannot carry — copy it again from `baton token create`")]
    TokenNotAHeader,
    #[error("cannot read {flag} {}: {source}", path.display())]
    ReadTlsFile {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("give --tls-client-cert and --tls-client-key together")]
    HalfAnIdentity,
    #[error("`{server}` is not a server address ({source}) — write e.g. http://127.0.0.1:7233")]
    NotAnAddress {
        server: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("bad TLS settings for {server}: {source}")]
    Tls {
        server: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("TLS options were given but {server} is plaintext — write https://…")]
    TlsOnPlaintext { server: String },
    /// `causes` spells the whole chain: a TLS refusal is only said in the
    /// innermost error.
    #[error("cannot reach the coordinator at {server}: {causes} — start one with `baton dev`, or pass --server")]
    Unreachable {
        server: String,
        causes: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("cannot read the token file {}: {source}", path.display())]
    ReadTokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the token file {} is empty", path.display())]
    EmptyTokenFile { path: PathBuf },
    #[error(
        "the token is given twice, in {TOKEN_ENV} and in --token-file/{TOKEN_FILE_ENV} — keep one"
    )]
    TokenTwice,
}

/// An admin client that sends its token with every call.
pub type Admin = AdminClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer <token>`, marked sensitive so that tonic's
/// and hyper's debug output never print it.
#[derive(Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    pub fn new(token: Option<&Secret>) -> Result<Self, ClientError> {
        let Some(t) = token else {
            return Ok(Bearer(None));
        };
        let mut v: MetadataValue<Ascii> = format!("Bearer {}", t.expose())
            .parse()
            .map_err(|_| ClientError::TokenNotAHeader)?;
        v.set_sensitive(true);
        Ok(Bearer(Some(v)))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// How to verify the server, and the certificate to show it for mTLS.
#[derive(Clone, Default)]
pub struct ClientTls {
    pub ca_pem: Option<Vec<u8>>,
    pub cert_and_key_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientTls {
    pub fn load(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Self, ClientError> {
        let read = |flag: &'static str, p: &Path| {
            std::fs::read(p).map_err(|source| ClientError::ReadTlsFile {
                flag,
                path: p.to_path_buf(),
                source,
            })
        };
        let cert_and_key_pem = match (cert, key) {
            (Some(c), Some(k)) => {
                Some((read("--tls-client-cert", c)?, read("--tls-client-key", k)?))
            }
            (None, None) => None,
            _ => return Err(ClientError::HalfAnIdentity),
        };
        Ok(Self {
            ca_pem: ca.map(|p| read("--tls-ca", p)).transpose()?,
            cert_and_key_pem,
        })
    }

    fn config(&self) -> ClientTlsConfig {
        let mut c = ClientTlsConfig::new();
        c = match &self.ca_pem {
            Some(ca) => c.ca_certificate(Certificate::from_pem(ca)),
            None => c.with_native_roots(),
        };
        if let Some((cert, key)) = &self.cert_and_key_pem {
            c = c.identity(Identity::from_pem(cert, key));
        }
        c
    }
}

/// Connect to `server`; `https://` addresses use `tls`.
pub async fn connect(
    server: &str,
    token: Option<&Secret>,
    tls: &ClientTls,
) -> Result<Admin, ClientError> {
    let bearer = Bearer::new(token)?;
    let mut endpoint = Endpoint::from_shared(server.to_string())
        .map_err(|source| ClientError::NotAnAddress {
            server: server.into(),
            source,
        })?
        .connect_timeout(std::time::Duration::from_secs(5));
    if server.starts_with("https://") {
        endpoint = endpoint
            .tls_config(tls.config())
            .map_err(|source| ClientError::Tls {
                server: server.into(),
                source,
            })?;
    } else if tls.ca_pem.is_some() || tls.cert_and_key_pem.is_some() {
        return Err(ClientError::TlsOnPlaintext {
            server: server.into(),
        });
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| ClientError::Unreachable {
            server: server.into(),
            causes: chain(&e),
            source: e,
        })?;
    Ok(AdminClient::with_interceptor(channel, bearer))
}

/// The error and its causes: a TLS refusal is only said in the innermost one.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Where `baton dev` keeps its token for the admin API at `addr`:
/// `$BATON_STATE_DIR`, else `$XDG_STATE_HOME/baton`, else `~/.local/state/baton`.
/// One file per address, so two dev instances never take each other's.
pub fn dev_token_path(addr: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("BATON_STATE_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => match std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d).join("baton"),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".local/state/baton"),
        },
    };
    let key: String = addr
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Some(dir.join(format!("dev-token-{key}")))
}

/// `host:port` of a server URL, as `dev_token_path` keys it.
pub fn authority(server: &str) -> &str {
    let rest = server.split_once("://").map_or(server, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// Read a token file: its first line, trimmed.
pub fn read_token_file(path: &Path) -> Result<Secret, ClientError> {
    let text = std::fs::read_to_string(path).map_err(|source| ClientError::ReadTokenFile {
        path: path.to_path_buf(),
        source,
    })?;
    let t = text.lines().next().unwrap_or("").trim();
    if t.is_empty() {
        return Err(ClientError::EmptyTokenFile {
            path: path.to_path_buf(),
        });
    }
    Ok(Secret::new(t))
}

/// The token to send: BATON_TOKEN, or the token file (flag or
/// BATON_TOKEN_FILE), or the one `baton dev` wrote for this server; or none.
pub fn resolve_token(
    token_file: Option<&Path>,
    server: &str,
) -> Result<Option<Secret>, ClientError> {
    let env = std::env::var(TOKEN_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty());
    match (env, token_file) {
        (Some(_), Some(_)) => Err(ClientError::TokenTwice),
        (Some(t), None) => Ok(Some(Secret::new(t.trim()))),
        (None, Some(p)) => read_token_file(p).map(Some),
        (None, None) => match dev_token_path(authority(server)) {
            Some(p) if p.exists() => read_token_file(&p).map(Some),
            _ => Ok(None),
        },
    }
}
