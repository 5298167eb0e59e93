//! The SYN cache: exact options, SYN-ACK retransmission and expiry, SYN-RECEIVED's answers
//! (RFC 9293 §3.10.7.4, RFC 5961), and the fall back to cookies when it is full or flooded.

use super::*;

/// A SYN with the given options from client port `port`.
fn syn_opts(port: u16, isn: u32, mss: Option<u16>, ws: Option<u8>, sack: bool) -> TcpHeader {
    TcpHeader {
        src_port: port,
        seq: SeqNumber(isn),
        flags: TcpFlags::SYN,
        options: TcpOptions {
            mss,
            window_scale: ws,
            sack_permitted: sack,
            ..TcpOptions::default()
        },
        ..templ()
    }
}

/// The client's handshake-completing ACK for `sa` (no timestamps).
fn ack_for(port: u16, isn: u32, sa: &Out) -> TcpHeader {
    TcpHeader {
        src_port: port,
        seq: SeqNumber(isn + 1),
        ack: sa.hdr.seq + 1u32,
        ..templ()
    }
}

/// Sends `h` and returns the one SYN-ACK it draws.
fn syn_ack(ep: &mut Endpoint, now: Instant, h: &TcpHeader) -> Out {
    ep.handle_frame(now, &frame(h, &[])).unwrap();
    let mut out = drain(ep, now);
    assert_eq!(out.len(), 1);
    let sa = out.remove(0);
    assert!(sa.has(TcpFlags::SYN) && sa.has(TcpFlags::ACK));
    sa
}

fn established(ep: &mut Endpoint) -> ConnHandle {
    match events(ep).first() {
        Some(Event::Established { conn, .. }) => *conn,
        other => panic!("expected Established, got {other:?}"),
    }
}

/// Options the cookie tables would round (MSS 1300 -> 1240, shift 10 -> 9) are kept exactly.
#[test]
fn syn_cache_keeps_exact_mss_and_window_scale() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    let sa = syn_ack(
        &mut ep,
        now,
        &syn_opts(CPORT, 5000, Some(1300), Some(10), true),
    );
    assert_eq!(ep.stats().syn_cache_added, 1);
    assert_eq!(ep.stats().cookies_sent, 0);
    assert_eq!(sa.hdr.options.window_scale, Some(7));
    assert!(sa.hdr.options.sack_permitted);
    ep.handle_frame(now, &frame(&ack_for(CPORT, 5000, &sa), &[]))
        .unwrap();
    let h = established(&mut ep);
    assert_eq!(ep.stats().syn_cache_completed, 1);
    assert_eq!(ep.stats().cookies_validated, 0);
    let c = ep.conn_for_test(h).unwrap();
    assert_eq!(c.debug_snd_wnd(), 65535 << 10, "the exact shift");
    let (a, _) = ep.send_space(h);
    a[..4000].fill(1);
    ep.commit_send(h, 4000);
    let out = drain(&mut ep, now);
    assert_eq!(out[0].payload.len(), 1300, "the exact MSS");
    assert!(out.iter().all(|o| o.payload.len() <= 1300));
}

/// A client that sent no MSS option gets RFC 9293 §3.7.1's default of 536.
#[test]
fn rfc9293_no_mss_option_means_536() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    let sa = syn_ack(&mut ep, now, &syn_opts(CPORT, 5000, None, None, false));
    assert_eq!(sa.hdr.options.window_scale, None);
    assert!(!sa.hdr.options.sack_permitted);
    ep.handle_frame(now, &frame(&ack_for(CPORT, 5000, &sa), &[]))
        .unwrap();
    let h = established(&mut ep);
    let (a, _) = ep.send_space(h);
    a[..2000].fill(1);
    ep.commit_send(h, 2000);
    let out = drain(&mut ep, now);
    assert_eq!(out[0].payload.len(), 536);
}

