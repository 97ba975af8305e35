//! Wire formats of Baton: the only place a message on the bus or the admin API is defined.
//!
//! # Layout
//! - `baton/v1/bus.proto` → [`v1`]: events, task dispatches and gate requests on NATS JetStream,
//!   and the status enums ([`v1::RunStatus`], [`v1::PhaseStatus`], [`v1::TaskStatus`]).
//! - `baton/v1/admin.proto` → [`v1::admin_client`], [`v1::admin_server`]: the gRPC admin service.
//! - [`client`]: connecting to the admin API as a client: the token (never a flag), TLS and mTLS.
//! - [`subjects`]: stream, consumer and subject names, the `Nats-Msg-Id` of every publish,
//!   and the one rule for ids in subjects and keys ([`subjects::valid_token`]).
//! - [`kinds`]: the wire vocabulary as typed values: [`kinds::EventKind`] (one per event body,
//!   named as in subjects), the statuses' lowercase snake_case names, and the one way to read a
//!   status ([`kinds::phase_status`], [`kinds::run_status`], [`kinds::task_status`]), which also
//!   reads events written before the status enums.
//! - [`codec`]: encoding helpers, an event's subject ([`codec::event_subject`]), and
//!   [`codec::decode_event`], which binds an event to its subject.
//! - [`bus`]: connecting, and publishing with message ids and trace context.
//! - [`nats_auth`]: credentials and TLS, turned into `async_nats::ConnectOptions`.
//! - [`secret`]: [`secret::Secret`], a string that never prints: passwords, admin tokens, hook secrets.
//! - [`trace`]: the W3C `traceparent` that makes one run one trace.
//! - [`topology`]: the streams and buckets, one table of each, created idempotently by every component.
//! - [`supervise`]: the one rule every component runs its parts under: the
//!   first part to end stops the rest, and its error is logged then and returned.
#![forbid(unsafe_code)]

pub mod bus;
pub mod client;
pub mod codec;
pub mod kinds;
pub mod nats_auth;
pub mod secret;
pub mod subjects;
pub mod supervise;
pub mod topology;
pub mod trace;

/// Generated from `baton/v1/*.proto`.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("baton.v1");
}

/// The encoded `FileDescriptorSet`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("baton_descriptor");
