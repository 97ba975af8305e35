//! One run: its state, the pure fold over its events, and views of it.

pub mod fold;
pub mod state;
pub mod view;

#[cfg(test)]
mod tests;

pub use fold::{backoff_ms, Command};
pub use state::*;
