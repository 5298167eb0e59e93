//! The connection table as the core's [`Forwarder`](crate::proxy::forwarder::Forwarder) sees
//! it: idle connections by the server's address, a connection that cannot be opened as `None`
//! (counted by the table: `TableFull` needs no socket, a socket error is in its stats).

use std::net::SocketAddr;

use super::{ConnId, ServerKey, UpstreamConns};
use crate::proxy::forwarder::UpstreamTable;
use crate::time::Instant;

impl UpstreamTable for UpstreamConns {
    type Conn = ConnId;

    fn checkout_idle(&mut self, addr: SocketAddr, owner: u64, now: Instant) -> Option<ConnId> {
        UpstreamConns::checkout_idle(self, ServerKey(addr), owner, now)
    }

    fn connect(&mut self, addr: SocketAddr, owner: u64) -> Option<ConnId> {
        UpstreamConns::connect(self, ServerKey(addr), addr, owner).ok()
    }

    fn buffers(&mut self, conn: ConnId) -> (&[u8], &mut [u8]) {
        UpstreamConns::buffers(self, conn)
    }

    fn recv_capacity(&self) -> usize {
        self.config.recv_buffer_len
    }

    fn consume(&mut self, conn: ConnId, n: usize) {
        UpstreamConns::consume(self, conn, n);
    }

    fn commit_send(&mut self, conn: ConnId, n: usize) {
        UpstreamConns::commit_send(self, conn, n);
    }

    fn release(&mut self, conn: ConnId, max_idle: usize, now: Instant) {
        UpstreamConns::release(self, conn, max_idle, now);
    }

    fn idle_count(&self, addr: SocketAddr) -> usize {
        UpstreamConns::idle_count(self, ServerKey(addr))
    }
}
