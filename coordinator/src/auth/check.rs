//! The decision for one request: who calls, and may they call this method.

use std::sync::Arc;

use http::HeaderMap;
use tonic::Status;

use super::{table, Identity, TokenStore};

/// How a client passes its token; said in every UNAUTHENTICATED answer.
const HOW: &str = "send `authorization: Bearer <token>` metadata; the baton CLI reads the token from BATON_TOKEN, BATON_TOKEN_FILE or --token-file";

/// Whether the admin API asks for tokens.
#[derive(Clone, Debug)]
pub enum Auth {
    /// Only callers with one of these tokens; an empty store refuses to start.
    Tokens(Arc<TokenStore>),
    /// Everyone is an admin. Only `baton dev --no-auth` asks for it.
    Off,
}

impl Default for Auth {
    /// On, with no tokens: a coordinator nobody configured refuses to start.
    fn default() -> Self {
        Auth::Tokens(Arc::new(TokenStore::default()))
    }
}

/// The caller's identity, or the status to answer instead.
pub fn authorize(store: &TokenStore, path: &str, headers: &HeaderMap) -> Result<Identity, Status> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| Status::unauthenticated(format!("no credentials: {HOW}")))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Status::unauthenticated(format!(
                "the authorization metadata is not `Bearer <token>`: {HOW}"
            ))
        })?;
    let who = store.identify(token).ok_or_else(|| {
        Status::unauthenticated(format!(
            "the token is not one this coordinator knows (revoked, mistyped, or from another cluster): {HOW}; ask an admin for one made with `baton token create`"
        ))
    })?;
    let method = path.rsplit('/').next().unwrap_or(path);
    match table::least_role(path) {
        None => Err(Status::permission_denied(format!(
            "{path} is not a method anyone may call"
        ))),
        Some(least) if who.role < least => Err(Status::permission_denied(format!(
            "{method} needs role {least} or higher; {} has role {}",
            who.name, who.role
        ))),
        Some(_) => Ok(who),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token::{file_line, generate};
    use crate::auth::Role;
    use tonic::Code;

    fn store() -> (TokenStore, String, String) {
        let (v, a) = (generate(), generate());
        let text = format!(
            "{}\n{}\n",
            file_line(&v, "vic", Role::Viewer),
            file_line(&a, "ana", Role::Approver)
        );
        let s = TokenStore::parse("t", &text).unwrap();
        (s, v.expose().to_string(), a.expose().to_string())
    }

    fn bearer(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", format!("Bearer {t}").parse().unwrap());
        h
    }

    #[test]
    fn missing_or_malformed_credentials_are_unauthenticated_and_say_how() {
        let (s, v, _) = store();
        let e = authorize(&s, "/baton.v1.Admin/GetRun", &HeaderMap::new()).unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        assert!(e.message().contains("BATON_TOKEN"), "{}", e.message());
        let mut h = HeaderMap::new();
        h.insert("authorization", format!("Basic {v}").parse().unwrap());
        let e = authorize(&s, "/baton.v1.Admin/GetRun", &h).unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        assert!(!e.message().contains(&v));
    }

    #[test]
    fn an_unknown_token_is_unauthenticated_even_for_an_unknown_method() {
        let (s, _, _) = store();
        let e = authorize(&s, "/x.Y/Z", &bearer("baton_guess")).unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        assert!(!e.message().contains("baton_guess"));
    }

    #[test]
    fn too_little_privilege_names_both_roles() {
        let (s, v, _) = store();
        let e = authorize(&s, "/baton.v1.Admin/Approve", &bearer(&v)).unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
        assert_eq!(
            e.message(),
            "Approve needs role approver or higher; vic has role viewer"
        );
    }

    #[test]
    fn higher_roles_include_lower_ones_and_unknown_methods_are_denied() {
        let (s, v, a) = store();
        assert_eq!(
            authorize(&s, "/baton.v1.Admin/GetRun", &bearer(&v))
                .unwrap()
                .name,
            "vic"
        );
        let ana = authorize(&s, "/baton.v1.Admin/SubmitRun", &bearer(&a)).unwrap();
        assert_eq!((ana.name.as_str(), ana.role), ("ana", Role::Approver));
        let e = authorize(&s, "/baton.v1.Admin/Shutdown", &bearer(&a)).unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
    }
}
