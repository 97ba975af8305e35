//! Webhook trigger flags shared by `baton coordinator` and `baton dev`.
//!
//! Secrets come from files or the environment, never from flags: a flag's
//! value shows in `ps` and shell history.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use baton_coordinator::Options;
use baton_proto::secret::Secret;
use clap::Args;

pub const SECRET_ENV: &str = "BATON_HOOK_SECRET";

#[derive(Args)]
pub struct HookArgs {
    /// File holding the HMAC-SHA256 key webhooks are signed with: over
    /// "<X-Baton-Timestamp>.<path>.<body>", sent as
    /// `X-Baton-Signature: sha256=<hex>`; or set BATON_HOOK_SECRET.
    /// Without one, `POST /hooks/<plan>` refuses every request.
    #[arg(long, value_name = "PATH")]
    pub hook_secret_file: Option<PathBuf>,
    /// File holding a bearer token accepted instead of a signature
    /// (`Authorization: Bearer <token>`) for Alertmanager payloads only;
    /// `<token> plan1,plan2` limits it to those plans (default: every plan).
    #[arg(long, value_name = "PATH")]
    pub hook_token_file: Option<PathBuf>,
}

impl HookArgs {
    /// `opts` with the webhook address and credentials set.
    pub fn configure(
        &self,
        http_addr: Option<SocketAddr>,
        opts: Options,
    ) -> Result<Options, String> {
        let (hook_secret, hook_bearer_token) = self.load()?;
        Ok(Options {
            http_addr,
            hook_secret,
            hook_bearer_token,
            ..opts
        })
    }

    /// (secret, token), read and checked.
    pub fn load(&self) -> Result<(Option<Secret>, Option<Secret>), String> {
        let env = std::env::var(SECRET_ENV).ok().filter(|s| !s.is_empty());
        let secret = match (&self.hook_secret_file, env) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "the hook secret is given twice, in --hook-secret-file and in {SECRET_ENV} — keep one"
                ))
            }
            (Some(p), None) => Some(read(p, "--hook-secret-file")?),
            (None, Some(s)) => Some(Secret::new(s)),
            (None, None) => None,
        };
        let token = match &self.hook_token_file {
            Some(p) => Some(read(p, "--hook-token-file")?),
            None => None,
        };
        Ok((secret, token))
    }
}

/// Said after the webhook address at start: without credentials the endpoint refuses everything.
pub fn off_note(opts: &Options) -> &'static str {
    if opts.hook_secret.is_none() && opts.hook_bearer_token.is_none() {
        "  (off: answers 503 until --hook-secret-file or BATON_HOOK_SECRET is set)"
    } else {
        ""
    }
}

/// The file's content without the trailing newline editors add.
fn read(path: &Path, flag: &str) -> Result<Secret, String> {
    let s = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {flag} {}: {e}", path.display()))?;
    let s = s.trim_end_matches(['\n', '\r']);
    if s.is_empty() {
        return Err(format!(
            "{flag} {} is empty — put the secret in it, e.g. `openssl rand -hex 32 > {}`",
            path.display(),
            path.display()
        ));
    }
    Ok(Secret::new(s))
}
