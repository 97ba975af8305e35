//! `baton role apply|list`, and role files for `baton plan validate --roles`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use baton_plan as plan;
use baton_proto::v1;

use crate::client::{connect, read_plan, status_code, BAD_INPUT};

/// Register the roles of a role file; prints "<id>: created|updated|unchanged".
pub async fn apply(file: &Path, server: &crate::ServerArg) -> u8 {
    let yaml = match read_plan(file) {
        Ok(y) => y,
        Err(c) => return c,
    };
    let mut c = match connect(server).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let req = v1::ApplyRolesRequest {
        roles_yaml: yaml,
        file: file.display().to_string(),
    };
    match c.apply_roles(req).await {
        Ok(r) => {
            for line in r.into_inner().results {
                println!("{line}");
            }
            0
        }
        Err(s) => status_code(&s),
    }
}

/// Every registered role with its spec.
pub async fn list(server: &crate::ServerArg) -> u8 {
    let mut c = match connect(server).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    match c.list_roles(v1::ListRolesRequest {}).await {
        Ok(r) => {
            let roles = r.into_inner().roles;
            if roles.is_empty() {
                println!("no roles registered — register some with `baton role apply FILE`");
            }
            for role in roles {
                println!("{}", role.id);
                for line in role.yaml.lines() {
                    println!("  {line}");
                }
            }
            0
        }
        Err(s) => status_code(&s),
    }
}

/// The roles of some role files, as the registry would hold them (id →
/// normalized spec); later files win. Problems are printed; `Err` is the exit code.
pub fn from_files(files: &[PathBuf]) -> Result<BTreeMap<String, String>, u8> {
    let mut out = BTreeMap::new();
    let mut failed = false;
    for file in files {
        let yaml = read_plan(file)?;
        match plan::load_roles(&file.display().to_string(), &yaml) {
            Ok(roles) => {
                for role in roles {
                    out.insert(role.id.clone(), plan::role_yaml(&role));
                }
            }
            Err(e) => {
                for d in &e.diagnostics {
                    eprintln!("{d}");
                }
                failed = true;
            }
        }
    }
    if failed {
        Err(BAD_INPUT)
    } else {
        Ok(out)
    }
}
