//! The commands an operator runs against a running gateway: switch a port between the paths
//! ([`switch`]), show its state ([`status`]), make it re-read its configuration ([`reload`]);
//! and what they share: finding the gateway ([`locate`]) and checking privileges
//! ([`require_root`], [`require_capabilities`]). The running process itself (`xgate run`) is
//! [`crate::gateway`]; what it publishes for these commands is [`crate::report`].
//!
//! How the subcommands find a running gateway: [`Steering`](crate::bpf::Steering) holds
//! `flock` on `/run/xgate/<iface>.lock` for the gateway's whole life (the kernel drops it
//! however the process dies) and pins the maps under `/sys/fs/bpf/xgate/<iface>/`. A gateway
//! "runs on IFACE" when that lock is held by a live process (read from `/proc/locks`, so
//! looking never takes the lock) and its pins exist. The steering state and the BPF counters
//! are read and written straight in the pinned maps; the counters that live in the gateway's
//! process (pollers, kernel path) are in a JSON file it rewrites twice a second,
//! `/run/xgate/<iface>.json` (see [`crate::report`] for why a file and not a socket).

pub mod reload;
pub mod status;
pub mod switch;

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::bpf::{lock_path, SteeringError, LOCK_DIR, PIN_ROOT};
use crate::report::ReportError;

/// Why a subcommand could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Not running as root.
    #[error("xgate must run as root (effective uid is {0}): it loads BPF programs, reads and writes pinned maps under {PIN_ROOT} and {LOCK_DIR}")]
    NotRoot(u32),
    /// No gateway holds the interface.
    #[error("no xgate gateway is running on {ifname:?} (no process holds {lock:?}{pins})")]
    NotRunning {
        ifname: String,
        lock: PathBuf,
        /// Extra detail about the pins.
        pins: String,
    },
    /// `--iface` was omitted and no gateway runs at all.
    #[error("no xgate gateway is running (no process holds a lock under {LOCK_DIR})")]
    NoneRunning,
    /// `--iface` was omitted and several gateways run.
    #[error("several gateways run ({0}); say which with --iface")]
    Ambiguous(String),
    /// The port has no tagged listener: the gateway does not serve it.
    #[error("port {port} is not served by the gateway on {ifname:?} (served: {served})")]
    PortNotServed {
        port: u16,
        ifname: String,
        served: String,
    },
    /// The interface name cannot be one.
    #[error("interface name {0:?} is not valid")]
    BadIface(String),
    /// The process lacks capabilities `xgate run` needs.
    #[error("xgate run lacks capabilities: {0}")]
    MissingCapabilities(String),
    /// The gateway refused the new configuration (the running one stays).
    #[error("the gateway on {ifname:?} refused the new configuration (it keeps the running one): {reason}")]
    ReloadRefused { ifname: String, reason: String },
    /// The gateway did not say what became of the reload in time.
    #[error("the gateway on {ifname:?} (pid {pid}) did not report the reload within {secs} s")]
    ReloadTimeout { ifname: String, pid: u32, secs: u64 },
    /// Sending a signal failed.
    #[error("signalling pid {pid}: {source}")]
    Signal { pid: u32, source: io::Error },
    /// A pinned map operation failed.
    #[error(transparent)]
    Steering(#[from] SteeringError),
    /// The gateway's state file could not be read.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// A file operation failed.
    #[error("{what} {path:?}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl CtlError {
    pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| CtlError::Io { what, path, source }
    }
}

/// Refuses to go on unless the effective uid is 0.
pub fn require_root() -> Result<(), CtlError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        Ok(())
    } else {
        Err(CtlError::NotRoot(euid))
    }
}

/// A Linux capability `xgate run` may need, with its bit number (`linux/capability.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    pub name: &'static str,
    pub bit: u32,
    /// What it is needed for.
    pub why: &'static str,
}

/// What `xgate run` needs, measured by dropping each in turn (docs/bare-metal.md).
pub const RUN_CAPABILITIES: [Capability; 5] = [
    Capability {
        name: "CAP_NET_ADMIN",
        bit: 12,
        why: "attach XDP and sock_ops, set up AF_XDP",
    },
    Capability {
        name: "CAP_BPF",
        bit: 39,
        why: "load the BPF programs and maps",
    },
    Capability {
        name: "CAP_PERFMON",
        bit: 38,
        why: "the verifier's checks of the programs",
    },
    Capability {
        name: "CAP_NET_RAW",
        bit: 13,
        why: "open AF_XDP sockets",
    },
    Capability {
        name: "CAP_IPC_LOCK",
        bit: 14,
        why: "lock the UMEM in memory",
    },
];

