//! Where the gateway's process runs: the network namespace of `--netns`, entered before any
//! thread exists so that every thread lives there, and the cgroup v2 whose sockets sock_ops
//! watches — created as `<root>/xgate-<iface>` (and removed at the end) unless `--cgroup`
//! names one, or `self` under systemd.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::bpf::cgroup2_root;

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

/// The cgroup v2 directory of this process (`0::/path` in `/proc/self/cgroup`).
fn current_cgroup() -> Result<PathBuf, RunError> {
    let file = PathBuf::from("/proc/self/cgroup");
    let text = fs::read_to_string(&file).map_err(|source| RunError::Cgroup {
        path: file.clone(),
        source,
    })?;
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| RunError::Cgroup {
            path: file,
            source: io::Error::new(io::ErrorKind::NotFound, "no cgroup v2 entry"),
        })?;
    Ok(cgroup2_root()?.join(rel.trim().trim_start_matches('/')))
}
