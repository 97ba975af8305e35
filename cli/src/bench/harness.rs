//! A whole Baton inside the bench process, on its own nats-server.

use std::time::Duration;

use baton_proto::client::Admin;
use baton_proto::v1;
use baton_worker::runtime::{DockerRuntime, NoopRuntime, SandboxPolicy};
use futures::StreamExt;

/// Roles served by the noop worker and by the Docker worker.
pub const NOOP_ROLES: &[&str] = &["n0", "n1", "n2", "n3", "gate-keeper"];
pub const DOCKER_ROLE: &str = "box";

pub struct Harness {
    _nats: baton::nats_server::DevNats,
    _store: tempfile::TempDir,
    pub nats: async_nats::Client,
    pub admin: Admin,
    _local: baton::local::LocalBaton,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Harness {
    pub async fn start(docker: bool) -> anyhow::Result<Harness> {
        let store = tempfile::tempdir()?;
        let nats = baton::nats_server::DevNats::start(free_port()?, Some(store.path()))?;
        let mut workers = vec![baton::local::WorkerSpec {
            options: baton_worker::Options {
                roles: NOOP_ROLES.iter().map(|s| s.to_string()).collect(),
                concurrency: 64,
                ..Default::default()
            },
            runtime: NoopRuntime::new().into(),
        }];
        if docker {
            workers.push(baton::local::WorkerSpec {
                options: baton_worker::Options {
                    roles: vec![DOCKER_ROLE.into()],
                    concurrency: 4,
                    ..Default::default()
                },
                runtime: DockerRuntime::connect(SandboxPolicy::default())
                    .await?
                    .into(),
            });
        }
        let local = baton::local::LocalBaton::start(&nats.url, "127.0.0.1:0".parse()?, workers)
            .await
            .map_err(anyhow::Error::msg)?;
        let admin = local.admin().await.map_err(anyhow::Error::msg)?;
        let client = async_nats::connect(&nats.url).await?;
        Ok(Harness {
            _nats: nats,
            _store: store,
            nats: client,
            admin,
            _local: local,
        })
    }

    pub async fn submit(&self, yaml: &str) -> anyhow::Result<String> {
        let r = self
            .admin
            .clone()
            .submit_run(v1::SubmitRunRequest {
                plan_yaml: yaml.into(),
                plan_file: "bench.yaml".into(),
                ..Default::default()
            })
            .await?;
        Ok(r.into_inner().run_id)
    }

    pub async fn wait_end(&self, run: &str, timeout: Duration) -> anyhow::Result<v1::Run> {
        let r = baton::local::wait_end(&self.admin, run, timeout)
            .await
            .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            r.run_status() == v1::RunStatus::Succeeded,
            "bench run {run} ended {}: {}",
            r.run_status(),
            r.reason
        );
        Ok(r)
    }

    /// The run's events with the server's publish time in ns since the epoch.
    pub async fn events(&self, run: &str) -> anyhow::Result<Vec<(i128, v1::Event)>> {
        let js = async_nats::jetstream::new(self.nats.clone());
        let stream = js.get_stream(baton_proto::subjects::EVENTS_STREAM).await?;
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
                filter_subject: baton_proto::subjects::run_events(run),
                ..Default::default()
            })
            .await?;
        let mut pending = consumer.clone().info().await?.num_pending;
        let mut msgs = consumer.messages().await?;
        let mut out = Vec::new();
        while pending > 0 {
            let Some(m) = tokio::time::timeout(Duration::from_secs(5), msgs.next()).await? else {
                break;
            };
            let m = m?;
            let ns = m
                .info()
                .map(|i| i.published.unix_timestamp_nanos())
                .unwrap_or(0);
            out.push((ns, baton_proto::codec::decode::<v1::Event>(&m.payload)?));
            pending -= 1;
        }
        Ok(out)
    }
}
