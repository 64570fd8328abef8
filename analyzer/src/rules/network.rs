//! net.* rules: raw sockets always; listeners and connections against the profile.

use super::RuleInput;
use crate::finding::{Finding, RuleId, Severity};
use crate::netaddr::{base_proto, is_listener, outbound, subject};
use exhibit_common::records::SocketRecord;
use std::collections::BTreeMap;

fn with_socket(f: Finding, s: &SocketRecord) -> Finding {
    f.with("proto", &s.proto)
        .with("state", &s.state)
        .with("local", &s.local)
        .with("remote", &s.remote)
        .with("netns", s.netns)
        .with("inode", s.inode)
        .with("pids", &s.pids)
}

/// Checks every socket; one finding per rule and subject.
pub fn check(sockets: &[SocketRecord], input: &RuleInput<'_>, out: &mut Vec<Finding>) {
    let mut found: BTreeMap<(RuleId, String), Finding> = BTreeMap::new();
    for s in sockets {
        if matches!(base_proto(&s.proto), "raw" | "packet") {
            let subj = subject(s, false);
            found
                .entry((RuleId::NetRawSocket, subj.clone()))
                .or_insert_with(|| {
                    with_socket(
                        Finding::new(
                            RuleId::NetRawSocket,
                            Severity::Medium,
                            &subj,
                            format!("{} socket open ({subj})", s.proto),
                        ),
                        s,
                    )
                });
        }
    }
    if let Some(profile) = input.profile {
        for s in sockets.iter().filter(|s| is_listener(s)) {
            if !profile.allows_listener(s) {
                let subj = subject(s, false);
                found
                    .entry((RuleId::NetUnexpectedListener, subj.clone()))
                    .or_insert_with(|| {
                        with_socket(
                            Finding::new(
                                RuleId::NetUnexpectedListener,
                                Severity::High,
                                &subj,
                                format!("listening on {subj}, not in the profile"),
                            ),
                            s,
                        )
                    });
            }
        }
        for s in outbound(sockets) {
            if !profile.allows_egress(s) {
                let subj = subject(s, true);
                found
                    .entry((RuleId::NetUnexpectedConnection, subj.clone()))
                    .or_insert_with(|| {
                        with_socket(
                            Finding::new(
                                RuleId::NetUnexpectedConnection,
                                Severity::High,
                                &subj,
                                format!("connection to {subj}, not in the profile's egress"),
                            ),
                            s,
                        )
                    });
            }
        }
    }
    out.extend(found.into_values());
}
