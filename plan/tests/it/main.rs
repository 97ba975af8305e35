//! The plan format from outside the crate, one module per area: the
//! release-train plan and every validation check (`validate`), role specs and
//! their schemas (`role_specs`), and sandbox requests (`sandbox`).

mod role_specs;
mod sandbox;
mod validate;
