//! Accepting a run: validate the plan and inputs, then publish `RunSubmitted`.
//! Shared by the gRPC admin service, the NATS trigger and the webhook server.

use std::collections::BTreeMap;

use async_nats::jetstream;
use baton_plan as plan;
use baton_proto::v1::{self, event::Body};
use baton_proto::{bus, subjects};

use crate::state_store::new_run_id;
use crate::Error;

#[derive(Clone)]
pub struct Submitter {
    pub js: jetstream::Context,
    pub plans: jetstream::kv::Store,
    /// The run's lease is taken before its submission is published, so that
    /// no run is ever on the bus without an owner.
    pub leases: std::sync::Arc<crate::lease::Leases>,
    /// Roles that plans may use without declaring them.
    pub roles: crate::roles::RoleRegistry,
}

pub struct Submission {
    pub plan_yaml: String,
    pub plan_file: String,
    pub plan_name: String,
    pub inputs: BTreeMap<String, String>,
    pub submitted_by: String,
    pub trigger: String,
}

impl Submitter {
    /// Validate and publish; the run exists once this returns its id.
    pub async fn submit(&self, s: Submission) -> Result<String, Error> {
        let (yaml, file) = match (s.plan_yaml.is_empty(), s.plan_name.is_empty()) {
            (false, true) => (s.plan_yaml, s.plan_file),
            (true, false) => (
                self.registered(&s.plan_name).await?,
                format!("plan {}", s.plan_name),
            ),
            (false, false) => return Err(Error::PlanSource("both")),
            (true, true) => return Err(Error::PlanSource("neither")),
        };
        let file = if file.is_empty() {
            "plan.yaml".to_string()
        } else {
            file
        };
        let (plan, roles) = self.load(&file, &yaml).await?;
        let inputs = plan::resolve_inputs(&plan, &s.inputs).map_err(Error::InvalidInputs)?;
        let run_id = new_run_id();
        if !self.leases.acquire(&run_id).await? {
            return Err(Error::Bus(
                format!("run id {run_id} is taken; submit again").into(),
            ));
        }
        let traceparent = crate::telemetry::submit_span(&plan.name);
        let body = Body::RunSubmitted(v1::RunSubmitted {
            plan_yaml: yaml,
            plan_file: file,
            inputs: inputs.into_iter().collect(),
            submitted_by: s.submitted_by,
            trigger: s.trigger,
            traceparent: traceparent.clone(),
            roles: roles.into_iter().collect(),
        });
        if let Err(e) = bus::publish_event(
            &self.js,
            &run_id,
            &subjects::msg_id::submitted(&run_id),
            body,
            &traceparent,
        )
        .await
        {
            // Most likely the run does not exist, but the publish may have
            // landed with its ack lost: stop renewing and let the lease
            // expire, so that whoever takes it over finds out from the stream.
            self.leases.forget(&run_id);
            return Err(e.into());
        }
        tracing::info!(run = %run_id, plan = %plan.name, "run accepted");
        Ok(run_id)
    }

    /// Validate and store a plan under its name.
    pub async fn apply(&self, yaml: &str, file: &str) -> Result<plan::Plan, Error> {
        let (plan, _) = self.load(file, yaml).await?;
        self.plans
            .put(&plan.name, yaml.to_string().into())
            .await
            .map_err(|e| Error::Bus(e.into()))?;
        Ok(plan)
    }

    /// Load a plan, with the registered roles its tasks use without
    /// declaring them (id → spec YAML). The registry is read only when the
    /// plan does not load on its own.
    async fn load(
        &self,
        file: &str,
        yaml: &str,
    ) -> Result<(plan::Plan, BTreeMap<String, String>), Error> {
        match plan::load_resolving(file, yaml, &BTreeMap::new()) {
            Ok(loaded) => Ok(loaded),
            Err(alone) => {
                // Unreadable registry: the plan's own problems are still the news.
                let Ok(registry) = self.roles.all().await else {
                    return Err(alone.into());
                };
                Ok(plan::load_resolving(file, yaml, &registry)?)
            }
        }
    }

    /// The input names a registered plan declares.
    pub async fn declared_inputs(&self, name: &str) -> Result<Vec<String>, Error> {
        let yaml = self.registered(name).await?;
        let (plan, _) = self.load(&format!("plan {name}"), &yaml).await?;
        Ok(plan.inputs.into_iter().map(|i| i.name).collect())
    }

    async fn registered(&self, name: &str) -> Result<String, Error> {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(Error::UnknownPlan(name.to_string()));
        }
        match self.plans.get(name).await {
            Ok(Some(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Ok(None) => Err(Error::UnknownPlan(name.to_string())),
            Err(e) => Err(Error::Bus(e.into())),
        }
    }
}
