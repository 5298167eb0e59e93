//! The endpoint over IPv6: flows keyed by the full IPv6 addresses, every reply in the family
//! of the segment it answers, the MSS of each family (RFC 9293 §3.7.1: 1220 by default over
//! IPv6, and never above the client's option), and SYN cookies over IPv6 flows.

use core::net::{Ipv6Addr, SocketAddr};

use super::*;

const CLIENT_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 2);
const SERVER_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 1);

pub(super) fn client_addrs_v6() -> FrameAddrs {
    FrameAddrs {
        eth_src: CLIENT_MAC,
        eth_dst: SERVER_MAC,
        vlan: None,
        ip: IpPair::V6 {
            src: CLIENT_IP6,
            dst: SERVER_IP6,
        },
    }
}

/// The server's replies to `client_addrs_v6`, written out rather than reversed.
fn server_addrs_v6() -> FrameAddrs {
    FrameAddrs {
        eth_src: SERVER_MAC,
        eth_dst: CLIENT_MAC,
        vlan: None,
        ip: IpPair::V6 {
            src: SERVER_IP6,
            dst: CLIENT_IP6,
        },
    }
}

/// Every frame of `out` goes from the server to the client, over IPv6, and fits the
/// 1514-byte frame that `TcpConfig::mss` 1460 is sized for.
fn assert_ipv6_replies(out: &[Out]) {
    assert!(!out.is_empty());
    for o in out {
        assert_eq!(o.addrs, server_addrs_v6(), "{o:?}");
        let len = wire::tcp_frame_len(&o.addrs, &o.hdr, o.payload.len());
        assert!(len <= 1514, "a {len}-byte frame");
    }
}

/// The SYN-ACK to `syn` sent over IPv6 to an endpoint with `cfg`.
fn syn_ack_v6(cfg: TcpConfig, syn: &TcpHeader) -> (Endpoint, Out) {
    let now = t0();
    let mut ep = Endpoint::new(cfg, SECRET, now);
    ep.handle_frame(now, &frame_with(&client_addrs_v6(), syn, &[]))
        .unwrap();
    let mut out = drain(&mut ep, now);
    assert_eq!(out.len(), 1);
    assert_ipv6_replies(&out);
    (ep, out.remove(0))
}

#[test]
fn ipv6_syn_ack_from_the_cache_and_from_a_cookie_announce_the_ipv6_mss() {
    for (cfg, from_cache) in [(small_config(), true), (cookie_only_config(), false)] {
        let (ep, sa) = syn_ack_v6(cfg, &syn(&ALL_OPTS, CLIENT_ISN));
        assert!(sa.has(TcpFlags::SYN | TcpFlags::ACK));
        assert_eq!(sa.hdr.ack, SeqNumber(CLIENT_ISN + 1));
        // The same 1514-byte frame as IPv4's 1460 holds 20 bytes less behind an IPv6 header.
        assert_eq!(sa.hdr.options.mss, Some(1440));
        assert_eq!(sa.hdr.options.window_scale, Some(7));
        assert!(sa.hdr.options.sack_permitted);
        let st = ep.stats();
        assert_eq!(
            (st.syn_cache_added == 1, st.cookies_sent == 1),
            (from_cache, !from_cache)
        );
    }
}

