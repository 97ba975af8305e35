//! `baton dev` and `baton bench` run their own nats-server when no
//! `--nats-url` is given, through the launcher the tests use.

use std::path::Path;

use baton_test_support::{NatsOptions, NatsServer};

pub struct DevNats {
    pub url: String,
    _server: NatsServer,
}

impl DevNats {
    /// JetStream on `127.0.0.1:port`, on `store_dir` (kept) or a temporary
    /// store (removed on drop).
    pub fn start(port: u16, store_dir: Option<&Path>) -> anyhow::Result<DevNats> {
        let server = NatsServer::launch(NatsOptions {
            port: Some(port),
            store_dir: store_dir.map(Path::to_path_buf),
            config: None,
        })
        .map_err(|e| match e {
            baton_test_support::LaunchError::NotFound => {
                anyhow::anyhow!("{e}, or pass --nats-url")
            }
            e => anyhow::anyhow!("{e} — pass --nats-port or --nats-url"),
        })?;
        Ok(DevNats {
            url: server.url(),
            _server: server,
        })
    }
}
