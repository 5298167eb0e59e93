//! xgate's sans-IO core: everything the gateway computes, with no sockets, clocks or threads.
//!
//! Bytes and time go in, bytes come out, so every piece runs under unit tests, deterministic
//! simulation (`tests/simulation.rs`) and fuzzing (`fuzz/`) without privileges or clang. The
//! privileged shell that feeds it (BPF, AF_XDP, io_uring, the `xgate` binary) is the
//! `dataplane` crate. The modules follow the packet path:
//!
//! - [`wire`]: typed views and builders for Ethernet, IPv4, TCP and their checksums;
//! - [`tcp`]: the server-side TCP engine (SYN cookies, state machine, timers, buffers);
//! - [`http`]: HTTP/1.1 over a byte stream, every limit, the protocol's 4xx;
//! - [`app`]: what the gateway answers (routes, static files, built-in routes);
//! - [`proxy`]: what the gateway computes about a request it forwards to an upstream pool and
//!   the response that comes back (server choice, head rewriting, response framing);
//! - [`engine`]: tcp + http + app per connection, Ethernet frames in and out — what the
//!   AF_XDP poller drives.
//!
//! - [`sessions`]: the live HTTP connections of either path (slots, per-port tally, reload
//!   generations, drain, the deadline sweep), one table both paths drive;
//! - [`stream`]: HTTP over a reliable byte stream (a kernel socket), the kernel path's
//!   connection without its io_uring;
//! - [`tls`]: TLS termination (rustls) between either path's bytes and HTTP: a port's
//!   certificates and policies, one connection's TLS, the handshake budget per round.
//!
//! Around them: [`time`] (the instant type every component is handed), [`answers`] (the
//! routes and limits in force, two generations across a reload), [`tally`] (per-port
//! counts), [`histogram`] (response times), [`testkit`] (a scripted frame-level client for
//! tests and benches).

pub mod access;
pub mod answers;
pub mod app;
pub mod engine;
pub mod histogram;
pub mod http;
pub mod proxy;
pub mod sessions;
pub mod stream;
pub mod tally;
pub mod tcp;
pub mod testkit;
pub mod time;
pub mod tls;
pub mod wire;
