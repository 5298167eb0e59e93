//! The engine under simulation: `impl SimServer for dataplane::engine::Engine` and its tests.
//!
//! `SIM_TRACE=1` to see every frame).

use dataplane::app::{App, AppConfig};
use dataplane::engine::{Engine, EngineConfig};
use dataplane::time::Instant;

use super::link::PROFILES;
use super::rng::Rng;
use super::{SimConfig, SimServer};

impl SimServer for Engine {
    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        // Refused frames are counted by the engine; the simulation checks outcomes, not this.
        let _ = Engine::handle_frame(self, now, frame);
        // Flow events feed the BPF `user_flows` map in production; nothing reads them here.
        while self.poll_flow_event().is_some() {}
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        Engine::poll_transmit(self, now, buf)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Engine::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        Engine::handle_timeout(self, now);
        while self.poll_flow_event().is_some() {}
    }

    fn connection_count(&self) -> usize {
        Engine::connection_count(self)
    }
}

/// The engine as the simulation runs it; the SYN-cookie secret comes from the run's seed.
pub fn new_engine(seed: u64, now: Instant) -> Engine {
    let mut secret = [0u8; 32];
    Rng::fork(seed, 0xE9).fill(&mut secret);
    let app = App::new(&AppConfig::default()).expect("the default app config is valid");
    let mut engine = Engine::new(EngineConfig::default(), app, secret, now);
    engine.set_wall_clock(1_767_225_600);
    engine
}

fn engine_cfg(seed: u64, profile: super::link::Profile) -> SimConfig {
    let mut cfg = SimConfig::new(seed, profile);
    cfg.replay_test = "engine_replay";
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
            check_engine(&engine_cfg(seed, *profile));
        }
    }
}

/// `SIM_SEEDS` seeds (default 12) from `SIM_SEED_BASE` (default 1000), cycling profiles, on
/// `SIM_THREADS` threads; lists every failing seed at the end.
#[test]
fn engine_many_seeds() {
    crate::sweep("engine_replay", new_engine);
}

/// Runs `SIM_SEED` under `SIM_PROFILE` (defaults: seed 1, combined) against the engine.
#[test]
fn engine_replay() {
    let seed = crate::env_u64("SIM_SEED").unwrap_or(1);
    let name = std::env::var("SIM_PROFILE").unwrap_or("combined".into());
    check_engine(&engine_cfg(seed, crate::profile_named(&name)));
}

#[test]
fn engine_same_seed_same_trace() {
    let cfg = engine_cfg(42, crate::profile_named("combined"));
    assert_eq!(
        check_engine(&cfg),
        check_engine(&cfg),
        "engine run not deterministic"
    );
}
