//! `baton evidence keygen|export|verify`. Verification is offline: it reads
//! the file and the public key, nothing else.

use std::path::{Path, PathBuf};

use baton_coordinator::evidence::{self, keys, statement::Statement};
use baton_proto::v1;
use clap::Subcommand;

use crate::client::connect;
use crate::exit::{Exit, FAILED};
use crate::ServerArg;

#[derive(Subcommand)]
pub enum EvidenceCmd {
    /// Make a signing key pair: PREFIX (PEM PKCS#8, mode 0600) and PREFIX.pub (PEM SPKI).
    Keygen {
        #[arg(short = 'o', long = "out")]
        prefix: PathBuf,
    },
    /// Save an ended run's signed evidence (a DSSE envelope) to FILE, byte for byte.
    Export {
        run: String,
        #[arg(short = 'o', long = "out")]
        file: PathBuf,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Check FILE's signature with the public key PUB, offline; print what it attests.
    Verify {
        file: PathBuf,
        #[arg(long)]
        key: PathBuf,
        /// Print the verified in-toto Statement as JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: EvidenceCmd) -> Result<(), Exit> {
    match cmd {
        EvidenceCmd::Keygen { prefix } => keygen(&prefix),
        EvidenceCmd::Export { run, file, server } => export(&run, &file, &server).await,
        EvidenceCmd::Verify { file, key, json } => verify(&file, &key, json),
    }
}

fn keygen(prefix: &Path) -> Result<(), Exit> {
    let public = keys::write_pair(prefix, &keys::generate()).map_err(Exit::usage)?;
    println!(
        "private key: {} (keep it secret; give it to the coordinator as --evidence-key)",
        prefix.display()
    );
    println!(
        "public key:  {} (give it to whoever verifies)",
        public.display()
    );
    Ok(())
}

async fn export(run: &str, file: &Path, server: &ServerArg) -> Result<(), Exit> {
    let mut c = connect(server).await?;
    let req = v1::GetEvidenceRequest {
        run_id: run.to_string(),
    };
    let envelope = c.get_evidence(req).await?.into_inner().envelope;
    std::fs::write(file, &envelope)
        .map_err(|e| Exit::failure(format_args!("cannot write {}: {e}", file.display())))?;
    println!(
        "{}: evidence of run {run} ({} bytes)",
        file.display(),
        envelope.len()
    );
    Ok(())
}

/// Exit 0 when the evidence verifies, 1 when it does not, 2 on unreadable input.
fn verify(file: &Path, key: &Path, json: bool) -> Result<(), Exit> {
    let key = keys::load_verifying_key(key).map_err(Exit::usage)?;
    let bytes = std::fs::read(file)
        .map_err(|e| Exit::usage(format_args!("cannot read {}: {e}", file.display())))?;
    let st = evidence::verify(&bytes, &key)
        .map_err(|e| Exit::new(FAILED, format!("FAILED: {}: {e}", file.display())))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&st).unwrap_or_default());
    } else {
        print!("{}", summary(&st, &keys::keyid(&key)));
    }
    Ok(())
}

fn summary(st: &Statement, keyid: &str) -> String {
    let p = &st.predicate;
    let mut out = format!("OK: signed by key {keyid}\n");
    out += &format!("run:        {} ({})\n", p.run_id, p.status);
    out += &format!("plan:       {} sha256:{}\n", p.plan.name, p.plan.sha256);
    out += &format!("tasks:      {}\n", p.tasks.len());
    for t in &p.tasks {
        let attempts = t.attempts.len();
        let log = t
            .attempts
            .last()
            .map(|a| a.log.sha256.as_str())
            .unwrap_or("-");
        out += &format!(
            "  {:<20} {:<10} attempts {attempts} last log sha256:{log}\n",
            t.task_id, t.status
        );
    }
    out += &format!("approvals:  {}\n", p.approvals.len());
    for a in &p.approvals {
        let verb = if a.approve { "approved" } else { "rejected" };
        out += &format!("  {verb} by {}: {}\n", a.by, a.reason);
    }
    out += &format!("gates:      {} results\n", p.gates.len());
    match &p.audit_head {
        Some(h) => out += &format!("audit head: #{} {}\n", h.n, h.hash),
        None => out += "audit head: none (no audit trail for this run)\n",
    }
    out
}
