//! The proxy's checked configuration as every serving thread takes it: the pools
//! (`[[upstream]]`) and the route table (`[[route]]`). `dataplane`'s configuration checks the
//! file key by key into these types; each thread builds its pools' mutable state from them.

use crate::proxy::balance::{HashKey, Pool, PoolError, PoolSpec};
use crate::proxy::exchange::Timeouts;
use crate::proxy::route::{RouteTable, UpstreamId};
use crate::time::Duration;

/// The most `[[upstream]]` pools: an [`UpstreamId`] is a `u16`, and each pool costs every
/// serving thread its connections.
pub const MAX_UPSTREAMS: usize = 1024;

/// The checked pools and routes, cheap to rebuild at each reload: the pools' mutable state
/// ([`Pool`]) is built from [`UpstreamConfig::pool`] by each serving thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    /// In file order; an [`UpstreamId`] is an index here.
    pub upstreams: Vec<UpstreamConfig>,
    pub routes: RouteTable,
}

impl ProxyConfig {
    /// Panics on an id no route of this configuration holds.
    pub fn upstream(&self, id: UpstreamId) -> &UpstreamConfig {
        &self.upstreams[id.index()]
    }
}

/// One `[[upstream]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub name: String,
    /// The servers, the policy and passive ejection; [`Pool::new`] accepts it (checked).
    pub pool: PoolSpec,
    /// Where a request's consistent-hash key comes from; `Some` exactly with
    /// [`Policy::ConsistentHash`](crate::proxy::balance::Policy::ConsistentHash).
    pub hash_key: Option<HashKeySource>,
    /// Idle connections kept per serving thread and server.
    pub keepalive: usize,
    pub timeouts: Timeouts,
    pub health_check: Option<HealthCheck>,
}

/// Where a request's key for [`Policy::ConsistentHash`](crate::proxy::balance::Policy::ConsistentHash) comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKeySource {
    /// The client's IP address (not its port: a client's connections stay together).
    ClientAddress,
    /// The value of this request header (a token, as written in the file); a request without
    /// it is placed by round robin.
    Header(String),
}

/// `[upstream.health_check]`: a `GET path` to each server every `interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    /// The status a healthy server answers.
    pub expect_status: u16,
    /// How long the answer may take; at most `interval`.
    pub timeout: Duration,
}

/// Idle connections kept per serving thread and server, unless configured.
pub const DEFAULT_KEEPALIVE: usize = 32;
/// Failures within `fail_timeout` that eject a server, unless configured.
pub const DEFAULT_MAX_FAILS: u32 = 1;
pub const DEFAULT_FAIL_TIMEOUT: Duration = Duration::from_secs(10);

impl UpstreamConfig {
    /// A pool of `servers` (weight 1) with every other key at its default: round robin,
    /// `DEFAULT_KEEPALIVE`, passive ejection at `DEFAULT_MAX_FAILS` within
    /// `DEFAULT_FAIL_TIMEOUT`, the default timeouts, no health check.
    pub fn with_defaults(name: &str, servers: &[std::net::SocketAddr]) -> UpstreamConfig {
        UpstreamConfig {
            name: name.into(),
            pool: PoolSpec {
                servers: servers
                    .iter()
                    .map(|&addr| crate::proxy::balance::ServerSpec { addr, weight: 1 })
                    .collect(),
                policy: crate::proxy::balance::Policy::RoundRobin,
                max_fails: DEFAULT_MAX_FAILS,
                fail_timeout: DEFAULT_FAIL_TIMEOUT,
            },
            hash_key: None,
            keepalive: DEFAULT_KEEPALIVE,
            timeouts: Timeouts::default(),
            health_check: None,
        }
    }

    /// The pool's state for one serving thread; `hash_key` must be the same on every thread
    /// (see `proxy::balance`).
    pub fn pool(&self, hash_key: HashKey) -> Result<Pool, PoolError> {
        Pool::new(&self.pool, hash_key)
    }
}
