//! ESTABLISHED, receiving: in-order and out-of-order text, ACK timing, SACK blocks, the
//! out-of-order bound, segments outside the window, and the window we advertise.

use super::*;

#[test]
fn in_order_data_is_readable_and_ack_is_delayed() {
    let mut fx = Fx::new();
    fx.past_quick_acks();
    fx.send(TcpFlags::ACK | TcpFlags::PSH, b"hello").unwrap();
    assert_eq!(fx.events(), vec![Event::Readable(fx.h)]);
    assert_eq!(fx.readable(), b"hello");
    assert!(fx.out().is_empty(), "ACK delayed");
    assert_eq!(
        fx.ep.poll_timeout(),
        Some(fx.now + Duration::from_millis(40))
    );
    fx.fire_next();
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hdr.ack, fx.seq);
    assert!(out[0].payload.is_empty());
    fx.ep.consume(fx.h, 5);
    assert!(fx.readable().is_empty());
}

#[test]
fn rfc5681_ack_every_second_full_segment() {
    let mut fx = Fx::new();
    fx.past_quick_acks();
    let seg = vec![b'a'; 1448];
    fx.send(TcpFlags::ACK, &seg).unwrap();
    assert!(fx.out().is_empty());
    fx.send(TcpFlags::ACK, &seg).unwrap();
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hdr.ack, fx.seq);
}

#[test]
fn piggybacked_ack_on_response_data() {
    let mut fx = Fx::new();
    fx.send(TcpFlags::ACK | TcpFlags::PSH, b"GET /").unwrap();
    fx.app_send(b"HTTP/1.1 200 OK\r\n\r\n");
    let out = fx.out();
    assert_eq!(out.len(), 1, "one segment: data + ACK");
    assert_eq!(out[0].hdr.ack, fx.seq);
    assert_eq!(out[0].payload, b"HTTP/1.1 200 OK\r\n\r\n");
}

#[test]
fn out_of_order_data_gets_immediate_ack_with_sack_and_hole_fill_delivers_all() {
    let mut fx = Fx::new();
    let base = fx.seq;
    fx.seq = base + 5u32;
    fx.send(TcpFlags::ACK, b"world").unwrap();
    let out = fx.out();
    assert_eq!(out.len(), 1, "immediate duplicate ACK");
    assert_eq!(out[0].hdr.ack, base);
    assert_eq!(
        out[0].hdr.options.sack(),
        &[SackBlock {
            left: base + 5u32,
            right: base + 10u32
        }]
    );
    assert!(fx.readable().is_empty());
    assert_eq!(fx.ep.stats().out_of_order_segments, 1);
    fx.seq = base;
    fx.send(TcpFlags::ACK, b"hello").unwrap();
    assert_eq!(fx.readable(), b"helloworld");
    let out = fx.out();
    assert_eq!(out[0].hdr.ack, base + 10u32);
    assert_eq!(out[0].hdr.options.sack_len, 0);
}

#[test]
fn overlapping_segments_with_conflicting_bytes_first_copy_wins() {
    let mut fx = Fx::new();
    let base = fx.seq;
    // Out of order first: bytes 4..8 = "EFGH".
    fx.seq = base + 4u32;
    fx.send(TcpFlags::ACK, b"EFGH").unwrap();
    // Then 2..6 with conflicting bytes "xxxx": only 2..4 are new.
    fx.seq = base + 2u32;
    fx.send(TcpFlags::ACK, b"xxzz").unwrap();
    // Then 0..6 again conflicting.
    fx.seq = base;
    fx.send(TcpFlags::ACK, b"ABqqqq").unwrap();
    assert_eq!(fx.readable(), b"ABxxEFGH");
    // In-order data overlapping what was already received: old bytes are kept.
    fx.seq = base + 6u32;
    fx.send(TcpFlags::ACK, b"!!IJ").unwrap();
    assert_eq!(fx.readable(), b"ABxxEFGHIJ");
}

