//! Retransmission and recovery: the RTO and its backoff, RTT samples, fast retransmit and
//! NewReno partial ACKs, SACK-based hole retransmission, go-back-N with a FIN.

use super::*;

#[test]
fn rfc6298_rto_retransmits_with_backoff_then_aborts_with_rst() {
    let mut fx = Fx::new();
    fx.app_send(b"lost");
    let first = fx.out();
    assert_eq!(first.len(), 1);
    let mut last = fx.now;
    let mut gaps = Vec::new();
    for _ in 0..8 {
        let at = fx.fire_next();
        gaps.push(at - last);
        last = at;
        let out = fx.out();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload, b"lost");
        assert_eq!(out[0].hdr.seq, first[0].hdr.seq);
    }
    assert_eq!(gaps[0], Duration::from_secs(1));
    assert_eq!(gaps[1], Duration::from_secs(2));
    assert_eq!(gaps[2], Duration::from_secs(4));
    assert_eq!(fx.ep.stats().rto_timeouts, 8);
    fx.fire_next();
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(out[0].has(TcpFlags::RST));
    assert_eq!(closed_count(&fx.events()), 1);
    assert_eq!(fx.ep.stats().rto_aborts, 1);
    fx.assert_all_gone();
}

#[test]
fn rfc6298_rtt_sample_sets_rto() {
    let mut fx = Fx::new();
    fx.app_send(b"x");
    fx.out_and_ack();
    fx.now += Duration::from_millis(100);
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let rto = fx.ep.conn_for_test(fx.h).unwrap().debug_rto();
    // SRTT 100 ms, RTTVAR 50 ms -> 300 ms.
    assert_eq!(rto, Duration::from_millis(300));
}

#[test]
fn rfc6582_fast_retransmit_and_newreno_partial_ack() {
    let mut fx = Fx::new();
    fx.app_send(&vec![7u8; 10 * 1448]);
    let out = fx.out();
    assert_eq!(out.len(), 10);
    let seqs: Vec<SeqNumber> = out.iter().map(|o| o.hdr.seq).collect();
    // Segments 0 and 3 lost; the client ACKs seg 0 missing, three dup ACKs.
    fx.ack = seqs[0];
    for _ in 0..3 {
        fx.send(TcpFlags::ACK, &[]).unwrap();
    }
    let out = fx.out();
    assert!(!out.is_empty());
    assert_eq!(out[0].hdr.seq, seqs[0], "fast retransmit of the first hole");
    assert_eq!(fx.ep.stats().fast_retransmits, 1);
    let (_, _, rec) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert!(rec);
    // Partial ACK up to segment 3: NewReno retransmits segment 3 at once.
    fx.ack = seqs[3];
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let out = fx.out();
    assert_eq!(out[0].hdr.seq, seqs[3]);
    let (_, _, rec) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert!(rec, "still in recovery after a partial ACK");
    // Full ACK ends recovery.
    fx.ack = seqs[9] + 1448u32;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let (cwnd, ssthresh, rec) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert!(!rec);
    assert!(cwnd <= ssthresh);
    assert_eq!(fx.ep.stats().rto_timeouts, 0);
}

#[test]
fn fin_is_retransmitted_after_go_back_n() {
    let mut fx = Fx::new();
    fx.app_send(&vec![1u8; 3000]);
    fx.ep.close(fx.h);
    let out = fx.out();
    assert!(out.last().unwrap().has(TcpFlags::FIN));
    fx.fire_next();
    let mut seen_fin = false;
    for _ in 0..5 {
        for o in fx.out_and_ack() {
            seen_fin |= o.has(TcpFlags::FIN);
        }
        fx.send(TcpFlags::ACK, &[]).unwrap();
    }
    assert!(seen_fin);
    assert_eq!(
        fx.ep.conn_for_test(fx.h).unwrap().state,
        conn::State::FinWait2
    );
}

#[test]
fn rfc6675_sack_recovery_retransmits_each_hole_once() {
    let mut fx = Fx::new();
    fx.app_send(&vec![7u8; 10 * 1448]);
    let out = fx.out();
    assert_eq!(out.len(), 10);
    let s: Vec<SeqNumber> = out.iter().map(|o| o.hdr.seq).collect();
    let end = s[9] + 1448u32;
    fx.ack = s[0];
    let dupack = |fx: &mut Fx, blocks: &[(SeqNumber, SeqNumber)]| {
        let mut h = fx.hdr(TcpFlags::ACK);
        let b: Vec<SackBlock> = blocks
            .iter()
            .map(|&(left, right)| SackBlock { left, right })
            .collect();
        h.options.set_sack(&b);
        fx.send_hdr(&h, &[]).unwrap();
        fx.out()
    };
    assert!(dupack(&mut fx, &[(s[1], s[2])]).is_empty());
    assert!(dupack(&mut fx, &[(s[1], s[3])]).is_empty());
    // Third duplicate ACK: fast retransmit of the first hole only.
    let out = dupack(&mut fx, &[(s[4], s[5]), (s[1], s[3])]);
    assert_eq!(out[0].hdr.seq, s[0]);
    assert_eq!(out[0].payload.len(), 1448);
    assert!(out.iter().skip(1).all(|o| o.hdr.seq.diff(s[9]) > 0));
    // Next duplicate ACK: the second hole (segment 3) goes, not segment 1 or 2.
    let out = dupack(&mut fx, &[(s[4], s[6]), (s[1], s[3])]);
    assert_eq!(out[0].hdr.seq, s[3]);
    // Further duplicate ACKs: no hole left below the SACKed data, nothing retransmitted.
    let out = dupack(&mut fx, &[(s[4], s[8]), (s[1], s[3])]);
    assert!(out.iter().all(|o| o.hdr.seq.diff(s[9]) > 0), "{out:?}");
    // Partial ACK up to segment 3: already retransmitted, not sent again.
    fx.ack = s[3];
    let out = dupack(&mut fx, &[(s[4], s[8])]);
    assert!(out.iter().all(|o| o.hdr.seq != s[3]));
    assert_eq!(fx.ep.stats().retransmits, 2);
    fx.ack = end;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let (_, _, rec) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert!(!rec);
}
