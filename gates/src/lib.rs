//! Gate evaluators: one file per gate kind, and the service that answers
//! gate requests from the bus.
//!
//! # Layout
//! - [`expr`]: the typed expression language of `expr` gates (and, later, `when:`).
//! - [`kinds`]: one file per gate kind: `tasks`, `expr`, `approval`, `window`.
//!   [`window_check`] validates a window's cron and time zone for the plan validator.
//! - [`service`]: `Options` → `build()` → `Gates::run(cancel)`.
#![forbid(unsafe_code)]

pub mod expr;
pub mod kinds;
pub mod service;

pub use kinds::window::check as window_check;
pub use service::{Gates, Options};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Nats(String),
}
