//! The kernel path's thread: the io_uring [`KernelPath`] serving the ports' listeners in a
//! `run_once` loop, optionally pinned to a core; it takes new routes from its mailbox and
//! leaves its counters where the state file's writer reads them.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant as StdInstant;

use crate::afxdp::pin_to_core;
use crate::answers::ReloadMailbox;
use crate::kernel::KernelPath;
use crate::report::{KernelState, REFRESH};

use super::access_log::AccessLink;
use super::publish::kernel_state;
use super::run::RunError;

/// Wraps an OS error of the kernel path with what was being done.
pub(super) fn kernel_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> RunError {
    let what = what.into();
    move |source| RunError::Kernel { what, source }
}

/// Starts the thread `xgate-kernel`; returns once it runs (pinned, if asked), or with the
/// reason it could not.
pub(super) fn spawn(
    mut kernel: KernelPath,
    core: Option<usize>,
    grace: crate::time::Duration,
    stop: Arc<AtomicBool>,
    shared: Arc<Mutex<KernelState>>,
    reload: Arc<ReloadMailbox>,
    mut access: Option<AccessLink>,
) -> Result<JoinHandle<Result<(), RunError>>, RunError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("xgate-kernel".into())
        .spawn(move || {
            if let Some(cpu) = core {
                if let Err(e) = pin_to_core(cpu) {
                    let _ = ready_tx.send(Err(kernel_err(format!("pinning to CPU {cpu}"))(e)));
                    return Ok(());
                }
            }
            let _ = ready_tx.send(Ok(()));
            // `all`: hand every record over; else only a sink that is half full (between
            // publishes, so that a busy path does not drop records for want of a publish).
            let hand_over = |k: &mut KernelPath, access: &mut Option<AccessLink>, all: bool| {
                if let (Some(link), Some(sink)) = (access.as_mut(), k.access_sink()) {
                    if all || sink.is_half_full() {
                        link.hand_over(sink);
                    }
                }
            };
            let publish = |k: &mut KernelPath, access: &mut Option<AccessLink>| {
                let s = kernel_state(k);
                *shared.lock().unwrap_or_else(|e| e.into_inner()) = s;
                hand_over(k, access, true);
            };
            let mut last = StdInstant::now();
            let mut result = Ok(());
            while !stop.load(Ordering::Relaxed) {
                if let Some(next) = reload.take() {
                    kernel.reload(next);
                }
                if let Err(e) = kernel.run_once() {
                    result = Err(kernel_err("io_uring_enter")(e));
                    break;
                }
                hand_over(&mut kernel, &mut access, false);
                if last.elapsed() >= REFRESH / 2 {
                    last = StdInstant::now();
                    publish(&mut kernel, &mut access);
                }
            }
            if result.is_ok() {
                result = kernel.shutdown(grace).map_err(kernel_err("shutdown"));
            }
            publish(&mut kernel, &mut access);
            result
        })
        .map_err(kernel_err("spawning the kernel-path thread"))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => Err(RunError::KernelPanicked),
    }
}

pub(super) fn join(t: JoinHandle<Result<(), RunError>>) -> Result<(), RunError> {
    t.join().unwrap_or(Err(RunError::KernelPanicked))
}
