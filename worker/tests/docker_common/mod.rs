//! Shared by the Docker runtime tests: the agent image, a connected
//! runtime, specs, and (from `runtime_common`) a run that collects the log
//! lines.

use std::sync::Once;
use std::time::Duration;

use baton_test_support::workspace_root;
use baton_worker::runtime::{DockerRuntime, SandboxPolicy, TaskSpec};

#[path = "../runtime_common/mod.rs"]
#[allow(dead_code)] // each test uses a part
mod runtime_common;
pub use runtime_common::*;

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

/// Docker volumes carrying `label=value`.
#[allow(dead_code)] // not every Docker test looks at volumes
pub fn volumes_labelled(label: &str, value: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["volume", "ls", "-q", "--filter"])
        .arg(format!("label={label}={value}"))
        .output()
        .expect("docker volume ls");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}
