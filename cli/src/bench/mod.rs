//! `baton bench`: measures, in one run on this machine, what the design's
//! performance targets talk about, prints the figures and writes them as JSON.
//!
//! Everything runs for real: a nats-server of our own, the coordinator, the
//! gates and two workers in this process (one with the noop runtime, one with
//! Docker). Medians and ratios are the figures to quote: machines are noisy.

mod harness;
mod scenarios;
mod stats;

use clap::Args;
use serde_json::json;

#[derive(Args)]
pub struct BenchArgs {
    /// Where to write the figures. The tracked `bench-results.json` is
    /// written only when asked (`--out bench-results.json`), with a row in
    /// docs/performance.md's history.
    #[arg(long, default_value = "target/bench-results.json")]
    pub out: std::path::PathBuf,
    /// Tasks in the sequential overhead chain.
    #[arg(long, default_value_t = 300)]
    pub chain: usize,
    /// Runs × tasks for the throughput scenario.
    #[arg(long, default_value_t = 100)]
    pub runs: usize,
    #[arg(long, default_value_t = 100)]
    pub tasks_per_run: usize,
    /// Container tasks for the Baton vs `docker run` comparison.
    #[arg(long, default_value_t = 10)]
    pub containers: usize,
    /// Repetitions of the DAG and approval scenarios.
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Skip the scenarios that need Docker.
    #[arg(long)]
    pub no_docker: bool,
}

pub async fn run(a: BenchArgs) -> u8 {
    let tel = crate::telemetry::init("baton-bench", "warn");
    let code = match run_inner(&a).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    };
    tel.shutdown();
    code
}

async fn run_inner(a: &BenchArgs) -> anyhow::Result<()> {
    let h = harness::Harness::start(!a.no_docker).await?;
    let mut results = serde_json::Map::new();
    results.insert(
        "machine".into(),
        json!({
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "when_ms": baton_proto::codec::now_ms(),
            "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        }),
    );

    eprintln!(
        "bench: orchestration overhead, {} sequential noop tasks…",
        a.chain
    );
    let o = scenarios::overhead(&h, a.chain).await?;
    println!("overhead per task (noop, sequential): p50 {:.2} ms · p99 {:.2} ms · mean {:.2} ms  [target p50 < 2, p99 < 10]", o.p50, o.p99, o.mean);
    results.insert("overhead_per_task_ms".into(), o.to_json());

    eprintln!(
        "bench: throughput, {} runs × {} noop tasks…",
        a.runs, a.tasks_per_run
    );
    let t = scenarios::throughput(&h, a.runs, a.tasks_per_run).await?;
    println!(
        "throughput (noop, {} runs in parallel): {:.0} tasks/s over {:.2} s  [target ≥ 5000]",
        a.runs, t.tasks_per_s, t.seconds
    );
    results.insert(
        "throughput".into(),
        json!({"tasks": t.tasks, "seconds": t.seconds, "tasks_per_s": t.tasks_per_s}),
    );

    eprintln!("bench: approval → dispatch, {} reps…", a.reps);
    let ap = scenarios::approval(&h, a.reps).await?;
    println!(
        "approval → task started: p50 {:.2} ms · max {:.2} ms  [target < 50]",
        ap.p50, ap.max
    );
    results.insert("approval_to_start_ms".into(), ap.to_json());

    if !a.no_docker {
        eprintln!(
            "bench: {} container tasks vs {} × docker run --rm…",
            a.containers, a.containers
        );
        let c = scenarios::containers(&h, a.containers).await?;
        println!(
            "containers, one at a time: baton {:.0} ms/task (p50) vs docker run --rm {:.0} ms/task (p50): ratio {:.2}  [target ≤ 0.7]",
            c.baton_p50_ms, c.docker_p50_ms, c.ratio
        );
        println!(
            "containers, {} independent tasks: baton {:.0} ms wall (worker concurrency 4) vs {:.0} ms of docker run --rm one after another: ratio {:.2}",
            c.n, c.baton_parallel_ms, c.docker_total_ms, c.parallel_ratio
        );
        results.insert("containers".into(), serde_json::to_value(&c)?);

        eprintln!("bench: 5-task container DAG, {} reps…", a.reps);
        let d = scenarios::dag5(&h, a.reps).await?;
        println!(
            "5-task container DAG end to end: p50 {:.0} ms · max {:.0} ms  [target < 3000]",
            d.p50, d.max
        );
        results.insert("dag5_ms".into(), d.to_json());
    }
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(results))?;
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&a.out, text + "\n")?;
    println!("wrote {}", a.out.display());
    Ok(())
}
