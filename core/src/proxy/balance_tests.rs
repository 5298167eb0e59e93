use super::*;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};

const KEY: HashKey = HashKey(*b"xgate balance t1");
const T0: Instant = Instant::from_secs(100);
const FAIL_TIMEOUT: Duration = Duration::from_secs(10);

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1 + i as u8), 8080))
}

fn spec(policy: Policy, weights: &[u32], max_fails: u32) -> PoolSpec {
    PoolSpec {
        servers: weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| ServerSpec {
                addr: addr(i),
                weight,
            })
            .collect(),
        policy,
        max_fails,
        fail_timeout: FAIL_TIMEOUT,
    }
}

fn pool(policy: Policy, weights: &[u32], max_fails: u32) -> Pool {
    Pool::new(&spec(policy, weights, max_fails), KEY).expect("valid spec")
}

fn id(i: usize) -> ServerId {
    ServerId(i as u8)
}

/// Picks, starts and ends one request with `outcome`; the server it went to.
fn serve(pool: &mut Pool, now: Instant, key: Option<&[u8]>, outcome: Outcome) -> ServerId {
    let s = pool
        .pick(now, key, Tried::NONE)
        .expect("a server is eligible");
    let t = pool.on_request_start(s, now);
    pool.on_request_end(t, now, outcome);
    s
}

/// One failed request straight to `server` at `now`, as a retry loop would send it.
fn fail(pool: &mut Pool, server: ServerId, now: Instant) {
    let t = pool.on_request_start(server, now);
    pool.on_request_end(t, now, Outcome::Failed);
}

/// The deterministic keys of the hashing tests: client addresses as the caller would pass them.
fn client_key(i: u32) -> [u8; 4] {
    Ipv4Addr::from(0xc000_0000 + i * 7919).octets()
}

fn owners(pool: &mut Pool, keys: u32) -> Vec<ServerId> {
    (0..keys)
        .map(|k| {
            pool.pick(T0, Some(&client_key(k)), Tried::NONE)
                .expect("a server is eligible")
        })
        .collect()
}

// ---- smooth weighted round robin ----

#[test]
fn smooth_round_robin_gives_nginx_sequence_for_5_1_1() {
    let mut p = pool(Policy::RoundRobin, &[5, 1, 1], 0);
    let seq: Vec<usize> = (0..14)
        .map(|_| serve(&mut p, T0, None, Outcome::Ok).index())
        .collect();
    assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);
}

#[test]
fn round_robin_ignores_the_hash_key() {
    let mut p = pool(Policy::RoundRobin, &[1, 1], 0);
    let a = p.pick(T0, Some(b"same"), Tried::NONE);
    let b = p.pick(T0, Some(b"same"), Tried::NONE);
    assert_ne!(a, b);
}

proptest! {
    /// Smooth WRR is exact: over each run of Σ weight picks every server gets its weight.
    #[test]
    fn round_robin_picks_each_server_its_weight_per_cycle(
        weights in prop::collection::vec(1u32..=20, 1..=8),
        cycles in 1usize..=3,
    ) {
        let mut p = pool(Policy::RoundRobin, &weights, 0);
        let total: u32 = weights.iter().sum();
        for _ in 0..cycles {
            let mut counts = vec![0u32; weights.len()];
            for _ in 0..total {
                counts[serve(&mut p, T0, None, Outcome::Ok).index()] += 1;
            }
            prop_assert_eq!(&counts, &weights);
        }
    }

    /// Smooth: at every point of the cycle each server's picks stay within two of its due
    /// share `n * weight / Σ weight`, so a heavy server never takes a long burst (plain
    /// weighted round robin, `a` ten times then `b` ten times, is five off).
    #[test]
    fn round_robin_spreads_a_heavy_server_through_the_cycle(
        weights in prop::collection::vec(1u32..=20, 2..=8),
    ) {
        let mut p = pool(Policy::RoundRobin, &weights, 0);
        let total: u32 = weights.iter().sum();
        let mut counts = vec![0u32; weights.len()];
        for n in 1..=u64::from(total) {
            counts[serve(&mut p, T0, None, Outcome::Ok).index()] += 1;
            for (c, w) in counts.iter().zip(&weights) {
                // |picks - n * w / total| < 2, multiplied out by total.
                let due = n * u64::from(*w);
                let got = u64::from(*c) * u64::from(total);
                prop_assert!(got.abs_diff(due) < u64::from(total) * 2);
            }
        }
    }
}