#[test]
fn syn_cache_full_falls_back_to_cookies() {
    let now = t0();
    // One bucket of 8.
    let cfg = TcpConfig {
        syn_cache: 8,
        ..small_config()
    };
    let mut ep = Endpoint::new(cfg, SECRET, now);
    let mut sas = Vec::new();
    for i in 0..9u16 {
        let isn = 100 * u32::from(i);
        let sa = syn_ack(
            &mut ep,
            now,
            &syn_opts(CPORT + i, isn, Some(1300), Some(7), true),
        );
        sas.push((CPORT + i, isn, sa));
    }
    let st = ep.stats();
    assert_eq!((st.syn_cache_added, st.syn_cache_overflows), (8, 1));
    assert_eq!(st.cookies_sent, 1);
    // The cookie SYN-ACK offers the same options.
    let (port, isn, sa) = &sas[8];
    assert_eq!(sa.hdr.options.window_scale, Some(7));
    assert!(sa.hdr.options.sack_permitted);
    // Both kinds complete: the cookie one with the cookie's MSS (1240), a cached one exact.
    ep.handle_frame(now, &frame(&ack_for(*port, *isn, sa), &[]))
        .unwrap();
    let cookie_conn = established(&mut ep);
    assert_eq!(ep.stats().cookies_validated, 1);
    let (port, isn, sa) = &sas[0];
    ep.handle_frame(now, &frame(&ack_for(*port, *isn, sa), &[]))
        .unwrap();
    let cached_conn = established(&mut ep);
    assert_eq!(ep.stats().syn_cache_completed, 1);
    for (h, mss) in [(cookie_conn, 1240), (cached_conn, 1300)] {
        let (a, _) = ep.send_space(h);
        a[..3000].fill(1);
        ep.commit_send(h, 3000);
        let out = drain(&mut ep, now);
        assert_eq!(out[0].payload.len(), mss);
    }
    // A freed way takes the next SYN again.
    syn_ack(
        &mut ep,
        now,
        &syn_opts(CPORT + 20, 1, Some(1300), None, false),
    );
    assert_eq!(ep.stats().syn_cache_added, 9);
}

#[test]
fn syn_rate_over_the_budget_falls_back_to_cookies_for_the_rest_of_the_second() {
    let now = t0();
    let cfg = TcpConfig {
        syn_cache_rate: 2,
        ..small_config()
    };
    let mut ep = Endpoint::new(cfg, SECRET, now);
    for i in 0..5u16 {
        syn_ack(
            &mut ep,
            now,
            &syn_opts(CPORT + i, 1, Some(1460), None, false),
        );
    }
    assert_eq!(ep.stats().syn_cache_added, 2);
    assert_eq!(ep.stats().syn_cache_overflows, 3);
    assert_eq!(ep.stats().cookies_sent, 3);
    let later = now + Duration::from_secs(1);
    syn_ack(
        &mut ep,
        later,
        &syn_opts(CPORT + 9, 1, Some(1460), None, false),
    );
    assert_eq!(ep.stats().syn_cache_added, 3);
}

#[test]
fn retransmitted_syn_gets_the_same_syn_ack() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    let s = syn(&ALL_OPTS, CLIENT_ISN);
    let first = syn_ack(&mut ep, now, &s);
    let later = now + Duration::from_millis(300);
    let mut again = s;
    again.options.timestamps = Some((400, 0));
    let second = syn_ack(&mut ep, later, &again);
    assert_eq!(second.hdr.seq, first.hdr.seq);
    assert_eq!(second.hdr.ack, first.hdr.ack);
    assert_eq!(second.hdr.window, first.hdr.window);
    let (o1, o2) = (first.hdr.options, second.hdr.options);
    assert_eq!(
        (o2.mss, o2.window_scale, o2.sack_permitted),
        (o1.mss, o1.window_scale, o1.sack_permitted)
    );
    // The TSval moves on with the clock; the echo is the latest SYN's.
    assert_eq!(o2.timestamps, Some((o1.timestamps.unwrap().0 + 300, 400)));
    assert_eq!(ep.stats().syn_cache_added, 1);
    assert_eq!(ep.stats().syn_ack_retransmits, 1);
}

