//! The request head an upstream receives (issue 13, item 3), written into the caller's buffer
//! with no allocation: the client's request as the server side accepted it, with the
//! intermediary's changes of RFC 9110 §7.6 and RFC 9112 §6–7 and the route's own rules.
//!
//! [`ForwardRules::new`] validates a route's [`ForwardConfig`] once (a typed
//! [`ForwardConfigError`] names the key and value it refuses); [`ForwardRules::write_head`]
//! then writes, per request, in this order:
//!
//! 1. the request line, `HTTP/1.1` whatever the client spoke (RFC 9110 §2.5: an intermediary
//!    sends its own version), the target with the route's prefix stripped;
//! 2. `Host`: the route's `upstream_host`, or the authority the client's request was for;
//! 3. the client's end-to-end fields, in order, names and values byte-exact, except those
//!    listed below;
//! 4. the body's framing as the gateway sends it ([`BodyFraming`]): `Content-Length` or
//!    `Transfer-Encoding: chunked`;
//! 5. `Connection: close` when the upstream connection is not to be kept;
//! 6. `Via` (RFC 9110 §7.6.3), the client's list with this hop appended;
//! 7. `X-Forwarded-For` (the client's list with the peer appended), `X-Forwarded-Proto`,
//!    `X-Forwarded-Host` when configured;
//! 8. `Forwarded` (RFC 7239) when configured, the client's elements with this hop's appended;
//! 9. the route's `set_headers`, then the empty line.
//!
//! What is not copied from the client, and why:
//!
//! - `Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Upgrade` and
//!   `Transfer-Encoding`: hop-by-hop (RFC 9110 §7.6.1, §7.8, §10.1.4, §6.6.2; RFC 9112 §7).
//!   The upstream hop has its own connection; an upgrade is not relayed (no WebSocket through
//!   this head); the body's transfer coding is the gateway's (step 4).
//! - Every field named by a `Connection` option (§7.6.1: an intermediary MUST remove them),
//!   matched without regard to case, in any number of `Connection` lines, with empty list
//!   elements and OWS ignored. The exception is `Host`: it is the target URI's authority
//!   (RFC 9112 §3.2), written in step 2 from [`ClientRequest::host`], not a field relayed.
//! - `Host` and `Content-Length`: written again in steps 2 and 4. A request the gateway sends
//!   without a body gets `Content-Length: 0` if the client sent a `Content-Length` (a `POST`
//!   with an empty body keeps saying so, RFC 9110 §8.6) and no framing field otherwise.
//! - `Expect` from an HTTP/1.0 client: RFC 9110 §10.1.1 has the server ignore it, and
//!   forwarded over HTTP/1.1 it would become an expectation the upstream honours. From an
//!   HTTP/1.1 client `Expect` is kept: the caller handles `100 Continue` on both sides.
//! - `Via`, and with `x_forwarded` `X-Forwarded-For`, with `forwarded` `Forwarded`: written
//!   once, combined, in steps 6–8 (the client's field lines joined with `", "` as RFC 9110 §5.3
//!   allows for a list, then this hop's element), so a reader of only the first or only the
//!   last line sees the whole list. With `x_forwarded`, the client's `X-Forwarded-Proto` and
//!   `X-Forwarded-Host` are dropped: they are single values, and a client's own would claim a
//!   scheme or host it did not use.
//! - The route's `remove_headers` and the names of its `set_headers`. These rules apply to
//!   the client's fields: removing `X-Forwarded-For` or `Forwarded` while the gateway writes
//!   them is how a route at the edge refuses to trust a client's list (only this hop's element
//!   is sent).
//!
//! `Max-Forwards` of a `TRACE` or `OPTIONS` is decremented (RFC 9110 §7.6.2); at 0 the
//! request is not forwarded ([`ForwardError::MaxForwardsZero`]: the caller answers it).
//!
//! Other fields are end-to-end and pass unchanged, including `Proxy-Authorization` (a route
//! at the edge can remove it) and, without `x_forwarded`/`forwarded`, a client's
//! `X-Forwarded-*`/`Forwarded`.
//!
//! The caller guarantees what the server side checked (`http::head`): framing unambiguous,
//! one Host, field lines without CR, LF or NUL. This module checks again the bytes it copies
//! that would break the head's own framing if they were wrong (a CR or LF in a value would
//! inject a field, a space in the target a second request-target), and refuses such a request
//! with [`ForwardError::Malformed`] before writing anything: the check is one more pass over
//! the bytes the copy reads. Values are otherwise copied byte-exact, obs-text included.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use thiserror::Error;

