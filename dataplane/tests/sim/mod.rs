//! Deterministic simulation harness: a client (smoltcp) and a server under test talk HTTP/1.1
//! across an impaired in-memory Ethernet link, in virtual time.
//!
//! - [`SimServer`]: what a server under test implements (the engine's sans-IO surface).
//! - [`link`]: the link and its named impairment [`link::PROFILES`].
//! - [`run`]: one seeded run; returns an [`Outcome`] or a [`Failure`] whose message says how to
//!   replay it.
//! - [`reference::RefServer`]: a smoltcp-based server that proves the harness.

pub mod client;
pub mod device;
pub mod driver;
pub mod engine_server;
pub mod http;
pub mod link;
pub mod reference;
pub mod rng;

use dataplane::time::Instant;

pub use driver::{run, Failure, Outcome, SimConfig};

/// The server side of a simulation: the sans-IO surface of `dataplane::engine::Engine`.
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
