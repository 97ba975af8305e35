//! What a webhook body asks for: `{"inputs": {...}}`, or an Alertmanager
//! notification whose labels become inputs.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::trigger::inputs_from_object;

/// A parsed body.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// Start a run with these inputs (still to be checked against the plan).
    Start {
        inputs: BTreeMap<String, String>,
        /// From Alertmanager: labels the plan does not declare are dropped,
        /// since an alert carries many a plan never asked for.
        from_alert: bool,
    },
    /// An Alertmanager notification that its alerts resolved: nothing to start.
    Resolved,
}

pub fn parse(body: &[u8]) -> Result<Request, String> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Request::Start {
            inputs: BTreeMap::new(),
            from_alert: false,
        });
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        format!("body is not JSON: {e} — send {{\"inputs\":{{\"name\":\"value\"}}}} or an Alertmanager notification")
    })?;
    let obj = v.as_object().ok_or(
        "body must be a JSON object: {\"inputs\":{\"name\":\"value\"}} or an Alertmanager notification",
    )?;
    if obj.contains_key("alerts") {
        return alertmanager(obj);
    }
    if let Some(other) = obj.keys().find(|k| *k != "inputs") {
        return Err(format!(
            "unexpected field `{other}` — send {{\"inputs\":{{\"name\":\"value\"}}}} or an Alertmanager notification"
        ));
    }
    let inputs = match obj.get("inputs") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(m)) => inputs_from_object(m)?,
        Some(_) => return Err("`inputs` must be a JSON object of name → value".into()),
    };
    Ok(Request::Start {
        inputs,
        from_alert: false,
    })
}

/// Alertmanager's webhook payload (version 4): inputs are the common labels,
/// overlaid by the group labels and, when there is exactly one alert, by its
/// own labels.
fn alertmanager(obj: &Map<String, Value>) -> Result<Request, String> {
    if obj.get("status").and_then(Value::as_str) == Some("resolved") {
        return Ok(Request::Resolved);
    }
    let alerts = obj
        .get("alerts")
        .and_then(Value::as_array)
        .ok_or("Alertmanager `alerts` must be an array")?;
    let mut inputs = BTreeMap::new();
    let mut overlay = |field: &str, labels: Option<&Value>| -> Result<(), String> {
        match labels {
            None | Some(Value::Null) => Ok(()),
            Some(Value::Object(m)) => {
                inputs.extend(inputs_from_object(m).map_err(|e| format!("`{field}`: {e}"))?);
                Ok(())
            }
            Some(_) => Err(format!(
                "Alertmanager `{field}` must be an object of labels"
            )),
        }
    };
    overlay("commonLabels", obj.get("commonLabels"))?;
    overlay("groupLabels", obj.get("groupLabels"))?;
    if let [only] = alerts.as_slice() {
        overlay("alerts[0].labels", only.get("labels"))?;
    }
    Ok(Request::Start {
        inputs,
        from_alert: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(body: &str) -> (BTreeMap<String, String>, bool) {
        match parse(body.as_bytes()).unwrap() {
            Request::Start { inputs, from_alert } => (inputs, from_alert),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn plain_inputs() {
        let (m, alert) = start(r#"{"inputs":{"version":"v2","n":3,"go":true}}"#);
        assert!(!alert);
        assert_eq!(m["version"], "v2");
        assert_eq!(m["n"], "3");
        assert_eq!(m["go"], "true");
        assert!(start("").0.is_empty());
        assert!(start("{}").0.is_empty());
        assert!(parse(br#"{"inputs":{"a":[1]}}"#)
            .unwrap_err()
            .contains("`a`"));
        assert!(parse(br#"{"version":"v2"}"#)
            .unwrap_err()
            .contains("unexpected field `version`"));
        let e = parse(b"{\n\"inputs\": nope}").unwrap_err();
        assert!(e.contains("line 2 column"), "{e}");
    }

    const ONE_ALERT: &str = r#"{
      "version": "4", "status": "firing", "receiver": "baton",
      "groupLabels": {"alertname": "DiskFull", "service": "db"},
      "commonLabels": {"alertname": "DiskFull", "service": "api", "severity": "page"},
      "alerts": [{"status": "firing",
                  "labels": {"alertname": "DiskFull", "instance": "db-1", "severity": "critical"},
                  "annotations": {"summary": "disk full"}}]
    }"#;

    #[test]
    fn alertmanager_labels_overlay() {
        let (m, alert) = start(ONE_ALERT);
        assert!(alert);
        assert_eq!(m["alertname"], "DiskFull");
        assert_eq!(m["service"], "db", "group labels win over common labels");
        assert_eq!(m["severity"], "critical", "the one alert's labels win");
        assert_eq!(m["instance"], "db-1");
    }

    #[test]
    fn alertmanager_many_alerts_use_shared_labels_only() {
        let body = r#"{"version":"4","status":"firing",
          "commonLabels":{"alertname":"Down"},"groupLabels":{"service":"web"},
          "alerts":[{"labels":{"instance":"a"}},{"labels":{"instance":"b"}}]}"#;
        let (m, _) = start(body);
        assert_eq!(m.len(), 2);
        assert_eq!(m["service"], "web");
        assert!(!m.contains_key("instance"));
    }

    #[test]
    fn alertmanager_resolved_starts_nothing() {
        let body = ONE_ALERT.replace(
            r#""status": "firing", "receiver""#,
            r#""status": "resolved", "receiver""#,
        );
        assert_eq!(parse(body.as_bytes()).unwrap(), Request::Resolved);
    }
}
