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

/// Opens the congestion window by slow start: `n` segments sent and acknowledged as they
/// go, no loss. Returns the window reached.
fn warm_up(fx: &mut Fx, n: usize) -> u32 {
    fx.app_send(&vec![7u8; n * 1448]);
    // An ACK per segment, as a receiver that does not delay them, and what the sender sends
    // for each before the next (a window always in use: no application limit).
    let mut flight = std::collections::VecDeque::new();
    for _ in 0..n {
        flight.extend(
            fx.out()
                .into_iter()
                .filter(|o| !o.payload.is_empty())
                .map(|o| o.hdr.seq + o.payload.len() as u32),
        );
        let Some(end) = flight.pop_front() else {
            break;
        };
        fx.ack = end;
        fx.send(TcpFlags::ACK, &[]).unwrap();
    }
    for end in flight {
        fx.ack = end;
        fx.send(TcpFlags::ACK, &[]).unwrap();
    }
    let _ = fx.out();
    fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd().0
}

/// After a warm-up, `n` new segments in flight at once: their sequence numbers.
fn in_flight(fx: &mut Fx, n: usize) -> Vec<SeqNumber> {
    let cwnd = warm_up(fx, 30);
    assert!(cwnd >= (n as u32) * 1448, "cwnd {cwnd} after the warm-up");
    fx.app_send(&vec![8u8; n * 1448]);
    let s: Vec<SeqNumber> = fx.out().iter().map(|o| o.hdr.seq).collect();
    assert_eq!(s.len(), n);
    s
}

#[test]
fn rfc6675_sack_recovery_retransmits_each_lost_hole_once() {
    let mut fx = Fx::new();
    fx.app_send(&vec![7u8; 10 * 1448]);
    let out = fx.out();
    assert_eq!(out.len(), 10);
    let s: Vec<SeqNumber> = out.iter().map(|o| o.hdr.seq).collect();
    let end = s[9] + 1448u32;
    // Segments 0 and 3 lost; the ACKs come a round trip later (RACK's reordering window,
    // RFC 8985 §6.2, is a quarter of that: segment 0 is not lost at the first SACK).
    fx.now += Duration::from_millis(100);
    fx.ack = s[0];
    assert!(sack_ack(&mut fx, &[(s[1], s[2])]).is_empty());
    assert!(sack_ack(&mut fx, &[(s[1], s[3])]).is_empty());
    // Third duplicate ACK: fast retransmit of the first hole -- and of the second: RFC 6675
    // §4 `IsLost` would wait for more than two segments SACKed above segment 3 (it may be
    // reordered), but RACK (RFC 8985 §6.2) takes it as lost now: segment 4, sent after it,
    // was delivered a round trip after both went out, and in recovery with no reordering
    // seen the reordering window is zero. (`sack.rs`'s own test keeps IsLost's rule.)
    let out = sack_ack(&mut fx, &[(s[4], s[5]), (s[1], s[3])]);
    assert_eq!(out[0].hdr.seq, s[0]);
    assert_eq!(out[0].payload.len(), 1448);
    assert_eq!(out.get(1).map(|o| o.hdr.seq), Some(s[3]), "{out:?}");
    assert!(out.iter().skip(2).all(|o| o.hdr.seq.diff(s[9]) > 0));
    // Each hole once: more SACK blocks resend neither again.
    let out = sack_ack(&mut fx, &[(s[4], s[6]), (s[1], s[3])]);
    assert!(out.iter().all(|o| o.hdr.seq.diff(s[9]) > 0), "{out:?}");
    let out = sack_ack(&mut fx, &[(s[4], s[7]), (s[1], s[3])]);
    assert!(out.iter().all(|o| o.hdr.seq.diff(s[9]) > 0), "{out:?}");
    // Further duplicate ACKs: no hole left below the SACKed data, nothing retransmitted.
    let out = sack_ack(&mut fx, &[(s[4], s[8]), (s[1], s[3])]);
    assert!(out.iter().all(|o| o.hdr.seq.diff(s[9]) > 0), "{out:?}");
    // Partial ACK up to segment 3: already retransmitted, not sent again.
    fx.ack = s[3];
    let out = sack_ack(&mut fx, &[(s[4], s[8])]);
    assert!(out.iter().all(|o| o.hdr.seq != s[3]));
    assert_eq!(fx.ep.stats().retransmits, 2);
    fx.ack = end;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let (_, _, rec) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert!(!rec);
}

