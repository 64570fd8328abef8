//! Signing keys: PKCS#8 v1 PEM private keys (RFC 8410, no public key inside, which
//! OpenSSL 3.0 reads) and SPKI PEM public keys. keyid = hex sha256 of the SPKI DER.

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why a key could not be written or loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: already exists; keys are never overwritten")]
    Exists { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: private key is readable by group or others (mode {mode:o})")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{path}: not a regular file")]
    NotRegular { path: PathBuf },
    #[error("{path}: not an Ed25519 {what} PEM: {detail}")]
    Format {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// Generates a fresh Ed25519 signing key from the operating system's randomness.
pub fn generate() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// PEM of the private key as PKCS#8 v1 (no public key inside).
pub fn private_pem(key: &SigningKey) -> String {
    let kp = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    kp.to_pkcs8_pem(LineEnding::LF)
        .map(|z| z.to_string())
        .unwrap_or_default()
}

/// PEM of the public key as SPKI.
pub fn public_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF).unwrap_or_default()
}

/// keyid: hex sha256 of the SPKI DER.
pub fn keyid(key: &VerifyingKey) -> String {
    let der = key
        .to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .unwrap_or_default();
    hex::encode(Sha256::digest(der))
}

/// Writes PREFIX.key (0600) and PREFIX.pub (0644); refuses to replace either.
pub fn write_keypair(prefix: &Path, key: &SigningKey) -> Result<(PathBuf, PathBuf), KeyError> {
    let key_path = with_suffix(prefix, ".key");
    let pub_path = with_suffix(prefix, ".pub");
    for p in [&key_path, &pub_path] {
        if std::fs::symlink_metadata(p).is_ok() {
            return Err(KeyError::Exists { path: p.clone() });
        }
    }
    write_new(&key_path, private_pem(key).as_bytes(), 0o600)?;
    if let Err(e) = write_new(
        &pub_path,
        public_pem(&key.verifying_key()).as_bytes(),
        0o644,
    ) {
        let _ = std::fs::remove_file(&key_path);
        return Err(e);
    }
    Ok((key_path, pub_path))
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

// Written like every other output: PATH.partial (O_EXCL|O_NOFOLLOW), fsync, then a
// rename that never replaces; a write that fails leaves nothing at PATH.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let exists = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            io(e)
        }
    };
    let mut out = crate::output::AtomicFile::create(path).map_err(exists)?;
    let f = out.file();
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    out.commit().map_err(exists)
}

fn read_small(path: &Path) -> Result<(String, std::fs::Metadata), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Following a symlink is deliberate: Kubernetes Secret files are symlinks.
    let f = std::fs::File::open(path).map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(KeyError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    let mut text = String::new();
    f.take(64 << 10).read_to_string(&mut text).map_err(io)?;
    Ok((text, meta))
}

/// Loads a private key, refusing one that group or others can read (as ssh does).
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let (text, meta) = read_small(path)?;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    SigningKey::from_pkcs8_pem(&text).map_err(|e| KeyError::Format {
        path: path.to_path_buf(),
        what: "PKCS#8 private key",
        detail: e.to_string(),
    })
}

/// Loads an SPKI PEM public key.
pub fn load_public_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let (text, _) = read_small(path)?;
    VerifyingKey::from_public_key_pem(&text).map_err(|e| KeyError::Format {
        path: path.to_path_buf(),
        what: "SPKI public key",
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keypair_round_trips_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("ir");
        let key = generate().unwrap();
        let (k, p) = write_keypair(&prefix, &key).unwrap();
        assert_eq!(std::fs::metadata(&k).unwrap().mode() & 0o777, 0o600);
        let pem = std::fs::read_to_string(&k).unwrap();
        // PKCS#8 v1 for Ed25519 is 48 bytes of DER: 64 base64 characters.
        assert_eq!(pem.lines().nth(1).unwrap().len(), 64);
        assert_eq!(load_signing_key(&k).unwrap().to_bytes(), key.to_bytes());
        assert_eq!(load_public_key(&p).unwrap(), key.verifying_key());
        assert!(matches!(
            write_keypair(&prefix, &key),
            Err(KeyError::Exists { .. })
        ));
        assert_eq!(std::fs::read_to_string(&k).unwrap(), pem);
    }

    #[test]
    fn readable_private_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (k, _) = write_keypair(&dir.path().join("x"), &generate().unwrap()).unwrap();
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            load_signing_key(&k),
            Err(KeyError::Permissions { .. })
        ));
    }
}
