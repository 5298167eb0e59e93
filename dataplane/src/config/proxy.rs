//! `[[upstream]]` and `[[route]]`: the reverse proxy's pools and routes (issue 13), checked key
//! by key into a [`ProxyConfig`]. Every pool is built once here ([`Pool::new`]) and every
//! route table ([`RouteTable::new`]), so whatever either refuses surfaces at start or at the
//! reload, named by its key, and never on a serving thread.

use std::net::SocketAddr;

use crate::proxy::balance::{HashKey, Policy, Pool, PoolError, PoolSpec, ServerSpec};
use crate::proxy::exchange::Timeouts;
use crate::proxy::forward::ForwardConfig;
use crate::proxy::route::{RouteMatch, RouteSpec, RouteTable, RouteTarget, UpstreamId, MAX_ROUTES};
use crate::time::Duration;

use super::checks::in_range;
use super::file::{HealthCheckEntry, PolicyKey, ProxyRouteEntry, UpstreamEntry};
use super::{invalid, ConfigError};

pub use crate::proxy::config::{
    HashKeySource, HealthCheck, ProxyConfig, UpstreamConfig, MAX_UPSTREAMS,
};

pub use crate::proxy::config::{DEFAULT_FAIL_TIMEOUT, DEFAULT_KEEPALIVE, DEFAULT_MAX_FAILS};
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// `[[upstream]]` and `[[route]]`, checked.
pub(super) fn proxy_sections(
    upstreams: &[UpstreamEntry],
    routes: &[ProxyRouteEntry],
) -> Result<ProxyConfig, ConfigError> {
    if upstreams.len() > MAX_UPSTREAMS {
        return Err(invalid(
            "upstream",
            format!("{} pools, more than {MAX_UPSTREAMS}", upstreams.len()),
        ));
    }
    let mut checked: Vec<UpstreamConfig> = Vec::with_capacity(upstreams.len());
    for (i, u) in upstreams.iter().enumerate() {
        let up = upstream(i, u)?;
        if let Some(j) = checked.iter().position(|c| c.name == up.name) {
            return Err(invalid(
                format!("upstream[{i}].name"),
                format!("{:?} is already the name of upstream[{j}]", up.name),
            ));
        }
        checked.push(up);
    }
    if routes.len() > MAX_ROUTES {
        return Err(invalid(
            "route",
            format!("{} routes, more than {MAX_ROUTES}", routes.len()),
        ));
    }
    let specs = routes
        .iter()
        .enumerate()
        .map(|(i, r)| route(i, r, &checked))
        .collect::<Result<Vec<_>, _>>()?;
    // The table's own checks (hosts, prefixes, statuses, forwarding rules, duplicates) name
    // `route[i].key` in their message, as the keys of this file do.
    let table = RouteTable::new(specs).map_err(|e| {
        let text = e.to_string();
        match text.split_once(": ") {
            Some((key, problem)) => invalid(key, problem),
            None => invalid("route", text),
        }
    })?;
    Ok(ProxyConfig {
        upstreams: checked,
        routes: table,
    })
}

