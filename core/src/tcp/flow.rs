//! The 4-tuple that names a connection, in either IP family.

use core::hash::{Hash, Hasher};
use core::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::wire::IpPair;

/// RFC 9293 §3.7.1: the send MSS when an IPv4 peer sent no MSS option.
pub const DEFAULT_MSS_IPV4: u16 = 536;
/// RFC 9293 §3.7.1 (and RFC 8200 §5: every IPv6 link carries 1280-byte packets, 1280 - 40 -
/// 20): the send MSS when an IPv6 peer sent no MSS option.
pub const DEFAULT_MSS_IPV6: u16 = 1220;
/// How much longer the IPv6 header is than IPv4's without options: what the same frame size
/// leaves the TCP payload less of.
const IPV6_EXTRA_HEADER: u16 = 20;

/// A connection's 4-tuple as the gateway sees it: the local side is the gateway's address and
/// port (the destination of inbound segments), the remote side the client's.
///
/// The addresses are an [`IpPair`] (oriented as an inbound segment carries them: source =
/// remote, destination = local), so both sides are of one family by construction and an IPv4
/// key stays small: 38 bytes for either family where two `SocketAddr`s would take 64 (they
/// carry an IPv6 flow label and scope id no TCP flow is named by). Every segment looks its
/// flow up, the table holds one per connection, the SYN cache and TIME_WAIT records one each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowKey {
    inbound: IpPair,
    local_port: u16,
    remote_port: u16,
}

impl FlowKey {
    /// The key of `local` and `remote`; `None` when they are of different families.
    pub fn new(local: SocketAddr, remote: SocketAddr) -> Option<Self> {
        match (local, remote) {
            (SocketAddr::V4(l), SocketAddr::V4(r)) => Some(Self::new_v4(l, r)),
            (SocketAddr::V6(l), SocketAddr::V6(r)) => Some(Self::new_v6(l, r)),
            _ => None,
        }
    }

    pub const fn new_v4(local: SocketAddrV4, remote: SocketAddrV4) -> Self {
        FlowKey {
            inbound: IpPair::V4 {
                src: *remote.ip(),
                dst: *local.ip(),
            },
            local_port: local.port(),
            remote_port: remote.port(),
        }
    }

    /// The flow label and scope id of either address are not part of the key.
    pub const fn new_v6(local: SocketAddrV6, remote: SocketAddrV6) -> Self {
        FlowKey {
            inbound: IpPair::V6 {
                src: *remote.ip(),
                dst: *local.ip(),
            },
            local_port: local.port(),
            remote_port: remote.port(),
        }
    }

    /// Built from an inbound segment's addresses and ports.
    pub const fn from_inbound(ips: IpPair, src_port: u16, dst_port: u16) -> Self {
        FlowKey {
            inbound: ips,
            local_port: dst_port,
            remote_port: src_port,
        }
    }

    /// An IPv4 key from an inbound segment's addresses and ports.
    pub const fn from_inbound_v4(
        src: Ipv4Addr,
        src_port: u16,
        dst: Ipv4Addr,
        dst_port: u16,
    ) -> Self {
        Self::from_inbound(IpPair::V4 { src, dst }, src_port, dst_port)
    }

    /// The gateway's address and port.
    pub const fn local(&self) -> SocketAddr {
        SocketAddr::new(self.inbound.dst(), self.local_port)
    }

    /// The client's address and port.
    pub const fn remote(&self) -> SocketAddr {
        SocketAddr::new(self.inbound.src(), self.remote_port)
    }

    pub const fn local_ip(&self) -> IpAddr {
        self.inbound.dst()
    }

    pub const fn remote_ip(&self) -> IpAddr {
        self.inbound.src()
    }

    pub const fn local_port(&self) -> u16 {
        self.local_port
    }

    pub const fn remote_port(&self) -> u16 {
        self.remote_port
    }

    /// The addresses as an inbound segment carries them (source = remote).
    pub const fn inbound_ips(&self) -> IpPair {
        self.inbound
    }

    /// The addresses of what the gateway sends (source = local).
    pub const fn outbound_ips(&self) -> IpPair {
        self.inbound.reversed()
    }

    pub const fn is_ipv6(&self) -> bool {
        self.inbound.is_ipv6()
    }

    /// The MSS to send with, from the peer's SYN option (`None` without one): the option as
    /// it is in both families (RFC 9293 §3.7.1: no segment larger than the peer's SendMSS;
    /// the connection keeps a floor of its own), the family's default without one. An IPv6
    /// peer naming less than 1220 is obeyed, as Linux does: every IPv6 path carries 1280-byte
    /// packets (RFC 8200 §5), but the option is the receiver's limit, not the path's.
    pub fn peer_mss(&self, option: Option<u16>) -> u16 {
        let default = if self.is_ipv6() {
            DEFAULT_MSS_IPV6
        } else {
            DEFAULT_MSS_IPV4
        };
        option.unwrap_or(default)
    }

    /// The gateway's own MSS on this flow from `TcpConfig::mss`, which is sized for IPv4
    /// (frame minus 14 + 20 + 20): 20 less over IPv6, whose header is 20 bytes longer, so a
    /// full segment fills the same frame.
    pub fn local_mss(&self, configured: u16) -> u16 {
        if self.is_ipv6() {
            configured.saturating_sub(IPV6_EXTRA_HEADER)
        } else {
            configured
        }
    }
}

