//! `xgate reload`: asks a running gateway to re-read its configuration file (SIGHUP, as
//! `systemctl reload` or `kill -HUP` would) and waits for its answer in the state file, so
//! the operator learns whether the new routes and limits were accepted or why not.

use std::time::{Duration, Instant};

use crate::report::{ReloadState, RuntimeState, REFRESH};

use super::{locate, CtlError};

/// An accepted reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub ifname: String,
    pub pid: u32,
    /// The gateway's count of reloads asked for, this one included.
    pub requested: u64,
}

/// Sends SIGHUP to the gateway on `ifname` (or the only one) and waits up to `timeout` for
/// its verdict.
pub fn reload(ifname: Option<&str>, timeout: Duration) -> Result<Reloaded, CtlError> {
    let gw = locate(ifname)?;
    let before = current(&gw.ifname)?.requested;
    let pid = libc::pid_t::try_from(gw.pid).map_err(|_| CtlError::Signal {
        pid: gw.pid,
        source: std::io::ErrorKind::InvalidInput.into(),
    })?;
    // SAFETY: kill(2) with a pid read from the lock's holder and a valid signal number.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        return Err(CtlError::Signal {
            pid: gw.pid,
            source: std::io::Error::last_os_error(),
        });
    }
    let start = Instant::now();
    loop {
        let now = current(&gw.ifname)?;
        if now.requested > before {
            if now.last_error.is_empty() {
                return Ok(Reloaded {
                    ifname: gw.ifname,
                    pid: gw.pid,
                    requested: now.requested,
                });
            }
            return Err(CtlError::ReloadRefused {
                ifname: gw.ifname,
                reason: now.last_error,
            });
        }
        if start.elapsed() >= timeout {
            return Err(CtlError::ReloadTimeout {
                ifname: gw.ifname,
                pid: gw.pid,
                secs: timeout.as_secs(),
            });
        }
        // The gateway answers at once and rewrites its file every REFRESH.
        std::thread::sleep(REFRESH / 10);
    }
}

fn current(ifname: &str) -> Result<ReloadState, CtlError> {
    Ok(RuntimeState::read(ifname)?.unwrap_or_default().reload)
}