// ---- least outstanding ----

#[test]
fn least_outstanding_prefers_the_idle_server() {
    let mut p = pool(Policy::LeastOutstanding, &[1, 1, 1], 0);
    let _a = p.on_request_start(id(0), T0);
    let _b = p.on_request_start(id(1), T0);
    let _c = p.on_request_start(id(1), T0);
    for _ in 0..3 {
        assert_eq!(p.pick(T0, None, Tried::NONE), Some(id(2)));
    }
}

#[test]
fn least_outstanding_prefers_the_lightest_server() {
    let mut p = pool(Policy::LeastOutstanding, &[1, 1, 1], 0);
    let _held: Vec<Ticket> = [0, 0, 0, 1, 2, 2]
        .iter()
        .map(|&i| p.on_request_start(id(i), T0))
        .collect();
    for _ in 0..3 {
        assert_eq!(p.pick(T0, None, Tried::NONE), Some(id(1)));
    }
}

#[test]
fn least_outstanding_loads_servers_in_proportion_to_weight() {
    let mut p = pool(Policy::LeastOutstanding, &[3, 1], 0);
    let mut held = Vec::new();
    for _ in 0..12 {
        let s = p.pick(T0, None, Tried::NONE).unwrap();
        held.push(p.on_request_start(s, T0));
    }
    assert_eq!(p.stats(id(0)).outstanding, 9);
    assert_eq!(p.stats(id(1)).outstanding, 3);
}

#[test]
fn least_outstanding_counts_weight_on_an_idle_pool() {
    let mut p = pool(Policy::LeastOutstanding, &[1, 3], 0);
    for _ in 0..4 {
        assert_eq!(serve(&mut p, T0, None, Outcome::Ok), id(1));
    }
}

#[test]
fn least_outstanding_rotates_among_equal_servers() {
    let mut p = pool(Policy::LeastOutstanding, &[2, 2, 2], 0);
    for _ in 0..30 {
        serve(&mut p, T0, None, Outcome::Ok);
    }
    for i in 0..3 {
        assert_eq!(p.stats(id(i)).requests, 10, "server {i}");
    }
}

#[test]
fn ending_a_request_frees_its_share() {
    let mut p = pool(Policy::LeastOutstanding, &[1, 1], 0);
    let t0 = p.on_request_start(id(0), T0);
    let _t1 = p.on_request_start(id(1), T0);
    let _t1b = p.on_request_start(id(1), T0);
    p.on_request_end(t0, T0, Outcome::Ok);
    assert_eq!(p.stats(id(0)).outstanding, 0);
    assert_eq!(p.stats(id(1)).outstanding, 2);
    assert_eq!(p.pick(T0, None, Tried::NONE), Some(id(0)));
}

proptest! {
    /// Every pick goes to a server with the least `(outstanding + 1) / weight`, whatever
    /// requests are held and released.
    #[test]
    fn least_outstanding_picks_a_least_loaded_server(
        weights in prop::collection::vec(1u32..=10, 1..=6),
        releases in prop::collection::vec(any::<Option<usize>>(), 1..100),
    ) {
        let mut p = pool(Policy::LeastOutstanding, &weights, 0);
        let mut held: Vec<Ticket> = Vec::new();
        for release in releases {
            if let (Some(nth), false) = (release, held.is_empty()) {
                let t = held.swap_remove(nth % held.len());
                p.on_request_end(t, T0, Outcome::Ok);
            }
            let load = |p: &Pool, i: usize| {
                (f64::from(p.stats(id(i)).outstanding) + 1.0) / f64::from(weights[i])
            };
            let least = (0..weights.len()).map(|i| load(&p, i)).fold(f64::INFINITY, f64::min);
            let s = p.pick(T0, None, Tried::NONE).unwrap();
            prop_assert_eq!(load(&p, s.index()), least);
            held.push(p.on_request_start(s, T0));
        }
    }
}

