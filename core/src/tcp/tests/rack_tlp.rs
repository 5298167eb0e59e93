//! RACK-TLP (RFC 8985) at the connection: a lost tail found by a probe and RACK, a lost
//! retransmission resent without an RTO, the probe's timeout and what its ACK means.

use super::*;

const RTT: Duration = Duration::from_millis(100);

/// One byte sent and ACKed a round trip later: SRTT 100 ms, RTO 300 ms, RACK's min_RTT
/// 100 ms.
fn fx_with_srtt() -> Fx {
    let mut fx = Fx::new();
    fx.app_send(b"x");
    fx.out_and_ack();
    fx.now += RTT;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    assert_eq!(
        fx.ep.conn_for_test(fx.h).unwrap().debug_rto(),
        Duration::from_millis(300)
    );
    fx
}

fn data_seqs(out: &[Out]) -> Vec<SeqNumber> {
    out.iter()
        .filter(|o| !o.payload.is_empty())
        .map(|o| o.hdr.seq)
        .collect()
}

#[test]
fn rfc8985_s7_3_a_lost_tail_is_probed_after_two_srtt_and_rack_resends_the_rest() {
    let mut fx = fx_with_srtt();
    fx.app_send(&vec![5u8; 5 * 1448]);
    let sent_at = fx.now;
    let s = data_seqs(&fx.out());
    assert_eq!(s.len(), 5);
    let end = s[4] + 1448u32;
    // All five lost. The PTO (2 SRTT) fires before the RTO (300 ms): the last segment
    // again, there being no new data.
    let at = fx.fire_next();
    assert_eq!(at - sent_at, 2 * RTT);
    let out = fx.out();
    assert_eq!(data_seqs(&out), [s[4]]);
    assert_eq!(fx.ep.stats().loss_probes, 1);
    // Its SACK a round trip later: segments 0-3 went out before the one delivered, more than
    // RACK.rtt + reo_wnd ago: all lost (RFC 8985 §6.2), recovery begins.
    fx.now += RTT;
    fx.ack = s[0];
    let mut resent = data_seqs(&sack_ack(&mut fx, &[(s[4], end)]));
    assert_eq!(fx.ep.stats().rack_lost, 4);
    assert_eq!(resent.first(), Some(&s[0]));
    // The rest as the window allows, each ACKed as it arrives.
    for _ in 0..4 {
        let Some(&last) = resent.last() else { break };
        fx.ack = last + 1448u32;
        let blocks: &[(SeqNumber, SeqNumber)] = if fx.ack == s[4] { &[(s[4], end)] } else { &[] };
        let more = data_seqs(&sack_ack(&mut fx, blocks));
        if more.is_empty() {
            break;
        }
        resent.extend(more);
    }
    assert_eq!(resent, s[..4]);
    assert_eq!(fx.ep.stats().rto_timeouts, 0);
}

#[test]
fn rfc8985_s6_2_a_lost_retransmission_is_resent_without_an_rto() {
    let mut fx = fx_with_srtt();
    fx.app_send(&vec![5u8; 30 * 1448]);
    let s = data_seqs(&fx.out());
    assert!(s.len() >= 8, "{}", s.len());
    let n = s.len();
    // Segment 0 lost; SACKs of the others a round trip later.
    fx.now += RTT;
    fx.ack = s[0];
    let mut after_rtx = Vec::new();
    let mut rtx_seen = 0;
    for i in 2..=n {
        let out = data_seqs(&sack_ack(&mut fx, &[(s[1], s[i - 1] + 1448u32)]));
        for seq in out {
            if seq == s[0] {
                rtx_seen += 1;
            } else if rtx_seen > 0 {
                after_rtx.push(seq);
            }
        }
    }
    assert_eq!(rtx_seen, 1, "fast retransmit of segment 0");
    assert!(
        !after_rtx.is_empty(),
        "new data went out after the retransmission"
    );
    // The retransmission is lost too; new data sent after it arrives. A round trip later its
    // SACK shows the retransmission lost (sent before a delivered segment, RACK.rtt ago):
    // it goes again, no RTO.
    fx.now += RTT;
    let first_new = after_rtx[0];
    let out = data_seqs(&sack_ack(
        &mut fx,
        &[(first_new, first_new + 1448u32), (s[1], s[n - 1] + 1448u32)],
    ));
    assert_eq!(out.first(), Some(&s[0]), "{out:?}");
    assert_eq!(fx.ep.stats().rto_timeouts, 0);
}

