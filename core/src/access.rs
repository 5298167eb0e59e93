//! The access log's records (issue 13): one per request, built by the HTTP connection as the
//! request is read and answered, completed by the path that owns the connection (client
//! address, port, path), and formatted as a text or a JSON line by whoever writes the log.
//!
//! Nothing here allocates per request: a record is a fixed-size value (the target is cut at
//! [`TARGET_MAX`] bytes, and says so), and the [`AccessSink`] a thread collects them in has a
//! fixed capacity, counting what did not fit instead of growing or blocking: the log must
//! never slow a poller, and a stalled disk must cost a bounded amount of memory.
//!
//! Times are the core's monotonic [`Instant`]s; the writer turns them into wall-clock time with
//! one anchor (an instant and the Unix time at that instant), so the hot path reads no clock.

use std::net::SocketAddr;

use crate::time::{Duration, Instant};

/// Longest target kept in a record; a longer one is cut and marked.
pub const TARGET_MAX: usize = 256;
/// Longest method kept in a record (every registered method is shorter).
pub const METHOD_MAX: usize = 16;

/// Which path answered the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathKind {
    #[default]
    Bypass,
    Kernel,
}

impl PathKind {
    pub fn name(self) -> &'static str {
        match self {
            PathKind::Bypass => "bypass",
            PathKind::Kernel => "kernel",
        }
    }
}

/// The upstream server a proxied request went to, and how long it took from the request's
/// end to the response head received (`None`: no head came, as for a 502 or 504).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamInfo {
    pub server: SocketAddr,
    pub time: Option<Duration>,
}

/// Bytes of a TLS server name kept for the log (a longer one is cut and marked).
pub const SERVER_NAME_MAX: usize = 128;

/// A TLS connection as the access log shows it: the protocol version and the server name the
/// client asked for (SNI).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TlsLogInfo {
    /// 2 for TLS 1.2, 3 for TLS 1.3.
    pub version_minor: u8,
    name: [u8; SERVER_NAME_MAX],
    name_len: u8,
    /// The name was longer than [`SERVER_NAME_MAX`].
    pub name_cut: bool,
}

impl TlsLogInfo {
    pub fn new(version_minor: u8, server_name: Option<&[u8]>) -> Self {
        let name = server_name.unwrap_or_default();
        let kept = name.len().min(SERVER_NAME_MAX);
        let mut info = TlsLogInfo {
            version_minor,
            name: [0; SERVER_NAME_MAX],
            name_len: kept as u8,
            name_cut: name.len() > SERVER_NAME_MAX,
        };
        info.name[..kept].copy_from_slice(&name[..kept]);
        info
    }

    /// The server name (empty: the client sent none).
    pub fn server_name(&self) -> &[u8] {
        &self.name[..usize::from(self.name_len)]
    }
}

impl std::fmt::Debug for TlsLogInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsLogInfo")
            .field("version_minor", &self.version_minor)
            .field("server_name", &String::from_utf8_lossy(self.server_name()))
            .finish()
    }
}

/// One request as the access log shows it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AccessRecord {
    method: [u8; METHOD_MAX],
    method_len: u8,
    target: [u8; TARGET_MAX],
    target_len: u16,
    /// The target was longer than [`TARGET_MAX`].
    pub target_cut: bool,
    /// `HTTP/1.x`; `None` when the request line could not be read (a refused head).
    pub version_minor: Option<u8>,
    pub status: u16,
    /// Request bytes read for this request (head and body) and response bytes written.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// When the head was complete, and how long until the last byte of the answer was handed
    /// to the transport.
    pub received: Instant,
    pub duration: Duration,
    /// False when the answer was cut (the peer went away, a body went bad half way).
    pub completed: bool,
    pub client: Option<SocketAddr>,
    pub port: u16,
    pub path: PathKind,
    pub upstream: Option<UpstreamInfo>,
    /// The connection's TLS, on a TLS port.
    pub tls: Option<TlsLogInfo>,
}

impl std::fmt::Debug for AccessRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessRecord")
            .field("method", &String::from_utf8_lossy(self.method()))
            .field("target", &String::from_utf8_lossy(self.target()))
            .field("status", &self.status)
            .field("bytes_in", &self.bytes_in)
            .field("bytes_out", &self.bytes_out)
            .field("completed", &self.completed)
            .finish_non_exhaustive()
    }
}

