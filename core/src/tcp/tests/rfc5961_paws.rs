//! RFC 5961 (blind RST, SYN and ACK injection, the challenge-ACK budget) and RFC 7323
//! timestamps (PAWS, TS.Recent) in a synchronized state.

use super::*;

#[test]
fn rfc5961_rst_exactly_at_rcv_nxt_resets() {
    let mut fx = Fx::new();
    fx.send(TcpFlags::RST, &[]).unwrap();
    assert_eq!(
        fx.events(),
        vec![Event::Closed {
            conn: fx.h,
            flow: flow()
        }]
    );
    assert!(fx.out().is_empty());
    fx.assert_all_gone();
}

#[test]
fn rfc5961_rst_in_window_not_exact_gets_challenge_ack() {
    let mut fx = Fx::new();
    let base = fx.seq;
    fx.seq = base + 100u32;
    assert_eq!(fx.send(TcpFlags::RST, &[]), Err(DropReason::RstNotExact));
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(!out[0].has(TcpFlags::RST));
    assert_eq!(out[0].hdr.ack, base);
    assert_eq!(fx.ep.connection_count(), 1);
    assert_eq!(fx.ep.stats().challenge_acks_sent, 1);
}

#[test]
fn rfc5961_rst_out_of_window_is_dropped_silently() {
    let mut fx = Fx::new();
    fx.seq = fx.seq + 50_000_000u32;
    assert!(fx.send(TcpFlags::RST, &[]).is_err());
    assert!(fx.out().is_empty());
    assert_eq!(fx.ep.connection_count(), 1);
}

#[test]
fn rfc5961_syn_in_established_gets_challenge_ack() {
    let mut fx = Fx::new();
    let h = TcpHeader {
        seq: fx.seq,
        flags: TcpFlags::SYN,
        options: TcpOptions {
            timestamps: Some((500, 0)),
            ..TcpOptions::default()
        },
        ..templ()
    };
    assert_eq!(fx.send_hdr(&h, &[]), Err(DropReason::SynInSync));
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(!out[0].has(TcpFlags::SYN) && !out[0].has(TcpFlags::RST));
    assert_eq!(out[0].hdr.ack, fx.seq);
    assert_eq!(fx.ep.connection_count(), 1);
}

#[test]
fn rfc5961_ack_of_unsent_data_is_acked_and_dropped() {
    let mut fx = Fx::new();
    fx.ack = fx.ack + 1000u32;
    assert_eq!(fx.send(TcpFlags::ACK, b"data"), Err(DropReason::BadAck));
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(fx.readable().is_empty());
}

#[test]
fn rfc5961_challenge_acks_are_rate_limited() {
    let cfg = TcpConfig {
        challenge_ack_limit: 2,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let base = fx.seq;
    let mut acks = 0;
    for i in 1..=5u32 {
        fx.seq = base + i;
        let _ = fx.send(TcpFlags::RST, &[]);
        acks += fx.out().len();
    }
    assert_eq!(acks, 2);
    assert_eq!(fx.ep.stats().challenge_acks_suppressed, 3);
    fx.now += Duration::from_secs(1);
    fx.seq = base + 9u32;
    let _ = fx.send(TcpFlags::RST, &[]);
    assert_eq!(fx.out().len(), 1);
}

#[test]
fn rfc7323_paws_drops_old_timestamp_and_acks() {
    let mut fx = Fx::new();
    fx.send(TcpFlags::ACK, b"new").unwrap();
    let mut h = fx.hdr(TcpFlags::ACK);
    h.options.timestamps = Some((5, fx.ts_echo)); // older than TS.Recent
    assert_eq!(fx.send_hdr(&h, b"old"), Err(DropReason::Paws));
    assert_eq!(fx.readable(), b"new");
    let out = fx.out();
    assert_eq!(out.len(), 1);
    // Missing timestamps on a non-RST segment when negotiated: dropped.
    let mut h = fx.hdr(TcpFlags::ACK);
    h.options.timestamps = None;
    assert_eq!(fx.send_hdr(&h, b"nots"), Err(DropReason::Paws));
    assert_eq!(fx.readable(), b"new");
}

#[test]
fn rfc7323_paws_tolerates_a_few_ticks_of_reordering() {
    // A segment sent a few ms before the one that set TS.Recent, overtaken on the way, carries
    // new data: it is taken, not dropped as an old duplicate (and TS.Recent stays).
    let mut fx = Fx::new();
    fx.send(TcpFlags::ACK, b"new").unwrap();
    let recent = fx.ts.unwrap();
    let mut h = fx.hdr(TcpFlags::ACK);
    h.options.timestamps = Some((recent - 3, fx.ts_echo));
    assert_eq!(fx.send_hdr(&h, b"late"), Ok(()));
    fx.seq = fx.seq + 4u32;
    assert_eq!(fx.readable(), b"newlate");
    // Beyond the tolerance it is an old duplicate.
    let mut h = fx.hdr(TcpFlags::ACK);
    h.options.timestamps = Some((recent - 17, fx.ts_echo));
    assert_eq!(fx.send_hdr(&h, b"old"), Err(DropReason::Paws));
    assert_eq!(fx.readable(), b"newlate");
}

#[test]
fn rfc7323_timestamps_echo_ts_recent() {
    let mut fx = Fx::new();
    fx.send(TcpFlags::ACK, b"a").unwrap();
    let sent_ts = fx.ts.unwrap();
    fx.app_send(b"b");
    let out = fx.out();
    assert_eq!(out[0].hdr.options.timestamps.unwrap().1, sent_ts);
}
