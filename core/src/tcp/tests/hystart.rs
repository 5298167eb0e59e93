//! HyStart++ (RFC 9406) at the connection: how the first slow start ended is counted, with
//! the window it ended at, as an operator reads it in `xgate_bypass_tcp_hystart_total`.

use super::*;

/// A bulk download over a 1 ms path whose bottleneck spaces the client's ACKs (one per two
/// segments) 100 µs apart: each round's ACKs come as a train. Returns the round in which
/// slow start ended, with the connection's cwnd and ssthresh in segments then.
fn download_in_trains(fx: &mut Fx) -> Option<(usize, u32, u32)> {
    let data = vec![7u8; 1 << 20];
    let mut queued = fx.app_send(&data);
    for round in 0..8 {
        let segs: Vec<Out> = fx
            .out()
            .into_iter()
            .filter(|o| !o.payload.is_empty())
            .collect();
        assert!(!segs.is_empty(), "round {round}: nothing sent");
        fx.now += Duration::from_millis(1);
        for pair in segs.chunks(2) {
            let last = pair.last().unwrap();
            fx.ack = last.hdr.seq + last.payload.len();
            fx.send(TcpFlags::ACK, &[]).unwrap();
            fx.now += Duration::from_micros(100);
        }
        queued += fx.app_send(&data[queued..]);
        if fx.ep.stats().hystart_train_exits > 0 {
            let conn = fx.ep.conn_for_test(fx.h).unwrap();
            let smss = conn.debug_smss();
            let (cwnd, ssthresh, _) = conn.debug_cwnd();
            return Some((round, cwnd / smss, ssthresh / smss));
        }
    }
    None
}

#[test]
fn an_ack_train_ends_slow_start_and_is_counted_with_its_window() {
    let cfg = TcpConfig {
        tx_buffer: 1 << 20,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let (round, cwnd, ssthresh) = download_in_trains(&mut fx).expect("slow start ended");
    // Rounds of about 10, 20, 40 segments (L = 2 per ACK of two): the third round's ACK
    // train passes (1 ms + 1 ms) / 2 at its twelfth ACK, after eleven have grown cwnd by 22.
    assert_eq!(round, 2);
    assert!((55..=65).contains(&cwnd), "cwnd {cwnd} segments");
    assert_eq!(ssthresh, cwnd, "congestion avoidance at this window");
    let s = fx.ep.stats();
    assert_eq!(s.hystart_train_exits, 1);
    assert_eq!(s.hystart_train_exit_segments, u64::from(ssthresh));
    assert_eq!(s.hystart_delay_exits, 0);
}

#[test]
fn without_hystart_nothing_is_counted() {
    let cfg = TcpConfig {
        tx_buffer: 1 << 20,
        hystart: false,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    assert_eq!(download_in_trains(&mut fx), None, "RFC 5681 slow start");
    // The download ran on, eight rounds of trains, with nothing counted.
    let s = fx.ep.stats();
    assert_eq!(
        [
            s.hystart_css_entries,
            s.hystart_css_abandoned,
            s.hystart_train_exits,
            s.hystart_train_exit_segments,
            s.hystart_delay_exits,
            s.hystart_delay_exit_segments,
        ],
        [0; 6]
    );
}
