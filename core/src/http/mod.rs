//! Sans-IO HTTP/1.1 server connection (RFC 9110, RFC 9112) over a byte stream.
//!
//! [`HttpConn::process`] takes the bytes received so far that it has not consumed yet and a
//! buffer to write into, and says how much of each it used ([`Progress`]). It never buffers
//! input: a request head that is not complete consumes nothing, so the caller keeps the bytes
//! and calls again with more appended. Responses are written strictly in request order, and a
//! new request is read only once the previous response is fully written, so a slow reader
//! stops the connection's input (backpressure) instead of growing a queue. Large bodies
//! (`/bytes/{n}`, `/echo`) are streamed across calls.
//!
//! Anything ambiguous about where a request ends is refused with a 4xx/5xx and
//! `Connection: close`, and nothing is read after it; the checks are in `head.rs` (head) and
//! `chunked.rs` (chunked bodies).
//!
//! `input` must be contiguous and must start with the bytes not consumed by the previous call:
//! a transport whose receive buffer is a ring has to hand over a head that wraps as one slice
//! (body bytes can be given slice by slice, since they are consumed as they come).
//!
//! When the body of a request is not used by its answer (static routes), the body is read
//! and dropped *before* the answer starts, so a bad chunked body still gets a 400 (or 413). A
//! request refused with 4xx/5xx whose body has not been read is answered with
//! `Connection: close` and the body is never read. `/echo` streams: a Content-Length body is
//! copied through as it arrives; a chunked body is answered chunked, chunk for chunk, once
//! its first chunk-size line is known to be good; a bad chunk after that cuts the answer
//! and closes the connection.
//!
//! Call order for a connection: `process` whenever input arrives or output space frees up;
//! `poll_timeout`/`handle_timeout` for the header and idle timers (after `handle_timeout`,
//! call `process` to collect the 408 it may have queued); `peer_closed` after the last
//! `process` that saw the final input; close the transport once `wants_close()` and the bytes
//! already produced are sent. `reset()` makes the value ready for the next connection.

pub(crate) mod chunked;
mod head;
pub(crate) mod syntax;

use crate::access::{AccessLogIo, ConnLog, Finished, LogMarks, TlsLogInfo};
use crate::app::{App, Handler, ResponseId, IMF_FIXDATE_LEN};
use serde::{Deserialize, Serialize};

use crate::histogram::LatencyHistogram;
use crate::proxy::exchange::{is_idempotent, ClientAction, End, Exchange, ExchangeSpec, Timeouts};
use crate::proxy::forward::{BodyFraming, ClientConn, ClientRequest, ForwardError, ForwardRules};
use crate::proxy::response::{RequestKind, UpstreamLimits};
use crate::proxy::route::RouteId;
use crate::time::{Duration, Instant};
use chunked::{ChunkError, ChunkedDecoder, Event};
use head::{Framing, Outcome, ScanState};

/// Bounds on what a peer may send. `Default` is what a public-facing server would use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Request line + header fields + the empty line; more is 431 (or 414 while the request
    /// line is not complete).
    pub max_header_bytes: usize,
    /// Header fields per request (at most 128); more is 431.
    pub max_headers: usize,
    /// Request-target length; more is 414.
    pub max_uri_len: usize,
    /// Request body length (Content-Length, or the sum of chunk sizes); more is 413.
    pub max_body_len: u64,
    /// A chunk-size line including extensions.
    pub max_chunk_line_len: u32,
    /// The trailer section of a chunked body.
    pub max_trailer_bytes: u32,
    /// From the first byte of a request head to its end; then 408 and close.
    pub header_timeout: Duration,
    /// Waiting for the next request (or for more body bytes); then a quiet close.
    pub idle_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_uri_len: 4 * 1024,
            max_body_len: 16 * 1024 * 1024,
            max_chunk_line_len: 1024,
            max_trailer_bytes: 8 * 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// What one `process` call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Bytes of `input` used; the caller drops them and keeps the rest.
    pub consumed: usize,
    /// Bytes written at the start of `output`.
    pub produced: usize,
}

/// A request routed upstream, waiting for the caller to pick a server and a connection: its
/// head is still at the start of the input, unconsumed, until [`HttpConn::start_upstream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamRequest {
    /// The route's index ([`Handler::Upstream`]).
    pub route: RouteId,
    /// The head's length at the start of the input (for a hash key taken from a field).
    pub head_len: usize,
    /// RFC 9110 §9.2.2: the request may be retried on another server.
    pub idempotent: bool,
    /// The request has a body (a retry would need it again).
    pub has_body: bool,
}

/// What [`HttpConn::start_upstream`] needs besides the head and the route (whose forwarding
/// rules the `App` holds): who the client is and the upstream connection's terms.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamStart<'a> {
    /// Who the client is, for `X-Forwarded-For` / `Forwarded`.
    pub client: ClientConn,
    /// The `Host` sent for an HTTP/1.0 request that came without one (the pool's name, as
    /// nginx sends its `$proxy_host`), unless the route sets `upstream_host`.
    pub fallback_host: &'a [u8],
    /// The upstream connection will be offered back to the pool after this request.
    pub upstream_keep_alive: bool,
    /// The upstream connection is a pooled one, already up.
    pub reused_connection: bool,
    pub timeouts: Timeouts,
    pub limits: UpstreamLimits,
}

/// How [`HttpConn::start_upstream`] went.
#[derive(Debug)]
pub enum UpstreamStarted {
    /// The forwarded head is the first `produced` bytes of the upstream buffer, and the head's
    /// `consumed` bytes of input are used (drop them). The exchange is in the caller's slot:
    /// drive it through [`HttpConn::process_proxied`].
    Forwarded { consumed: usize, produced: usize },
    /// The gateway answers the request itself (a bad target, `Max-Forwards: 0`, a head too
    /// large for the upstream buffer): call `process` to write the answer. Nothing consumed.
    Answered,
    /// No request was waiting for an upstream.
    NotWaiting,
}

/// The caller's side of a proxied request for one [`HttpConn::process_proxied`] call.
pub struct UpstreamIo<'a> {
    pub exchange: &'a mut Exchange,
    /// The upstream's bytes not consumed yet.
    pub input: &'a [u8],
    /// Free room in the upstream connection's send buffer.
    pub output: &'a mut [u8],
    /// The caller will retry a retryable failure on another server: the connection leaves
    /// such a failure to it (with a new exchange) instead of answering 502/504.
    pub retry: bool,
    /// Out: bytes of `input` used; the caller drops them.
    pub consumed: usize,
    /// Out: bytes written at the start of `output`; the caller sends them.
    pub produced: usize,
}

