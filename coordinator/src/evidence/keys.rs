//! Evidence keys as files other tools read: the private key as PEM PKCS#8
//! (`BEGIN PRIVATE KEY`), the public key as PEM SPKI (`BEGIN PUBLIC KEY`),
//! the same forms `openssl` and cosign use for ed25519.

use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::Error;

/// A key's id in envelopes: lowercase hex SHA-256 of its SPKI DER, so that
/// anyone holding the public key file can compute it.
pub fn keyid(key: &VerifyingKey) -> String {
    let der = key
        .to_public_key_der()
        .expect("an ed25519 public key always encodes");
    hex::encode(Sha256::digest(der.as_bytes()))
}

fn key_err(path: &Path, problem: impl std::fmt::Display) -> Error {
    Error::EvidenceKey {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

pub fn load_signing_key(path: &Path) -> Result<SigningKey, Error> {
    let pem = std::fs::read_to_string(path).map_err(|e| key_err(path, e))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
        key_err(
            path,
            format!("not a PEM PKCS#8 ed25519 private key ({e}); a `.pub` file is the public half"),
        )
    })
}

pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, Error> {
    let pem = std::fs::read_to_string(path).map_err(|e| key_err(path, e))?;
    VerifyingKey::from_public_key_pem(&pem).map_err(|e| {
        key_err(
            path,
            format!("not a PEM SPKI ed25519 public key ({e}); give the `.pub` file"),
        )
    })
}

/// A new key from the OS's randomness.
pub fn generate() -> SigningKey {
    SigningKey::from_bytes(&rand::random::<[u8; 32]>())
}

/// Write `<prefix>` (private, mode 0600, never overwritten) and
/// `<prefix>.pub`; give the public key's path.
pub fn write_pair(prefix: &Path, key: &SigningKey) -> Result<PathBuf, Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // RFC 8410's v1 form, private key only: OpenSSL 3.0 refuses the v2 form
    // (with the public key inside) that `to_pkcs8_pem` writes.
    let v1 = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    let private = v1
        .to_pkcs8_pem(Default::default())
        .map_err(|e| key_err(prefix, e))?;
    let public = key
        .verifying_key()
        .to_public_key_pem(Default::default())
        .map_err(|e| key_err(prefix, e))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(prefix)
        .map_err(|e| {
            key_err(
                prefix,
                format!("{e} (an existing key is never overwritten)"),
            )
        })?;
    f.write_all(private.as_bytes())
        .map_err(|e| key_err(prefix, e))?;
    let mut pub_path = prefix.as_os_str().to_owned();
    pub_path.push(".pub");
    let pub_path = PathBuf::from(pub_path);
    std::fs::write(&pub_path, public).map_err(|e| key_err(&pub_path, e))?;
    Ok(pub_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_pair_loads_back_and_the_private_half_is_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile_dir();
        let prefix = dir.join("k");
        let key = generate();
        let pub_path = write_pair(&prefix, &key).unwrap();
        assert_eq!(pub_path, dir.join("k.pub"));
        let mode = std::fs::metadata(&prefix).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            load_signing_key(&prefix).unwrap().to_bytes(),
            key.to_bytes()
        );
        assert_eq!(load_verifying_key(&pub_path).unwrap(), key.verifying_key());
        let again = write_pair(&prefix, &generate()).unwrap_err();
        assert!(again.to_string().contains("never overwritten"), "{again}");
        // The halves are not interchangeable, and say so.
        let e = load_signing_key(&pub_path).unwrap_err();
        assert!(e.to_string().contains("public half"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn keyid_is_sha256_of_the_spki_der() {
        // RFC 8032 test 1's public key; SPKI DER = 12-byte ed25519 prefix + key.
        let pk = hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
            .unwrap();
        let key = VerifyingKey::from_bytes(&pk.clone().try_into().unwrap()).unwrap();
        let mut der = hex::decode("302a300506032b6570032100").unwrap();
        der.extend(pk);
        assert_eq!(keyid(&key), hex::encode(Sha256::digest(&der)));
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("baton-keys-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
