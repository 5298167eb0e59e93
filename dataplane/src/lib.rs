//! xgate's data plane.
//!
//! The sans-IO core (`wire`, `tcp`, `http`, `app`) takes bytes and time and returns bytes: no
//! sockets, clocks or threads, so it runs under unit tests, deterministic simulation and fuzzing
//! without privileges. See `docs/architecture.md` for how the pieces fit on the packet path.

pub mod afxdp;
pub mod app;
pub mod bpf;
pub mod cli;
pub mod config;
pub mod ctl;
pub mod engine;
pub mod histogram;
pub mod http;
pub mod kernel;
pub mod logging;
pub mod reload;
pub mod sessions;
pub mod stream;
pub mod tally;
pub mod tcp;
pub mod testkit;
pub mod time;
pub mod wire;
