//! Property tests for `xgate_core::wire`: emit/parse round trips in both IP families (checked
//! against smoltcp for IPv4 and etherparse for both as independent implementations, and
//! IPv6 extension-header chains parsed by both), incremental checksum updates, and robustness
//! of the parser against arbitrary, truncated and corrupted frames; ICMP path MTU messages
//! against etherparse (`wire_icmp`).

mod wire_icmp;
mod wire_ipv6;

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use smoltcp::wire as sm;
use xgate_core::wire::{
    checksum, emit_tcp_frame, parse_tcp_frame, tcp_frame_len, EthernetAddress, FrameAddrs, IpPair,
    SackBlock, SeqNumber, TcpFlags, TcpHeader, TcpOptions, VlanTag, WireError,
};

fn arb_ipv4() -> impl Strategy<Value = IpPair> {
    (any::<u32>(), any::<u32>()).prop_map(|(s, d)| IpPair::V4 {
        src: Ipv4Addr::from_bits(s),
        dst: Ipv4Addr::from_bits(d),
    })
}

fn arb_ipv6() -> impl Strategy<Value = IpPair> {
    (any::<u128>(), any::<u128>()).prop_map(|(s, d)| IpPair::V6 {
        src: Ipv6Addr::from_bits(s),
        dst: Ipv6Addr::from_bits(d),
    })
}

/// Either family, half and half.
fn arb_ip() -> impl Strategy<Value = IpPair> {
    prop_oneof![arb_ipv4(), arb_ipv6()]
}

fn arb_addrs_with(ip: impl Strategy<Value = IpPair>) -> impl Strategy<Value = FrameAddrs> {
    (
        any::<[u8; 6]>(),
        any::<[u8; 6]>(),
        proptest::option::of(any::<u16>()),
        ip,
    )
        .prop_map(|(s, d, tci, ip)| FrameAddrs {
            eth_src: EthernetAddress(s),
            eth_dst: EthernetAddress(d),
            vlan: tci.map(|tci| VlanTag { tci }),
            ip,
        })
}

fn arb_addrs() -> impl Strategy<Value = FrameAddrs> {
    arb_addrs_with(arb_ip())
}

fn arb_options() -> impl Strategy<Value = TcpOptions> {
    (
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u8>()),
        any::<bool>(),
        proptest::option::of(any::<(u32, u32)>()),
        proptest::collection::vec(any::<(u32, u32)>(), 0..=4),
    )
        .prop_map(|(mss, window_scale, sack_permitted, timestamps, sacks)| {
            let mut o = TcpOptions {
                mss,
                window_scale,
                sack_permitted,
                timestamps,
                ..TcpOptions::default()
            };
            let blocks: Vec<SackBlock> = sacks
                .into_iter()
                .map(|(l, r)| SackBlock {
                    left: SeqNumber(l),
                    right: SeqNumber(r),
                })
                .collect();
            o.set_sack(&blocks);
            o
        })
}

fn arb_header() -> impl Strategy<Value = TcpHeader> {
    (any::<(u16, u16, u32, u32, u8, u16, u16)>(), arb_options()).prop_map(
        |((sp, dp, seq, ack, flags, win, urg), options)| TcpHeader {
            src_port: sp,
            dst_port: dp,
            seq: SeqNumber(seq),
            ack: SeqNumber(ack),
            flags: TcpFlags::from_bits(flags),
            window: win,
            urgent: urg,
            options,
        },
    )
}

/// A frame as emitted, with everything that went into it.
#[derive(Debug, Clone)]
struct Emitted {
    addrs: FrameAddrs,
    ip_id: u16,
    ttl: u8,
    tcp: TcpHeader,
    payload: Vec<u8>,
    split: usize,
    frame: Vec<u8>,
}

/// Frames of either family.
fn arb_emitted() -> impl Strategy<Value = Emitted> {
    arb_emitted_with(arb_ip())
}

/// IPv4 frames (for smoltcp, built here for IPv4 alone, and IPv4-only header surgery).
fn arb_emitted_v4() -> impl Strategy<Value = Emitted> {
    arb_emitted_with(arb_ipv4())
}