fn upstream(i: usize, u: &UpstreamEntry) -> Result<UpstreamConfig, ConfigError> {
    let key = |k: &str| format!("upstream[{i}].{k}");
    if u.name.is_empty() || !u.name.bytes().all(crate::app::is_tchar) {
        return Err(invalid(
            key("name"),
            format!(
                "{:?} is not a token (letters, digits, !#$%&'*+-.^_`|~)",
                u.name
            ),
        ));
    }
    let mut servers = Vec::with_capacity(u.servers.len());
    for (j, s) in u.servers.iter().enumerate() {
        let addr: SocketAddr = s.address.parse().map_err(|_| {
            invalid(
                key(&format!("servers[{j}].address")),
                format!(
                    "{:?} is not an IP address and port (host names are not resolved: give the address)",
                    s.address
                ),
            )
        })?;
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(invalid(
                key(&format!("servers[{j}].address")),
                format!("{:?} is not an address a connection can go to", s.address),
            ));
        }
        servers.push(ServerSpec {
            addr,
            weight: s.weight.unwrap_or(1),
        });
    }
    let policy = match u.policy.unwrap_or(PolicyKey::RoundRobin) {
        PolicyKey::RoundRobin => Policy::RoundRobin,
        PolicyKey::LeastOutstanding => Policy::LeastOutstanding,
        PolicyKey::Hash => Policy::ConsistentHash,
    };
    let hash_key = match (&u.hash_key, policy) {
        (Some(_), p) if p != Policy::ConsistentHash => {
            return Err(invalid(key("hash_key"), "only with policy = \"hash\""));
        }
        (None, Policy::ConsistentHash) => Some(HashKeySource::ClientAddress),
        (None, _) => None,
        (Some(source), _) => Some(hash_key_source(source).ok_or_else(|| {
            invalid(
                key("hash_key"),
                format!("{source:?} is not \"client_address\" or \"header:<Name>\""),
            )
        })?),
    };
    let ms = |k: &str, v: Option<u64>, range, default: Duration| match v {
        None => Ok(default),
        Some(v) => in_range(&key(k), v, range).map(Duration::from_millis),
    };
    let secs = |k: &str, v: Option<u64>, range, default: Duration| match v {
        None => Ok(default),
        Some(v) => in_range(&key(k), v, range).map(Duration::from_secs),
    };
    let d = Timeouts::default();
    let timeouts = Timeouts {
        connect: ms(
            "connect_timeout_ms",
            u.connect_timeout_ms,
            1..=600_000,
            d.connect,
        )?,
        send: secs("send_timeout_secs", u.send_timeout_secs, 1..=86_400, d.send)?,
        read: secs("read_timeout_secs", u.read_timeout_secs, 1..=86_400, d.read)?,
        idle: secs("idle_timeout_secs", u.idle_timeout_secs, 1..=86_400, d.idle)?,
        expect_continue: d.expect_continue,
    };
    let keepalive = match u.keepalive {
        None => DEFAULT_KEEPALIVE,
        Some(n) => in_range(&key("keepalive"), n, 0..=4096)?,
    };
    let fail_timeout = secs(
        "fail_timeout_secs",
        u.fail_timeout_secs,
        0..=3600,
        DEFAULT_FAIL_TIMEOUT,
    )?;
    let pool = PoolSpec {
        servers,
        policy,
        max_fails: u.max_fails.unwrap_or(DEFAULT_MAX_FAILS),
        fail_timeout,
    };
    // Built once to surface every error now; the key does not change what is refused.
    Pool::new(&pool, HashKey([0; 16])).map_err(|e| pool_error(i, &pool, e))?;
    let health_check = match &u.health_check {
        None => None,
        Some(h) => Some(health_check(i, h)?),
    };
    Ok(UpstreamConfig {
        name: u.name.clone(),
        pool,
        hash_key,
        keepalive,
        timeouts,
        health_check,
    })
}

fn hash_key_source(source: &str) -> Option<HashKeySource> {
    if source == "client_address" {
        return Some(HashKeySource::ClientAddress);
    }
    let name = source.strip_prefix("header:")?;
    (!name.is_empty() && name.bytes().all(crate::app::is_tchar))
        .then(|| HashKeySource::Header(name.to_string()))
}

/// A [`PoolError`] under the key it is about.
fn pool_error(i: usize, pool: &PoolSpec, e: PoolError) -> ConfigError {
    let server = |addr: SocketAddr| pool.servers.iter().rposition(|s| s.addr == addr);
    let key = match e {
        PoolError::NoServers | PoolError::TooManyServers { .. } => "servers".to_string(),
        PoolError::WeightOutOfRange { addr, .. } => {
            format!("servers[{}].weight", server(addr).unwrap_or(0))
        }
        PoolError::DuplicateAddress { addr } => {
            format!("servers[{}].address", server(addr).unwrap_or(0))
        }
        PoolError::MaxFailsTooLarge { .. } => "max_fails".to_string(),
        PoolError::ZeroFailTimeout { .. } => "fail_timeout_secs".to_string(),
    };
    invalid(format!("upstream[{i}].{key}"), e.to_string())
}

