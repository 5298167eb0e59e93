//! The stateless front: cookie SYN-ACK, cookie ACK (with data), SYN hints, early data,
//! LISTEN's answers, bounds under a SYN flood, and what every reply is addressed to.

use super::*;

#[test]
fn cookie_handshake_with_timestamps_carries_wscale_and_sack() {
    let now = t0();
    let mut ep = Endpoint::new(cookie_only_config(), SECRET, now);
    ep.handle_frame(now, &frame(&syn(&ALL_OPTS, CLIENT_ISN), &[]))
        .unwrap();
    let out = drain(&mut ep, now);
    let sa = &out[0];
    assert_eq!(sa.hdr.options.mss, Some(1460));
    assert_eq!(sa.hdr.options.window_scale, Some(7));
    assert!(sa.hdr.options.sack_permitted);
    assert_eq!(sa.hdr.options.timestamps.map(|t| t.1), Some(100));
    assert_eq!(sa.addrs, client_addrs(None).reversed());
    assert_eq!(ep.stats().cookies_sent, 1);

    let fx = Fx::with(cookie_only_config(), ALL_OPTS);
    let c = fx.ep.conn_for_test(fx.h).unwrap();
    assert_eq!(c.state, conn::State::Established);
    // Peer's shift 7 applies to its window: 65535 << 7.
    assert_eq!(c.debug_snd_wnd(), 65535 << 7);
    assert_eq!(fx.ep.stats().cookies_validated, 1);
}

/// The cookie carries window scale and SACK in the ISN, so a client without timestamps keeps
/// both (before: neither was negotiated without timestamps).
#[test]
fn no_timestamps_client_gets_wscale_and_sack() {
    let opts = HsOpts {
        ts: false,
        ws: true,
        sack: true,
    };
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    ep.handle_frame(now, &frame(&syn(&opts, CLIENT_ISN), &[]))
        .unwrap();
    let sa = &drain(&mut ep, now)[0];
    assert_eq!(sa.hdr.options.window_scale, Some(7));
    assert!(sa.hdr.options.sack_permitted);
    assert_eq!(sa.hdr.options.timestamps, None);

    let mut fx = Fx::with(small_config(), opts);
    let c = fx.ep.conn_for_test(fx.h).unwrap();
    assert_eq!(c.debug_snd_wnd(), 65535 << 7, "the client's shift applies");
    fx.send(TcpFlags::ACK | TcpFlags::PSH, b"hello").unwrap();
    fx.advance(Duration::from_millis(40));
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hdr.options.timestamps, None);
    assert_eq!(out[0].hdr.ack, fx.seq);
    // SACK is on: an out-of-order segment is reported in a SACK block.
    let gap = fx.seq + 100u32;
    let h = TcpHeader {
        seq: gap,
        ..fx.hdr(TcpFlags::ACK)
    };
    let _ = fx.send_hdr(&h, b"later");
    let out = fx.out();
    assert_eq!(
        out[0].hdr.options.sack(),
        &[SackBlock {
            left: gap,
            right: gap + 5u32,
        }]
    );
}

/// A client behind a 1280-byte path (MSS 1240) gets segments of 1240 bytes: the cookie's MSS
/// table has the entry (before: cut to 536).
#[test]
fn mss_1240_client_keeps_1240() {
    let opts = HsOpts {
        ts: false,
        ws: true,
        sack: true,
    };
    let mut fx = Fx::with_mss(small_config(), opts, 1240);
    fx.app_send(&[7u8; 4000]);
    let out = fx.out();
    assert!(out.len() >= 3);
    assert!(out.iter().all(|o| o.payload.len() <= 1240));
    assert_eq!(out[0].payload.len(), 1240);
}

