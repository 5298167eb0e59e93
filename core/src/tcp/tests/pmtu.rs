//! Path MTU from ICMP errors (RFC 1191, RFC 8201; `conn/path_mtu.rs`): a "too big" quoting a
//! segment in flight lowers the send MSS and the flight goes again at the new size, with no
//! congestion response; quotes outside the window (RFC 5927 §4.1), IPv6 MTUs below 1280,
//! MTUs that would raise the MSS and flows without a connection change nothing and are
//! counted; IPv4 MTUs below 576 are taken as 576.

use super::ipv6::client_addrs_v6;
use super::*;
use crate::tcp::congestion::CongestionAlgorithm;
use crate::testkit::icmp_too_big;

/// The router's path MTU message for `o`, a segment the server sent: what a hop of `mtu`
/// bytes answers when it drops it.
fn too_big(o: &Out, mtu: u32) -> Vec<u8> {
    let frame = frame_with(&o.addrs, &o.hdr, &o.payload);
    let mut buf = Vec::new();
    icmp_too_big(&frame, mtu, &mut buf).expect("an IP frame");
    buf
}

/// [`too_big`] for a segment like `o` at another sequence number.
fn too_big_at(o: &Out, seq: SeqNumber, mtu: u32) -> Vec<u8> {
    let mut o = o.clone();
    o.hdr.seq = seq;
    too_big(&o, mtu)
}

/// The IP packet `o` went out in.
fn ip_len(o: &Out) -> usize {
    o.addrs.ip.header_len() + o.hdr.header_len() + o.payload.len()
}

fn opts(all: bool) -> HsOpts {
    HsOpts {
        ts: all,
        ws: all,
        sack: all,
    }
}

/// A connection over IPv4 or IPv6 with `opts`.
fn fx_for(v6: bool, opts: HsOpts, cfg: TcpConfig) -> Fx {
    if v6 {
        let ts = opts.ts;
        Fx::with_syn_from(cfg, client_addrs_v6(), &syn(&opts, CLIENT_ISN), ts)
    } else {
        Fx::with(cfg, opts)
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len as u32).map(|i| (i % 251) as u8).collect()
}

/// What the client reassembles of `len` bytes from `start`: `first` (what the server sent
/// last) and then everything the server sends while the client acknowledges in order, every
/// frame checked against `mtu`. Nothing may stall: each ACK draws more.
fn deliver(fx: &mut Fx, mut out: Vec<Out>, start: SeqNumber, len: usize, mtu: usize) -> Vec<u8> {
    let mut got = vec![0u8; len];
    for _ in 0..10_000 {
        for o in out.iter().filter(|o| !o.payload.is_empty()) {
            assert!(
                ip_len(o) <= mtu,
                "a {}-byte packet past a {mtu} hop",
                ip_len(o)
            );
            let off = o.hdr.seq.distance_from(start).expect("data from the start") as usize;
            got[off..off + o.payload.len()].copy_from_slice(&o.payload);
            if o.hdr.seq == fx.ack {
                fx.ack = fx.ack + o.payload.len();
            }
        }
        if fx.ack.distance_from(start) == Some(len as u32) {
            fx.send(TcpFlags::ACK, &[]).unwrap();
            return got;
        }
        fx.send(TcpFlags::ACK, &[]).unwrap();
        out = fx.out();
        assert!(!out.is_empty(), "stalled at {:?}", fx.ack);
    }
    panic!("never delivered");
}