impl Default for AccessRecord {
    fn default() -> Self {
        AccessRecord {
            method: [0; METHOD_MAX],
            method_len: 0,
            target: [0; TARGET_MAX],
            target_len: 0,
            target_cut: false,
            version_minor: None,
            status: 0,
            bytes_in: 0,
            bytes_out: 0,
            received: Instant::ZERO,
            duration: Duration::ZERO,
            completed: false,
            client: None,
            port: 0,
            path: PathKind::Bypass,
            upstream: None,
            tls: None,
        }
    }
}

impl AccessRecord {
    /// The method as received (empty when the request line could not be read).
    pub fn method(&self) -> &[u8] {
        &self.method[..usize::from(self.method_len)]
    }

    /// The target as received, cut at [`TARGET_MAX`] bytes (see `target_cut`).
    pub fn target(&self) -> &[u8] {
        &self.target[..usize::from(self.target_len)]
    }

    /// Takes method, target and version from the start of a request head, as far as they
    /// can be read: `METHOD SP target SP HTTP/1.x` after any empty lines (RFC 9112 §2.2). A
    /// head refused before its request line was whole leaves them empty.
    pub fn set_request_line(&mut self, head: &[u8]) {
        let start = head
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(head.len());
        let line = &head[start..];
        let line = &line[..line
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .unwrap_or(line.len())];
        let mut parts = line.splitn(3, |&b| b == b' ');
        let (method, target, version) = (parts.next(), parts.next(), parts.next());
        let (Some(method), Some(target)) = (method, target) else {
            return;
        };
        if method.is_empty() || method.len() > METHOD_MAX {
            return;
        }
        self.method[..method.len()].copy_from_slice(method);
        self.method_len = method.len() as u8;
        let kept = target.len().min(TARGET_MAX);
        self.target[..kept].copy_from_slice(&target[..kept]);
        self.target_len = kept as u16;
        self.target_cut = target.len() > TARGET_MAX;
        self.version_minor = match version {
            Some(b"HTTP/1.1") => Some(1),
            Some(b"HTTP/1.0") => Some(0),
            _ => None,
        };
    }
}

/// Who the records of one connection are about, set by the path that opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessContext {
    pub client: Option<SocketAddr>,
    /// The listening port the connection came to.
    pub port: u16,
    pub path: PathKind,
}

/// How an answer ended, as the HTTP connection saw it: everything of a record but the request
/// line and who the connection is, which [`ConnLog`] adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    pub status: u16,
    pub received: Instant,
    pub duration: Duration,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub completed: bool,
}

/// The request being answered, as an `HttpConn` keeps it: small and without heap memory, so
/// the connection's state stays inline (the request line is kept by the [`ConnLog`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct LogMarks {
    /// A request is being answered: when its head came, and the connection's bytes then.
    open: Option<(Instant, u64, u64)>,
    /// The status of the answer chosen last (a refusal may replace the first).
    pub(crate) status: u16,
    /// Its answer ended outside a call that could push it: pushed by the next one, or taken
    /// by the owner at close.
    done: Option<Finished>,
}

impl LogMarks {
    pub(crate) fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// A request (or a refusal) begins at `now`; `totals`: the connection's bytes so far.
    pub(crate) fn begin(&mut self, now: Instant, totals: (u64, u64)) {
        self.open = Some((now, totals.0, totals.1));
    }

    /// The answer ended at `now` (`completed`: its last byte was handed to the transport;
    /// else it was cut). Nothing when no request was open.
    pub(crate) fn finish(&mut self, now: Instant, completed: bool, totals: (u64, u64)) {
        if let Some((received, in_base, out_base)) = self.open.take() {
            self.done = Some(Finished {
                status: self.status,
                received,
                duration: now.saturating_duration_since(received),
                bytes_in: totals.0.saturating_sub(in_base),
                bytes_out: totals.1.saturating_sub(out_base),
                completed,
            });
        }
    }

    pub(crate) fn take(&mut self) -> Option<Finished> {
        self.done.take()
    }
}

