//! A Docker daemon that is not reached through a local unix socket (tcp://, http://,
//! https://, ssh://, npipe://) runs on another host, or may: the paths (UpperDir,
//! LowerDir, LogPath, HostsPath) and the init pid it reports belong to that host. Reading
//! them here would put this host's files and processes into the bundle as the
//! container's. For such a daemon the capture takes only what the Engine API itself
//! returns: the diff through changes + archive and a `ps` listing through `top`.

use exhibit_common::records::{CappedList, ProcessRecord};
use exhibit_common::text::ByteText;

/// Whether a Docker host URL names a unix socket on this machine. `None` (the local
/// default socket) and `unix://...` are local; everything else is treated as remote,
/// whatever address it names, since a TCP endpoint may forward anywhere.
pub fn is_local(host: Option<&str>) -> bool {
    match host.map(str::trim) {
        None | Some("") => true,
        Some(h) => h.starts_with("unix://") || h.starts_with('/'),
    }
}

/// Why nothing is read from this host for a container of a remote daemon (recorded in
/// the acquisition log and the manifest's reasons).
pub fn reason(url: &str) -> String {
    format!(
        "Docker daemon {url} is not a local unix socket: its upper dir, init pid and host paths belong to the daemon's host, so nothing is read from this host's /proc or filesystem"
    )
}

/// `ps` arguments asked of the daemon's `top`: the command line last, since `top`
/// splits every column but the last at whitespace.
pub const PS_ARGS: &str = "-o pid,ppid,uid,gid,args";

/// The note every process record from `top` carries in its `errors`.
pub const TOP_NOTE: &str = "from the Engine API top (ps on the daemon's host), not /proc: argv is ps's space-joined text split at spaces, not byte-exact; environment, exe, cwd, fds, maps, cgroup and namespaces unavailable";

/// Process records from a `top` response (titles and rows of text). Rows without a
/// numeric PID column are skipped; they cannot be told apart.
pub fn processes_from_top(titles: &[String], rows: &[Vec<String>]) -> Vec<ProcessRecord> {
    let col = |names: &[&str]| {
        titles
            .iter()
            .position(|t| names.iter().any(|n| t.eq_ignore_ascii_case(n)))
    };
    let (pid, ppid, uid, gid) = (
        col(&["PID"]),
        col(&["PPID"]),
        col(&["UID", "USER"]),
        col(&["GID"]),
    );
    let cmd = col(&["COMMAND", "CMD", "ARGS"]);
    let Some(pid) = pid else {
        return Vec::new();
    };
    let num = |row: &Vec<String>, i: Option<usize>| -> Option<i64> {
        i.and_then(|i| row.get(i))
            .and_then(|s| s.trim().parse().ok())
    };
    let mut out = Vec::new();
    for row in rows {
        let Some(p) = num(row, Some(pid)) else {
            continue;
        };
        let text = cmd.and_then(|i| row.get(i)).cloned().unwrap_or_default();
        let argv: Vec<ByteText> = text
            .split_whitespace()
            .map(|a| ByteText(a.as_bytes().to_vec()))
            .collect();
        let comm = argv
            .first()
            .map(|a| {
                let b = a.as_bytes();
                let base = b.rsplit(|&c| c == b'/').next().unwrap_or(b);
                ByteText(base[..base.len().min(15)].to_vec())
            })
            .unwrap_or_default();
        let mut errors = vec![TOP_NOTE.to_string()];
        let uid_v = num(row, uid);
        if uid.is_some() && uid_v.is_none() {
            errors.push(format!(
                "uid column is not numeric: {:?}",
                uid.and_then(|i| row.get(i)).cloned().unwrap_or_default()
            ));
        }
        out.push(ProcessRecord {
            pid: p as i32,
            ns_pid: None,
            ppid: num(row, ppid).unwrap_or(0) as i32,
            uid: uid_v.unwrap_or(0) as u32,
            gid: num(row, gid).unwrap_or(0) as u32,
            user: None,
            start_time: None,
            comm,
            argv: CappedList {
                original_bytes: text.len() as u64,
                original_entries: argv.len() as u64,
                items: argv,
                truncated: false,
            },
            env: CappedList::default(),
            cwd: None,
            exe: None,
            exe_sha256: None,
            exe_size: None,
            exe_deleted: false,
            memfd: false,
            exe_member: None,
            fds: Vec::new(),
            fds_truncated: false,
            maps: CappedList::default(),
            anon_exec_maps: 0,
            memory: Vec::new(),
            cgroup: None,
            namespaces: Default::default(),
            found_by: vec!["engine-api-top".into()],
            errors,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unix_sockets_are_local() {
        assert!(is_local(None));
        assert!(is_local(Some("unix:///var/run/docker.sock")));
        assert!(is_local(Some("/run/docker.sock")));
        for h in [
            "tcp://127.0.0.1:2375",
            "tcp://10.0.0.7:2376",
            "http://localhost:2375",
            "https://docker.example:2376",
            "ssh://root@box",
            "npipe:////./pipe/docker_engine",
        ] {
            assert!(!is_local(Some(h)), "{h}");
        }
    }

    #[test]
    fn top_rows_become_marked_process_records() {
        let titles: Vec<String> = ["PID", "PPID", "UID", "GID", "COMMAND"]
            .map(String::from)
            .to_vec();
        let rows = vec![
            vec![
                "12992",
                "12969",
                "0",
                "0",
                "/bin/sh -c while true; do sleep 3600; done",
            ],
            vec!["13027", "12992", "33", "33", "sleep 3600"],
            vec!["x", "1", "0", "0", "junk"],
        ]
        .into_iter()
        .map(|r| r.into_iter().map(String::from).collect())
        .collect::<Vec<Vec<String>>>();
        let p = processes_from_top(&titles, &rows);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].pid, p[0].ppid, p[0].uid), (12992, 12969, 0));
        assert_eq!(p[0].comm.as_bytes(), b"sh");
        assert_eq!(p[0].argv.items.len(), 8);
        assert_eq!((p[1].uid, p[1].gid), (33, 33));
        assert!(p.iter().all(|r| r.found_by == ["engine-api-top"]
            && r.exe_sha256.is_none()
            && r.fds.is_empty()
            && r.errors[0] == TOP_NOTE));
        // The default `ps -ef` listing has UID as a name and no GID.
        let titles: Vec<String> = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
            .map(String::from)
            .to_vec();
        let rows = vec![
            ["root", "5", "1", "0", "10:00", "?", "00:00:00", "httpd -f"]
                .map(String::from)
                .to_vec(),
        ];
        let p = processes_from_top(&titles, &rows);
        assert_eq!((p[0].pid, p[0].ppid), (5, 1));
        assert!(p[0].errors.iter().any(|e| e.contains("not numeric")));
    }
}
