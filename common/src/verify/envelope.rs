//! Phase 2 of [`verify`](super::verify): the envelope. The signature is checked first
//! (nothing else is interpreted before it), then every exhibit/ member the scan saw
//! against the signed statement's subjects, one to one and in order, then the manifest
//! against the signed predicate and the acquisition log's hash chain.

use super::scan::Scan;
use super::{invalid, Invalid, VerifyError, VerifyOptions};
use crate::dsse::{self, Envelope, SignerStatus, Statement, PREDICATE_TYPE, STATEMENT_TYPE};
use crate::json;
use crate::limits;
use crate::manifest::Manifest;
use crate::members::{CHANGES, ENVELOPE, MANIFEST};
use std::collections::BTreeMap;

/// What the signed envelope vouches for.
pub(super) struct Sealed {
    pub statement: Statement,
    pub signer: SignerStatus,
    pub manifest: Manifest,
    /// Verified sha256 of each exhibit/ member but the envelope.
    pub digests: BTreeMap<String, String>,
}

/// Checks the envelope of a scanned bundle and what it signs.
pub(super) fn check(scan: &Scan, opts: &VerifyOptions) -> Result<Sealed, VerifyError> {
    let envelope = &scan.envelope;
    let observed = &scan.observed;
    let members = &scan.members;
    // The signature first; nothing else is interpreted before it.
    let env: Envelope = json::parse_capped(envelope, limits::MAX_ENVELOPE)
        .map_err(|e| invalid(Some(ENVELOPE), e.to_string()))?;
    let (payload, signer) = dsse::open(&env, &opts.keys).map_err(|e| {
        VerifyError::Invalid(Invalid {
            member: Some(ENVELOPE.to_string()),
            reason: e.to_string(),
            envelope: Some(e),
        })
    })?;
    let statement: Statement = json::parse_capped(&payload, limits::MAX_ENVELOPE)
        .map_err(|e| invalid(Some(ENVELOPE), format!("statement: {e}")))?;
    if statement.statement_type != STATEMENT_TYPE || statement.predicate_type != PREDICATE_TYPE {
        return Err(invalid(Some(ENVELOPE), "not an exhibit manifest statement"));
    }
    let mut digests = BTreeMap::new();
    for (i, (name, digest)) in observed.iter().enumerate() {
        let Some(subject) = statement.subject.get(i) else {
            return Err(invalid(
                Some(name),
                "member is not a subject of the signed statement",
            ));
        };
        if subject.name != *name {
            let missing = statement.subject.iter().any(|s| s.name == *name);
            return Err(if missing {
                invalid(
                    Some(&subject.name),
                    "subject missing from the bundle or out of order",
                )
            } else {
                invalid(
                    Some(name),
                    "member is not a subject of the signed statement",
                )
            });
        }
        if subject.digest.get("sha256") != Some(digest) {
            return Err(invalid(
                Some(name),
                "sha256 does not match the signed statement",
            ));
        }
        digests.insert(name.clone(), digest.clone());
    }
    if let Some(extra) = statement.subject.get(observed.len()) {
        return Err(invalid(
            Some(&extra.name),
            "subject missing from the bundle",
        ));
    }
    for required in [MANIFEST, CHANGES, crate::members::ACQUISITION] {
        if !digests.contains_key(required) {
            return Err(invalid(Some(required), "missing"));
        }
    }
    let manifest_bytes = members
        .get(MANIFEST)
        .ok_or_else(|| invalid(Some(MANIFEST), "too large"))?;
    let manifest_value: serde_json::Value =
        json::parse(manifest_bytes).map_err(|e| invalid(Some(MANIFEST), e.to_string()))?;
    if manifest_value != statement.predicate {
        return Err(invalid(Some(MANIFEST), "differs from the signed predicate"));
    }
    let manifest: Manifest = serde_json::from_value(manifest_value)
        .map_err(|e| invalid(Some(MANIFEST), e.to_string()))?;
    match members.get(crate::members::ACQUISITION) {
        Some(log) => {
            crate::custody::check_chain(log)
                .map_err(|e| invalid(Some(crate::members::ACQUISITION), e))?;
        }
        None => {
            return Err(invalid(
                Some(crate::members::ACQUISITION),
                "too large to check",
            ))
        }
    }
    Ok(Sealed {
        statement,
        signer,
        manifest,
        digests,
    })
}