/// The access log's state of one connection, kept by its owner beside the connection: who the
/// connection is, and the request line of the request being answered.
#[derive(Debug, Clone, Default)]
pub struct ConnLog {
    context: Option<AccessContext>,
    line: AccessRecord,
    /// The connection's TLS, once its handshake is done.
    tls: Option<TlsLogInfo>,
}

impl ConnLog {
    /// Who the connection's records are about (`None`: the connection is not logged).
    pub fn set_context(&mut self, context: Option<AccessContext>) {
        self.context = context;
        self.tls = None;
    }

    /// The connection's TLS, for its records from now on (kept from the first call).
    pub fn note_tls(&mut self, tls: Option<&TlsLogInfo>) {
        if self.tls.is_none() {
            self.tls = tls.copied();
        }
    }

    /// Keeps the request line at the start of `head` for the record of its answer.
    pub(crate) fn begin(&mut self, head: &[u8]) {
        self.line = AccessRecord::default();
        self.line.set_request_line(head);
    }

    /// The request being answered went to `server` (a retry names the last one).
    pub fn set_upstream_server(&mut self, server: SocketAddr) {
        self.line.upstream = Some(UpstreamInfo { server, time: None });
    }

    /// The upstream's response head came `time` after the request's end.
    pub fn set_upstream_time(&mut self, time: Option<Duration>) {
        if let Some(u) = &mut self.line.upstream {
            u.time = time;
        }
    }

    /// The record of an answer that ended as `finished`.
    pub fn complete(&self, finished: Finished) -> AccessRecord {
        let ctx = self.context.unwrap_or(AccessContext {
            client: None,
            port: 0,
            path: PathKind::Bypass,
        });
        AccessRecord {
            status: finished.status,
            bytes_in: finished.bytes_in,
            bytes_out: finished.bytes_out,
            received: finished.received,
            duration: finished.duration,
            completed: finished.completed,
            client: ctx.client,
            port: ctx.port,
            path: ctx.path,
            tls: self.tls,
            ..self.line
        }
    }
}

/// What a call into an HTTP connection needs to log the answers it ends: the connection's
/// [`ConnLog`] and the thread's [`AccessSink`].
#[derive(Debug)]
pub struct AccessLogIo<'a> {
    pub conn: &'a mut ConnLog,
    pub sink: &'a mut AccessSink,
}

impl AccessLogIo<'_> {
    /// The same connection's log and sink, lent again for one more call.
    pub fn reborrow(&mut self) -> AccessLogIo<'_> {
        AccessLogIo {
            conn: &mut *self.conn,
            sink: &mut *self.sink,
        }
    }

    /// Pushes the record of `finished`.
    pub fn push(&mut self, finished: Finished) {
        self.sink.push(self.conn.complete(finished));
    }
}

/// The records of one thread between two collections by the log writer: a fixed capacity,
/// and a count of the records that found it full.
#[derive(Debug)]
pub struct AccessSink {
    records: Vec<AccessRecord>,
    capacity: usize,
    dropped: u64,
}

impl AccessSink {
    /// A sink for `capacity` records, allocated here once.
    pub fn with_capacity(capacity: usize) -> Self {
        AccessSink {
            records: Vec::with_capacity(capacity),
            capacity,
            dropped: 0,
        }
    }