#[test]
fn rfc6675_islost_starts_recovery_before_the_third_duplicate_ack() {
    // A receiver that ACKs every other segment, or ACKs lost on the way: one duplicate ACK
    // whose SACK blocks cover more than two segments above the hole is enough.
    let mut fx = Fx::new();
    fx.app_send(&vec![7u8; 10 * 1448]);
    let s: Vec<SeqNumber> = fx.out().iter().map(|o| o.hdr.seq).collect();
    fx.ack = s[0];
    let out = sack_ack(&mut fx, &[(s[1], s[4])]);
    assert_eq!(out.first().map(|o| o.hdr.seq), Some(s[0]), "{out:?}");
    assert_eq!(fx.ep.stats().fast_retransmits, 1);
    let (_, _, rec) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert!(rec);
}

/// A flight of 20 with its first segment lost, SACKed by a receiver that compresses its
/// duplicate ACKs (Linux's `tcp_comp_sack_nr`): each ACK reports four more segments. More
/// data waits to go. Returns the new segments sent during recovery and the ssthresh.
fn recover_from_compressed_sacks(fx: &mut Fx) -> (usize, u32) {
    let s = in_flight(fx, 20);
    fx.ack = s[0];
    fx.app_send(&vec![9u8; 40 * 1448]);
    let snd_max_before = fx.ep.conn_for_test(fx.h).unwrap().debug_snd_max();
    let mut new_data = 0;
    for k in [4, 8, 12, 16, 19] {
        let out = sack_ack(fx, &[(s[1], s[k] + 1448u32)]);
        new_data += out
            .iter()
            .filter(|o| !o.payload.is_empty() && o.hdr.seq.diff(snd_max_before) >= 0)
            .count();
    }
    let (cwnd, ssthresh, rec) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert!(rec);
    assert_eq!(cwnd, ssthresh, "RFC 6675 §5: cwnd = ssthresh, no inflation");
    (new_data, ssthresh)
}

#[test]
fn rfc6675_pipe_lets_new_data_go_while_sacks_arrive() {
    let mut fx = Fx::new();
    let (new_data, ssthresh) = recover_from_compressed_sacks(&mut fx);
    // Five ACKs: NewReno's inflation (a segment per duplicate ACK, counting SACKed data as
    // in flight) would have sent nothing new. The pipe counts the 19 SACKed segments as
    // gone: about ssthresh less the retransmission is in flight again.
    let ssthresh_segs = (ssthresh / 1448) as usize;
    assert!(
        new_data + 1 >= ssthresh_segs,
        "{new_data} new segments during recovery, ssthresh {ssthresh_segs} segments"
    );
}

#[test]
fn rfc6675_recovery_ends_with_the_window_at_ssthresh_not_a_restart() {
    let mut fx = Fx::new();
    let (_, ssthresh) = recover_from_compressed_sacks(&mut fx);
    // The retransmission of segment 0 arrives: everything sent before recovery began is
    // acknowledged, and the new data sent during recovery is still in flight.
    fx.ack = fx.ep.conn_for_test(fx.h).unwrap().debug_recover();
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let (cwnd, _, rec) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert!(!rec);
    // RFC 6582's min(ssthresh, FlightSize + SMSS): recovery kept the pipe full, so the
    // connection goes on near the reduced window, not from two segments (what counting
    // SACKed data as in flight left: nothing new sent, nothing in flight at the end).
    assert!(
        cwnd >= ssthresh - 2 * 1448,
        "cwnd {cwnd} after recovery, ssthresh {ssthresh}"
    );
}

