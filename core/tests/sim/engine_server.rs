//! The engine under simulation: `xgate_core::engine::Engine` behind [`SimServer`], and its tests.
//!
//! [`SimEngine`] wraps the engine with a model of the BPF `user_flows` map built from its flow
//! events: each flow must be added once before it is removed once, no event may be dropped, and
//! a run ends only when the engine holds no connection *and* the map is empty.
//!
//! Debug: `cargo test -p xgate-core --test simulation engine_`. Many seeds:
//! `SIM_SEEDS=2000 SIM_THREADS=2 cargo test --release -p xgate-core --test simulation
//! engine_many_seeds -- --nocapture`. A failure prints its seed and profile; replay it with
//! `SIM_SEED=<n> SIM_PROFILE=<name> cargo test --release -p xgate-core --test simulation
//! engine_replay -- --nocapture` (add `SIM_TRACE=1` to see every frame).

use std::collections::HashSet;

use xgate_core::app::{App, AppConfig};
use xgate_core::engine::{Engine, EngineConfig, FlowEvent};
use xgate_core::http::HttpLimits;
use xgate_core::tcp::{DropReason, FlowKey, TcpConfig};
use xgate_core::time::{Duration, Instant};

use super::client::{Client, Family, NEIGHBOURS};
use super::device::{for_the_kernel, neighbour_reply};
use super::http::Workload;
use super::link::PROFILES;
use super::rng::{Fnv, Rng};
use super::{ClientShape, SimConfig, SimServer};

/// The engine plus the `user_flows` map its flow events describe.
pub struct SimEngine {
    engine: Engine,
    flows: HashSet<FlowKey>,
    seed: u64,
}

impl SimEngine {
    /// Applies the engine's flow events to the map model; a wrong sequence is an engine bug.
    fn drain_flow_events(&mut self) {
        while let Some(event) = self.engine.poll_flow_event() {
            let ok = match event {
                FlowEvent::Added(key) => self.flows.insert(key),
                FlowEvent::Removed(key) => self.flows.remove(&key),
            };
            assert!(
                ok,
                "seed {}: flow event {event:?} does not match the user_flows map ({} entries)",
                self.seed,
                self.flows.len()
            );
        }
        assert_eq!(
            self.engine.stats().flow_events_dropped,
            0,
            "seed {}: the engine dropped flow events",
            self.seed
        );
    }
}

impl SimServer for SimEngine {
    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        // Refused frames are counted by the engine; the simulation checks outcomes, not this.
        let _ = self.engine.handle_frame(now, frame);
        self.drain_flow_events();
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let n = self.engine.poll_transmit(now, buf);
        self.drain_flow_events();
        n
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.engine.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.engine.handle_timeout(now);
        self.drain_flow_events();
    }

    fn connection_count(&self) -> usize {
        self.engine.connection_count().max(self.flows.len())
    }
}

/// The engine as the simulation runs it; the SYN-cookie secret comes from the run's seed.
///
/// The HTTP header and idle timeouts are raised to 10 minutes: smoltcp's RTO backs off to 60 s
/// under heavy loss and reordering, so a client can legitimately go quiet for longer than the
/// production defaults (10 s / 60 s), and a 408 or a quiet close would then fail a run that
/// found nothing wrong.
pub fn new_engine(seed: u64, now: Instant) -> SimEngine {
    new_engine_with(seed, now, TcpConfig::default())
}