    /// Keeps `record`, or counts it as dropped when the sink is full.
    pub fn push(&mut self, record: AccessRecord) {
        if self.records.len() < self.capacity {
            self.records.push(record);
        } else {
            self.dropped += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The next record would be dropped.
    pub fn is_full(&self) -> bool {
        self.records.len() >= self.capacity
    }

    /// At least half full: time to hand the records over before the next publish point.
    pub fn is_half_full(&self) -> bool {
        self.records.len() * 2 >= self.capacity
    }

    pub fn records(&self) -> &[AccessRecord] {
        &self.records
    }

    /// Records that did not fit, since the sink was made.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Empties the sink after the writer took its records (the capacity stays).
    pub fn clear(&mut self) {
        self.records.clear();
    }
}

/// How a record becomes a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `TIME CLIENT "METHOD TARGET VERSION" STATUS BYTES_IN BYTES_OUT SECONDS PATH PORT
    /// UPSTREAM UPSTREAM_SECONDS [cut]`: fields separated by one space, `-` for an absent one.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The wall-clock time of the monotonic `anchor`: records are placed relative to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallAnchor {
    pub instant: Instant,
    pub unix_micros: u64,
}

impl WallAnchor {
    /// The Unix time (µs) of `t` on the anchor's clock.
    pub fn unix_micros_of(&self, t: Instant) -> u64 {
        if t >= self.instant {
            self.unix_micros
                .saturating_add((t - self.instant).as_micros() as u64)
        } else {
            self.unix_micros
                .saturating_sub((self.instant - t).as_micros() as u64)
        }
    }
}

/// Appends `record` as one line (with its `\n`) in `format` to `out`. Bytes of the target or
/// method that are not printable ASCII, and the quote and backslash, are escaped, so a line
/// is always one line and a client cannot forge another.
pub fn write_line(
    record: &AccessRecord,
    anchor: &WallAnchor,
    format: LogFormat,
    out: &mut Vec<u8>,
) {
    let time = anchor.unix_micros_of(record.received);
    match format {
        LogFormat::Text => write_text(record, time, out),
        LogFormat::Json => write_json(record, time, out),
    }
    out.push(b'\n');
}

fn write_text(r: &AccessRecord, unix_micros: u64, out: &mut Vec<u8>) {
    put_rfc3339(unix_micros, out);
    out.push(b' ');
    put_addr(r.client, out);
    out.extend_from_slice(b" \"");
    if r.method().is_empty() {
        out.push(b'-');
    } else {
        put_escaped(r.method(), Escape::Text, out);
        out.push(b' ');
        put_escaped(r.target(), Escape::Text, out);
        if r.target_cut {
            out.extend_from_slice(b"...");
        }
        match r.version_minor {
            Some(v) => {
                out.extend_from_slice(b" HTTP/1.");
                put_decimal(u64::from(v), out);
            }
            None => out.extend_from_slice(b" -"),
        }
    }
    out.extend_from_slice(b"\" ");
    put_decimal(u64::from(r.status), out);
    out.push(b' ');
    put_decimal(r.bytes_in, out);
    out.push(b' ');
    put_decimal(r.bytes_out, out);
    out.push(b' ');
    put_seconds(r.duration, out);
    out.push(b' ');
    out.extend_from_slice(r.path.name().as_bytes());
    out.push(b' ');
    put_decimal(u64::from(r.port), out);
    out.push(b' ');
    match r.upstream {
        Some(u) => {
            put_addr(Some(u.server), out);
            out.push(b' ');
            match u.time {
                Some(t) => put_seconds(t, out),
                None => out.push(b'-'),
            }
        }
        None => out.extend_from_slice(b"- -"),
    }
    out.push(b' ');
    match &r.tls {
        Some(t) => {
            out.extend_from_slice(b"TLSv1.");
            put_decimal(u64::from(t.version_minor), out);
            out.push(b' ');
            if t.server_name().is_empty() {
                out.push(b'-');
            } else {
                put_escaped(t.server_name(), Escape::Field, out);
                if t.name_cut {
                    out.extend_from_slice(b"...");
                }
            }
        }
        None => out.extend_from_slice(b"- -"),
    }
    if !r.completed {
        out.extend_from_slice(b" cut");
    }
}

fn write_json(r: &AccessRecord, unix_micros: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"time\":\"");
    put_rfc3339(unix_micros, out);
    out.extend_from_slice(b"\",\"client\":");
    match r.client {
        Some(_) => {
            out.push(b'"');
            put_addr(r.client, out);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"method\":");
    put_json_string_or_null(r.method(), out);
    out.extend_from_slice(b",\"target\":");
    put_json_string_or_null(r.target(), out);
    out.extend_from_slice(b",\"target_cut\":");
    out.extend_from_slice(if r.target_cut { b"true" } else { b"false" });
    out.extend_from_slice(b",\"version\":");
    match r.version_minor {
        Some(v) => {
            out.extend_from_slice(b"\"HTTP/1.");
            put_decimal(u64::from(v), out);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"status\":");
    put_decimal(u64::from(r.status), out);
    out.extend_from_slice(b",\"bytes_in\":");
    put_decimal(r.bytes_in, out);
    out.extend_from_slice(b",\"bytes_out\":");
    put_decimal(r.bytes_out, out);
    out.extend_from_slice(b",\"duration_us\":");
    put_decimal(r.duration.as_micros() as u64, out);
    out.extend_from_slice(b",\"path\":\"");
    out.extend_from_slice(r.path.name().as_bytes());
    out.extend_from_slice(b"\",\"port\":");
    put_decimal(u64::from(r.port), out);
    out.extend_from_slice(b",\"upstream\":");
    match r.upstream {
        Some(u) => {
            out.push(b'"');
            put_addr(Some(u.server), out);
            out.extend_from_slice(b"\",\"upstream_us\":");
            match u.time {
                Some(t) => put_decimal(t.as_micros() as u64, out),
                None => out.extend_from_slice(b"null"),
            }
        }
        None => out.extend_from_slice(b"null,\"upstream_us\":null"),
    }
    out.extend_from_slice(b",\"tls\":");
    match &r.tls {
        Some(t) => {
            out.extend_from_slice(b"\"TLSv1.");
            put_decimal(u64::from(t.version_minor), out);
            out.extend_from_slice(b"\",\"server_name\":");
            put_json_string_or_null(t.server_name(), out);
        }
        None => out.extend_from_slice(b"null,\"server_name\":null"),
    }
    out.extend_from_slice(b",\"completed\":");
    out.extend_from_slice(if r.completed { b"true" } else { b"false" });
    out.push(b'}');
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// `\xHH` for anything but printable ASCII, and for `"` and `\`.
    Text,
    /// `Text`, and the space too: an unquoted field stays one field.
    Field,
    /// JSON string escapes (RFC 8259 §7); bytes >= 0x80 as `\u00HH` (the log says which
    /// bytes came, it does not guess an encoding).
    Json,
}

fn put_escaped(bytes: &[u8], escape: Escape, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        match (b, escape) {
            (b'"' | b'\\', Escape::Json) => out.extend_from_slice(&[b'\\', b]),
            (b' ', Escape::Field) => out.extend_from_slice(b"\\x20"),
            (0x20..=0x7e, _) if b != b'"' && b != b'\\' => out.push(b),
            (_, Escape::Text | Escape::Field) => {
                out.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 15)],
                ]);
            }
            (_, Escape::Json) => {
                out.extend_from_slice(b"\\u00");
                out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
        }
    }
}

