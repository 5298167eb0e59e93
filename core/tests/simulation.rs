//! Deterministic simulation: a smoltcp client runs seeded HTTP/1.1 workloads against a server
//! across an impaired in-memory link, in virtual time. See `sim/mod.rs` for the harness API.
//!
//! Environment:
//! - `SIM_SEEDS=<n>`: how many seeds `many_seeds` runs (default 12), cycling through profiles;
//!   CI runs more in release, e.g. `SIM_SEEDS=2000 SIM_THREADS=2`.
//! - `SIM_SEED_BASE=<n>`: first seed of `many_seeds` (default 1000).
//! - `SIM_THREADS=<n>`: threads `many_seeds` runs seeds on (default 1).
//! - `SIM_SEED=<n> SIM_PROFILE=<name>`: what `replay` runs.
//! - `SIM_TRACE=1`: print every frame as it is delivered (use with `replay` and `--nocapture`).
//! - `SIM_CLIENT_MTU=<n>`, `SIM_CLIENT_NO_TS=1`: the client's path MTU (its MSS is this minus
//!   40, or 60 over IPv6) and no RFC 7323 timestamps, for the sweeps and replays (default 1500,
//!   timestamps on).
//! - `SIM_FAMILY=6`: IPv6 clients (fd00::1 to the server's fd00::2) for the sweeps and replays
//!   (default 4).
//!
//! The same variables drive the engine's tests (`engine_many_seeds`, `engine_replay`, ... in
//! `sim/engine_server.rs`).
//!
//! Replay a failure: `SIM_SEED=<n> SIM_PROFILE=<name> cargo test --release -p xgate-core --test
//! simulation replay -- --nocapture` (`engine_replay` for the engine; the failure message names
//! the right test).

mod sim;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant as WallInstant;

use sim::client::Family;
use sim::link::{self, Direction, Impairments, PROFILES};
use sim::reference::{Fault, RefServer};
use sim::rng::Rng;
use sim::{run, ClientShape, Failure, Outcome, SimConfig, SimServer};

use xgate_core::time::{Duration, Instant};