#[test]
fn rfc5681_out_of_order_fin_draws_immediate_duplicate_ack() {
    // RFC 5681 §4.2 / RFC 9293 §3.8.6.3: an out-of-order segment (here a FIN one octet
    // beyond RCV.NXT) is ACKed at once with RCV.NXT; the FIN waits for the hole.
    let mut fx = Fx::new();
    let base = fx.seq;
    fx.seq = base + 1u32;
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    let out = fx.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(!out[0].has(TcpFlags::FIN));
    assert_eq!(out[0].hdr.ack, base);
    assert!(fx
        .events()
        .iter()
        .all(|e| !matches!(e, Event::PeerClosed(_))));
    // The hole filled: FIN taken, ACKed past it.
    fx.seq = base;
    fx.send(TcpFlags::ACK, b"a").unwrap();
    let out = fx.out();
    assert_eq!(out.last().unwrap().hdr.ack, base + 2u32);
    assert!(fx
        .events()
        .iter()
        .any(|e| matches!(e, Event::PeerClosed(_))));
}

#[test]
fn out_of_order_beyond_bound_is_dropped_and_acked() {
    let cfg = TcpConfig {
        max_ooo_bytes: 1000,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let base = fx.seq;
    fx.seq = base + 10u32;
    assert_eq!(
        fx.send(TcpFlags::ACK, &[1u8; 1200]),
        Err(DropReason::OutOfOrderFull)
    );
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hdr.ack, base);
}

#[test]
fn rfc9293_out_of_window_segment_gets_ack_and_is_dropped() {
    let mut fx = Fx::new();
    let base = fx.seq;
    fx.seq = base + 10_000_000u32;
    assert_eq!(fx.send(TcpFlags::ACK, b"far"), Err(DropReason::OutOfWindow));
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hdr.ack, base);
    // Old duplicate: also ACKed.
    fx.seq = base;
    fx.send(TcpFlags::ACK, b"abc").unwrap();
    fx.seq = base;
    assert_eq!(fx.send(TcpFlags::ACK, b"abc"), Err(DropReason::OutOfWindow));
    let out = fx.out();
    assert_eq!(out.last().unwrap().hdr.ack, base + 3u32);
}

#[test]
fn window_full_advertises_zero_and_answers_zero_window_probe() {
    let cfg = TcpConfig {
        rx_buffer: 4096,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let ws = fx.server_ws;
    for _ in 0..4 {
        fx.send(TcpFlags::ACK, &[b'z'; 1024]).unwrap();
    }
    let out = fx.out();
    let last = out.last().unwrap();
    assert_eq!(last.hdr.window, 0, "buffer full: zero window (ws {ws})");
    assert_eq!(fx.readable().len(), 4096);
    // Peer's zero-window probe: one byte, not acceptable, answered with an ACK.
    assert_eq!(fx.send(TcpFlags::ACK, b"p"), Err(DropReason::OutOfWindow));
    fx.seq = fx.seq - 1u32;
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hdr.ack, fx.seq);
    assert_eq!(out[0].hdr.window, 0);
    // The application reads: a window update goes out.
    fx.ep.consume(fx.h, 4096);
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(u32::from(out[0].hdr.window) << ws >= 4096 - 127);
}

