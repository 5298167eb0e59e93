//! xgate's privileged shell and the `xgate` binary.
//!
//! The sans-IO core (wire, tcp, http, app, engine) is the `xgate-core` crate; this crate feeds
//! it: the BPF steering ([`bpf`]), the AF_XDP rings and pollers ([`afxdp`]), the io_uring
//! kernel path ([`kernel`]), the running process and the operator's commands. The core's
//! modules are re-exported under their own names, so `dataplane::tcp` is `xgate_core::tcp`.
//! See `docs/architecture.md` for how the pieces fit on the packet path.

pub use xgate_core::{
    access, answers, app, engine, histogram, http, proxy, sessions, stream, tally, tcp, testkit,
    time, tls, wire,
};

pub mod afxdp;
pub mod bpf;
pub mod cli;
pub mod config;
pub mod ctl;
pub mod gateway;
pub mod kernel;
pub mod logging;
pub mod report;
pub mod static_dir;
pub mod sys;
pub mod upstream;