// ---- consistent hashing ----

#[test]
fn consistent_hash_same_key_same_server_across_pools() {
    let s = spec(Policy::ConsistentHash, &[1, 2, 3, 1, 5], 0);
    let mut a = Pool::new(&s, KEY).unwrap();
    let mut b = Pool::new(&s, KEY).unwrap();
    let owners_a = owners(&mut a, 2000);
    // Repeated picks on one pool and picks on another agree key by key.
    assert_eq!(owners_a, owners(&mut a, 2000));
    assert_eq!(owners_a, owners(&mut b, 2000));
    // And the mapping is not trivial: every server owns some keys.
    for i in 0..5 {
        assert!(owners_a.contains(&id(i)), "server {i} owns no key");
    }
}

#[test]
fn consistent_hash_spreads_keys_by_weight() {
    let weights = [1, 2, 3, 4, 10];
    let mut p = pool(Policy::ConsistentHash, &weights, 0);
    let keys = 40_000u32;
    let mut counts = [0u32; 5];
    for s in owners(&mut p, keys) {
        counts[s.index()] += 1;
    }
    let total: u32 = weights.iter().sum();
    for (i, (&c, &w)) in counts.iter().zip(&weights).enumerate() {
        let expected = f64::from(keys) * f64::from(w) / f64::from(total);
        let ratio = f64::from(c) / expected;
        assert!(
            (0.9..1.1).contains(&ratio),
            "server {i} (weight {w}) owns {c} keys, expected about {expected}"
        );
    }
}

#[test]
fn consistent_hash_ejecting_a_server_moves_only_its_keys() {
    let mut p = pool(Policy::ConsistentHash, &[1, 1, 2, 1, 1], 1);
    let before = owners(&mut p, 3000);
    fail(&mut p, id(2), T0);
    assert!(!p.is_eligible(id(2), T0));
    let after = owners(&mut p, 3000);
    let mut moved = 0;
    for (b, a) in before.iter().zip(&after) {
        if *b == id(2) {
            assert_ne!(*a, id(2));
            moved += 1;
        } else {
            assert_eq!(a, b, "a key of another server moved");
        }
    }
    assert!(moved > 0);
}

#[test]
fn consistent_hash_down_server_keys_go_to_their_next_best_and_come_back() {
    let mut p = pool(Policy::ConsistentHash, &[1, 1, 1, 1], 0);
    let before = owners(&mut p, 3000);
    p.set_active_health(id(0), Health::Down);
    let down = owners(&mut p, 3000);
    for (k, (b, d)) in before.iter().zip(&down).enumerate() {
        // The next-best server: the owner when the key's first choice is excluded.
        let next = p.pick(T0, Some(&client_key(k as u32)), Tried::NONE.with(*b));
        if *b == id(0) {
            assert_eq!(Some(*d), next);
        } else {
            assert_eq!(d, b);
        }
    }
    p.set_active_health(id(0), Health::Up);
    assert_eq!(owners(&mut p, 3000), before);
}

