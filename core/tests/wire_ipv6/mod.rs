//! IPv6 frames against etherparse, an independent parser: every frame the emitter writes (both
//! families) reads the same to etherparse, and IPv6 extension-header chains built here parse
//! to what `wire::ipv6`'s rules say, with etherparse agreeing where the frame is taken.

use etherparse::{
    LinkExtSlice, LinkSlice, NetSlice, SlicedPacket, TcpOptionElement, TransportSlice,
};
use proptest::prelude::*;
use std::net::Ipv6Addr;
use xgate_core::wire::ipv6::MAX_EXTENSION_HEADERS;
use xgate_core::wire::{parse_tcp_frame, IpPair, TcpFlags, TcpHeader, WireError};

use super::{arb_emitted, arb_header, expected_header};

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn emitted_frames_read_the_same_to_etherparse(e in arb_emitted()) {
        let p = SlicedPacket::from_ethernet(&e.frame).expect("etherparse takes the frame");
        let Some(LinkSlice::Ethernet2(eth)) = &p.link else {
            panic!("no Ethernet II header: {:?}", p.link)
        };
        prop_assert_eq!(eth.source(), e.addrs.eth_src.0);
        prop_assert_eq!(eth.destination(), e.addrs.eth_dst.0);
        match (e.addrs.vlan, p.link_exts.as_slice()) {
            (None, []) => {}
            (Some(tag), [LinkExtSlice::Vlan(v)]) => {
                prop_assert_eq!(v.vlan_identifier().value(), tag.vid());
                prop_assert_eq!(v.priority_code_point().value(), tag.pcp());
                prop_assert_eq!(v.drop_eligible_indicator(), tag.dei());
            }
            (tag, exts) => prop_assert!(false, "tag {:?} read as {:?}", tag, exts),
        }
        let (src, dst): ([u8; 16], [u8; 16]);
        match (&p.net, e.addrs.ip) {
            (Some(NetSlice::Ipv4(ip)), IpPair::V4 { src: s, dst: d }) => {
                let h = ip.header();
                prop_assert_eq!(h.source_addr(), s);
                prop_assert_eq!(h.destination_addr(), d);
                prop_assert_eq!(h.ttl(), e.ttl);
                prop_assert_eq!(h.identification(), e.ip_id);
                prop_assert!(h.dont_fragment());
                prop_assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
                src = s.to_ipv6_mapped().octets();
                dst = d.to_ipv6_mapped().octets();
            }
            (Some(NetSlice::Ipv6(ip)), IpPair::V6 { src: s, dst: d }) => {
                let h = ip.header();
                prop_assert_eq!(h.source_addr(), s);
                prop_assert_eq!(h.destination_addr(), d);
                prop_assert_eq!(h.hop_limit(), e.ttl);
                prop_assert_eq!(h.traffic_class(), 0);
                prop_assert_eq!(h.flow_label().value(), 0);
                prop_assert!(ip.extensions().is_empty(), "no extension headers are emitted");
                src = s.octets();
                dst = d.octets();
            }
            (net, ip) => {
                prop_assert!(false, "{:?} read as {:?}", ip, net);
                unreachable!()
            }
        }
        let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
            panic!("no TCP: {:?}", p.transport)
        };
        let want = expected_header(&e.tcp);
        prop_assert_eq!(tcp.source_port(), want.src_port);
        prop_assert_eq!(tcp.destination_port(), want.dst_port);
        prop_assert_eq!(tcp.sequence_number(), want.seq.0);
        prop_assert_eq!(tcp.acknowledgment_number(), want.ack.0);
        prop_assert_eq!(tcp.window_size(), want.window);
        prop_assert_eq!(tcp.urgent_pointer(), want.urgent);
        let flags = [
            (tcp.fin(), TcpFlags::FIN), (tcp.syn(), TcpFlags::SYN), (tcp.rst(), TcpFlags::RST),
            (tcp.psh(), TcpFlags::PSH), (tcp.ack(), TcpFlags::ACK), (tcp.urg(), TcpFlags::URG),
            (tcp.ece(), TcpFlags::ECE), (tcp.cwr(), TcpFlags::CWR),
        ];
        for (set, flag) in flags {
            prop_assert_eq!(set, want.flags.contains(flag), "{:?}", flag);
        }
        prop_assert_eq!(tcp.payload(), &e.payload[..]);
        // etherparse's own checksum over the pseudo-header of the frame's family.
        let expected = match e.addrs.ip {
            IpPair::V4 { src: s, dst: d } => tcp.calc_checksum_ipv4(s.octets(), d.octets()),
            IpPair::V6 { .. } => tcp.calc_checksum_ipv6(src, dst),
        };
        prop_assert_eq!(tcp.checksum(), expected.unwrap());
        let (mut mss, mut ws, mut sackp, mut ts, mut sacks) = (None, None, false, None, 0);
        for o in tcp.options_iterator() {
            match o.expect("etherparse reads our options") {
                TcpOptionElement::Noop => {}
                TcpOptionElement::MaximumSegmentSize(v) => mss = Some(v),
                TcpOptionElement::WindowScale(v) => ws = Some(v),
                TcpOptionElement::SelectiveAcknowledgementPermitted => sackp = true,
                TcpOptionElement::Timestamp(a, b) => ts = Some((a, b)),
                TcpOptionElement::SelectiveAcknowledgement(_, rest) => {
                    sacks = 1 + rest.iter().flatten().count()
                }
            }
        }
        prop_assert_eq!(mss, want.options.mss);
        prop_assert_eq!(ws, want.options.window_scale);
        prop_assert_eq!(sackp, want.options.sack_permitted);
        prop_assert_eq!(ts, want.options.timestamps);
        prop_assert_eq!(sacks, want.options.sack().len());
    }

    #[test]
    fn extension_header_chains_parse_as_the_rules_say_and_as_etherparse_reads_them(
        chain in proptest::collection::vec(arb_ext(), 0..=MAX_EXTENSION_HEADERS + 2),
        tcp in arb_header(),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        src in any::<u128>(),
        dst in any::<u128>(),
    ) {
        let (src, dst) = (Ipv6Addr::from_bits(src), Ipv6Addr::from_bits(dst));
        let (frame, tcp_at) = chain_frame(&chain, &tcp, &payload, src, dst);
        let ours = parse_tcp_frame(&frame);
        match expected_verdict(&chain) {
            Err(want) => prop_assert_eq!(ours.map(|_| ()), Err(want), "{:?}", chain),
            Ok(()) => {
                let f = ours.expect("a chain the rules take");
                prop_assert_eq!(f.addrs.ip, IpPair::V6 { src, dst });
                prop_assert_eq!(f.tcp, expected_header(&tcp));
                prop_assert_eq!(f.payload, &payload[..]);
                let p = SlicedPacket::from_ethernet(&frame).expect("etherparse takes it too");
                let Some(NetSlice::Ipv6(ip)) = &p.net else { panic!("{:?}", p.net) };
                prop_assert_eq!(14 + 40 + ip.extensions().slice().len(), tcp_at, "where TCP starts");
                prop_assert!(!ip.is_payload_fragmented());
                let Some(TransportSlice::Tcp(t)) = &p.transport else { panic!("{:?}", p.transport) };
                prop_assert_eq!(t.sequence_number(), f.tcp.seq.0);
                prop_assert_eq!(t.payload(), f.payload);
                prop_assert_eq!(t.checksum(), t.calc_checksum_ipv6(src.octets(), dst.octets()).unwrap());
            }
        }
    }

    /// A fragment that is really one (offset or M set) is one to etherparse as well, and ours
    /// never takes it, wherever in a chain it sits.
    #[test]
    fn fragments_are_never_taken(
        before in proptest::collection::vec(arb_skippable(), 0..3),
        offset in 0u16..8192,
        more in any::<bool>(),
        tcp in arb_header(),
    ) {
        prop_assume!(offset != 0 || more);
        let mut chain = before;
        chain.push(Ext::Fragment { offset, more });
        let (frame, _) = chain_frame(&chain, &tcp, b"data", Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST);
        prop_assert_eq!(parse_tcp_frame(&frame).map(|_| ()), Err(WireError::Fragment));
        let p = SlicedPacket::from_ethernet(&frame).expect("etherparse reads the fragment");
        let Some(NetSlice::Ipv6(ip)) = &p.net else { panic!("{:?}", p.net) };
        prop_assert!(ip.is_payload_fragmented());
    }
}

