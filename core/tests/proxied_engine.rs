//! The bypass engine forwarding keep-alive requests through a `Forwarder` to an upstream that
//! answers at once (the `proxied-keepalive` workload of the benchmarks), for long enough that
//! the connection's transmit ring wraps many times: a proxied response's head is written
//! whole, so where the ring's free space wraps it must be offered contiguous room (it once
//! stalled there, after 2,818 requests).

#[allow(dead_code)]
#[path = "../benches/workloads/mod.rs"]
mod workloads;

#[test]
fn thousands_of_proxied_requests_on_one_connection_are_all_answered() {
    let mut w = workloads::ProxiedKeepAlive::new();
    for _ in 0..8_000 {
        w.step();
    }
    assert_eq!(w.upstream_requests(), 8_001);
    assert!(
        w.rig.engine.stats().linearized_out > 0,
        "the ring wrapped under a head"
    );
}
