//! The reverse proxy's sans-IO parts (issue 13): what a gateway in front of services computes
//! about a request it forwards and the response that comes back, with no sockets, clocks or
//! threads, as the rest of the core.
//!
//! The pieces follow a proxied request: [`balance`] picks the upstream server of a pool and
//! keeps each server's passive health; [`forward`] writes the request head the upstream gets
//! (RFC 9110 §7.6: hop-by-hop fields removed, `Via`, `X-Forwarded-*` / `Forwarded`, the body
//! re-framed); [`response`] reads the upstream's response head, decides how its body ends
//! (RFC 9112 §6.3) and writes the head the client gets. The data path that drives them (the
//! upstream connections over io_uring, on both paths) lives in `dataplane`.

pub mod balance;
pub mod forward;
pub mod response;
