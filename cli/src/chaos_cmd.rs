//! `baton chaos`: the command line of [`baton_chaos`].

use std::path::PathBuf;
use std::time::Duration;

use baton_chaos::{self as chaos, ChaosOptions, FaultKind};
use clap::Args;

use crate::exit::{Exit, FAILED};

#[derive(Args)]
pub struct ChaosArgs {
    /// Runs submitted while faults are injected.
    #[arg(long, default_value_t = 50)]
    pub runs: usize,
    /// Tasks of each run.
    #[arg(long, default_value_t = 20)]
    pub tasks: usize,
    #[arg(long, default_value_t = 4)]
    pub phases: usize,
    /// How long each task works, in milliseconds.
    #[arg(long, default_value_t = 300)]
    pub task_ms: u64,
    /// Runs first with no faults, for the calm latency figure.
    #[arg(long, default_value_t = 5)]
    pub calm_runs: usize,
    /// Faults of each kind.
    #[arg(long, default_value_t = 30)]
    pub faults_per_kind: usize,
    /// Kinds to inject (default all): worker_kill, coordinator_kill, nats_restart, worker_pause, worker_disconnect.
    #[arg(long, value_delimiter = ',')]
    pub kinds: Vec<FaultKind>,
    /// Milliseconds between faults.
    #[arg(long, default_value_t = 1500)]
    pub fault_every_ms: u64,
    #[arg(long, default_value_t = 2)]
    pub coordinators: usize,
    #[arg(long, default_value_t = 3)]
    pub workers: usize,
    #[arg(long, default_value_t = 3000)]
    pub lease_ttl_ms: u64,
    #[arg(long, default_value_t = 3)]
    pub ack_wait_secs: u64,
    /// Give up after this long, faults and all.
    #[arg(long, default_value_t = 3600)]
    pub deadline_secs: u64,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Write the report as JSON here too.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

pub async fn run(a: ChaosArgs) -> Result<(), Exit> {
    let bin = std::env::current_exe()
        .map_err(|e| Exit::failure(format_args!("cannot find the baton binary to start: {e}")))?;
    let o = ChaosOptions {
        baton_bin: bin,
        runs: a.runs,
        tasks_per_run: a.tasks,
        phases: a.phases,
        task_ms: a.task_ms,
        calm_runs: a.calm_runs,
        faults_per_kind: a.faults_per_kind,
        kinds: if a.kinds.is_empty() {
            FaultKind::ALL.to_vec()
        } else {
            a.kinds
        },
        fault_every: Duration::from_millis(a.fault_every_ms),
        coordinators: a.coordinators.max(1),
        workers: a.workers.max(1),
        worker_concurrency: 4,
        lease_ttl: Duration::from_millis(a.lease_ttl_ms),
        ack_wait: Duration::from_secs(a.ack_wait_secs.max(1)),
        deadline: Duration::from_secs(a.deadline_secs),
        seed: a.seed,
    };
    let report = chaos::run(o).await.map_err(Exit::failure)?;
    print!("{}", report.text());
    if let Some(p) = &a.report {
        let json = serde_json::to_string_pretty(&report).unwrap_or_default();
        std::fs::write(p, json)
            .map_err(|e| Exit::failure(format_args!("cannot write {}: {e}", p.display())))?;
    }
    if report.holds() {
        Ok(())
    } else {
        Err(Exit::silent(FAILED))
    }
}