fn arb_emitted_with(ip: impl Strategy<Value = IpPair>) -> impl Strategy<Value = Emitted> {
    (
        arb_addrs_with(ip),
        any::<u16>(),
        any::<u8>(),
        arb_header(),
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(addrs, ip_id, ttl, tcp, payload, split)| {
            let split = split.index(payload.len() + 1);
            let mut frame = vec![0u8; 2048];
            let n = emit_tcp_frame(
                &mut frame,
                &addrs,
                ip_id,
                ttl,
                &tcp,
                [&payload[..split], &payload[split..]],
            )
            .expect("fits");
            frame.truncate(n);
            Emitted {
                addrs,
                ip_id,
                ttl,
                tcp,
                payload,
                split,
                frame,
            }
        })
}

/// What the parser should give back: SACK blocks that did not fit are dropped, unused slots
/// are default.
fn expected_header(tcp: &TcpHeader) -> TcpHeader {
    let mut want = *tcp;
    let n = tcp.options.emitted_sack_blocks();
    let blocks = tcp.options.sack()[..n].to_vec();
    want.options.sack_blocks = Default::default();
    want.options.set_sack(&blocks);
    want
}

/// Straight RFC 1071 over big-endian words, as a reference for the word-summing version.
fn reference_sum(data: &[u8]) -> u32 {
    let mut s: u64 = 0;
    for pair in data.chunks(2) {
        s += u64::from(pair[0]) << 8 | u64::from(*pair.get(1).unwrap_or(&0));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u32
}

/// Checksum over big-endian 16-bit words, recomputed from scratch.
fn words_checksum(words: &[u16]) -> u16 {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    checksum::finish(checksum::sum(&bytes))
}

/// Appends option `which` (0 MSS, 1 WS, 2 SACK-permitted, 3 timestamps, 4 SACK) of `o`, if
/// present, in its plain RFC encoding without padding.
fn encode_option(o: &TcpOptions, which: usize, bytes: &mut Vec<u8>) {
    match which {
        0 => {
            if let Some(m) = o.mss {
                bytes.extend_from_slice(&[2, 4]);
                bytes.extend_from_slice(&m.to_be_bytes());
            }
        }
        1 => {
            if let Some(w) = o.window_scale {
                bytes.extend_from_slice(&[3, 3, w]);
            }
        }
        2 => {
            if o.sack_permitted {
                bytes.extend_from_slice(&[4, 2]);
            }
        }
        3 => {
            if let Some((a, b)) = o.timestamps {
                bytes.extend_from_slice(&[8, 10]);
                bytes.extend_from_slice(&a.to_be_bytes());
                bytes.extend_from_slice(&b.to_be_bytes());
            }
        }
        _ => {
            if o.sack_len > 0 {
                bytes.extend_from_slice(&[5, 2 + 8 * o.sack_len]);
                for b in o.sack() {
                    bytes.extend_from_slice(&b.left.0.to_be_bytes());
                    bytes.extend_from_slice(&b.right.0.to_be_bytes());
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn emit_then_parse_round_trips(e in arb_emitted()) {
        let f = parse_tcp_frame(&e.frame).expect("own frame parses");
        prop_assert_eq!(f.addrs, e.addrs);
        prop_assert_eq!(f.ttl, e.ttl);
        prop_assert_eq!(f.tcp, expected_header(&e.tcp));
        prop_assert_eq!(f.payload, &e.payload[..]);
        prop_assert_eq!(e.frame.len(), tcp_frame_len(&e.addrs, &e.tcp, e.payload.len()));
        prop_assert_eq!(f.tcp.header_len() % 4, 0);
        prop_assert!(f.tcp.header_len() <= 60);
    }

    #[test]
    fn emitted_frames_verify_with_smoltcp(e in arb_emitted_v4()) {
        // smoltcp has no 802.1Q: hand it the IPv4 packet directly.
        let l3 = &e.frame[e.addrs.eth_header_len()..];
        if e.addrs.vlan.is_none() {
            let eth = sm::EthernetFrame::new_checked(&e.frame[..]).unwrap();
            prop_assert_eq!(eth.ethertype(), sm::EthernetProtocol::Ipv4);
            prop_assert_eq!(eth.src_addr().0, e.addrs.eth_src.0);
            prop_assert_eq!(eth.dst_addr().0, e.addrs.eth_dst.0);
        } else {
            prop_assert_eq!(&e.frame[12..14], &[0x81, 0x00]);
            prop_assert_eq!(&e.frame[16..18], &[0x08, 0x00]);
        }
        let IpPair::V4 { src: ip_src, dst: ip_dst } = e.addrs.ip else {
            unreachable!("IPv4 frames only")
        };
        let ip = sm::Ipv4Packet::new_checked(l3).unwrap();
        prop_assert!(ip.verify_checksum());
        prop_assert!(ip.dont_frag());
        prop_assert!(!ip.more_frags());
        prop_assert_eq!(ip.hop_limit(), e.ttl);
        prop_assert_eq!(ip.ident(), e.ip_id);
        prop_assert_eq!(ip.src_addr(), ip_src);
        prop_assert_eq!(ip.dst_addr(), ip_dst);
        prop_assert_eq!(ip.next_header(), sm::IpProtocol::Tcp);
        let tcp = sm::TcpPacket::new_checked(ip.payload()).unwrap();
        prop_assert!(tcp.verify_checksum(
            &sm::IpAddress::Ipv4(ip_src),
            &sm::IpAddress::Ipv4(ip_dst),
        ));
        prop_assert_eq!(tcp.src_port(), e.tcp.src_port);
        prop_assert_eq!(tcp.dst_port(), e.tcp.dst_port);
        prop_assert_eq!(tcp.seq_number().0 as u32, e.tcp.seq.0);
        prop_assert_eq!(tcp.ack_number().0 as u32, e.tcp.ack.0);
        prop_assert_eq!(tcp.window_len(), e.tcp.window);
        prop_assert_eq!(tcp.payload(), &e.payload[..]);
        // Walk the options with smoltcp's parser.
        let mut opts = tcp.options();
        let (mut mss, mut ws, mut sackp, mut ts, mut sacks) = (None, None, false, None, 0);
        while !opts.is_empty() {
            let (rest, opt) = sm::TcpOption::parse(opts).unwrap();
            match opt {
                sm::TcpOption::EndOfList => break,
                sm::TcpOption::NoOperation => {}
                sm::TcpOption::MaxSegmentSize(v) => mss = Some(v),
                sm::TcpOption::WindowScale(v) => ws = Some(v),
                sm::TcpOption::SackPermitted => sackp = true,
                sm::TcpOption::TimeStamp { tsval, tsecr } => ts = Some((tsval, tsecr)),
                sm::TcpOption::SackRange(r) => sacks = r.iter().flatten().count(),
                sm::TcpOption::Unknown { kind, .. } => prop_assert!(false, "unknown kind {}", kind),
            }
            opts = rest;
        }
        prop_assert_eq!(mss, e.tcp.options.mss);
        prop_assert_eq!(ws, e.tcp.options.window_scale);
        prop_assert_eq!(sackp, e.tcp.options.sack_permitted);
        prop_assert_eq!(ts, e.tcp.options.timestamps);
        // smoltcp records at most 3 SACK ranges.
        prop_assert_eq!(sacks, e.tcp.options.emitted_sack_blocks().min(3));
    }

    #[test]
    fn split_point_does_not_change_the_frame(e in arb_emitted()) {
        let mut again = vec![0u8; e.frame.len()];
        emit_tcp_frame(&mut again, &e.addrs, e.ip_id, e.ttl, &e.tcp, [&e.payload, &[]]).unwrap();
        prop_assert_eq!(&again, &e.frame, "split at {}", e.split);
    }

    #[test]
    fn parse_ignores_ethernet_padding(e in arb_emitted(), pad in proptest::collection::vec(any::<u8>(), 1..64)) {
        let mut padded = e.frame.clone();
        padded.extend_from_slice(&pad);
        prop_assert_eq!(parse_tcp_frame(&padded).unwrap(), parse_tcp_frame(&e.frame).unwrap());
    }

    #[test]
    fn every_truncation_is_an_error_and_never_panics(e in arb_emitted()) {
        for n in 0..e.frame.len() {
            let r = parse_tcp_frame(&e.frame[..n]);
            prop_assert!(
                matches!(r, Err(WireError::Truncated | WireError::BadIpTotalLength)),
                "len {}: {:?}", n, r
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_tcp_frame(&bytes);
        let _ = TcpOptions::parse(&bytes);
    }

    /// Arbitrary bytes behind a plausible Ethernet + IPv4 + TCP prefix, so the fuzzing reaches
    /// past the first checks (lengths, options walking) instead of stopping at the ethertype.
    #[test]
    fn arbitrary_bytes_after_valid_prefixes_never_panic(
        e in arb_emitted(),
        at in any::<prop::sample::Index>(),
        junk in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let at = at.index(e.frame.len());
        let mut f = e.frame[..at].to_vec();
        f.extend_from_slice(&junk);
        let _ = parse_tcp_frame(&f);
    }

    /// A single corrupted byte anywhere in the IPv4 header, the IPv6 addresses, TCP header or
    /// payload is caught: a one-byte change moves the 16-bit ones'-complement sum by `d` or
    /// `d << 8` with `0 < |d| <= 0xff`, never by a multiple of 0xffff, so no single-byte change
    /// can keep a checksum valid (the 0x0000/0xffff equivalence needs two bytes to change).
    /// Ethernet bytes are not checksummed: changing one either fails (ethertype) or changes
    /// only the L2 addressing. Neither are the first 8 bytes of an IPv6 header (it has no
    /// checksum, and the pseudo-header takes only the addresses): a change there fails
    /// (version, lengths, next header) or changes only the hop limit or the traffic class.
    #[test]
    fn single_byte_corruption_is_detected(
        e in arb_emitted(),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let at = at.index(e.frame.len());
        let mut f = e.frame.clone();
        f[at] ^= mask;
        let r = parse_tcp_frame(&f);
        let ip = e.addrs.eth_header_len();
        let covered_from = if e.addrs.ip.is_ipv6() { ip + 8 } else { ip };
        if at >= covered_from {
            prop_assert!(r.is_err(), "flip at {} mask {:#x} accepted", at, mask);
        } else if let Ok(got) = r {
            let orig = parse_tcp_frame(&e.frame).unwrap();
            prop_assert_eq!(got.tcp, orig.tcp);
            prop_assert_eq!(got.payload, orig.payload);
            prop_assert_eq!(got.addrs.ip, orig.addrs.ip);
            if at < ip {
                prop_assert_ne!(got.addrs, orig.addrs);
            }
        }
    }

    #[test]
    fn sum_matches_reference_and_combines_at_even_splits(
        data in proptest::collection::vec(any::<u8>(), 0..600),
        split in any::<prop::sample::Index>(),
    ) {
        prop_assert_eq!(checksum::sum(&data), reference_sum(&data));
        let s = split.index(data.len() + 1) & !1;
        let combined = checksum::combine(checksum::sum(&data[..s]), checksum::sum(&data[s..]));
        prop_assert_eq!(checksum::fold(combined), checksum::fold(checksum::sum(&data)));
    }

    /// RFC 1624 eqn. 3 equals recomputation whenever the new data is not all zero (the only
    /// case where the two differ, 0x0000 vs 0xffff, both representing zero).
    #[test]
    fn update_u16_equals_recomputation(
        words in proptest::collection::vec(any::<u16>(), 1..64),
        at in any::<prop::sample::Index>(),
        new in any::<u16>(),
    ) {
        let i = at.index(words.len());
        let old_ck = words_checksum(&words);
        let mut changed = words.clone();
        changed[i] = new;
        prop_assume!(changed.iter().any(|&w| w != 0));
        prop_assert_eq!(checksum::update_u16(old_ck, words[i], new), words_checksum(&changed));
    }

    #[test]
    fn update_u32_equals_recomputation(
        words in proptest::collection::vec(any::<u16>(), 2..64),
        at in any::<prop::sample::Index>(),
        new in any::<u32>(),
    ) {
        let i = at.index(words.len() - 1);
        let old = u32::from(words[i]) << 16 | u32::from(words[i + 1]);
        let old_ck = words_checksum(&words);
        let mut changed = words.clone();
        changed[i] = (new >> 16) as u16;
        changed[i + 1] = new as u16;
        prop_assume!(changed.iter().any(|&w| w != 0));
        prop_assert_eq!(checksum::update_u32(old_ck, old, new), words_checksum(&changed));
    }

    /// NAT-style rewrite of a real frame: new destination address and TTL patched with the
    /// incremental updates (IP header checksum, and the TCP checksum through the
    /// pseudo-header) still parses, and equals a fresh emit.
    #[test]
    fn incremental_rewrite_of_a_frame_verifies(e in arb_emitted_v4(), new_dst in any::<u32>(), new_ttl in any::<u8>()) {
        let mut f = e.frame.clone();
        let ip = e.addrs.eth_header_len();
        let tcp = ip + 20;
        let rd16 = |f: &[u8], at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
        let IpPair::V4 { src: ip_src, dst: ip_dst } = e.addrs.ip else {
            unreachable!("IPv4 frames only")
        };
        let old_dst = ip_dst.to_bits();
        // TTL shares a 16-bit word with the protocol.
        let old_word = rd16(&f, ip + 8);
        let new_word = u16::from_be_bytes([new_ttl, f[ip + 9]]);
        let ck = checksum::update_u16(rd16(&f, ip + 10), old_word, new_word);
        let ck = checksum::update_u32(ck, old_dst, new_dst);
        f[ip + 8] = new_ttl;
        f[ip + 10..ip + 12].copy_from_slice(&ck.to_be_bytes());
        f[ip + 16..ip + 20].copy_from_slice(&new_dst.to_be_bytes());
        let tck = checksum::update_u32(rd16(&f, tcp + 16), old_dst, new_dst);
        f[tcp + 16..tcp + 18].copy_from_slice(&tck.to_be_bytes());

        let got = parse_tcp_frame(&f).expect("rewritten frame verifies");
        prop_assert_eq!(got.addrs.ip_dst(), Ipv4Addr::from_bits(new_dst));
        prop_assert_eq!(got.ttl, new_ttl);
        let ip_pair = IpPair::V4 { src: ip_src, dst: Ipv4Addr::from_bits(new_dst) };
        let addrs = FrameAddrs { ip: ip_pair, ..e.addrs };
        let mut fresh = vec![0u8; f.len()];
        emit_tcp_frame(&mut fresh, &addrs, e.ip_id, new_ttl, &e.tcp, [&e.payload, &[]]).unwrap();
        // Checksum fields may differ only in the representation of zero.
        let same_ck = |a: u16, b: u16| a == b || (a | b == 0xffff && a & b == 0);
        prop_assert!(same_ck(rd16(&f, ip + 10), rd16(&fresh, ip + 10)));
        prop_assert!(same_ck(rd16(&f, tcp + 16), rd16(&fresh, tcp + 16)));
        f[ip + 10..ip + 12].fill(0);
        fresh[ip + 10..ip + 12].fill(0);
        f[tcp + 16..tcp + 18].fill(0);
        fresh[tcp + 16..tcp + 18].fill(0);
        prop_assert_eq!(f, fresh);
    }

    /// IPv4 options of any length and content are skipped: the same segment behind a header
    /// with `n` words of options parses to the same frame.
    #[test]
    fn ipv4_options_are_skipped(
        e in arb_emitted_v4(),
        ip_opts in (0usize..=10).prop_flat_map(|words| proptest::collection::vec(any::<u8>(), words * 4)),
    ) {
        let words = ip_opts.len() / 4;
        let ip = e.addrs.eth_header_len();
        let mut f = e.frame[..ip + 20].to_vec();
        f.extend_from_slice(&ip_opts);
        f.extend_from_slice(&e.frame[ip + 20..]);
        f[ip] = 0x40 | (5 + words) as u8;
        let total = (e.frame.len() - ip + ip_opts.len()) as u16;
        f[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
        f[ip + 10..ip + 12].fill(0);
        let ck = checksum::finish(checksum::sum(&f[ip..ip + 20 + ip_opts.len()]));
        f[ip + 10..ip + 12].copy_from_slice(&ck.to_be_bytes());
        prop_assert_eq!(parse_tcp_frame(&f).unwrap(), parse_tcp_frame(&e.frame).unwrap());
    }

    /// Whatever option bytes parse, emitting the result and parsing again gives the same
    /// options (unknown kinds dropped, SACK blocks capped by what fits).
    #[test]
    fn parsed_options_reemit_to_the_same_meaning(bytes in proptest::collection::vec(
        prop_oneof![
            4 => 0u8..=10,
            1 => any::<u8>(),
        ], 0..=40)) {
        if let Ok(o) = TcpOptions::parse(&bytes) {
            let mut buf = [0u8; 40];
            let n = o.emit(&mut buf).unwrap();
            prop_assert_eq!(n % 4, 0);
            let back = TcpOptions::parse(&buf[..n]).unwrap();
            let h = TcpHeader { options: o, ..TcpHeader::default() };
            prop_assert_eq!(back, expected_header(&h).options);
        }
    }

    /// Valid options in any order, with NOPs and unknown kinds between them, parse to what
    /// was written.
    #[test]
    fn options_in_any_order_parse(
        o in arb_options(),
        order in Just([0usize, 1, 2, 3, 4]).prop_shuffle(),
        unknown in proptest::collection::vec((9u8..=254, 0usize..=2, 0usize..=2), 0..3),
    ) {
        let mut bytes = Vec::new();
        let want = o;
        for (i, k) in order.iter().enumerate() {
            encode_option(&o, *k, &mut bytes);
            if let Some(&(kind, len, nops)) = unknown.get(i) {
                bytes.extend_from_slice(&[kind, 2 + len as u8]);
                bytes.extend(std::iter::repeat_n(0xee, len));
                bytes.extend(std::iter::repeat_n(1, nops));
            }
        }
        // (Lists over 40 bytes cannot be in a header; the parser itself does not care.)
        prop_assert_eq!(TcpOptions::parse(&bytes).unwrap(), want);
        bytes.push(0); // EOL, then junk that must not be read
        bytes.extend_from_slice(&[2, 99, 7]);
        prop_assert_eq!(TcpOptions::parse(&bytes).unwrap(), want);
    }

    #[test]
    fn reversed_twice_is_identity(a in arb_addrs()) {
        prop_assert_eq!(a.reversed().reversed(), a);
        prop_assert_eq!(a.reversed().ip_src(), a.ip_dst());
        prop_assert_eq!(a.reversed().ip.is_ipv6(), a.ip.is_ipv6());
        prop_assert_eq!(a.reversed().eth_dst, a.eth_src);
    }
}

/// Frames smoltcp builds (its own option layout and checksums) parse with ours.
#[test]
fn smoltcp_built_frames_parse() {
    let src = Ipv4Addr::new(10, 0, 0, 1);
    let dst = Ipv4Addr::new(10, 0, 0, 2);
    let payload = b"hello, gateway";
    let repr = sm::TcpRepr {
        src_port: 4321,
        dst_port: 80,
        control: sm::TcpControl::Syn,
        seq_number: sm::TcpSeqNumber(0x7fff_fff0),
        ack_number: None,
        window_len: 29200,
        window_scale: Some(9),
        max_seg_size: Some(1400),
        sack_permitted: true,
        sack_ranges: [None, None, None],
        timestamp: Some(sm::TcpTimestampRepr::new(77, 0)),
        payload,
    };
    let ip_repr = sm::Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: sm::IpProtocol::Tcp,
        payload_len: repr.buffer_len(),
        hop_limit: 61,
    };
    let mut buf = vec![0u8; 14 + ip_repr.buffer_len() + repr.buffer_len()];
    let mut eth = sm::EthernetFrame::new_unchecked(&mut buf[..]);
    eth.set_src_addr(sm::EthernetAddress([2, 0, 0, 0, 0, 1]));
    eth.set_dst_addr(sm::EthernetAddress([2, 0, 0, 0, 0, 2]));
    eth.set_ethertype(sm::EthernetProtocol::Ipv4);
    let caps = smoltcp::phy::ChecksumCapabilities::default();
    let mut ip = sm::Ipv4Packet::new_unchecked(&mut buf[14..]);
    ip_repr.emit(&mut ip, &caps);
    let mut tcp = sm::TcpPacket::new_unchecked(&mut buf[34..]);
    repr.emit(
        &mut tcp,
        &sm::IpAddress::Ipv4(src),
        &sm::IpAddress::Ipv4(dst),
        &caps,
    );

    let f = parse_tcp_frame(&buf).unwrap();
    assert_eq!(f.addrs.ip, IpPair::V4 { src, dst });
    assert_eq!(f.addrs.eth_src, EthernetAddress([2, 0, 0, 0, 0, 1]));
    assert_eq!(f.ttl, 61);
    assert_eq!(f.tcp.src_port, 4321);
    assert_eq!(f.tcp.dst_port, 80);
    assert_eq!(f.tcp.seq, SeqNumber(0x7fff_fff0));
    assert_eq!(f.tcp.flags, TcpFlags::SYN);
    assert_eq!(f.tcp.window, 29200);
    assert_eq!(f.tcp.options.mss, Some(1400));
    assert_eq!(f.tcp.options.window_scale, Some(9));
    assert!(f.tcp.options.sack_permitted);
    assert_eq!(f.tcp.options.timestamps, Some((77, 0)));
    assert_eq!(f.payload, payload);
}