#[test]
fn rfc8985_s6_3_the_reordering_timer_marks_a_segment_lost_when_its_window_passes() {
    let mut fx = fx_with_srtt();
    fx.app_send(&vec![5u8; 4 * 1448]);
    let sent_at = fx.now;
    let s = data_seqs(&fx.out());
    // Segment 0 missing, segment 1 SACKed a round trip later: segment 0 may only be
    // reordered, for reo_wnd = min_RTT / 4 = 25 ms more.
    fx.now += RTT;
    fx.ack = s[0];
    assert!(sack_ack(&mut fx, &[(s[1], s[2])]).is_empty());
    assert_eq!(fx.ep.stats().rack_lost, 0);
    // The reordering timer, RACK.rtt + reo_wnd after segment 0 was sent: lost now.
    let at = fx.fire_next();
    assert_eq!(at - sent_at, RTT + RTT / 4);
    let out = fx.out();
    assert_eq!(fx.ep.stats().rack_lost, 1);
    assert_eq!(data_seqs(&out).first(), Some(&s[0]), "{out:?}");
    assert_eq!(fx.ep.stats().rto_timeouts, 0);
}

#[test]
fn rfc8985_s6_2_step3_a_hole_its_original_fills_is_reordering_and_keeps_reo_wnd_open() {
    let mut fx = fx_with_srtt();
    fx.app_send(&vec![5u8; 4 * 1448]);
    let s = data_seqs(&fx.out());
    // Segment 0 overtaken by segment 1, then arriving: the hole is filled by the original.
    fx.now += RTT;
    fx.ack = s[0];
    assert!(sack_ack(&mut fx, &[(s[1], s[2])]).is_empty());
    fx.ack = s[3] + 1448u32;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    assert_eq!(fx.ep.stats().retransmits, 0);
    // Next flight: a full segment, then three small ones SACKed above it a round trip
    // later (DupThresh segments, too few bytes for RFC 6675's IsLost). With no reordering
    // seen RACK's window would be 0 and the hole lost at once; reordering was seen, so it
    // waits min_RTT / 4.
    fx.app_send(&vec![6u8; 1448]);
    let mut s = data_seqs(&fx.out());
    for _ in 0..3 {
        fx.app_send(&[7u8; 100]);
        s.extend(data_seqs(&fx.out()));
    }
    assert_eq!(s.len(), 4);
    fx.now += RTT;
    fx.ack = s[0];
    let out = sack_ack(&mut fx, &[(s[1], s[3] + 100u32)]);
    assert!(data_seqs(&out).is_empty(), "{out:?}");
    assert_eq!(fx.ep.stats().rack_lost, 0);
    // min_RTT / 4 later it is.
    fx.now += RTT / 4;
    fx.ep.handle_timeout(fx.now);
    assert_eq!(data_seqs(&fx.out()), [s[0]]);
    assert_eq!(fx.ep.stats().rack_lost, 1);
}

#[test]
fn rfc8985_s7_4_2_a_resent_probe_answered_beyond_its_end_is_a_loss_for_congestion_control() {
    let mut fx = fx_with_srtt();
    fx.app_send(&vec![5u8; 4 * 1448]);
    let s = data_seqs(&fx.out());
    // Segment 2 arrives but its ACK is lost; the last one is lost. (Two segments out: the
    // PTO comes before the RTO; with one, WCDelAckT would put it at the RTO.)
    fx.ack = s[2];
    fx.now += RTT;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let (_, ssthresh0, _) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    fx.fire_next();
    assert_eq!(data_seqs(&fx.out()), [s[3]], "the probe");
    assert_eq!(fx.ep.stats().rto_timeouts, 0);
    // Its ACK covers it exactly: it may have been the original's; no verdict yet.
    fx.ack = s[3] + 1448u32;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let (_, ssthresh, _) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert_eq!(ssthresh, ssthresh0);
    // New data, ACKed beyond the probe without a D-SACK for it: the probe repaired a loss.
    fx.app_send(b"more");
    fx.out_and_ack();
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let (_, ssthresh, rec) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert!(ssthresh < ssthresh0, "{ssthresh} {ssthresh0}");
    assert!(!rec, "recovery began and ended at once");
}

#[test]
fn rfc8985_s7_4_2_a_dsack_for_the_probe_means_it_was_redundant() {
    let mut fx = fx_with_srtt();
    fx.app_send(&vec![5u8; 4 * 1448]);
    let s = data_seqs(&fx.out());
    let end = s[3] + 1448u32;
    // Everything arrives, but the ACKs of the last two segments are lost.
    fx.ack = s[2];
    fx.now += RTT;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let (_, ssthresh0, _) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    fx.fire_next();
    assert_eq!(data_seqs(&fx.out()), [s[3]], "the probe");
    // The peer had it: the ACK D-SACKs the probe.
    fx.ack = end;
    sack_ack(&mut fx, &[(s[3], end)]);
    assert_eq!(fx.ep.stats().dsacks_received, 1);
    fx.app_send(b"more");
    fx.out_and_ack();
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let (_, ssthresh, _) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert_eq!(ssthresh, ssthresh0, "no loss");
}