use super::response::{ClientHeadRules, ViaName};
use super::{BufferFull, HeadBuf};
use crate::http::syntax::{list, trim_ows};

/// How the gateway sends the request body upstream. The gateway re-frames: a chunked client
/// body can go on chunked, a body of known length goes with `Content-Length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (the client sent none, or `Content-Length: 0`).
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`: the gateway writes the chunks.
    Chunked,
}

/// The client's request as the server side accepted it, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientRequest<'a> {
    /// A token (RFC 9110 §9.1).
    pub method: &'a [u8],
    /// Origin-form (`/path?query`) or asterisk-form (`*`). An absolute-form target is turned
    /// by the caller into its path and query, its authority into `host` (RFC 9112 §3.2.2).
    pub target: &'a [u8],
    /// The client's `HTTP/1.x`: 0 or 1.
    pub version_minor: u8,
    /// The target URI's authority: the client's `Host` value (OWS trimmed), or the authority
    /// of an absolute-form target. `None` for an HTTP/1.0 request without `Host`.
    pub host: Option<&'a [u8]>,
    /// The client's field lines in order, as (name, value) without OWS around the value.
    pub headers: &'a [(&'a [u8], &'a [u8])],
    /// How the gateway sends the body upstream.
    pub body: BodyFraming,
}

/// What the gateway knows about the client's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConn {
    /// The client's address as the gateway's socket saw it.
    pub peer: SocketAddr,
    /// Whether the client connection is TLS (`https`) or not (`http`).
    pub tls: bool,
}

/// A route's forwarding rules as configured: built once, validated by [`ForwardRules::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardConfig {
    /// The pseudonym this gateway appends to `Via` (a token, RFC 9110 §7.6.3). `Via` is always
    /// sent: a gateway MUST send it in each inbound request (§7.6.3), so there is no "off".
    pub via: String,
    /// `X-Forwarded-For` (the client's list with the peer's address appended),
    /// `X-Forwarded-Proto` and `X-Forwarded-Host` (replacing the client's).
    pub x_forwarded: bool,
    /// `Forwarded` (RFC 7239): the client's elements with `for=...;proto=...;host=...`
    /// appended. The `for` node carries the client's port, so it is always quoted:
    /// `for="192.0.2.7:4711"`, `for="[2001:db8::1]:4711"` (§6); `host` is the client's, quoted
    /// when it is not a token (`host="example.com:8443"`), left out when the client sent none.
    pub forwarded: bool,
    /// A path prefix removed from the target: `/api` turns `/api/x` into `/x` and `/api` or
    /// `/api?q` into `/` or `/?q`, and leaves `/apix` alone. Starts with `/`, does not end with
    /// one, visible ASCII without `?` or `#`; matched byte for byte (case-sensitive, no
    /// percent-decoding or dot-segment removal: that is the route match's concern).
    pub strip_prefix: Option<String>,
    /// Fields written with these values, replacing any the client sent of the same names.
    pub set_headers: Vec<(String, String)>,
    /// Fields of these names the client sent are not forwarded.
    pub remove_headers: Vec<String>,
    /// Fields written on the final responses the route's clients get, with these values,
    /// replacing any the upstream sent of the same names.
    pub response_set_headers: Vec<(String, String)>,
    /// Fields of these names the upstream sent are not passed to the client.
    pub response_remove_headers: Vec<String>,
    /// The `Host` sent upstream (`uri-host[:port]`); `None`: the client's, unchanged.
    pub upstream_host: Option<String>,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            via: "xgate".into(),
            x_forwarded: true,
            forwarded: false,
            strip_prefix: None,
            set_headers: Vec::new(),
            remove_headers: Vec::new(),
            response_set_headers: Vec::new(),
            response_remove_headers: Vec::new(),
            upstream_host: None,
        }
    }
}