#[test]
fn rfc9293_right_window_edge_never_moves_left() {
    let cfg = TcpConfig {
        rx_buffer: 8192,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let ws = fx.server_ws;
    let mut right = fx.seq + 8192u32;
    for i in 0..20 {
        fx.send(TcpFlags::ACK, &[b'q'; 700]).unwrap_or(());
        if i % 3 == 0 {
            fx.ep.consume(fx.h, 500);
        }
        fx.advance(Duration::from_millis(50));
        for o in fx.out() {
            let edge = o.hdr.ack + (u32::from(o.hdr.window) << ws);
            assert!(edge.diff(right) >= 0, "edge moved left at {i}");
            right = edge;
        }
    }
}

#[test]
fn rfc9293_zero_receive_window_still_accepts_valid_acks() {
    let cfg = TcpConfig {
        rx_buffer: 4096,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    fx.app_send(b"response bytes");
    let out = fx.out();
    assert_eq!(out.len(), 1);
    for _ in 0..4 {
        fx.send(TcpFlags::ACK, &[b'z'; 1024]).unwrap();
    }
    assert_eq!(fx.out().last().unwrap().hdr.window, 0);
    // The peer sent past our window (and moved its SND.NXT), then ACKs our data: the segment
    // is not acceptable, but its ACK is.
    fx.seq = fx.seq + 500u32;
    fx.ack = out[0].hdr.seq + out[0].payload.len();
    assert_eq!(fx.send(TcpFlags::ACK, &[]), Err(DropReason::OutOfWindow));
    let (a, b) = fx.ep.send_space(fx.h);
    assert_eq!(a.len() + b.len(), 64 * 1024, "tx ring drained by the ACK");
}

#[test]
fn out_of_order_bound_evicts_far_ranges_for_data_nearer_rcv_nxt() {
    let cfg = TcpConfig {
        max_ooo_bytes: 3000,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let base = fx.seq;
    // Far out-of-order data fills the bound.
    fx.seq = base + 10_000u32;
    fx.send(TcpFlags::ACK, &[b'f'; 1400]).unwrap();
    fx.seq = base + 20_000u32;
    fx.send(TcpFlags::ACK, &[b'g'; 1400]).unwrap();
    // Data just above the hole at RCV.NXT displaces the furthest range.
    fx.seq = base + 100u32;
    fx.send(TcpFlags::ACK, &[b'n'; 1400]).unwrap();
    // The hole fills: 100 + 1400 bytes become readable.
    fx.seq = base;
    fx.send(TcpFlags::ACK, &[b'a'; 100]).unwrap();
    let r = fx.readable();
    assert_eq!(r.len(), 1500);
    assert!(r[..100].iter().all(|&b| b == b'a') && r[100..].iter().all(|&b| b == b'n'));
    // The nearer far range survived: filling up to it delivers it too.
    fx.seq = base + 1500u32;
    let mut left = 8_500usize;
    while left > 0 {
        let n = left.min(1400);
        let _ = fx.send(TcpFlags::ACK, &vec![b'm'; n]);
        left -= n;
    }
    assert_eq!(fx.readable().len(), 11_400);
}

/// Round trips of 80 ms in which the client sends all the window it was last told (in full
/// segments), the application reads everything, and the server's ACKs say the next window.
/// Returns the window announced after each round.
fn window_limited_rounds(fx: &mut Fx, rounds: usize) -> Vec<u32> {
    let ws = fx.server_ws;
    let seg = vec![b'u'; 1448];
    let mut window = 16 * 1024u32;
    (0..rounds)
        .map(|_| {
            fx.advance(Duration::from_millis(40));
            let mut sent = 0;
            while sent + 1448 <= window {
                fx.send(TcpFlags::ACK, &seg).unwrap();
                sent += 1448;
            }
            let n = fx.readable().len();
            fx.ep.consume(fx.h, n);
            for o in fx.out() {
                let edge = o.hdr.ack + (u32::from(o.hdr.window) << ws);
                window = edge.distance_from(fx.seq).unwrap_or(0);
            }
            fx.advance(Duration::from_millis(40));
            window
        })
        .collect()
}

#[test]
fn receive_ring_grows_while_the_peer_fills_the_window_every_round_trip() {
    // Linux's dynamic right-sizing: a peer that sends all the window allows each round trip
    // is held back by the window, so the ring (which bounds it) grows (`drs_window`), up to
    // rx_buffer_max.
    let cfg = TcpConfig {
        rx_buffer: 16 * 1024,
        rx_buffer_max: 256 * 1024,
        ..small_config()
    };
    let mut fx = Fx::with(cfg.clone(), ALL_OPTS);
    let windows = window_limited_rounds(&mut fx, 8);
    assert!(
        windows.iter().any(|&w| w >= 128 * 1024),
        "the window grew: {windows:?}"
    );
    assert!(windows.iter().all(|&w| w <= 256 * 1024), "{windows:?}");
    assert!(fx.ep.stats().recv_buffer_growths >= 2);

    // Without timestamps the round trip is the time a window of data takes to arrive.
    let no_ts = HsOpts {
        ts: false,
        ..ALL_OPTS
    };
    let mut fx = Fx::with(cfg.clone(), no_ts);
    let windows = window_limited_rounds(&mut fx, 10);
    assert!(
        windows.iter().any(|&w| w >= 128 * 1024),
        "without timestamps: {windows:?}"
    );

    // rx_buffer_max = rx_buffer: no growth, the window stays the ring's.
    let mut fx = Fx::with(
        TcpConfig {
            rx_buffer_max: 16 * 1024,
            ..cfg
        },
        ALL_OPTS,
    );
    let windows = window_limited_rounds(&mut fx, 8);
    assert!(windows.iter().all(|&w| w <= 16 * 1024), "{windows:?}");
    assert_eq!(fx.ep.stats().recv_buffer_growths, 0);
}

#[test]
fn receive_ring_grows_as_linuxs_for_a_sender_in_slow_start() {
    // Linux's window for a round's reading: twice it, 16 segments, and a slow-start term
    // (`drs_window`): a window-limited sender reaches a 1 MiB window in four round trips,
    // where twice the reading alone would be at 256 KiB.
    let cfg = TcpConfig {
        rx_buffer: 16 * 1024,
        rx_buffer_max: 4 * 1024 * 1024,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let windows = window_limited_rounds(&mut fx, 5);
    assert!(windows[4] >= 1024 * 1024, "{windows:?}");
}

#[test]
fn a_grown_receive_ring_holds_out_of_order_data_beyond_max_ooo_bytes() {
    // After one loss a sender's whole flight arrives beyond the hole; the window invited it,
    // so a grown ring must hold it (the bytes live in the ring), not drop what lies past
    // the configured out-of-order bound.
    let cfg = TcpConfig {
        rx_buffer: 16 * 1024,
        rx_buffer_max: 256 * 1024,
        max_ooo_bytes: 16 * 1024,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let windows = window_limited_rounds(&mut fx, 8);
    assert!(
        windows.last().is_some_and(|&w| w >= 64 * 1024),
        "{windows:?}"
    );
    // A lost segment, then 40 segments (58 KiB) beyond it.
    let hole = fx.seq;
    fx.seq = hole + 1448u32;
    for _ in 0..40 {
        fx.send(TcpFlags::ACK, &[b'o'; 1448]).unwrap();
    }
    let out = fx.out();
    let last = out.last().expect("duplicate ACKs");
    assert_eq!(last.hdr.ack, hole);
    let sacked_to = last.hdr.options.sack().first().map(|b| b.right);
    assert_eq!(sacked_to, Some(hole + 41 * 1448u32), "all of it held");
}

#[test]
fn rfc5681_4_2_a_starting_sender_gets_an_ack_for_each_of_its_first_sixteen_segments() {
    let mut fx = Fx::new();
    let seg = vec![b'a'; 1448];
    for n in 0..16 {
        fx.send(TcpFlags::ACK, &seg).unwrap();
        let out = fx.out();
        assert_eq!(out.len(), 1, "segment {n} ACKed at once");
        assert_eq!(out[0].hdr.ack, fx.seq);
    }
    fx.ep.consume(fx.h, 16 * 1448);
    fx.out();
    // The 17th meets the delayed ACK, the 18th the every-second-segment rule.
    fx.send(TcpFlags::ACK, &seg).unwrap();
    assert!(fx.out().is_empty(), "17th: delayed");
    fx.send(TcpFlags::ACK, &seg).unwrap();
    assert_eq!(fx.out().len(), 1, "18th: the second full segment");
}

#[test]
fn rfc5681_4_1_a_sender_back_from_a_silence_longer_than_the_rto_gets_quick_acks_again() {
    let mut fx = Fx::new();
    fx.past_quick_acks();
    fx.send(TcpFlags::ACK, b"x").unwrap();
    assert!(fx.out().is_empty(), "delayed");
    fx.fire_next();
    assert_eq!(fx.out().len(), 1, "the delayed ACK");
    fx.advance(Duration::from_secs(2));
    fx.send(TcpFlags::ACK, b"y").unwrap();
    assert_eq!(fx.out().len(), 1, "after 2 s of silence: at once");
}

impl Fx {
    /// A request answered at once, its ACK riding on the answer: the connection is
    /// interactive (`quick_ack.rs`).
    fn answered_request(&mut self) {
        self.send(TcpFlags::ACK | TcpFlags::PSH, b"GET /a").unwrap();
        self.app_send(b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(self.out_and_ack().len(), 1);
        self.ep.consume(self.h, 6);
    }
}

#[test]
fn an_interactive_connection_back_from_a_silence_waits_to_ack_with_its_answer() {
    let mut fx = Fx::new();
    fx.answered_request();
    fx.send(TcpFlags::ACK, &[]).unwrap();
    // A proxied request after an idle pause: no bare ACK before its answer (Linux's
    // pingpong mode), however long the pause.
    fx.advance(Duration::from_secs(2));
    fx.send(TcpFlags::ACK | TcpFlags::PSH, b"GET /b").unwrap();
    assert!(fx.out().is_empty(), "the ACK waits for the answer");
    fx.advance(Duration::from_millis(5));
    fx.app_send(b"HTTP/1.1 200 OK\r\n\r\n");
    let out = fx.out();
    assert_eq!(out.len(), 1, "the answer carries the ACK");
    assert_eq!(out[0].hdr.ack, fx.seq);
}

#[test]
fn a_resent_segment_on_an_interactive_connection_brings_quick_acks_back() {
    let mut fx = Fx::new();
    fx.answered_request();
    // An upload on the same keep-alive connection; its first segment is sent twice (our ACK
    // was lost): the duplicate is ACKed at once and so is what follows.
    let seg = vec![b'u'; 1448];
    fx.send(TcpFlags::ACK, &seg).unwrap();
    assert!(fx.out().is_empty(), "interactive: delayed");
    fx.seq = fx.seq - 1448u32;
    assert_eq!(
        fx.send(TcpFlags::ACK, &seg),
        Err(DropReason::OutOfWindow),
        "all of it old"
    );
    assert_eq!(fx.out().len(), 1, "the duplicate: at once");
    fx.send(TcpFlags::ACK, &seg).unwrap();
    assert_eq!(fx.out().len(), 1, "the next: a quick ACK");
}

#[test]
fn a_window_update_timer_leaves_the_connection_interactive() {
    let mut fx = Fx::new();
    fx.answered_request();
    // Only the delayed-ACK timer for data nothing answered ends interactive mode; any other
    // firing of it (a window update, due once the peer filled over half the ring and the
    // application read it all) must not.
    let seg = vec![b'u'; 1448];
    for _ in 0..24 {
        fx.send(TcpFlags::ACK, &seg).unwrap();
        fx.out();
    }
    assert_eq!(fx.ep.poll_timeout().map(|t| t > fx.now), Some(true));
    fx.ep.consume(fx.h, 24 * 1448);
    assert!(fx.out().is_empty(), "the update is not urgent");
    let at = fx.ep.poll_timeout().expect("the window update's timer");
    assert_eq!(at, fx.now + Duration::from_millis(40));
    while fx
        .ep
        .poll_timeout()
        .is_some_and(|t| t <= fx.now + Duration::from_millis(40))
    {
        fx.fire_next();
        fx.out();
    }
    fx.advance(Duration::from_secs(2));
    fx.send(TcpFlags::ACK | TcpFlags::PSH, b"GET /b").unwrap();
    assert!(
        fx.out().is_empty(),
        "still interactive: the ACK waits for the answer"
    );
}
