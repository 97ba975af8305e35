//! The plan format from outside the crate, one module per area: the
//! release-train plan and every validation check (`validate`), role specs and
//! their schemas (`role_specs`), sandbox requests (`sandbox`), and the
//! ceilings of every duration a plan writes (`durations`).

mod durations;
mod role_specs;
mod sandbox;
mod validate;