/// Per-connection counters. Zeroed by `reset()`: read them before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpStats {
    /// Request heads accepted.
    pub requests: u64,
    /// Responses started, by class: `[1xx, 2xx, 3xx, 4xx, 5xx]` (100 Continue counts as 1xx).
    pub responses: [u64; 5],
    /// Requests refused while parsing the head (400, 413, 414, 417, 431, 501, 505).
    pub rejected: u64,
    /// 408 sent because a head did not complete in time.
    pub header_timeouts: u64,
    /// Quiet closes of idle keep-alive connections.
    pub idle_timeouts: u64,
    /// Request bodies that stalled for the idle timeout: 408 if the answer had not started
    /// (a skipped body), else a close that cuts the `/echo` answer.
    pub body_timeouts: u64,
    /// Bad or oversized request bodies found after the response had started.
    pub body_errors: u64,
    /// Responses cut short by a close (peer EOF or body error during `/echo`).
    pub aborted: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// From a request head received to the last byte of its response handed to the transport
    /// (for a large body that includes waiting for the peer to read: the transport's buffer
    /// is bounded). Refusals count; 408s and interim 100s do not.
    pub latency: LatencyHistogram,
}

impl HttpStats {
    /// Adds `other`'s counts to these (totals across connections).
    pub fn add(&mut self, other: &HttpStats) {
        self.requests += other.requests;
        for (total, n) in self.responses.iter_mut().zip(other.responses) {
            *total += n;
        }
        self.rejected += other.rejected;
        self.header_timeouts += other.header_timeouts;
        self.idle_timeouts += other.idle_timeouts;
        self.body_timeouts += other.body_timeouts;
        self.body_errors += other.body_errors;
        self.aborted += other.aborted;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.latency.add(&other.latency);
    }

    /// Responses of class `n`xx (1..=5).
    pub fn responses_class(&self, class: u16) -> u64 {
        match class {
            1..=5 => self.responses[usize::from(class - 1)],
            _ => 0,
        }
    }
}

const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
const SCRATCH_LEN: usize = 128;
/// The body of `/bytes/{n}` (byte i is `b'a' + i % 26`) from any offset: the alphabet
/// repeated, so that a body is written in a few copies of up to 4 KiB rather than one copy per
/// 26 bytes.
const PATTERN: [u8; 26 * 158] = {
    let mut p = [0u8; 26 * 158];
    let mut i = 0;
    while i < p.len() {
        p[i] = b'a' + (i % 26) as u8;
        i += 1;
    }
    p
};

/// Where the request side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Body by Content-Length. With `echo`, the writer consumes it; else `process` skips it.
    Length {
        remaining: u64,
        echo: bool,
    },
    Chunked {
        decoder: ChunkedDecoder,
        echo: bool,
    },
    /// Nothing more will be read on this connection.
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Continue,
    Head,
    Scratch,
    Tail,
    Pattern,
    EchoLength,
    EchoChunked,
    /// A proxied request: the body goes to the upstream and its response to the client, both
    /// through the caller's [`Exchange`] ([`HttpConn::process_proxied`]).
    Upstream,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Static,
    Pattern,
    EchoLength,
    EchoChunked,
    Empty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnHeader {
    None,
    Close,
    KeepAlive,
}

/// A response chosen from the head, started after the request body has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Deferred {
    handler: Handler,
    status: u16,
    head_only: bool,
    conn: ConnHeader,
}

/// Writes one response (optionally preceded by 100 Continue) across as many calls as output
/// space needs. Holds no reference into the `App`: only ids and its own small buffers, so the
/// `Date` of a response never changes half way through.
#[derive(Debug, Clone, Copy)]
struct Writer {
    phase: Phase,
    pos: usize,
    response: Option<ResponseId>,
    body: Body,
    include_body: bool,
    scratch: [u8; SCRATCH_LEN],
    scratch_len: usize,
    pattern_pos: u64,
    pattern_len: u64,
    frame: [u8; 24],
    frame_pos: usize,
    frame_len: usize,
    echo_finishing: bool,
    /// The first chunk-size line of an echoed chunked body has been decoded (the head is
    /// written only then, so a bad first line still gets a 400/413).
    echo_first_seen: bool,
    /// Only a 100 Continue: the final response starts once the body has been read.
    continue_only: bool,
}

enum WriteEnd {
    /// The response is complete.
    Finished,
    /// Output is full, or the echo needs more input.
    Paused,
    /// The echoed body was refused half way: cut the response and close.
    Aborted,
    /// The echoed body was refused before the response head went out: answer this instead.
    Refused(u16),
    /// A forwarded body was refused before the upstream's head went out: answer this instead
    /// (the exchange is abandoned).
    BodyRefused(u16),
    /// The upstream failed before the client's head: answer 502 or 504.
    Gateway(u16),
    /// The upstream failed after the client's head went out: cut the response and close.
    UpstreamAborted,
}

/// Copies `src[*pos..]` into `out[*produced..]`; true when all of `src` has been copied.
/// Reads the fields of `head` (a head `parse` accepted, of at most `N` fields) and writes the
/// head the upstream gets by `rules` at the start of `out`. Returns the fields, the origin-form
/// target and what `write_head` said; `None` for a target without an origin-form.
fn forwarded_head<'h, const N: usize>(
    rules: &ForwardRules,
    head: &'h [u8],
    body: BodyFraming,
    start: &UpstreamStart<'_>,
    out: &mut [u8],
) -> Option<(head::Fields<'h>, &'h [u8], Result<usize, ForwardError>)> {
    let mut slots: [(&[u8], &[u8]); N] = [(&[], &[]); N];
    let fields = head::fields(head, &mut slots)?;
    let target = head::origin_form(fields.target)?;
    let host = head::absolute_authority(fields.target)
        .or(fields.host)
        .or(Some(start.fallback_host));
    let client_request = ClientRequest {
        method: fields.method,
        target,
        version_minor: fields.version_minor,
        host,
        headers: &slots[..fields.count],
        body,
    };
    let written = rules.write_head(
        &client_request,
        start.client,
        start.upstream_keep_alive,
        out,
    );
    Some((fields, target, written))
}

fn copy_out(src: &[u8], pos: &mut usize, out: &mut [u8], produced: &mut usize) -> bool {
    let n = (src.len() - *pos).min(out.len() - *produced);
    out[*produced..*produced + n].copy_from_slice(&src[*pos..*pos + n]);
    *pos += n;
    *produced += n;
    *pos == src.len()
}

/// Writes the end of a forwarded body (a chunked body's last chunk) into the upstream buffer;
/// false while it does not fit or the exchange does not take it (answered, ended).
fn finish_forwarded_body(now: Instant, up: &mut UpstreamIo<'_>) -> bool {
    match up.exchange.finish_body(now, &mut up.output[up.produced..]) {
        Ok(Some(n)) => {
            up.produced += n;
            true
        }
        Ok(None) | Err(_) => false,
    }
}

fn chunk_status(e: ChunkError) -> u16 {
    match e {
        ChunkError::Syntax => 400,
        ChunkError::TooLarge => 413,
    }
}

fn push(buf: &mut [u8], len: &mut usize, bytes: &[u8]) {
    buf[*len..*len + bytes.len()].copy_from_slice(bytes);
    *len += bytes.len();
}

fn push_decimal(buf: &mut [u8], len: &mut usize, n: u64) {
    push(buf, len, syntax::decimal(n, &mut [0u8; 20]));
}

fn push_hex(buf: &mut [u8], len: &mut usize, mut n: u64) {
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    push(buf, len, &digits[at..]);
}

