//! ICMP path MTU messages against etherparse: whatever "fragmentation needed" or "packet too
//! big" etherparse builds -- any addresses, ports, sequence number and MTU, a quote cut
//! anywhere from the IP header plus 8 bytes of TCP to the whole packet, with or without a VLAN
//! tag -- `parse_icmp_frame` reads as the quoted segment's flow (its source our side), MTU
//! and sequence number; and any other ICMP type as not a path MTU message.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use etherparse::icmpv4::DestUnreachableHeader;
use etherparse::{Icmpv4Type, Icmpv6Type, PacketBuilder, VlanId};
use proptest::prelude::*;
use xgate_core::tcp::FlowKey;
use xgate_core::wire::{parse_icmp_frame, IcmpMessage, IpFamily, PmtuMessage, SeqNumber};

#[derive(Debug, Clone)]
struct Quoted {
    v6: bool,
    local: u128,
    remote: u128,
    router: u128,
    local_port: u16,
    remote_port: u16,
    seq: u32,
    payload: usize,
}

fn arb_quoted() -> impl Strategy<Value = Quoted> {
    (
        any::<bool>(),
        any::<(u128, u128, u128)>(),
        any::<(u16, u16, u32)>(),
        0usize..1500,
    )
        .prop_map(
            |(v6, (local, remote, router), (lp, rp, seq), payload)| Quoted {
                v6,
                local,
                remote,
                router,
                local_port: lp,
                remote_port: rp,
                seq,
                payload,
            },
        )
}

impl Quoted {
    fn v4(x: u128) -> Ipv4Addr {
        Ipv4Addr::from_bits(x as u32)
    }

    fn v6(x: u128) -> Ipv6Addr {
        Ipv6Addr::from_bits(x)
    }

    /// The segment we sent, as etherparse writes it (IP + TCP + payload).
    fn packet(&self) -> Vec<u8> {
        let b = if self.v6 {
            PacketBuilder::ipv6(
                Self::v6(self.local).octets(),
                Self::v6(self.remote).octets(),
                64,
            )
        } else {
            PacketBuilder::ipv4(
                Self::v4(self.local).octets(),
                Self::v4(self.remote).octets(),
                64,
            )
        };
        let b = b
            .tcp(self.local_port, self.remote_port, self.seq, 512)
            .ack(1);
        let mut out = Vec::with_capacity(b.size(self.payload));
        b.write(&mut out, &vec![0x5a; self.payload]).unwrap();
        out
    }

    fn flow(&self) -> FlowKey {
        let (local, remote) = if self.v6 {
            (
                SocketAddr::from((Self::v6(self.local), self.local_port)),
                SocketAddr::from((Self::v6(self.remote), self.remote_port)),
            )
        } else {
            (
                SocketAddr::from((Self::v4(self.local), self.local_port)),
                SocketAddr::from((Self::v4(self.remote), self.remote_port)),
            )
        };
        FlowKey::new(local, remote).unwrap()
    }

    /// The router's message about the first `cut` bytes of the segment (etherparse writes
    /// the outer headers and the ICMP checksum).
    fn message(&self, mtu: u32, cut: usize, vlan: Option<u16>, kind: Option<u8>) -> Vec<u8> {
        let packet = self.packet();
        let quote = &packet[..cut.min(packet.len())];
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xfe], [2, 0, 0, 0, 0, 1]);
        let local = self.local;
        let ip =
            |eth: etherparse::PacketBuilderStep<etherparse::Ethernet2Header>| match (self.v6, vlan)
            {
                (true, Some(v)) => eth.single_vlan(VlanId::try_new(v).unwrap()).ipv6(
                    Self::v6(self.router).octets(),
                    Self::v6(local).octets(),
                    60,
                ),
                (true, None) => {
                    eth.ipv6(Self::v6(self.router).octets(), Self::v6(local).octets(), 60)
                }
                (false, Some(v)) => eth.single_vlan(VlanId::try_new(v).unwrap()).ipv4(
                    Self::v4(self.router).octets(),
                    Self::v4(local).octets(),
                    60,
                ),
                (false, None) => {
                    eth.ipv4(Self::v4(self.router).octets(), Self::v4(local).octets(), 60)
                }
            };
        let ip = ip(eth);
        let mut out = Vec::new();
        // The ICMPv4 and ICMPv6 steps are different types: each arm writes its own.
        match (self.v6, kind) {
            (true, None) => ip
                .icmpv6(Icmpv6Type::PacketTooBig { mtu })
                .write(&mut out, quote),
            (false, None) => ip
                .icmpv4(Icmpv4Type::DestinationUnreachable(
                    DestUnreachableHeader::FragmentationNeeded {
                        next_hop_mtu: mtu as u16,
                    },
                ))
                .write(&mut out, quote),
            (true, Some(t)) => ip.icmpv6_raw(t, 0, [0; 4]).write(&mut out, quote),
            (false, Some(t)) => ip.icmpv4_raw(t, 0, [0; 4]).write(&mut out, quote),
        }
        .unwrap();
        out
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn path_mtu_messages_built_by_etherparse_read_as_built(
        q in arb_quoted(),
        mtu in any::<u32>(),
        extra in 0usize..2000,
        vlan in proptest::option::of(0u16..4096),
    ) {
        let header = if q.v6 { 40 } else { 20 };
        let cut = header + 8 + extra;
        let frame = q.message(mtu, cut, vlan, None);
        let (family, mtu) = if q.v6 {
            (IpFamily::Ipv6, mtu)
        } else {
            (IpFamily::Ipv4, u32::from(mtu as u16))
        };
        let want = PmtuMessage { family, mtu, flow: q.flow(), seq: SeqNumber(q.seq) };
        prop_assert_eq!(parse_icmp_frame(&frame), Ok(IcmpMessage::PacketTooBig(want)));
    }

    #[test]
    fn other_icmp_types_are_not_path_mtu_messages(
        q in arb_quoted(),
        kind in any::<u8>(),
    ) {
        // Type 2 is ICMPv6's packet too big; ICMPv4's type 3 needs code 4, and this is 0.
        prop_assume!(!(q.v6 && kind == 2));
        let frame = q.message(1280, 100, None, Some(kind));
        let family = if q.v6 { IpFamily::Ipv6 } else { IpFamily::Ipv4 };
        prop_assert_eq!(
            parse_icmp_frame(&frame),
            Ok(IcmpMessage::Other { family, icmp_type: kind, code: 0 })
        );
    }
}