/// A whole connection over IPv6 through the SYN cache: the handshake, a request in, a
/// response out in full-sized segments, the server's close, TIME_WAIT answering in IPv6, and
/// nothing left.
#[test]
fn ipv6_handshake_request_response_and_close() {
    let mut fx = Fx::with_syn_from(
        small_config(),
        client_addrs_v6(),
        &syn(&ALL_OPTS, CLIENT_ISN),
        true,
    );
    assert_eq!(fx.ep.stats().syn_cache_completed, 1);
    let flow = fx.ep.conn_for_test(fx.h).unwrap().flow;
    assert!(flow.is_ipv6());
    assert_eq!(flow.remote(), SocketAddr::from((CLIENT_IP6, CPORT)));
    assert_eq!(flow.local(), SocketAddr::from((SERVER_IP6, SPORT)));

    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    fx.send(TcpFlags::ACK | TcpFlags::PSH, request).unwrap();
    assert_eq!(fx.readable(), request);
    fx.ep.consume(fx.h, request.len());
    let response: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    assert_eq!(fx.app_send(&response), response.len());
    let mut got = Vec::new();
    while got.len() < response.len() {
        let out = fx.out_and_ack();
        assert_ipv6_replies(&out);
        for o in &out {
            got.extend_from_slice(&o.payload);
        }
        fx.send(TcpFlags::ACK, &[]).unwrap();
    }
    assert_eq!(got, response);

    // The client offered 1460, ours over IPv6 is 1440: full segments are 1440 less the
    // 12 bytes of timestamps, each in exactly a 1514-byte frame.
    let again: Vec<u8> = vec![7; 3000];
    fx.app_send(&again);
    let out = fx.out_and_ack();
    assert_ipv6_replies(&out);
    assert_eq!(out[0].payload.len(), 1428);
    assert_eq!(
        wire::tcp_frame_len(&out[0].addrs, &out[0].hdr, out[0].payload.len()),
        1514
    );
    fx.send(TcpFlags::ACK, &[]).unwrap();
    fx.out();

    fx.ep.close(fx.h);
    let out = fx.out_and_ack();
    assert_ipv6_replies(&out);
    assert!(out.last().unwrap().has(TcpFlags::FIN));
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    let out = fx.out();
    assert_ipv6_replies(&out);
    assert_eq!(fx.ep.connection_count(), 0);
    assert_eq!(
        fx.ep.time_wait_count(),
        1,
        "the active closer keeps TIME_WAIT"
    );
    let closed: Vec<_> = fx
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Closed { flow, .. } => Some(flow),
            _ => None,
        })
        .collect();
    assert_eq!(closed, [flow]);

    // The client's FIN again (its last ACK lost, say): the TIME_WAIT record of the IPv6 flow
    // answers, in IPv6.
    fx.seq = fx.seq - 1u32;
    let _ = fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]);
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_ipv6_replies(&out);
    assert!(out[0].has(TcpFlags::ACK) && !out[0].has(TcpFlags::FIN));

    fx.advance(Duration::from_secs(61));
    fx.assert_all_gone();
}

/// RFC 9293 §3.7.1: without an MSS option the send MSS is 1220 over IPv6 (536 over IPv4), and
/// no segment is larger than an option the SYN names, however small (as Linux): through the
/// SYN cache, which keeps the option exactly, and through a SYN cookie, whose table rounds it
/// down (1200 for 1200-1239; 536 below that and without an option, which it cannot tell
/// apart).
#[test]
fn ipv6_send_mss_is_the_clients_through_a_cookie_or_the_cache() {
    let opts = || HsOpts {
        ts: false,
        ws: true,
        sack: true,
    };
    for cfg in [cookie_only_config(), small_config()] {
        let cookie = cfg.syn_cache == 0;
        for mss in [
            None,
            Some(536),
            Some(1000),
            Some(1219),
            Some(1220),
            Some(1239),
        ] {
            let mut s = syn_with_mss(&opts(), CLIENT_ISN, 1460);
            s.options.mss = mss;
            let mut fx = Fx::with_syn_from(cfg.clone(), client_addrs_v6(), &s, false);
            let st = fx.ep.stats();
            assert_eq!(
                (st.cookies_validated, st.syn_cache_completed),
                if cookie { (1, 0) } else { (0, 1) }
            );
            fx.app_send(&[9u8; 4000]);
            let out = fx.out();
            assert_ipv6_replies(&out);
            let want = match mss {
                Some(m) if !cookie => m,
                None if !cookie => 1220,
                Some(m) if m >= 1200 => 1200,
                _ => 536,
            };
            let want = usize::from(want);
            assert_eq!(
                out[0].payload.len(),
                want,
                "SYN MSS {mss:?}, cookie {cookie}"
            );
            assert!(out.iter().all(|o| o.payload.len() <= want));
        }
        // Above the floor a cookie rounds down to its table (1240 here), the cache is exact.
        let mut fx = Fx::with_syn_from(
            cfg.clone(),
            client_addrs_v6(),
            &syn_with_mss(&opts(), CLIENT_ISN, 1300),
            false,
        );
        fx.app_send(&[9u8; 4000]);
        let want = if cookie { 1240 } else { 1300 };
        assert_eq!(fx.out()[0].payload.len(), want, "cookie {cookie}");
    }
    // The same SYN without an MSS over IPv4 sends 536: the floor is IPv6's alone.
    let mut s = syn_with_mss(&opts(), CLIENT_ISN, 1460);
    s.options.mss = None;
    let mut fx = Fx::with_syn(cookie_only_config(), &s, false);
    fx.app_send(&[9u8; 4000]);
    assert_eq!(fx.out()[0].payload.len(), 536);
}

/// A client announcing a jumbo MSS over IPv6 still gets segments that fit the frames
/// `TcpConfig::mss` is sized for: 1440 bytes, not IPv4's 1460.
#[test]
fn ipv6_segments_fit_the_frame_the_configured_mss_is_sized_for() {
    let opts = HsOpts {
        ts: false,
        ws: true,
        sack: true,
    };
    for cfg in [cookie_only_config(), small_config()] {
        let mut fx = Fx::with_syn_from(
            cfg,
            client_addrs_v6(),
            &syn_with_mss(&opts, CLIENT_ISN, 8960),
            false,
        );
        fx.app_send(&[1u8; 6000]);
        let out = fx.out();
        assert_ipv6_replies(&out);
        assert_eq!(out[0].payload.len(), 1440);
    }
}