impl Writer {
    const IDLE: Writer = Writer {
        phase: Phase::Idle,
        pos: 0,
        response: None,
        body: Body::Empty,
        include_body: false,
        scratch: [0; SCRATCH_LEN],
        scratch_len: 0,
        pattern_pos: 0,
        pattern_len: 0,
        frame: [0; 24],
        frame_pos: 0,
        frame_len: 0,
        echo_finishing: false,
        echo_first_seen: false,
        continue_only: false,
    };

    fn active(&self) -> bool {
        self.phase != Phase::Idle
    }

    /// Only `100 Continue`, for a body read before the final response is chosen.
    fn start_continue(&mut self) {
        *self = Writer::IDLE;
        self.phase = Phase::Continue;
        self.continue_only = true;
    }

    /// Prepares a response. `framing` is the request's (for `/echo`).
    fn start(
        &mut self,
        app: &App,
        handler: Handler,
        head_only: bool,
        conn: ConnHeader,
        continue_first: bool,
        framing: Framing,
    ) {
        *self = Writer::IDLE;
        self.phase = if continue_first {
            Phase::Continue
        } else {
            Phase::Head
        };
        self.include_body = !head_only;
        let s = &mut self.scratch;
        let mut len = 0;
        push(s, &mut len, b"Date: ");
        let date: &[u8; IMF_FIXDATE_LEN] = app.date();
        push(s, &mut len, date);
        push(s, &mut len, b"\r\n");
        match conn {
            ConnHeader::None => {}
            ConnHeader::Close => push(s, &mut len, b"Connection: close\r\n"),
            ConnHeader::KeepAlive => push(s, &mut len, b"Connection: keep-alive\r\n"),
        }
        match handler {
            Handler::Static(id) => {
                self.response = Some(id);
                self.body = Body::Static;
            }
            Handler::Bytes(n) => {
                push(s, &mut len, b"Content-Length: ");
                push_decimal(s, &mut len, n);
                push(s, &mut len, b"\r\n\r\n");
                self.body = Body::Pattern;
                self.pattern_len = if head_only { 0 } else { n };
            }
            Handler::Echo => match framing {
                Framing::Chunked => {
                    push(s, &mut len, b"Transfer-Encoding: chunked\r\n\r\n");
                    self.body = Body::EchoChunked;
                }
                Framing::Length(n) => {
                    push(s, &mut len, b"Content-Length: ");
                    push_decimal(s, &mut len, n);
                    push(s, &mut len, b"\r\n\r\n");
                    self.body = Body::EchoLength;
                }
                Framing::None => {
                    push(s, &mut len, b"Content-Length: 0\r\n\r\n");
                    self.body = Body::Empty;
                }
            },
            // Started by `HttpConn::start_upstream`, never here: nothing of ours to write.
            Handler::Upstream(_) => {
                self.phase = Phase::Idle;
                return;
            }
        }
        self.scratch_len = len;
    }

    fn set_frame(&mut self, parts: &[&[u8]], size: Option<u64>) {
        let mut len = 0;
        if let Some(n) = size {
            push_hex(&mut self.frame, &mut len, n);
        }
        for p in parts {
            push(&mut self.frame, &mut len, p);
        }
        self.frame_pos = 0;
        self.frame_len = len;
    }

    /// Writes as much as fits. Returns (input consumed, output produced, how it stopped).
    fn write(
        &mut self,
        app: &App,
        read: &mut Read,
        input: &[u8],
        out: &mut [u8],
    ) -> (usize, usize, WriteEnd) {
        let mut consumed = 0;
        let mut produced = 0;
        loop {
            let done = match self.phase {
                Phase::Idle => return (consumed, produced, WriteEnd::Finished),
                // Driven by `HttpConn::forward_step`, with the caller's upstream buffers.
                Phase::Upstream => return (consumed, produced, WriteEnd::Paused),
                Phase::Continue => copy_out(CONTINUE_100, &mut self.pos, out, &mut produced),
                Phase::Head if self.body == Body::EchoChunked && !self.echo_first_seen => {
                    let Read::Chunked { decoder, .. } = read else {
                        return (consumed, produced, WriteEnd::Aborted);
                    };
                    let (n, event) = decoder.advance(&input[consumed..]);
                    consumed += n;
                    match event {
                        Err(e) => return (consumed, produced, WriteEnd::Refused(chunk_status(e))),
                        Ok(Event::NeedMore) => return (consumed, produced, WriteEnd::Paused),
                        Ok(Event::ChunkStart(size)) => self.set_frame(&[b"\r\n"], Some(size)),
                        Ok(Event::Done) => {
                            self.set_frame(&[b"0\r\n\r\n"], None);
                            self.echo_finishing = true;
                        }
                        // Not at the start of a body.
                        Ok(Event::ChunkEnd) | Ok(Event::Data(_)) => {
                            return (consumed, produced, WriteEnd::Aborted)
                        }
                    }
                    self.echo_first_seen = true;
                    continue;
                }
                Phase::Head => {
                    let head = match self.response {
                        Some(id) => app.prepared(id).head(),
                        None => app.dynamic_head(),
                    };
                    copy_out(head, &mut self.pos, out, &mut produced)
                }
                Phase::Scratch => copy_out(
                    &self.scratch[..self.scratch_len],
                    &mut self.pos,
                    out,
                    &mut produced,
                ),
                Phase::Tail => {
                    let prepared = self.response.map(|id| app.prepared(id));
                    let tail = match prepared {
                        Some(p) if self.include_body => p.tail(),
                        Some(p) => p.tail_without_body(),
                        None => &[],
                    };
                    copy_out(tail, &mut self.pos, out, &mut produced)
                }
                Phase::Pattern => {
                    while self.pattern_pos < self.pattern_len && produced < out.len() {
                        let off = (self.pattern_pos % 26) as usize;
                        let left = self.pattern_len - self.pattern_pos;
                        let n = (PATTERN.len() - off)
                            .min(out.len() - produced)
                            .min(usize::try_from(left).unwrap_or(usize::MAX));
                        out[produced..produced + n].copy_from_slice(&PATTERN[off..off + n]);
                        produced += n;
                        self.pattern_pos += n as u64;
                    }
                    self.pattern_pos == self.pattern_len
                }
                Phase::EchoLength => {
                    let Read::Length { remaining, .. } = read else {
                        return (consumed, produced, WriteEnd::Aborted);
                    };
                    let n = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - consumed)
                        .min(out.len() - produced);
                    out[produced..produced + n].copy_from_slice(&input[consumed..consumed + n]);
                    produced += n;
                    consumed += n;
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        *read = Read::Head;
                        true
                    } else {
                        false
                    }
                }
                Phase::EchoChunked => {
                    match self.echo_chunked(read, input, &mut consumed, out, &mut produced) {
                        Ok(done) => done,
                        Err(()) => return (consumed, produced, WriteEnd::Aborted),
                    }
                }
            };
            if !done {
                return (consumed, produced, WriteEnd::Paused);
            }
            self.pos = 0;
            self.phase = match (self.phase, self.body) {
                (Phase::Continue, _) if self.continue_only => Phase::Idle,
                (Phase::Continue, _) => Phase::Head,
                (Phase::Head, _) => Phase::Scratch,
                (Phase::Scratch, Body::Static) => Phase::Tail,
                (Phase::Scratch, Body::Pattern) => Phase::Pattern,
                (Phase::Scratch, Body::EchoLength) => Phase::EchoLength,
                (Phase::Scratch, Body::EchoChunked) => Phase::EchoChunked,
                _ => Phase::Idle,
            };
        }
    }

    /// Re-frames the request's chunks one for one (same sizes, so the output does not depend
    /// on how the input was split), dropping extensions and trailers.
    fn echo_chunked(
        &mut self,
        read: &mut Read,
        input: &[u8],
        consumed: &mut usize,
        out: &mut [u8],
        produced: &mut usize,
    ) -> Result<bool, ()> {
        let Read::Chunked { decoder, .. } = read else {
            return Err(());
        };
        loop {
            if self.frame_pos < self.frame_len {
                let frame = self.frame;
                if !copy_out(&frame[..self.frame_len], &mut self.frame_pos, out, produced) {
                    return Ok(false);
                }
            }
            if self.echo_finishing {
                *read = Read::Head;
                return Ok(true);
            }
            let (n, event) = decoder.advance(&input[*consumed..]);
            *consumed += n;
            match event {
                Err(_) => return Err(()),
                Ok(Event::NeedMore) => return Ok(false),
                Ok(Event::ChunkStart(size)) => self.set_frame(&[b"\r\n"], Some(size)),
                Ok(Event::ChunkEnd) => self.set_frame(&[b"\r\n"], None),
                Ok(Event::Done) => {
                    self.set_frame(&[b"0\r\n\r\n"], None);
                    self.echo_finishing = true;
                }
                Ok(Event::Data(remaining)) => {
                    let k = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - *consumed)
                        .min(out.len() - *produced);
                    if k == 0 {
                        return Ok(false);
                    }
                    out[*produced..*produced + k].copy_from_slice(&input[*consumed..*consumed + k]);
                    *produced += k;
                    *consumed += k;
                    decoder.take_data(k as u64);
                }
            }
        }
    }
}

