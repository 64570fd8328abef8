//! Everything the collector reads from the host itself, runtime-independent: processes
//! and sockets from /proc, the overlay upper dir and mount contents by directory fd,
//! and the host's identity.

pub mod open;
pub mod procs;
pub mod sockets;
pub mod walk;

use serde_json::json;

pub use open::{container_root as open_container_root, exists_in_container, read_in_container};

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// sha256 of the running collector binary (hashed once per run: `--all` captures many).
pub fn own_binary_sha256() -> Option<String> {
    static DIGEST: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    DIGEST
        .get_or_init(|| {
            let f = std::fs::File::open("/proc/self/exe").ok()?;
            exhibit_common::hashing::sha256_reader(f)
                .ok()
                .map(|(d, _)| d)
        })
        .clone()
}

// The host's view, through pid 1, when the collector runs in a container of its own
// (a Kubernetes Job with hostPID): its own /etc and UTS name would be the pod's.
fn host_hostname(own: String) -> String {
    let ours = procs::ns_inode(std::process::id() as i32, "uts");
    if ours.is_some() && ours != procs::ns_inode(1, "uts") {
        if let Some(h) = read_trim("/proc/1/root/etc/hostname").filter(|h| !h.is_empty()) {
            return h;
        }
    }
    own
}

/// Content of exhibit/host.json.
pub fn identity(runtime: &str, runtime_version: &str) -> serde_json::Value {
    let uname = rustix::system::uname();
    json!({
        "hostname": host_hostname(uname.nodename().to_string_lossy().into_owned()),
        "machine_id": read_trim("/proc/1/root/etc/machine-id").or_else(|| read_trim("/etc/machine-id")),
        "boot_id": read_trim("/proc/sys/kernel/random/boot_id"),
        "kernel": format!("{} {} {}", uname.sysname().to_string_lossy(), uname.release().to_string_lossy(), uname.version().to_string_lossy()),
        "arch": uname.machine().to_string_lossy(),
        "runtime": {"name": runtime, "version": runtime_version},
        "tool": {
            "name": "exhibit-collect",
            "version": env!("CARGO_PKG_VERSION"),
            "binary_sha256": own_binary_sha256(),
        },
    })
}