#[test]
fn cookie_ack_carrying_data_is_accepted() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    let opts = HsOpts {
        ts: false,
        ws: false,
        sack: false,
    };
    ep.handle_frame(now, &frame(&syn(&opts, CLIENT_ISN), &[]))
        .unwrap();
    let sa = drain(&mut ep, now).remove(0);
    let ack = TcpHeader {
        seq: SeqNumber(CLIENT_ISN + 1),
        ack: sa.hdr.seq + 1u32,
        flags: TcpFlags::ACK | TcpFlags::PSH,
        ..templ()
    };
    ep.handle_frame(now, &frame(&ack, b"GET / HTTP/1.1\r\n\r\n"))
        .unwrap();
    let ev = events(&mut ep);
    let Event::Established { conn, .. } = ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(ev[1], Event::Readable(conn));
    let (a, b) = ep.recv_slices(conn);
    assert_eq!([a, b].concat(), b"GET / HTTP/1.1\r\n\r\n");
}

#[test]
fn bad_cookie_ack_gets_rst_with_seq_seg_ack() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    let ack = TcpHeader {
        seq: SeqNumber(5000),
        ack: SeqNumber(123_456),
        ..templ()
    };
    assert_eq!(
        ep.handle_frame(now, &frame(&ack, &[])),
        Err(DropReason::BadCookie)
    );
    let out = drain(&mut ep, now);
    assert_eq!(out.len(), 1);
    assert!(out[0].has(TcpFlags::RST));
    assert!(!out[0].has(TcpFlags::ACK));
    assert_eq!(out[0].hdr.seq, SeqNumber(123_456));
    assert_eq!(ep.stats().cookies_failed, 1);
    assert_eq!(ep.stats().drop_count(DropReason::BadCookie), 1);
    assert_eq!(ep.connection_count(), 0);
}

#[test]
fn rfc9293_listen_drops_segment_without_syn_or_ack_and_rst_gets_nothing() {
    // RFC 9293 §3.10.7.2 (LISTEN), fourth: a segment with neither SYN, ACK nor RST is
    // dropped, not reset (the port has a listener, so this is not CLOSED's §3.10.7.1).
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    for flags in [TcpFlags::FIN, TcpFlags::PSH, TcpFlags::empty()] {
        let h = TcpHeader {
            seq: SeqNumber(77),
            flags,
            ..templ()
        };
        assert_eq!(
            ep.handle_frame(now, &frame(&h, b"abc")),
            Err(DropReason::NoConnection)
        );
        assert!(drain(&mut ep, now).is_empty(), "{flags:?} was answered");
    }
    // Never RST a RST.
    let r = TcpHeader {
        flags: TcpFlags::RST,
        ..templ()
    };
    let _ = ep.handle_frame(now, &frame(&r, &[]));
    assert!(drain(&mut ep, now).is_empty());
    assert_eq!(ep.connection_count(), 0);
}

#[test]
fn rfc9293_listen_answers_syn_ack_with_rst_seq_seg_ack() {
    // RFC 9293 §3.10.7.2, second: "If the ACK bit is on ... <SEQ=SEG.ACK><CTL=RST>".
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    let h = TcpHeader {
        seq: SeqNumber(77),
        ack: SeqNumber(4242),
        flags: TcpFlags::SYN | TcpFlags::ACK,
        ..templ()
    };
    assert_eq!(
        ep.handle_frame(now, &frame(&h, &[])),
        Err(DropReason::NoConnection)
    );
    let out = drain(&mut ep, now);
    assert_eq!(out.len(), 1);
    assert!(out[0].has(TcpFlags::RST) && !out[0].has(TcpFlags::ACK));
    assert_eq!(out[0].hdr.seq, SeqNumber(4242));
}