#[test]
fn consistent_hash_removing_a_server_moves_only_its_keys() {
    let weights = [3, 1, 4, 1, 5, 9];
    let mut full = pool(Policy::ConsistentHash, &weights, 0);
    let mut smaller_spec = spec(Policy::ConsistentHash, &weights, 0);
    let removed = smaller_spec.servers.remove(3).addr;
    let mut smaller = Pool::new(&smaller_spec, KEY).unwrap();
    let before = owners(&mut full, 5000);
    let after = owners(&mut smaller, 5000);
    for (b, a) in before.iter().zip(&after) {
        let b_addr = full.spec(*b).addr;
        let a_addr = smaller.spec(*a).addr;
        if b_addr != removed {
            assert_eq!(a_addr, b_addr, "a key of a remaining server moved");
        }
    }
    assert!(before.iter().any(|b| full.spec(*b).addr == removed));
}

#[test]
fn consistent_hash_different_hash_key_changes_the_mapping() {
    let s = spec(Policy::ConsistentHash, &[1, 1, 1, 1, 1], 0);
    let mut a = Pool::new(&s, KEY).unwrap();
    let mut b = Pool::new(&s, HashKey(*b"another hash key")).unwrap();
    let (oa, ob) = (owners(&mut a, 2000), owners(&mut b, 2000));
    let changed = oa.iter().zip(&ob).filter(|(x, y)| x != y).count();
    // Independent mappings over 5 equal servers differ for about 4 keys in 5.
    assert!(changed > 1400, "only {changed} of 2000 keys changed");
}

#[test]
fn consistent_hash_without_a_key_falls_back_to_round_robin() {
    let mut p = pool(Policy::ConsistentHash, &[2, 1], 0);
    let seq: Vec<usize> = (0..6)
        .map(|_| serve(&mut p, T0, None, Outcome::Ok).index())
        .collect();
    assert_eq!(seq, [0, 1, 0, 0, 1, 0]);
}

#[test]
fn consistent_hash_seeds_depend_on_the_whole_address() {
    let v6 = |port| SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, port, 0, 0));
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, 80));
    let all = [addr_bytes(v6(80)), addr_bytes(v6(81)), addr_bytes(v4)];
    assert_ne!(all[0], all[1]);
    assert_ne!(all[0], all[2]);
    assert_ne!(all[1], all[2]);
}

// ---- passive ejection ----

#[test]
fn max_fails_failures_within_fail_timeout_eject() {
    let mut p = pool(Policy::RoundRobin, &[1, 1], 3);
    fail(&mut p, id(0), T0);
    fail(&mut p, id(0), T0 + Duration::from_secs(5));
    assert!(p.is_eligible(id(0), T0 + Duration::from_secs(5)));
    let third = T0 + FAIL_TIMEOUT;
    fail(&mut p, id(0), third);
    assert_eq!(
        p.stats(id(0)).passive,
        PassiveState::Ejected {
            until: third + FAIL_TIMEOUT
        }
    );
    assert_eq!(p.stats(id(0)).ejections, 1);
    for _ in 0..5 {
        assert_eq!(serve(&mut p, third, None, Outcome::Ok), id(1));
    }
}

#[test]
fn failures_spread_wider_than_fail_timeout_do_not_eject() {
    let mut p = pool(Policy::RoundRobin, &[1, 1], 3);
    let step = Duration::from_millis(5001);
    let mut now = T0;
    for _ in 0..10 {
        fail(&mut p, id(0), now);
        now += step;
    }
    assert_eq!(p.stats(id(0)).passive, PassiveState::Healthy);
    assert_eq!(p.stats(id(0)).failures, 10);
    // The window slides rather than restarting at a failure: 0, 9 and 11 s span too much,
    // but 9, 11 and 12 s lie within 10 s.
    let mut q = pool(Policy::RoundRobin, &[1, 1], 3);
    for secs in [0, 9, 11] {
        fail(&mut q, id(0), T0 + Duration::from_secs(secs));
    }
    assert_eq!(q.stats(id(0)).passive, PassiveState::Healthy);
    fail(&mut q, id(0), T0 + Duration::from_secs(12));
    assert_eq!(q.stats(id(0)).ejections, 1);
}

