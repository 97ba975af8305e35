//! Who is calling the admin API, and what they may do.
//!
//! # Layout
//! - [`identity`]: [`Identity`] and [`Role`], and [`caller`], which reads the
//!   identity the authentication layer attached to a request.
//! - [`token`]: making tokens, and the hash the server keeps of them.
//! - [`store`]: [`TokenStore`], the tokens file: hashes, names and roles.
//! - [`reload`]: following the tokens file while serving (poll and SIGHUP).
//! - [`table`]: the least role each gRPC method needs.
//! - [`check`]: [`Auth`] (on or off), and [`authorize`]: one request's verdict.
//! - [`layer`]: [`AuthLayer`], the tower layer that applies it on the server.
//! - [`tls`]: [`TlsOptions`]: TLS, and mTLS with a client CA.

pub mod check;
pub mod identity;
pub mod layer;
pub mod reload;
pub mod store;
pub mod table;
pub mod tls;
pub mod token;

pub use check::{authorize, Auth};
pub use identity::{caller, Identity, Role};
pub use layer::AuthLayer;
pub use store::TokenStore;
pub use tls::TlsOptions;