#[test]
fn syn_flood_of_60k_syns_keeps_no_state_beyond_the_syn_cache_bound() {
    let now = t0();
    let cfg = small_config();
    let bound = cfg.syn_cache as u64;
    let mut ep = Endpoint::new(cfg, SECRET, now);
    let mut answered = 0;
    // 60k flows (one SYN each).
    for i in 0..60_000u32 {
        let mut h = syn(&ALL_OPTS, i.wrapping_mul(7919));
        h.src_port = 1024 + i as u16;
        let _ = ep.handle_frame(now, &frame(&h, &[]));
        if i % 32 == 0 {
            answered += drain(&mut ep, now).len();
        }
    }
    answered += drain(&mut ep, now).len();
    assert_eq!(ep.connection_count(), 0);
    assert_eq!(ep.time_wait_count(), 0);
    let st = ep.stats().clone();
    assert_eq!(answered as u64, st.cookies_sent + st.syn_cache_added);
    assert!(answered > 55_000);
    // The cache took what it could hold, the rest got cookies.
    assert!(st.syn_cache_added <= bound && st.syn_cache_added > bound / 2);
    assert!(st.syn_cache_overflows > 55_000 - bound);
    // Unanswered, every entry is retransmitted `syn_ack_retries` times, then gone.
    let mut t = now;
    let mut resent = 0;
    while let Some(at) = ep.poll_timeout() {
        assert!(at >= t && at < now + Duration::from_secs(60));
        t = at;
        ep.handle_timeout(t);
        resent += drain(&mut ep, t).len();
    }
    let st = ep.stats();
    assert_eq!(st.syn_cache_expired, st.syn_cache_added);
    assert_eq!(resent as u64, st.syn_ack_retransmits);
    assert_eq!(st.syn_ack_retransmits, 3 * st.syn_cache_added);
    assert_eq!(t, now + Duration::from_secs(1 + 2 + 4 + 8));
}

#[test]
fn stateless_queue_overflow_is_bounded_and_counted() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    for i in 0..100u32 {
        let mut h = syn(&ALL_OPTS, i);
        h.src_port = 2000 + i as u16;
        let _ = ep.handle_frame(now, &frame(&h, &[]));
    }
    assert_eq!(drain(&mut ep, now).len(), 64);
    assert_eq!(ep.stats().stateless_queue_overflows, 36);
}

#[test]
fn table_full_valid_cookie_ack_gets_rst_and_is_counted() {
    let cfg = TcpConfig {
        max_connections: 1,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    // A second client port.
    let mut s = syn(&ALL_OPTS, 9000);
    s.src_port = CPORT + 1;
    fx.ep.handle_frame(fx.now, &frame(&s, &[])).unwrap();
    let sa = fx.out().remove(0);
    let ack = TcpHeader {
        src_port: CPORT + 1,
        seq: SeqNumber(9001),
        ack: sa.hdr.seq + 1u32,
        options: TcpOptions {
            timestamps: Some((101, sa.hdr.options.timestamps.unwrap().0)),
            ..TcpOptions::default()
        },
        ..templ()
    };
    assert_eq!(
        fx.ep.handle_frame(fx.now, &frame(&ack, &[])),
        Err(DropReason::TableFull)
    );
    let out = fx.out();
    assert!(out[0].has(TcpFlags::RST));
    assert_eq!(out[0].hdr.seq, sa.hdr.seq + 1u32);
    assert_eq!(fx.ep.stats().table_full, 1);
    assert_eq!(fx.ep.connection_count(), 1);
}

#[test]
fn replies_use_the_reversed_addresses_including_vlan() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    let tagged = client_addrs(Some(VlanTag { tci: 42 }));
    ep.handle_frame(now, &frame_with(&tagged, &syn(&ALL_OPTS, CLIENT_ISN), &[]))
        .unwrap();
    let sa = drain(&mut ep, now).remove(0);
    assert_eq!(sa.addrs, tagged.reversed());
    let ack = TcpHeader {
        seq: SeqNumber(CLIENT_ISN + 1),
        ack: sa.hdr.seq + 1u32,
        options: TcpOptions {
            timestamps: Some((101, sa.hdr.options.timestamps.unwrap().0)),
            ..TcpOptions::default()
        },
        ..templ()
    };
    ep.handle_frame(now, &frame_with(&tagged, &ack, b"x"))
        .unwrap();
    let Event::Established { conn, .. } = events(&mut ep)[0] else {
        panic!()
    };
    let (a, _) = ep.send_space(conn);
    a[0] = b'y';
    ep.commit_send(conn, 1);
    let out = drain(&mut ep, now);
    assert_eq!(out[0].addrs, tagged.reversed());
    assert_eq!(out[0].payload, b"y");
}

