//! Choosing the upstream server of a pool (issue 13), sans-IO: the policy that spreads requests
//! over the servers, each server's passive health (failures seen on real requests) and the
//! active health the caller's checks report. No clock, socket or thread: the caller passes
//! `now` in; nothing here allocates after [`Pool::new`].
//!
//! Call order for one proxied request:
//!
//! 1. [`Pool::pick`] with `now`, the hash key of the request (client address bytes or a header
//!    value, for [`Policy::ConsistentHash`]) and the servers this request already [`Tried`].
//!    `None` means no eligible server is left: the caller answers 503.
//! 2. [`Pool::on_request_start`] for the server it uses, before connecting; it returns the
//!    request's [`Ticket`].
//! 3. [`Pool::on_request_end`] with that ticket and the [`Outcome`]. A connect failure or a
//!    reset before any response byte is `Failed`; an idempotent request then goes back to 1
//!    with `tried.with(server)`, so the retry lands on another server.
//!
//! Beside the requests, the active health checker reports through [`Pool::set_active_health`].
//!
//! A server is *eligible* when its active health is [`Health::Up`], it is not passively ejected
//! (see [`PassiveState`]) and the request has not tried it yet. The policies choose among the
//! eligible servers only:
//!
//! - [`Policy::RoundRobin`]: nginx's smooth weighted round robin (weights 5, 1, 1 give
//!   `a a b a c a a`): every eligible server's current weight grows by its weight, the largest
//!   wins and gives back the eligible total. From a fresh pool with every server eligible, each
//!   run of `Σ weight` picks gives each server exactly `weight` of them, interleaved; when the
//!   eligible set changes, the current weights stay bounded and the shares follow the weights
//!   again. Unlike nginx, a failure does not lower an "effective weight": passive ejection is
//!   the only penalty.
//! - [`Policy::LeastOutstanding`]: the server whose requests in flight, counting this one, are
//!   fewest per unit of weight: `(outstanding + 1) / weight`, compared as
//!   `(o_a + 1) * w_b < (o_b + 1) * w_a` without division. Counting this request makes weight
//!   count on an idle pool too (weights 3 and 1 give the first two requests to the heavier
//!   server). Ties go to the first tied server from a start index that rotates on every pick, so
//!   equal servers share the load.
//! - [`Policy::ConsistentHash`]: weighted rendezvous (highest-random-weight) hashing. For the
//!   key `k` and server `i`, `u_i = mix(SipHash-2-4(k) ^ seed_i)` mapped into (0, 1), with
//!   `seed_i` the keyed SipHash of the server's address, and the server with the smallest
//!   `-ln(u_i) / weight_i` wins (the same order as the largest `weight / -ln(u)`). These are
//!   exponential variables of rate `weight_i`, so server `i` wins a share `weight_i / Σ weight`
//!   of the keys. A server that is not eligible simply drops out of the comparison: its keys go
//!   to their next-best server and no other key moves, and a server's score does not depend on
//!   the other servers, so a pool rebuilt without one server moves only that server's keys. The
//!   128-bit SipHash key is given to [`Pool::new`], so every poller and the kernel path that
//!   build their pool from the same spec and key choose the same server for a key (on the same
//!   binary: `ln` comes from the platform's libm). Without a key, a pick falls back to round
//!   robin.
//!
//! Passive ejection follows nginx's `max_fails` / `fail_timeout`, with an exact window:
//! `max_fails` failed outcomes whose instants lie within `fail_timeout` of each other eject the
//! server for `fail_timeout` (successes in between do not reset the count, as in nginx). Once
//! `fail_timeout` has passed, the next pick that would choose the server sends one trial
//! request; while it is out, the server takes no other request. The first outcome of a request
//! started since that trial decides: a success restores the server fully (its failure count
//! starts again from zero), a failure ejects it for another `fail_timeout`. If no such outcome
//! arrives within `fail_timeout` of the trial, another trial may go out. Outcomes of requests
//! started before the trial count in the statistics only. `max_fails = 0` disables passive
//! ejection, and so does a pool of one server (as in nginx: ejecting the only server would
//! turn every request into a 503 for `fail_timeout`, where trying it costs one failure). nginx counts failures in a window that a success or a pick after `fail_timeout`
//! resets, and its trial is any one request after `fail_timeout`; the exact window is easier
//! to state and to test, and differs only in when failures that straddle windows eject.
//!
//! Bounds: at most [`MAX_SERVERS`] (64) servers per pool, so the servers a request tried fit a
//! `u64` bitset; weights in `1..=`[`MAX_WEIGHT`]; `max_fails` at most [`MAX_FAILS_LIMIT`] (the
//! window keeps that many failure instants per server, allocated by [`Pool::new`]).