/// `new_engine` with TCP settings of the test's choosing.
pub fn new_engine_with(seed: u64, now: Instant, tcp: TcpConfig) -> SimEngine {
    let mut secret = [0u8; 32];
    Rng::fork(seed, 0xE9).fill(&mut secret);
    let app = App::new(&AppConfig::default()).expect("the default app config is valid");
    let config = EngineConfig {
        tcp,
        http: HttpLimits {
            header_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(600),
            ..HttpLimits::default()
        },
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(config, app, secret, now);
    engine.set_wall_clock(1_767_225_600);
    SimEngine {
        engine,
        flows: HashSet::new(),
        seed,
    }
}

fn engine_cfg(seed: u64, profile: super::link::Profile, family: Family) -> SimConfig {
    let mut cfg = SimConfig::new(seed, profile);
    cfg.replay_test = "sim::engine_server::engine_replay";
    cfg.client.family = family;
    cfg
}

fn check_engine(cfg: &SimConfig) -> super::Outcome {
    let seed = cfg.seed;
    crate::check_server(cfg, |now| new_engine(seed, now))
}

/// Every profile, two seeds each.
#[test]
fn engine_all_profiles() {
    for (i, profile) in PROFILES.iter().enumerate() {
        for seed in [i as u64 * 2 + 1, i as u64 * 2 + 2] {
            check_engine(&engine_cfg(seed, *profile, Family::V4));
        }
    }
}

/// Every profile over IPv6, one seed each (the first of each profile's IPv4 pair: the same
/// workload and impairments, so a seed that fails here alone points at the family). The
/// client's Neighbour Solicitations were answered by the harness and never reached the engine,
/// and the engine resolved nothing itself.
#[test]
fn engine_ipv6_all_profiles() {
    for (i, profile) in PROFILES.iter().enumerate() {
        let o = check_engine(&engine_cfg(i as u64 * 2 + 1, *profile, Family::V6));
        assert!(o.client_kernel.answered > 0, "{}", profile.name);
        assert_eq!(o.client_kernel.unanswered, 0, "{}", profile.name);
        assert_eq!(o.server_resolutions, 0, "{}", profile.name);
    }
}

/// Were a Neighbour Solicitation to reach the engine (the XDP program passes ICMPv6 to the
/// kernel, and the harness answers it instead), the engine refuses it and keeps nothing:
/// no answer, no connection, no timer.
#[test]
fn engine_refuses_a_neighbour_solicitation_without_a_trace() {
    let cfg = engine_cfg(1, crate::profile_named("clean"), Family::V6);
    let now = Instant::from_secs(1);
    let workload = Workload::generate(&mut Rng::fork(cfg.seed, 3), cfg.max_conns);
    let mut client = Client::new(workload, Rng::fork(cfg.seed, 4), now, cfg.client);
    client
        .poll(now, &mut Fnv::default())
        .expect("client starts");
    let solicitation = client
        .device
        .tx
        .pop_front()
        .expect("the client's first frame");
    assert!(for_the_kernel(&solicitation));
    assert!(neighbour_reply(&solicitation, &NEIGHBOURS).is_some());

    let mut sim = new_engine(cfg.seed, now);
    assert_eq!(
        sim.engine.handle_frame(now, &solicitation),
        Err(DropReason::Malformed)
    );
    let mut buf = [0u8; 2048];
    assert_eq!(sim.engine.poll_transmit(now, &mut buf), None);
    assert_eq!(sim.engine.connection_count(), 0);
    assert_eq!(sim.engine.poll_timeout(), None);
    assert!(sim.engine.poll_flow_event().is_none());
}

/// `SIM_SEEDS` seeds (default 12) from `SIM_SEED_BASE` (default 1000), cycling profiles, on
/// `SIM_THREADS` threads; lists every failing seed at the end.
#[test]
fn engine_many_seeds() {
    crate::sweep("sim::engine_server::engine_replay", new_engine);
}

/// Runs `SIM_SEED` under `SIM_PROFILE` (defaults: seed 1, combined) against the engine.
#[test]
fn engine_replay() {
    let seed = crate::env_u64("SIM_SEED").unwrap_or(1);
    let name = std::env::var("SIM_PROFILE").unwrap_or("combined".into());
    let mut cfg = engine_cfg(seed, crate::profile_named(&name), Family::V4);
    cfg.client = crate::client_from_env();
    check_engine(&cfg);
}

/// Many connections at once (48 to 96), clean and impaired.
#[test]
fn engine_crowd() {
    for (seed, name) in [(3, "clean"), (5, "combined")] {
        let mut cfg = engine_cfg(seed, crate::profile_named(name), Family::V4);
        cfg.max_conns = 96;
        check_engine(&cfg);
    }
}

/// Clients without timestamps behind a 1280-byte path (MSS 1240; over IPv6 1220, which only
/// the IPv6 floor keeps a cookie from rounding down to 1200), and behind a 1300-byte one (MSS
/// 1260, which a cookie would round down to 1240; over IPv6 1240): every SYN-ACK answers their
/// window scale and SACK offer, without timestamps, and the largest segment the engine sends
/// is exactly their MSS, 20 bytes less over IPv6 than over IPv4.
#[test]
fn engine_clients_without_timestamps_get_their_exact_mss_window_scale_and_sack() {
    use Family::{V4, V6};
    for (seed, name, mtu, family) in [
        (7, "clean", 1280, V4),
        (8, "loss1", 1280, V4),
        (9, "reorder10", 1280, V4),
        (10, "combined", 1280, V4),
        (11, "clean", 1300, V4),
        (12, "loss1", 1300, V4),
        (7, "clean", 1280, V6),
        (10, "combined", 1280, V6),
        (12, "loss1", 1300, V6),
    ] {
        let mut cfg = engine_cfg(seed, crate::profile_named(name), family);
        cfg.client = ClientShape {
            family,
            mtu,
            timestamps: false,
        };
        let o = check_engine(&cfg);
        let s = &o.server_options;
        let run = format!("{name} seed {seed} {family:?}");
        assert!(s.syn_acks > 0, "{run}");
        assert_eq!(s.syn_acks_with_window_scale, s.syn_acks, "{run}");
        assert_eq!(s.syn_acks_with_sack, s.syn_acks, "{run}");
        assert_eq!(s.syn_acks_with_timestamps, 0, "{run}");
        assert_eq!(s.max_payload, mtu - family.ip_header_len() - 20, "{run}");
    }
}

/// 1.5% random loss each way over a 50 Mbit/s bottleneck with a 64 KiB drop-tail queue and
/// a 10 ms round trip, where RACK-TLP does most of the engine's loss recovery: every response
/// complete and correct, every connection ended cleanly (`check_server`'s checks). (The long
/// quiet stretches some seeds show are the smoltcp client's own RTO backoff on its uploads
/// into the queue, and the final TIME-WAIT.)
#[test]
fn engine_random_loss_over_a_bottleneck() {
    for seed in 1..=6 {
        check_engine(&engine_cfg(
            seed,
            crate::profile_named("loss2_bottleneck"),
            Family::V4,
        ));
    }
}

#[test]
fn engine_same_seed_same_trace() {
    let cfg = engine_cfg(42, crate::profile_named("combined"), Family::V4);
    assert_eq!(
        check_engine(&cfg),
        check_engine(&cfg),
        "engine run not deterministic"
    );
}
