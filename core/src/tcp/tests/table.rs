//! The connection table and the endpoint as a whole: stale handles, the idle timeout, the
//! timer heap's bound, garbage input, odd configurations, drop reasons and counters.

use super::*;

#[test]
fn stale_conn_handle_is_rejected_after_slot_reuse() {
    let mut fx = Fx::new();
    let old = fx.h;
    fx.ep.abort(old);
    fx.out();
    fx.events();
    // New connection reuses slot 0.
    let mut s = syn(&ALL_OPTS, 7000);
    s.src_port = CPORT + 5;
    fx.send_hdr(&s, &[]).unwrap();
    let sa = fx.out().remove(0);
    let ack = TcpHeader {
        src_port: CPORT + 5,
        seq: SeqNumber(7001),
        ack: sa.hdr.seq + 1u32,
        options: TcpOptions {
            timestamps: Some((101, sa.hdr.options.timestamps.unwrap().0)),
            ..TcpOptions::default()
        },
        ..templ()
    };
    fx.send_hdr(&ack, b"new data").unwrap();
    let Some(Event::Established { conn: new, .. }) = fx.events().first().copied() else {
        panic!()
    };
    assert_eq!(new.index(), old.index());
    assert_ne!(new, old);
    let (a, b) = fx.ep.recv_slices(old);
    assert!(a.is_empty() && b.is_empty());
    let (a, b) = fx.ep.send_space(old);
    assert!(a.is_empty() && b.is_empty());
    fx.ep.close(old);
    fx.ep.abort(old);
    fx.ep.consume(old, 100);
    assert_eq!(fx.ep.connection_count(), 1);
    let (a, _) = fx.ep.recv_slices(new);
    assert_eq!(a, b"new data");
}

#[test]
fn idle_timeout_aborts() {
    let cfg = TcpConfig {
        idle_timeout: Duration::from_secs(10),
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    fx.advance(Duration::from_secs(5));
    fx.send(TcpFlags::ACK, b"x").unwrap();
    fx.advance(Duration::from_secs(6));
    assert_eq!(fx.ep.connection_count(), 1, "activity pushed the deadline");
    fx.advance(Duration::from_secs(5));
    assert_eq!(fx.ep.connection_count(), 0);
    let out = fx.out();
    assert!(out.iter().any(|o| o.has(TcpFlags::RST)));
    assert_eq!(closed_count(&fx.events()), 1);
    fx.assert_all_gone();
}

#[test]
fn timer_heap_stays_bounded_under_churn() {
    let mut fx = Fx::new();
    for _ in 0..5000 {
        fx.send(TcpFlags::ACK, b"x").unwrap();
        fx.app_send(b"y");
        fx.out_and_ack();
        fx.send(TcpFlags::ACK, &[]).unwrap();
    }
    assert!(fx.ep.heap_len() <= 2 * 8 + 16);
}

#[test]
fn garbage_frames_never_panic() {
    let mut fx = Fx::new();
    let mut rng = 0x1234_5678_u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..20_000 {
        let r = next();
        let mut h = fx.hdr(TcpFlags::from_bits((r & 0x3f) as u8));
        h.seq = SeqNumber((next() as u32) % 4 + fx.seq.0.wrapping_sub(2));
        if r & 0x100 != 0 {
            h.seq = SeqNumber(next() as u32);
        }
        h.ack = SeqNumber(fx.ack.0.wrapping_add((next() % 5) as u32).wrapping_sub(2));
        if r & 0x200 != 0 {
            h.ack = SeqNumber(next() as u32);
        }
        h.window = next() as u16;
        let len = (next() % 3000) as usize;
        let _ = fx.send_hdr(&h, &vec![0xAB; len]);
        if r & 0x400 != 0 {
            fx.advance(Duration::from_millis(next() % 2000));
        }
        fx.out();
        if r & 0x800 != 0 {
            let n = fx.readable().len();
            fx.ep.consume(fx.h, n);
            fx.app_send(b"pong");
        }
    }
}

#[test]
fn odd_config_does_not_panic() {
    let cfg = TcpConfig {
        max_connections: 1,
        rx_buffer: 0,
        tx_buffer: 0,
        max_ooo_bytes: 0,
        mss: 0,
        window_scale: 200,
        min_rto: Duration::from_secs(10),
        max_rto: Duration::from_millis(1),
        max_time_wait: 0,
        max_stateless_replies: 0,
        challenge_ack_limit: 0,
        delayed_ack: Duration::ZERO,
        ..TcpConfig::default()
    };
    let now = t0();
    let mut ep = Endpoint::new(cfg.clone(), SECRET, now);
    let _ = ep.handle_frame(now, &frame(&syn(&ALL_OPTS, 1), &[]));
    assert!(drain(&mut ep, now).is_empty(), "no room for replies");
    let cfg = TcpConfig {
        max_stateless_replies: 4,
        ..cfg
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let _ = fx.send(TcpFlags::ACK, b"data");
    fx.app_send(b"x");
    fx.ep.close(fx.h);
    for _ in 0..50 {
        fx.out();
        if fx.ep.poll_timeout().is_none() {
            break;
        }
        fx.fire_next();
    }
    fx.assert_all_gone();
}

#[test]
fn drop_reasons_are_listed_in_index_order_with_distinct_names() {
    // Counters are exported by name from `DropReason::ALL`; a reason missing there would
    // be counted but never shown.
    let mut names = std::collections::HashSet::new();
    for (i, r) in DropReason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
        assert!(names.insert(r.name()), "{} twice", r.name());
    }
    assert_eq!(names.len(), DropReason::COUNT);
}

#[test]
fn stats_add_sums_every_counter() {
    let mut one = TcpStats {
        retransmits: 2,
        ..TcpStats::default()
    };
    one.count_drop(DropReason::Malformed);
    let mut total = TcpStats::default();
    total.add(&one);
    total.add(&one);
    assert_eq!(total.retransmits, 4);
    assert_eq!(total.drop_count(DropReason::Malformed), 2);
}
