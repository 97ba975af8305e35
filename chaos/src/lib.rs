//! The chaos suite: run many runs on a Baton of separate processes while
//! killing, freezing and cutting off its parts, then check that nothing was
//! lost or done twice. Test tooling: no service crate depends on it; the
//! `baton` binary links it for the thin `baton chaos` command.
//!
//! # Layout
//! - this file: options, the schedule, the report.
//! - `cluster`: the processes (nats-server, coordinators, gates, workers).
//! - `proxy`: the cuttable link between a worker and NATS.
//! - `faults`: injecting one fault and timing the recovery.
//! - `check`: the chaos plan and the invariants.
#![forbid(unsafe_code)]

pub mod check;
pub mod cluster;
mod faults;
pub mod proxy;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use baton_proto::client::Admin;
use baton_proto::v1;
use futures::StreamExt;
use rand::{seq::SliceRandom, SeedableRng};
use serde::Serialize;

pub use faults::{FaultKind, FaultRecord};

#[derive(Clone, Debug)]
pub struct ChaosOptions {
    pub baton_bin: PathBuf,
    /// Runs under faults, and their tasks each.
    pub runs: usize,
    pub tasks_per_run: usize,
    pub phases: usize,
    /// How long each task works.
    pub task_ms: u64,
    /// Runs first, with no faults, for the calm latency figure.
    pub calm_runs: usize,
    /// Faults of each kind.
    pub faults_per_kind: usize,
    pub kinds: Vec<FaultKind>,
    /// Pause between faults.
    pub fault_every: Duration,
    pub coordinators: usize,
    pub workers: usize,
    pub worker_concurrency: usize,
    pub lease_ttl: Duration,
    pub ack_wait: Duration,
    /// For the whole run, faults and all.
    pub deadline: Duration,
    pub seed: u64,
}

impl ChaosOptions {
    /// The CI run: one fault of each kind, a few minutes at most.
    pub fn short(baton_bin: PathBuf) -> Self {
        Self {
            baton_bin,
            runs: 12,
            tasks_per_run: 8,
            phases: 2,
            // Runs of about 8 s against one submitted every ~3.5 s: work is
            // always in flight when a fault lands.
            task_ms: 1000,
            calm_runs: 2,
            faults_per_kind: 1,
            kinds: FaultKind::ALL.to_vec(),
            // Past the slowest recovery, so that each fault's recovery is
            // measured alone and can be held to its bound.
            fault_every: Duration::from_secs(6),
            coordinators: 2,
            workers: 3,
            worker_concurrency: 4,
            lease_ttl: Duration::from_secs(3),
            ack_wait: Duration::from_secs(3),
            deadline: Duration::from_secs(240),
            seed: 7,
        }
    }
}