#[test]
fn rfc8985_s7_2_no_probe_without_sack_and_none_with_one_segment_before_the_rto() {
    // One segment outstanding: 2 SRTT + WCDelAckT (400 ms) is capped by the RTO (300 ms).
    let mut fx = fx_with_srtt();
    fx.app_send(b"tail");
    let sent_at = fx.now;
    fx.out();
    let at = fx.fire_next();
    assert_eq!(at - sent_at, Duration::from_millis(300));
    fx.out();
    assert_eq!(fx.ep.stats().loss_probes, 0);
    assert_eq!(fx.ep.stats().rto_timeouts, 1);
    // Without SACK: the RTO, not a probe, however many segments.
    let mut fx = Fx::with(
        small_config(),
        HsOpts {
            ts: true,
            ws: true,
            sack: false,
        },
    );
    fx.app_send(b"x");
    fx.out_and_ack();
    fx.now += RTT;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    fx.app_send(&vec![5u8; 5 * 1448]);
    fx.out();
    fx.fire_next();
    fx.out();
    assert_eq!(fx.ep.stats().loss_probes, 0);
    assert_eq!(fx.ep.stats().rto_timeouts, 1);
}

mod garbage {
    use super::*;
    use proptest::prelude::*;

    /// One thing the peer (or time) does: an ACK whose number and SACK blocks are offsets from
    /// SND.UNA (anything, wrapping included), the client's data at an offset from RCV.NXT
    /// (duplicates and holes), or time passing and the timers firing.
    #[derive(Debug, Clone)]
    enum Step {
        Ack(i32, Vec<(i32, i32)>),
        Data(i32, u16),
        Wait(u16),
        Send(u16),
    }

    fn step() -> impl Strategy<Value = Step> {
        let off = prop_oneof![-3000i32..20_000, any::<i32>()];
        prop_oneof![
            (
                off.clone(),
                prop::collection::vec((off.clone(), off.clone()), 0..5)
            )
                .prop_map(|(a, b)| Step::Ack(a, b)),
            (-3000i32..3000, 1u16..1400).prop_map(|(o, n)| Step::Data(o, n)),
            (0u16..500).prop_map(Step::Wait),
            (1u16..20_000).prop_map(Step::Send),
        ]
    }

    proptest! {
        /// RACK, the probe and D-SACK take any ACK, SACK block (below SND.UNA, beyond
        /// SND.MAX, inverted, wrapped) and duplicate without panicking, and the connection's
        /// output stays within what it sent.
        #[test]
        fn any_acks_sack_blocks_and_duplicates_are_survived(steps in prop::collection::vec(step(), 1..80)) {
            let mut fx = fx_with_srtt();
            fx.app_send(&vec![1u8; 20 * 1448]);
            let una = fx.ack;
            let mut highest = una;
            for o in fx.out() {
                let end = o.hdr.seq + o.payload.len();
                if end.diff(highest) > 0 {
                    highest = end;
                }
            }
            let rcv = fx.seq;
            for s in steps {
                match s {
                    Step::Ack(a, blocks) => {
                        let base = fx.ack;
                        let mut h = fx.hdr(TcpFlags::ACK);
                        h.ack = SeqNumber(base.0.wrapping_add(a as u32));
                        let b: Vec<SackBlock> = blocks
                            .iter()
                            .map(|&(l, r)| SackBlock {
                                left: SeqNumber(base.0.wrapping_add(l as u32)),
                                right: SeqNumber(base.0.wrapping_add(r as u32)),
                            })
                            .collect();
                        h.options.set_sack(&b);
                        let _ = fx.send_hdr(&h, &[]);
                        // Keep the client's idea of SND.UNA where the server took it.
                        if h.ack.diff(fx.ack) > 0 && h.ack.diff(highest) <= 0 {
                            fx.ack = h.ack;
                        }
                    }
                    Step::Data(o, n) => {
                        let mut h = fx.hdr(TcpFlags::ACK);
                        h.seq = SeqNumber(rcv.0.wrapping_add(o as u32));
                        let _ = fx.send_hdr(&h, &vec![2u8; usize::from(n)]);
                    }
                    Step::Wait(ms) => fx.advance(Duration::from_millis(u64::from(ms))),
                    Step::Send(n) => {
                        if fx.ep.connection_count() == 1 {
                            fx.app_send(&vec![3u8; usize::from(n)]);
                        }
                    }
                }
                let out = fx.out();
                // One input never makes a storm: a window's worth of segments at most (the
                // drain stops at 10,000).
                prop_assert!(out.len() < 1000, "{} segments from one input", out.len());
                for o in out {
                    let end = o.hdr.seq + o.payload.len();
                    if end.diff(highest) > 0 {
                        highest = end;
                    }
                    if !o.payload.is_empty() {
                        prop_assert!(o.hdr.seq.diff(una) >= 0, "{:?} below the first SND.UNA", o.hdr.seq);
                    }
                }
            }
        }
    }
}