/// A [`ForwardConfig`] the gateway refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ForwardConfigError {
    #[error("via: {0:?} is not a token (RFC 9110 §7.6.3 pseudonym)")]
    BadVia(String),
    #[error(
        "strip_prefix: {0:?} must start with '/', not end with '/', and be visible ASCII without '?' or '#'"
    )]
    BadStripPrefix(String),
    #[error("upstream_host: {0:?} is not uri-host[:port]")]
    BadUpstreamHost(String),
    #[error("{key}: header name {name:?} is not an HTTP token")]
    BadHeaderName { key: &'static str, name: String },
    #[error(
        "{key}: header {name:?} has a value with control characters or surrounding whitespace"
    )]
    BadHeaderValue { key: &'static str, name: String },
    #[error("{key}: header {name:?} cannot be configured: {why}")]
    ReservedHeader {
        key: &'static str,
        name: String,
        why: &'static str,
    },
    #[error("{key}: header {name:?} is named more than once in the set and remove rules")]
    DuplicateHeader { key: &'static str, name: String },
}

/// Why a request's upstream head was not written. The buffer's contents are then unspecified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ForwardError {
    /// The head does not fit in the buffer given.
    #[error("the upstream request head does not fit in the buffer")]
    HeadTooLarge,
    /// The client sent no `Host` (HTTP/1.0) and the route sets no `upstream_host`: an HTTP/1.1
    /// request MUST carry one (RFC 9112 §3.2).
    #[error("no Host to send upstream: the client sent none and the route sets no upstream_host")]
    MissingHost,
    /// A `TRACE` or `OPTIONS` with `Max-Forwards: 0`: the gateway is its final recipient and
    /// answers it itself (RFC 9110 §7.6.2).
    #[error("Max-Forwards is 0: the gateway is the final recipient of this TRACE or OPTIONS")]
    MaxForwardsZero,
    /// A part of the request has bytes the server side refuses (see the module's doc).
    #[error("the request's {0} has bytes the server side refuses")]
    Malformed(RequestPart),
}

impl From<BufferFull> for ForwardError {
    fn from(_: BufferFull) -> Self {
        ForwardError::HeadTooLarge
    }
}

/// The part of a [`ClientRequest`] a [`ForwardError::Malformed`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestPart {
    /// Not a token.
    Method,
    /// Not origin-form or `*`, or bytes outside visible ASCII.
    Target,
    /// Bytes outside `uri-host[:port]` (RFC 3986 §3.2.2).
    Host,
    /// The field line at this index: a name that is not a token, or CR, LF or NUL in a value.
    Field(usize),
}

impl fmt::Display for RequestPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestPart::Method => f.write_str("method"),
            RequestPart::Target => f.write_str("request-target"),
            RequestPart::Host => f.write_str("host"),
            RequestPart::Field(i) => write!(f, "field line {i}"),
        }
    }
}

/// The field names the gateway acts on. [`known`] tells them apart by length first, so a
/// field it does not act on costs one or two comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    /// `Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Upgrade`,
    /// `Transfer-Encoding`: never forwarded (RFC 9110 §7.6.1, RFC 9112 §7).
    HopByHop,
    Host,
    ContentLength,
    Expect,
    MaxForwards,
    Via,
    /// Only reserved in response rules; a request's `Date` is the client's.
    Date,
    XForwardedFor,
    /// `X-Forwarded-Proto`, `X-Forwarded-Host`.
    XForwardedSingle,
    Forwarded,
    Other,
}

fn known(name: &[u8]) -> Known {
    let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
    match name.len() {
        2 if is(b"te") => Known::HopByHop,
        3 if is(b"via") => Known::Via,
        4 if is(b"host") => Known::Host,
        4 if is(b"date") => Known::Date,
        6 if is(b"expect") => Known::Expect,
        7 if is(b"trailer") || is(b"upgrade") => Known::HopByHop,
        9 if is(b"forwarded") => Known::Forwarded,
        10 if is(b"connection") || is(b"keep-alive") => Known::HopByHop,
        12 if is(b"max-forwards") => Known::MaxForwards,
        14 if is(b"content-length") => Known::ContentLength,
        15 if is(b"x-forwarded-for") => Known::XForwardedFor,
        16 if is(b"proxy-connection") => Known::HopByHop,
        16 if is(b"x-forwarded-host") => Known::XForwardedSingle,
        17 if is(b"transfer-encoding") => Known::HopByHop,
        17 if is(b"x-forwarded-proto") => Known::XForwardedSingle,
        _ => Known::Other,
    }
}

/// Connection options gathered per request, past which the `Connection` lines are read
/// again for each field (a client sending more gains nothing but its own work).
const CONNECTION_OPTIONS_CAP: usize = 16;

/// The options of a request's `Connection` lines (RFC 9110 §7.6.1), gathered in one pass.
struct ConnectionOptions<'a> {
    options: [&'a [u8]; CONNECTION_OPTIONS_CAP],
    len: usize,
    /// More than `CONNECTION_OPTIONS_CAP`: `options` is not all of them.
    overflow: bool,
}