/// One HTTP/1.1 server connection. Holds no heap memory: reuse it with [`HttpConn::reset`].
#[derive(Debug, Clone)]
pub struct HttpConn {
    limits: HttpLimits,
    read: Read,
    writer: Writer,
    /// Close once the response being written is complete.
    close_after: bool,
    closed: bool,
    /// The gateway is shutting down: every response says `Connection: close`.
    draining: bool,
    /// A 408 to start at the next `process`.
    pending_408: bool,
    /// The answer to a request whose body is being skipped; it starts once the body is read.
    deferred: Option<Deferred>,
    eof: bool,
    blocked_on_output: bool,
    head_started: Option<Instant>,
    /// When the head of the request being answered was received (for `HttpStats::latency`).
    answering_since: Option<Instant>,
    idle_since: Option<Instant>,
    last_input: Instant,
    scan: ScanState,
    stats: HttpStats,
    /// The access log's marks of the request being answered (kept only by `process_logged`).
    log: LogMarks,
    /// A request routed upstream whose head waits for `start_upstream`.
    upstream_wait: Option<UpstreamWait>,
    /// The route of the request being forwarded (its `Via` name is the route's).
    forward_route: Option<RouteId>,
    /// On a TLS connection, its version and server name once the handshake is done (before
    /// it, HTTP sees no byte): for the access log, and forwarded requests say `https`
    /// (`X-Forwarded-Proto`, `Forwarded`).
    tls_info: Option<TlsLogInfo>,
}

/// What `start_upstream` needs of a head `process` routed upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UpstreamWait {
    route: RouteId,
    req: head::Request,
}

impl HttpConn {
    pub fn new(limits: HttpLimits) -> Self {
        HttpConn {
            limits,
            read: Read::Head,
            writer: Writer::IDLE,
            close_after: false,
            closed: false,
            draining: false,
            pending_408: false,
            deferred: None,
            eof: false,
            blocked_on_output: false,
            head_started: None,
            answering_since: None,
            idle_since: None,
            last_input: Instant::ZERO,
            scan: ScanState::default(),
            stats: HttpStats::default(),
            log: LogMarks::default(),
            upstream_wait: None,
            forward_route: None,
            tls_info: None,
        }
    }

    /// Whether the connection is carried by TLS (its handshake is done: HTTP runs only then).
    pub fn is_tls(&self) -> bool {
        self.tls_info.is_some()
    }

    /// The TLS handshake is done: what the access log records of it.
    pub fn set_tls_info(&mut self, info: TlsLogInfo) {
        self.tls_info = Some(info);
    }

    pub fn tls_info(&self) -> Option<&TlsLogInfo> {
        self.tls_info.as_ref()
    }

    /// Ready for a new connection: state and counters cleared, limits kept.
    pub fn reset(&mut self) {
        *self = HttpConn::new(self.limits);
    }

    /// An answer that ended outside [`process_logged`](Self::process_logged) (a peer that
    /// went away, a timeout) and that no later call pushed: the owner logs it.
    pub fn take_access_record(&mut self) -> Option<Finished> {
        self.log.take()
    }

    /// The transport is gone at `now` (closed, reset, timed out): an answer still under way
    /// ends as cut and is returned, or one that waited to be pushed.
    pub fn close_access(&mut self, now: Instant) -> Option<Finished> {
        let totals = (self.stats.bytes_in, self.stats.bytes_out);
        self.log.finish(now, false, totals);
        self.log.take()
    }

    /// Arms the idle timer for a connection that has not sent anything yet. Optional: the
    /// first `process` call does it too.
    pub fn start(&mut self, now: Instant) {
        self.idle_since.get_or_insert(now);
    }

    pub fn limits(&self) -> &HttpLimits {
        &self.limits
    }

    /// New limits (a reload), for a connection [between requests](Self::is_between_requests).
    pub fn set_limits(&mut self, limits: HttpLimits) {
        self.limits = limits;
    }

    /// Nothing refers to the `App` or the limits now: no response being written or waiting
    /// for its body, no head partly read. A reload may switch this connection over.
    pub fn is_between_requests(&self) -> bool {
        self.closed
            || (!self.writer.active()
                && self.read == Read::Head
                && self.deferred.is_none()
                && self.head_started.is_none()
                && !self.pending_408
                && self.upstream_wait.is_none())
    }

    pub fn stats(&self) -> &HttpStats {
        &self.stats
    }

    /// Parses as much of `input` as it can and writes as much response as fits in `output`.
    /// Stops consuming input while a response is waiting for output space (backpressure).
    /// Once the connection is closing, input is consumed and ignored.
    #[must_use]
    pub fn process(
        &mut self,
        now: Instant,
        app: &App,
        input: &[u8],
        output: &mut [u8],
    ) -> Progress {
        self.process_inner(now, app, input, output, None, None)
    }

    /// [`process`](Self::process), logging every answer that ends: its record (the request
    /// line kept by `log.conn`, the rest from this connection) goes into `log.sink`.
    #[must_use]
    pub fn process_logged(
        &mut self,
        now: Instant,
        app: &App,
        input: &[u8],
        output: &mut [u8],
        log: AccessLogIo<'_>,
    ) -> Progress {
        self.process_inner(now, app, input, output, None, Some(log))
    }