#[test]
fn rfc1191_rfc8201_too_big_lowers_the_mss_and_the_flight_goes_again_at_the_new_size() {
    // (IPv6, timestamps/SACK/window scale, the hop's MTU, the payload of a full segment then)
    for (v6, all, mtu, full) in [
        (false, true, 1200, 1200 - 40 - 12),
        (false, false, 1000, 1000 - 40),
        (true, true, 1300, 1300 - 60 - 12),
        (true, false, 1280, 1280 - 60),
    ] {
        let mut fx = fx_for(v6, opts(all), small_config());
        let data = pattern(60_000);
        let start = fx.ack;
        assert_eq!(fx.app_send(&data), data.len());
        let first = fx.out();
        assert!(first.len() >= 2 && first.iter().all(|o| ip_len(o) == 1500));
        // The hop drops the whole flight; its router answers the second segment.
        fx.ep
            .handle_frame(fx.now, &too_big(&first[1], mtu as u32))
            .unwrap();
        assert_eq!(fx.ep.stats().pmtu_lowered, 1);
        assert_eq!(
            fx.ep.conn_for_test(fx.h).unwrap().debug_smss() as usize,
            mtu - if v6 { 60 } else { 40 }
        );
        // At once, not at the RTO: back to SND.UNA, at the new size.
        let again = fx.out();
        assert_eq!(again[0].hdr.seq, start, "v6 {v6}");
        let mut next = start;
        for o in &again {
            assert_eq!((o.hdr.seq, o.payload.len()), (next, full), "v6 {v6}");
            next = next + full;
        }
        let st = fx.ep.stats();
        assert_eq!(st.pmtu_retransmits as usize, again.len());
        assert_eq!(st.retransmits, st.pmtu_retransmits);
        let got = deliver(&mut fx, again, start, data.len(), mtu);
        assert!(got == data, "v6 {v6}: the stream is not the one sent");
        let st = fx.ep.stats();
        assert_eq!(
            (st.rto_timeouts, st.timeout_retransmits, st.fast_retransmits),
            (0, 0, 0),
            "v6 {v6}"
        );
        assert_eq!(st.pmtu_ignored, 0);
    }
}

#[test]
fn rfc1191_a_smaller_path_mtu_is_no_congestion_signal() {
    for algorithm in [CongestionAlgorithm::Cubic, CongestionAlgorithm::NewReno] {
        let cfg = TcpConfig {
            congestion: algorithm,
            ..small_config()
        };
        let mut fx = fx_for(false, opts(true), cfg);
        fx.app_send(&pattern(60_000));
        let first = fx.out();
        let (cwnd, ssthresh, _) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
        fx.ep
            .handle_frame(fx.now, &too_big(&first[0], 1200))
            .unwrap();
        let (cwnd_after, ssthresh_after, recovery) =
            fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
        // The window keeps its count of segments (Linux counts it in packets), and slow start
        // goes on: no ssthresh, no recovery, no timeout.
        assert_eq!(cwnd_after, cwnd * 1160 / 1460, "{algorithm:?}");
        assert_eq!((ssthresh, ssthresh_after), (u32::MAX, u32::MAX));
        assert!(!recovery);
        let again = fx.out();
        assert_eq!(again.len(), first.len(), "as many segments, smaller");
        let st = fx.ep.stats();
        assert_eq!((st.fast_retransmits, st.rto_timeouts), (0, 0));
        // The resend's ACK grows the window as any ACK in slow start does.
        fx.ack = again[0].hdr.seq + again[0].payload.len();
        fx.send(TcpFlags::ACK, &[]).unwrap();
        let (grown, _, _) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
        assert!(
            grown > cwnd_after,
            "{algorithm:?}: {grown} after {cwnd_after}"
        );
    }
}

#[test]
fn rfc1191_too_big_during_sack_recovery_ends_it_without_another_reduction() {
    let mut fx = Fx::new();
    fx.app_send(&pattern(10 * 1448));
    let out = fx.out();
    let s: Vec<SeqNumber> = out.iter().map(|o| o.hdr.seq).collect();
    fx.now += Duration::from_millis(100);
    fx.ack = s[0];
    sack_ack(&mut fx, &[(s[1], s[2])]);
    sack_ack(&mut fx, &[(s[1], s[3])]);
    sack_ack(&mut fx, &[(s[1], s[4])]);
    let (_, ssthresh, recovery) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert!(recovery);
    assert_eq!(fx.ep.stats().fast_retransmits, 1);
    fx.ep.handle_frame(fx.now, &too_big(&out[0], 1200)).unwrap();
    let (cwnd, ssthresh_after, recovery) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    // Recovery's own reduction stands, counted in the new segments; nothing more is taken.
    assert!(!recovery);
    assert_eq!(ssthresh_after, ssthresh * 1160 / 1460);
    assert_eq!(cwnd, ssthresh_after);
    assert_eq!(fx.ep.stats().fast_retransmits, 1);
    // The go-back-N starts at SND.UNA and skips what the peer holds.
    let again = fx.out();
    assert_eq!(again[0].hdr.seq, s[0]);
    for o in again.iter().filter(|o| !o.payload.is_empty()) {
        assert!(ip_len(o) <= 1200);
        let end = o.hdr.seq + o.payload.len();
        assert!(end.diff(s[1]) <= 0 || o.hdr.seq.diff(s[4]) >= 0, "{o:?}");
    }
}

