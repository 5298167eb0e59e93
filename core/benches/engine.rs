//! The engine's ceiling: TCP + HTTP + app on one core with no I/O at all.
//!
//! Each benchmark drives `Engine` with frames from `testkit::ScriptedClient` and drains every
//! frame it answers with, so an iteration is the full per-request work the AF_XDP poller will
//! do minus the rings. Throughput is reported in elements (requests or handshakes) per second.
//! The workloads are in `workloads/mod.rs`, shared with `examples/engine_instructions.rs`, which
//! counts their instructions (deterministic where wall time on a shared machine is not).
//!
//!   cargo bench -p xgate-core --bench engine

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

mod workloads;
use workloads::{Bytes16k, Churn, Echo1k, KeepAlive, ProxiedKeepAlive, Syn};

fn keepalive(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1));
    group.bench_function("keepalive_get_health", |b| {
        let mut w = KeepAlive::new();
        b.iter(|| w.step());
        assert_eq!(
            w.rig.engine.connection_count(),
            1,
            "the connection stayed up"
        );
    });
    group.bench_function("keepalive_get_health_access_logged", |b| {
        let mut w = KeepAlive::logged(1024);
        let mut handed = 0;
        b.iter(|| {
            w.step();
            handed += w.hand_over_if_full();
        });
        assert!(handed + w.logged_now() > 0, "requests were logged");
    });
    group.bench_function("keepalive_get_proxied", |b| {
        let mut w = ProxiedKeepAlive::new();
        b.iter(|| w.step());
        assert!(w.upstream_requests() > 1, "requests were forwarded");
    });
    group.bench_function("keepalive_post_echo_1k", |b| {
        let mut w = Echo1k::new();
        b.iter(|| w.step());
        assert_eq!(w.rig.engine.connection_count(), 1);
    });
    group.bench_function("keepalive_get_bytes_16k", |b| {
        let mut w = Bytes16k::new();
        b.iter(|| w.step());
        assert_eq!(w.rig.engine.connection_count(), 1);
    });
    group.finish();
}

fn churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1));
    group.bench_function("connection_per_request", |b| {
        let mut w = Churn::new();
        b.iter(|| w.step());
    });
    group.bench_function("syn_to_cookie_syn_ack", |b| {
        let mut w = Syn::new();
        b.iter(|| w.step());
        assert_eq!(
            w.rig.engine.connection_count(),
            0,
            "SYNs alone create no state"
        );
    });
    group.finish();
}

criterion_group!(benches, keepalive, churn);
criterion_main!(benches);
