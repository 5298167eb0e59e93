//! The running gateway: what the process `xgate run` is, from start to a clean exit.
//!
//! - [`run`]: start-up in order (netns, signals, cgroup, the bypass, the kernel path, the
//!   admin endpoint), the main loop (signals, reload, state file), the drain and teardown.
//! - [`bypass`]: the whole bypass path of the interface as one value, [`Bypass`] (cgroup, BPF
//!   steering, kernel listeners, AF_XDP sockets and poller threads).
//! - [`admin`] and [`metrics`]: `/metrics` and `/status` on `[admin] listen`.
//!
//! What the process publishes for the operator's commands (the state file, the status) is
//! [`crate::report`]; the commands themselves are [`crate::ctl`].

pub mod admin;
pub mod bypass;
pub mod metrics;
pub mod run;

pub use bypass::{Bypass, BypassConfig, BypassError, CgroupPlacement, PollerExit, PortConfig};
