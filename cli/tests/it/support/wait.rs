//! Waiting for something to become true: one helper, [`eventually`], for
//! every wait that has to poll. A run's end is [`baton::local::wait_end`]'s;
//! a plain condition may use `baton_test_support::assert_eventually!`.

use std::fmt::Debug;
use std::time::{Duration, Instant};

/// How often [`eventually`] tries again (as `assert_eventually!` does).
const EVERY: Duration = Duration::from_millis(20);

/// What one try of [`eventually`] gives: `Some`/`Ok` ends the wait with its
/// value; `None`/`Err` tries again, and the last `Err` is shown if time runs out.
pub trait Attempt {
    type Value;
    type Last;
    fn into_result(self) -> Result<Self::Value, Self::Last>;
    /// What the panic says about the last try.
    fn describe(last: &Self::Last) -> String;
}

impl<T> Attempt for Option<T> {
    type Value = T;
    type Last = ();
    fn into_result(self) -> Result<T, ()> {
        self.ok_or(())
    }
    fn describe(_: &()) -> String {
        String::new()
    }
}

impl<T, E: Debug> Attempt for Result<T, E> {
    type Value = T;
    type Last = E;
    fn into_result(self) -> Result<T, E> {
        self
    }
    fn describe(last: &E) -> String {
        format!("; last seen: {last:#?}")
    }
}

/// Try `attempt` every 20 ms until it gives a value, and return that value;
/// panic, naming `what`, if none came within `timeout`. A panic inside
/// `attempt` (a state the wait must never pass through) fails at once.
pub async fn eventually<A: Attempt>(
    what: &str,
    timeout: Duration,
    mut attempt: impl AsyncFnMut() -> A,
) -> A::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match attempt().await.into_result() {
            Ok(v) => return v,
            Err(last) => last,
        };
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}{}",
            A::describe(&last)
        );
        tokio::time::sleep(EVERY).await;
    }
}