use std::fmt;
use std::net::SocketAddr;

use siphasher::sip::SipHasher24;

use crate::time::{Duration, Instant};

/// The most servers a pool holds: [`Tried`] is a `u64` bitset.
pub const MAX_SERVERS: usize = 64;

/// The largest server weight (nginx has no bound; one keeps the weighted sums small).
pub const MAX_WEIGHT: u32 = 1000;

/// The largest `max_fails`: the failure window stores this many instants per server.
pub const MAX_FAILS_LIMIT: u32 = 100;

/// One upstream server of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerSpec {
    pub addr: SocketAddr,
    /// Share of the requests (round robin), of the load (least outstanding) or of the keys
    /// (consistent hash), relative to the other servers: `1..=MAX_WEIGHT`.
    pub weight: u32,
}

/// How a pool spreads requests over its servers; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    RoundRobin,
    LeastOutstanding,
    ConsistentHash,
}

/// What a pool is built from: the configuration of one upstream pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    pub servers: Vec<ServerSpec>,
    pub policy: Policy,
    /// Failures within `fail_timeout` that eject a server; 0 never ejects.
    pub max_fails: u32,
    /// The failure window, and how long an ejected server stays out before a trial request.
    pub fail_timeout: Duration,
}

/// The 128-bit SipHash key of consistent hashing: the same key on every poller and on the
/// kernel path makes them choose the same server for a request's key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HashKey(pub [u8; 16]);

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs: with it, a client could aim its keys at one server.
        f.write_str("HashKey(..)")
    }
}

/// Why a [`PoolSpec`] cannot make a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("an upstream pool needs at least one server")]
    NoServers,
    #[error("an upstream pool holds at most {max} servers, not {count}", max = MAX_SERVERS)]
    TooManyServers { count: usize },
    #[error("upstream server {addr}: weight {weight} is outside 1..={max}", max = MAX_WEIGHT)]
    WeightOutOfRange { addr: SocketAddr, weight: u32 },
    #[error("upstream server {addr} is listed twice in one pool")]
    DuplicateAddress { addr: SocketAddr },
    #[error("max_fails {max_fails} is above {max}", max = MAX_FAILS_LIMIT)]
    MaxFailsTooLarge { max_fails: u32 },
    #[error("max_fails {max_fails} with a zero fail_timeout would eject only on simultaneous failures and for no time")]
    ZeroFailTimeout { max_fails: u32 },
}

/// A server of one pool: its index in [`PoolSpec::servers`]. Only meaningful for the pool that
/// gave it out; the methods taking one panic on an index the pool does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerId(u8);

impl ServerId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// The servers a request has already tried, so a retry goes elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tried(u64);

impl Tried {
    pub const NONE: Tried = Tried(0);

    #[must_use]
    pub fn with(self, id: ServerId) -> Tried {
        Tried(self.0 | 1u64 << id.0)
    }

    pub fn contains(self, id: ServerId) -> bool {
        self.0 & 1u64 << id.0 != 0
    }

    pub fn count(self) -> u32 {
        self.0.count_ones()
    }
}

/// What the active health checker last found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    Up,
    Down,
}

/// How a request to an upstream server ended, as the caller judges it: `Failed` for a connect
/// failure, a reset, a timeout or an unusable response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    Failed,
}

/// A server's passive health, from the outcomes of real requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PassiveState {
    /// In rotation; failures are being counted.
    Healthy,
    /// Out of rotation; from `until` on, the next pick that would choose it sends a trial.
    Ejected { until: Instant },
    /// A trial request went out at `since`; the first outcome of a request started since then
    /// restores or ejects the server. Without one, another trial may go out at `retry_at`.
    Trial { since: Instant, retry_at: Instant },
}

