//! `baton.trigger.<plan>`: a NATS request with a JSON object of inputs starts
//! a run of a registered plan; the reply is `{"run_id":..}` or `{"error":..}`.

use std::collections::BTreeMap;

use tokio_util::sync::CancellationToken;

use crate::submit::{Submission, Submitter};
use crate::Error;

pub async fn run(
    client: async_nats::Client,
    submitter: Submitter,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let subject = baton_proto::subjects::TRIGGER_ALL;
    crate::requests::serve(client, subject, "trigger", cancel, |subject, payload| {
        let submitter = submitter.clone();
        async move {
            let plan = subject.rsplit('.').next().unwrap_or_default().to_string();
            let inputs = match parse_inputs(&payload) {
                Ok(inputs) => inputs,
                Err(e) => return serde_json::json!({ "error": e }),
            };
            let s = Submission {
                plan_yaml: String::new(),
                plan_file: String::new(),
                plan_name: plan,
                inputs,
                submitted_by: "nats-trigger".into(),
                trigger: "nats".into(),
            };
            match submitter.submit(s).await {
                Ok(run_id) => serde_json::json!({ "run_id": run_id }),
                Err(e) => serde_json::json!({ "error": e.to_string() }),
            }
        }
    })
    .await
}

/// An empty body means no inputs; otherwise a JSON object whose scalar values become strings.
pub fn parse_inputs(body: &[u8]) -> Result<BTreeMap<String, String>, String> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(BTreeMap::new());
    }
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("trigger body is not JSON ({e}) — send an object of inputs, e.g. {{\"version\":\"v1\"}}"))?;
    let obj = v
        .as_object()
        .ok_or("trigger body must be a JSON object of inputs, e.g. {\"version\":\"v1\"}")?;
    inputs_from_object(obj)
}

/// A JSON object's scalar values as input strings; objects, arrays and nulls are refused.
pub fn inputs_from_object(
    obj: &serde_json::Map<String, serde_json::Value>,
) -> Result<BTreeMap<String, String>, String> {
    obj.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
            serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {
                Ok((k.clone(), v.to_string()))
            }
            _ => Err(format!("input `{k}` must be a string, number or boolean")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_inputs;

    #[test]
    fn inputs_from_json() {
        let m = parse_inputs(br#"{"version":"v1","n":3,"go":true}"#).unwrap();
        assert_eq!(m["version"], "v1");
        assert_eq!(m["n"], "3");
        assert_eq!(m["go"], "true");
        assert!(parse_inputs(b"").unwrap().is_empty());
        assert!(parse_inputs(b"[1]").unwrap_err().contains("object"));
        assert!(parse_inputs(b"{nope").unwrap_err().contains("not JSON"));
        assert!(parse_inputs(br#"{"a":{"b":1}}"#)
            .unwrap_err()
            .contains("`a`"));
    }
}