impl<'a> ConnectionOptions<'a> {
    fn gather(headers: &[(&'a [u8], &'a [u8])]) -> Self {
        let mut gathered = ConnectionOptions {
            options: [&[]; CONNECTION_OPTIONS_CAP],
            len: 0,
            overflow: false,
        };
        for &(name, value) in headers {
            if !name.eq_ignore_ascii_case(b"connection") {
                continue;
            }
            for option in list(value) {
                match gathered.options.get_mut(gathered.len) {
                    Some(slot) => {
                        *slot = option;
                        gathered.len += 1;
                    }
                    None => gathered.overflow = true,
                }
            }
        }
        gathered
    }

    /// Whether an option names the field `name`.
    fn name(&self, name: &[u8], headers: &[(&[u8], &[u8])]) -> bool {
        if self.overflow {
            return named_by_connection(headers, name);
        }
        self.options[..self.len]
            .iter()
            .any(|option| option.eq_ignore_ascii_case(name))
    }
}

/// A route's validated [`ForwardConfig`], with its fixed lines serialised once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardRules {
    /// `" " pseudonym "\r\n"`, after `Via: [list, ]1.x`.
    via_tail: Box<[u8]>,
    x_forwarded: bool,
    forwarded: bool,
    strip_prefix: Option<Box<[u8]>>,
    /// `set_headers` and `remove_headers`.
    request: HeaderRules,
    /// `response_set_headers` and `response_remove_headers`.
    response: HeaderRules,
    upstream_host: Option<Box<[u8]>>,
}

/// What becomes of one client field line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    Copy,
    Drop,
    /// Joined into the one line of this name the gateway writes.
    Combine(Combined),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Combined {
    Via,
    XForwardedFor,
    Forwarded,
}

impl Combined {
    fn name(self) -> &'static [u8] {
        match self {
            Combined::Via => b"via",
            Combined::XForwardedFor => b"x-forwarded-for",
            Combined::Forwarded => b"forwarded",
        }
    }
}

impl ForwardRules {
    /// Validates `config`: every name a token, every value a field-value without controls or
    /// surrounding whitespace, no name twice, and none of the fields the gateway writes itself
    /// (`Host`, framing, hop-by-hop, `Via`, and the `X-Forwarded-*`/`Forwarded` it is
    /// configured to write; removing the client's `X-Forwarded-For` or `Forwarded` is allowed,
    /// see the module's doc).
    pub fn new(config: &ForwardConfig) -> Result<ForwardRules, ForwardConfigError> {
        if !is_token(config.via.as_bytes()) {
            return Err(ForwardConfigError::BadVia(config.via.clone()));
        }
        let strip_prefix = match &config.strip_prefix {
            None => None,
            Some(prefix) => {
                let p = prefix.as_bytes();
                let ok = p.len() >= 2
                    && p[0] == b'/'
                    && p[p.len() - 1] != b'/'
                    && p.iter()
                        .all(|&b| b.is_ascii_graphic() && b != b'?' && b != b'#');
                if !ok {
                    return Err(ForwardConfigError::BadStripPrefix(prefix.clone()));
                }
                Some(p.into())
            }
        };
        let upstream_host = match &config.upstream_host {
            None => None,
            Some(host) => {
                if host.is_empty() || !host.bytes().all(is_host_byte) {
                    return Err(ForwardConfigError::BadUpstreamHost(host.clone()));
                }
                Some(host.as_bytes().into())
            }
        };
        let request = header_rules(
            ("set_headers", &config.set_headers),
            ("remove_headers", &config.remove_headers),
            |key, name| request_reservation(config, key, name),
        )?;
        let response = header_rules(
            ("response_set_headers", &config.response_set_headers),
            ("response_remove_headers", &config.response_remove_headers),
            |_, name| response_reservation(name),
        )?;
        let mut via_tail = Vec::with_capacity(config.via.len() + 3);
        via_tail.push(b' ');
        via_tail.extend_from_slice(config.via.as_bytes());
        via_tail.extend_from_slice(b"\r\n");
        Ok(ForwardRules {
            via_tail: via_tail.into(),
            x_forwarded: config.x_forwarded,
            forwarded: config.forwarded,
            strip_prefix,
            request,
            response,
            upstream_host,
        })
    }

