//! Close paths: passive, active and simultaneous close, FIN retransmission, abort, the
//! FIN_WAIT_2 bound, and what a whole connection-per-request exchange costs.

use super::*;

#[test]
fn passive_close_close_wait_last_ack_closed() {
    let mut fx = Fx::new();
    fx.send(TcpFlags::ACK | TcpFlags::FIN, b"bye").unwrap();
    let ev = fx.events();
    assert!(ev.contains(&Event::PeerClosed(fx.h)));
    let out = fx.out();
    assert_eq!(out.len(), 1, "FIN is ACKed at once");
    assert_eq!(out[0].hdr.ack, fx.seq);
    assert_eq!(
        fx.ep.conn_for_test(fx.h).unwrap().state,
        conn::State::CloseWait
    );
    fx.app_send(b"last words");
    fx.ep.close(fx.h);
    assert_eq!(
        fx.ep.conn_for_test(fx.h).unwrap().state,
        conn::State::LastAck
    );
    let out = fx.out_and_ack();
    assert_eq!(out.len(), 1);
    assert!(out[0].has(TcpFlags::FIN));
    assert_eq!(out[0].payload, b"last words");
    fx.send(TcpFlags::ACK, &[]).unwrap();
    assert_eq!(closed_count(&fx.events()), 1);
    fx.assert_all_gone();
}

#[test]
fn last_ack_fin_retransmitted_until_acked() {
    let mut fx = Fx::new();
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    fx.out();
    fx.ep.close(fx.h);
    let fin = fx.out();
    assert!(fin[0].has(TcpFlags::FIN));
    fx.fire_next();
    let again = fx.out();
    assert!(again[0].has(TcpFlags::FIN));
    assert_eq!(again[0].hdr.seq, fin[0].hdr.seq);
    fx.ack = fin[0].hdr.seq + 1u32;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    fx.assert_all_gone();
}

#[test]
fn active_close_fin_wait_time_wait_and_expiry_frees_everything() {
    let mut fx = Fx::new();
    fx.app_send(b"response");
    fx.ep.close(fx.h);
    assert_eq!(
        fx.ep.conn_for_test(fx.h).unwrap().state,
        conn::State::FinWait1
    );
    let out = fx.out_and_ack();
    assert!(out.last().unwrap().has(TcpFlags::FIN));
    fx.send(TcpFlags::ACK, &[]).unwrap();
    assert_eq!(
        fx.ep.conn_for_test(fx.h).unwrap().state,
        conn::State::FinWait2
    );
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hdr.ack, fx.seq, "FIN ACKed");
    let ev = fx.events();
    assert!(ev.contains(&Event::PeerClosed(fx.h)));
    assert_eq!(closed_count(&ev), 1);
    assert_eq!(fx.ep.connection_count(), 0);
    assert_eq!(fx.ep.time_wait_count(), 1);
    // TIME_WAIT re-ACKs a retransmitted FIN.
    fx.seq = fx.seq - 1u32;
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hdr.ack, fx.seq);
    // A pure ACK gets nothing.
    let _ = fx.send(TcpFlags::ACK, &[]);
    assert!(fx.out().is_empty());
    // Expiry.
    fx.advance(Duration::from_secs(61));
    fx.assert_all_gone();
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let mut fx = Fx::new();
    fx.ep.close(fx.h);
    let fin = fx.out();
    assert!(fin[0].has(TcpFlags::FIN));
    // Peer's FIN crosses ours: it does not ACK our FIN.
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    assert_eq!(
        fx.ep.conn_for_test(fx.h).unwrap().state,
        conn::State::Closing
    );
    let out = fx.out();
    assert_eq!(out[0].hdr.ack, fx.seq);
    fx.ack = fin[0].hdr.seq + 1u32;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    assert_eq!(fx.ep.connection_count(), 0);
    assert_eq!(fx.ep.time_wait_count(), 1);
    // RFC 9293 (CLOSING): the ACK of our FIN only moves us to TIME_WAIT; the peer's FIN was
    // ACKed above, and an ACK of an ACK is never sent.
    assert!(fx.out().is_empty());
    assert_eq!(closed_count(&fx.events()), 1);
    fx.advance(Duration::from_secs(61));
    fx.assert_all_gone();
}

#[test]
fn fin_wait_1_fin_acking_our_fin_goes_to_time_wait() {
    let mut fx = Fx::new();
    fx.ep.close(fx.h);
    fx.out_and_ack();
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    assert_eq!(fx.ep.time_wait_count(), 1);
    assert_eq!(fx.out().len(), 1);
}

#[test]
fn fin_wait_2_timeout_frees_connection() {
    let mut fx = Fx::new();
    fx.ep.close(fx.h);
    fx.out_and_ack();
    fx.send(TcpFlags::ACK, &[]).unwrap();
    fx.advance(Duration::from_secs(61));
    assert_eq!(closed_count(&fx.events()), 1);
    fx.assert_all_gone();
}

#[test]
fn out_of_order_fin_is_processed_when_the_hole_fills() {
    let mut fx = Fx::new();
    let base = fx.seq;
    fx.seq = base + 3u32;
    fx.send(TcpFlags::ACK | TcpFlags::FIN, b"def").unwrap();
    assert!(!fx.events().contains(&Event::PeerClosed(fx.h)));
    fx.seq = base;
    fx.send(TcpFlags::ACK, b"abc").unwrap();
    assert!(fx.events().contains(&Event::PeerClosed(fx.h)));
    assert_eq!(fx.readable(), b"abcdef");
    let out = fx.out();
    assert_eq!(out.last().unwrap().hdr.ack, base + 7u32);
}