/// The addresses and ports in as few integer writes as the family allows (two for IPv4, three
/// for IPv6). Every segment looks its flow up, and the derived hash made a write per field
/// (each address as a length-prefixed byte slice): as many rounds of the keyed hasher, for the
/// same key material. Keys of the two families are never equal; that they might share a hash
/// costs only a probe.
impl Hash for FlowKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let ports = u32::from(self.local_port) << 16 | u32::from(self.remote_port);
        match self.inbound {
            IpPair::V4 { src, dst } => {
                state.write_u64(u64::from(dst.to_bits()) << 32 | u64::from(src.to_bits()));
            }
            IpPair::V6 { src, dst } => {
                state.write_u128(dst.to_bits());
                state.write_u128(src.to_bits());
            }
        }
        state.write_u32(ports);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv6Addr;
    use std::hash::{BuildHasher, RandomState};

    #[test]
    fn hash_tells_every_field_apart() {
        let s = RandomState::new();
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 2);
        let key = FlowKey::from_inbound_v4(a, 4000, b, 80);
        let others = [
            FlowKey::from_inbound_v4(b, 4000, b, 80),
            FlowKey::from_inbound_v4(a, 4001, b, 80),
            FlowKey::from_inbound_v4(a, 4000, a, 80),
            FlowKey::from_inbound_v4(a, 4000, b, 81),
            // Addresses and ports swapped between the sides.
            FlowKey::from_inbound_v4(b, 80, a, 4000),
        ];
        assert_eq!(
            s.hash_one(key),
            s.hash_one(FlowKey::from_inbound_v4(a, 4000, b, 80))
        );
        for other in others {
            assert_ne!(s.hash_one(key), s.hash_one(other), "{other:?}");
        }
    }

    #[test]
    fn hash_tells_every_ipv6_field_apart() {
        let s = RandomState::new();
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let v6 = |src, sp, dst, dp| FlowKey::from_inbound(IpPair::V6 { src, dst }, sp, dp);
        let key = v6(a, 4000, b, 80);
        assert_eq!(s.hash_one(key), s.hash_one(v6(a, 4000, b, 80)));
        // Each 16-bit word of each address counts, not only the low 64 bits.
        let mut seen = vec![s.hash_one(key)];
        for word in 0..8 {
            let mut w = b.segments();
            w[word] ^= 1;
            let other = Ipv6Addr::from(w);
            for k in [v6(a, 4000, other, 80), v6(other, 4000, b, 80)] {
                assert_ne!(k, key);
                seen.push(s.hash_one(k));
            }
        }
        seen.extend(
            [v6(b, 80, a, 4000), v6(a, 4001, b, 80), v6(a, 4000, b, 81)].map(|k| s.hash_one(k)),
        );
        let n = seen.len();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), n, "no two of the keys hash alike");
    }

    #[test]
    fn both_sides_are_of_one_family() {
        let l4 = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 80));
        let r4 = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), 40000));
        let l6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 80));
        let r6 = SocketAddr::from((Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2), 40000));
        assert_eq!(FlowKey::new(l4, r6), None);
        assert_eq!(FlowKey::new(l6, r4), None);
        let k = FlowKey::new(l6, r6).unwrap();
        assert_eq!((k.local(), k.remote()), (l6, r6));
        assert!(k.is_ipv6());
        assert_eq!(k.outbound_ips().src(), l6.ip());
        let k = FlowKey::new(l4, r4).unwrap();
        assert_eq!((k.local(), k.remote()), (l4, r4));
        assert_eq!(
            k.inbound_ips(),
            IpPair::V4 {
                src: Ipv4Addr::new(10, 0, 0, 2),
                dst: Ipv4Addr::new(10, 0, 0, 1)
            }
        );
        assert!(core::mem::size_of::<FlowKey>() <= 40);
    }

    #[test]
    fn rfc9293_s3_7_1_the_default_mss_is_the_familys() {
        let v4 = FlowKey::from_inbound_v4(Ipv4Addr::LOCALHOST, 1, Ipv4Addr::LOCALHOST, 2);
        let v6 = FlowKey::from_inbound(
            IpPair::V6 {
                src: Ipv6Addr::LOCALHOST,
                dst: Ipv6Addr::LOCALHOST,
            },
            1,
            2,
        );
        assert_eq!(v4.peer_mss(None), 536);
        assert_eq!(v4.peer_mss(Some(100)), 100);
        assert_eq!(v4.peer_mss(Some(1460)), 1460);
        assert_eq!(v6.peer_mss(None), 1220);
        assert_eq!(
            v6.peer_mss(Some(1200)),
            1200,
            "RFC 9293 §3.7.1: never more than the peer's MSS option, in IPv6 too"
        );
        assert_eq!(v6.peer_mss(Some(536)), 536);
        assert_eq!(v6.peer_mss(Some(1440)), 1440);
        assert_eq!(v4.local_mss(1460), 1460);
        assert_eq!(v6.local_mss(1460), 1440, "the same 1514-byte frame");
    }
}
