//! One rule for the long-running parts of every component: the
//! coordinator (and its engine), the worker, the gate evaluators, and the
//! processes that run them (`baton coordinator|worker|gates|dev`).
//!
//! - Each part is a named task; the name is in every log line about it.
//! - **The first part to end stops the component.** The supervisor cancels
//!   its [`Supervisor::token`], which every part watches, and logs the end
//!   when it happens, not after the others have stopped.
//! - **A part that ends without an error while the component is not
//!   stopping has failed too**: a listener whose subscription closed, a
//!   loop whose stream ended, serves nobody, and a component that carries
//!   on without it only looks alive. It is returned as [`Stopped::Ended`].
//!   A part that may legitimately have nothing to do is not added at all
//!   (the tokens-file follower when the tokens come from no file, say).
//! - **The others get a bounded time to stop** (`grace`, from the moment
//!   the component stops, whatever stopped it). Parts still running then
//!   are aborted and named in a warning; [`Stopped::Unstopped`] is returned
//!   if nothing failed before.
//! - **What [`Supervisor::run`] returns**: the first error (or panic) in the
//!   order the parts ended, even one that came while stopping; else the
//!   first part that ended unasked; else the parts that did not stop in
//!   time; else `Ok`. A component stopped by its caller whose parts all
//!   stop within `grace` returns `Ok`.
//!
//! ```no_run
//! # async fn f(cancel: tokio_util::sync::CancellationToken) -> Result<(), String> {
//! use baton_proto::supervise::Supervisor;
//! let mut parts = Supervisor::new("gates", &cancel);
//! let stop = parts.token();
//! parts.spawn("gate requests", async move {
//!     stop.cancelled().await; // serve until stopped
//!     Ok::<(), String>(())
//! });
//! parts.run().await
//! # }
//! ```

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::task::{Id, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

/// How long parts may take to stop unless [`Supervisor::with_grace`] says otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// Why a component stopped when no part returned an error of its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stopped {
    #[error("{component}: `{part}` stopped while the {component} was serving")]
    Ended { component: String, part: String },
    #[error("{component}: `{part}` panicked: {message}")]
    Panicked {
        component: String,
        part: String,
        message: String,
    },
    #[error("{component}: {} did not stop within {grace:?} and {} aborted", list(parts), if parts.len() == 1 { "was" } else { "were" })]
    Unstopped {
        component: String,
        parts: Vec<String>,
        grace: Duration,
    },
}

