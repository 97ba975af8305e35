//! The measured scenarios. Each builds its plan, runs it for real, and reads
//! the times from the EVENTS stream (server publish times, in ns).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use baton_proto::v1::{self, event::Body};

use super::harness::{Harness, DOCKER_ROLE};
use super::stats::Summary;

const NOOP_ROLES_YAML: &str =
    "  n0: { image: none }\n  n1: { image: none }\n  n2: { image: none }\n  n3: { image: none }\n";

/// A chain t0 → t1 → … in one phase: each task is ready only when the one
/// before it is folded, so the gap between two results is one full trip
/// through the loop (fold, dispatch, fetch, start, run, result).
pub async fn overhead(h: &Harness, n: usize) -> anyhow::Result<Summary> {
    let mut y =
        format!("name: bench-chain\nroles:\n{NOOP_ROLES_YAML}phases:\n  - id: chain\n    tasks:\n");
    for i in 0..n {
        let _ = write!(
            y,
            "      - id: t{i}\n        role: n{}\n        run: [\"noop\"]\n",
            i % 4
        );
        if i > 0 {
            let _ = writeln!(y, "        needs: [t{}]", i - 1);
        }
    }
    let run = h.submit(&y).await?;
    h.wait_end(&run, Duration::from_secs(300)).await?;
    let finished: Vec<i128> = h
        .events(&run)
        .await?
        .into_iter()
        .filter(|(_, e)| matches!(e.body, Some(Body::TaskFinished(_))))
        .map(|(t, _)| t)
        .collect();
    anyhow::ensure!(
        finished.len() == n,
        "expected {n} results, saw {}",
        finished.len()
    );
    let gaps: Vec<f64> = finished
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 / 1e6)
        .collect();
    Ok(Summary::of(gaps))
}

pub struct Throughput {
    pub tasks: usize,
    pub seconds: f64,
    pub tasks_per_s: f64,
}

/// Many runs at once, each a wide phase of independent noop tasks.
pub async fn throughput(h: &Harness, runs: usize, per_run: usize) -> anyhow::Result<Throughput> {
    let mut y =
        format!("name: bench-wide\nroles:\n{NOOP_ROLES_YAML}phases:\n  - id: wide\n    tasks:\n");
    for i in 0..per_run {
        let _ = write!(
            y,
            "      - id: t{i}\n        role: n{}\n        run: [\"noop\"]\n",
            i % 4
        );
    }
    let start = Instant::now();
    let sampler = std::env::var_os("BATON_BENCH_DEBUG").map(|_| {
        let js = async_nats::jetstream::new(h.nats.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let mut line = format!("{:.2}s", start.elapsed().as_secs_f64());
                for (stream, consumer) in [
                    ("BATON_EVENTS", "coordinator"),
                    ("BATON_TASKS", "role-n0"),
                    ("BATON_GATES", "gates"),
                ] {
                    if let Ok(s) = js.get_stream(stream).await {
                        if let Ok(mut c) = s
                            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(consumer)
                            .await
                        {
                            if let Ok(i) = c.info().await {
                                line += &format!(
                                    " {consumer}: pending {} ack_pending {} waiting {}",
                                    i.num_pending, i.num_ack_pending, i.num_waiting
                                );
                            }
                        }
                    }
                }
                eprintln!("{line}");
            }
        })
    });
    let mut ids = Vec::new();
    for _ in 0..runs {
        ids.push(h.submit(&y).await?);
    }
    let submitted = start.elapsed().as_secs_f64();
    let mut seen = Vec::new();
    for id in &ids {
        h.wait_end(id, Duration::from_secs(600)).await?;
        seen.push(start.elapsed().as_secs_f64());
    }
    if let Some(s) = sampler {
        s.abort();
        eprintln!("submitted all in {submitted:.2}s; ends seen at {seen:.2?}");
    }
    let seconds = start.elapsed().as_secs_f64();
    let tasks = runs * per_run;
    Ok(Throughput {
        tasks,
        seconds,
        tasks_per_s: tasks as f64 / seconds,
    })
}

/// From the Approve call to the approved task's start on a worker.
pub async fn approval(h: &Harness, reps: usize) -> anyhow::Result<Summary> {
    let y = "name: bench-approval\nroles:\n  gate-keeper: { image: none, risk: approval_required }\nphases:\n  - id: p\n    tasks:\n      - id: guarded\n        role: gate-keeper\n        run: [\"noop\"]\n";
    let mut samples = Vec::new();
    for _ in 0..reps {
        let run = h.submit(y).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = h
                .admin
                .clone()
                .get_run(v1::GetRunRequest {
                    run_id: run.clone(),
                })
                .await;
            if r.is_ok_and(|r| r.into_inner().waiting.contains("approval")) {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "run never waited for approval");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let t0 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as i128;
        h.admin
            .clone()
            .approve(v1::DecisionRequest {
                run_id: run.clone(),
                reason: "bench".into(),
                by: "bench".into(),
                task_id: String::new(),
            })
            .await?;
        h.wait_end(&run, Duration::from_secs(30)).await?;
        let started = h
            .events(&run)
            .await?
            .into_iter()
            .find(|(_, e)| matches!(e.body, Some(Body::TaskStarted(_))))
            .map(|(t, _)| t)
            .ok_or_else(|| anyhow::anyhow!("no start event"))?;
        samples.push((started - t0) as f64 / 1e6);
    }
    Ok(Summary::of(samples))
}

