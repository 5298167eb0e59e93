//! The 4-tuple that names a connection.

use core::net::{Ipv4Addr, SocketAddrV4};

/// A connection's 4-tuple as the gateway sees it: `local` is the gateway's address and port
/// (the destination of inbound segments), `remote` the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
}

impl FlowKey {
    pub const fn new(local: SocketAddrV4, remote: SocketAddrV4) -> Self {
        FlowKey { local, remote }
    }

    /// Built from an inbound segment's addresses and ports.
    pub const fn from_inbound(src: Ipv4Addr, src_port: u16, dst: Ipv4Addr, dst_port: u16) -> Self {
        FlowKey {
            local: SocketAddrV4::new(dst, dst_port),
            remote: SocketAddrV4::new(src, src_port),
        }
    }
}
