//! Test harness: a real `nats-server` per test, Docker clean-up, and polling assertions.
//!
//! # Layout
//! - [`nats`]: Baton's one nats-server launcher. [`NatsServer::start`] spawns
//!   `nats-server -js -p -1 --store_dir <tmp>` for a test and kills it on drop;
//!   [`NatsServer::launch`] takes a port, a store and config text (what
//!   `baton dev`, `baton bench` and the chaos cluster use).
//! - [`docker`]: removes containers that a test labelled, on drop.
//! - [`assert_eventually!`]: poll a condition until it holds or a deadline passes; never a bare sleep.
#![forbid(unsafe_code)]

pub mod docker;
pub mod nats;

pub use docker::LabelledContainers;
pub use nats::{find_binary, nats_server_binary, LaunchError, NatsOptions, NatsServer};

/// The workspace root, for tests that need `examples/` or `deploy/`.
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support lives one level below the workspace root")
        .to_path_buf()
}

/// Poll `$cond` (an expression, may `.await`) every 20 ms until it is true,
/// or panic with `$msg` after `$timeout`.
#[macro_export]
macro_rules! assert_eventually {
    ($timeout:expr, $cond:expr, $($msg:tt)+) => {{
        let deadline = ::std::time::Instant::now() + $timeout;
        loop {
            if $cond {
                break;
            }
            if ::std::time::Instant::now() > deadline {
                panic!("not true within {:?}: {}", $timeout, format!($($msg)+));
            }
            ::tokio::time::sleep(::std::time::Duration::from_millis(20)).await;
        }
    }};
}