/// What a pool knows about one server, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerStats {
    /// Requests started on it.
    pub requests: u64,
    /// Requests that ended `Failed`.
    pub failures: u64,
    /// Times passive health took it out of rotation (re-ejections after a trial included).
    pub ejections: u64,
    /// Requests started and not yet ended.
    pub outstanding: u32,
    pub health: Health,
    pub passive: PassiveState,
}

/// One request's hold on a server, from [`Pool::on_request_start`] to [`Pool::on_request_end`]
/// on the same pool (a pool rebuilt on reload does not take the old pool's tickets). Not
/// `Clone`: each started request ends once.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a started request must be ended with Pool::on_request_end"]
pub struct Ticket {
    server: ServerId,
    started: Instant,
}

impl Ticket {
    pub fn server(&self) -> ServerId {
        self.server
    }
}

/// A server's state inside the pool.
struct Server {
    spec: ServerSpec,
    /// Keyed hash of the address: the server's part of every rendezvous score.
    seed: u64,
    health: Health,
    passive: PassiveState,
    /// Smooth weighted round robin's current weight.
    current: i64,
    outstanding: u32,
    requests: u64,
    failures: u64,
    ejections: u64,
    /// Failures held in this server's slice of `Pool::fail_log`, and where the next one goes.
    fail_len: u32,
    fail_next: u32,
}

impl Server {
    fn eligible(&self, id: ServerId, now: Instant, exclude: Tried) -> bool {
        self.health == Health::Up
            && !exclude.contains(id)
            && match self.passive {
                PassiveState::Healthy => true,
                PassiveState::Ejected { until } => now >= until,
                PassiveState::Trial { retry_at, .. } => now >= retry_at,
            }
    }
}

/// An upstream pool: its servers, its policy's state and each server's health.
pub struct Pool {
    servers: Vec<Server>,
    policy: Policy,
    max_fails: u32,
    fail_timeout: Duration,
    hasher: SipHasher24,
    /// `max_fails` failure instants per server, a ring each (server `i` owns
    /// `i * max_fails .. (i + 1) * max_fails`).
    fail_log: Vec<Instant>,
    /// Least outstanding's rotating start.
    rotor: u32,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the hasher: its Debug would print the key.
        f.debug_struct("Pool")
            .field("policy", &self.policy)
            .field("servers", &self.servers.len())
            .field("max_fails", &self.max_fails)
            .field("fail_timeout", &self.fail_timeout)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Checks `spec` and builds the pool: every server Up, Healthy and idle.
    pub fn new(spec: &PoolSpec, hash_key: HashKey) -> Result<Pool, PoolError> {
        if spec.servers.is_empty() {
            return Err(PoolError::NoServers);
        }
        if spec.servers.len() > MAX_SERVERS {
            return Err(PoolError::TooManyServers {
                count: spec.servers.len(),
            });
        }
        for (i, s) in spec.servers.iter().enumerate() {
            if !(1..=MAX_WEIGHT).contains(&s.weight) {
                return Err(PoolError::WeightOutOfRange {
                    addr: s.addr,
                    weight: s.weight,
                });
            }
            if spec.servers[..i].iter().any(|o| o.addr == s.addr) {
                return Err(PoolError::DuplicateAddress { addr: s.addr });
            }
        }
        if spec.max_fails > MAX_FAILS_LIMIT {
            return Err(PoolError::MaxFailsTooLarge {
                max_fails: spec.max_fails,
            });
        }
        if spec.max_fails > 0 && spec.fail_timeout.is_zero() {
            return Err(PoolError::ZeroFailTimeout {
                max_fails: spec.max_fails,
            });
        }
        let hasher = SipHasher24::new_with_key(&hash_key.0);
        let servers = spec
            .servers
            .iter()
            .map(|&s| Server {
                spec: s,
                seed: hasher.hash(&addr_bytes(s.addr)),
                health: Health::Up,
                passive: PassiveState::Healthy,
                current: 0,
                outstanding: 0,
                requests: 0,
                failures: 0,
                ejections: 0,
                fail_len: 0,
                fail_next: 0,
            })
            .collect();
        // One server: never ejected (see the module documentation).
        let max_fails = if spec.servers.len() == 1 {
            0
        } else {
            spec.max_fails
        };
        let window = max_fails as usize;
        Ok(Pool {
            servers,
            policy: spec.policy,
            max_fails,
            fail_timeout: spec.fail_timeout,
            hasher,
            fail_log: vec![Instant::ZERO; spec.servers.len() * window],
            rotor: 0,
        })
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The servers in spec order, with their ids.
    pub fn servers(&self) -> impl ExactSizeIterator<Item = (ServerId, &ServerSpec)> + '_ {
        self.servers
            .iter()
            .enumerate()
            .map(|(i, s)| (id_of(i), &s.spec))
    }

