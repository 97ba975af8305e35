//! Who is calling the admin API, and what they may do.
//!
//! # Layout
//! - [`identity`]: [`Identity`] and [`Role`], and [`caller`], which reads the
//!   identity the authentication layer attached to a request.

pub mod identity;

pub use identity::{caller, Identity, Role};