#[test]
fn syn_with_another_isn_replaces_the_entry() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    let first = syn_ack(&mut ep, now, &syn(&ALL_OPTS, CLIENT_ISN));
    let second = syn_ack(&mut ep, now, &syn(&ALL_OPTS, CLIENT_ISN + 5000));
    assert_eq!(second.hdr.ack, SeqNumber(CLIENT_ISN + 5001));
    assert_eq!(ep.stats().syn_cache_added, 2);
    // The old attempt's ACK is no longer the entry's: RFC 9293 §3.10.7.4 RST.
    let mut old = ack_for(CPORT, CLIENT_ISN, &first);
    old.seq = SeqNumber(CLIENT_ISN + 5001);
    assert_eq!(
        ep.handle_frame(now, &frame(&old, &[])),
        Err(DropReason::BadAck)
    );
    assert!(drain(&mut ep, now)[0].has(TcpFlags::RST));
}

/// RFC 6298-style backoff: SYN-ACK again at 1, 3 and 7 s; the entry is gone at 15 s.
#[test]
fn syn_ack_is_retransmitted_with_backoff_then_the_entry_expires() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    let sa = syn_ack(&mut ep, now, &syn(&ALL_OPTS, CLIENT_ISN));
    let mut at = Vec::new();
    while let Some(t) = ep.poll_timeout() {
        ep.handle_timeout(t);
        for o in drain(&mut ep, t) {
            assert_eq!((o.hdr.seq, o.hdr.ack), (sa.hdr.seq, sa.hdr.ack));
            assert!(o.has(TcpFlags::SYN));
            at.push((t - now).as_secs());
        }
        if at.len() > 10 {
            break;
        }
    }
    assert_eq!(at, [1, 3, 7]);
    assert_eq!(ep.stats().syn_ack_retransmits, 3);
    assert_eq!(ep.stats().syn_cache_expired, 1);
    // The ACK that comes after all that still completes, as a cookie ACK.
    let late = now + Duration::from_secs(20);
    let ack = TcpHeader {
        seq: SeqNumber(CLIENT_ISN + 1),
        ack: sa.hdr.seq + 1u32,
        options: TcpOptions {
            timestamps: Some((200, sa.hdr.options.timestamps.unwrap().0)),
            ..TcpOptions::default()
        },
        ..templ()
    };
    ep.handle_frame(late, &frame(&ack, &[])).unwrap();
    established(&mut ep);
    assert_eq!(ep.stats().cookies_validated, 1);
}

#[test]
fn rfc9293_syn_received_rst_exact_seq_removes_entry() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    syn_ack(&mut ep, now, &syn(&ALL_OPTS, CLIENT_ISN));
    assert!(ep.poll_timeout().is_some(), "the retransmission timer");
    let rst = TcpHeader {
        seq: SeqNumber(CLIENT_ISN + 1),
        flags: TcpFlags::RST,
        ..templ()
    };
    ep.handle_frame(now, &frame(&rst, &[])).unwrap();
    assert!(drain(&mut ep, now).is_empty());
    assert_eq!(ep.stats().syn_cache_reset, 1);
    assert_eq!(ep.poll_timeout(), None, "nothing left to retransmit");
}

#[test]
fn rfc5961_syn_received_rst_in_window_not_exact_gets_challenge_ack_and_entry_stays() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    let sa = syn_ack(&mut ep, now, &syn(&ALL_OPTS, CLIENT_ISN));
    let rst = TcpHeader {
        seq: SeqNumber(CLIENT_ISN + 100),
        flags: TcpFlags::RST,
        ..templ()
    };
    assert_eq!(
        ep.handle_frame(now, &frame(&rst, &[])),
        Err(DropReason::RstNotExact)
    );
    let out = drain(&mut ep, now);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hdr.flags, TcpFlags::ACK);
    assert_eq!(
        (out[0].hdr.seq, out[0].hdr.ack),
        (sa.hdr.seq + 1u32, SeqNumber(CLIENT_ISN + 1))
    );
    assert_eq!(ep.stats().challenge_acks_sent, 1);
    // Outside the window: dropped without an answer.
    let far = TcpHeader {
        seq: SeqNumber(CLIENT_ISN + 1_000_000),
        ..rst
    };
    assert_eq!(
        ep.handle_frame(now, &frame(&far, &[])),
        Err(DropReason::RstNotExact)
    );
    assert!(drain(&mut ep, now).is_empty());
    assert_eq!(ep.stats().syn_cache_reset, 0);
    assert!(ep.poll_timeout().is_some(), "the entry stays");
}