/// Needed on top for `--netns` (setns) and for creating the default cgroup.
pub const CAP_SYS_ADMIN: Capability = Capability {
    name: "CAP_SYS_ADMIN",
    bit: 21,
    why:
        "enter --netns, or create <cgroup2 root>/xgate-<iface> (use `--cgroup self` under systemd)",
};

/// The effective capability set of this process, from `/proc/self/status` (`CapEff`).
pub fn effective_capabilities() -> Result<u64, CtlError> {
    let path = Path::new("/proc/self/status");
    let text = fs::read_to_string(path).map_err(CtlError::io("reading", path))?;
    text.lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or_else(|| CtlError::Io {
            what: "parsing CapEff in",
            path: path.to_path_buf(),
            source: io::ErrorKind::InvalidData.into(),
        })
}

/// Refuses to go on without every capability in `needed`, naming the missing ones.
pub fn require_capabilities(needed: &[Capability]) -> Result<(), CtlError> {
    let have = effective_capabilities()?;
    let missing: Vec<String> = needed
        .iter()
        .filter(|c| have & (1u64 << c.bit) == 0)
        .map(|c| format!("{} ({})", c.name, c.why))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CtlError::MissingCapabilities(missing.join(", ")))
    }
}

/// The pin directory of an interface's gateway.
pub fn pin_dir(ifname: &str) -> PathBuf {
    Path::new(PIN_ROOT).join(ifname)
}

/// A gateway that runs: its interface, process and pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub ifname: String,
    pub pid: u32,
    pub pin_dir: PathBuf,
}

/// The process holding `lock` with flock, from `/proc/locks` (which lists every lock with the
/// holder's pid and the file's device and inode); looking never takes the lock.
fn lock_holder(lock: &Path) -> Result<Option<u32>, CtlError> {
    let meta = match fs::metadata(lock) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CtlError::io("reading", lock)(e)),
    };
    let dev = meta.dev();
    let want = (libc::major(dev), libc::minor(dev), meta.ino());
    let locks = Path::new("/proc/locks");
    let text = fs::read_to_string(locks).map_err(CtlError::io("reading", locks))?;
    Ok(text.lines().find_map(|line| {
        // "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF" (a "->" marks a waiter).
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[1] != "FLOCK" {
            return None;
        }
        let pid: u32 = f[4].parse().ok()?;
        let mut id = f[5].split(':');
        let major = u32::from_str_radix(id.next()?, 16).ok()?;
        let minor = u32::from_str_radix(id.next()?, 16).ok()?;
        let ino: u64 = id.next()?.parse().ok()?;
        ((major, minor, ino) == want && Path::new(&format!("/proc/{pid}")).exists()).then_some(pid)
    }))
}

/// Finds the gateway on `ifname`, or the only one when `ifname` is `None`.
pub fn locate(ifname: Option<&str>) -> Result<Located, CtlError> {
    let ifname = match ifname {
        Some(name) => {
            if !crate::config::valid_iface(name) {
                return Err(CtlError::BadIface(name.to_string()));
            }
            name.to_string()
        }
        None => {
            let running = running_gateways()?;
            match running.as_slice() {
                [] => return Err(CtlError::NoneRunning),
                [one] => one.clone(),
                many => return Err(CtlError::Ambiguous(many.join(", "))),
            }
        }
    };
    let lock = lock_path(&ifname);
    let pins = pin_dir(&ifname);
    let pinned = pins.join("ports").exists();
    match lock_holder(&lock)? {
        Some(pid) if pinned => Ok(Located {
            ifname,
            pid,
            pin_dir: pins,
        }),
        holder => Err(CtlError::NotRunning {
            ifname,
            lock,
            pins: match (holder, pinned) {
                (Some(pid), false) => format!(
                    "; pid {pid} holds the lock but {pins:?} has no pins: starting or stopping?"
                ),
                (None, true) => format!("; stale pins in {pins:?} from a gateway that died"),
                _ => String::new(),
            },
        }),
    }
}

/// Interfaces whose lock a live process holds.
pub fn running_gateways() -> Result<Vec<String>, CtlError> {
    let dir = Path::new(LOCK_DIR);
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CtlError::io("reading", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(CtlError::io("reading", dir))?.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".lock"))
        else {
            continue;
        };
        if lock_holder(&path)?.is_some() {
            out.push(name.to_string());
        }
    }
    out.sort();
    Ok(out)
}
