//! The 4-tuple that names a connection.

use core::hash::{Hash, Hasher};
use core::net::{Ipv4Addr, SocketAddrV4};

/// A connection's 4-tuple as the gateway sees it: `local` is the gateway's address and port
/// (the destination of inbound segments), `remote` the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// The 12 bytes in two integer writes. Every segment looks its flow up, and the derived hash
/// made six writes (each address as a length-prefixed byte slice, each port): as many rounds
/// of the keyed hasher, for the same key material.
impl Hash for FlowKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let ips =
            u64::from(self.local.ip().to_bits()) << 32 | u64::from(self.remote.ip().to_bits());
        let ports = u32::from(self.local.port()) << 16 | u32::from(self.remote.port());
        state.write_u64(ips);
        state.write_u32(ports);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, RandomState};

    #[test]
    fn hash_tells_every_field_apart() {
        let s = RandomState::new();
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 2);
        let key = FlowKey::from_inbound(a, 4000, b, 80);
        let others = [
            FlowKey::from_inbound(b, 4000, b, 80),
            FlowKey::from_inbound(a, 4001, b, 80),
            FlowKey::from_inbound(a, 4000, a, 80),
            FlowKey::from_inbound(a, 4000, b, 81),
            // Addresses and ports swapped between the sides.
            FlowKey::from_inbound(b, 80, a, 4000),
        ];
        assert_eq!(
            s.hash_one(key),
            s.hash_one(FlowKey::from_inbound(a, 4000, b, 80))
        );
        for other in others {
            assert_ne!(s.hash_one(key), s.hash_one(other), "{other:?}");
        }
    }
}
