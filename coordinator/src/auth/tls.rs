//! TLS for the admin API, and mTLS when a client CA is given.

use std::fmt;
use std::path::Path;

use tonic::transport::{Certificate, ServerTlsConfig};

use crate::Error;

/// PEM files, read at startup so that a bad path fails the start.
#[derive(Clone)]
pub struct TlsOptions {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("mtls", &self.client_ca.is_some())
            .finish_non_exhaustive()
    }
}

impl TlsOptions {
    pub fn load(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Self, Error> {
        let read = |flag: &'static str, p: &Path| {
            std::fs::read(p).map_err(|source| Error::TlsFile {
                flag,
                path: p.display().to_string(),
                source,
            })
        };
        Ok(Self {
            cert: read("--tls-cert", cert)?,
            key: read("--tls-key", key)?,
            client_ca: client_ca.map(|p| read("--tls-client-ca", p)).transpose()?,
        })
    }

    pub fn from_pem(cert: Vec<u8>, key: Vec<u8>, client_ca: Option<Vec<u8>>) -> Self {
        Self {
            cert,
            key,
            client_ca,
        }
    }

    /// With a client CA, a client without a certificate it signed cannot
    /// even finish the handshake.
    pub fn server_config(&self) -> ServerTlsConfig {
        let c = ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(&self.cert, &self.key));
        match &self.client_ca {
            Some(ca) => c.client_ca_root(Certificate::from_pem(ca)),
            None => c,
        }
    }
}