#[test]
fn malformed_frames_and_bad_checksums_are_counted_apart() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    // One flipped byte: the TCP checksum no longer verifies (damage on the wire).
    let mut f = frame(&syn(&ALL_OPTS, 1), &[]);
    let last = f.len() - 1;
    f[last] ^= 0xff;
    assert_eq!(ep.handle_frame(now, &f), Err(DropReason::BadChecksum));
    // Three bytes are no frame at all.
    assert_eq!(ep.handle_frame(now, &[1, 2, 3]), Err(DropReason::Malformed));
    assert_eq!(ep.stats().drop_count(DropReason::BadChecksum), 1);
    assert_eq!(ep.stats().drop_count(DropReason::Malformed), 1);
    assert!(
        ep.poll_transmit(now, &mut [0u8; 2048]).is_none(),
        "neither is answered"
    );
}

#[test]
fn first_flight_data_overtaking_the_cookie_ack_is_dropped_silently_not_reset() {
    let now = t0();
    // Without SYN hints (as under a SYN flood that overwrote them) and without a SYN cache
    // entry (the same flood filled it).
    let cfg = TcpConfig {
        syn_hints: 0,
        ..cookie_only_config()
    };
    let mut ep = Endpoint::new(cfg, SECRET, now);
    ep.handle_frame(now, &frame(&syn(&ALL_OPTS, CLIENT_ISN), &[]))
        .unwrap();
    let sa = drain(&mut ep, now).remove(0);
    let ecr = sa.hdr.options.timestamps.unwrap().0;
    let mk = |seq: u32, tsv: u32| TcpHeader {
        seq: SeqNumber(seq),
        ack: sa.hdr.seq + 1u32,
        options: TcpOptions {
            timestamps: Some((tsv, ecr)),
            ..TcpOptions::default()
        },
        ..templ()
    };
    // Second and third full segments of the first flight arrive first.
    let s2 = mk(CLIENT_ISN + 1 + 1448, 101);
    assert_eq!(
        ep.handle_frame(now, &frame(&s2, &[b'b'; 1448])),
        Err(DropReason::EarlyData)
    );
    let s3 = mk(CLIENT_ISN + 1 + 2 * 1448, 101);
    assert_eq!(
        ep.handle_frame(now, &frame(&s3, &[b'c'; 100])),
        Err(DropReason::EarlyData)
    );
    assert!(drain(&mut ep, now).is_empty(), "no RST");
    assert_eq!(ep.connection_count(), 0);
    // A forged ACK of the same shape but a wrong cookie still gets its RST.
    let mut bad = mk(CLIENT_ISN + 1 + 1448, 101);
    bad.ack = bad.ack + 1u32;
    assert_eq!(
        ep.handle_frame(now, &frame(&bad, &[b'x'; 1448])),
        Err(DropReason::BadCookie)
    );
    assert!(drain(&mut ep, now)[0].has(TcpFlags::RST));
    // Then the first segment (with the handshake ACK's sequence number) creates the connection.
    let s1 = mk(CLIENT_ISN + 1, 101);
    ep.handle_frame(now, &frame(&s1, &[b'a'; 1448])).unwrap();
    assert_eq!(ep.connection_count(), 1);
}

#[test]
fn rfc9293_syn_ack_to_unknown_flow_gets_rst_with_seq_seg_ack() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    let h = TcpHeader {
        seq: SeqNumber(10),
        ack: SeqNumber(4242),
        flags: TcpFlags::SYN | TcpFlags::ACK,
        ..templ()
    };
    assert_eq!(
        ep.handle_frame(now, &frame(&h, &[])),
        Err(DropReason::NoConnection)
    );
    let out = drain(&mut ep, now);
    assert!(out[0].has(TcpFlags::RST));
    assert_eq!(out[0].hdr.seq, SeqNumber(4242));
    // SYN+FIN / SYN+RST are refused outright.
    let h = TcpHeader {
        flags: TcpFlags::SYN | TcpFlags::FIN,
        ..templ()
    };
    assert_eq!(
        ep.handle_frame(now, &frame(&h, &[])),
        Err(DropReason::BadFlags)
    );
    assert!(drain(&mut ep, now).is_empty());
}

