//! ESTABLISHED, sending: segment sizes, the initial window, the peer's window, sender SWS
//! avoidance, zero-window probes, and the Writable event.

use super::*;

/// A connection whose peer offers timestamps and SACK but no window scale: its window field
/// is the window, in bytes.
fn unscaled() -> Fx {
    Fx::with(
        small_config(),
        HsOpts {
            ts: true,
            ws: false,
            sack: true,
        },
    )
}

#[test]
fn send_segments_to_mss_minus_options_and_frees_tx_on_ack() {
    let mut fx = Fx::new();
    let data = vec![b'd'; 5000];
    assert_eq!(fx.app_send(&data), 5000);
    let out = fx.out_and_ack();
    let sizes: Vec<usize> = out.iter().map(|o| o.payload.len()).collect();
    // min(1460, 1460) - 12 bytes of timestamps = 1448.
    assert_eq!(sizes, vec![1448, 1448, 1448, 656]);
    // RFC 9293 §3.9.1.2: PSH on the segment that empties the queue, not on the others.
    let pushed: Vec<bool> = out.iter().map(|o| o.has(TcpFlags::PSH)).collect();
    assert_eq!(pushed, [false, false, false, true]);
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let (a, b) = fx.ep.send_space(fx.h);
    assert_eq!(a.len() + b.len(), 64 * 1024);
    assert_eq!(
        fx.ep.poll_timeout(),
        Some(fx.now + TcpConfig::default().idle_timeout)
    );
}

#[test]
fn rfc9293_s3_9_1_2_psh_on_the_last_queued_segment_and_once_per_half_window() {
    let mut fx = unscaled();
    // The peer's window is 65535 (unscaled): a stream that never runs dry is pushed once
    // every 32767 bytes, as Linux's `forced_push` does, and the segment that empties what
    // was queued is pushed.
    let data = vec![b'd'; 60_000];
    assert_eq!(fx.app_send(&data), 60_000);
    let mut pushed_ends = Vec::new();
    let first = fx.ack;
    for _ in 0..20 {
        let out = fx.out_and_ack();
        if out.is_empty() {
            break;
        }
        for o in out.iter().filter(|o| o.has(TcpFlags::PSH)) {
            pushed_ends.push((o.hdr.seq + o.payload.len()).distance_from(first).unwrap());
        }
        fx.send(TcpFlags::ACK, &[]).unwrap();
    }
    assert_eq!(fx.ack.distance_from(first), Some(60_000), "all sent");
    // 23 segments of 1448 bytes are the first past 32767; the last ends the data.
    assert_eq!(pushed_ends, [23 * 1448, 60_000]);
}

#[test]
fn rfc6928_initial_window_limits_first_flight() {
    let mut fx = Fx::new();
    fx.app_send(&vec![1u8; 60_000]);
    let out = fx.out();
    let bytes: usize = out.iter().map(|o| o.payload.len()).sum();
    assert_eq!(
        bytes,
        10 * 1448,
        "IW10: 14600 bytes of cwnd, in full segments"
    );
}

#[test]
fn respects_peer_window() {
    let mut fx = unscaled();
    fx.window = 3000;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    fx.app_send(&vec![1u8; 10_000]);
    let out = fx.out();
    let bytes: usize = out.iter().map(|o| o.payload.len()).sum();
    // Two full segments fit; the 104 bytes left of the window would be a silly segment.
    assert_eq!(bytes, 2 * 1448);
}

#[test]
fn rfc9293_sender_sws_avoidance_waits_for_a_useful_window() {
    let mut fx = unscaled();
    // Peer offered 65535 earlier; now only 100 bytes are free.
    fx.window = 100;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    fx.app_send(&vec![1u8; 5000]);
    assert!(fx.out().is_empty(), "no silly-window segment");
    // The override (persist) timer eventually sends what fits.
    fx.fire_next();
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload.len(), 100);
}

#[test]
fn zero_window_persist_probe_with_backoff() {
    let mut fx = Fx::new();
    fx.window = 0;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    fx.app_send(b"response");
    assert!(fx.out().is_empty());
    let t1 = fx.fire_next();
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload, b"r", "one octet probe");
    let probe_seq = out[0].hdr.seq;
    // Peer answers: still zero window, probe not accepted.
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let t2 = fx.fire_next();
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hdr.seq, probe_seq);
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let t3 = fx.fire_next();
    assert!(t3 - t2 > t2 - t1, "backoff");
    fx.out();
    assert!(fx.ep.stats().zero_window_probes >= 3);
    // Many more probes: the connection survives while the peer answers.
    for _ in 0..12 {
        fx.send(TcpFlags::ACK, &[]).unwrap();
        fx.fire_next();
        fx.out();
    }
    assert_eq!(fx.ep.connection_count(), 1);
    // Window opens: everything goes.
    fx.window = 65535;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let out = fx.out();
    let all: Vec<u8> = out.iter().flat_map(|o| o.payload.clone()).collect();
    assert_eq!(all, b"response");
}