    /// This gateway's pseudonym in `Via` (a token, checked by [`ForwardRules::new`]), for the
    /// responses of the route as well as its requests.
    pub fn via(&self) -> ViaName<'_> {
        let name = &self.via_tail[1..self.via_tail.len() - 2];
        ViaName::new(name).expect("checked as a token by ForwardRules::new")
    }

    /// What the route changes in the response heads its clients get: `Via`, and the fields
    /// of `response_set_headers` and `response_remove_headers`.
    pub fn client_head_rules(&self) -> ClientHeadRules<'_> {
        ClientHeadRules::with_fields(self.via(), &self.response.lines, &self.response.names)
    }

    /// Writes the upstream request head for `req` at the start of `out` and returns its length.
    /// `upstream_keep_alive: false` adds `Connection: close` (the upstream connection is not
    /// to be reused). Nothing is allocated. On an error the contents of `out` are unspecified;
    /// every error but [`ForwardError::HeadTooLarge`] is found before any byte is written, so
    /// it does not depend on the buffer's size.
    pub fn write_head(
        &self,
        req: &ClientRequest<'_>,
        client: ClientConn,
        upstream_keep_alive: bool,
        out: &mut [u8],
    ) -> Result<usize, ForwardError> {
        let connection = survey(req)?;
        // RFC 9110 §7.6.2: only these methods count hops; others may carry the field unread.
        let counts_hops = req.method == b"TRACE" || req.method == b"OPTIONS";
        if counts_hops && max_forwards(req.headers).any(|n| n == 0) {
            return Err(ForwardError::MaxForwardsZero);
        }
        let host = match (&self.upstream_host, req.host) {
            (Some(host), _) => &host[..],
            (None, Some(host)) => host,
            (None, None) => return Err(ForwardError::MissingHost),
        };
        let mut w = HeadBuf::new(out);
        let http10 = req.version_minor == 0;

        w.put(req.method)?;
        w.put(b" ")?;
        match self
            .strip_prefix
            .as_deref()
            .and_then(|p| strip(p, req.target))
        {
            Some(rest) if rest.first() == Some(&b'/') => w.put(rest)?,
            Some(rest) => {
                w.put(b"/")?;
                w.put(rest)?;
            }
            None => w.put(req.target)?,
        }
        w.put(b" HTTP/1.1\r\nHost: ")?;
        w.put(host)?;
        w.put(b"\r\n")?;

        let mut client_sent_length = false;
        for &(name, value) in req.headers {
            let class = known(name);
            client_sent_length |= class == Known::ContentLength;
            if self.disposition(name, class, &connection, req.headers, http10) != Disposition::Copy
            {
                continue;
            }
            w.put(name)?;
            w.put(b": ")?;
            let hops = if counts_hops && class == Known::MaxForwards {
                decimal(value)
            } else {
                None
            };
            match hops {
                // Decremented by this hop (§7.6.2; 0 was refused above). An invalid value is
                // not a count: it goes as sent.
                Some(n) => w.put_decimal(n.saturating_sub(1))?,
                None => w.put(value)?,
            }
            w.put(b"\r\n")?;
        }

        match req.body {
            BodyFraming::None if client_sent_length => w.put(b"Content-Length: 0\r\n")?,
            BodyFraming::None => {}
            BodyFraming::Length(n) => {
                w.put(b"Content-Length: ")?;
                w.put_decimal(n)?;
                w.put(b"\r\n")?;
            }
            BodyFraming::Chunked => w.put(b"Transfer-Encoding: chunked\r\n")?,
        }
        if !upstream_keep_alive {
            w.put(b"Connection: close\r\n")?;
        }

        // RFC 9110 §7.6.3: the protocol received from the client, name omitted for HTTP.
        w.put(b"Via: ")?;
        self.put_client_list(&mut w, req, &connection, Combined::Via)?;
        w.put(b"1.")?;
        w.put_decimal(u64::from(req.version_minor))?;
        w.put(&self.via_tail)?;

        let proto: &[u8] = if client.tls { b"https" } else { b"http" };
        let client_host = req.host.filter(|h| !h.is_empty());
        let peer_ip = canonical_ip(client.peer.ip());
        if self.x_forwarded {
            w.put(b"X-Forwarded-For: ")?;
            self.put_client_list(&mut w, req, &connection, Combined::XForwardedFor)?;
            w.put_ip(peer_ip)?;
            w.put(b"\r\nX-Forwarded-Proto: ")?;
            w.put(proto)?;
            w.put(b"\r\n")?;
            if let Some(h) = client_host {
                w.put(b"X-Forwarded-Host: ")?;
                w.put(h)?;
                w.put(b"\r\n")?;
            }
        }
        if self.forwarded {
            // RFC 7239 §6: a node with a port, or an IPv6 literal, is not a token: quoted.
            w.put(b"Forwarded: ")?;
            self.put_client_list(&mut w, req, &connection, Combined::Forwarded)?;
            w.put(b"for=\"")?;
            if peer_ip.is_ipv6() {
                w.put(b"[")?;
                w.put_ip(peer_ip)?;
                w.put(b"]")?;
            } else {
                w.put_ip(peer_ip)?;
            }
            w.put(b":")?;
            w.put_decimal(u64::from(client.peer.port()))?;
            w.put(b"\";proto=")?;
            w.put(proto)?;
            if let Some(h) = client_host {
                w.put(b";host=")?;
                w.put_token_or_quoted(h)?;
            }
            w.put(b"\r\n")?;
        }

        w.put(&self.request.lines)?;
        w.put(b"\r\n")?;
        Ok(w.len())
    }

    /// What becomes of the client's field `name` (the module's doc lists the rules).
    fn disposition(
        &self,
        name: &[u8],
        class: Known,
        connection: &ConnectionOptions<'_>,
        headers: &[(&[u8], &[u8])],
        http10: bool,
    ) -> Disposition {
        match class {
            Known::HopByHop | Known::Host | Known::ContentLength => return Disposition::Drop,
            Known::Expect if http10 => return Disposition::Drop,
            _ => {}
        }
        if connection.name(name, headers)
            || self
                .request
                .names
                .iter()
                .any(|r| name.eq_ignore_ascii_case(r))
        {
            return Disposition::Drop;
        }
        match class {
            Known::Via => Disposition::Combine(Combined::Via),
            Known::XForwardedFor if self.x_forwarded => {
                Disposition::Combine(Combined::XForwardedFor)
            }
            Known::XForwardedSingle if self.x_forwarded => Disposition::Drop,
            Known::Forwarded if self.forwarded => Disposition::Combine(Combined::Forwarded),
            _ => Disposition::Copy,
        }
    }

    /// The client's non-empty values of the fields combined into `kind`, each followed by
    /// `", "`, so that this hop's element comes next.
    fn put_client_list(
        &self,
        w: &mut HeadBuf<'_>,
        req: &ClientRequest<'_>,
        connection: &ConnectionOptions<'_>,
        kind: Combined,
    ) -> Result<(), ForwardError> {
        let http10 = req.version_minor == 0;
        for &(name, value) in req.headers {
            // The name first: the rest only for the few lines that can match.
            if !name.eq_ignore_ascii_case(kind.name()) {
                continue;
            }
            let value = trim_ows(value);
            if !value.is_empty()
                && self.disposition(name, known(name), connection, req.headers, http10)
                    == Disposition::Combine(kind)
            {
                w.put(value)?;
                w.put(b", ")?;
            }
        }
        Ok(())
    }
}

