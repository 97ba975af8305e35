//! `baton token create`: a fresh admin token, shown once; only its hash is kept.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use baton_coordinator::auth::{token, Role, TokenStore};
use clap::{Args, Subcommand};

use crate::exit::Exit;

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Print a fresh token once and append its hash, name and role to the tokens file.
    Create(CreateArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// Who holds the token; decisions and runs are recorded under this name.
    #[arg(long)]
    pub name: String,
    /// viewer, operator, approver or admin.
    #[arg(long, value_parser = parse_role)]
    pub role: Role,
    /// The coordinator's tokens file (created 0600 if missing).
    #[arg(long, env = "BATON_TOKENS_FILE", value_name = "PATH")]
    pub tokens_file: PathBuf,
}

pub fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s)
        .ok_or_else(|| format!("`{s}` is not a role — use viewer, operator, approver or admin"))
}

pub fn run(cmd: TokenCmd) -> Result<(), Exit> {
    match cmd {
        TokenCmd::Create(a) => create(&a),
    }
}

fn create(a: &CreateArgs) -> Result<(), Exit> {
    if !token::valid_name(&a.name) {
        return Err(Exit::usage(format_args!(
            "`{}` is not a valid name — use letters, digits and . _ - @, at most 64",
            a.name
        )));
    }
    // Never append to a file the coordinator would refuse to load.
    if a.tokens_file.exists() {
        TokenStore::load(&a.tokens_file).map_err(Exit::usage)?;
    }
    let t = token::generate();
    append(&a.tokens_file, &token::file_line(&t, &a.name, a.role)).map_err(|e| {
        Exit::failure(format_args!(
            "cannot write {}: {e}",
            a.tokens_file.display()
        ))
    })?;
    println!("{}", t.expose());
    eprintln!(
        "token for {} ({}) appended to {} as a hash; this is the only time it is shown",
        a.name,
        a.role,
        a.tokens_file.display()
    );
    eprintln!(
        "coordinators reading this file take it within a second (or at once on SIGHUP); clients read it from BATON_TOKEN or BATON_TOKEN_FILE"
    );
    Ok(())
}

fn append(path: &Path, line: &str) -> std::io::Result<()> {
    // A hand-edited file may lack its last newline; never glue two lines.
    let glue = match std::fs::read(path) {
        Ok(b) if !b.is_empty() && !b.ends_with(b"\n") => "\n",
        _ => "",
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{glue}{line}")
}
