//! Deterministic simulation harness: a client (smoltcp) and a server under test talk HTTP/1.1
//! across an impaired in-memory Ethernet link, in virtual time. Nothing sleeps: each step
//! delivers the frames that are due, lets the server and the client react, and jumps the clock
//! to the earliest wake-up (next delivery, client `poll_at`, server `poll_timeout`).
//!
//! Using it:
//!
//! ```ignore
//! let cfg = SimConfig::new(seed, link::profile("combined").unwrap()); // seed + profile = the run
//! let cfg = SimConfig::ipv6(seed, link::profile("combined").unwrap()); // the same, IPv6 client
//! match run(&cfg, |now| make_my_server(now)) {                        // any `SimServer`
//!     Ok(outcome) => { /* outcome.trace_hash, outcome.client.requests, link stats, ... */ }
//!     Err(failure) => panic!("{failure}"), // says what, where, and the replay command
//! }
//! ```
//!
//! - [`SimServer`]: what a server under test implements (the engine's sans-IO surface).
//! - [`link`]: the link, its [`link::Impairments`] and the named [`link::PROFILES`] (clean,
//!   loss1, loss5, reorder10, reorder25, dup1, dup5, corrupt, bottleneck, combined,
//!   loss2_bottleneck).
//! - [`http::Workload`]: what a seed asks of the server: 8-16 connections (or more with
//!   `SimConfig::max_conns`), a few or all at once, 1-10 keep-alive requests each, pipelined up
//!   to 4 deep, `GET /bytes/{n}` and `POST /echo` (Content-Length or chunked upload) from 0 B to
//!   1 MiB, some ending with `Connection: close`, a few reset by the client mid-stream.
//! - [`client::Client`]: runs the workload on smoltcp sockets and checks every response strictly
//!   and byte-exact ([`http::ResponseParser`]); over IPv4 (10.0.0.1 to 10.0.0.2) or IPv6
//!   (fd00::1 to fd00::2), as [`ClientShape`]'s `family` says.
//! - [`run`] ([`driver`]): one seeded run. It also checks every frame the server sends
//!   ([`driver::check_server_frame`]), answers ARP and Neighbour Solicitations for both sides,
//!   keeps the client's ARP and ICMPv6 from the server under test (in production the XDP
//!   program passes them to the kernel, which answers), and ends only when every
//!   request is answered, every client socket is closed and `connection_count() == 0`. A run
//!   that stalls fails with the client's state; bounds on virtual time and steps stop a livelock.
//! - [`reference::RefServer`]: a smoltcp-based server that proves the harness;
//!   [`engine_server::SimEngine`]: the real engine.
//! - [`flight::FlightProbe`]: reads a server's bytes in flight per round trip off the wire, for
//!   the congestion-control runs in the same file.

pub mod client;
pub mod device;
pub mod driver;
pub mod engine_server;
pub mod flight;
pub mod http;
pub mod link;
pub mod reference;
pub mod rng;

use xgate_core::time::Instant;

pub use driver::{run, ClientShape, Failure, Outcome, SimConfig};

/// The server side of a simulation: the sans-IO surface of `xgate_core::engine::Engine`.
///
/// The driver calls `handle_frame` for each frame the link delivers, drains `poll_transmit`
/// after every input, and calls `handle_timeout(now)` once `now >= poll_timeout()`.
pub trait SimServer {
    fn handle_frame(&mut self, now: Instant, frame: &[u8]);
    /// Writes one whole Ethernet frame into `buf` and returns its length.
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize>;
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
    /// Live connections (anything holding state: established, closing, TIME-WAIT).
    fn connection_count(&self) -> usize;
}