fn health_check(i: usize, h: &HealthCheckEntry) -> Result<HealthCheck, ConfigError> {
    let key = |k: &str| format!("upstream[{i}].health_check.{k}");
    if !h.path.starts_with('/') || !h.path.bytes().all(|b| b.is_ascii_graphic() && b != b'#') {
        return Err(invalid(
            key("path"),
            format!(
                "{:?} must start with '/' and be visible ASCII without '#'",
                h.path
            ),
        ));
    }
    let interval = match h.interval_ms {
        None => DEFAULT_HEALTH_INTERVAL,
        Some(v) => Duration::from_millis(in_range(&key("interval_ms"), v, 100..=3_600_000)?),
    };
    let timeout = match h.timeout_ms {
        None => DEFAULT_HEALTH_TIMEOUT.min(interval),
        Some(v) => Duration::from_millis(in_range(&key("timeout_ms"), v, 1..=3_600_000)?),
    };
    if timeout > interval {
        return Err(invalid(
            key("timeout_ms"),
            format!(
                "{} must not exceed health_check.interval_ms ({})",
                timeout.as_millis(),
                interval.as_millis()
            ),
        ));
    }
    let expect_status = match h.expect_status {
        None => 200,
        Some(s) => in_range(&key("expect_status"), s, 200..=599)?,
    };
    Ok(HealthCheck {
        path: h.path.clone(),
        interval,
        expect_status,
        timeout,
    })
}

/// The forwarding keys of a `[[route]]`, by name, and whether the entry sets each.
fn forwarding_keys(r: &ProxyRouteEntry) -> [(&'static str, bool); 9] {
    [
        ("strip_prefix", r.strip_prefix.is_some()),
        ("set_headers", r.set_headers.is_some()),
        ("remove_headers", r.remove_headers.is_some()),
        ("response_set_headers", r.response_set_headers.is_some()),
        (
            "response_remove_headers",
            r.response_remove_headers.is_some(),
        ),
        ("upstream_host", r.upstream_host.is_some()),
        ("x_forwarded", r.x_forwarded.is_some()),
        ("forwarded", r.forwarded.is_some()),
        ("via", r.via.is_some()),
    ]
}

fn route(
    i: usize,
    r: &ProxyRouteEntry,
    upstreams: &[UpstreamConfig],
) -> Result<RouteSpec, ConfigError> {
    let key = |k: &str| format!("route[{i}].{k}");
    let targets = [
        r.upstream.is_some(),
        r.respond.is_some(),
        r.static_files.is_some(),
    ];
    let count = targets.iter().filter(|&&t| t).count();
    if count != 1 {
        return Err(invalid(
            format!("route[{i}]"),
            format!(
                "{} of upstream, respond and static given: exactly one says where the requests go",
                if count == 0 { "none" } else { "more than one" }
            ),
        ));
    }
    let target = if let Some(name) = &r.upstream {
        let at = upstreams
            .iter()
            .position(|u| &u.name == name)
            .ok_or_else(|| {
                invalid(
                    key("upstream"),
                    format!("{name:?} is not the name of an [[upstream]]"),
                )
            })?;
        // MAX_UPSTREAMS keeps every index within a u16.
        RouteTarget::Upstream(UpstreamId(at as u16))
    } else if let Some(respond) = &r.respond {
        RouteTarget::Respond {
            status: respond.status,
            body: respond.body.as_bytes().into(),
        }
    } else {
        if r.static_files == Some(false) {
            return Err(invalid(
                key("static"),
                "false says nothing: give static = true, or another target",
            ));
        }
        RouteTarget::Static
    };
    if r.upstream.is_none() {
        if let Some((name, _)) = forwarding_keys(r).into_iter().find(|&(_, set)| set) {
            return Err(invalid(
                key(name),
                "only for a route with an upstream: nothing else is forwarded",
            ));
        }
    }
    let d = ForwardConfig::default();
    let forward = ForwardConfig {
        via: r.via.clone().unwrap_or(d.via),
        x_forwarded: r.x_forwarded.unwrap_or(d.x_forwarded),
        forwarded: r.forwarded.unwrap_or(d.forwarded),
        strip_prefix: r.strip_prefix.clone(),
        set_headers: r.set_headers.clone().map(|h| h.0).unwrap_or_default(),
        remove_headers: r.remove_headers.clone().unwrap_or_default(),
        response_set_headers: r
            .response_set_headers
            .clone()
            .map(|h| h.0)
            .unwrap_or_default(),
        response_remove_headers: r.response_remove_headers.clone().unwrap_or_default(),
        upstream_host: r.upstream_host.clone(),
    };
    Ok(RouteSpec {
        matches: RouteMatch {
            host: r.host.clone(),
            path_prefix: r.path_prefix.clone(),
        },
        target,
        forward,
    })
}
