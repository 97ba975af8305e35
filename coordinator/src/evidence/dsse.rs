//! DSSE envelopes (<https://github.com/secure-systems-lab/dsse>): the
//! signature covers the pre-authentication encoding (PAE) of the payload
//! type and body, never the JSON around them.
//!
//! Reading is strict so that *any* changed byte of a stored envelope fails:
//! the file must be exactly the canonical serialisation of what it parses
//! to, its one signature's `keyid` must name the verifying key, and the
//! payload type must be in-toto's.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature as EdSignature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::keys::keyid;
use crate::Error;

/// What an in-toto Statement is carried as.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Envelope {
    pub payload_type: String,
    /// The body, standard base64 with padding.
    pub payload: String,
    pub signatures: Vec<Signature>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub keyid: String,
    /// The ed25519 signature over the PAE, standard base64.
    pub sig: String,
}

/// `DSSEv1 <len(type)> <type> <len(body)> <body>`, lengths in ASCII decimal bytes.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

pub fn sign(payload_type: &str, body: &[u8], key: &SigningKey) -> Envelope {
    let sig = key.sign(&pae(payload_type, body));
    Envelope {
        payload_type: payload_type.to_string(),
        payload: B64.encode(body),
        signatures: vec![Signature {
            keyid: keyid(&key.verifying_key()),
            sig: B64.encode(sig.to_bytes()),
        }],
    }
}

/// The one byte form an envelope is stored and exported in: compact JSON,
/// fields in the order above, then a newline.
pub fn to_canonical(env: &Envelope) -> Vec<u8> {
    let mut out = serde_json::to_vec(env).expect("an envelope is always serialisable");
    out.push(b'\n');
    out
}

/// Check `bytes` as a canonical envelope signed by `key`; give its payload.
pub fn open(bytes: &[u8], key: &VerifyingKey) -> Result<Vec<u8>, Error> {
    let bad = |m: String| Error::EvidenceInvalid(m);
    let env: Envelope =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not a DSSE envelope: {e}")))?;
    if to_canonical(&env) != bytes {
        return Err(bad(
            "the file is not the envelope's canonical form (it was changed after export)".into(),
        ));
    }
    if env.payload_type != PAYLOAD_TYPE {
        return Err(bad(format!(
            "payloadType is `{}`, expected `{PAYLOAD_TYPE}`",
            env.payload_type
        )));
    }
    let [s] = env.signatures.as_slice() else {
        return Err(bad(format!(
            "expected exactly one signature, found {}",
            env.signatures.len()
        )));
    };
    let want = keyid(key);
    if s.keyid != want {
        return Err(bad(format!(
            "signed by key {}, not by the given key {want} — is this the right public key?",
            s.keyid
        )));
    }
    let body = B64
        .decode(&env.payload)
        .map_err(|e| bad(format!("payload is not base64: {e}")))?;
    let sig = B64
        .decode(&s.sig)
        .ok()
        .and_then(|b| EdSignature::from_slice(&b).ok())
        .ok_or_else(|| bad("signature is not a base64 ed25519 signature".into()))?;
    key.verify_strict(&pae(&env.payload_type, &body), &sig)
        .map_err(|_| bad("the signature does not match the content".into()))?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // The worked example in the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn pae_counts_bytes_not_chars() {
        assert_eq!(pae("t", "é".as_bytes()), b"DSSEv1 1 t 2 \xc3\xa9".to_vec());
    }

    #[test]
    fn signed_envelope_opens_with_its_key_only() {
        let k = key(7);
        let bytes = to_canonical(&sign(PAYLOAD_TYPE, b"{\"a\":1}", &k));
        assert_eq!(open(&bytes, &k.verifying_key()).unwrap(), b"{\"a\":1}");
        let e = open(&bytes, &key(8).verifying_key()).unwrap_err();
        assert!(e.to_string().contains("not by the given key"), "{e}");
    }

    #[test]
    fn signature_from_another_key_under_the_right_keyid_fails() {
        let k = key(7);
        let mut env = sign(PAYLOAD_TYPE, b"x", &k);
        env.signatures[0].sig = sign(PAYLOAD_TYPE, b"x", &key(9)).signatures[0].sig.clone();
        let e = open(&to_canonical(&env), &k.verifying_key()).unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
    }

    #[test]
    fn non_canonical_bytes_fail_even_when_the_signature_holds() {
        let k = key(7);
        let env = sign(PAYLOAD_TYPE, b"x", &k);
        let pretty = serde_json::to_vec_pretty(&env).unwrap();
        let e = open(&pretty, &k.verifying_key()).unwrap_err();
        assert!(e.to_string().contains("canonical"), "{e}");
        let mut no_newline = to_canonical(&env);
        no_newline.pop();
        assert!(open(&no_newline, &k.verifying_key()).is_err());
    }

    #[test]
    fn other_payload_types_and_extra_signatures_fail() {
        let k = key(7);
        let env = sign("text/plain", b"x", &k);
        let e = open(&to_canonical(&env), &k.verifying_key()).unwrap_err();
        assert!(e.to_string().contains("payloadType"), "{e}");
        let mut two = sign(PAYLOAD_TYPE, b"x", &k);
        two.signatures.push(two.signatures[0].clone());
        let e = open(&to_canonical(&two), &k.verifying_key()).unwrap_err();
        assert!(e.to_string().contains("exactly one"), "{e}");
    }
}