/// One extension header of a generated chain.
#[derive(Debug, Clone, Copy)]
enum Ext {
    /// `units` 8-octet units beyond the first; one option of type `option` fills the area
    /// (type 0: all Pad1).
    HopByHop {
        units: u8,
        option: u8,
    },
    DestinationOptions {
        units: u8,
        option: u8,
    },
    Routing {
        units: u8,
        segments_left: u8,
    },
    Fragment {
        offset: u16,
        more: bool,
    },
    /// AH: `units` 4-octet units beyond the first two (RFC 4302 §2.2).
    Auth {
        units: u8,
    },
    Esp,
    NoNextHeader,
}

/// Option types: Pad1, PadN, skippable ones (high bits 00) and one of each discard action.
fn arb_option_type() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(0u8),
        Just(1),
        Just(5),
        Just(0x1e),
        Just(0x3f),
        Just(0x40),
        Just(0x8b),
        Just(0xc2)
    ]
}

fn arb_skippable() -> impl Strategy<Value = Ext> {
    prop_oneof![
        (0u8..4).prop_map(|units| Ext::DestinationOptions { units, option: 1 }),
        (0u8..4).prop_map(|units| Ext::Routing {
            units: units + 2,
            segments_left: 0
        }),
    ]
}

fn arb_ext() -> impl Strategy<Value = Ext> {
    prop_oneof![
        4 => (0u8..4, arb_option_type()).prop_map(|(units, option)| Ext::HopByHop { units, option }),
        6 => (0u8..4, arb_option_type()).prop_map(|(units, option)| Ext::DestinationOptions { units, option }),
        4 => (0u8..4, prop_oneof![3 => Just(0u8), 1 => 1u8..=255])
            .prop_map(|(units, segments_left)| Ext::Routing { units, segments_left }),
        1 => (0u16..8192, any::<bool>()).prop_map(|(offset, more)| Ext::Fragment { offset, more }),
        1 => (1u8..4).prop_map(|units| Ext::Auth { units }),
        1 => Just(Ext::Esp),
        1 => Just(Ext::NoNextHeader),
    ]
}