/// A cookie is bound to the full IPv6 addresses: the ACK that returns it from a flow that
/// differs in any one byte of either address (the high bytes included, which a key of the
/// low 32 bits would miss) does not validate, and gets a RST in IPv6.
#[test]
fn ipv6_cookie_ack_from_another_address_is_refused() {
    let (_, sa) = syn_ack_v6(cookie_only_config(), &syn(&ALL_OPTS, CLIENT_ISN));
    let tsval = sa.hdr.options.timestamps.unwrap().0;
    let ack = TcpHeader {
        seq: SeqNumber(CLIENT_ISN + 1),
        ack: sa.hdr.seq + 1u32,
        options: TcpOptions {
            timestamps: Some((101, tsval)),
            ..TcpOptions::default()
        },
        ..templ()
    };
    for byte in 0..32 {
        let (mut client, mut server) = (CLIENT_IP6.octets(), SERVER_IP6.octets());
        if byte < 16 {
            client[byte] ^= 0x80;
        } else {
            server[byte - 16] ^= 0x80;
        }
        let mut addrs = client_addrs_v6();
        addrs.ip = IpPair::V6 {
            src: client.into(),
            dst: server.into(),
        };
        let now = t0();
        let mut ep = Endpoint::new(cookie_only_config(), SECRET, now);
        assert_eq!(
            ep.handle_frame(now, &frame_with(&addrs, &ack, &[])),
            Err(DropReason::BadCookie),
            "address byte {byte}"
        );
        let out = drain(&mut ep, now);
        assert_eq!(out.len(), 1);
        assert!(out[0].has(TcpFlags::RST));
        assert_eq!(
            out[0].addrs.ip,
            IpPair::V6 {
                src: server.into(),
                dst: client.into()
            }
        );
    }
    // The genuine flow's ACK completes.
    let now = t0();
    let mut ep = Endpoint::new(cookie_only_config(), SECRET, now);
    ep.handle_frame(now, &frame_with(&client_addrs_v6(), &ack, &[]))
        .unwrap();
    assert_eq!(ep.connection_count(), 1);
}

/// The same addresses and ports in the two families are two flows: an IPv4 connection and an
/// IPv6 one from an IPv4-mapped address live side by side, each answered in its own family.
#[test]
fn ipv4_and_ipv4_mapped_ipv6_flows_are_kept_apart() {
    let mut fx = Fx::new();
    let mapped = client_addrs_v6();
    let mapped = FrameAddrs {
        ip: IpPair::V6 {
            src: CLIENT_IP.to_ipv6_mapped(),
            dst: SERVER_IP.to_ipv6_mapped(),
        },
        ..mapped
    };
    let isn = CLIENT_ISN + 50_000;
    fx.send_hdr(&syn(&ALL_OPTS, isn), &[]).unwrap_err();
    // That SYN went over IPv4 to the live connection: a challenge ACK, no new flow.
    let out = fx.out();
    assert!(out.iter().all(|o| !o.has(TcpFlags::SYN)));
    fx.ep
        .handle_frame(fx.now, &frame_with(&mapped, &syn(&ALL_OPTS, isn), &[]))
        .unwrap();
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(out[0].has(TcpFlags::SYN | TcpFlags::ACK));
    assert_eq!(
        out[0].addrs.ip,
        IpPair::V6 {
            src: SERVER_IP.to_ipv6_mapped(),
            dst: CLIENT_IP.to_ipv6_mapped()
        }
    );
    assert_eq!(
        fx.ep.connection_count(),
        1,
        "the IPv4 connection, untouched"
    );
    assert_eq!(
        fx.ep.conn_for_test(fx.h).unwrap().state,
        conn::State::Established
    );
}

#[test]
fn established_connections_are_counted_by_family() {
    let v4 = Fx::new();
    let st = v4.ep.stats();
    assert_eq!((st.accepted_ipv4, st.accepted_ipv6), (1, 0));
    // Through the SYN cache and through a cookie alike.
    for cfg in [small_config(), cookie_only_config()] {
        let v6 = Fx::with_syn_from(cfg, client_addrs_v6(), &syn(&ALL_OPTS, CLIENT_ISN), true);
        let st = v6.ep.stats();
        assert_eq!((st.accepted_ipv4, st.accepted_ipv6), (0, 1));
        assert_eq!(st.connections_established, 1);
    }
    let mut total = TcpStats::default();
    total.add(v4.ep.stats());
    total.add(v4.ep.stats());
    assert_eq!(total.accepted_ipv4, 2);
}
