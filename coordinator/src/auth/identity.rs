//! The caller of an admin method. The authentication layer puts an
//! [`Identity`] into each request's extensions; handlers read it with
//! [`caller`] and never trust a name carried in the request body.

use std::fmt;

/// Roles, least to most privileged: each includes everything before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads runs, events, logs, workers and roles.
    Viewer,
    /// Also submits, cancels, registers plans and roles.
    Operator,
    /// Also approves and rejects.
    Approver,
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "approver" => Some(Role::Approver),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller: the name its token was issued to, and its role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
}

impl Identity {
    /// The caller when authentication is off (`baton dev --no-auth` only).
    pub fn unauthenticated() -> Self {
        Identity {
            name: "anonymous".to_string(),
            role: Role::Admin,
        }
    }
}

/// The identity the authentication layer attached to `req`; with
/// authentication off there is none, and the caller is
/// [`Identity::unauthenticated`].
pub fn caller<T>(req: &tonic::Request<T>) -> Identity {
    req.extensions()
        .get::<Identity>()
        .cloned()
        .unwrap_or_else(Identity::unauthenticated)
}
