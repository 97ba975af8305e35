//! W3C trace context as it travels in the `traceparent` header, so that one
//! run is one trace across the coordinator, the workers and the gates.

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

/// `00-<trace id>-<span id>-01` for a new root (the run's span).
pub fn new_traceparent() -> String {
    let t: u128 = rand::random::<u128>().max(1);
    let s: u64 = rand::random::<u64>().max(1);
    format!("00-{t:032x}-{s:016x}-01")
}

pub fn format(sc: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    )
}

/// A remote span context, or `None` for anything malformed (it is then ignored, never fatal).
pub fn parse(tp: &str) -> Option<SpanContext> {
    let mut parts = tp.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = TraceFlags::new(u8::from_str_radix(flags, 16).ok()?);
    Some(SpanContext::new(
        trace_id,
        span_id,
        flags,
        true,
        TraceState::default(),
    ))
}

/// The trace id of a traceparent, as hex; empty when malformed.
pub fn trace_id(tp: &str) -> String {
    parse(tp)
        .map(|sc| sc.trace_id().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips() {
        let tp = super::new_traceparent();
        let sc = super::parse(&tp).expect("valid");
        assert_eq!(super::format(&sc), tp);
        assert_eq!(super::trace_id(&tp).len(), 32);
    }

    #[test]
    fn rejects_garbage() {
        assert!(super::parse("").is_none());
        assert!(super::parse("01-abc-def-00").is_none());
        assert!(super::parse("00-00000000000000000000000000000000-0000000000000001-01").is_none());
    }
}