    pub fn spec(&self, id: ServerId) -> &ServerSpec {
        &self.servers[id.index()].spec
    }

    pub fn stats(&self, id: ServerId) -> ServerStats {
        let s = &self.servers[id.index()];
        ServerStats {
            requests: s.requests,
            failures: s.failures,
            ejections: s.ejections,
            outstanding: s.outstanding,
            health: s.health,
            passive: s.passive,
        }
    }

    /// Whether `pick` at `now` could choose `id` for a request that has not tried it.
    pub fn is_eligible(&self, id: ServerId, now: Instant) -> bool {
        self.servers[id.index()].eligible(id, now, Tried::NONE)
    }

    /// The server for a request, or `None` when no server is eligible (answer 503). `key` is the
    /// consistent-hash key; the other policies ignore it. Choosing an ejected server whose
    /// `fail_timeout` has passed makes this request its trial.
    pub fn pick(&mut self, now: Instant, key: Option<&[u8]>, exclude: Tried) -> Option<ServerId> {
        let chosen = match (self.policy, key) {
            (Policy::ConsistentHash, Some(key)) => self.pick_rendezvous(now, key, exclude),
            (Policy::LeastOutstanding, _) => self.pick_least_outstanding(now, exclude),
            _ => self.pick_round_robin(now, exclude),
        }?;
        let fail_timeout = self.fail_timeout;
        let server = &mut self.servers[chosen.index()];
        server.passive = match server.passive {
            PassiveState::Healthy => PassiveState::Healthy,
            PassiveState::Ejected { .. } => PassiveState::Trial {
                since: now,
                retry_at: now + fail_timeout,
            },
            // The earlier trial never answered: this is another one, and an answer to either
            // decides.
            PassiveState::Trial { since, .. } => PassiveState::Trial {
                since,
                retry_at: now + fail_timeout,
            },
        };
        Some(chosen)
    }

    fn pick_round_robin(&mut self, now: Instant, exclude: Tried) -> Option<ServerId> {
        let mut total = 0i64;
        let mut best: Option<(usize, i64)> = None;
        for (i, s) in self.servers.iter_mut().enumerate() {
            if !s.eligible(id_of(i), now, exclude) {
                continue;
            }
            s.current += i64::from(s.spec.weight);
            total += i64::from(s.spec.weight);
            if best.is_none_or(|(_, c)| s.current > c) {
                best = Some((i, s.current));
            }
        }
        let (i, _) = best?;
        self.servers[i].current -= total;
        Some(id_of(i))
    }

    fn pick_least_outstanding(&mut self, now: Instant, exclude: Tried) -> Option<ServerId> {
        let n = self.servers.len();
        let start = self.rotor as usize % n;
        self.rotor = self.rotor.wrapping_add(1);
        let mut best: Option<usize> = None;
        for k in 0..n {
            let i = (start + k) % n;
            let s = &self.servers[i];
            if !s.eligible(id_of(i), now, exclude) {
                continue;
            }
            let lighter = best.is_none_or(|b| {
                let b = &self.servers[b];
                (u64::from(s.outstanding) + 1) * u64::from(b.spec.weight)
                    < (u64::from(b.outstanding) + 1) * u64::from(s.spec.weight)
            });
            if lighter {
                best = Some(i);
            }
        }
        best.map(id_of)
    }

    fn pick_rendezvous(&self, now: Instant, key: &[u8], exclude: Tried) -> Option<ServerId> {
        let key_hash = self.hasher.hash(key);
        let mut best: Option<(usize, f64)> = None;
        for (i, s) in self.servers.iter().enumerate() {
            if !s.eligible(id_of(i), now, exclude) {
                continue;
            }
            let score = rendezvous_score(key_hash, s.seed, s.spec.weight);
            if best.is_none_or(|(_, b)| score < b) {
                best = Some((i, score));
            }
        }
        best.map(|(i, _)| id_of(i))
    }

