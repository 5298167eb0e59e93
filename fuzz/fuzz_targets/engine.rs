#![no_main]
//! The whole sans-IO gateway (TCP + HTTP + app) fed segments an attacker chooses.
//!
//! A scripted client first completes a real SYN-cookie handshake (with or without
//! timestamps), then sends fuzzer-chosen segments whose sequence and acknowledgment numbers
//! are offsets from the live values, so the fuzzer explores the edges of the windows rather
//! than random 32-bit numbers; well-formed requests, raw frames (checksums repaired) and time
//! jumps are mixed in, over IPv4 or IPv6, and ICMP path MTU messages quoting the connection
//! at sequence numbers around the live ones (RFC 1191 / RFC 8201: the MSS goes down, the
//! flight goes again). Every frame the engine emits must parse, the table stays bounded, and
//! once every timer has run no connection is left.
use xgate_core::app::{App, AppConfig};
use xgate_core::engine::{Engine, EngineConfig};
use xgate_core::testkit::ScriptedClient;
use xgate_core::time::{Duration, Instant};
use xgate_core::wire::{parse_tcp_frame, SackBlock, TcpFlags};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

const MAX_CONNECTIONS: usize = 4;

#[derive(Arbitrary, Debug)]
enum Op {
    Segment {
        flags: u8,
        seq_off: i16,
        ack_off: i16,
        window: u16,
        payload: Vec<u8>,
        ts_off: Option<(i16, i16)>,
        sack: Option<(i16, u16)>,
    },
    Request {
        pipelined: u8,
        body: u16,
    },
    Fin,
    Raw(Vec<u8>),
    Advance(u16),
    /// A router's "too big" for the server's segment at `seq_off` from what the client has
    /// acknowledged, reporting `mtu`.
    TooBig {
        mtu: u32,
        seq_off: i16,
    },
}

#[derive(Arbitrary, Debug)]
struct Script {
    timestamps: bool,
    /// The client talks IPv6 (flows keyed by IPv6 addresses, cookies over them, replies in
    /// IPv6).
    ipv6: bool,
    ops: Vec<Op>,
}

/// Everything the engine wants to send goes to the client; every frame must parse.
fn drain(engine: &mut Engine, now: Instant, client: &mut ScriptedClient) {
    let mut buf = [0u8; 2048];
    let mut frames = 0;
    while let Some(n) = engine.poll_transmit(now, &mut buf) {
        frames += 1;
        assert!(frames < 100_000, "poll_transmit never runs dry");
        parse_tcp_frame(&buf[..n]).expect("the engine emits well-formed frames");
        client.receive(&buf[..n], None);
    }
    while engine.poll_flow_event().is_some() {}
    assert!(engine.connection_count() <= MAX_CONNECTIONS);
}

fn offset(base: xgate_core::wire::SeqNumber, off: i16) -> xgate_core::wire::SeqNumber {
    base + (i32::from(off) as u32)
}

fuzz_target!(|script: Script| {
    // Small bounds keep each run cheap and reach the limits (full rings, full TIME_WAIT,
    // idle timeouts) within a few operations.
    let mut config = EngineConfig::default();
    config.tcp.max_connections = MAX_CONNECTIONS;
    config.tcp.rx_buffer = 8192;
    config.tcp.tx_buffer = 8192;
    config.tcp.max_ooo_bytes = 4096;
    config.tcp.max_time_wait = 4;
    config.tcp.max_stateless_replies = 16;
    config.tcp.idle_timeout = Duration::from_secs(20);
    config.tcp.time_wait = Duration::from_secs(5);
    config.tcp.fin_wait_2_timeout = Duration::from_secs(5);
    config.http.idle_timeout = Duration::from_secs(10);
    config.http.header_timeout = Duration::from_secs(5);
    let app = App::new(&AppConfig::default()).expect("the default config is valid");
    let mut now = Instant::from_secs(10);
    let mut engine = Engine::new(config, app, [7u8; 32], now);
    let mut client = if script.ipv6 {
        ScriptedClient::new_ipv6(40000, 80, 1000)
    } else {
        ScriptedClient::new(40000, 80, 1000)
    };
    let mut buf = Vec::new();

    let n = client.syn(&mut buf, script.timestamps);
    let _ = engine.handle_frame(now, &buf[..n]);
    drain(&mut engine, now, &mut client);
    let n = client.send(&mut buf, &[]);
    let _ = engine.handle_frame(now, &buf[..n]);
    drain(&mut engine, now, &mut client);

    for op in script.ops.iter().take(256) {
        match op {
            Op::Segment {
                flags,
                seq_off,
                ack_off,
                window,
                payload,
                ts_off,
                sack,
            } => {
                let mut tcp = client.header(TcpFlags::from_bits(*flags));
                tcp.seq = offset(client.seq, *seq_off);
                tcp.ack = offset(client.server_next, *ack_off);
                tcp.window = *window;
                tcp.options.timestamps = ts_off.map(|(v, e)| {
                    let echo = client.server_ts.unwrap_or(0);
                    (
                        client.ts.wrapping_add(i32::from(v) as u32),
                        echo.wrapping_add(i32::from(e) as u32),
                    )
                });
                if let Some((off, len)) = sack {
                    let left = offset(client.server_next, *off);
                    tcp.options.set_sack(&[SackBlock {
                        left,
                        right: left + u32::from(*len),
                    }]);
                }
                let payload = &payload[..payload.len().min(1460)];
                let n = client.frame(&mut buf, &tcp, payload);
                let _ = engine.handle_frame(now, &buf[..n]);
                if *seq_off == 0 && !tcp.flags.contains(TcpFlags::RST) {
                    client.seq = client.seq + payload.len();
                }
                client.ts = client.ts.wrapping_add(1);
            }
            Op::Request { pipelined, body } => {
                let mut req = Vec::new();
                for _ in 0..=(*pipelined % 4) {
                    let len = usize::from(*body % 2048);
                    req.extend_from_slice(
                        format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n")
                            .as_bytes(),
                    );
                    req.resize(req.len() + len, b'z');
                }
                for chunk in req.chunks(1400) {
                    let n = client.send(&mut buf, chunk);
                    let _ = engine.handle_frame(now, &buf[..n]);
                    drain(&mut engine, now, &mut client);
                }
            }
            Op::Fin => {
                let n = client.fin(&mut buf);
                let _ = engine.handle_frame(now, &buf[..n]);
            }
            Op::Raw(bytes) => {
                let mut frame = bytes.clone();
                xgate_fuzz::repair_checksums(&mut frame);
                let _ = engine.handle_frame(now, &frame);
            }
            Op::TooBig { mtu, seq_off } => {
                let n = client.too_big(&mut buf, *mtu, offset(client.server_next, *seq_off));
                let _ = engine.handle_frame(now, &buf[..n]);
            }
            Op::Advance(ms) => {
                now += Duration::from_millis(u64::from(*ms) * 4);
                if engine.poll_timeout().is_some_and(|t| t <= now) {
                    engine.handle_timeout(now);
                }
            }
        }
        drain(&mut engine, now, &mut client);
    }
    // Let every timer run out: no connection may outlive them.
    for _ in 0..100_000 {
        let Some(t) = engine.poll_timeout() else {
            break;
        };
        now = now.max(t);
        engine.handle_timeout(now);
        drain(&mut engine, now, &mut client);
    }
    assert_eq!(
        engine.connection_count(),
        0,
        "a connection outlived every timer"
    );
});