#[test]
fn writable_event_after_tx_space_was_low() {
    let mut fx = Fx::new();
    let n = fx.app_send(&vec![3u8; 60 * 1024]);
    assert_eq!(n, 60 * 1024);
    assert!(!fx.events().contains(&Event::Writable(fx.h)));
    // ACK everything in flight, repeatedly, until the ring drains.
    for _ in 0..100 {
        fx.out_and_ack();
        fx.send(TcpFlags::ACK, &[]).unwrap();
    }
    let ev = fx.events();
    assert_eq!(
        ev.iter().filter(|e| **e == Event::Writable(fx.h)).count(),
        1,
        "{ev:?}"
    );
    let (a, b) = fx.ep.send_space(fx.h);
    assert_eq!(a.len() + b.len(), 64 * 1024);
}

#[test]
fn rfc9438_5_8_a_batch_of_acks_finds_the_window_in_use() {
    // The client ACKs each segment of the initial window, and the ten ACKs arrive together:
    // the poller hands them over before it transmits. Each finds less in flight than the one
    // before, yet the window was in use all along (the round's peak flight shows it): slow
    // start grows cwnd by one segment for each, and the next flight is twice the first, as
    // Linux sends. Measured from the flight before each ACK, growth stopped at the third.
    let cfg = TcpConfig {
        tx_buffer: 256 * 1024,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    fx.app_send(&vec![7u8; 200_000]);
    let first = fx.out();
    assert_eq!(first.len(), 10, "IW10");
    for o in &first {
        fx.ack = o.hdr.seq + o.payload.len();
        fx.send(TcpFlags::ACK, &[]).unwrap();
    }
    let second = fx.out();
    assert_eq!(second.len(), 20, "slow start doubles the window in a round");
}

/// Rounds of: the application fills what the send ring has free, the server sends what its
/// windows allow, the client ACKs each segment. Returns the bytes sent in each round.
fn fill_and_ack_rounds(fx: &mut Fx, rounds: usize) -> Vec<usize> {
    let chunk = vec![b's'; 64 * 1024];
    (0..rounds)
        .map(|_| {
            while fx.app_send(&chunk) > 0 {}
            let out = fx.out();
            for o in &out {
                fx.ack = o.hdr.seq + o.payload.len();
                fx.send(TcpFlags::ACK, &[]).unwrap();
            }
            out.iter().map(|o| o.payload.len()).sum()
        })
        .collect()
}

#[test]
fn send_ring_grows_to_twice_the_window_while_the_application_keeps_it_full() {
    // A 16 KiB ring caps every flight at 16 KiB, however large cwnd grows; Linux sizes a
    // send buffer at twice the window (tcp_sndbuf_expand). Here the ring grows while the
    // application keeps it full, up to tx_buffer_max, and the flight follows cwnd.
    let cfg = TcpConfig {
        tx_buffer: 16 * 1024,
        tx_buffer_max: 256 * 1024,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let sent = fill_and_ack_rounds(&mut fx, 8);
    let stats = fx.ep.stats().clone();
    assert!(stats.send_buffer_growths >= 2, "{stats:?}");
    assert!(
        sent.iter().any(|&n| n > 64 * 1024),
        "flights beyond the first ring: {sent:?}"
    );
    let (a, b) = fx.ep.send_space(fx.h);
    assert!(a.len() + b.len() <= 256 * 1024, "never past tx_buffer_max");
    assert_eq!(stats.buffer_grown_bytes, 256 * 1024 - 16 * 1024);

    // Closing frees the slot: the growth goes back to the budget.
    fx.ep.abort(fx.h);
    let _ = fx.out();
    assert_eq!(fx.ep.stats().buffer_grown_bytes, 0);
}

#[test]
fn send_ring_does_not_grow_past_the_budget_or_for_an_application_that_does_not_fill_it() {
    // No budget: the ring keeps its size, the refusal is counted once, and the flight stays
    // within the ring.
    let cfg = TcpConfig {
        tx_buffer: 16 * 1024,
        tx_buffer_max: 256 * 1024,
        buffer_budget: 0,
        ..small_config()
    };
    let mut fx = Fx::with(cfg.clone(), ALL_OPTS);
    let sent = fill_and_ack_rounds(&mut fx, 8);
    assert!(sent.iter().all(|&n| n <= 16 * 1024), "{sent:?}");
    assert_eq!(fx.ep.stats().send_buffer_growths, 0);
    assert_eq!(fx.ep.stats().buffer_refusals, 1);

    // A budget, but an application that sends a little at a time: nothing to grow for.
    let cfg = TcpConfig {
        buffer_budget: 1 << 30,
        ..cfg
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    for _ in 0..20 {
        fx.app_send(&[b'x'; 4000]);
        for o in fx.out() {
            fx.ack = o.hdr.seq + o.payload.len();
            fx.send(TcpFlags::ACK, &[]).unwrap();
        }
    }
    assert_eq!(fx.ep.stats().send_buffer_growths, 0);
}