/// A set rule and a remove rule of one direction, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HeaderRules {
    /// `Name: value\r\n` for each field set, in order.
    lines: Box<[u8]>,
    /// The names of the fields set and removed: fields of these names are not copied.
    names: Box<[Box<[u8]>]>,
}

/// Validates a set rule and a remove rule. Every name is a token, named once
/// across both, and not one `reserved` refuses (its reason); every value a field-value
/// without controls or surrounding whitespace.
fn header_rules(
    (set_key, set): (&'static str, &[(String, String)]),
    (remove_key, remove): (&'static str, &[String]),
    reserved: impl Fn(&'static str, Known) -> Option<&'static str>,
) -> Result<HeaderRules, ForwardConfigError> {
    let mut ruled_names: Vec<Box<[u8]>> = Vec::new();
    let mut lines = Vec::new();
    for (name, value) in set {
        check_ruled_name(set_key, name, &ruled_names, &reserved)?;
        let v = value.as_bytes();
        let bad_char = v.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f);
        let padded = v.first().is_some_and(|&b| b == b' ' || b == b'\t')
            || v.last().is_some_and(|&b| b == b' ' || b == b'\t');
        if bad_char || padded {
            return Err(ForwardConfigError::BadHeaderValue {
                key: set_key,
                name: name.clone(),
            });
        }
        ruled_names.push(name.as_bytes().into());
        lines.extend_from_slice(name.as_bytes());
        lines.extend_from_slice(b": ");
        lines.extend_from_slice(v);
        lines.extend_from_slice(b"\r\n");
    }
    for name in remove {
        check_ruled_name(remove_key, name, &ruled_names, &reserved)?;
        ruled_names.push(name.as_bytes().into());
    }
    Ok(HeaderRules {
        lines: lines.into(),
        names: ruled_names.into(),
    })
}

/// Why a request rule may not name a field, if it may not: the gateway writes it itself.
fn request_reservation(
    config: &ForwardConfig,
    key: &'static str,
    name: Known,
) -> Option<&'static str> {
    let set = key == "set_headers";
    match name {
        Known::HopByHop => Some("hop-by-hop, never forwarded (RFC 9110 §7.6.1)"),
        Known::ContentLength => Some("written from the body's framing"),
        Known::Host => Some("the Host sent upstream is upstream_host"),
        Known::Via => Some("written by the gateway (RFC 9110 §7.6.3)"),
        Known::XForwardedFor | Known::XForwardedSingle if set && config.x_forwarded => {
            Some("written by the gateway with x_forwarded")
        }
        Known::Forwarded if set && config.forwarded => {
            Some("written by the gateway with forwarded")
        }
        _ => None,
    }
}

/// Why a response rule may not name a field, if it may not: the gateway writes it itself.
fn response_reservation(name: Known) -> Option<&'static str> {
    match name {
        Known::HopByHop => Some("hop-by-hop, never forwarded (RFC 9110 §7.6.1)"),
        Known::ContentLength => Some("written from the body's framing"),
        Known::Via => Some("written by the gateway (RFC 9110 §7.6.3)"),
        Known::Date => Some("the upstream's, or the gateway's clock (RFC 9110 §6.6.1)"),
        _ => None,
    }
}

