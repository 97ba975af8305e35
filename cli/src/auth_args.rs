//! The admin API's security flags for `baton coordinator`: tokens, TLS, mTLS.
//!
//! Authentication is on unless `baton dev --no-auth`; there is no flag here
//! to turn it off.

use std::path::PathBuf;
use std::sync::Arc;

use baton_coordinator::auth::{Auth, TlsOptions, TokenStore};
use baton_coordinator::Options;
use clap::Args;

#[derive(Args)]
pub struct AuthArgs {
    /// Admin tokens as hashes, one a line `sha256:<hex> <name> <role>`,
    /// written by `baton token create`. Required.
    #[arg(long, env = "BATON_TOKENS_FILE", value_name = "PATH")]
    pub tokens_file: Option<PathBuf>,
    /// Serve the admin API over TLS with this certificate (PEM).
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM): mTLS.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

impl AuthArgs {
    /// `opts` with the tokens and TLS set; without a tokens file the
    /// options keep an empty store, which the coordinator refuses to start with.
    pub fn configure(&self, opts: Options) -> Result<Options, String> {
        let auth = match &self.tokens_file {
            Some(p) => Auth::Tokens(Arc::new(TokenStore::load(p).map_err(|e| e.to_string())?)),
            None => opts.auth.clone(),
        };
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Some(
                TlsOptions::load(c, k, self.tls_client_ca.as_deref()).map_err(|e| e.to_string())?,
            ),
            _ => None,
        };
        Ok(Options { auth, tls, ..opts })
    }

    /// How the admin API is served, for the start-up line.
    pub fn describe(&self) -> &'static str {
        match (&self.tls_cert, &self.tls_client_ca) {
            (None, _) => "plaintext",
            (Some(_), None) => "TLS",
            (Some(_), Some(_)) => "mTLS",
        }
    }
}