#[test]
fn successes_between_failures_do_not_reset_the_count() {
    // Two servers: the only one of a pool is never ejected.
    let mut p = pool(Policy::RoundRobin, &[1, 1], 2);
    fail(&mut p, id(0), T0);
    let t = p.on_request_start(id(0), T0);
    p.on_request_end(t, T0, Outcome::Ok);
    fail(&mut p, id(0), T0);
    assert!(!p.is_eligible(id(0), T0));
}

#[test]
fn ejected_server_gets_one_trial_after_fail_timeout() {
    let mut p = pool(Policy::RoundRobin, &[1, 1], 1);
    fail(&mut p, id(0), T0);
    let back = T0 + FAIL_TIMEOUT;
    assert!(!p.is_eligible(id(0), back - Duration::from_micros(1)));
    assert!(p.is_eligible(id(0), back));
    let picks: Vec<ServerId> = (0..4)
        .map(|_| p.pick(back, None, Tried::NONE).unwrap())
        .collect();
    // One trial among the picks, the rest to the healthy server.
    assert_eq!(picks.iter().filter(|&&s| s == id(0)).count(), 1);
    assert_eq!(
        p.stats(id(0)).passive,
        PassiveState::Trial {
            since: back,
            retry_at: back + FAIL_TIMEOUT
        }
    );
}

#[test]
fn successful_trial_restores_the_server_fully() {
    let mut p = pool(Policy::RoundRobin, &[1, 1], 2);
    fail(&mut p, id(0), T0);
    fail(&mut p, id(0), T0);
    let back = T0 + FAIL_TIMEOUT;
    let trial = p.pick(back, None, Tried::NONE.with(id(1))).unwrap();
    assert_eq!(trial, id(0));
    let t = p.on_request_start(trial, back);
    p.on_request_end(t, back, Outcome::Ok);
    assert_eq!(p.stats(id(0)).passive, PassiveState::Healthy);
    // Fully: the count starts from zero, one new failure does not eject again.
    fail(&mut p, id(0), back);
    assert!(p.is_eligible(id(0), back));
    fail(&mut p, id(0), back);
    assert!(!p.is_eligible(id(0), back));
    assert_eq!(p.stats(id(0)).ejections, 2);
}

#[test]
fn failed_trial_ejects_the_server_again() {
    let mut p = pool(Policy::RoundRobin, &[1, 1], 3);
    for _ in 0..3 {
        fail(&mut p, id(0), T0);
    }
    let back = T0 + FAIL_TIMEOUT;
    let trial = p.pick(back, None, Tried::NONE.with(id(1))).unwrap();
    let t = p.on_request_start(trial, back);
    let end = back + Duration::from_secs(1);
    // One failure suffices: the trial, not max_fails, decides.
    p.on_request_end(t, end, Outcome::Failed);
    assert_eq!(
        p.stats(id(0)).passive,
        PassiveState::Ejected {
            until: end + FAIL_TIMEOUT
        }
    );
    assert_eq!(p.stats(id(0)).ejections, 2);
    assert!(!p.is_eligible(id(0), end + Duration::from_secs(9)));
}

#[test]
fn outcomes_of_requests_started_before_the_trial_do_not_decide_it() {
    let mut p = pool(Policy::RoundRobin, &[1, 1], 1);
    let old_ok = p.on_request_start(id(0), T0);
    let old_failed = p.on_request_start(id(0), T0);
    fail(&mut p, id(0), T0);
    // During the ejection, late outcomes change nothing.
    p.on_request_end(old_ok, T0 + Duration::from_secs(1), Outcome::Ok);
    assert!(!p.is_eligible(id(0), T0 + Duration::from_secs(1)));
    let back = T0 + FAIL_TIMEOUT;
    let trial = p.pick(back, None, Tried::NONE.with(id(1))).unwrap();
    let t = p.on_request_start(trial, back);
    // Nor during the trial.
    p.on_request_end(old_failed, back, Outcome::Failed);
    assert!(matches!(p.stats(id(0)).passive, PassiveState::Trial { .. }));
    assert_eq!(p.stats(id(0)).ejections, 1);
    p.on_request_end(t, back, Outcome::Ok);
    assert_eq!(p.stats(id(0)).passive, PassiveState::Healthy);
}