/// Refuses, for one key of the config, a name that is not a token, one `reserved` refuses, or
/// one already ruled on.
fn check_ruled_name(
    key: &'static str,
    name: &str,
    ruled: &[Box<[u8]>],
    reserved: impl Fn(&'static str, Known) -> Option<&'static str>,
) -> Result<(), ForwardConfigError> {
    let n = name.as_bytes();
    if !is_token(n) {
        return Err(ForwardConfigError::BadHeaderName {
            key,
            name: name.into(),
        });
    }
    if let Some(why) = reserved(key, known(n)) {
        return Err(ForwardConfigError::ReservedHeader {
            key,
            name: name.into(),
            why,
        });
    }
    if ruled.iter().any(|r| n.eq_ignore_ascii_case(r)) {
        return Err(ForwardConfigError::DuplicateHeader {
            key,
            name: name.into(),
        });
    }
    Ok(())
}

/// Checks the bytes the head's own syntax relies on, before anything is written, and gathers
/// the `Connection` options.
fn survey<'a>(req: &ClientRequest<'a>) -> Result<ConnectionOptions<'a>, ForwardError> {
    if !is_token(req.method) {
        return Err(ForwardError::Malformed(RequestPart::Method));
    }
    let target_ok = (req.target.first() == Some(&b'/') || req.target == b"*")
        && req.target.iter().all(u8::is_ascii_graphic);
    if !target_ok {
        return Err(ForwardError::Malformed(RequestPart::Target));
    }
    if req
        .host
        .is_some_and(|h| !h.iter().all(|&b| is_host_byte(b)))
    {
        return Err(ForwardError::Malformed(RequestPart::Host));
    }
    for (i, (name, value)) in req.headers.iter().enumerate() {
        // Without a branch per byte, so that it vectorises.
        let breaks_line = value.iter().fold(false, |bad, &b| {
            bad | (b == b'\r') | (b == b'\n') | (b == 0)
        });
        if !is_token(name) || breaks_line {
            return Err(ForwardError::Malformed(RequestPart::Field(i)));
        }
    }
    Ok(ConnectionOptions::gather(req.headers))
}

/// The valid values of the `Max-Forwards` fields among `headers`.
fn max_forwards<'h>(headers: &'h [(&[u8], &[u8])]) -> impl Iterator<Item = u64> + 'h {
    headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"max-forwards"))
        .filter_map(|(_, value)| decimal(value))
}

/// `1*DIGIT`; a number past `u64::MAX` is `u64::MAX` (a hop count no chain reaches).
fn decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// Whether a `Connection` option among `headers` names `name` (RFC 9110 §7.6.1).
fn named_by_connection(headers: &[(&[u8], &[u8])], name: &[u8]) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
        .any(|(_, value)| list(value).any(|option| option.eq_ignore_ascii_case(name)))
}

/// The rest of `target` after `prefix` when the prefix ends at a path segment boundary (`/`,
/// `?` or the end): `/api` matches `/api`, `/api/x` and `/api?q`, not `/apix`.
fn strip<'t>(prefix: &[u8], target: &'t [u8]) -> Option<&'t [u8]> {
    let rest = target.strip_prefix(prefix)?;
    match rest.first() {
        None | Some(b'/' | b'?') => Some(rest),
        Some(_) => None,
    }
}

