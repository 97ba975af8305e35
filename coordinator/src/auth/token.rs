//! Admin tokens: how a fresh one is made, and the only form the server keeps.
//!
//! Tokens are 256 random bits, so a plain SHA-256 is enough to store them:
//! there is nothing to brute-force that a salt or a slow hash would protect.

use baton_proto::secret::Secret;
use sha2::{Digest, Sha256};

use super::Role;

/// Every token starts so; it lets secret scanners recognise a leaked one.
pub const PREFIX: &str = "baton_";

/// A fresh token, shown once to whoever asked for it and never stored.
pub fn generate() -> Secret {
    Secret::new(format!(
        "{PREFIX}{}",
        hex::encode(rand::random::<[u8; 32]>())
    ))
}

pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The tokens-file line for `token`: `sha256:<hex> <name> <role>`.
pub fn file_line(token: &Secret, name: &str, role: Role) -> String {
    format!(
        "sha256:{} {name} {role}",
        hex::encode(digest(token.expose()))
    )
}

/// Names end up in events and audit records, one word, no surprises.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_tokens_differ_and_carry_the_prefix() {
        let (a, b) = (generate(), generate());
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with(PREFIX));
        assert_eq!(a.expose().len(), PREFIX.len() + 64);
    }

    #[test]
    fn the_file_line_holds_the_hash_not_the_token() {
        let t = generate();
        let line = file_line(&t, "ana", Role::Approver);
        assert!(!line.contains(t.expose()));
        assert!(line.starts_with("sha256:"));
        assert!(line.ends_with(" ana approver"));
    }

    #[test]
    fn names_are_one_plain_word() {
        assert!(valid_name("ana@example.com"));
        assert!(!valid_name(""));
        assert!(!valid_name("two words"));
        assert!(!valid_name("tab\tname"));
    }
}
