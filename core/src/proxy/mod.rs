//! The reverse proxy's sans-IO parts (issue 13): what a gateway in front of services computes
//! about a request it forwards and the response that comes back, with no sockets, clocks or
//! threads, as the rest of the core.
//!
//! The pieces follow a proxied request: [`balance`] picks the upstream server of a pool and
//! keeps each server's passive health; [`forward`] writes the request head the upstream gets
//! (RFC 9110 §7.6: hop-by-hop fields removed, `Via`, `X-Forwarded-*` / `Forwarded`, the body
//! re-framed); [`response`] reads the upstream's response head, decides how its body ends
//! (RFC 9112 §6.3) and writes the head the client gets; [`exchange`] joins them for one
//! request over one upstream connection (bodies streamed both ways, interim responses,
//! timers, 502/504 or an aborted stream, retry and the balancer's outcome). The data path
//! that drives them (the upstream connections over io_uring, on both paths) lives in
//! `dataplane`.

pub mod balance;
pub mod config;
pub mod exchange;
pub mod forward;
pub mod forwarder;
pub mod health;
pub mod response;
pub mod route;

/// Bytes appended to a borrowed buffer, failing (not panicking) when it is full: how the proxy
/// writes heads straight into the caller's buffer, with no allocation.
pub(crate) struct HeadBuf<'b> {
    buf: &'b mut [u8],
    len: usize,
}

/// The buffer given to a [`HeadBuf`] is full; each writer turns it into its own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BufferFull;

impl<'b> HeadBuf<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        HeadBuf { buf, len: 0 }
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) -> Result<(), BufferFull> {
        let dst = self
            .buf
            .get_mut(self.len..)
            .and_then(|free| free.get_mut(..bytes.len()))
            .ok_or(BufferFull)?;
        dst.copy_from_slice(bytes);
        self.len += bytes.len();
        Ok(())
    }

    pub(crate) fn put_decimal(&mut self, n: u64) -> Result<(), BufferFull> {
        self.put(crate::http::syntax::decimal(n, &mut [0u8; 20]))
    }
}
