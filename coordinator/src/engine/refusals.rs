//! Events the fold will not act on, counted and reported as security
//! warnings: a body under another kind's subject or another run's, a claim
//! on another attempt's subject, a result or loss that does not match its
//! attempt's claim, bytes that do not decode. NATS permissions bind a
//! credential to subjects, not to what it writes, so each of these is a
//! credential publishing what it may not decide (or a bug worth finding).
//!
//! A refused event is never folded and never audited; the warning names
//! the subject, the body's kind and why, never the body.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use baton_proto::codec::Refused;
use baton_proto::kinds::EventKind;

/// Shared by the fold loop and the coordinator's [`crate::Handle`].
#[derive(Clone, Debug, Default)]
pub struct Refusals(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    total: AtomicU64,
    by_reason: Mutex<BTreeMap<&'static str, u64>>,
}

impl Refusals {
    /// `kind` is the body's, `None` when there is no body to name.
    pub fn record(&self, subject: &str, kind: Option<EventKind>, refused: &Refused) {
        let kind = kind.map_or("none", EventKind::as_str);
        self.0.total.fetch_add(1, Ordering::Relaxed);
        *self
            .0
            .by_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(refused.reason())
            .or_default() += 1;
        tracing::warn!(
            target: "baton::security",
            subject,
            kind,
            reason = refused.reason(),
            "security: event dropped, never folded nor audited: {refused} — a credential \
             published what it may not decide; check which user may publish on this subject"
        );
    }

    /// Events dropped since this coordinator started.
    pub fn total(&self) -> u64 {
        self.0.total.load(Ordering::Relaxed)
    }

    /// The same, by [`Refused::reason`].
    pub fn by_reason(&self) -> BTreeMap<&'static str, u64> {
        self.0
            .by_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