#[test]
fn rfc6582_option_2_a_sack_recovery_the_peer_window_held_back_ends_at_ssthresh() {
    let mut fx = Fx::new();
    let s = in_flight(&mut fx, 20);
    // The peer's window is exactly the flight: its out-of-order data fills its buffer, so
    // nothing new may go during recovery however much is SACKed.
    let scale = fx.ep.conn_for_test(fx.h).unwrap().debug_snd_wscale();
    fx.window = u16::try_from((20 * 1448) >> scale).unwrap();
    fx.ack = s[0];
    fx.app_send(&vec![9u8; 40 * 1448]);
    let snd_max_before = fx.ep.conn_for_test(fx.h).unwrap().debug_snd_max();
    for k in [4, 8, 12, 16, 19] {
        let out = sack_ack(&mut fx, &[(s[1], s[k] + 1448u32)]);
        assert!(
            out.iter().all(|o| o.hdr.seq.diff(snd_max_before) < 0),
            "new data beyond the peer's window: {out:?}"
        );
    }
    let (_, ssthresh, rec) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert!(rec);
    fx.ack = s[19] + 1448u32;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let (cwnd, _, rec) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert!(!rec);
    // Nothing in flight: option (1) would give two segments and a slow start from there.
    assert_eq!(
        cwnd, ssthresh,
        "the window after a recovery with nothing in flight"
    );
}

/// Ten segments out, 0 and 5 lost, the rest SACKed; the fast retransmissions are lost too,
/// and the retransmission timer fires. Returns the segments' sequence numbers.
fn timeout_with_sacked_data(fx: &mut Fx) -> Vec<SeqNumber> {
    fx.app_send(&vec![7u8; 10 * 1448]);
    let s: Vec<SeqNumber> = fx.out().iter().map(|o| o.hdr.seq).collect();
    assert_eq!(s.len(), 10);
    fx.ack = s[0];
    let end = s[9] + 1448u32;
    let _ = sack_ack(fx, &[(s[1], s[5]), (s[6], end)]);
    let _ = sack_ack(fx, &[(s[1], s[5]), (s[6], end)]);
    fx.fire_next();
    s
}

#[test]
fn rfc2018_s8_after_a_first_timeout_the_resend_skips_what_the_peer_holds() {
    let mut fx = Fx::new();
    let s = timeout_with_sacked_data(&mut fx);
    let end = s[9] + 1448u32;
    // RFC 2018 §8 MUST: the left edge goes again.
    let out = fx.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].hdr.seq, s[0]);
    // It arrives: the peer now holds 0-4 and 6-9, and its ACK repeats no block (a receiver
    // reports a few recent blocks, not all it holds). The resend goes on with 5 alone; a
    // forgotten scoreboard would send 5 and 6 (two segments of window).
    fx.ack = s[5];
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let out = fx.out();
    let data: Vec<SeqNumber> = out
        .iter()
        .filter(|o| !o.payload.is_empty())
        .map(|o| o.hdr.seq)
        .collect();
    assert_eq!(data, [s[5]], "only the hole, not the SACKed segments 6-9");
    fx.ack = end;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    assert!(fx.out().iter().all(|o| o.payload.is_empty()));
}

#[test]
fn rfc2018_s8_a_second_timeout_in_a_row_forgets_the_sacked_data() {
    let mut fx = Fx::new();
    let s = timeout_with_sacked_data(&mut fx);
    let _ = fx.out();
    // The resent left edge is lost as well: a second timeout.
    fx.fire_next();
    let out = fx.out();
    assert_eq!(out.first().map(|o| o.hdr.seq), Some(s[0]));
    // A receiver that reneged reports nothing above 5 any more: 5 and 6 go (two segments of
    // window now), 6 although it had been SACKed.
    fx.ack = s[5];
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let data: Vec<SeqNumber> = fx
        .out()
        .iter()
        .filter(|o| !o.payload.is_empty())
        .map(|o| o.hdr.seq)
        .collect();
    assert_eq!(data, [s[5], s[6]]);
}

