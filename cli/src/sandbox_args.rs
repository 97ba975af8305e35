//! `baton worker` flags that decide how far a role's `sandbox:` request may
//! widen this worker's sandbox, and which of this host's variables and files
//! plans may name as secrets. Without them a worker widens nothing and gives
//! no secret.

use std::path::PathBuf;

use baton_worker::runtime::grant::Ceiling;
use baton_worker::runtime::Limits;
use baton_worker::secrets::SecretPolicy;
use clap::Args;

/// What plans may take from this host as secrets. Baton's own variables
/// (`BATON_*`, NATS and OTLP credentials) and files (its credentials and
/// keys, /proc, /sys, /dev) are refused whatever these say.
#[derive(Args, Debug, Default, Clone)]
pub struct SecretArgs {
    /// Variables plans may name as secrets (`from_env`): names, or prefixes
    /// ending in `*` (DEPLOY_*); comma-separated, repeatable. Default: none.
    #[arg(
        long,
        env = "BATON_ALLOW_SECRET_ENV",
        value_name = "PATTERN",
        value_delimiter = ',',
        value_parser = baton_worker::secrets::env_pattern
    )]
    pub allow_secret_env: Vec<String>,
    /// Host directories (absolute) whose files plans may name as secrets
    /// (`from_file`), checked after following symbolic links; comma-separated,
    /// repeatable. Default: none.
    #[arg(
        long,
        env = "BATON_ALLOW_SECRET_DIR",
        value_name = "DIR",
        value_delimiter = ',',
        value_parser = absolute
    )]
    pub allow_secret_dir: Vec<PathBuf>,
}

impl SecretArgs {
    pub fn policy(&self) -> SecretPolicy {
        SecretPolicy::new(self.allow_secret_env.clone(), self.allow_secret_dir.clone())
    }
}

#[derive(Args, Debug, Default)]
pub struct SandboxArgs {
    #[command(flatten)]
    pub secrets: SecretArgs,
    /// Let tasks whose role asks `sandbox: { network: true }` use a network
    /// (Docker's default bridge) instead of none.
    #[arg(long)]
    pub allow_network: bool,
    /// Host directories (comma-separated, absolute) under which a role may
    /// bind-mount paths (`sandbox: { mounts: [...] }`).
    #[arg(long, value_delimiter = ',', value_parser = absolute)]
    pub allow_mounts: Vec<PathBuf>,
    /// Most memory a role may ask for, e.g. 2g or 512m (default: 256m, the default limit).
    #[arg(long, value_parser = size)]
    pub max_memory: Option<i64>,
    /// Most CPUs a role may ask for, e.g. 2 or 0.5 (default: 1).
    #[arg(long)]
    pub max_cpus: Option<f64>,
    /// Most processes a role may ask for (default: 128).
    #[arg(long)]
    pub max_pids: Option<i64>,
}

impl SandboxArgs {
    pub fn ceiling(&self) -> Ceiling {
        let d = Limits::default();
        Ceiling {
            allow_network: self.allow_network,
            allow_mounts: self.allow_mounts.clone(),
            max: Limits {
                memory_bytes: self.max_memory.unwrap_or(d.memory_bytes),
                nano_cpus: self
                    .max_cpus
                    .map_or(d.nano_cpus, |c| (c * 1e9).round() as i64),
                pids: self.max_pids.unwrap_or(d.pids),
            },
        }
    }
}

fn absolute(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if p.is_absolute() && !s.split('/').any(|c| c == "..") {
        Ok(p)
    } else {
        Err(format!("{s:?} is not an absolute path without `..`"))
    }
}

/// `512m`, `2g`, `1024k` or bytes.
fn size(s: &str) -> Result<i64, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let unit: i64 = match unit.trim_end_matches(['b', 'i']) {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return Err(format!("{s:?} is not a size; write e.g. 512m or 2g")),
    };
    digits
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|b| *b > 0)
        .ok_or_else(|| format!("{s:?} is not a size; write e.g. 512m or 2g"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_paths() {
        assert_eq!(size("2g"), Ok(2 << 30));
        assert_eq!(size("512MiB"), Ok(512 << 20));
        assert_eq!(size("1000"), Ok(1000));
        assert!(size("lots").is_err() && size("0").is_err());
        assert!(absolute("/srv").is_ok());
        assert!(absolute("srv").is_err() && absolute("/srv/../etc").is_err());
    }

    #[test]
    fn default_ceiling_widens_nothing() {
        assert_eq!(SandboxArgs::default().ceiling(), Ceiling::default());
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        secrets: SecretArgs,
    }

    #[test]
    fn secret_flags_take_lists_and_repeat() {
        use clap::Parser;
        let c = Cli::try_parse_from([
            "w",
            "--allow-secret-env",
            "DEPLOY_*,CI_TOKEN",
            "--allow-secret-env",
            "GH_TOKEN",
            "--allow-secret-dir",
            "/etc/deploy,/srv/keys",
        ])
        .unwrap();
        assert_eq!(
            c.secrets.allow_secret_env,
            ["DEPLOY_*", "CI_TOKEN", "GH_TOKEN"]
        );
        assert_eq!(
            c.secrets.allow_secret_dir,
            [PathBuf::from("/etc/deploy"), PathBuf::from("/srv/keys")]
        );
        for bad in [
            ["--allow-secret-env", "DEPLOY*X"],
            ["--allow-secret-dir", "etc/deploy"],
        ] {
            let e = Cli::try_parse_from(["w", bad[0], bad[1]]).err().unwrap();
            assert!(e.to_string().contains(bad[1]), "{e}");
        }
    }
}
