//! ECN (RFC 3168) through the endpoint: the handshake that negotiates it (SYN cache) or
//! declines it (cookie, configuration), and both halves on a connection.

use super::*;
use crate::wire::Ecn;

const ECN_SETUP: TcpFlags =
    TcpFlags::from_bits(TcpFlags::SYN.bits() | TcpFlags::ECE.bits() | TcpFlags::CWR.bits());

/// The SYN-ACK `cfg` answers a SYN carrying `flags` with.
fn syn_ack_to(cfg: TcpConfig, flags: TcpFlags) -> Out {
    let now = t0();
    let mut ep = Endpoint::new(cfg, SECRET, now);
    let mut h = syn(&ALL_OPTS, CLIENT_ISN);
    h.flags = flags;
    ep.handle_frame(now, &frame(&h, &[])).unwrap();
    let mut out = drain(&mut ep, now);
    assert_eq!(out.len(), 1);
    out.remove(0)
}

/// A client frame with the IP ECN field set.
fn frame_ecn(h: &TcpHeader, payload: &[u8], ecn: Ecn) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n = wire::emit_tcp_frame_ecn(&mut buf, &client_addrs(None), 1, 64, ecn, h, [payload, &[]])
        .unwrap();
    buf.truncate(n);
    buf
}

/// A connection whose handshake asked for ECN (the fixture's, with ECE|CWR on the SYN), and
/// whether it got it.
fn ecn_fx(cfg: TcpConfig) -> (Fx, bool) {
    let mut h = syn(&ALL_OPTS, CLIENT_ISN);
    h.flags = ECN_SETUP;
    let fx = Fx::with_syn(cfg, &h, true);
    let negotiated = fx.ep.stats().ecn_negotiated == 1;
    (fx, negotiated)
}

#[test]
fn rfc3168_s6_1_1_an_ecn_setup_syn_gets_an_ecn_setup_syn_ack_that_is_not_ect() {
    let sa = syn_ack_to(small_config(), ECN_SETUP);
    assert!(sa.has(TcpFlags::SYN | TcpFlags::ACK | TcpFlags::ECE));
    assert!(!sa.has(TcpFlags::CWR), "ECE alone");
    assert_eq!(sa.ecn, Ecn::NotEct, "a SYN-ACK is never ECT");
}

#[test]
fn rfc3168_s6_1_1_only_ece_and_cwr_together_ask_for_ecn() {
    for flags in [
        TcpFlags::SYN,
        TcpFlags::SYN | TcpFlags::ECE,
        TcpFlags::SYN | TcpFlags::CWR,
    ] {
        let sa = syn_ack_to(small_config(), flags);
        assert!(!sa.has(TcpFlags::ECE), "{flags:?}");
    }
}

#[test]
fn ecn_is_declined_by_a_cookie_and_by_configuration() {
    assert!(!syn_ack_to(cookie_only_config(), ECN_SETUP).has(TcpFlags::ECE));
    let off = TcpConfig {
        ecn: false,
        ..small_config()
    };
    assert!(!syn_ack_to(off, ECN_SETUP).has(TcpFlags::ECE));
    // And the connection a cookie made never marks its data.
    let (mut fx, negotiated) = ecn_fx(cookie_only_config());
    assert!(!negotiated);
    fx.app_send(&[7; 3000]);
    assert!(fx.out().iter().all(|o| o.ecn == Ecn::NotEct));
    assert_eq!(fx.ep.stats().ecn_negotiated, 0);
}

#[test]
fn rfc3168_s6_1_new_data_is_ect0_acks_and_retransmissions_are_not() {
    let (mut fx, negotiated) = ecn_fx(small_config());
    assert!(negotiated);
    assert_eq!(fx.ep.stats().ecn_negotiated, 1);
    fx.app_send(&[7; 3000]);
    let out = fx.out();
    assert!(out.len() >= 2);
    assert!(out.iter().all(|o| o.ecn == Ecn::Ect0), "§6.1.1 new data");
    // A pure ACK of the client's data (§6.1.4).
    fx.send(TcpFlags::ACK, b"GET / HTTP/1.1\r\n\r\n").unwrap();
    fx.advance(Duration::from_secs(1));
    let out = fx.out();
    let retrans: Vec<_> = out.iter().filter(|o| !o.payload.is_empty()).collect();
    assert!(
        !retrans.is_empty(),
        "the RTO resent the unacknowledged data"
    );
    assert!(
        retrans.iter().all(|o| o.ecn == Ecn::NotEct),
        "§6.1.5: retransmissions are Not-ECT"
    );
    let (mut fx, _) = ecn_fx(small_config());
    fx.send(TcpFlags::ACK, b"GET / HTTP/1.1\r\n\r\n").unwrap();
    fx.advance(Duration::from_secs(1));
    let acks = fx.out();
    assert!(!acks.is_empty() && acks.iter().all(|o| o.payload.is_empty()));
    assert!(
        acks.iter().all(|o| o.ecn == Ecn::NotEct),
        "§6.1.4: pure ACKs"
    );
}