#[test]
fn rfc9293_syn_received_bad_ack_gets_rst_seq_seg_ack_and_entry_stays() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    let sa = syn_ack(
        &mut ep,
        now,
        &syn_opts(CPORT, CLIENT_ISN, Some(1460), None, false),
    );
    let mut bad = ack_for(CPORT, CLIENT_ISN, &sa);
    bad.ack = bad.ack + 7u32;
    assert_eq!(
        ep.handle_frame(now, &frame(&bad, &[])),
        Err(DropReason::BadAck)
    );
    let out = drain(&mut ep, now);
    assert!(out[0].has(TcpFlags::RST));
    assert_eq!(out[0].hdr.seq, bad.ack);
    // The right ACK still completes from the entry.
    ep.handle_frame(now, &frame(&ack_for(CPORT, CLIENT_ISN, &sa), &[]))
        .unwrap();
    established(&mut ep);
    assert_eq!(ep.stats().syn_cache_completed, 1);
}

#[test]
fn rfc9293_syn_received_unacceptable_segment_gets_an_ack() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    let sa = syn_ack(
        &mut ep,
        now,
        &syn_opts(CPORT, CLIENT_ISN, Some(1460), None, false),
    );
    let mut old = ack_for(CPORT, CLIENT_ISN, &sa);
    old.seq = SeqNumber(CLIENT_ISN - 10);
    assert_eq!(
        ep.handle_frame(now, &frame(&old, &[])),
        Err(DropReason::OutOfWindow)
    );
    let out = drain(&mut ep, now);
    assert_eq!(out[0].hdr.flags, TcpFlags::ACK);
    assert_eq!(out[0].hdr.ack, SeqNumber(CLIENT_ISN + 1));
    assert_eq!(ep.connection_count(), 0);
}

/// First-flight data that overtakes the handshake ACK carries the entry's ACK number and a
/// sequence number in the window: the connection is created and the data is out-of-order
/// data (the cookie front could only drop it).
#[test]
fn data_overtaking_the_handshake_ack_creates_the_connection_from_the_entry() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    let sa = syn_ack(
        &mut ep,
        now,
        &syn_opts(CPORT, CLIENT_ISN, Some(1460), None, true),
    );
    let mut second = ack_for(CPORT, CLIENT_ISN, &sa);
    second.seq = SeqNumber(CLIENT_ISN + 1 + 5);
    ep.handle_frame(now, &frame(&second, b"world")).unwrap();
    let h = established(&mut ep);
    assert_eq!(ep.stats().syn_cache_completed, 1);
    let first = ack_for(CPORT, CLIENT_ISN, &sa);
    ep.handle_frame(now, &frame(&first, b"hello")).unwrap();
    let (a, b) = ep.recv_slices(h);
    assert_eq!([a, b].concat(), b"helloworld");
}