#[test]
fn unanswered_trial_allows_another_after_fail_timeout() {
    // Two servers (the only one of a pool is never ejected); the other is kept out of these
    // picks, so each pick is a question about server 0.
    let mut p = pool(Policy::RoundRobin, &[1, 1], 1);
    let not_1 = Tried::NONE.with(id(1));
    fail(&mut p, id(0), T0);
    let back = T0 + FAIL_TIMEOUT;
    let first = p.pick(back, None, not_1).unwrap();
    assert_eq!(first, id(0));
    let t1 = p.on_request_start(first, back);
    assert_eq!(p.pick(back + Duration::from_secs(5), None, not_1), None);
    let again = back + FAIL_TIMEOUT;
    assert_eq!(p.pick(again, None, not_1), Some(id(0)));
    // The first trial's late answer still decides.
    p.on_request_end(t1, again, Outcome::Ok);
    assert_eq!(p.stats(id(0)).passive, PassiveState::Healthy);
}

#[test]
fn max_fails_zero_never_ejects() {
    let mut p = pool(Policy::RoundRobin, &[1, 1], 0);
    for _ in 0..1000 {
        fail(&mut p, id(0), T0);
    }
    let s = p.stats(id(0));
    assert_eq!(
        (s.passive, s.ejections, s.failures),
        (PassiveState::Healthy, 0, 1000)
    );
    assert!(p.is_eligible(id(0), T0));
}

// ---- active health, exclusion, none left ----

#[test]
fn down_servers_are_never_picked() {
    for policy in [
        Policy::RoundRobin,
        Policy::LeastOutstanding,
        Policy::ConsistentHash,
    ] {
        let mut p = pool(policy, &[5, 1, 1], 0);
        p.set_active_health(id(0), Health::Down);
        for k in 0..200u32 {
            let s = serve(&mut p, T0, Some(&k.to_be_bytes()), Outcome::Ok);
            assert_ne!(s, id(0), "{policy:?}");
        }
        p.set_active_health(id(0), Health::Up);
        assert!(
            (0..200u32).any(|k| serve(&mut p, T0, Some(&k.to_be_bytes()), Outcome::Ok) == id(0))
        );
    }
}

#[test]
fn exclude_skips_tried_servers() {
    for policy in [
        Policy::RoundRobin,
        Policy::LeastOutstanding,
        Policy::ConsistentHash,
    ] {
        let mut p = pool(policy, &[1, 1, 1], 0);
        for k in 0..50u32 {
            let key = k.to_be_bytes();
            let first = p.pick(T0, Some(&key), Tried::NONE).unwrap();
            let tried = Tried::NONE.with(first);
            let second = p.pick(T0, Some(&key), tried).unwrap();
            assert_ne!(second, first, "{policy:?}");
            let third = p.pick(T0, Some(&key), tried.with(second)).unwrap();
            assert!(third != first && third != second, "{policy:?}");
            assert_eq!(p.pick(T0, Some(&key), tried.with(second).with(third)), None);
        }
    }
}

#[test]
fn pick_is_none_when_every_server_is_excluded_down_or_ejected() {
    for policy in [
        Policy::RoundRobin,
        Policy::LeastOutstanding,
        Policy::ConsistentHash,
    ] {
        let mut p = pool(policy, &[1, 1, 1], 1);
        p.set_active_health(id(0), Health::Down);
        fail(&mut p, id(1), T0);
        assert_eq!(p.pick(T0, Some(b"k"), Tried::NONE), Some(id(2)));
        assert_eq!(p.pick(T0, Some(b"k"), Tried::NONE.with(id(2))), None);
        fail(&mut p, id(2), T0);
        assert_eq!(p.pick(T0, Some(b"k"), Tried::NONE), None);
    }
}