    /// [`process`](Self::process), or [`process_logged`](Self::process_logged) when `log` is
    /// given.
    #[must_use]
    #[inline]
    pub fn process_with_log(
        &mut self,
        now: Instant,
        app: &App,
        input: &[u8],
        output: &mut [u8],
        log: Option<AccessLogIo<'_>>,
    ) -> Progress {
        self.process_inner(now, app, input, output, None, log)
    }

    /// [`process`](Self::process) (or [`process_logged`](Self::process_logged) with `log`)
    /// while a request is forwarded: the client's body goes to `up.output` through
    /// `up.exchange` as the exchange and the room allow, and the upstream's bytes `up.input`
    /// become the client's response. The caller reports the upstream connection's events to
    /// the exchange itself (connected, closed, reset, timeouts) and calls this after each.
    /// Once the exchange has ended and [`is_forwarding`](Self::is_forwarding) is false, the
    /// exchange is the caller's to settle (pool, balancer); an exchange that has not ended by
    /// then was abandoned (the client's body was bad, or the client went away): close its
    /// upstream connection.
    #[must_use]
    pub fn process_proxied(
        &mut self,
        now: Instant,
        app: &App,
        input: &[u8],
        output: &mut [u8],
        up: &mut UpstreamIo<'_>,
        log: Option<AccessLogIo<'_>>,
    ) -> Progress {
        self.process_inner(now, app, input, output, Some(up), log)
    }

    fn process_inner(
        &mut self,
        now: Instant,
        app: &App,
        input: &[u8],
        output: &mut [u8],
        mut up: Option<&mut UpstreamIo<'_>>,
        mut log: Option<AccessLogIo<'_>>,
    ) -> Progress {
        // Every access-log step below is skipped when the call logs nothing.
        if let (Some(io), Some(tls)) = (log.as_mut(), self.tls_info.as_ref()) {
            io.conn.note_tls(Some(tls));
        }
        if let Some(io) = log.as_mut() {
            if let Some(f) = self.log.take() {
                io.push(f);
            }
        }
        self.idle_since.get_or_insert(now);
        if self.closed {
            return Progress {
                consumed: input.len(),
                produced: 0,
            };
        }
        if self.pending_408 {
            self.pending_408 = false;
            if let Some(io) = log.as_mut().filter(|_| !self.log.is_open()) {
                // A header timeout: no request line was read.
                io.conn.begin(b"");
                self.log
                    .begin(now, (self.stats.bytes_in, self.stats.bytes_out));
            }
            self.refuse(app, 408);
        }
        if input.is_empty() && self.waits_for_a_head() {
            // Nothing to parse and nothing under way: the call a transport makes again after
            // one that moved (until nothing moves) ends here, before the parse and the loop.
            self.blocked_on_output = false;
            return Progress::default();
        }
        let mut consumed = 0;
        let mut produced = 0;
        loop {
            let before = (consumed, produced);
            let mut started = false;
            if self.writer.active() {
                let (c, p, end) = match (self.writer.phase, up.as_deref_mut()) {
                    (Phase::Upstream, Some(up)) => {
                        self.forward_step(now, app, &input[consumed..], &mut output[produced..], up)
                    }
                    _ => self.writer.write(
                        app,
                        &mut self.read,
                        &input[consumed..],
                        &mut output[produced..],
                    ),
                };
                consumed += c;
                produced += p;
                match end {
                    WriteEnd::Finished => {
                        self.writer.phase = Phase::Idle;
                        if let (Some(up), Some(io)) = (up.as_deref(), log.as_mut()) {
                            if self.forward_route.take().is_some() {
                                io.conn.set_upstream_time(up.exchange.response_time());
                            }
                        }
                        // An interim 100 finishes with the real answer still deferred.
                        if self.deferred.is_none() {
                            if let Some(t) = self.answering_since.take() {
                                self.stats.latency.record(now.saturating_duration_since(t));
                            }
                            if let Some(io) = log.as_mut() {
                                let totals = self.totals(consumed, produced);
                                self.log.finish(now, true, totals);
                                if let Some(f) = self.log.take() {
                                    io.push(f);
                                }
                            }
                        }
                    }
                    WriteEnd::Paused => {}
                    WriteEnd::Aborted => {
                        self.stats.body_errors += 1;
                        self.abort(now, self.totals(consumed, produced));
                        break;
                    }
                    // A refusal replaces the answer: it is written in this call even when
                    // the step that ended the answer moved nothing (a failed exchange).
                    WriteEnd::Refused(status) => {
                        self.stats.body_errors += 1;
                        self.uncount_response(200);
                        self.refuse(app, status);
                        continue;
                    }
                    WriteEnd::BodyRefused(status) => {
                        self.stats.body_errors += 1;
                        self.refuse(app, status);
                        continue;
                    }
                    WriteEnd::Gateway(status) => {
                        self.refuse(app, status);
                        continue;
                    }
                    WriteEnd::UpstreamAborted => {
                        self.abort(now, self.totals(consumed, produced));
                        break;
                    }
                }
            }
            if !self.writer.active() {
                match self.read {
                    // The head stays in the input until the caller starts the exchange.
                    Read::Head if self.upstream_wait.is_some() => break,
                    Read::Stopped => {
                        self.closed = true;
                        break;
                    }
                    Read::Head if self.close_after && self.deferred.is_none() => {
                        self.closed = true;
                        break;
                    }
                    Read::Head if self.deferred.is_none() => {
                        let totals = self.totals(consumed, produced);
                        let line = log.as_mut().map(|io| &mut *io.conn);
                        let (c, s) = self.next_request(now, app, &input[consumed..], totals, line);
                        consumed += c;
                        started = s;
                    }
                    _ => {
                        consumed += self.skip_body(app, &input[consumed..]);
                        if self.read == Read::Head {
                            if let Some(d) = self.deferred.take() {
                                self.writer.start(
                                    app,
                                    d.handler,
                                    d.head_only,
                                    d.conn,
                                    false,
                                    Framing::None,
                                );
                                started = true;
                            }
                        } else if self.writer.active() {
                            started = true; // a refusal of the body
                        }
                    }
                }
            }
            if !started && (consumed, produced) == before {
                break;
            }
        }
        if !self.writer.active()
            && self.read == Read::Head
            && self.head_started.is_none()
            && (consumed > 0 || produced > 0)
        {
            self.idle_since = Some(now);
        }
        if consumed > 0 {
            self.last_input = now;
        }
        self.blocked_on_output = self.writer.active() && produced == output.len();
        if self.eof && !self.closed && !self.blocked_on_output && !self.awaits_upstream() {
            // Stopped for want of input that will not come.
            self.abort(now, self.totals(consumed, produced));
        }
        if let Some(io) = log.as_mut() {
            if let Some(f) = self.log.take() {
                io.push(f);
            }
        }
        if self.closed {
            consumed = input.len();
        }
        self.stats.bytes_in += consumed as u64;
        self.stats.bytes_out += produced as u64;
        Progress { consumed, produced }
    }