#[test]
fn rfc1191_an_ipv4_mtu_below_576_is_taken_as_576() {
    for mtu in [0, 68, 296, 552, 575] {
        let mut fx = Fx::new();
        fx.app_send(&pattern(20_000));
        let first = fx.out();
        fx.ep
            .handle_frame(fx.now, &too_big(&first[0], mtu))
            .unwrap();
        assert_eq!(fx.ep.stats().pmtu_lowered, 1, "{mtu}");
        // 576 - 20 - 20: RFC 9293's default MSS, less the timestamps.
        let again = fx.out();
        assert!(again.iter().all(|o| o.payload.len() == 536 - 12), "{mtu}");
        assert!(again.iter().all(|o| ip_len(o) == 576));
        // Lower again: 576 already, nothing changes.
        fx.ep.handle_frame(fx.now, &too_big(&again[0], 68)).unwrap();
        assert_eq!(fx.ep.stats().pmtu_unchanged, 1);
        assert!(fx.out().is_empty());
    }
}

#[test]
fn rfc8201_an_ipv6_mtu_below_1280_is_discarded() {
    let mut fx = fx_for(true, opts(true), small_config());
    let data = pattern(30_000);
    let start = fx.ack;
    fx.app_send(&data);
    let first = fx.out();
    for mtu in [0, 576, 1000, 1279] {
        fx.ep
            .handle_frame(fx.now, &too_big(&first[0], mtu))
            .unwrap();
        assert!(fx.out().is_empty(), "{mtu}: nothing resent");
    }
    let st = fx.ep.stats();
    assert_eq!(
        (st.pmtu_below_minimum, st.pmtu_ignored, st.pmtu_lowered),
        (4, 4, 0)
    );
    assert_eq!(fx.ep.conn_for_test(fx.h).unwrap().debug_smss(), 1440);
    // 1280 itself is taken: 1280 - 40 - 20 = 1220, RFC 9293's IPv6 default.
    fx.ep
        .handle_frame(fx.now, &too_big(&first[0], 1280))
        .unwrap();
    assert_eq!(fx.ep.stats().pmtu_lowered, 1);
    let again = fx.out();
    assert!(again.iter().all(|o| o.payload.len() == 1220 - 12));
    assert_eq!(deliver(&mut fx, again, start, data.len(), 1280), data);
}

#[test]
fn rfc1191_rfc8201_a_larger_mtu_never_raises_the_mss() {
    for v6 in [false, true] {
        let mut fx = fx_for(v6, opts(true), small_config());
        let data = pattern(60_000);
        let start = fx.ack;
        fx.app_send(&data);
        let first = fx.out();
        // What the connection sends already (1500) or more: nothing to do.
        for mtu in [1500, 9000] {
            fx.ep
                .handle_frame(fx.now, &too_big(&first[1], mtu))
                .unwrap();
            assert!(fx.out().is_empty());
        }
        assert_eq!(fx.ep.stats().pmtu_unchanged, 2);
        fx.ep
            .handle_frame(fx.now, &too_big(&first[1], 1300))
            .unwrap();
        let again = fx.out();
        // A larger MTU later (a router on another path, or a forgery) does not undo it.
        for mtu in [1301, 1400, 1500, 65535, 1300] {
            fx.ep
                .handle_frame(fx.now, &too_big(&again[1], mtu))
                .unwrap();
            assert!(fx.out().is_empty(), "{mtu}");
        }
        let st = fx.ep.stats();
        assert_eq!((st.pmtu_lowered, st.pmtu_unchanged), (1, 7), "v6 {v6}");
        assert_eq!(deliver(&mut fx, again, start, data.len(), 1300), data);
    }
}

