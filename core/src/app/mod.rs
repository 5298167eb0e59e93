//! What the gateway answers: configured static routes, files from a directory (read at start
//! by the gateway's loader, never at request time) and a few built-in routes.
//!
//! Every static response is serialised once, in [`App::new`], split in three so that answering
//! costs a copy: the *head* (status line, `Server`, the route's own headers), then the two
//! headers written per response by `http` (`Date`, and `Connection` when needed), then the
//! *tail* (`Content-Length`, the blank line and the body). Dynamic answers (`/bytes/{n}`,
//! `/echo`) share one pre-serialised head and have their framing written by `http`.
//!
//! Routes and files are exact paths in one table sorted by path: [`App::handle`] finds a path
//! by binary search, without allocating, however many files are served.
//!
//! The interface with `http` is [`App::handle`] (what to answer a method and path with),
//! [`App::prepared`] (the bytes of a static response), [`App::status_response`] (the
//! pre-serialised protocol errors), [`App::dynamic_head`] and [`App::date`].

mod date;
mod files;

pub use date::{format_imf_fixdate, IMF_FIXDATE_LEN};
pub use files::{
    check_prefix, content_type, encode_segment, StaticError, StaticFiles, StaticLimits,
    DEFAULT_STATIC_MAX_BYTES, DEFAULT_STATIC_MAX_FILES,
};

use std::collections::BTreeMap;

use crate::proxy::config::ProxyConfig;
use crate::proxy::route::{RouteId, RouteTable, RouteTarget};
use crate::tls::{TlsPorts, TlsSettings};
use std::sync::Arc;

use thiserror::Error;

/// Default bound for `GET /bytes/{n}`.
pub const DEFAULT_MAX_BYTES_LEN: usize = 16 << 20;

/// One configured static route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Request method, an HTTP token (`GET` also answers `HEAD`).
    pub method: String,
    /// Exact path (origin-form, without query), starting with `/`.
    pub path: String,
    /// Final status code, 200..=599.
    pub status: u16,
    /// Extra headers. `Date`, `Connection`, `Content-Length`, `Transfer-Encoding` and `Server`
    /// are written by the gateway and refused here.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the gateway answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    /// Checked before the files and the built-in routes, so a route can replace either.
    pub routes: Vec<RouteConfig>,
    /// `GET`/`HEAD` routes from a directory (read by the gateway's loader, `dataplane::static_dir`), checked after `routes`
    /// (a configured route of the same method and path wins) and before the built-in routes.
    pub files: StaticFiles,
    /// `GET /`, `GET /health`, `GET /bytes/{n}`, `POST /echo`.
    pub builtin_routes: bool,
    /// Largest `n` for `GET /bytes/{n}`; larger gives 413.
    pub max_bytes_len: usize,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            routes: Vec::new(),
            files: StaticFiles::default(),
            builtin_routes: true,
            max_bytes_len: DEFAULT_MAX_BYTES_LEN,
        }
    }
}

/// A configuration the gateway refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AppError {
    #[error("route {index}: method {method:?} is not an HTTP token")]
    BadMethod { index: usize, method: String },
    #[error(
        "route {index}: path {path:?} must start with '/' and be visible ASCII without '?' or '#'"
    )]
    BadPath { index: usize, path: String },
    #[error("route {index}: status {status} is not a final status code (200..=599)")]
    BadStatus { index: usize, status: u16 },
    #[error("route {index}: header name {name:?} is not an HTTP token")]
    BadHeaderName { index: usize, name: String },
    #[error("route {index}: header {name:?} has a value with control characters or surrounding whitespace")]
    BadHeaderValue { index: usize, name: String },
    #[error("route {index}: header {name:?} is written by the gateway")]
    ReservedHeader { index: usize, name: String },
    #[error("route {index}: status {status} does not allow a body")]
    BodyNotAllowed { index: usize, status: u16 },
    #[error("route {index}: {method} {path} is configured more than once")]
    DuplicateRoute {
        index: usize,
        method: String,
        path: String,
    },
    #[error("too many routes ({0})")]
    TooManyRoutes(usize),
}