fn put_json_string_or_null(bytes: &[u8], out: &mut Vec<u8>) {
    if bytes.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        out.push(b'"');
        put_escaped(bytes, Escape::Json, out);
        out.push(b'"');
    }
}

fn put_decimal(n: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(crate::http::syntax::decimal(n, &mut [0u8; 20]));
}

fn put_padded(n: u64, width: usize, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let d = crate::http::syntax::decimal(n, &mut digits);
    for _ in d.len()..width {
        out.push(b'0');
    }
    out.extend_from_slice(d);
}

/// Seconds with microseconds: `0.000123`.
fn put_seconds(d: Duration, out: &mut Vec<u8>) {
    let us = d.as_micros() as u64;
    put_decimal(us / 1_000_000, out);
    out.push(b'.');
    put_padded(us % 1_000_000, 6, out);
}

fn put_addr(addr: Option<SocketAddr>, out: &mut Vec<u8>) {
    match addr {
        // Off the hot path (the log writer): `Display` is fine here.
        Some(a) => out.extend_from_slice(a.to_string().as_bytes()),
        None => out.push(b'-'),
    }
}

/// `2026-12-06T11:00:00.123456Z` (RFC 3339, UTC).
fn put_rfc3339(unix_micros: u64, out: &mut Vec<u8>) {
    let secs = unix_micros / 1_000_000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    put_padded(y as u64, 4, out);
    out.push(b'-');
    put_padded(u64::from(m), 2, out);
    out.push(b'-');
    put_padded(u64::from(d), 2, out);
    out.push(b'T');
    put_padded(s / 3600, 2, out);
    out.push(b':');
    put_padded(s / 60 % 60, 2, out);
    out.push(b':');
    put_padded(s % 60, 2, out);
    out.push(b'.');
    put_padded(unix_micros % 1_000_000, 6, out);
    out.push(b'Z');
}

/// Year, month, day of the `days`-th day after 1970-01-01 in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`, for days >= 0).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