#[derive(Debug, Default, Serialize, Clone)]
pub struct Latency {
    pub n: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

fn latency(mut v: Vec<f64>) -> Latency {
    if v.is_empty() {
        return Latency::default();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Latency {
        n: v.len(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    }
}

#[derive(Debug, Default, Serialize, Clone)]
pub struct Recovery {
    pub n: usize,
    pub p50_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize, Clone)]
pub struct Report {
    pub faults: BTreeMap<String, usize>,
    #[serde(flatten)]
    pub invariants: check::Invariants,
    /// Per fault kind: from the fault to the affected work moving again.
    pub recovery: BTreeMap<String, Recovery>,
    pub calm: Latency,
    pub chaos: Latency,
    pub p99_ratio: f64,
    pub elapsed_s: f64,
    pub fault_log: Vec<FaultRecord>,
}

impl Report {
    /// The promises: nothing lost, nothing done twice, no phase skipped or repeated.
    pub fn holds(&self) -> bool {
        let i = &self.invariants;
        i.runs_lost == 0
            && i.duplicate_effects == 0
            && i.effects_missing == 0
            && i.phases_skipped == 0
            && i.phases_repeated == 0
    }

    pub fn text(&self) -> String {
        let i = &self.invariants;
        let mut s = format!(
            "chaos: {} runs ({} succeeded) in {:.0}s\n",
            i.runs_submitted, i.runs_succeeded, self.elapsed_s
        );
        s += &format!(
            "  faults injected:       {}\n",
            self.faults
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        s += &format!("  deliveries:            {}\n", i.deliveries);
        s += &format!("  duplicates suppressed: {}\n", i.duplicates_suppressed);
        s += &format!("  lost attempts rerun:   {}\n", i.lost_attempts);
        s += &format!("  late results recorded: {}\n", i.stale_results);
        s += &format!("  runs lost:             {}  (must be 0)\n", i.runs_lost);
        s += &format!(
            "  duplicate effects:     {}  (must be 0)\n",
            i.duplicate_effects
        );
        s += &format!(
            "  effects missing:       {}  (must be 0)\n",
            i.effects_missing
        );
        s += &format!(
            "  phases skipped/repeated: {}/{}  (must be 0/0)\n",
            i.phases_skipped, i.phases_repeated
        );
        for (k, r) in &self.recovery {
            s += &format!(
                "  recovery {k:<18} n={} p50 {:.0} ms, max {:.0} ms\n",
                r.n, r.p50_ms, r.max_ms
            );
        }
        s += &format!(
            "  task latency: calm p50 {:.0} ms p99 {:.0} ms · chaos p50 {:.0} ms p99 {:.0} ms · p99 ratio {:.2}\n",
            self.calm.p50_ms, self.calm.p99_ms, self.chaos.p50_ms, self.chaos.p99_ms, self.p99_ratio
        );
        for v in &i.violations {
            s += &format!("  VIOLATION: {v}\n");
        }
        s
    }
}

/// Start the cluster, run the calm runs, then the runs under faults, and check.
pub async fn run(o: ChaosOptions) -> Result<Report, String> {
    let started = Instant::now();
    let deadline = started + o.deadline;
    let cluster = cluster::Cluster::start(&cluster::ClusterOptions {
        baton_bin: o.baton_bin.clone(),
        name: format!("chaos{:04x}-", rand::random::<u16>()),
        coordinators: o.coordinators,
        workers: o.workers,
        worker_concurrency: o.worker_concurrency,
        roles: vec!["chaos".into()],
        lease_ttl: o.lease_ttl,
        ack_wait: o.ack_wait,
        runtime: "process".into(),
    })
    .await?;
    let sink = cluster.dir.path().join("sink");
    std::fs::create_dir_all(&sink).map_err(|e| e.to_string())?;
    let plan = check::plan_yaml(o.tasks_per_run, o.phases, o.task_ms, &sink);
    let mut admins = Vec::new();
    for i in 0..cluster.grpc.len() {
        admins.push(cluster.admin(i).await.map_err(|e| e.to_string())?);
    }
    let client = baton_proto::bus::connect(&cluster.nats_url(), "baton-chaos").await?;
    let js = async_nats::jetstream::new(client);

    let mut calm = Vec::new();
    for _ in 0..o.calm_runs {
        calm.push(submit(&admins, &plan, deadline).await?);
    }
    wait_all(&admins, &calm, deadline).await;

    // Faults in a shuffled order, each kind `faults_per_kind` times, while
    // runs are submitted at an even pace over the same window.
    let mut schedule: Vec<FaultKind> = o
        .kinds
        .iter()
        .flat_map(|k| std::iter::repeat_n(*k, o.faults_per_kind))
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(o.seed);
    schedule.shuffle(&mut rng);
    // Submissions are spread over the time the faults will take, so that
    // every fault meets work in flight.
    let window: Duration = schedule
        .iter()
        .map(|k| o.fault_every + faults::expected_duration(*k, &o))
        .sum::<Duration>()
        .max(o.fault_every);
    let injector = faults::Injector {
        cluster,
        js: js.clone(),
        ack_wait: o.ack_wait,
        rng,
    };
    let every = o.fault_every;
    let faults = tokio::spawn(injector.run(schedule, every));
    let spacing = window / o.runs.max(1) as u32;
    let mut runs = Vec::new();
    for _ in 0..o.runs {
        runs.push(submit(&admins, &plan, deadline).await?);
        tokio::time::sleep(spacing).await;
    }
    let (fault_log, cluster) = faults.await.map_err(|e| e.to_string())?;
    wait_all(&admins, &runs, deadline).await;

    let mut finals = HashMap::new();
    for r in calm.iter().chain(runs.iter()) {
        if let Some(run) = get_run(&admins, r).await {
            finals.insert(r.clone(), run);
        }
    }
    let events = read_events(&js).await?;
    let invariants = check::invariants(&runs, &finals, &events, &sink);
    let calm_lat = latency(check::task_latencies(&calm, &events));
    let chaos_lat = latency(check::task_latencies(&runs, &events));
    let mut fault_log = fault_log;
    let mut faults_n = BTreeMap::new();
    let mut rec: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for f in &mut fault_log {
        *faults_n.entry(f.kind.to_string()).or_insert(0) += 1;
        if f.recovered_ms.is_none() {
            f.recovered_ms = faults::from_events(f, &events);
        }
        if let Some(ms) = f.recovered_ms {
            rec.entry(f.kind.to_string()).or_default().push(ms);
        }
    }
    let recovery = rec
        .into_iter()
        .map(|(k, v)| {
            let l = latency(v.clone());
            let max = v.iter().copied().fold(0.0, f64::max);
            (
                k,
                Recovery {
                    n: l.n,
                    p50_ms: l.p50_ms,
                    max_ms: max,
                },
            )
        })
        .collect();
    let report = Report {
        faults: faults_n,
        invariants,
        recovery,
        p99_ratio: if calm_lat.p99_ms > 0.0 {
            chaos_lat.p99_ms / calm_lat.p99_ms
        } else {
            0.0
        },
        calm: calm_lat,
        chaos: chaos_lat,
        elapsed_s: started.elapsed().as_secs_f64(),
        fault_log,
    };
    if !report.holds() {
        eprintln!(
            "chaos: invariants broken; last lines of each process:\n{}",
            cluster.logs(40)
        );
    }
    if std::env::var_os("BATON_CHAOS_KEEP").is_some() {
        let kept = cluster.keep();
        eprintln!(
            "chaos: logs, sink and JetStream store kept in {}",
            kept.display()
        );
    }
    Ok(report)
}

/// Submit through any coordinator that answers.
async fn submit(admins: &[Admin], plan: &str, deadline: Instant) -> Result<String, String> {
    let mut last = String::new();
    let mut i = rand::random::<u32>() as usize;
    while Instant::now() < deadline {
        i += 1;
        let mut a = admins[i % admins.len()].clone();
        match a
            .submit_run(v1::SubmitRunRequest {
                plan_yaml: plan.to_string(),
                plan_file: "chaos.yaml".into(),
                submitted_by: "chaos".into(),
                ..Default::default()
            })
            .await
        {
            Ok(r) => return Ok(r.into_inner().run_id),
            Err(e) => last = e.message().to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("no coordinator accepted a run: {last}"))
}

async fn get_run(admins: &[Admin], run: &str) -> Option<v1::Run> {
    for a in admins {
        if let Ok(r) = a
            .clone()
            .get_run(v1::GetRunRequest { run_id: run.into() })
            .await
        {
            return Some(r.into_inner());
        }
    }
    None
}

async fn wait_all(admins: &[Admin], runs: &[String], deadline: Instant) {
    let mut open: Vec<String> = runs.to_vec();
    while !open.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for r in open {
            match get_run(admins, &r).await {
                Some(run) if run.run_status() != v1::RunStatus::Running => {}
                _ => still.push(r),
            }
        }
        open = still;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every event on the stream, by run, in stream order.
async fn read_events(
    js: &async_nats::jetstream::Context,
) -> Result<HashMap<String, Vec<check::Seen>>, String> {
    use async_nats::jetstream::consumer::pull::OrderedConfig;
    let stream = js
        .get_stream(baton_proto::subjects::EVENTS_STREAM)
        .await
        .map_err(|e| e.to_string())?;
    let consumer = stream
        .create_consumer(OrderedConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut pending = consumer.cached_info().num_pending;
    let mut msgs = consumer.messages().await.map_err(|e| e.to_string())?;
    let mut out: HashMap<String, Vec<check::Seen>> = HashMap::new();
    while pending > 0 {
        let m = match tokio::time::timeout(Duration::from_secs(10), msgs.next()).await {
            Ok(Some(Ok(m))) => m,
            _ => return Err("reading the EVENTS stream back stalled".into()),
        };
        pending -= 1;
        if let Ok(ev) = baton_proto::codec::decode_event(&m.subject, &m.payload) {
            out.entry(ev.run_id.clone()).or_default().push(check::Seen {
                time_ms: ev.time_ms,
                event: ev,
            });
        }
    }
    Ok(out)
}