/// A slow start that overflowed a drop-tail queue loses every other segment of a window.
/// Linux ACKs each arrival with its newest SACK blocks first and a window that grows with
/// each ACK (so these are not RFC 5681 duplicate ACKs; RFC 6675 counts them for their SACK
/// information). The scoreboard must remember every range, or the pipe counts what was
/// forgotten as in flight and nothing is sent until the RTO (seen: 150 ms of silence on a
/// 1 ms path, then a go-back-N, for every client without timestamps).
#[test]
fn rfc6675_every_other_segment_lost_is_repaired_without_an_rto() {
    let cfg = TcpConfig {
        tx_buffer: 256 * 1024,
        ..small_config()
    };
    let opts = HsOpts {
        ts: false,
        ws: true,
        sack: true,
    };
    let mut fx = Fx::with(cfg, opts);
    fx.window = 4096; // x 128: 512 KiB, never the limit here
                      // Slow start up to a window of over 100 segments: each segment ACKed, 20 ms after the round
                      // that sent it, and what each ACK lets out goes in the next round.
    fx.app_send(&vec![1u8; 150 * 1448]);
    let mut round = fx.out();
    while !round.is_empty() {
        fx.now += Duration::from_millis(20);
        let mut next = Vec::new();
        for o in round {
            fx.ack = o.hdr.seq + o.payload.len();
            fx.send(TcpFlags::ACK, &[]).unwrap();
            next.extend(fx.out());
        }
        round = next;
    }
    let (cwnd, _, _) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert!(cwnd >= 60 * 1448, "slow start grew the window: {cwnd}");
    // A window of 60 segments, the even ones lost (the first among them: the ACK stays at
    // its start).
    fx.app_send(&vec![2u8; 60 * 1460]);
    let flight = fx.out();
    assert_eq!(flight.len(), 60);
    let seg = |i: usize| {
        let o = &flight[i];
        (o.hdr.seq, o.hdr.seq + o.payload.len())
    };
    fx.ack = flight[0].hdr.seq;
    fx.now += Duration::from_millis(20);
    let mut arrived: Vec<(SeqNumber, SeqNumber)> = Vec::new();
    let mut resent = Vec::new();
    for i in (1..60).step_by(2) {
        // An arrival every 1.2 ms (10 Mbit/s), starting one RTT after the window left.
        fx.now += Duration::from_micros(1200);
        arrived.insert(0, seg(i));
        fx.window += 3;
        let blocks: Vec<_> = arrived.iter().take(3).copied().collect();
        fx.send_sack(&blocks);
        resent.extend(fx.out().into_iter().map(|o| o.hdr.seq));
    }
    // Every lost segment (the even ones, but the last: nothing is SACKed above it) went out
    // again on these ACKs, before any timer.
    for i in (0..58).step_by(2) {
        assert!(
            resent.contains(&flight[i].hdr.seq),
            "segment {i} not resent on the SACKs: resent {}",
            resent.len()
        );
    }
    assert_eq!(fx.ep.stats().rto_timeouts, 0);
}

/// Without timestamps but with SACK (so a send log), every cumulative ACK of segments sent
/// once gives an RTT sample (RFC 6298 §3 asks for at least one per round trip; Linux takes
/// one per ACK from its send times), and none comes from an ACK that covers a
/// retransmission (Karn).
#[test]
fn rfc6298_every_ack_gives_a_sample_from_the_send_log_without_timestamps() {
    let opts = HsOpts {
        ts: false,
        ws: true,
        sack: true,
    };
    let mut fx = Fx::with(small_config(), opts);
    fx.app_send(&vec![3u8; 4 * 1460]);
    let s: Vec<SeqNumber> = fx.out().iter().map(|o| o.hdr.seq).collect();
    assert_eq!(s.len(), 4);
    let rto = |fx: &Fx| fx.ep.conn_for_test(fx.h).unwrap().debug_rto();
    // 100 ms: SRTT 100, RTTVAR 50 -> 300 ms.
    fx.now += Duration::from_millis(100);
    fx.ack = s[1];
    fx.send(TcpFlags::ACK, &[]).unwrap();
    assert_eq!(rto(&fx), Duration::from_millis(300));
    // 200 ms for the second segment: SRTT 112.5, RTTVAR 62.5 -> 362.5 ms (one timed
    // segment per round trip would have left 300).
    fx.now += Duration::from_millis(100);
    fx.ack = s[2];
    fx.send(TcpFlags::ACK, &[]).unwrap();
    assert_eq!(rto(&fx), Duration::from_micros(362_500));
    // The rest is lost; the timers (a loss probe, then the RTO) resend it. The ACK that
    // covers the resent segments is no sample: the RTO comes back from the estimate as it
    // was (a sample from the originals' send times would have moved it).
    let mut resent = Vec::new();
    while !resent.contains(&s[2]) {
        assert!(resent.len() < 4, "not resent: {resent:?}");
        fx.fire_next();
        resent.extend(fx.out().iter().map(|o| o.hdr.seq));
    }
    fx.now += Duration::from_millis(10);
    fx.ack = s[3] + 1460u32;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    assert_eq!(rto(&fx), Duration::from_micros(362_500));
}