#[test]
fn duplicate_handshake_ack_and_retransmitted_syn_after_establishment_are_harmless() {
    let mut fx = Fx::new();
    // The handshake ACK again (duplicated by the network).
    let h = fx.hdr(TcpFlags::ACK);
    fx.send_hdr(&h, &[]).unwrap();
    assert!(fx.out().is_empty());
    assert_eq!(fx.ep.connection_count(), 1);
    assert_eq!(fx.ep.stats().connections_established, 1);
}

#[test]
fn syn_hint_lets_a_segment_overtaking_the_handshake_ack_create_the_connection() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    ep.handle_frame(now, &frame(&syn(&ALL_OPTS, CLIENT_ISN), &[]))
        .unwrap();
    let sa = drain(&mut ep, now).remove(0);
    let ecr = sa.hdr.options.timestamps.unwrap().0;
    let mk = |seq: u32| TcpHeader {
        seq: SeqNumber(seq),
        ack: sa.hdr.seq + 1u32,
        options: TcpOptions {
            timestamps: Some((101, ecr)),
            ..TcpOptions::default()
        },
        ..templ()
    };
    // A pure ACK (window update) from after a short first flight arrives first: it is not a
    // full-segment multiple, yet the hint recognises it.
    ep.handle_frame(now, &frame(&mk(CLIENT_ISN + 1 + 700), &[]))
        .unwrap();
    assert_eq!(ep.connection_count(), 1);
    let ev = events(&mut ep);
    let Event::Established { conn, .. } = ev[0] else {
        panic!("{ev:?}")
    };
    // Then the data, out of order first.
    let _ = ep.handle_frame(now, &frame(&mk(CLIENT_ISN + 1 + 300), &[b'b'; 400]));
    let out = drain(&mut ep, now);
    assert_eq!(out.last().unwrap().hdr.ack, SeqNumber(CLIENT_ISN + 1));
    ep.handle_frame(now, &frame(&mk(CLIENT_ISN + 1), &[b'a'; 300]))
        .unwrap();
    let (a, b) = ep.recv_slices(conn);
    assert_eq!(a.len() + b.len(), 700);
    // A forged ACK for the same flow with a wrong cookie still gets a RST.
    let now2 = now;
    let mut bad = mk(CLIENT_ISN + 5000);
    bad.src_port = CPORT + 9;
    assert_eq!(
        ep.handle_frame(now2, &frame(&bad, &[])),
        Err(DropReason::BadCookie)
    );
}

#[test]
fn syn_flood_during_traffic_leaves_the_live_connection_working() {
    let mut fx = Fx::new();
    for i in 0..20_000u32 {
        let mut h = syn(&ALL_OPTS, i.wrapping_mul(2_654_435_761));
        h.src_port = 1024 + (i % 50_000) as u16;
        let _ = fx.send_hdr(&h, &[]);
        if i % 1000 == 0 {
            // The live connection keeps exchanging data meanwhile.
            fx.send(TcpFlags::ACK | TcpFlags::PSH, b"req").unwrap();
            fx.app_send(b"resp");
            let out = fx.out_and_ack();
            assert!(out.iter().any(|o| o.payload == b"resp"));
            let n = fx.readable().len();
            fx.ep.consume(fx.h, n);
        }
    }
    assert_eq!(fx.ep.connection_count(), 1);
    assert!(fx.ep.stats().stateless_queue_overflows > 0);
    let st = fx.ep.stats();
    assert!(st.cookies_sent + st.syn_cache_added > 1000);
}
