//! Where the gateway's process runs: the network namespace of `--netns`, entered before any
//! thread exists so that every thread lives there, and the cgroup v2 whose sockets sock_ops
//! watches — created as `<root>/xgate-<iface>` (and removed at the end) unless `--cgroup`
//! names one, or `self` under systemd. The one place that reads `/proc/self/cgroup` and
//! writes `cgroup.procs` (the bypass joins and leaves its cgroup through here too).

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::bpf::{cgroup2_root, SteeringError};

use super::run::RunError;

/// Moves the calling thread (the main thread, before any other exists) into a named netns.
pub(super) fn enter_netns(name: &str) -> Result<(), RunError> {
    let err = |source| RunError::Netns {
        name: name.to_string(),
        source,
    };
    if name.is_empty() || name.contains('/') {
        return Err(err(io::ErrorKind::InvalidInput.into()));
    }
    let file = fs::File::open(format!("/var/run/netns/{name}")).map_err(err)?;
    // SAFETY: setns on a descriptor we hold open; CLONE_NEWNET changes only the network
    // namespace of the calling thread, which threads spawned later inherit.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(err(io::Error::last_os_error()));
    }
    Ok(())
}

/// The gateway's cgroup v2 directory, and whether the gateway created it (then
/// [`GatewayCgroup::remove_if_created`] removes it at the end).
pub(super) struct GatewayCgroup {
    pub(super) dir: PathBuf,
    created: bool,
}

impl GatewayCgroup {
    /// `named`: `--cgroup` (`self`: the cgroup the process already runs in, under systemd the
    /// service's own); `None`: `<cgroup2 root>/xgate-<ifname>`, created unless it exists.
    pub(super) fn choose(named: Option<&Path>, ifname: &str) -> Result<Self, RunError> {
        let (dir, created) = match named {
            Some(dir) if dir.as_os_str() == "self" => (current_cgroup()?, false),
            Some(dir) => (dir.to_path_buf(), false),
            None => {
                let dir = cgroup2_root()?.join(format!("xgate-{ifname}"));
                match fs::create_dir(&dir) {
                    Ok(()) => (dir, true),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        // Left by a gateway that was killed (empty: adopt it and remove it at
                        // the end), or in use by one that runs (it keeps the interface's
                        // lock, so starting fails next, and the directory is not ours to
                        // remove).
                        let empty = fs::read_to_string(dir.join("cgroup.procs"))
                            .is_ok_and(|procs| procs.trim().is_empty());
                        (dir, empty)
                    }
                    Err(source) => return Err(RunError::Cgroup { path: dir, source }),
                }
            }
        };
        Ok(GatewayCgroup { dir, created })
    }

    /// Removes the directory if the gateway created (or adopted) it; it is empty again once
    /// the bypass moved the process back where it was.
    pub(super) fn remove_if_created(self) {
        if self.created {
            let _ = fs::remove_dir(&self.dir);
        }
    }
}

/// The cgroup v2 directory of this process, for `--cgroup self`.
fn current_cgroup() -> Result<PathBuf, RunError> {
    process_cgroup().map_err(|e| match e {
        CgroupLookup::Read { file, source } => RunError::Cgroup { path: file, source },
        CgroupLookup::NoV2Entry { file } => RunError::Cgroup {
            path: file,
            source: io::Error::new(io::ErrorKind::NotFound, "no cgroup v2 entry"),
        },
        CgroupLookup::Root(e) => RunError::CgroupRoot(e),
    })
}

/// Why the process's cgroup v2 directory could not be found (each caller words it in its own
/// error type).
pub(super) enum CgroupLookup {
    /// `/proc/self/cgroup` could not be read.
    Read { file: PathBuf, source: io::Error },
    /// It has no `0::` line: the process is not under cgroup v2.
    NoV2Entry { file: PathBuf },
    /// The cgroup v2 mount was not found.
    Root(SteeringError),
}

/// The cgroup v2 directory of this process (`0::/path` in `/proc/self/cgroup`, under the
/// cgroup v2 mount): the one place that reads it, for `--cgroup self` and for the bypass's
/// own placement.
pub(super) fn process_cgroup() -> Result<PathBuf, CgroupLookup> {
    let file = PathBuf::from("/proc/self/cgroup");
    let text = match fs::read_to_string(&file) {
        Ok(text) => text,
        Err(source) => return Err(CgroupLookup::Read { file, source }),
    };
    let Some(rel) = text.lines().find_map(|l| l.strip_prefix("0::")) else {
        return Err(CgroupLookup::NoV2Entry { file });
    };
    let root = cgroup2_root().map_err(CgroupLookup::Root)?;
    Ok(root.join(rel.trim().trim_start_matches('/')))
}

/// Moves the whole process into the cgroup v2 directory `dir`; on failure, the file written
/// and the OS error.
pub(super) fn join_cgroup(dir: &Path) -> Result<(), (PathBuf, io::Error)> {
    let procs = dir.join("cgroup.procs");
    fs::write(&procs, format!("{}\n", std::process::id())).map_err(|e| (procs, e))
}
