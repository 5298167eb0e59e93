//! SIGINT, SIGTERM, SIGHUP and SIGUSR1 (reopen the access log), blocked in the main thread before any other thread exists;
//! threads spawned afterwards inherit the mask, so the signals are taken only by the main
//! thread's `sigtimedwait` — no handler, no self-pipe, no crate.

use std::io;

use super::run::RunError;

/// The signals `xgate run` acts on, blocked in the calling thread (and so in every thread it
/// spawns afterwards) and taken synchronously with `sigtimedwait`.
pub(super) struct SignalSet(libc::sigset_t);

impl SignalSet {
    /// Blocks SIGINT, SIGTERM, SIGHUP and SIGUSR1 in the calling thread.
    pub(super) fn block() -> Result<SignalSet, RunError> {
        // SAFETY: sigemptyset/sigaddset initialise and fill the set we own; pthread_sigmask
        // reads it and changes only the calling thread's mask.
        let rc = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGHUP);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            (rc, set)
        };
        match rc {
            (0, set) => Ok(SignalSet(set)),
            (e, _) => Err(RunError::Signals(io::Error::from_raw_os_error(e))),
        }
    }

    /// Waits up to `timeout` for one of the signals; returns its number.
    pub(super) fn wait(&self, timeout: std::time::Duration) -> Result<Option<i32>, RunError> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `self.0` is an initialised sigset_t, `ts` a live timespec; no siginfo wanted.
        let sig = unsafe { libc::sigtimedwait(&self.0, std::ptr::null_mut(), &ts) };
        if sig > 0 {
            return Ok(Some(sig));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
            _ => Err(RunError::Signals(e)),
        }
    }
}