    /// A request to `id` begins at `now` (call it before connecting): it counts as outstanding
    /// until [`on_request_end`](Self::on_request_end).
    pub fn on_request_start(&mut self, id: ServerId, now: Instant) -> Ticket {
        let s = &mut self.servers[id.index()];
        s.outstanding = s.outstanding.saturating_add(1);
        s.requests += 1;
        Ticket {
            server: id,
            started: now,
        }
    }

    /// The request of `ticket` ended at `now` with `outcome`; passive health takes it in.
    pub fn on_request_end(&mut self, ticket: Ticket, now: Instant, outcome: Outcome) {
        let i = ticket.server.index();
        let s = &mut self.servers[i];
        s.outstanding = s.outstanding.saturating_sub(1);
        if outcome == Outcome::Failed {
            s.failures += 1;
        }
        if self.max_fails == 0 {
            return;
        }
        match (s.passive, outcome) {
            (PassiveState::Healthy, Outcome::Ok) => {}
            (PassiveState::Healthy, Outcome::Failed) => {
                if self.record_failure(i, now) {
                    self.eject(i, now);
                }
            }
            // Started before the ejection (or the trial): it says nothing about the server now.
            (PassiveState::Ejected { .. }, _) => {}
            (PassiveState::Trial { since, .. }, _) if ticket.started < since => {}
            // Fully restored: `eject` emptied the failure window and nothing refilled it since.
            (PassiveState::Trial { .. }, Outcome::Ok) => {
                self.servers[i].passive = PassiveState::Healthy;
            }
            (PassiveState::Trial { .. }, Outcome::Failed) => self.eject(i, now),
        }
    }

    /// Logs a failure of server `i` at `now`; true when the last `max_fails` failures lie
    /// within `fail_timeout`.
    fn record_failure(&mut self, i: usize, now: Instant) -> bool {
        let window = self.max_fails as usize;
        let ring = &mut self.fail_log[i * window..(i + 1) * window];
        let s = &mut self.servers[i];
        ring[s.fail_next as usize] = now;
        s.fail_next = (s.fail_next + 1) % self.max_fails;
        s.fail_len = (s.fail_len + 1).min(self.max_fails);
        // Full ring: the next slot to overwrite holds the oldest of the last `max_fails`.
        s.fail_len == self.max_fails && now - ring[s.fail_next as usize] <= self.fail_timeout
    }

    fn eject(&mut self, i: usize, now: Instant) {
        let s = &mut self.servers[i];
        s.passive = PassiveState::Ejected {
            until: now + self.fail_timeout,
        };
        s.ejections += 1;
        s.fail_len = 0;
    }

    /// The active health checker's latest verdict on `id`. Passive state is kept: a server
    /// that comes back Up while ejected still waits for its trial.
    pub fn set_active_health(&mut self, id: ServerId, health: Health) {
        self.servers[id.index()].health = health;
    }
}

/// `i < MAX_SERVERS` by construction of the pool.
fn id_of(i: usize) -> ServerId {
    debug_assert!(i < MAX_SERVERS);
    ServerId(i as u8)
}

/// A fixed encoding of an address for its hash seed: family, 16 address bytes, port.
fn addr_bytes(addr: SocketAddr) -> [u8; 19] {
    let mut out = [0u8; 19];
    match addr {
        SocketAddr::V4(a) => {
            out[0] = 4;
            out[1..5].copy_from_slice(&a.ip().octets());
        }
        SocketAddr::V6(a) => {
            out[0] = 6;
            out[1..17].copy_from_slice(&a.ip().octets());
        }
    }
    out[17..].copy_from_slice(&addr.port().to_be_bytes());
    out
}

/// Server `seed`'s weighted rendezvous score for a key hashed to `key_hash`; the smallest wins.
/// `-ln(u) / weight` with `u` uniform in (0, 1) is exponential with rate `weight`, so a server
/// wins a share of keys proportional to its weight.
fn rendezvous_score(key_hash: u64, seed: u64, weight: u32) -> f64 {
    let h = mix64(key_hash ^ seed);
    // The top 53 bits and a half step: strictly inside (0, 1), so the logarithm is finite.
    let u = ((h >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
    -u.ln() / f64::from(weight)
}

/// SplitMix64's finalizer: a bijection with full avalanche, so the seeds' differences spread
/// over every bit of each server's draw for one key hash.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
#[path = "balance_tests.rs"]
mod tests;