#[test]
fn tried_holds_every_server_index() {
    let all = (0..MAX_SERVERS).fold(Tried::NONE, |t, i| t.with(id(i)));
    assert_eq!(all.count(), 64);
    assert!(all.contains(id(63)) && all.contains(id(0)));
    assert!(!Tried::NONE.with(id(5)).contains(id(4)));
}

#[test]
fn stats_count_requests_failures_and_outstanding() {
    let mut p = pool(Policy::RoundRobin, &[1], 5);
    let a = p.on_request_start(id(0), T0);
    let _b = p.on_request_start(id(0), T0);
    fail(&mut p, id(0), T0);
    p.on_request_end(a, T0, Outcome::Ok);
    let s = p.stats(id(0));
    assert_eq!((s.requests, s.failures, s.outstanding), (3, 1, 1));
    assert_eq!((s.health, s.ejections), (Health::Up, 0));
    assert_eq!(p.servers().len(), 1);
    assert_eq!(
        p.servers().next(),
        Some((
            id(0),
            &ServerSpec {
                addr: addr(0),
                weight: 1
            }
        ))
    );
}

// ---- invariants under random operation ----

#[derive(Debug, Clone)]
enum Op {
    Pick { key: u8, tried: u8 },
    End { nth: usize, failed: bool },
    Health { server: usize, up: bool },
    Wait { millis: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), any::<u8>()).prop_map(|(key, tried)| Op::Pick { key, tried }),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(nth, failed)| Op::End { nth, failed }),
        1 => (0usize..5, any::<bool>()).prop_map(|(server, up)| Op::Health { server, up }),
        1 => (0u64..8000).prop_map(|millis| Op::Wait { millis }),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::RoundRobin),
        Just(Policy::LeastOutstanding),
        Just(Policy::ConsistentHash),
    ]
}

proptest! {
    /// Whatever happened before, a pick returns an eligible server not yet tried, and `None`
    /// only when there is none; outstanding counts match the tickets held.
    #[test]
    fn pick_returns_an_eligible_server_or_none_only_when_there_is_none(
        policy in policy(),
        weights in prop::collection::vec(1u32..=5, 5),
        max_fails in 0u32..=3,
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let mut p = pool(policy, &weights, max_fails);
        let mut now = T0;
        let mut held: Vec<Ticket> = Vec::new();
        for op in ops {
            match op {
                Op::Pick { key, tried } => {
                    let tried = (0..5usize).filter(|&i| tried >> i & 1 != 0)
                        .fold(Tried::NONE, |t, i| t.with(id(i)));
                    let eligible: Vec<ServerId> = (0..5).map(id)
                        .filter(|&s| p.is_eligible(s, now) && !tried.contains(s))
                        .collect();
                    match p.pick(now, Some(&[key]), tried) {
                        Some(s) => {
                            prop_assert!(eligible.contains(&s), "{:?} not in {:?}", s, eligible);
                            held.push(p.on_request_start(s, now));
                        }
                        None => prop_assert!(eligible.is_empty()),
                    }
                }
                Op::End { nth, failed } => {
                    if !held.is_empty() {
                        let t = held.swap_remove(nth % held.len());
                        let outcome = if failed { Outcome::Failed } else { Outcome::Ok };
                        p.on_request_end(t, now, outcome);
                    }
                }
                Op::Health { server, up } => {
                    let h = if up { Health::Up } else { Health::Down };
                    p.set_active_health(id(server), h);
                }
                Op::Wait { millis } => now += Duration::from_millis(millis),
            }
            for i in 0..5 {
                let mine = held.iter().filter(|t| t.server() == id(i)).count();
                prop_assert_eq!(p.stats(id(i)).outstanding as usize, mine);
                if max_fails == 0 {
                    prop_assert_eq!(p.stats(id(i)).passive, PassiveState::Healthy);
                }
            }
        }
    }
}

