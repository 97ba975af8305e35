//! `baton worker` flags that decide how far a role's `sandbox:` request may
//! widen this worker's sandbox. Without them a worker widens nothing.

use std::path::PathBuf;

use baton_worker::runtime::grant::Ceiling;
use baton_worker::runtime::Limits;
use clap::Args;

#[derive(Args, Debug, Default)]
pub struct SandboxArgs {
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
}
