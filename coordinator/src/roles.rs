//! The role registry: the `baton_roles` KV bucket, role id → the role's spec
//! as normalized YAML (`plan::role_yaml`). Plans name registered roles
//! without declaring them; a submission copies the ones it uses into its
//! `RunSubmitted`, so later changes here never alter a run in flight.

use std::collections::BTreeMap;

use async_nats::jetstream::kv;
use baton_plan as plan;
use futures::StreamExt;

use crate::Error;

#[derive(Clone)]
pub struct RoleRegistry {
    bucket: kv::Store,
}

impl RoleRegistry {
    pub fn new(bucket: kv::Store) -> Self {
        RoleRegistry { bucket }
    }

    /// Register every role of a role file (`roles: { <id>: <spec> }`), each
    /// only when its normalized spec changed; "<id>: created|updated|unchanged"
    /// in file order. An invalid file registers nothing.
    pub async fn apply(&self, yaml: &str, file: &str) -> Result<Vec<String>, Error> {
        let roles = plan::load_roles(file, yaml)?;
        let mut results = Vec::with_capacity(roles.len());
        for role in roles {
            let spec = plan::role_yaml(&role);
            let before = self.get(&role.id).await?;
            let result = match before {
                Some(old) if old == spec => "unchanged",
                Some(_) => "updated",
                None => "created",
            };
            if result != "unchanged" {
                self.bucket
                    .put(&role.id, spec.into())
                    .await
                    .map_err(|e| Error::Bus(e.into()))?;
            }
            results.push(format!("{}: {result}", role.id));
        }
        Ok(results)
    }

    /// Every registered role: id → spec YAML.
    pub async fn all(&self) -> Result<BTreeMap<String, String>, Error> {
        let mut keys = self.bucket.keys().await.map_err(|e| Error::Bus(e.into()))?;
        let mut out = BTreeMap::new();
        while let Some(k) = keys.next().await {
            let k = k.map_err(|e| Error::Bus(e.into()))?;
            if let Some(spec) = self.get(&k).await? {
                out.insert(k, spec);
            }
        }
        Ok(out)
    }

    /// Every registered role, by id.
    pub async fn list(&self) -> Result<Vec<(String, String)>, Error> {
        Ok(self.all().await?.into_iter().collect())
    }

    async fn get(&self, id: &str) -> Result<Option<String>, Error> {
        match self.bucket.get(id).await {
            Ok(v) => Ok(v.map(|b| String::from_utf8_lossy(&b).into_owned())),
            Err(e) => Err(Error::Bus(e.into())),
        }
    }
}
