//! Containers a test started, removed when the test ends, pass or fail.

use bollard::query_parameters::ListContainersOptionsBuilder;
use std::collections::HashMap;

/// Removes every container carrying `label=value` on drop.
pub struct LabelledContainers {
    pub label: String,
    pub value: String,
}

impl LabelledContainers {
    pub fn new(label: &str, value: &str) -> Self {
        Self {
            label: label.into(),
            value: value.into(),
        }
    }

    /// Containers still present with the label (running or not).
    pub async fn count(&self) -> usize {
        let docker = bollard::Docker::connect_with_local_defaults().expect("docker");
        let mut filters = HashMap::new();
        filters.insert(
            "label".to_string(),
            vec![format!("{}={}", self.label, self.value)],
        );
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        docker
            .list_containers(Some(opts))
            .await
            .map(|v| v.len())
            .unwrap_or(0)
    }
}

impl Drop for LabelledContainers {
    fn drop(&mut self) {
        // Drop cannot be async; the docker CLI is always present where Docker tests run.
        let filter = format!("label={}={}", self.label, self.value);
        if let Ok(out) = std::process::Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .output()
        {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(String::from)
                .collect();
            if !ids.is_empty() {
                let _ = std::process::Command::new("docker")
                    .arg("rm")
                    .arg("-f")
                    .args(&ids)
                    .output();
            }
        }
    }
}