fn list(parts: &[String]) -> String {
    parts
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// For callers whose errors are strings (the `baton` commands).
impl From<Stopped> for String {
    fn from(s: Stopped) -> String {
        s.to_string()
    }
}

/// The parts of one component, and the rule they run under (see the module).
pub struct Supervisor<E> {
    component: String,
    stop: CancellationToken,
    grace: Duration,
    parts: JoinSet<Result<(), E>>,
    names: HashMap<Id, String>,
}

/// What [`Supervisor::run`] has seen so far.
struct Outcome<E> {
    error: Option<E>,
    ended: Option<Stopped>,
}

impl<E> Supervisor<E>
where
    E: Display + From<Stopped> + Send + 'static,
{
    /// Parts of `component` (a name for the log), stopped when `cancel` is.
    pub fn new(component: impl Into<String>, cancel: &CancellationToken) -> Self {
        Self {
            component: component.into(),
            stop: cancel.child_token(),
            grace: DEFAULT_GRACE,
            parts: JoinSet::new(),
            names: HashMap::new(),
        }
    }

    /// How long the parts may take to stop once the component stops.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Cancelled when the component stops: by the caller's token, or by the
    /// first part to end. Parts watch it (or a child of it).
    pub fn token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Start `part` now, as a task named `name`. It is meant to run until
    /// [`Supervisor::token`] is cancelled.
    pub fn spawn<F>(&mut self, name: impl Into<String>, part: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let handle = self.parts.spawn(part);
        self.names.insert(handle.id(), name.into());
    }

    /// Until the component stops, then until its parts have (within the
    /// grace). See the module for what is returned.
    pub async fn run(mut self) -> Result<(), E> {
        let mut outcome = Outcome {
            error: None,
            ended: None,
        };
        if self.parts.is_empty() {
            self.stop.cancelled().await;
        } else {
            tokio::select! {
                _ = self.stop.cancelled() => {}
                Some(r) = self.parts.join_next_with_id() => self.settle(r, &mut outcome),
            }
        }
        self.stop.cancel();
        let deadline = tokio::time::Instant::now() + self.grace;
        loop {
            match tokio::time::timeout_at(deadline, self.parts.join_next_with_id()).await {
                Ok(Some(r)) => self.settle(r, &mut outcome),
                Ok(None) => break,
                Err(_) => {
                    let mut parts: Vec<String> = self.names.values().cloned().collect();
                    parts.sort();
                    tracing::warn!(component = %self.component, parts = ?parts, grace = ?self.grace,
                        "parts did not stop within the grace period; aborted");
                    self.parts.abort_all();
                    outcome.ended.get_or_insert(Stopped::Unstopped {
                        component: self.component.clone(),
                        parts,
                        grace: self.grace,
                    });
                    break;
                }
            }
        }
        match (outcome.error, outcome.ended) {
            (Some(e), _) => Err(e),
            (None, Some(s)) => Err(s.into()),
            (None, None) => Ok(()),
        }
    }

    /// Log how one part ended, and keep what `run` returns; stop the rest.
    fn settle(&mut self, r: Result<(Id, Result<(), E>), JoinError>, outcome: &mut Outcome<E>) {
        let stopping = self.stop.is_cancelled();
        let component = self.component.clone();
        match r {
            Ok((id, Ok(()))) => {
                let part = self.names.remove(&id).unwrap_or_default();
                if stopping {
                    tracing::debug!(component, part, "stopped");
                } else {
                    tracing::error!(component, part, "stopped while serving; stopping the rest");
                    outcome
                        .ended
                        .get_or_insert(Stopped::Ended { component, part });
                }
            }
            Ok((id, Err(e))) => {
                let part = self.names.remove(&id).unwrap_or_default();
                if stopping {
                    tracing::error!(component, part, error = %e, "failed while stopping");
                } else {
                    tracing::error!(component, part, error = %e, "failed; stopping the rest");
                }
                outcome.error.get_or_insert(e);
            }
            Err(e) => {
                let part = self.names.remove(&e.id()).unwrap_or_default();
                if e.is_panic() {
                    let message = panic_message(e.into_panic());
                    tracing::error!(component, part, message, "panicked; stopping the rest");
                    outcome.error.get_or_insert_with(|| {
                        Stopped::Panicked {
                            component,
                            part,
                            message,
                        }
                        .into()
                    });
                }
                // Otherwise aborted: only `run` aborts, after the grace, and says so.
            }
        }
        self.stop.cancel();
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    match p.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_else(|| "(no message)".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use super::*;

    /// Log lines, captured for the test's thread (its runtime is current-thread).
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl Logs {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl std::io::Write for Logs {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let w = logs.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        (logs, tracing::subscriber::set_default(sub))
    }

    /// Serves until stopped; says whether it was.
    async fn server(stop: CancellationToken, saw: Arc<AtomicBool>) -> Result<(), String> {
        stop.cancelled().await;
        saw.store(true, Ordering::SeqCst);
        Ok(())
    }

    #[tokio::test]
    async fn the_first_part_to_fail_stops_the_rest_and_its_error_is_logged_then_and_returned() {
        let (logs, _g) = capture();
        let cancel = CancellationToken::new();
        let mut s = Supervisor::<String>::new("thing", &cancel).with_grace(Duration::from_secs(5));
        let (a, b) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        s.spawn("listener a", server(s.token(), a.clone()));
        s.spawn("listener b", server(s.token(), b.clone()));
        s.spawn("loop", async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err("the bucket is gone".to_string())
        });
        // A slow stopper: by the time it has stopped, the failure is in the log.
        let stop = s.token();
        let seen_in_time = Arc::new(Mutex::new(String::new()));
        let seen = seen_in_time.clone();
        let logs2 = logs.clone();
        s.spawn("slow", async move {
            stop.cancelled().await;
            *seen.lock().unwrap() = logs2.text();
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(())
        });
        let t = Instant::now();
        let r = s.run().await;
        assert_eq!(r, Err("the bucket is gone".to_string()));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(
            a.load(Ordering::SeqCst) && b.load(Ordering::SeqCst),
            "the rest were stopped"
        );
        assert!(!cancel.is_cancelled(), "the caller's token is the caller's");
        let at_stop = seen_in_time.lock().unwrap().clone();
        assert!(
            at_stop.contains("failed; stopping the rest")
                && at_stop.contains("part=\"loop\"")
                && at_stop.contains("the bucket is gone")
                && at_stop.contains("component=\"thing\""),
            "logged when it happened, naming the part: {at_stop}"
        );
    }

    #[tokio::test]
    async fn a_part_that_ends_unasked_stops_the_component_with_an_error() {
        let (logs, _g) = capture();
        let cancel = CancellationToken::new();
        let mut s = Supervisor::<String>::new("worker", &cancel);
        let a = Arc::new(AtomicBool::new(false));
        s.spawn("fetch", server(s.token(), a.clone()));
        s.spawn("cancel listener", async { Ok(()) });
        let r = s.run().await;
        assert_eq!(
            r,
            Err("worker: `cancel listener` stopped while the worker was serving".to_string())
        );
        assert!(a.load(Ordering::SeqCst));
        assert!(
            logs.text().contains("stopped while serving"),
            "{}",
            logs.text()
        );
    }

    #[tokio::test]
    async fn an_error_while_stopping_beats_an_end_that_came_first() {
        let cancel = CancellationToken::new();
        let mut s = Supervisor::<String>::new("engine", &cancel);
        let stop = s.token();
        s.spawn("lease loop", async { Ok(()) });
        s.spawn("fold loop", async move {
            stop.cancelled().await;
            Err("snapshots not written".to_string())
        });
        assert_eq!(s.run().await, Err("snapshots not written".to_string()));
    }

    #[tokio::test]
    async fn stopped_by_the_caller_all_parts_stop_and_it_is_ok() {
        let cancel = CancellationToken::new();
        let mut s = Supervisor::<String>::new("gates", &cancel);
        let (a, b) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        s.spawn("a", server(s.token(), a.clone()));
        s.spawn("b", server(s.token(), b.clone()));
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            c.cancel();
        });
        assert_eq!(s.run().await, Ok(()));
        assert!(a.load(Ordering::SeqCst) && b.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn no_parts_wait_for_the_caller() {
        let cancel = CancellationToken::new();
        let s = Supervisor::<String>::new("empty", &cancel);
        cancel.cancel();
        assert_eq!(s.run().await, Ok(()));
    }

    #[tokio::test]
    async fn parts_that_do_not_stop_are_aborted_after_the_grace() {
        let cancel = CancellationToken::new();
        let grace = Duration::from_millis(100);
        let mut s = Supervisor::<String>::new("coordinator", &cancel).with_grace(grace);
        let dropped = CancellationToken::new();
        let guard = dropped.clone().drop_guard();
        s.spawn("stubborn", async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok(())
        });
        let polite = Arc::new(AtomicBool::new(false));
        s.spawn("polite", server(s.token(), polite.clone()));
        cancel.cancel();
        let t = Instant::now();
        let r = s.run().await;
        let took = t.elapsed();
        assert!(took >= grace && took < grace * 5, "{took:?}");
        assert_eq!(
            r,
            Err("coordinator: `stubborn` did not stop within 100ms and was aborted".to_string())
        );
        assert!(polite.load(Ordering::SeqCst));
        tokio::time::timeout(Duration::from_secs(1), dropped.cancelled())
            .await
            .expect("the stubborn part was aborted (dropped)");
    }

    #[tokio::test]
    async fn a_failure_is_returned_even_when_the_rest_outlive_the_grace() {
        let cancel = CancellationToken::new();
        let mut s =
            Supervisor::<String>::new("worker", &cancel).with_grace(Duration::from_millis(50));
        s.spawn("stubborn", async {
            std::future::pending::<()>().await;
            Ok(())
        });
        s.spawn("registry", async {
            Err("workers bucket deleted".to_string())
        });
        assert_eq!(s.run().await, Err("workers bucket deleted".to_string()));
    }

    #[tokio::test]
    async fn a_panic_is_a_failure_naming_the_part() {
        let cancel = CancellationToken::new();
        let mut s = Supervisor::<String>::new("worker", &cancel);
        let a = Arc::new(AtomicBool::new(false));
        s.spawn("fetch", server(s.token(), a.clone()));
        s.spawn("registry", async {
            if true {
                panic!("boom");
            }
            Ok(())
        });
        assert_eq!(
            s.run().await,
            Err("worker: `registry` panicked: boom".to_string())
        );
        assert!(a.load(Ordering::SeqCst));
    }
}