fn run_ref(cfg: &SimConfig, fault: Fault) -> Result<Outcome, Failure> {
    let seed = cfg.seed;
    run(cfg, |now| RefServer::new(now, seed ^ 0x5EED, fault))
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

/// The client shape `SIM_FAMILY`, `SIM_CLIENT_MTU` and `SIM_CLIENT_NO_TS` ask for.
fn client_from_env() -> ClientShape {
    let default = ClientShape::default();
    ClientShape {
        family: match env_u64("SIM_FAMILY") {
            None | Some(4) => Family::V4,
            Some(6) => Family::V6,
            Some(n) => panic!("SIM_FAMILY={n}: 4 or 6"),
        },
        mtu: env_u64("SIM_CLIENT_MTU").map_or(default.mtu, |m| m as usize),
        timestamps: std::env::var_os("SIM_CLIENT_NO_TS").is_none(),
    }
}

fn profile_named(name: &str) -> link::Profile {
    link::profile(name).unwrap_or_else(|| {
        let names: Vec<_> = PROFILES.iter().map(|p| p.name).collect();
        panic!("unknown SIM_PROFILE {name:?}; known: {names:?}")
    })
}

/// Runs `cfg` against the reference server, prints a one-line summary, panics with the replay
/// command on failure.
fn check(cfg: &SimConfig) -> Outcome {
    let seed = cfg.seed;
    check_server(cfg, |now| RefServer::new(now, seed ^ 0x5EED, Fault::None))
}

/// `check` for any server (the engine's tests in `sim/engine_server.rs` use it too).
fn check_server<S: SimServer>(cfg: &SimConfig, make_server: impl FnOnce(Instant) -> S) -> Outcome {
    let mut cfg = cfg.clone();
    cfg.print_frames = std::env::var_os("SIM_TRACE").is_some();
    let wall = WallInstant::now();
    match run(&cfg, make_server) {
        Ok(o) => {
            summarize(&cfg, &o, wall.elapsed());
            o
        }
        Err(f) => panic!("{f}"),
    }
}

fn summarize(cfg: &SimConfig, o: &Outcome, wall: std::time::Duration) {
    println!(
        "seed {:>5} {:<10} ipv{} conns {:>2} (rst {} finwd {}) requests {:>3} body {:>8} B  virtual {:>9.3}s (quiet {:.1}s)  steps {:>6}  frames c2s {}/{} s2c {}/{} (lost {} dup {} reord {} corrupt {} taildrop {})  trace {:016x}  wall {:.3}s",
        cfg.seed,
        cfg.profile.name,
        cfg.client.family.number(),
        o.client.connections,
        o.client.aborted,
        o.client.fin_watchdog,
        o.client.requests,
        o.client.body_bytes,
        o.virtual_time.as_secs_f64(),
        o.max_quiet.as_secs_f64(),
        o.steps,
        o.c2s.delivered,
        o.c2s.sent,
        o.s2c.delivered,
        o.s2c.sent,
        o.c2s.lost + o.s2c.lost,
        o.c2s.duplicated + o.s2c.duplicated,
        o.c2s.reordered + o.s2c.reordered,
        o.c2s.corrupted + o.s2c.corrupted,
        o.c2s.tail_dropped + o.s2c.tail_dropped,
        o.trace_hash,
        wall.as_secs_f64()
    );
}

/// Runs `SIM_SEEDS` seeds (default 12) from `SIM_SEED_BASE` (default 1000), cycling through
/// every profile, on `SIM_THREADS` threads (default 1). Runs every seed, then fails listing each
/// failure with its replay command.
fn sweep<S: SimServer>(replay_test: &'static str, make_server: impl Fn(u64, Instant) -> S + Sync) {
    let n = env_u64("SIM_SEEDS").unwrap_or(12);
    let base = env_u64("SIM_SEED_BASE").unwrap_or(1000);
    let threads = env_u64("SIM_THREADS").unwrap_or(1).max(1);
    let wall = WallInstant::now();
    let next = AtomicU64::new(base);
    let results = Mutex::new((0usize, 0usize, Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= base + n {
                    break;
                }
                let profile = PROFILES[(seed % PROFILES.len() as u64) as usize];
                let mut cfg = SimConfig::new(seed, profile);
                cfg.replay_test = replay_test;
                cfg.client = client_from_env();
                let started = WallInstant::now();
                let result = run(&cfg, |now| make_server(seed, now));
                let mut r = results.lock().unwrap();
                match result {
                    Ok(o) => {
                        summarize(&cfg, &o, started.elapsed());
                        r.0 += 1;
                        r.1 += o.client.requests;
                    }
                    Err(f) => {
                        println!("{f}");
                        r.2.push(f.to_string());
                    }
                }
            });
        }
    });
    let (passed, requests, failures) = results.into_inner().unwrap();
    println!(
        "sweep: {passed} of {n} seeds passed, {requests} requests answered byte-exact, in {:.1}s",
        wall.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {n} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn profile_seeds(name: &str, seeds: &[u64]) {
    let profile = profile_named(name);
    for &seed in seeds {
        check(&SimConfig::new(seed, profile));
    }
}

#[test]
fn profile_clean() {
    profile_seeds("clean", &[1, 2]);
}

#[test]
fn profile_loss1() {
    profile_seeds("loss1", &[3]);
}

#[test]
fn profile_loss5() {
    profile_seeds("loss5", &[4]);
}

#[test]
fn profile_reorder10() {
    profile_seeds("reorder10", &[5]);
}

#[test]
fn profile_reorder25() {
    profile_seeds("reorder25", &[6]);
}

#[test]
fn profile_dup1() {
    profile_seeds("dup1", &[7]);
}

#[test]
fn profile_dup5() {
    profile_seeds("dup5", &[8]);
}

#[test]
fn profile_corrupt() {
    profile_seeds("corrupt", &[9]);
}

#[test]
fn profile_bottleneck() {
    profile_seeds("bottleneck", &[10]);
}

#[test]
fn profile_combined() {
    profile_seeds("combined", &[11]);
}

/// Many connections open at once: 48 to 96, all concurrent when the seed says so.
#[test]
fn crowd() {
    for (seed, name) in [(3, "clean"), (5, "combined")] {
        let mut cfg = SimConfig::new(seed, profile_named(name));
        cfg.max_conns = 96;
        check(&cfg);
    }
}

/// The sweep against the reference server (see `sweep` for the environment it reads).
#[test]
fn many_seeds() {
    sweep("replay", |seed, now| {
        RefServer::new(now, seed ^ 0x5EED, Fault::None)
    });
}

/// Runs `SIM_SEED` under `SIM_PROFILE` (defaults: seed 1, combined).
#[test]
fn replay() {
    let seed = env_u64("SIM_SEED").unwrap_or(1);
    let profile = profile_named(&std::env::var("SIM_PROFILE").unwrap_or("combined".into()));
    let mut cfg = SimConfig::new(seed, profile);
    cfg.client = client_from_env();
    check(&cfg);
}

/// The harness over IPv6, against a server that is not the engine: both sides resolve each
/// other with Neighbour Solicitations the harness answers, and nothing else goes to the kernel.
#[test]
fn ipv6_reference_server() {
    let o = check(&SimConfig::ipv6(1, profile_named("combined")));
    assert!(o.client_kernel.answered > 0, "{:?}", o.client_kernel);
    assert_eq!(o.client_kernel.unanswered, 0);
    assert!(o.server_resolutions > 0);
}

#[test]
fn same_seed_same_trace() {
    let profile = profile_named("combined");
    let a = check(&SimConfig::new(42, profile));
    let b = check(&SimConfig::new(42, profile));
    assert_eq!(a, b, "same seed, different runs");
    let c = check(&SimConfig::new(43, profile));
    assert_ne!(a.trace_hash, c.trace_hash, "different seeds, same trace");
}

/// The harness must notice a server that answers one wrong body byte (and its replay command
/// names the family) ...
#[test]
fn harness_catches_a_wrong_body_byte() {
    let clean = profile_named("clean");
    for (cfg, replay) in [
        (SimConfig::new(2, clean), " SIM_SEED=2 SIM_PROFILE=clean"),
        (
            SimConfig::ipv6(2, clean),
            " SIM_FAMILY=6 SIM_SEED=2 SIM_PROFILE=clean",
        ),
    ] {
        let err = run_ref(&cfg, Fault::CorruptBody(1)).expect_err("corrupt body went unnoticed");
        println!("{err}");
        assert!(err.message.contains("body byte"), "{err}");
        assert!(err.to_string().contains(replay), "{err}");
    }
}

/// ... and one that never releases its connections.
#[test]
fn harness_catches_a_leaked_connection() {
    let mut cfg = SimConfig::new(2, profile_named("clean"));
    cfg.max_virtual = Duration::from_secs(600);
    let err = run_ref(&cfg, Fault::NeverClose).expect_err("leaked connections went unnoticed");
    println!("{err}");
    assert!(err.server_connections > 0, "{err}");
}

#[test]
fn link_impairment_rates() {
    let imp = Impairments {
        loss: 0.05,
        duplicate: 0.02,
        reorder: 0.1,
        reorder_delay: (Duration::from_micros(100), Duration::from_millis(2)),
        corrupt: 0.01,
        ..Impairments::CLEAN
    };
    let mut dir = Direction::new(imp, Rng::new(7));
    let mut frame = vec![0u8; 100];
    frame[12] = 0x08; // IPv4 ethertype, total length 86
    frame[17] = 86;
    let n = 100_000u64;
    for i in 0..n {
        dir.send(Instant::from_micros(i * 10), &frame);
    }
    let s = dir.stats;
    let near = |x: u64, p: f64| (x as f64 - p * n as f64).abs() < 0.15 * p * n as f64;
    assert!(near(s.lost, 0.05), "{s:?}");
    assert!(near(s.duplicated, 0.02 * 0.95), "{s:?}");
    assert!(near(s.reordered, 0.1 * 0.95), "{s:?}");
    assert!(near(s.corrupted, 0.01 * 0.95 * 1.02), "{s:?}");
    let mut delivered = 0;
    while dir.pop_due(Instant::from_secs(3600)).is_some() {
        delivered += 1;
    }
    assert_eq!(delivered, s.sent - s.lost + s.duplicated);
}

#[test]
fn link_keeps_order_without_reordering() {
    let imp = Impairments {
        jitter: Duration::from_millis(5),
        bandwidth_bps: Some(10_000_000),
        queue_bytes: Some(20_000),
        ..Impairments::CLEAN
    };
    let mut dir = Direction::new(imp, Rng::new(9));
    for i in 0..1000u32 {
        // 1500-byte frames take 1.2 ms at 10 Mbit/s; one every 0.5 ms overflows the queue.
        let mut frame = vec![0u8; 1500];
        frame[..4].copy_from_slice(&i.to_be_bytes());
        dir.send(Instant::from_micros(u64::from(i) * 500), &frame);
    }
    assert!(dir.stats.tail_dropped > 0, "queue bound never hit");
    let mut last = None;
    while let Some(f) = dir.pop_due(Instant::from_secs(3600)) {
        let i = u32::from_be_bytes(f[..4].try_into().unwrap());
        assert!(last.is_none_or(|l| l < i), "{i} after {last:?}");
        last = Some(i);
    }
}

/// Every single-bit flip the link makes in an IPv4/TCP or IPv6/TCP frame fails a checksum, so
/// both ends drop it.
#[test]
fn corruption_is_always_caught_by_a_checksum() {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetFrame, EthernetProtocol, IpProtocol, IpRepr, Ipv4Packet, Ipv6Packet, TcpControl,
        TcpPacket, TcpRepr, TcpSeqNumber,
    };
    let payload: Vec<u8> = (0..700u32).map(|i| (i * 7) as u8).collect();
    let tcp = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        control: TcpControl::Psh,
        seq_number: TcpSeqNumber(123456),
        ack_number: Some(TcpSeqNumber(654321)),
        window_len: 1000,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        payload: &payload,
    };
    let caps = ChecksumCapabilities::default();
    // What the receiving end checks, read with smoltcp rather than the engine's parser.
    let valid = |f: &[u8]| -> bool {
        let Ok(eth) = EthernetFrame::new_checked(f) else {
            return false;
        };
        let (src, dst, segment) = match eth.ethertype() {
            EthernetProtocol::Ipv4 => {
                let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                    return false;
                };
                if !ip.verify_checksum() || ip.next_header() != IpProtocol::Tcp {
                    return false;
                }
                (ip.src_addr().into(), ip.dst_addr().into(), ip.payload())
            }
            EthernetProtocol::Ipv6 => {
                let Ok(ip) = Ipv6Packet::new_checked(eth.payload()) else {
                    return false;
                };
                if ip.version() != 6 || ip.next_header() != IpProtocol::Tcp {
                    return false;
                }
                (ip.src_addr().into(), ip.dst_addr().into(), ip.payload())
            }
            _ => return false,
        };
        TcpPacket::new_checked(segment).is_ok_and(|t| t.verify_checksum(&src, &dst))
    };
    for family in [Family::V4, Family::V6] {
        let (src, dst) = (family.client_ip(), family.server_ip());
        let ip = IpRepr::new(src, dst, IpProtocol::Tcp, tcp.buffer_len(), 64);
        let mut frame = vec![0u8; 14 + ip.buffer_len()];
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.set_ethertype(family.ethertype());
        ip.emit(eth.payload_mut(), &caps);
        tcp.emit(
            &mut TcpPacket::new_unchecked(&mut eth.payload_mut()[ip.header_len()..]),
            &src,
            &dst,
            &caps,
        );
        assert!(valid(&frame), "{family:?}");
        let mut rng = Rng::new(11);
        for _ in 0..20_000 {
            let mut f = frame.clone();
            assert!(link::corrupt_ip_bit(&mut rng, &mut f));
            assert!(
                !valid(&f),
                "{family:?}: a flipped bit passed every checksum"
            );
        }
    }
}