/// Index of a pre-serialised response inside an [`App`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseId(u32);

/// A static response serialised at start: `head`, then per-response headers, then `tail`.
/// The bytes are shared: `App`s built from one [`AppConfig`] hold one copy of its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    bytes: Arc<[u8]>,
    head_end: usize,
    body_start: usize,
    status: u16,
}

impl Prepared {
    /// Status line, `Server` and the fixed headers, each line ending in CRLF.
    pub fn head(&self) -> &[u8] {
        &self.bytes[..self.head_end]
    }
    /// `Content-Length` (when the status has one), the blank line and the body.
    pub fn tail(&self) -> &[u8] {
        &self.bytes[self.head_end..]
    }
    /// The tail without the body, for `HEAD`.
    pub fn tail_without_body(&self) -> &[u8] {
        &self.bytes[self.head_end..self.body_start]
    }
    pub fn body(&self) -> &[u8] {
        &self.bytes[self.body_start..]
    }
    pub fn status(&self) -> u16 {
        self.status
    }
}

/// What to answer a request with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// A pre-serialised response (this includes 404, 405 and the app-level 400/413).
    Static(ResponseId),
    /// `GET /bytes/{n}`: 200 with `n` bytes, byte i = b'a' + i % 26, after [`App::dynamic_head`].
    Bytes(u64),
    /// `POST /echo`: 200 with the request body, after [`App::dynamic_head`].
    Echo,
    /// Forwarded to an upstream pool by this route: the status is the upstream's (or the
    /// gateway's 502/503/504), known only once it answers.
    Upstream(RouteId),
}

/// Everything answered at one exact path: the configured routes and the file, by method,
/// and the 405 that lists them (with the built-in routes of the path).
struct PathEntry {
    path: Box<[u8]>,
    methods: Box<[(Box<[u8]>, ResponseId)]>,
    allow: ResponseId,
}

impl PathEntry {
    /// The route of `method`; `HEAD` falls back to `GET`.
    fn route(&self, method: &[u8]) -> Option<ResponseId> {
        let find = |m: &[u8]| self.methods.iter().find(|(r, _)| **r == *m).map(|r| r.1);
        find(method).or_else(|| {
            if method == b"HEAD" {
                find(b"GET")
            } else {
                None
            }
        })
    }
}

/// Statuses `http` can answer on its own; pre-serialised with `Connection` left to `http`.
const PROTOCOL_STATUSES: [u16; 14] = [
    400, 404, 405, 408, 413, 414, 417, 431, 500, 501, 502, 503, 504, 505,
];

const STANDARD_METHODS: [&[u8]; 9] = [
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH",
];

const TEXT_PLAIN: (&str, &str) = ("Content-Type", "text/plain; charset=utf-8");
const OCTET_STREAM: (&str, &str) = ("Content-Type", "application/octet-stream");

const INDEX_BODY: &[u8] = b"xgate: HTTP/1.1 gateway\n\
GET /health       liveness\n\
GET /bytes/{n}    n generated bytes\n\
POST /echo        the request body back\n";

/// The gateway's answers, shared by all connections of a poller. Immutable while serving,
/// except for the `Date` value refreshed by [`App::set_date`].
pub struct App {
    prepared: Vec<Prepared>,
    /// Sorted by path, for a binary search per request (no allocation, O(log n) with
    /// thousands of files).
    paths: Vec<PathEntry>,
    extra_methods: Vec<Box<[u8]>>,
    builtin: Option<Builtin>,
    protocol: [ResponseId; PROTOCOL_STATUSES.len()],
    dynamic_head: Box<[u8]>,
    max_bytes_len: u64,
    date: [u8; IMF_FIXDATE_LEN],
    date_secs: u64,
    /// The pools and `[[route]]`s (Host and path prefix, checked before the exact paths): one
    /// generation, shared by every thread, which keeps the pools' mutable state per
    /// generation (a request keeps the pool of the `App` that routed it).
    proxy: Option<Arc<ProxyConfig>>,
    /// The response of each `respond` route, by route index.
    route_responses: Vec<Option<ResponseId>>,
    /// The ports that speak TLS and their certificates: one generation, shared by every
    /// thread (a connection keeps the settings it opened with).
    tls: Option<Arc<TlsPorts>>,
}

