//! The running gateway: what the process `xgate run` is, from start to a clean exit.
//!
//! - [`run`]: start-up in order, the main loop (signals, reload, state file), the drain and
//!   teardown; with what it calls by job: `signals` (SIGINT/SIGTERM/SIGHUP taken
//!   synchronously), `placement` (netns and cgroup), `kernel_thread` (the io_uring kernel
//!   path's thread), `publish` (the state file's writer).
//! - [`bypass`]: the whole bypass path of the interface as one value, [`Bypass`] (cgroup, BPF
//!   steering, kernel listeners, AF_XDP sockets and poller threads).
//! - [`admin`] and [`metrics`]: `/metrics` and `/status` on `[admin] listen`.
//!
//! What the process publishes for the operator's commands (the state file, the status) is
//! [`crate::report`]; the commands themselves are [`crate::ctl`].

pub mod access_log;
pub mod admin;
pub mod bypass;
pub mod cores;
pub mod health;
mod kernel_thread;
pub mod metrics;
mod placement;
mod publish;
pub mod run;
mod signals;

pub use bypass::{Bypass, BypassConfig, BypassError, CgroupPlacement, PollerExit, PortConfig};