// ---- validation ----

#[test]
fn pool_without_servers_is_refused() {
    let s = spec(Policy::RoundRobin, &[], 1);
    assert_eq!(Pool::new(&s, KEY).unwrap_err(), PoolError::NoServers);
}

#[test]
fn pool_with_more_than_64_servers_is_refused() {
    let mut s = spec(Policy::RoundRobin, &[1; 64], 1);
    assert!(Pool::new(&s, KEY).is_ok());
    s.servers.push(ServerSpec {
        addr: SocketAddr::from((Ipv4Addr::new(10, 0, 1, 1), 80)),
        weight: 1,
    });
    assert_eq!(
        Pool::new(&s, KEY).unwrap_err(),
        PoolError::TooManyServers { count: 65 }
    );
}

#[test]
fn weight_zero_or_above_the_bound_is_refused() {
    for w in [0, MAX_WEIGHT + 1] {
        let s = spec(Policy::RoundRobin, &[1, w], 1);
        assert_eq!(
            Pool::new(&s, KEY).unwrap_err(),
            PoolError::WeightOutOfRange {
                addr: addr(1),
                weight: w
            }
        );
    }
    assert!(Pool::new(&spec(Policy::RoundRobin, &[1, MAX_WEIGHT], 1), KEY).is_ok());
}

#[test]
fn duplicate_address_is_refused() {
    let mut s = spec(Policy::RoundRobin, &[1, 1, 1], 1);
    s.servers[2].addr = addr(0);
    assert_eq!(
        Pool::new(&s, KEY).unwrap_err(),
        PoolError::DuplicateAddress { addr: addr(0) }
    );
}

#[test]
fn max_fails_above_the_bound_is_refused() {
    assert!(Pool::new(&spec(Policy::RoundRobin, &[1], MAX_FAILS_LIMIT), KEY).is_ok());
    assert_eq!(
        Pool::new(&spec(Policy::RoundRobin, &[1], MAX_FAILS_LIMIT + 1), KEY).unwrap_err(),
        PoolError::MaxFailsTooLarge {
            max_fails: MAX_FAILS_LIMIT + 1
        }
    );
}

#[test]
fn zero_fail_timeout_is_refused_only_with_passive_ejection() {
    let mut s = spec(Policy::RoundRobin, &[1], 2);
    s.fail_timeout = Duration::ZERO;
    assert_eq!(
        Pool::new(&s, KEY).unwrap_err(),
        PoolError::ZeroFailTimeout { max_fails: 2 }
    );
    s.max_fails = 0;
    assert!(Pool::new(&s, KEY).is_ok());
}

#[test]
fn debug_output_keeps_the_hash_key_out() {
    let p = pool(Policy::ConsistentHash, &[1], 0);
    let shown = format!("{p:?} {KEY:?}");
    assert!(!shown.contains("balance t1") && !shown.contains("120, 103"));
    assert!(shown.contains("ConsistentHash"));
}

#[test]
fn the_only_server_of_a_pool_is_never_ejected() {
    let spec = PoolSpec {
        servers: vec![ServerSpec {
            addr: "10.0.0.1:80".parse().unwrap(),
            weight: 1,
        }],
        policy: Policy::RoundRobin,
        max_fails: 1,
        fail_timeout: Duration::from_secs(10),
    };
    let mut pool = Pool::new(&spec, HashKey([0; 16])).unwrap();
    let t = Instant::from_secs(5);
    for _ in 0..5 {
        let id = pool.pick(t, None, Tried::NONE).expect("the server");
        let ticket = pool.on_request_start(id, t);
        pool.on_request_end(ticket, t, Outcome::Failed);
    }
    let id = pool
        .pick(t, None, Tried::NONE)
        .expect("still picked after failures");
    assert_eq!(pool.stats(id).failures, 5);
    assert_eq!(pool.stats(id).ejections, 0);
}
