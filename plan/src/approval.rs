//! The `approval` gate: `approval: { quorum: 2, allow_self_approval: false,
//! expires: 4h, on_expiry: halt }`, every key optional.

use marked_yaml::Node;

use super::duration::{capped, format_duration, MAX_APPROVAL_EXPIRY};
use super::error::suggest;
use super::model::{ApprovalSpec, OnExpiry};
use super::node::{is_null, Cx, Field};

const KEYS: &[&str] = &["quorum", "allow_self_approval", "expires", "on_expiry"];

/// `approval: {}` (or nothing) gives [`ApprovalSpec::default`].
pub(crate) fn approval(cx: &mut Cx, f: Field<'_>) -> Option<ApprovalSpec> {
    let mut spec = ApprovalSpec::default();
    if is_null(f.node) {
        return Some(spec);
    }
    let fs = cx.fields(f.node, f.pos(), "the `approval` gate", KEYS)?;
    if let Some(q) = fs.get("quorum") {
        spec.quorum = cx.uint(q, u32::MAX)?;
        if spec.quorum == 0 {
            cx.err(
                q.pos(),
                "quorum 0 means nobody has to approve",
                "use a quorum of at least 1",
            );
        }
    }
    if let Some(b) = fs.get("allow_self_approval") {
        spec.allow_self_approval = match b.node {
            Node::Scalar(s) if s.as_str() == "true" => true,
            Node::Scalar(s) if s.as_str() == "false" => false,
            _ => {
                cx.err(
                    b.pos(),
                    "`allow_self_approval` must be true or false",
                    "write `allow_self_approval: false` to keep the submitter from approving their own run",
                );
                return None;
            }
        };
    }
    if let Some(e) = fs.get("expires") {
        let (text, _) = cx.string(e)?;
        let max = MAX_APPROVAL_EXPIRY;
        let d = capped(
            cx,
            e,
            &text,
            "approval expires",
            max,
            "use a number and a unit, e.g. 30m, 4h",
            &format!(
                "use at most `expires: {}`, or leave `expires` out to wait for people without a deadline",
                format_duration(max)
            ),
        )?;
        if d.is_zero() {
            cx.err(
                e.pos(),
                "an approval that expires after 0 could never be given",
                "use e.g. `expires: 4h`, or leave `expires` out to wait forever",
            );
            return None;
        }
        spec.expires = d;
    }
    if let Some(o) = fs.get("on_expiry") {
        let (text, _) = cx.string(o)?;
        spec.on_expiry = match text.as_str() {
            "fail" => OnExpiry::Fail,
            "halt" => OnExpiry::Halt,
            other => {
                cx.err(
                    o.pos(),
                    format!("unknown on_expiry `{other}`"),
                    suggest(other, ["fail", "halt"], "allowed values"),
                );
                return None;
            }
        };
        if fs.get("expires").is_none() {
            cx.err(
                o.key,
                "on_expiry only applies with `expires`",
                "add e.g. `expires: 4h` to the approval gate, or remove `on_expiry`",
            );
        }
    }
    Some(spec)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{load, GateSpec, OnExpiry};

    fn plan_with(gate: &str) -> String {
        format!(
            "name: p\nroles:\n  r: {{ image: img }}\nphases:\n  - id: a\n    tasks:\n      - {{ id: t, role: r, run: [\"true\"] }}\n    gates:\n      - approval: {gate}\n"
        )
    }

    #[test]
    fn defaults_and_every_key() {
        let p = load("p.yaml", &plan_with("{}")).unwrap();
        let GateSpec::Approval(a) = &p.phases[0].gates[0] else {
            panic!("not an approval gate: {:?}", p.phases[0].gates)
        };
        assert_eq!(*a, super::ApprovalSpec::default());
        assert!(a.allow_self_approval);
        let yaml =
            plan_with("{ quorum: 2, allow_self_approval: false, expires: 4h, on_expiry: halt }");
        let p = load("p.yaml", &yaml).unwrap();
        let GateSpec::Approval(a) = &p.phases[0].gates[0] else {
            panic!()
        };
        assert_eq!(a.quorum, 2);
        assert!(!a.allow_self_approval);
        assert_eq!(a.expires, Duration::from_secs(4 * 3600));
        assert_eq!(a.on_expiry, OnExpiry::Halt);
    }

    #[test]
    fn mistakes_point_at_the_value_with_a_hint() {
        let cases = [
            (
                "{ quorum: 0 }",
                "p.yaml:9:29: quorum 0 means nobody has to approve",
            ),
            (
                "{ on_expiry: hlat }",
                "p.yaml:9:32: unknown on_expiry `hlat` — did you mean `halt`",
            ),
            (
                "{ expires: 4h, on_expiry: stop }",
                "unknown on_expiry `stop`",
            ),
            ("{ expires: soon }", "p.yaml:9:30:"),
            ("{ expires: 0s }", "expires after 0 could never be given"),
            (
                "{ allow_self_approval: maybe }",
                "`allow_self_approval` must be true or false",
            ),
            (
                "{ on_expiry: fail }",
                "p.yaml:9:21: on_expiry only applies with `expires`",
            ),
            (
                "{ qourum: 2 }",
                "unknown key `qourum` in the `approval` gate",
            ),
        ];
        for (gate, want) in cases {
            let err = load("p.yaml", &plan_with(gate)).unwrap_err().to_string();
            assert!(err.contains(want), "{gate}: {err}");
        }
    }
}
