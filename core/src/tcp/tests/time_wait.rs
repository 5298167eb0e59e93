//! TIME_WAIT records: RST and new SYN rules (RFC 5961, RFC 6191, RFC 9293 §3.6.1) and the
//! bound on how many are kept.

use super::*;

#[test]
fn time_wait_rst_exact_removes_record_and_new_syn_rules() {
    let mut fx = Fx::new();
    fx.ep.close(fx.h);
    fx.out_and_ack();
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    fx.out();
    assert_eq!(fx.ep.time_wait_count(), 1);
    // Old SYN (TSval not newer): challenge ACK, no SYN-ACK.
    let mut s = syn(&ALL_OPTS, CLIENT_ISN);
    s.options.timestamps = Some((1, 0));
    assert!(fx.send_hdr(&s, &[]).is_err());
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(!out[0].has(TcpFlags::SYN));
    // New SYN with a newer timestamp and a higher sequence number: cookie SYN-ACK.
    let new_isn = fx.seq.0 + 100_000;
    let mut s = syn(&ALL_OPTS, new_isn);
    s.options.timestamps = Some((fx.ts.unwrap() + 10, 0));
    fx.send_hdr(&s, &[]).unwrap();
    let sa = fx.out().remove(0);
    assert!(sa.has(TcpFlags::SYN) && sa.has(TcpFlags::ACK));
    // Its cookie ACK takes the flow over.
    let ack = TcpHeader {
        seq: SeqNumber(new_isn + 1),
        ack: sa.hdr.seq + 1u32,
        options: TcpOptions {
            timestamps: Some((fx.ts.unwrap() + 11, sa.hdr.options.timestamps.unwrap().0)),
            ..TcpOptions::default()
        },
        ..templ()
    };
    fx.send_hdr(&ack, &[]).unwrap();
    assert_eq!(fx.ep.time_wait_count(), 0);
    assert_eq!(fx.ep.connection_count(), 1);
    assert!(matches!(
        fx.events().last(),
        Some(Event::Established { .. })
    ));
}

/// RFC 6191 §2, second rule: with timestamps in use, a SYN whose TSval equals TS.Recent is a
/// new incarnation if its sequence number is above RCV.NXT (a client reconnecting within one
/// tick of its timestamp clock); the same TSval with a lower sequence number is not.
#[test]
fn rfc6191_time_wait_syn_with_equal_tsval_and_higher_seq_is_accepted() {
    let mut fx = Fx::new();
    fx.ep.close(fx.h);
    fx.out_and_ack();
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    fx.out();
    assert_eq!(fx.ep.time_wait_count(), 1);
    let recent = fx.ts.unwrap();
    // Equal TSval, lower sequence number: challenge ACK.
    let mut s = syn(&ALL_OPTS, fx.seq.0.wrapping_sub(100_000));
    s.options.timestamps = Some((recent, 0));
    assert!(fx.send_hdr(&s, &[]).is_err());
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(!out[0].has(TcpFlags::SYN));
    // Equal TSval, higher sequence number: a cookie SYN-ACK.
    let mut s = syn(&ALL_OPTS, fx.seq.0.wrapping_add(100_000));
    s.options.timestamps = Some((recent, 0));
    fx.send_hdr(&s, &[]).unwrap();
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(out[0].has(TcpFlags::SYN) && out[0].has(TcpFlags::ACK));
}

#[test]
fn time_wait_rst_at_rcv_nxt_closes_record() {
    let mut fx = Fx::new();
    fx.ep.close(fx.h);
    fx.out_and_ack();
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    fx.out();
    fx.send(TcpFlags::RST, &[]).unwrap();
    fx.assert_all_gone();
}

#[test]
fn time_wait_overflow_drops_oldest_and_counts() {
    let cfg = TcpConfig {
        max_time_wait: 1,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    fx.ep.close(fx.h);
    fx.out_and_ack();
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    fx.out();
    assert_eq!(fx.ep.time_wait_count(), 1);
    // A second connection on another port, closed the same way.
    let mut s = syn(&ALL_OPTS, 5000);
    s.src_port = CPORT + 1;
    fx.send_hdr(&s, &[]).unwrap();
    let sa = fx.out().remove(0);
    let mk = |seq: u32, ack: SeqNumber, flags: TcpFlags, tsv: u32, ecr: u32| TcpHeader {
        src_port: CPORT + 1,
        seq: SeqNumber(seq),
        ack,
        flags,
        options: TcpOptions {
            timestamps: Some((tsv, ecr)),
            ..TcpOptions::default()
        },
        ..templ()
    };
    let ecr = sa.hdr.options.timestamps.unwrap().0;
    fx.send_hdr(&mk(5001, sa.hdr.seq + 1u32, TcpFlags::ACK, 101, ecr), &[])
        .unwrap();
    let h2 = match fx.events().last() {
        Some(Event::Established { conn, .. }) => *conn,
        e => panic!("{e:?}"),
    };
    fx.ep.close(h2);
    let fin = fx.out().remove(0);
    fx.send_hdr(
        &mk(
            5001,
            fin.hdr.seq + 1u32,
            TcpFlags::ACK | TcpFlags::FIN,
            102,
            ecr,
        ),
        &[],
    )
    .unwrap();
    assert_eq!(fx.ep.time_wait_count(), 1);
    assert_eq!(fx.ep.stats().time_wait_overflows, 1);
}

#[test]
fn rfc5961_time_wait_rst_in_window_not_exact_gets_challenge_ack() {
    let mut fx = Fx::new();
    fx.ep.close(fx.h);
    fx.out_and_ack();
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    fx.out();
    fx.seq = fx.seq + 5u32;
    assert_eq!(fx.send(TcpFlags::RST, &[]), Err(DropReason::RstNotExact));
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(!out[0].has(TcpFlags::RST));
    assert_eq!(fx.ep.time_wait_count(), 1);
}

#[test]
fn rfc9293_time_wait_without_timestamps_new_syn_needs_higher_sequence() {
    let opts = HsOpts {
        ts: false,
        ws: false,
        sack: false,
    };
    let mut fx = Fx::with(small_config(), opts);
    fx.ep.close(fx.h);
    fx.out_and_ack();
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    fx.out();
    assert_eq!(fx.ep.time_wait_count(), 1);
    let no_ts = HsOpts {
        ts: false,
        ws: false,
        sack: false,
    };
    // Below RCV.NXT: ACK, no SYN-ACK.
    assert!(fx
        .send_hdr(&syn(&no_ts, fx.seq.0.wrapping_sub(10)), &[])
        .is_err());
    let out = fx.out();
    assert!(!out[0].has(TcpFlags::SYN));
    assert_eq!(out[0].hdr.ack, fx.seq);
    // Above: a fresh cookie, and its ACK takes over the flow.
    let isn = fx.seq.0.wrapping_add(1000);
    fx.send_hdr(&syn(&no_ts, isn), &[]).unwrap();
    let sa = fx.out().remove(0);
    assert!(sa.has(TcpFlags::SYN));
    let ack = TcpHeader {
        seq: SeqNumber(isn.wrapping_add(1)),
        ack: sa.hdr.seq + 1u32,
        ..templ()
    };
    fx.send_hdr(&ack, b"GET").unwrap();
    assert_eq!(fx.ep.time_wait_count(), 0);
    assert_eq!(fx.ep.connection_count(), 1);
}