#[derive(serde::Serialize)]
pub struct Containers {
    pub n: usize,
    pub baton_p50_ms: f64,
    pub docker_p50_ms: f64,
    pub baton_total_ms: f64,
    pub docker_total_ms: f64,
    /// Baton's median per-task time over docker run's (lower is better).
    pub ratio: f64,
    /// The same N tasks with no `needs`, as a user would submit a batch.
    pub baton_parallel_ms: f64,
    /// `baton_parallel_ms / docker_total_ms`.
    pub parallel_ratio: f64,
}

const CMD: &str = r#"echo '{"result":"ok"}'"#;

/// N container tasks one after another through Baton, against N bare
/// `docker run --rm` with the same sandbox flags, one after another.
pub async fn containers(h: &Harness, n: usize) -> anyhow::Result<Containers> {
    let mut y = format!("name: bench-box\nroles:\n  {DOCKER_ROLE}: {{ image: \"baton/agent:local\" }}\nphases:\n  - id: p\n    tasks:\n");
    for i in 0..n {
        let _ = write!(
            y,
            "      - id: c{i}\n        role: {DOCKER_ROLE}\n        run: [\"sh\", \"-c\", {:?}]\n",
            CMD
        );
        if i > 0 {
            let _ = writeln!(y, "        needs: [c{}]", i - 1);
        }
    }
    let t = Instant::now();
    let run = h.submit(&y).await?;
    h.wait_end(&run, Duration::from_secs(600)).await?;
    let baton_total_ms = t.elapsed().as_secs_f64() * 1e3;
    let ev = h.events(&run).await?;
    // Per task: from the previous result (or the submission) to this result.
    let mut marks: Vec<i128> = vec![ev.first().map(|e| e.0).unwrap_or(0)];
    marks.extend(
        ev.iter()
            .filter(|(_, e)| matches!(e.body, Some(Body::TaskFinished(_))))
            .map(|e| e.0),
    );
    let baton: Vec<f64> = marks
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 / 1e6)
        .collect();

    let mut docker = Vec::new();
    let t = Instant::now();
    for _ in 0..n {
        let s = Instant::now();
        let out = tokio::process::Command::new("docker")
            .args([
                "run",
                "--rm",
                "--network",
                "none",
                "--read-only",
                "--cap-drop",
                "ALL",
                "--security-opt",
                "no-new-privileges",
                "--user",
                "10001:10001",
                "--memory",
                "256m",
                "--memory-swap",
                "256m",
                "--cpus",
                "1",
                "--pids-limit",
                "128",
                "--tmpfs",
                "/tmp:rw,nosuid,nodev,size=64m,uid=10001,gid=10001",
                "--tmpfs",
                "/baton/out:rw,nosuid,nodev,size=64m,uid=10001,gid=10001",
                "baton/agent:local",
                "sh",
                "-c",
                CMD,
            ])
            .output()
            .await?;
        anyhow::ensure!(
            out.status.success(),
            "docker run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        docker.push(s.elapsed().as_secs_f64() * 1e3);
    }
    let docker_total_ms = t.elapsed().as_secs_f64() * 1e3;
    let independent = y
        .lines()
        .filter(|l| !l.contains("needs:"))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    let t = Instant::now();
    let run = h.submit(&independent).await?;
    h.wait_end(&run, Duration::from_secs(600)).await?;
    let baton_parallel_ms = t.elapsed().as_secs_f64() * 1e3;
    let b = Summary::of(baton);
    let d = Summary::of(docker);
    Ok(Containers {
        n,
        baton_p50_ms: b.p50,
        docker_p50_ms: d.p50,
        baton_total_ms,
        docker_total_ms,
        ratio: b.p50 / d.p50,
        baton_parallel_ms,
        parallel_ratio: baton_parallel_ms / docker_total_ms,
    })
}

/// a → (b, c, d) → e in containers, submit to end.
pub async fn dag5(h: &Harness, reps: usize) -> anyhow::Result<Summary> {
    let mut y = format!("name: bench-dag\nroles:\n  {DOCKER_ROLE}: {{ image: \"baton/agent:local\" }}\nphases:\n  - id: p\n    tasks:\n");
    for (id, needs) in [
        ("a", ""),
        ("b", "a"),
        ("c", "a"),
        ("d", "a"),
        ("e", "b, c, d"),
    ] {
        let _ = write!(
            y,
            "      - id: {id}\n        role: {DOCKER_ROLE}\n        run: [\"sh\", \"-c\", {:?}]\n",
            CMD
        );
        if !needs.is_empty() {
            let _ = writeln!(y, "        needs: [{needs}]");
        }
    }
    let mut samples = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let run = h.submit(&y).await?;
        h.wait_end(&run, Duration::from_secs(120)).await?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Summary::of(samples))
}