/// A SYN cache entry costs no `Conn`, and a SYN flood of one flow's retransmissions costs one
/// entry.
#[test]
fn retransmitted_syns_take_one_entry() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    for _ in 0..50 {
        syn_ack(&mut ep, now, &syn(&ALL_OPTS, CLIENT_ISN));
    }
    assert_eq!(ep.stats().syn_cache_added, 1);
    assert_eq!(ep.connection_count(), 0);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// A segment of one of 12 client ports: its flags, where its sequence and acknowledgment
    /// numbers point (near the port's latest SYN and SYN-ACK, or anywhere), timestamps or
    /// not, a few payload bytes, and the time before it.
    type Step = (u16, u8, u8, u32, u8, u32, bool, u8, u16);

    fn pick(choice: u8, near: Option<SeqNumber>, random: u32) -> SeqNumber {
        match (choice % 4, near) {
            (0, Some(n)) => n + 1u32,
            (1, Some(n)) => n,
            (2, Some(n)) => n + (random % 3000),
            _ => SeqNumber(random),
        }
    }

    proptest! {
        /// Whatever arrives in whatever order, nothing panics, the cache never holds more than
        /// its capacity, and once the peers fall silent every entry goes within the SYN-ACK
        /// retransmissions (15 s) with no timer of its own left.
        #[test]
        fn any_segments_keep_the_syn_cache_bounded_and_it_drains(
            steps in proptest::collection::vec(any::<Step>(), 1..150)
        ) {
            let cfg = TcpConfig {
                // One bucket for 12 ports: it overflows to cookies too.
                syn_cache: 8,
                max_stateless_replies: 4096,
                ..small_config()
            };
            let mut ep = Endpoint::new(cfg, SECRET, t0());
            let mut now = t0();
            // Per port: the latest client ISN sent, the latest server ISN seen.
            let mut irs: [Option<SeqNumber>; 12] = [None; 12];
            let mut iss: [Option<SeqNumber>; 12] = [None; 12];
            for (port, flags, seq_choice, seq_rand, ack_choice, ack_rand, ts, len, dt) in steps {
                let p = usize::from(port % 12);
                now += Duration::from_millis(u64::from(dt % 2000));
                ep.handle_timeout(now);
                // Mostly SYNs, RSTs and ACKs; now and then any combination.
                let flags = match flags % 8 {
                    0..=2 => TcpFlags::SYN,
                    3 => TcpFlags::RST,
                    4 => TcpFlags::ACK,
                    5 => TcpFlags::ACK | TcpFlags::PSH,
                    6 => TcpFlags::ACK | TcpFlags::FIN,
                    _ => TcpFlags::from_bits(flags >> 3),
                };
                let seq = pick(seq_choice, irs[p], seq_rand);
                let h = TcpHeader {
                    src_port: CPORT + p as u16,
                    seq,
                    ack: pick(ack_choice, iss[p], ack_rand),
                    flags,
                    options: TcpOptions {
                        mss: flags.contains(TcpFlags::SYN).then_some(1240),
                        window_scale: flags.contains(TcpFlags::SYN).then_some(7),
                        sack_permitted: true,
                        timestamps: ts.then_some((seq_rand, ack_rand)),
                        ..TcpOptions::default()
                    },
                    ..templ()
                };
                if flags.contains(TcpFlags::SYN) && !flags.contains(TcpFlags::ACK) {
                    irs[p] = Some(seq);
                }
                let payload = vec![b'x'; usize::from(len % 8)];
                let _ = ep.handle_frame(now, &frame(&h, &payload));
                prop_assert!(ep.syn_cache_len() <= 8);
                for o in drain(&mut ep, now) {
                    if o.has(TcpFlags::SYN) {
                        let q = usize::from(o.hdr.dst_port - CPORT);
                        iss[q] = Some(o.hdr.seq);
                    }
                }
                for e in events(&mut ep) {
                    if let Event::Established { conn, .. } = e {
                        ep.abort(conn);
                    }
                }
            }
            let quiet = now + Duration::from_secs(16);
            while let Some(at) = ep.poll_timeout().filter(|&at| at <= quiet) {
                ep.handle_timeout(at);
                drain(&mut ep, at);
            }
            prop_assert_eq!(ep.syn_cache_len(), 0);
            let st = ep.stats();
            prop_assert!(st.syn_cache_completed + st.syn_cache_expired + st.syn_cache_reset
                <= st.syn_cache_added);
        }
    }
}