/// An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 client) as IPv4.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// `tchar` (RFC 9110 §5.6.2), as `app::is_tchar`, in a table: every byte of every field
/// name goes through it.
const TCHAR: [bool; 256] = byte_table(b"!#$%&'*+-.^_`|~");
/// `uri-host [ ":" port ]` bytes (RFC 3986 §3.2.2: unreserved, pct-encoded, sub-delims, IP
/// literals in brackets), as the server side checks `Host`.
const HOST_BYTE: [bool; 256] = byte_table(b"-._~!$&'()*+,;=%:[]");

/// ASCII letters and digits, and `others`.
const fn byte_table(others: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < others.len() {
        table[others[i] as usize] = true;
        i += 1;
    }
    table
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| TCHAR[usize::from(b)])
}

fn is_host_byte(b: u8) -> bool {
    HOST_BYTE[usize::from(b)]
}

/// What only the request head needs written: addresses and RFC 7239 values.
impl HeadBuf<'_> {
    /// An IPv4 address in dotted decimal, an IPv6 one as RFC 5952 §4 has it (lower-case hex
    /// without leading zeros, the first longest run of two or more zero groups as `::`, an
    /// IPv4-mapped one in mixed notation), as
    /// `Display` writes them but without its formatting machinery: a fifth of the head's cost
    /// for an IPv6 client.
    fn put_ip(&mut self, ip: IpAddr) -> Result<(), BufferFull> {
        match ip {
            IpAddr::V4(v4) => {
                // Composed in place and put once: every forwarded head has the client's.
                let mut text = [0u8; 15];
                let mut n = 0;
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        text[n] = b'.';
                        n += 1;
                    }
                    if octet >= 100 {
                        text[n] = b'0' + octet / 100;
                        n += 1;
                    }
                    if octet >= 10 {
                        text[n] = b'0' + octet / 10 % 10;
                        n += 1;
                    }
                    text[n] = b'0' + octet % 10;
                    n += 1;
                }
                self.put(&text[..n])?;
            }
            IpAddr::V6(v6) => {
                if let Some(v4) = v6.to_ipv4_mapped() {
                    // §5: the mixed notation for an IPv4-mapped address.
                    self.put(b"::ffff:")?;
                    return self.put_ip(IpAddr::V4(v4));
                }
                let groups = v6.segments();
                // The first longest run of zero groups: (start, length).
                let (mut best, mut run) = ((0, 0), (0, 0));
                for (i, &g) in groups.iter().enumerate() {
                    if g == 0 {
                        run = if run.1 == 0 {
                            (i, 1)
                        } else {
                            (run.0, run.1 + 1)
                        };
                        if run.1 > best.1 {
                            best = run;
                        }
                    } else {
                        run = (0, 0);
                    }
                }
                let mut i = 0;
                while i < groups.len() {
                    if best.1 >= 2 && i == best.0 {
                        self.put(b"::")?;
                        i += best.1;
                        continue;
                    }
                    if i > 0 && !(best.1 >= 2 && i == best.0 + best.1) {
                        self.put(b":")?;
                    }
                    self.put_hex(groups[i])?;
                    i += 1;
                }
            }
        }
        Ok(())
    }

    /// Lower-case hex without leading zeros.
    fn put_hex(&mut self, n: u16) -> Result<(), BufferFull> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let digits = [
            DIGITS[usize::from(n >> 12)],
            DIGITS[usize::from(n >> 8 & 0xf)],
            DIGITS[usize::from(n >> 4 & 0xf)],
            DIGITS[usize::from(n & 0xf)],
        ];
        let skip = (n.leading_zeros() / 4).min(3) as usize;
        self.put(&digits[skip..])
    }

    /// RFC 7239 §4: `value = token / quoted-string`.
    fn put_token_or_quoted(&mut self, value: &[u8]) -> Result<(), BufferFull> {
        if is_token(value) {
            return self.put(value);
        }
        self.put(b"\"")?;
        for part in value.split_inclusive(|&b| b == b'"' || b == b'\\') {
            match part.split_last() {
                Some((&last, head)) if last == b'"' || last == b'\\' => {
                    self.put(head)?;
                    self.put(&[b'\\', last])?;
                }
                _ => self.put(part)?,
            }
        }
        self.put(b"\"")
    }
}

#[cfg(test)]
#[path = "forward_tests.rs"]
mod tests;
