//! The DSSE envelope over an in-toto Statement v1 whose subjects are the bundle's
//! exhibit/ members and whose predicate is the manifest.

use crate::text::{b64, b64_decode};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto Statement v1 type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The predicate type of an exhibit manifest.
pub const PREDICATE_TYPE: &str = "urn:exhibit:manifest:v1";

/// A DSSE envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    pub keyid: String,
    pub sig: String,
}

/// An in-toto Statement v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: serde_json::Value,
}

/// One subject: a member name and its digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    /// A subject with a sha256 digest.
    pub fn sha256(name: &str, hex_digest: &str) -> Self {
        Subject {
            name: name.to_string(),
            digest: BTreeMap::from([("sha256".to_string(), hex_digest.to_string())]),
        }
    }
}

/// The DSSE pre-authentication encoding.
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

/// Builds an envelope over `payload`, signed when a key is given.
pub fn seal(payload: &[u8], key: Option<&SigningKey>) -> Envelope {
    let signatures = key
        .map(|k| {
            let sig = k.sign(&pae(PAYLOAD_TYPE, payload));
            vec![EnvelopeSignature {
                keyid: crate::keys::keyid(&k.verifying_key()),
                sig: b64(&sig.to_bytes()),
            }]
        })
        .unwrap_or_default();
    Envelope {
        payload_type: PAYLOAD_TYPE.to_string(),
        payload: b64(payload),
        signatures,
    }
}

/// Who signed an envelope, as far as the given keys tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum SignerStatus {
    /// A signature verified with this key.
    Verified { keyid: String },
    /// Signed, but no key was given to check it.
    Unverified { keyids: Vec<String> },
    /// No signature at all.
    Unsigned,
}

/// Why an envelope did not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("payloadType is {0:?}, expected {PAYLOAD_TYPE:?}")]
    PayloadType(String),
    #[error("payload is not valid base64")]
    PayloadEncoding,
    #[error("bundle is unsigned but a public key was given")]
    UnsignedWithKey,
    #[error("no signature verifies with the given public key(s)")]
    BadSignature,
}

/// Checks the envelope; with keys, at least one signature must verify strictly with one
/// of them. Returns the decoded payload and the signer.
pub fn open(
    env: &Envelope,
    keys: &[VerifyingKey],
) -> Result<(Vec<u8>, SignerStatus), EnvelopeError> {
    if env.payload_type != PAYLOAD_TYPE {
        return Err(EnvelopeError::PayloadType(env.payload_type.clone()));
    }
    let payload = b64_decode(&env.payload).ok_or(EnvelopeError::PayloadEncoding)?;
    if keys.is_empty() {
        let status = if env.signatures.is_empty() {
            SignerStatus::Unsigned
        } else {
            SignerStatus::Unverified {
                keyids: env.signatures.iter().map(|s| s.keyid.clone()).collect(),
            }
        };
        return Ok((payload, status));
    }
    if env.signatures.is_empty() {
        return Err(EnvelopeError::UnsignedWithKey);
    }
    let message = pae(&env.payload_type, &payload);
    for s in &env.signatures {
        let Some(sig) = b64_decode(&s.sig).and_then(|b| Signature::from_slice(&b).ok()) else {
            continue;
        };
        for k in keys {
            if k.verify_strict(&message, &sig).is_ok() {
                return Ok((
                    payload,
                    SignerStatus::Verified {
                        keyid: crate::keys::keyid(k),
                    },
                ));
            }
        }
    }
    Err(EnvelopeError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn seal_then_open() {
        let k = crate::keys::generate().unwrap();
        let other = crate::keys::generate().unwrap();
        let env = seal(b"{}", Some(&k));
        let (p, s) = open(&env, &[k.verifying_key()]).unwrap();
        assert_eq!(p, b"{}");
        assert!(matches!(s, SignerStatus::Verified { .. }));
        assert_eq!(
            open(&env, &[other.verifying_key()]).unwrap_err(),
            EnvelopeError::BadSignature
        );
        let mut swapped = env.clone();
        swapped.payload_type = "application/json".into();
        assert!(matches!(
            open(&swapped, &[k.verifying_key()]),
            Err(EnvelopeError::PayloadType(_))
        ));
        let unsigned = seal(b"{}", None);
        assert_eq!(
            open(&unsigned, &[k.verifying_key()]).unwrap_err(),
            EnvelopeError::UnsignedWithKey
        );
        assert_eq!(open(&unsigned, &[]).unwrap().1, SignerStatus::Unsigned);
    }
}
