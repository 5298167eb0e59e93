//! The engine's ceiling: TCP + HTTP + app on one core with no I/O at all.
//!
//! Each benchmark drives `Engine` with frames from `testkit::ScriptedClient` and drains every
//! frame it answers with, so an iteration is the full per-request work the AF_XDP poller will
//! do minus the rings. Throughput is reported in elements (requests or handshakes) per second.
//!
//!   cargo bench -p xgate-core --bench engine

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xgate_core::app::{App, AppConfig};
use xgate_core::engine::{Engine, EngineConfig};
use xgate_core::testkit::ScriptedClient;
use xgate_core::time::{Duration, Instant};

const GET_HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n";
const GET_HEALTH_CLOSE: &[u8] = b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";

fn engine(now: Instant) -> Engine {
    let app = App::new(&AppConfig::default()).expect("the default config is valid");
    let mut engine = Engine::new(EngineConfig::default(), app, [42u8; 32], now);
    engine.set_wall_clock(1_700_000_000);
    engine
}

/// Hands every frame the engine wants to send to the client; returns how many there were.
fn drain(engine: &mut Engine, now: Instant, client: &mut ScriptedClient, out: &mut [u8]) -> usize {
    let mut frames = 0;
    while let Some(n) = engine.poll_transmit(now, out) {
        client.receive(&out[..n], None);
        frames += 1;
    }
    while engine.poll_flow_event().is_some() {}
    frames
}

fn handshake(
    engine: &mut Engine,
    now: Instant,
    client: &mut ScriptedClient,
    buf: &mut Vec<u8>,
    out: &mut [u8],
) {
    let n = client.syn(buf, true);
    engine.handle_frame(now, &buf[..n]).expect("SYN accepted");
    drain(engine, now, client, out);
    let n = client.send(buf, &[]);
    engine
        .handle_frame(now, &buf[..n])
        .expect("cookie ACK accepted");
    drain(engine, now, client, out);
}

fn keepalive(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1));
    group.bench_function("keepalive_get_health", |b| {
        let mut now = Instant::from_secs(1);
        let mut engine = engine(now);
        let mut client = ScriptedClient::new(40000, 80, 1);
        let (mut buf, mut out) = (Vec::with_capacity(2048), vec![0u8; 2048]);
        handshake(&mut engine, now, &mut client, &mut buf, &mut out);
        b.iter(|| {
            // The request also acknowledges the previous response.
            let n = client.send(&mut buf, GET_HEALTH);
            engine
                .handle_frame(now, black_box(&buf[..n]))
                .expect("request accepted");
            let frames = drain(&mut engine, now, &mut client, &mut out);
            debug_assert!(frames >= 1);
            now += Duration::from_micros(5);
        });
        assert_eq!(engine.connection_count(), 1, "the connection stayed up");
    });
    group.finish();
}

fn churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1));
    group.bench_function("connection_per_request", |b| {
        let mut now = Instant::from_secs(1);
        let mut engine = engine(now);
        let (mut buf, mut out) = (Vec::with_capacity(2048), vec![0u8; 2048]);
        let mut port: u16 = 1024;
        let mut generation: u32 = 0;
        b.iter(|| {
            port = if port == u16::MAX { 1024 } else { port + 1 };
            // A port comes back while its last connection may still be in TIME_WAIT; like a
            // real client, move the ISN and the timestamp clock forward (RFC 6191).
            generation = generation.wrapping_add(1);
            let mut client = ScriptedClient::new(port, 80, generation.wrapping_mul(1 << 20));
            client.ts = generation.wrapping_mul(1000);
            handshake(&mut engine, now, &mut client, &mut buf, &mut out);
            let n = client.send(&mut buf, GET_HEALTH_CLOSE);
            engine
                .handle_frame(now, &buf[..n])
                .expect("request accepted");
            drain(&mut engine, now, &mut client, &mut out);
            // The server closed after the response; acknowledge its FIN and close our side.
            let n = client.fin(&mut buf);
            engine.handle_frame(now, &buf[..n]).expect("FIN accepted");
            drain(&mut engine, now, &mut client, &mut out);
            now += Duration::from_micros(20);
        });
    });
    group.bench_function("syn_to_cookie_syn_ack", |b| {
        let now = Instant::from_secs(1);
        let mut engine = engine(now);
        let (mut buf, mut out) = (Vec::with_capacity(2048), vec![0u8; 2048]);
        let mut port: u16 = 1024;
        b.iter(|| {
            port = port.wrapping_add(1).max(1024);
            let mut client = ScriptedClient::new(port, 80, 7);
            let n = client.syn(&mut buf, true);
            engine
                .handle_frame(now, black_box(&buf[..n]))
                .expect("SYN accepted");
            drain(&mut engine, now, &mut client, &mut out);
        });
        assert_eq!(engine.connection_count(), 0, "SYNs alone create no state");
    });
    group.finish();
}

criterion_group!(benches, keepalive, churn);
criterion_main!(benches);
