//! Which route a request takes (issue 13, routing): its `Host` and path prefix matched against
//! the configured `[[route]]`s, giving an upstream pool, a configured response or the
//! gateway's own answers. Sans-IO; [`RouteTable::new`] checks and orders the routes once, and
//! [`RouteTable::find`] compares bytes in place, with no allocation.
//!
//! Matching:
//!
//! - `host`: the request's `Host` with any `:port` removed (an IPv6 literal in brackets is
//!   kept whole) equals the route's host, ASCII case-insensitively (RFC 9110 §4.2.3: the host
//!   is case-insensitive). No other normalisation: `example.com.` is not `example.com`. A
//!   route with a host does not match a request without one (HTTP/1.0); a route without a
//!   host matches every host.
//! - `path_prefix`: the request's path (without its query, as `http::head::route_path` gives
//!   it) starts with the prefix and the match ends on a `/` boundary: `/api` matches `/api` and
//!   `/api/x` but not `/apix`; a prefix that ends with `/` matches what starts with it (`/api/`
//!   matches `/api/` and `/api/x`, not `/api`). Bytes are compared as they are (case-sensitive,
//!   no percent-decoding or dot-segment removal, like [`super::forward`]'s `strip_prefix`, so
//!   the prefix matched is the prefix stripped). A route without a prefix matches every path,
//!   `*` included.
//!
//! Among the routes that match, a route with a host beats every route without one (the host
//! is chosen first, as nginx chooses its `server` before a `location`: a virtual host's
//! routes are not taken over by a catch-all's longer prefix); then the longest prefix wins
//! (no prefix counts as length 0, below `/`); routes in configuration order break the
//! remaining ties. Two routes with the same host and prefix are refused: the
//! second could never be chosen. `find` walks the routes in that precedence order, so its cost
//! is the number of routes tried before the first match ([`MAX_ROUTES`] at most).

use std::fmt;
use std::net::Ipv6Addr;

use thiserror::Error;

use super::forward::{ForwardConfig, ForwardConfigError, ForwardRules};

/// The most routes a table holds: a [`RouteId`] is a `u16`, and `find` is a linear walk.
pub const MAX_ROUTES: usize = 4096;

/// An upstream pool, by its index in the configuration's list of pools. The table does not
/// know the pools: the caller that resolves pool names gives valid indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UpstreamId(pub u16);

impl UpstreamId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A route of one [`RouteTable`]: its index in the routes given to [`RouteTable::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteId(u16);

impl RouteId {
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The route at `index` of the list the table was built from (below [`MAX_ROUTES`]).
    pub fn from_index(index: usize) -> RouteId {
        RouteId(index as u16)
    }
}

/// What a route matches; `None` matches everything. Checked by [`RouteTable::new`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteMatch {
    /// A `uri-host` without port (RFC 3986 §3.2.2): a name, an IPv4 address or a bracketed
    /// IPv6 literal; any case.
    pub host: Option<String>,
    /// Starts with `/`; visible ASCII without `?` or `#`.
    pub path_prefix: Option<String>,
}

/// Where a matched request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// Forwarded to this upstream pool.
    Upstream(UpstreamId),
    /// Answered by the gateway with this status and body.
    Respond { status: u16, body: Box<[u8]> },
    /// Not proxied: the gateway's own routes and static files answer it (the `App`).
    Static,
}

/// One route as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub matches: RouteMatch,
    pub target: RouteTarget,
    /// The forwarding rules of an [`RouteTarget::Upstream`] route; other targets must leave
    /// the default (nothing is forwarded, so a rule would silently do nothing).
    pub forward: ForwardConfig,
}

impl RouteSpec {
    /// Requests under `path_prefix`, any host, forwarded to `upstream` with the default
    /// forwarding rules.
    pub fn prefix_to(path_prefix: &str, upstream: UpstreamId) -> RouteSpec {
        RouteSpec {
            matches: RouteMatch {
                host: None,
                path_prefix: Some(path_prefix.into()),
            },
            target: RouteTarget::Upstream(upstream),
            forward: ForwardConfig::default(),
        }
    }
}

/// Why a list of [`RouteSpec`]s makes no table; each names the route (its index) and the key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RouteError {
    #[error("route: {count} routes, more than {max}", max = MAX_ROUTES)]
    TooMany { count: usize },
    #[error("route[{route}].host: {host:?} is not a host name or IP address without port")]
    BadHost { route: usize, host: String },
    #[error("route[{route}].path_prefix: {prefix:?} must start with '/' and be visible ASCII without '?' or '#'")]
    BadPathPrefix { route: usize, prefix: String },
    #[error("route[{route}].respond.status: {status} is not a final status code (200..=599)")]
    BadStatus { route: usize, status: u16 },
    #[error("route[{route}].respond.body: status {status} does not allow a body")]
    BodyNotAllowed { route: usize, status: u16 },
    /// The message of a [`ForwardConfigError`] starts with its key.
    #[error("route[{route}].{source}")]
    Forward {
        route: usize,
        source: ForwardConfigError,
    },
    #[error("route[{route}]: forwarding rules apply only to a route with an upstream")]
    ForwardWithoutUpstream { route: usize },
    #[error("route[{route}]: same host and path_prefix as route[{earlier}], which would always be chosen first")]
    Duplicate { route: usize, earlier: usize },
}

/// A route as the table keeps it: host lowercased, the forwarding rules built.
#[derive(Clone, PartialEq, Eq)]
struct Route {
    host: Option<Box<[u8]>>,
    prefix: Option<Box<[u8]>>,
    target: RouteTarget,
    forward: Option<ForwardRules>,
}