#[test]
fn abort_sends_rst_and_closed_once() {
    let mut fx = Fx::new();
    fx.ep.abort(fx.h);
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(out[0].has(TcpFlags::RST));
    assert_eq!(out[0].hdr.seq, fx.ack);
    assert_eq!(closed_count(&fx.events()), 1);
    fx.ep.abort(fx.h);
    assert!(fx.out().is_empty());
    assert_eq!(closed_count(&fx.events()), 0);
    fx.assert_all_gone();
}

#[test]
fn send_after_close_is_refused_and_fin_follows_queued_data() {
    let mut fx = Fx::new();
    fx.app_send(b"abc");
    fx.ep.close(fx.h);
    assert_eq!(fx.app_send(b"more"), 0);
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload, b"abc");
    assert!(out[0].has(TcpFlags::FIN));
}

/// Frames per connection of a connection-per-request client (handshake, one `Connection:
/// close` request, the server's response and FIN, the client's FIN), through the whole engine.
#[test]
fn rfc9293_connection_per_request_costs_seven_frames() {
    use crate::app::{App, AppConfig};
    use crate::engine::{Engine, EngineConfig};
    use crate::testkit::ScriptedClient;

    let mut now = t0();
    let config = EngineConfig {
        tcp: small_config(),
        ..EngineConfig::default()
    };
    let app = App::new(&AppConfig::default()).unwrap();
    let mut engine = Engine::new(config, app, SECRET, now);
    let (mut buf, mut out) = (Vec::new(), vec![0u8; 2048]);
    let mut pump = |engine: &mut Engine, client: &mut ScriptedClient, now: Instant| {
        let mut frames = Vec::new();
        while let Some(n) = engine.poll_transmit(now, &mut out) {
            client.receive(&out[..n], None);
            let f = wire::parse_tcp_frame(&out[..n]).unwrap();
            frames.push((f.tcp.flags, f.tcp.window, f.payload.len()));
        }
        while engine.poll_flow_event().is_some() {}
        frames
    };
    for i in 0..4u32 {
        let mut client = ScriptedClient::new(5000 + i as u16, 80, 1 << 20 | i);
        let n = client.syn(&mut buf, true);
        engine.handle_frame(now, &buf[..n]).unwrap();
        let s = pump(&mut engine, &mut client, now);
        assert_eq!(s.len(), 1, "SYN-ACK");
        let mut frames = 1 + s.len();
        let n = client.send(&mut buf, &[]);
        engine.handle_frame(now, &buf[..n]).unwrap();
        let s = pump(&mut engine, &mut client, now);
        assert!(s.is_empty(), "nothing answers the handshake ACK: {s:?}");
        frames += 1 + s.len();
        let n = client.send(
            &mut buf,
            b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        engine.handle_frame(now, &buf[..n]).unwrap();
        let s = pump(&mut engine, &mut client, now);
        assert_eq!(s.len(), 1, "response, ACK and FIN in one segment: {s:?}");
        assert!(s[0].0.contains(TcpFlags::FIN) && s[0].2 > 0);
        frames += 1 + s.len();
        assert!(client.server_fin);
        let n = client.fin(&mut buf);
        engine.handle_frame(now, &buf[..n]).unwrap();
        let s = pump(&mut engine, &mut client, now);
        assert_eq!(s.len(), 1, "the last ACK");
        frames += 1 + s.len();
        assert_eq!(frames, 7, "frames per connection, both directions");
        assert_eq!(engine.connection_count(), 0);
        now += Duration::from_millis(1);
    }
}

#[test]
fn rfc9293_stale_ack_after_passive_close_gets_rst_not_a_new_connection() {
    // A duplicated or reordered pure ACK of a connection that has closed (LAST_ACK -> CLOSED,
    // so no TIME_WAIT record) reaches the stateless front while the cookie is still valid. Its
    // sequence number is not ISN + 1, and the SYN hint must no longer vouch for it: LISTEN
    // answers an ACK with <SEQ=SEG.ACK><CTL=RST> (§3.10.7.2), no connection is created.
    let mut fx = Fx::new();
    let first_ack = fx.ack;
    fx.send(TcpFlags::ACK | TcpFlags::PSH, &[b'r'; 300])
        .unwrap();
    let stale = fx.hdr(TcpFlags::ACK);
    let mut stale = TcpHeader {
        ack: first_ack,
        ..stale
    };
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    fx.app_send(b"response");
    fx.ep.close(fx.h);
    let out = fx.out_and_ack();
    assert!(out.iter().any(|o| o.has(TcpFlags::FIN)));
    fx.send(TcpFlags::ACK, &[]).unwrap();
    assert_eq!(closed_count(&fx.events()), 1);
    fx.assert_all_gone();
    // The stale ACK (and the same with data, as a retransmission would be).
    fx.advance(Duration::from_millis(1));
    assert_eq!(fx.send_hdr(&stale, &[]), Err(DropReason::BadCookie));
    stale.options.timestamps = stale.options.timestamps.map(|(v, e)| (v + 1, e));
    let _ = fx.send_hdr(&stale, &[b'r'; 100]);
    assert_eq!(fx.ep.connection_count(), 0, "no phantom connection");
    assert!(fx.events().is_empty());
    let out = fx.out();
    assert!(out[0].has(TcpFlags::RST));
    assert_eq!(out[0].hdr.seq, first_ack);
    fx.assert_all_gone();
}
