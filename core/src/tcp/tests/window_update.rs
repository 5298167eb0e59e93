//! The window after the handshake (SYN-ACK window capped at 16 segments, see `syn_window`)
//! and the window updates the application's reads make due.

use super::*;

/// `small_config` with the default receive ring, so the SYN-ACK window (16 segments) is well
/// under half the buffer and the full window has to be announced after the handshake.
fn full_rx_config() -> TcpConfig {
    TcpConfig {
        rx_buffer: TcpConfig::default().rx_buffer,
        ..small_config()
    }
}

/// What the engine does on `Established`: serve the connection, which consumes and commits
/// nothing when the handshake ACK carried no data.
fn engine_serves_empty(fx: &mut Fx) {
    fx.ep.stream_done(fx.h, 0, 0);
}

/// The engine's one pass: the request read through `stream`, the answer written into the
/// same borrow, both counts handed back in one call.
#[test]
fn stream_done_consumes_the_request_and_queues_the_response_in_one_call() {
    let mut fx = Fx::new();
    let request = b"GET / HTTP/1.1\r\n\r\n";
    let response = b"HTTP/1.1 200 OK\r\n\r\n";
    fx.send(TcpFlags::ACK | TcpFlags::PSH, request).unwrap();
    let io = fx.ep.stream(fx.h).expect("a live connection");
    assert_eq!(io.recv.0, request);
    io.send.0[..response.len()].copy_from_slice(response);
    fx.ep.stream_done(fx.h, request.len(), response.len());
    assert!(fx.readable().is_empty(), "the request was consumed");
    let out = fx.out();
    assert_eq!(out.len(), 1, "one segment: {out:?}");
    assert_eq!(out[0].payload, response);
    assert_eq!(out[0].hdr.ack, fx.seq, "it acknowledges the request");
}

#[test]
fn rfc9293_window_update_after_the_handshake_rides_on_the_first_response() {
    let cfg = full_rx_config();
    let syn_wnd = u32::from(cfg.syn_window());
    let rx = cfg.rx_buffer as u32;
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let ws = fx.server_ws;
    engine_serves_empty(&mut fx);
    assert!(
        fx.out().is_empty(),
        "no standalone window update after the handshake ACK"
    );
    // The request, then the response: one segment with data, the ACK and the full window.
    fx.send(TcpFlags::ACK | TcpFlags::PSH, b"GET / HTTP/1.1\r\n\r\n")
        .unwrap();
    let n = fx.readable().len();
    fx.ep.consume(fx.h, n);
    fx.app_send(b"HTTP/1.1 200 OK\r\n\r\n");
    let out = fx.out();
    assert_eq!(out.len(), 1, "one segment: {out:?}");
    assert_eq!(out[0].payload, b"HTTP/1.1 200 OK\r\n\r\n");
    assert!(out[0].has(TcpFlags::ACK));
    assert_eq!(out[0].hdr.ack, fx.seq);
    let wnd = u32::from(out[0].hdr.window) << ws;
    assert!(wnd > syn_wnd, "the full window is announced ({wnd})");
    assert!(wnd + (1 << ws) > rx, "the full window is announced ({wnd})");
    // Nothing else is due: the next deadline is the response's retransmission timer.
    assert_eq!(
        fx.ep.poll_timeout(),
        Some(fx.now + TcpConfig::default().initial_rto)
    );
}

#[test]
fn rfc1122_window_update_after_the_handshake_is_sent_within_the_delayed_ack_time() {
    // A client that connects and then says nothing still learns the full window, one
    // delayed-ACK time later (RFC 1122 §4.2.3.2: under 0.5 s).
    let cfg = full_rx_config();
    let syn_wnd = u32::from(cfg.syn_window());
    let delay = cfg.delayed_ack;
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let ws = fx.server_ws;
    engine_serves_empty(&mut fx);
    assert!(fx.out().is_empty());
    assert_eq!(fx.fire_next(), t0() + delay);
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(out[0].payload.is_empty());
    assert!(u32::from(out[0].hdr.window) << ws > syn_wnd);
}

#[test]
fn rfc9293_receiver_sws_client_streaming_past_the_syn_window_is_not_stalled() {
    // A client with more than the SYN-ACK window to send (a large request body) sends what the
    // window it knows allows, in bursts of up to the whole window (the endpoint sees a burst
    // before it transmits, as from one receive batch), then reads the replies. The server
    // application reads everything at once. It must never be blocked: no timer may be needed.
    for burst in [1usize, 2, 3, 16, 64] {
        let cfg = full_rx_config();
        let mut fx = Fx::with(cfg.clone(), ALL_OPTS);
        let ws = fx.server_ws;
        engine_serves_empty(&mut fx);
        let total = 64 * 1448;
        let mut right = fx.seq + u32::from(cfg.syn_window());
        let (mut sent, mut received) = (0usize, 0usize);
        while sent < total {
            let mut n = 0;
            while n < burst && sent < total {
                let len = (total - sent).min(1448);
                if (fx.seq + len).diff(right) > 0 {
                    break;
                }
                fx.send(TcpFlags::ACK, &[b'u'; 1448][..len]).unwrap();
                sent += len;
                n += 1;
            }
            assert!(n > 0, "burst {burst}: client blocked after {sent} bytes");
            let readable = fx.readable().len();
            received += readable;
            fx.ep.consume(fx.h, readable);
            for o in fx.out() {
                let edge = o.hdr.ack + (u32::from(o.hdr.window) << ws);
                if edge.diff(right) > 0 {
                    right = edge;
                }
            }
        }
        assert_eq!(received, total);
        assert_eq!(fx.now, t0(), "no timer was needed");
    }
}

#[test]
fn rfc9293_window_update_after_consume_is_immediate_when_the_window_is_nearly_closed() {
    // Under two full segments of window left, the peer may be blocked: the update goes at once.
    let cfg = TcpConfig {
        rx_buffer: 8 * 1448,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let ws = fx.server_ws;
    for _ in 0..7 {
        fx.send(TcpFlags::ACK, &[b'w'; 1448]).unwrap();
    }
    let out = fx.out();
    let last = out.last().unwrap();
    let left = u32::from(last.hdr.window) << ws;
    assert!(left < 2 * 1448, "{left}");
    fx.ep.consume(fx.h, 7 * 1448);
    let out = fx.out();
    assert_eq!(out.len(), 1, "immediate window update");
    assert!(out[0].payload.is_empty());
    assert!(u32::from(out[0].hdr.window) << ws >= 7 * 1448);
}
