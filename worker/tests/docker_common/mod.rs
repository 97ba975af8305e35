//! Shared by the Docker runtime tests: the agent image, a connected
//! runtime, specs and a run that collects the log lines.

use std::sync::Once;
use std::time::Duration;

use baton_test_support::workspace_root;
use baton_worker::runtime::{
    DockerRuntime, LogLine, Outcome, Runtime, RuntimeError, SandboxPolicy, Stream, TaskSpec,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub const IMAGE: &str = "baton/agent:local";

pub fn ensure_image() {
    static BUILT: Once = Once::new();
    BUILT.call_once(|| {
        let present = std::process::Command::new("docker")
            .args(["image", "inspect", IMAGE])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if present {
            return;
        }
        let script = workspace_root().join("deploy/images/agent/build.sh");
        let out = std::process::Command::new(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "building {IMAGE} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

pub async fn docker() -> DockerRuntime {
    ensure_image();
    DockerRuntime::connect(SandboxPolicy::default())
        .await
        .unwrap_or_else(|e| panic!("these tests need a running Docker engine: {e}"))
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

pub fn spec(run_id: &str, script: &str) -> TaskSpec {
    TaskSpec {
        env: vec![("GREETING".into(), "hello there".into())],
        ..TaskSpec::new(
            run_id,
            "t1",
            1,
            IMAGE,
            vec!["sh".into(), "-c".into(), script.into()],
            Duration::from_secs(30),
        )
    }
}

pub async fn run_with(
    rt: &Runtime,
    spec: &TaskSpec,
    cancel: CancellationToken,
) -> (Result<Outcome, RuntimeError>, Vec<LogLine>) {
    let (tx, mut rx) = mpsc::channel(16);
    let drain = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Some(line) = rx.recv().await {
            lines.push(line);
        }
        lines
    });
    let outcome = rt.run(spec, tx, cancel).await;
    (outcome, drain.await.expect("log drain"))
}

pub fn lines(logs: &[LogLine], stream: Stream) -> Vec<&str> {
    logs.iter()
        .filter(|l| l.stream == stream)
        .map(|l| l.line.as_str())
        .collect()
}