#[test]
fn rfc3168_s6_1_3_a_ce_mark_is_acked_at_once_and_echoed_until_cwr() {
    let (mut fx, _) = ecn_fx(small_config());
    let h = fx.hdr(TcpFlags::ACK);
    fx.seq = fx.seq + 10usize;
    fx.ep
        .handle_frame(fx.now, &frame_ecn(&h, &[1; 10], Ecn::Ce))
        .unwrap();
    let out = fx.out();
    assert_eq!(
        out.len(),
        1,
        "ACKed at once, not after the delayed-ACK timer"
    );
    assert!(out[0].has(TcpFlags::ECE));
    assert_eq!(fx.ep.stats().ecn_ce_received, 1);
    // Unmarked data: the echo goes on.
    fx.send(TcpFlags::ACK, &[2; 10]).unwrap();
    fx.send(TcpFlags::ACK, &[3; 10]).unwrap();
    fx.advance(Duration::from_secs(1));
    let out = fx.out();
    assert!(!out.is_empty() && out.iter().all(|o| o.has(TcpFlags::ECE)));
    // The sender's CWR ends it.
    fx.send(TcpFlags::ACK | TcpFlags::CWR, &[4; 10]).unwrap();
    fx.advance(Duration::from_secs(1));
    let out = fx.out();
    assert!(!out.is_empty() && out.iter().all(|o| !o.has(TcpFlags::ECE)));
}

#[test]
fn rfc3168_s6_1_2_ece_reduces_the_window_once_and_the_next_new_data_carries_cwr() {
    let (mut fx, _) = ecn_fx(small_config());
    let cwnd = |fx: &Fx| fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    fx.app_send(&[7; 10_000]);
    fx.out_and_ack();
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let (before, _, _) = cwnd(&fx);
    // 4,000 bytes out; the client's duplicate ACK echoes a mark.
    fx.app_send(&[8; 4000]);
    let first = fx.out();
    assert!(
        first.iter().all(|o| !o.has(TcpFlags::CWR)),
        "no reduction yet"
    );
    fx.send(TcpFlags::ACK | TcpFlags::ECE, &[]).unwrap();
    let (after, ssthresh, recovery) = cwnd(&fx);
    assert!(!recovery, "nothing to retransmit");
    assert!(after < before, "reduced: {before} -> {after}");
    assert_eq!(after, ssthresh);
    assert_eq!(fx.ep.stats().ecn_reductions, 1);
    // More ECE for the window outstanding at the reduction, up to its end: no second one.
    fx.send(TcpFlags::ACK | TcpFlags::ECE, &[]).unwrap();
    fx.ack = fx.ack + 4000usize;
    fx.send(TcpFlags::ACK | TcpFlags::ECE, &[]).unwrap();
    assert_eq!(fx.ep.stats().ecn_reductions, 1);
    // The first new data segment carries CWR, the next ones not.
    fx.app_send(&[9; 4000]);
    let out = fx.out_and_ack();
    assert!(out.len() >= 2, "{out:?}");
    assert!(out[0].has(TcpFlags::CWR) && out[0].ecn == Ecn::Ect0);
    assert!(out[1..].iter().all(|o| !o.has(TcpFlags::CWR)));
    // An ECE that acknowledges data sent after the reduction is new congestion.
    fx.send(TcpFlags::ACK | TcpFlags::ECE, &[]).unwrap();
    assert_eq!(fx.ep.stats().ecn_reductions, 2);
}

#[test]
fn without_ecn_ce_and_ece_change_nothing() {
    let mut fx = Fx::new();
    let h = fx.hdr(TcpFlags::ACK);
    fx.seq = fx.seq + 10usize;
    fx.ep
        .handle_frame(fx.now, &frame_ecn(&h, &[1; 10], Ecn::Ce))
        .unwrap();
    fx.advance(Duration::from_secs(1));
    assert!(fx.out().iter().all(|o| !o.has(TcpFlags::ECE)));
    fx.app_send(&[7; 20_000]);
    fx.out_and_ack();
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let before = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd().0;
    fx.send(TcpFlags::ACK | TcpFlags::ECE, &[]).unwrap();
    assert_eq!(fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd().0, before);
    assert_eq!(fx.ep.stats().ecn_reductions, 0);
}
