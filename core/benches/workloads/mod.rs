//! The engine workloads, one step each: shared by the criterion benchmark (`engine.rs`, wall
//! time) and the instruction counter (`examples/engine_instructions.rs`, run under
//! cachegrind), so both measure the same work.

use std::hint::black_box;

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

/// The engine, the clock and the client's buffers every workload drives.
pub struct Rig {
    pub engine: Engine,
    pub now: Instant,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl Rig {
    fn new() -> Rig {
        let now = Instant::from_secs(1);
        Rig {
            engine: engine(now),
            now,
            buf: Vec::with_capacity(2048),
            out: vec![0u8; 2048],
        }
    }

    /// Hands every frame the engine wants to send to the client; returns how many there were.
    fn drain(&mut self, client: &mut ScriptedClient) -> usize {
        let mut frames = 0;
        while let Some(n) = self.engine.poll_transmit(self.now, &mut self.out) {
            client.receive(&self.out[..n], None);
            frames += 1;
        }
        while self.engine.poll_flow_event().is_some() {}
        frames
    }

    fn handshake(&mut self, client: &mut ScriptedClient) {
        let n = client.syn(&mut self.buf, true);
        self.engine
            .handle_frame(self.now, &self.buf[..n])
            .expect("SYN accepted");
        self.drain(client);
        let n = client.send(&mut self.buf, &[]);
        self.engine
            .handle_frame(self.now, &self.buf[..n])
            .expect("cookie ACK accepted");
        self.drain(client);
    }
}

/// Keep-alive `GET /health` on one connection: the request frame in, the response frames out.
pub struct KeepAlive {
    pub rig: Rig,
    client: ScriptedClient,
}

impl KeepAlive {
    pub fn new() -> KeepAlive {
        let mut rig = Rig::new();
        let mut client = ScriptedClient::new(40000, 80, 1);
        rig.handshake(&mut client);
        KeepAlive { rig, client }
    }

    pub fn step(&mut self) {
        let rig = &mut self.rig;
        // The request also acknowledges the previous response.
        let n = self.client.send(&mut rig.buf, GET_HEALTH);
        rig.engine
            .handle_frame(rig.now, black_box(&rig.buf[..n]))
            .expect("request accepted");
        let frames = rig.drain(&mut self.client);
        debug_assert!(frames >= 1);
        rig.now += Duration::from_micros(5);
    }
}

/// A whole connection per request: SYN, cookie SYN-ACK, ACK, request with `Connection:
/// close`, response + FIN, client FIN, final ACK.
pub struct Churn {
    pub rig: Rig,
    port: u16,
    generation: u32,
}

impl Churn {
    pub fn new() -> Churn {
        Churn {
            rig: Rig::new(),
            port: 1024,
            generation: 0,
        }
    }

    pub fn step(&mut self) {
        self.port = if self.port == u16::MAX {
            1024
        } else {
            self.port + 1
        };
        // A port comes back while its last connection may still be in TIME_WAIT; like a real
        // client, move the ISN and the timestamp clock forward (RFC 6191).
        self.generation = self.generation.wrapping_add(1);
        let mut client = ScriptedClient::new(self.port, 80, self.generation.wrapping_mul(1 << 20));
        client.ts = self.generation.wrapping_mul(1000);
        let rig = &mut self.rig;
        rig.handshake(&mut client);
        let n = client.send(&mut rig.buf, GET_HEALTH_CLOSE);
        rig.engine
            .handle_frame(rig.now, &rig.buf[..n])
            .expect("request accepted");
        rig.drain(&mut client);
        // The server closed after the response; acknowledge its FIN and close our side.
        let n = client.fin(&mut rig.buf);
        rig.engine
            .handle_frame(rig.now, &rig.buf[..n])
            .expect("FIN accepted");
        rig.drain(&mut client);
        rig.now += Duration::from_micros(20);
    }
}

/// A SYN answered with a cookie SYN-ACK (the cost of a SYN flood).
pub struct Syn {
    pub rig: Rig,
    port: u16,
}

impl Syn {
    pub fn new() -> Syn {
        Syn {
            rig: Rig::new(),
            port: 1024,
        }
    }

    pub fn step(&mut self) {
        self.port = self.port.wrapping_add(1).max(1024);
        let mut client = ScriptedClient::new(self.port, 80, 7);
        let rig = &mut self.rig;
        let n = client.syn(&mut rig.buf, true);
        rig.engine
            .handle_frame(rig.now, black_box(&rig.buf[..n]))
            .expect("SYN accepted");
        rig.drain(&mut client);
    }
}