impl Ext {
    fn number(self) -> u8 {
        match self {
            Ext::HopByHop { .. } => 0,
            Ext::Routing { .. } => 43,
            Ext::Fragment { .. } => 44,
            Ext::Esp => 50,
            Ext::Auth { .. } => 51,
            Ext::NoNextHeader => 59,
            Ext::DestinationOptions { .. } => 60,
        }
    }

    /// Whether the header ends the packet's chain (nothing after it is read as a header).
    fn ends_chain(self) -> bool {
        matches!(self, Ext::Esp | Ext::NoNextHeader)
    }

    fn bytes(self, next: u8) -> Vec<u8> {
        match self {
            Ext::HopByHop { units, option } | Ext::DestinationOptions { units, option } => {
                let len = (usize::from(units) + 1) * 8;
                let mut h = vec![next, units];
                if option == 0 {
                    h.resize(len, 0);
                } else {
                    h.extend_from_slice(&[option, (len - 4) as u8]);
                    h.resize(len, 0x5a);
                }
                h
            }
            Ext::Routing {
                units,
                segments_left,
            } => {
                let mut h = vec![next, units, 4, segments_left];
                h.resize((usize::from(units) + 1) * 8, 0x33);
                h
            }
            Ext::Fragment { offset, more } => {
                let word = offset << 3 | u16::from(more);
                let mut h = vec![next, 0];
                h.extend_from_slice(&word.to_be_bytes());
                h.extend_from_slice(&0x1234_5678u32.to_be_bytes());
                h
            }
            Ext::Auth { units } => {
                let mut h = vec![next, units, 0, 0];
                h.resize((usize::from(units) + 2) * 4, 0x44);
                h
            }
            // An SPI and sequence number, then what would be ciphertext.
            Ext::Esp => vec![0xaa; 24],
            Ext::NoNextHeader => Vec::new(),
        }
    }
}

/// An Ethernet / IPv6 / `chain` / TCP frame whose TCP checksum etherparse computed; with the
/// offset of the TCP header in the frame.
fn chain_frame(
    chain: &[Ext],
    tcp: &TcpHeader,
    payload: &[u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
) -> (Vec<u8>, usize) {
    const TCP: u8 = 6;
    let ends = chain.iter().position(|e| e.ends_chain());
    let mut body = Vec::new();
    for (i, e) in chain.iter().enumerate() {
        let next = chain.get(i + 1).map_or(TCP, |n| n.number());
        body.extend(e.bytes(next));
        if Some(i) == ends {
            break;
        }
    }
    let tcp_in_body = body.len();
    let mut seg = vec![0u8; tcp.header_len()];
    tcp.emit(&mut seg).unwrap();
    seg.extend_from_slice(payload);
    let ck = etherparse::TcpSlice::from_slice(&seg)
        .unwrap()
        .calc_checksum_ipv6(src.octets(), dst.octets())
        .unwrap();
    seg[16..18].copy_from_slice(&ck.to_be_bytes());
    body.extend(seg);

    let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&(body.len() as u16).to_be_bytes());
    frame.push(chain.first().map_or(TCP, |e| e.number()));
    frame.push(64);
    frame.extend_from_slice(&src.octets());
    frame.extend_from_slice(&dst.octets());
    let tcp_at = frame.len() + tcp_in_body;
    frame.extend(body);
    (frame, tcp_at)
}

/// What `wire::ipv6`'s documented rules say of a chain, written from the rules rather than
/// from the code: the first header the rules refuse decides.
fn expected_verdict(chain: &[Ext]) -> Result<(), WireError> {
    for (i, e) in chain.iter().enumerate() {
        let walked = matches!(
            e,
            Ext::HopByHop { .. } | Ext::DestinationOptions { .. } | Ext::Routing { .. }
        );
        if walked && i == MAX_EXTENSION_HEADERS {
            return Err(WireError::TooManyIpv6Headers);
        }
        match *e {
            Ext::HopByHop { .. } if i != 0 => return Err(WireError::BadIpv6ExtensionHeader),
            Ext::HopByHop { option, .. } | Ext::DestinationOptions { option, .. } => {
                if option >> 6 != 0 {
                    return Err(WireError::Ipv6UnrecognizedOption);
                }
            }
            Ext::Routing { segments_left, .. } => {
                if segments_left != 0 {
                    return Err(WireError::Ipv6Routing);
                }
            }
            Ext::Fragment { .. } => return Err(WireError::Fragment),
            Ext::Auth { .. } | Ext::Esp => return Err(WireError::Ipv6Ipsec),
            Ext::NoNextHeader => return Err(WireError::NoNextHeader),
        }
    }
    Ok(())
}