struct Builtin {
    index: ResponseId,
    health: ResponseId,
    bytes_405: ResponseId,
}

/// Reason phrase for a status code (RFC 9110 §15); empty for unknown codes.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// `tchar` of RFC 9110 §5.6.2.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Whether `status` is sent without content and without `Content-Length` (RFC 9110 §8.6).
fn status_has_no_content(status: u16) -> bool {
    status == 204 || status == 304
}

fn serialise(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Prepared {
    let mut bytes = Vec::with_capacity(128 + body.len());
    bytes.extend_from_slice(b"HTTP/1.1 ");
    bytes.extend_from_slice(status.to_string().as_bytes());
    bytes.push(b' ');
    bytes.extend_from_slice(reason_phrase(status).as_bytes());
    bytes.extend_from_slice(b"\r\nServer: xgate\r\n");
    for (name, value) in headers {
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    let head_end = bytes.len();
    if !status_has_no_content(status) {
        bytes.extend_from_slice(b"Content-Length: ");
        bytes.extend_from_slice(body.len().to_string().as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"\r\n");
    let body_start = bytes.len();
    bytes.extend_from_slice(body);
    Prepared {
        bytes: bytes.into(),
        head_end,
        body_start,
        status,
    }
}

fn error_body(status: u16) -> Vec<u8> {
    let mut body = reason_phrase(status).as_bytes().to_vec();
    body.push(b'\n');
    body
}

impl App {
    /// Validates `config` and serialises every static response.
    pub fn new(config: &AppConfig) -> Result<App, AppError> {
        if config.routes.len() > 4096 {
            return Err(AppError::TooManyRoutes(config.routes.len()));
        }
        let mut prepared: Vec<Prepared> = Vec::new();
        let mut push = |p: Prepared| {
            prepared.push(p);
            ResponseId((prepared.len() - 1) as u32)
        };

        let mut protocol = [ResponseId(0); PROTOCOL_STATUSES.len()];
        for (slot, &status) in protocol.iter_mut().zip(PROTOCOL_STATUSES.iter()) {
            *slot = push(serialise(status, &[TEXT_PLAIN], &error_body(status)));
        }

        // path -> (routes by method, methods for 405 + Allow in order of first appearance).
        let mut paths: BTreeMap<Box<[u8]>, Slot> = BTreeMap::new();
        let mut extra_methods: Vec<Box<[u8]>> = Vec::new();
        for (index, route) in config.routes.iter().enumerate() {
            validate_route(index, route)?;
            let slot = paths.entry(route.path.as_bytes().into()).or_default();
            if slot.has(route.method.as_bytes()) {
                return Err(AppError::DuplicateRoute {
                    index,
                    method: route.method.clone(),
                    path: route.path.clone(),
                });
            }
            let headers: Vec<(&str, &str)> = route
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let response = push(serialise(route.status, &headers, &route.body));
            slot.methods
                .push((route.method.as_bytes().into(), response));
            slot.allow(&route.method);
            if !STANDARD_METHODS.contains(&route.method.as_bytes())
                && !extra_methods
                    .iter()
                    .any(|m| **m == *route.method.as_bytes())
            {
                extra_methods.push(route.method.as_bytes().into());
            }
        }
        for file in config.files.routes() {
            let slot = paths.entry(file.path.clone()).or_default();
            // A configured GET route of the same path wins over the file.
            if !slot.has(b"GET") {
                let response = push(file.response.clone());
                slot.methods.push((b"GET"[..].into(), response));
                slot.allow("GET");
            }
        }

        let builtin = if config.builtin_routes {
            for (path, method) in [("/", "GET"), ("/health", "GET"), ("/echo", "POST")] {
                paths
                    .entry(path.as_bytes().into())
                    .or_default()
                    .allow(method);
            }
            Some(Builtin {
                index: push(serialise(200, &[TEXT_PLAIN], INDEX_BODY)),
                health: push(serialise(200, &[TEXT_PLAIN], b"ok")),
                bytes_405: push(serialise(
                    405,
                    &[("Allow", "GET, HEAD"), TEXT_PLAIN],
                    &error_body(405),
                )),
            })
        } else {
            None
        };

        // One 405 per distinct Allow list (thousands of files share "GET, HEAD").
        let mut allow_responses: BTreeMap<String, ResponseId> = BTreeMap::new();
        let mut entries = Vec::with_capacity(paths.len());
        for (path, slot) in paths {
            let mut methods = slot.allowed;
            if methods.iter().any(|m| m == "GET") && !methods.iter().any(|m| m == "HEAD") {
                let at = methods.iter().position(|m| m == "GET").unwrap_or(0) + 1;
                methods.insert(at, "HEAD".to_string());
            }
            let allow = methods.join(", ");
            let allow = *allow_responses.entry(allow).or_insert_with_key(|allow| {
                push(serialise(
                    405,
                    &[("Allow", allow.as_str()), TEXT_PLAIN],
                    &error_body(405),
                ))
            });
            entries.push(PathEntry {
                path,
                methods: slot.methods.into_boxed_slice(),
                allow,
            });
        }

        let dynamic = serialise(200, &[OCTET_STREAM], b"");
        let dynamic_head: Box<[u8]> = dynamic.head().into();

        let mut app = App {
            prepared,
            paths: entries,
            extra_methods,
            builtin,
            protocol,
            dynamic_head,
            max_bytes_len: config.max_bytes_len as u64,
            date: [0; IMF_FIXDATE_LEN],
            date_secs: 0,
            proxy: None,
            tls: None,
            route_responses: Vec::new(),
        };
        format_imf_fixdate(0, &mut app.date);
        Ok(app)
    }

    /// Sets the wall clock for the `Date` header; reformats only when the second changes.
    pub fn set_date(&mut self, unix_secs: u64) {
        if unix_secs != self.date_secs {
            self.date_secs = unix_secs;
            format_imf_fixdate(unix_secs, &mut self.date);
        }
    }

    /// The current `Date` value (IMF-fixdate, fixed width).
    pub fn date(&self) -> &[u8; IMF_FIXDATE_LEN] {
        &self.date
    }

    /// Whether `method` is one this gateway knows (standard methods and configured ones); for
    /// others `http` answers 501.
    pub fn knows_method(&self, method: &[u8]) -> bool {
        STANDARD_METHODS.contains(&method) || self.extra_methods.iter().any(|m| **m == *method)
    }

    /// What to answer `method path` with. `path` is the origin-form path without the query.
    /// `HEAD` is answered like `GET` (the caller leaves the body out).
    ///
    /// Order: the configured routes and the files of `path` (an exact match, found by binary
    /// search), then the built-in routes, then 405 with the path's `Allow`, else 404.
    pub fn handle(&self, method: &[u8], path: &[u8]) -> Handler {
        let head = method == b"HEAD";
        let entry = self.entry(path);
        if let Some(id) = entry.and_then(|e| e.route(method)) {
            return Handler::Static(id);
        }
        if let Some(builtin) = &self.builtin {
            let get = head || method == b"GET";
            match path {
                b"/" if get => return Handler::Static(builtin.index),
                b"/health" if get => return Handler::Static(builtin.health),
                b"/echo" if method == b"POST" => return Handler::Echo,
                _ => {}
            }
            if let Some(n) = path.strip_prefix(b"/bytes/") {
                if !get {
                    return Handler::Static(entry.map_or(builtin.bytes_405, |e| e.allow));
                }
                return match parse_decimal(n) {
                    None => Handler::Static(self.status_response(400)),
                    Some(n) if n > self.max_bytes_len => Handler::Static(self.status_response(413)),
                    Some(n) => Handler::Bytes(n),
                };
            }
        }
        Handler::Static(entry.map_or(self.status_response(404), |e| e.allow))
    }

    /// Takes the proxy's pools and `[[route]]` table: requests a route matches go upstream
    /// or get the route's response before the exact paths are looked at; `static` routes and
    /// requests no route matches are answered as before.
    pub fn set_proxy(&mut self, proxy: Arc<ProxyConfig>) {
        let routes = &proxy.routes;
        self.route_responses = (0..routes.len())
            .map(|i| match routes.target(RouteId::from_index(i)) {
                RouteTarget::Respond { status, body } => {
                    self.prepared.push(serialise(*status, &[TEXT_PLAIN], body));
                    Some(ResponseId((self.prepared.len() - 1) as u32))
                }
                _ => None,
            })
            .collect();
        self.proxy = Some(proxy);
    }

    /// An `App` for one serving thread in a generation: `config`'s answers, the generation's
    /// proxy pools and routes, and its TLS ports (each shared by every thread).
    pub fn for_generation(
        config: &AppConfig,
        proxy: Option<&Arc<ProxyConfig>>,
        tls: Option<&Arc<TlsPorts>>,
    ) -> Result<App, AppError> {
        let mut app = App::new(config)?;
        if let Some(proxy) = proxy {
            app.set_proxy(Arc::clone(proxy));
        }
        if let Some(tls) = tls {
            app.set_tls(Arc::clone(tls));
        }
        Ok(app)
    }

    /// The TLS ports of this generation.
    pub fn set_tls(&mut self, tls: Arc<TlsPorts>) {
        self.tls = (!tls.is_empty()).then_some(tls);
    }

    /// The TLS settings of a connection accepted on `port`, if the port speaks TLS.
    pub fn tls_for(&self, port: u16) -> Option<&Arc<TlsSettings>> {
        self.tls.as_ref()?.get(port)
    }

    pub fn tls(&self) -> Option<&Arc<TlsPorts>> {
        self.tls.as_ref()
    }

    /// The proxy's configuration this `App` routes by, if any.
    pub fn proxy(&self) -> Option<&Arc<ProxyConfig>> {
        self.proxy.as_ref()
    }

    /// The routes this `App` answers by (for the forwarding rules of an upstream route).
    pub fn routes(&self) -> Option<&RouteTable> {
        self.proxy.as_deref().map(|p| &p.routes)
    }

    /// The answer of the `[[route]]` a request for `path` on `host` takes, if one takes it:
    /// checked before [`App::handle`] and before the method is checked (an upstream may know
    /// methods the gateway does not). `None`: no route, or a `static` one.
    pub fn route(&self, host: Option<&[u8]>, path: &[u8]) -> Option<Handler> {
        let routes = &self.proxy.as_ref()?.routes;
        let id = routes.find(host, path)?;
        match routes.target(id) {
            RouteTarget::Upstream(_) => Some(Handler::Upstream(id)),
            RouteTarget::Respond { .. } => self.route_responses[id.index()].map(Handler::Static),
            RouteTarget::Static => None,
        }
    }

    fn entry(&self, path: &[u8]) -> Option<&PathEntry> {
        self.paths
            .binary_search_by(|e| (*e.path).cmp(path))
            .ok()
            .map(|at| &self.paths[at])
    }

    /// The bytes of a static response.
    pub fn prepared(&self, id: ResponseId) -> &Prepared {
        &self.prepared[id.0 as usize]
    }

    /// Status a handler answers with.
    pub fn status(&self, handler: Handler) -> u16 {
        match handler {
            Handler::Static(id) => self.prepared(id).status,
            Handler::Bytes(_) | Handler::Echo => 200,
            // Not known before the upstream answers; `http` counts the real one then.
            Handler::Upstream(_) => 0,
        }
    }

    /// Pre-serialised response for a status `http` answers on its own (400, 404, 405, 408,
    /// 413, 414, 417, 431, 500, 501, 502, 503, 504, 505); 500 for any other status.
    pub fn status_response(&self, status: u16) -> ResponseId {
        let at = PROTOCOL_STATUSES
            .iter()
            .position(|&s| s == status)
            .or_else(|| PROTOCOL_STATUSES.iter().position(|&s| s == 500))
            .unwrap_or(0);
        self.protocol[at]
    }

    /// Head (status line, `Server`, `Content-Type`) of the 200 answers of `/bytes` and `/echo`.
    pub fn dynamic_head(&self) -> &[u8] {
        &self.dynamic_head
    }
}

/// A path while [`App::new`] collects it.
#[derive(Default)]
struct Slot {
    methods: Vec<(Box<[u8]>, ResponseId)>,
    allowed: Vec<String>,
}

impl Slot {
    fn has(&self, method: &[u8]) -> bool {
        self.methods.iter().any(|(m, _)| **m == *method)
    }

    fn allow(&mut self, method: &str) {
        if !self.allowed.iter().any(|m| m == method) {
            self.allowed.push(method.to_string());
        }
    }
}

/// Decimal digits only (no sign, no spaces); `None` for anything else, `Some(u64::MAX)` when
/// the number does not fit (it is then larger than any limit).
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

fn validate_route(index: usize, route: &RouteConfig) -> Result<(), AppError> {
    if !is_token(route.method.as_bytes()) {
        return Err(AppError::BadMethod {
            index,
            method: route.method.clone(),
        });
    }
    let path = route.path.as_bytes();
    if path.first() != Some(&b'/')
        || !path
            .iter()
            .all(|&b| b.is_ascii_graphic() && b != b'?' && b != b'#')
    {
        return Err(AppError::BadPath {
            index,
            path: route.path.clone(),
        });
    }
    if !(200..=599).contains(&route.status) {
        return Err(AppError::BadStatus {
            index,
            status: route.status,
        });
    }
    if status_has_no_content(route.status) && !route.body.is_empty() {
        return Err(AppError::BodyNotAllowed {
            index,
            status: route.status,
        });
    }
    for (name, value) in &route.headers {
        if !is_token(name.as_bytes()) {
            return Err(AppError::BadHeaderName {
                index,
                name: name.clone(),
            });
        }
        const RESERVED: [&str; 5] = [
            "date",
            "connection",
            "content-length",
            "transfer-encoding",
            "server",
        ];
        if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            return Err(AppError::ReservedHeader {
                index,
                name: name.clone(),
            });
        }
        let v = value.as_bytes();
        let bad_char = v.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f);
        let padded = v.first().is_some_and(|b| *b == b' ' || *b == b'\t')
            || v.last().is_some_and(|b| *b == b' ' || *b == b'\t');
        if bad_char || padded {
            return Err(AppError::BadHeaderValue {
                index,
                name: name.clone(),
            });
        }
    }
    Ok(())
}

/// An `App` answering `GET /v` with `body` (200) and the built-in routes: the answers the
/// reload tests of `answers`, `sessions` and `engine` swap.
#[cfg(test)]
pub(crate) fn answering_v(body: &str) -> App {
    App::new(&AppConfig {
        routes: vec![RouteConfig {
            method: "GET".into(),
            path: "/v".into(),
            status: 200,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }],
        ..AppConfig::default()
    })
    .expect("one plain route is valid")
}

#[cfg(test)]
mod tests;