    /// Reads and drops the body of a request whose answer does not use it. A bad body is
    /// refused (400, or 413 when chunk sizes pass the limit) instead of the deferred answer.
    fn skip_body(&mut self, app: &App, input: &[u8]) -> usize {
        match &mut self.read {
            Read::Length { remaining, .. } => {
                let n = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.read = Read::Head;
                }
                n
            }
            Read::Chunked { decoder, .. } => {
                let mut consumed = 0;
                loop {
                    let (n, event) = decoder.advance(&input[consumed..]);
                    consumed += n;
                    match event {
                        Ok(Event::Data(remaining)) => {
                            let k = usize::try_from(remaining)
                                .unwrap_or(usize::MAX)
                                .min(input.len() - consumed);
                            if k == 0 {
                                return consumed;
                            }
                            consumed += k;
                            decoder.take_data(k as u64);
                        }
                        Ok(Event::ChunkStart(_)) | Ok(Event::ChunkEnd) => {}
                        Ok(Event::NeedMore) => return consumed,
                        Ok(Event::Done) => {
                            self.read = Read::Head;
                            return consumed;
                        }
                        Err(e) => {
                            self.stats.body_errors += 1;
                            if let Some(d) = self.deferred.take() {
                                self.uncount_response(d.status);
                            }
                            self.refuse(app, chunk_status(e));
                            return consumed;
                        }
                    }
                }
            }
            _ => 0,
        }
    }

    /// Between requests with no bytes of the next one: only input (or a timeout) can move
    /// the connection, and no input makes no change to it.
    pub(crate) fn waits_for_a_head(&self) -> bool {
        !self.writer.active()
            && self.read == Read::Head
            && !self.close_after
            && !self.eof
            && self.deferred.is_none()
            && self.upstream_wait.is_none()
            && self.head_started.is_none()
            && self.scan == ScanState::default()
    }

    /// The connection's bytes in and out including this `process` call's progress so far.
    fn totals(&self, consumed: usize, produced: usize) -> (u64, u64) {
        (
            self.stats.bytes_in + consumed as u64,
            self.stats.bytes_out + produced as u64,
        )
    }

    /// Parses the next head from `input` and starts its response. Returns the bytes consumed
    /// and whether a response was started. `totals`: the connection's bytes so far, where the
    /// access-log record of this request begins.
    fn next_request(
        &mut self,
        now: Instant,
        app: &App,
        input: &[u8],
        totals: (u64, u64),
        line: Option<&mut ConnLog>,
    ) -> (usize, bool) {
        let outcome = head::parse(input, &self.limits, app, &mut self.scan);
        if outcome != Outcome::Incomplete {
            self.scan = ScanState::default();
        }
        match outcome {
            Outcome::Incomplete => {
                if !input.is_empty() && self.head_started.is_none() {
                    self.head_started = Some(now);
                }
                (0, false)
            }
            Outcome::Reject(status) => {
                if let Some(line) = line {
                    line.begin(input);
                    self.log.begin(now, totals);
                }
                self.stats.rejected += 1;
                self.head_started = None;
                self.answering_since = Some(now);
                self.refuse(app, status);
                (0, true)
            }
            Outcome::Request(req) => {
                if let Some(line) = line {
                    line.begin(&input[..req.len]);
                    self.log.begin(now, totals);
                }
                self.head_started = None;
                self.answering_since = Some(now);
                self.stats.requests += 1;
                if let Handler::Upstream(route) = req.handler {
                    // The caller picks a server and calls `start_upstream`, which reads the
                    // head again from the input (still unconsumed) to forward it.
                    self.upstream_wait = Some(UpstreamWait { route, req });
                    self.last_input = now;
                    return (0, false);
                }
                let status = app.status(req.handler);
                let has_body = req.framing != Framing::None;
                // A refused request's body is not read: answer, then close (RFC 9110 §10.1.1
                // for Expect; for the rest, not reading it is what keeps us in sync).
                let refuse_body = has_body && status >= 400;
                let close = req.close || refuse_body || self.draining;
                let continue_first = req.expect_continue && has_body && !refuse_body;
                let conn = if close {
                    ConnHeader::Close
                } else if req.keep_alive_10 {
                    ConnHeader::KeepAlive
                } else {
                    ConnHeader::None
                };
                let echo = matches!(req.handler, Handler::Echo);
                self.close_after = close;
                if continue_first {
                    self.stats.responses[0] += 1;
                }
                self.count_response(status);
                let decoder = ChunkedDecoder::new(
                    self.limits.max_body_len,
                    self.limits.max_chunk_line_len,
                    self.limits.max_trailer_bytes,
                );
                self.read = match req.framing {
                    _ if refuse_body => Read::Stopped,
                    Framing::None => Read::Head,
                    Framing::Length(n) => Read::Length { remaining: n, echo },
                    Framing::Chunked => Read::Chunked { decoder, echo },
                };
                if echo || !has_body || refuse_body {
                    self.writer.start(
                        app,
                        req.handler,
                        req.head_only,
                        conn,
                        continue_first,
                        req.framing,
                    );
                } else {
                    // Read the body first, so that a bad one can still be answered 400.
                    self.deferred = Some(Deferred {
                        handler: req.handler,
                        status,
                        head_only: req.head_only,
                        conn,
                    });
                    if continue_first {
                        self.writer.start_continue();
                    }
                }
                self.last_input = now;
                (req.len, true)
            }
        }
    }

    /// A request routed upstream whose head waits at the start of the input: pick a server
    /// and a connection, then call [`start_upstream`](Self::start_upstream).
    pub fn upstream_request(&self) -> Option<UpstreamRequest> {
        let w = self.upstream_wait?;
        Some(UpstreamRequest {
            route: w.route,
            head_len: w.req.len,
            idempotent: w.req.idempotent,
            has_body: w.req.framing != Framing::None,
        })
    }

    /// Answers the request waiting for an upstream with the gateway's own `status` (503: no
    /// server of the pool can take it; 502: no connection could be opened), then closes: its
    /// body, if any, is not read.
    pub fn answer_upstream_request(&mut self, app: &App, status: u16) {
        if self.upstream_wait.take().is_some() {
            self.refuse(app, status);
        }
    }

    /// A request is being forwarded: its exchange is under way, driven by
    /// [`process_proxied`](Self::process_proxied).
    pub fn is_forwarding(&self) -> bool {
        self.writer.phase == Phase::Upstream
    }

    /// Waiting on the upstream with the whole request read: a client's EOF does not cut it
    /// (a client may half-close after its request and still read the answer).
    fn awaits_upstream(&self) -> bool {
        match self.upstream_wait {
            Some(w) => w.req.framing == Framing::None,
            None => self.is_forwarding() && self.read == Read::Head,
        }
    }

    /// Forwards the request [`upstream_request`](Self::upstream_request) announced: writes
    /// the head the upstream gets (the route's rules) at the start of `upstream_out` and puts the
    /// exchange that carries the rest in `exchange` (the caller's slot, where it stays). `input`
    /// must start with the waiting head, as it was given to the `process` call that routed it.
    pub fn start_upstream(
        &mut self,
        now: Instant,
        app: &App,
        input: &[u8],
        start: &UpstreamStart<'_>,
        upstream_out: &mut [u8],
        exchange: &mut Option<Exchange>,
    ) -> UpstreamStarted {
        let Some(wait) = self.upstream_wait else {
            return UpstreamStarted::NotWaiting;
        };
        let req = wait.req;
        let Some(head_bytes) = input.get(..req.len) else {
            return UpstreamStarted::NotWaiting;
        };
        self.upstream_wait = None;
        let Some(rules) = app.routes().and_then(|r| r.forward_rules(wait.route)) else {
            // Not a route of this `App`: only a caller mixing generations gets here.
            self.refuse(app, 500);
            return UpstreamStarted::Answered;
        };
        let body = match req.framing {
            Framing::None => BodyFraming::None,
            Framing::Length(n) => BodyFraming::Length(n),
            Framing::Chunked => BodyFraming::Chunked,
        };
        // Slots for the head's fields, as few as it needs: most heads have a handful.
        let forwarded = if usize::from(req.field_count) <= head::FEW_FIELDS {
            forwarded_head::<{ head::FEW_FIELDS }>(rules, head_bytes, body, start, upstream_out)
        } else {
            forwarded_head::<{ head::MAX_HEADERS_CAP }>(
                rules,
                head_bytes,
                body,
                start,
                upstream_out,
            )
        };
        let Some((fields, target, written)) = forwarded else {
            self.refuse(app, 400);
            return UpstreamStarted::Answered;
        };
        let produced = match written {
            Ok(n) => n,
            Err(ForwardError::MaxForwardsZero) => {
                // RFC 9110 §7.6.2: the gateway is the final recipient and answers as it would
                // for its own resources.
                let path = head::route_path(target).unwrap_or(b"/");
                let handler = match app.handle(fields.method, path) {
                    Handler::Static(id) => id,
                    _ => app.status_response(405),
                };
                self.answer_static(app, handler, req.head_only);
                return UpstreamStarted::Answered;
            }
            Err(ForwardError::HeadTooLarge) => {
                self.refuse(app, 502);
                return UpstreamStarted::Answered;
            }
            Err(_) => {
                self.refuse(app, 400);
                return UpstreamStarted::Answered;
            }
        };
        let close = req.close || self.draining;
        let spec = ExchangeSpec {
            request: if req.head_only {
                RequestKind::Head
            } else {
                RequestKind::Other
            },
            client_version_minor: fields.version_minor,
            client_keep_alive: !close,
            expect_continue: req.expect_continue,
            idempotent: is_idempotent(fields.method),
            body,
            limits: start.limits,
            timeouts: start.timeouts,
            reused_connection: start.reused_connection,
            date: Some(*app.date()),
        };
        *exchange = Some(Exchange::new(now, spec));
        self.close_after = close;
        let decoder = ChunkedDecoder::new(
            self.limits.max_body_len,
            self.limits.max_chunk_line_len,
            self.limits.max_trailer_bytes,
        );
        self.read = match req.framing {
            Framing::None => Read::Head,
            Framing::Length(n) => Read::Length {
                remaining: n,
                echo: false,
            },
            Framing::Chunked => Read::Chunked {
                decoder,
                echo: false,
            },
        };
        self.writer = Writer::IDLE;
        self.writer.phase = Phase::Upstream;
        self.forward_route = Some(wait.route);
        self.last_input = now;
        self.stats.bytes_in += req.len as u64;
        UpstreamStarted::Forwarded {
            consumed: req.len,
            produced,
        }
    }

    /// Answers a request routed upstream with one of the gateway's responses, then closes
    /// (its body, if any, is not read).
    fn answer_static(&mut self, app: &App, id: ResponseId, head_only: bool) {
        self.read = Read::Stopped;
        self.close_after = true;
        self.count_response(app.prepared(id).status());
        self.writer.start(
            app,
            Handler::Static(id),
            head_only,
            ConnHeader::Close,
            false,
            Framing::None,
        );
    }

    /// One round of a forwarded request: the client's body to the upstream, the upstream's
    /// response to the client, until neither moves. Returns the client input consumed, the
    /// client output produced and how the response stands.
    fn forward_step(
        &mut self,
        now: Instant,
        app: &App,
        input: &[u8],
        out: &mut [u8],
        up: &mut UpstreamIo<'_>,
    ) -> (usize, usize, WriteEnd) {
        let rules = self
            .forward_route
            .and_then(|route| app.routes()?.forward_rules(route));
        let Some(head_rules) = rules.map(ForwardRules::client_head_rules) else {
            // Not a route of this `App`: only a caller mixing generations gets here.
            return (0, 0, WriteEnd::UpstreamAborted);
        };
        let mut consumed = 0;
        let mut produced = 0;
        loop {
            let before = (consumed, produced, up.consumed, up.produced);
            match self.forward_body(now, &input[consumed..], up) {
                Ok(n) => consumed += n,
                Err(status) => {
                    // The client's body broke its framing: the upstream got part of it, so
                    // the exchange is abandoned (the caller closes that connection).
                    return if up.exchange.status().is_none() {
                        (consumed, produced, WriteEnd::BodyRefused(status))
                    } else {
                        (consumed, produced, WriteEnd::Aborted)
                    };
                }
            }
            let response = up.exchange.upstream_data(
                now,
                &up.input[up.consumed..],
                &mut out[produced..],
                head_rules,
            );
            if let Ok(p) = response {
                up.consumed += p.consumed;
                produced += p.produced;
            }
            match up.exchange.end() {
                Some(End::Done { .. }) => {
                    if let Some(status) = up.exchange.status() {
                        self.count_response(status);
                    }
                    if !up.exchange.client_keeps_connection() {
                        self.close_after = true;
                    }
                    if self.read != Read::Head {
                        // Answered before the body was read whole: it is not read further.
                        self.read = Read::Stopped;
                        self.close_after = true;
                    }
                    self.writer.phase = Phase::Idle;
                    return (consumed, produced, WriteEnd::Finished);
                }
                Some(End::Failed(f)) if f.retryable && up.retry => {
                    // The caller starts another exchange on another server.
                    return (consumed, produced, WriteEnd::Paused);
                }
                Some(End::Failed(f)) => {
                    // The writer stays active for `abort` to count the cut response; a 502/504
                    // replaces it.
                    return match f.client {
                        ClientAction::Respond(status) => {
                            (consumed, produced, WriteEnd::Gateway(status.code()))
                        }
                        ClientAction::Abort => {
                            if let Some(status) = up.exchange.status() {
                                self.count_response(status);
                            }
                            (consumed, produced, WriteEnd::UpstreamAborted)
                        }
                    };
                }
                None => {}
            }
            if (consumed, produced, up.consumed, up.produced) == before {
                return (consumed, produced, WriteEnd::Paused);
            }
        }
    }

    /// Moves the client's body into the upstream buffer as far as the exchange and the room
    /// allow (the body is consumed only as fast as it can go on). `Err(status)` for a bad
    /// chunked body.
    fn forward_body(
        &mut self,
        now: Instant,
        input: &[u8],
        up: &mut UpstreamIo<'_>,
    ) -> Result<usize, u16> {
        let mut consumed = 0;
        loop {
            if !up.exchange.may_send_body(now) {
                return Ok(consumed);
            }
            let room = &mut up.output[up.produced..];
            match &mut self.read {
                Read::Length { remaining, .. } if *remaining == 0 => {
                    if finish_forwarded_body(now, up) {
                        self.read = Read::Head;
                    }
                    return Ok(consumed);
                }
                Read::Length { remaining, .. } => {
                    let n = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - consumed);
                    if n == 0 {
                        return Ok(consumed);
                    }
                    let Ok(p) = up
                        .exchange
                        .send_body(now, &input[consumed..consumed + n], room)
                    else {
                        return Ok(consumed);
                    };
                    consumed += p.consumed;
                    *remaining -= p.consumed as u64;
                    up.produced += p.produced;
                    if p.consumed == 0 {
                        return Ok(consumed);
                    }
                }
                Read::Chunked { decoder, .. } => {
                    let (n, event) = decoder.advance(&input[consumed..]);
                    consumed += n;
                    match event {
                        Err(e) => return Err(chunk_status(e)),
                        Ok(Event::NeedMore) => return Ok(consumed),
                        Ok(Event::ChunkStart(_)) | Ok(Event::ChunkEnd) => {}
                        Ok(Event::Done) => {
                            if finish_forwarded_body(now, up) {
                                self.read = Read::Head;
                            }
                            return Ok(consumed);
                        }
                        Ok(Event::Data(remaining)) => {
                            let k = usize::try_from(remaining)
                                .unwrap_or(usize::MAX)
                                .min(input.len() - consumed);
                            if k == 0 {
                                return Ok(consumed);
                            }
                            let Ok(p) =
                                up.exchange
                                    .send_body(now, &input[consumed..consumed + k], room)
                            else {
                                return Ok(consumed);
                            };
                            consumed += p.consumed;
                            decoder.take_data(p.consumed as u64);
                            up.produced += p.produced;
                            if p.consumed == 0 {
                                return Ok(consumed);
                            }
                        }
                    }
                }
                Read::Head | Read::Stopped => return Ok(consumed),
            }
        }
    }

    fn count_response(&mut self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.stats.responses[class] += 1;
        self.log.status = status;
    }

    /// Takes back the count of an answer that was replaced by a refusal before it started.
    fn uncount_response(&mut self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.stats.responses[class] = self.stats.responses[class].saturating_sub(1);
    }

    /// Queues an error response; nothing more is read.
    fn refuse(&mut self, app: &App, status: u16) {
        self.read = Read::Stopped;
        self.deferred = None;
        self.close_after = true;
        self.count_response(status);
        let id = app.status_response(status);
        self.writer.start(
            app,
            Handler::Static(id),
            false,
            ConnHeader::Close,
            false,
            Framing::None,
        );
    }

    /// Closes now, cutting any response in progress. `totals`: the connection's bytes so far
    /// (for the access-log record of an answer that was under way).
    fn abort(&mut self, now: Instant, totals: (u64, u64)) {
        if self.writer.active() {
            self.stats.aborted += 1;
        }
        self.log.finish(now, false, totals);
        self.writer.phase = Phase::Idle;
        self.read = Read::Stopped;
        self.closed = true;
    }

    /// Input EOF: no input beyond what the last `process` call saw. Requests already complete
    /// in that input are still answered (call `process` again if it was stopped by output
    /// space); anything incomplete is dropped and the connection closes.
    pub fn peer_closed(&mut self, now: Instant) {
        self.eof = true;
        if !self.closed && !self.blocked_on_output && !self.awaits_upstream() {
            self.abort(now, (self.stats.bytes_in, self.stats.bytes_out));
        }
    }

    /// The gateway is shutting down (RFC 9112 §9.6): the response in progress, or the next
    /// one if a request is being read or has not come yet, carries `Connection: close` and
    /// ends the connection; a connection idle between requests closes now (quietly, as at
    /// its idle timeout: a client must be ready for that on a persistent connection). A
    /// connection that has not sent its first request yet is given the chance to.
    pub fn begin_drain(&mut self) {
        self.draining = true;
        if self.closed {
            return;
        }
        if let Some(d) = &mut self.deferred {
            // A body is being read; its answer has not started and can still say so.
            d.conn = ConnHeader::Close;
            self.close_after = true;
            return;
        }
        if self.upstream_wait.is_some() {
            // Forwarded once started, with `Connection: close` to the client (`draining`).
            return;
        }
        if self.writer.active() {
            // The response being written had its `Connection` header already; close after it.
            self.close_after = true;
            return;
        }
        if self.is_between_requests() && self.stats.requests > 0 {
            self.closed = true;
        }
    }

    /// True once nothing more will be written: close the transport after sending what
    /// `process` has produced.
    pub fn wants_close(&self) -> bool {
        self.closed
    }

    /// The next instant at which `handle_timeout` has work: the header deadline while a head
    /// is incomplete, the idle deadline between requests or while a body stalls. `None` while
    /// waiting for output space (the transport's timers cover a peer that stops reading).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed || self.blocked_on_output || self.pending_408 {
            return None;
        }
        if self.is_forwarding() || self.upstream_wait.is_some() {
            // The exchange's timers (connect, send, read, idle) govern a forwarded request.
            return None;
        }
        if self.writer.active() {
            // Only an echo waits for input while writing.
            return Some(self.last_input + self.limits.idle_timeout);
        }
        match self.read {
            Read::Head => match self.head_started {
                Some(t) => Some(t + self.limits.header_timeout),
                None => self.idle_since.map(|t| t + self.limits.idle_timeout),
            },
            Read::Length { .. } | Read::Chunked { .. } => {
                Some(self.last_input + self.limits.idle_timeout)
            }
            Read::Stopped => None,
        }
    }

    /// Header timeout, or a body stalled before its answer started: queue 408 and close (call
    /// `process` to collect it). Idle timeout: close quietly. An `/echo` body stalled after the
    /// answer started: close (the answer is cut).
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if now < deadline {
            return;
        }
        if !self.writer.active() && self.read == Read::Head {
            if self.head_started.take().is_some() {
                self.stats.header_timeouts += 1;
                self.refuse_timeout();
                return;
            }
            self.stats.idle_timeouts += 1;
            self.closed = true;
            return;
        }
        if let Some(d) = self.deferred.take() {
            // A body stalled before its answer started: 408 instead of the answer.
            self.uncount_response(d.status);
            self.stats.body_timeouts += 1;
            self.refuse_timeout();
            return;
        }
        self.stats.body_timeouts += 1;
        self.abort(now, (self.stats.bytes_in, self.stats.bytes_out));
    }

    fn refuse_timeout(&mut self) {
        // The App (for the Date and the response bytes) is not at hand here: the 408 starts
        // at the next `process`.
        self.read = Read::Stopped;
        self.close_after = true;
        self.pending_408 = true;
    }
}

#[cfg(test)]
mod tests;