#[test]
fn rfc5927_4_1_a_quote_outside_snd_una_to_snd_nxt_changes_nothing() {
    let mut fx = Fx::new();
    fx.app_send(&pattern(10 * 1448));
    let out = fx.out();
    let s: Vec<SeqNumber> = out.iter().map(|o| o.hdr.seq).collect();
    let snd_nxt = s[9] + 1448u32;
    // The first two segments are acknowledged: SND.UNA is s[2].
    fx.ack = s[2];
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let _ = fx.out();
    let (cwnd, _, _) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    let outside = [
        s[0],
        s[1],
        s[2] - 1u32,
        snd_nxt,
        snd_nxt + 1u32,
        s[2] + (1u32 << 31),
        s[2] - 100_000u32,
    ];
    for seq in outside {
        fx.ep
            .handle_frame(fx.now, &too_big_at(&out[0], seq, 1200))
            .unwrap();
        assert!(fx.out().is_empty(), "{seq:?}");
    }
    let st = fx.ep.stats();
    assert_eq!(
        (st.pmtu_stale, st.pmtu_ignored, st.pmtu_lowered),
        (outside.len() as u64, outside.len() as u64, 0)
    );
    let c = fx.ep.conn_for_test(fx.h).unwrap();
    assert_eq!((c.debug_smss(), c.debug_cwnd().0), (1460, cwnd));
    // Both ends of the window are in it: SND.UNA, and the last octet sent.
    for (seq, lowered) in [(snd_nxt - 1u32, 1), (s[2], 2)] {
        let mtu = 1400 - 100 * lowered;
        fx.ep
            .handle_frame(fx.now, &too_big_at(&out[0], seq, mtu))
            .unwrap();
        assert_eq!(fx.ep.stats().pmtu_lowered, u64::from(lowered));
    }
    // Nothing in flight: no quote can be about a segment in flight.
    let mut fx = Fx::new();
    fx.app_send(b"small");
    let out = fx.out_and_ack();
    fx.send(TcpFlags::ACK, &[]).unwrap();
    fx.ep.handle_frame(fx.now, &too_big(&out[0], 1200)).unwrap();
    assert_eq!(fx.ep.stats().pmtu_stale, 1);
}

#[test]
fn path_mtu_messages_for_flows_without_a_connection_are_ignored_and_counted() {
    let unknown = |ep: &Endpoint| (ep.stats().pmtu_unknown_flow, ep.stats().pmtu_ignored);
    // Another port of the same client: no connection.
    let mut fx = Fx::new();
    fx.app_send(&pattern(5000));
    let out = fx.out();
    let mut other = out[0].clone();
    other.hdr.dst_port = CPORT + 1;
    assert_eq!(fx.ep.handle_frame(fx.now, &too_big(&other, 1200)), Ok(()));
    assert_eq!(unknown(&fx.ep), (1, 1));
    assert!(fx.out().is_empty());

    // A flow in TIME_WAIT.
    let mut fx = Fx::new();
    fx.app_send(b"response");
    fx.ep.close(fx.h);
    let out = fx.out_and_ack();
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    let _ = fx.out();
    assert_eq!(fx.ep.time_wait_count(), 1);
    assert_eq!(fx.ep.handle_frame(fx.now, &too_big(&out[0], 1200)), Ok(()));
    assert_eq!(unknown(&fx.ep), (1, 1));
    assert!(fx.out().is_empty());
    assert_eq!(fx.ep.time_wait_count(), 1);

    // A SYN cache entry: its SYN-ACK quoted.
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    ep.handle_frame(now, &frame(&syn(&ALL_OPTS, CLIENT_ISN), &[]))
        .unwrap();
    let syn_ack = drain(&mut ep, now).remove(0);
    assert_eq!(ep.handle_frame(now, &too_big(&syn_ack, 1200)), Ok(()));
    assert_eq!(unknown(&ep), (1, 1));
    assert!(drain(&mut ep, now).is_empty());
    assert_eq!(ep.syn_cache_len(), 1);
    assert_eq!(ep.stats().drops.iter().sum::<u64>(), 0, "not a drop");
}

