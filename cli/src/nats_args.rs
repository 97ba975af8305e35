//! NATS credential and TLS flags, shared by every command that connects to
//! NATS (`coordinator`, `worker`, `gates`, `dev --nats-url`).
//!
//! The password comes from a file or `BATON_NATS_PASSWORD`, never from a
//! flag: a flag's value shows in `ps` and shell history.

use std::path::PathBuf;

use baton_proto::nats_auth::NatsAuth;
use baton_proto::secret::Secret;
use clap::Args;

pub const PASSWORD_ENV: &str = "BATON_NATS_PASSWORD";

#[derive(Args, Clone, Default)]
pub struct NatsAuthArgs {
    /// NATS user name; its password comes from --nats-password-file or BATON_NATS_PASSWORD.
    #[arg(long, env = "BATON_NATS_USER", value_name = "NAME")]
    pub nats_user: Option<String>,
    /// File holding the NATS user's password.
    #[arg(long, env = "BATON_NATS_PASSWORD_FILE", value_name = "PATH")]
    pub nats_password_file: Option<PathBuf>,
    /// File holding an nkey user seed (`SU…`), instead of a user and password.
    #[arg(long, env = "BATON_NATS_NKEY_FILE", value_name = "PATH")]
    pub nats_nkey_file: Option<PathBuf>,
    /// A NATS `.creds` file (user JWT and seed), for servers in operator mode.
    #[arg(long, env = "BATON_NATS_CREDS", value_name = "PATH")]
    pub nats_creds: Option<PathBuf>,
    /// PEM CA that signed the NATS server's certificate; implies TLS.
    #[arg(long, env = "BATON_NATS_TLS_CA", value_name = "PATH")]
    pub nats_tls_ca: Option<PathBuf>,
    /// PEM client certificate, for servers that verify clients (with --nats-tls-key).
    #[arg(long, env = "BATON_NATS_TLS_CERT", value_name = "PATH")]
    pub nats_tls_cert: Option<PathBuf>,
    /// PEM key of --nats-tls-cert.
    #[arg(long, env = "BATON_NATS_TLS_KEY", value_name = "PATH")]
    pub nats_tls_key: Option<PathBuf>,
    /// Refuse a NATS server that does not offer TLS.
    #[arg(
        long,
        env = "BATON_NATS_REQUIRE_TLS",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub nats_require_tls: bool,
}

impl NatsAuthArgs {
    /// The settings, with the password taken from the environment if set
    /// there (files are read when connecting, with errors naming them).
    pub fn auth(&self) -> NatsAuth {
        NatsAuth {
            user: self.nats_user.clone(),
            password: std::env::var(PASSWORD_ENV)
                .ok()
                .filter(|p| !p.is_empty())
                .map(Secret::new),
            password_file: self.nats_password_file.clone(),
            nkey_file: self.nats_nkey_file.clone(),
            creds_file: self.nats_creds.clone(),
            tls_ca: self.nats_tls_ca.clone(),
            tls_cert: self.nats_tls_cert.clone(),
            tls_key: self.nats_tls_key.clone(),
            require_tls: self.nats_require_tls,
        }
    }
}
