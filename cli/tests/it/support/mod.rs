//! What the tests share.
//!
//! - [`cluster`] (its items are re-exported here): a whole Baton in the test
//!   process, with authentication on; reading a run's events and logs.
//! - [`audit`]: a Baton whose AUDIT stream an operator can edit, and the
//!   chain's readers and forgers.
//! - [`logs`]: the services' log output of one test, captured.
//! - [`queue`] (its items are re-exported here): streams' sizes, and
//!   readers of a work queue that take messages and die unanswered.
//! - [`wait`]: [`eventually`], the one polling helper.
//!
//! Every test of this binary runs in one process, on parallel threads:
//! nothing here is global but the agent image build (once) and a counter
//! for worker ids. No test sets a global tracing subscriber, changes the
//! current directory, or sets an environment variable other than its own
//! uniquely named ones.

pub mod audit;
pub mod cluster;
pub mod logs;
pub mod queue;
pub mod wait;

pub use cluster::*;
pub use queue::*;
pub use wait::eventually;
