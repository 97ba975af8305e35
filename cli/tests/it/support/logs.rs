//! The services' log output of one test, for searching afterwards.
//!
//! Every test of this binary shares one process, so no test installs a
//! global subscriber: a test that reads logs runs on its own runtime whose
//! every thread logs to that test's [`Captured`] only, and nothing else
//! logs anywhere.

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// What the services of one test logged.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything logged so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Run `test` on a fresh multi-thread runtime of `threads` workers (as
/// `#[tokio::test(flavor = "multi_thread", worker_threads = N)]` would),
/// with the services' logs (info, debug for Baton's crates) captured into
/// the [`Captured`] it is given, from every thread of that runtime and from
/// none other.
pub fn with_captured_logs<F, Fut>(threads: usize, test: F) -> Fut::Output
where
    F: FnOnce(Captured) -> Fut,
    Fut: Future,
{
    let captured = Captured::default();
    let writer = captured.clone();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_env_filter("info,baton_worker=debug,baton_coordinator=debug,baton_gates=debug")
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    );
    let on_start = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .on_thread_start(move || {
            // Kept for the thread's life.
            std::mem::forget(tracing::dispatcher::set_default(&on_start));
        })
        .build()
        .unwrap();
    let _main = tracing::dispatcher::set_default(&dispatch);
    runtime.block_on(test(captured))
}