impl Route {
    /// `host` is the request's, already without port.
    fn matches(&self, host: Option<&[u8]>, path: &[u8]) -> bool {
        if let Some(want) = &self.host {
            match host {
                Some(h) if h.eq_ignore_ascii_case(want) => {}
                _ => return false,
            }
        }
        match &self.prefix {
            None => true,
            Some(p) => prefix_matches(p, path),
        }
    }

    fn prefix_len(&self) -> usize {
        self.prefix.as_ref().map_or(0, |p| p.len())
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text =
            |b: &Option<Box<[u8]>>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
        f.debug_struct("Route")
            .field("host", &text(&self.host))
            .field("prefix", &text(&self.prefix))
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The checked routes, in configuration order, with the order `find` tries them in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    routes: Box<[Route]>,
    /// Route indices by precedence: longest prefix, then with a host, then configuration order.
    precedence: Box<[u16]>,
}

impl RouteTable {
    /// Checks every route (host, prefix, response status, forwarding rules, no two routes
    /// with the same host and prefix) and orders them for [`RouteTable::find`].
    pub fn new(specs: Vec<RouteSpec>) -> Result<RouteTable, RouteError> {
        if specs.len() > MAX_ROUTES {
            return Err(RouteError::TooMany { count: specs.len() });
        }
        let mut routes: Vec<Route> = Vec::with_capacity(specs.len());
        for (i, spec) in specs.into_iter().enumerate() {
            let host = match &spec.matches.host {
                None => None,
                Some(h) => Some(normal_host(h).ok_or_else(|| RouteError::BadHost {
                    route: i,
                    host: h.clone(),
                })?),
            };
            let prefix = match &spec.matches.path_prefix {
                None => None,
                Some(p) if valid_prefix(p) => Some(p.as_bytes().into()),
                Some(p) => {
                    return Err(RouteError::BadPathPrefix {
                        route: i,
                        prefix: p.clone(),
                    })
                }
            };
            let forward = match &spec.target {
                RouteTarget::Upstream(_) => Some(
                    ForwardRules::new(&spec.forward)
                        .map_err(|source| RouteError::Forward { route: i, source })?,
                ),
                RouteTarget::Respond { status, body } => {
                    if !(200..=599).contains(status) {
                        return Err(RouteError::BadStatus {
                            route: i,
                            status: *status,
                        });
                    }
                    if (*status == 204 || *status == 304) && !body.is_empty() {
                        return Err(RouteError::BodyNotAllowed {
                            route: i,
                            status: *status,
                        });
                    }
                    None
                }
                RouteTarget::Static => None,
            };
            if forward.is_none() && spec.forward != ForwardConfig::default() {
                return Err(RouteError::ForwardWithoutUpstream { route: i });
            }
            if let Some(earlier) = routes
                .iter()
                .position(|r| r.host == host && r.prefix == prefix)
            {
                return Err(RouteError::Duplicate { route: i, earlier });
            }
            routes.push(Route {
                host,
                prefix,
                target: spec.target,
                forward,
            });
        }
        let mut precedence: Vec<u16> = (0..routes.len() as u16).collect();
        // A stable sort keeps configuration order among equals.
        precedence.sort_by_key(|&i| {
            let r = &routes[i as usize];
            (r.host.is_none(), std::cmp::Reverse(r.prefix_len()))
        });
        Ok(RouteTable {
            routes: routes.into(),
            precedence: precedence.into(),
        })
    }

    /// The route a request takes: `host` is its `Host` value as received (`None`: it sent
    /// none), `path` its path without the query. `None`: no route matches.
    pub fn find(&self, host: Option<&[u8]>, path: &[u8]) -> Option<RouteId> {
        let host = host.map(host_without_port);
        self.precedence
            .iter()
            .copied()
            .find(|&i| self.routes[i as usize].matches(host, path))
            .map(RouteId)
    }

    /// Panics on a [`RouteId`] this table did not give out.
    pub fn target(&self, id: RouteId) -> &RouteTarget {
        &self.routes[id.index()].target
    }

    /// The forwarding rules of an [`RouteTarget::Upstream`] route; `None` for other targets.
    /// Panics on a [`RouteId`] this table did not give out.
    pub fn forward_rules(&self, id: RouteId) -> Option<&ForwardRules> {
        self.routes[id.index()].forward.as_ref()
    }

    /// The number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// `path` starts with `prefix`, and the match ends on a `/` boundary.
fn prefix_matches(prefix: &[u8], path: &[u8]) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => rest.is_empty() || rest[0] == b'/' || prefix.ends_with(b"/"),
    }
}

/// A `Host` value without its port: `a.example:8080` is `a.example`, `[::1]:80` is `[::1]`.
fn host_without_port(host: &[u8]) -> &[u8] {
    let end = if host.first() == Some(&b'[') {
        host.iter()
            .position(|&b| b == b']')
            .map_or(host.len(), |at| at + 1)
    } else {
        host.iter().position(|&b| b == b':').unwrap_or(host.len())
    };
    &host[..end]
}

/// A configured host, checked as a `uri-host` without port and lowercased; `None` if it is not
/// one. An IPv6 literal is kept as written (lowercased), not canonicalised: the client's `Host`
/// is compared byte for byte too.
fn normal_host(host: &str) -> Option<Box<[u8]>> {
    let b = host.as_bytes();
    let ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<Ipv6Addr>().is_ok()
    } else {
        !b.is_empty() && reg_name(b)
    };
    ok.then(|| host.to_ascii_lowercase().into_bytes().into())
}

/// RFC 3986 §3.2.2 reg-name (which IPv4 addresses also are): unreserved, pct-encoded and
/// sub-delims.
fn reg_name(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
                continue;
            }
            c if c.is_ascii_alphanumeric() => {}
            b'-' | b'.' | b'_' | b'~' => {}
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

fn valid_prefix(p: &str) -> bool {
    p.starts_with('/')
        && p.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