#[test]
fn icmp_that_is_not_a_path_mtu_message_is_dropped_as_before() {
    let mut fx = Fx::new();
    fx.app_send(&pattern(5000));
    let out = fx.out();
    let good = too_big(&out[0], 1200);
    // Time exceeded (type 11) quoting the same segment: not ours to act on.
    let mut other = good.clone();
    other[34] = 11;
    other[35] = 0;
    other[36..38].copy_from_slice(&[0, 0]);
    let sum = wire::checksum::finish(wire::checksum::sum(&other[34..]));
    other[36..38].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(
        fx.ep.handle_frame(fx.now, &other),
        Err(DropReason::Malformed)
    );
    let mut damaged = good.clone();
    damaged[60] ^= 1;
    assert_eq!(
        fx.ep.handle_frame(fx.now, &damaged),
        Err(DropReason::BadChecksum)
    );
    let st = fx.ep.stats();
    assert_eq!(st.pmtu_lowered + st.pmtu_ignored, 0);
    assert_eq!(fx.ep.conn_for_test(fx.h).unwrap().debug_smss(), 1460);
    assert!(fx.out().is_empty());
}

#[test]
fn rfc1191_too_big_during_newreno_recovery_deflates_the_window() {
    // Without SACK the window was inflated by a segment per duplicate ACK (RFC 6582): leaving
    // recovery for the resend deflates it to ssthresh, as a full ACK would.
    let mut fx = fx_for(false, opts(false), small_config());
    fx.app_send(&pattern(10 * 1460));
    let out = fx.out();
    fx.ack = out[0].hdr.seq;
    for _ in 0..5 {
        fx.send(TcpFlags::ACK, &[]).unwrap();
    }
    let _ = fx.out();
    let (inflated, ssthresh, recovery) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert!(recovery && inflated > ssthresh);
    fx.ep.handle_frame(fx.now, &too_big(&out[0], 1200)).unwrap();
    let (cwnd, ssthresh_after, recovery) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert!(!recovery);
    assert_eq!(ssthresh_after, ssthresh * 1160 / 1460);
    assert_eq!(
        cwnd, ssthresh_after,
        "deflated, then counted in the new segments"
    );
    assert_eq!(fx.ep.stats().fast_retransmits, 1);
}

#[test]
fn rfc1191_sacks_of_what_fit_start_no_recovery_during_the_resend() {
    // Nine full segments and a short one; the hop (576 bytes) drops the nine and passes the
    // short one, whose SACK comes back after the router's message. RACK then finds the nine
    // lost, as they are: the resend under way repairs them, and no recovery begins (Linux's
    // loss state after `tcp_simple_retransmit`: the guard a timeout's go-back-N has).
    let mut fx = Fx::new();
    fx.app_send(&pattern(9 * 1448));
    fx.app_send(&pattern(500));
    let first = fx.out();
    assert_eq!(first.len(), 10);
    let tail = &first[9];
    assert_eq!(tail.payload.len(), 500);
    fx.now += Duration::from_millis(10);
    fx.ep
        .handle_frame(fx.now, &too_big(&first[0], 576))
        .unwrap();
    let again = fx.out();
    assert!(!again.is_empty());
    fx.now += Duration::from_millis(40);
    let tail_end = tail.hdr.seq + tail.payload.len();
    fx.ack = first[0].hdr.seq;
    sack_ack(&mut fx, &[(tail.hdr.seq, tail_end)]);
    // RACK's reordering window passes.
    fx.advance(Duration::from_millis(50));
    let _ = fx.out();
    assert!(fx.ep.stats().rack_lost > 0, "RACK saw the losses");
    let (_, ssthresh, recovery) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert!(!recovery);
    assert_eq!(ssthresh, u32::MAX, "no reduction");
    assert_eq!(fx.ep.stats().fast_retransmits, 0);
}

#[test]
fn rfc6298_the_resend_restarts_the_retransmission_timer() {
    // The message comes just before the dropped flight's RTO: the resend gets a full RTO of
    // its own, not the remnant that would call it lost a moment after it left.
    let mut fx = Fx::new();
    fx.app_send(&pattern(20_000));
    let first = fx.out();
    let rto = fx.ep.conn_for_test(fx.h).unwrap().debug_rto();
    fx.now += rto - Duration::from_millis(5);
    fx.ep
        .handle_frame(fx.now, &too_big(&first[0], 1200))
        .unwrap();
    let again = fx.out();
    assert!(!again.is_empty());
    fx.advance(Duration::from_millis(10));
    assert_eq!(fx.ep.stats().rto_timeouts, 0);
    assert!(fx.out().is_empty(), "nothing resent by a timer");
}
