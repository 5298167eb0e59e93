//! One proxied request over one upstream connection, sans-IO: the glue between the head the
//! upstream gets ([`forward`](super::forward)), the response it sends back
//! ([`response`](super::response)) and the balancer's verdict
//! ([`balance::Outcome`]). The caller owns both connections (the
//! client's on the server side, the upstream's over io_uring) and their buffers; an
//! [`Exchange`] says which bytes to send where, when to wake up, and how the request ended.
//!
//! Call order, quinn-proto style (time is passed in, nothing here reads a clock):
//!
//! 1. Write the forwarded request head into the upstream send buffer
//!    (`ForwardRules::write_head`), then [`Exchange::new`]. It starts `Connecting` unless the
//!    spec says the connection is a reused pooled one.
//! 2. Report the connection's events as they happen: [`Exchange::connected`],
//!    [`Exchange::connect_failed`], [`Exchange::upstream_reset`],
//!    [`Exchange::upstream_closed`] (EOF, once every received byte was offered to
//!    [`Exchange::upstream_data`] and it consumed what it will).
//! 3. The request body: while [`Exchange::may_send_body`], hand the client's decoded body to
//!    [`Exchange::send_body`], which writes it framed for the upstream into the caller's send
//!    buffer as room allows, then [`Exchange::finish_body`].
//! 4. The response: offer the unconsumed upstream bytes and the free client send buffer to
//!    [`Exchange::upstream_data`] whenever either grows (after `upstream_closed`, with empty
//!    input, to write the chunked body's end).
//! 5. Wake at [`Exchange::poll_timeout`] and call [`Exchange::handle_timeout`].
//! 6. After every call, [`Exchange::end`]: `Some` once the exchange is over, with what the
//!    client gets, whether the upstream connection can be pooled, whether the request may go
//!    to another server, and [`Exchange::balance_outcome`] for the pool.
//!
//! Rules, and the decisions taken where the RFCs or the issue leave room:
//!
//! - A failure before the client's final head is written is a 502 (connect failure, reset,
//!   close, bad head) or a 504 (a timeout) for the client ([`ClientAction::Respond`]); after
//!   it, the client's stream is aborted ([`ClientAction::Abort`]): the caller closes the client
//!   connection without the chunked terminator or short of its Content-Length, so a cut body
//!   never looks complete. A forwarded interim 1xx does not prevent a final 502: a final
//!   response may follow any number of interim ones (RFC 9110 §15.2).
//! - Retry (issue 13): only an idempotent request (RFC 9110 §9.2.2), only when no byte of a
//!   response arrived, and only after a connect failure or timeout, or a reset or close before
//!   any response byte (the classic case: a pooled connection the upstream closed meanwhile).
//!   A timeout waiting for the response is not retried: the request may have been processed.
//!   A retry needs the request body again: the caller keeps what it handed to `send_body` or
//!   does not retry a request with a body.
//! - For the balancer, a connect failure, a timeout, a reset, a close before the response's
//!   end and an unusable response are `Failed`; a 5xx from the upstream is `Ok`: the server
//!   is reachable and speaks HTTP, and its 5xx is the application's answer, passed on to the
//!   client (nginx, too, only counts `http_5xx` as a failure when configured to).
//! - Interim responses (RFC 9110 §15.2): every 1xx goes to an HTTP/1.1 client (a proxy MUST
//!   forward those it did not ask for itself, and the gateway never adds an Expect), none to
//!   an HTTP/1.0 client (a server MUST NOT send one); `101` is refused by `parse_head` (502).
//!   The read timer, which interim responses do not extend, bounds how many can come.
//! - `Expect: 100-continue` (RFC 9110 §10.1.1): the body waits for the upstream's 100 or until
//!   the `expect_continue` timer after the connection is up; a final status before either
//!   means the body is never sent (and the upstream connection is not pooled).
//! - The client's framing: the upstream's Content-Length when it sent one; a chunked or
//!   close-delimited body is re-chunked for an HTTP/1.1 client and sent close-delimited to an
//!   HTTP/1.0 one (RFC 9112 §6.1: never Transfer-Encoding to 1.0); no body for HEAD, 1xx, 204,
//!   304. The client's connection closes after the response when the caller said so or when
//!   the body is close-delimited.
//! - The client's head is written whole or not at all (a head is never split from its first
//!   byte across calls: it is generated from the upstream head, which stays in the caller's
//!   buffer, unconsumed, until it is). [`Progress::room_needed`] says how much free room
//!   guarantees it fits. A re-framed chunk's size line is written only with at least one byte
//!   of its data, and the chunk is exactly the data written with it; its CRLF and the last
//!   chunk may go out a byte at a time.
//! - Timers: `connect` from `new`; `send` while the request body is not finished after the
//!   connection is up, restarted by each body byte written (a stalled client body shows here
//!   too: the server side's client timeouts should be shorter); `read` from the request's end
//!   to the final head's end (interim responses do not extend it); `idle` once the final head
//!   is in, restarted by every `upstream_data` with input (bytes waiting for client room show
//!   the upstream is not silent). "The request's end" is when the caller finished the body (or
//!   the connection came up, for a request without one).
//! - The upstream connection is reusable only after a complete response to a completely sent
//!   request, with keep-alive by the head (RFC 9112 §9.3), no EOF or reset, and no byte past
//!   the response's end (an upstream may not send what was not asked for).
//!
//! Nothing here allocates: the upstream head is parsed into header slots on the stack, body
//! bytes are copied between the caller's slices, and the state is a few words.

use super::balance;
use super::forward::BodyFraming;
use super::response::{
    parse_head, write_chunk_start, write_client_head, BodyError, ClientConnection, ClientFraming,
    ClientHead, ClientHeadError, ClientHeadRules, HeadParse, HeaderSlots, RequestKind,
    ResponseBody, ResponseError, ResponseFraming, UpstreamHead, UpstreamLimits, CHUNK_END,
    LAST_CHUNK,
};
use crate::time::{Duration, Instant};

/// RFC 9110 §9.2.2: the methods whose intended effect is the same however often they are
/// sent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE). Method names are case-sensitive (§9.1).
pub fn is_idempotent(method: &[u8]) -> bool {
    matches!(
        method,
        b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
    )
}

/// How long each wait of an exchange may last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From [`Exchange::new`] to the connection being up.
    pub connect: Duration,
    /// Between two request body writes, until the body is finished.
    pub send: Duration,
    /// From the request's end to the final response head's end.
    pub read: Duration,
    /// Between two received bytes of the response body.
    pub idle: Duration,
    /// How long the body waits for `100 Continue` once the connection is up.
    pub expect_continue: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            send: Duration::from_secs(60),
            read: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            expect_continue: Duration::from_secs(1),
        }
    }
}

/// What the caller knows of the request when it starts the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeSpec {
    /// HEAD or not: a response to HEAD has no body (RFC 9112 §6.3 rule 1).
    pub request: RequestKind,
    /// The client's `HTTP/1.x`: 0 or 1.
    pub client_version_minor: u8,
    /// The server side's decision: the client connection stays open after this response.
    pub client_keep_alive: bool,
    /// The client sent `Expect: 100-continue` (and it was forwarded).
    pub expect_continue: bool,
    /// [`is_idempotent`] of the method: only then may a failed exchange be retried.
    pub idempotent: bool,
    /// The request body's framing as the forwarded head announced it.
    pub body: BodyFraming,
    pub limits: UpstreamLimits,
    pub timeouts: Timeouts,
    /// The upstream connection is a pooled one, already up: no connect phase.
    pub reused_connection: bool,
    /// The gateway's clock as an IMF-fixdate when the request was forwarded, for a response
    /// that comes without `Date` (RFC 9110 §6.6.1: a recipient with a clock MUST add one;
    /// the second the request left stands for the one the answer came, as a Date's
    /// one-second grain allows); `None`: no clock.
    pub date: Option<[u8; crate::app::IMF_FIXDATE_LEN]>,
}

/// What one call did with the caller's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Bytes taken from the start of the input; the caller drops them.
    pub consumed: usize,
    /// Bytes written at the start of the output; the caller sends them.
    pub produced: usize,
    /// The call stopped for want of output room (the client's buffer for `upstream_data`, the
    /// upstream's for `send_body`): with at least this many free bytes the next call goes on.
    /// `None` when it stopped for want of input (or the exchange is over).
    pub room_needed: Option<usize>,
}

/// The status the gateway answers the client with when the upstream failed before the
/// client's head went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayStatus {
    /// 502: the upstream could not be reached, reset, closed or answered badly.
    BadGateway,
    /// 504: the upstream did not answer in time.
    GatewayTimeout,
}

impl GatewayStatus {
    pub fn code(self) -> u16 {
        match self {
            GatewayStatus::BadGateway => 502,
            GatewayStatus::GatewayTimeout => 504,
        }
    }
}

/// What the client gets after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAction {
    /// Nothing of the final response went out: the caller answers with this status.
    Respond(GatewayStatus),
    /// The client's head went out: the caller closes the client connection without a clean
    /// end of the body.
    Abort,
}

/// Why an exchange failed; each one feeds a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FailureCause {
    #[error("the upstream connection could not be made")]
    ConnectFailed,
    #[error("the upstream connection was not up within the connect timeout")]
    ConnectTimeout,
    #[error("the request body was not sent within the send timeout")]
    SendTimeout,
    #[error("no response head within the read timeout")]
    ReadTimeout,
    #[error("the response body stalled past the idle timeout")]
    IdleTimeout,
    #[error("the upstream reset the connection")]
    Reset,
    #[error("the upstream closed before the response was complete")]
    Closed,
    #[error("bad response head: {0}")]
    BadHead(ResponseError),
    #[error("bad response body: {0}")]
    BadBody(BodyError),
    #[error("the client's head: {0}")]
    ClientHead(ClientHeadError),
}

impl FailureCause {
    fn is_timeout(self) -> bool {
        matches!(
            self,
            FailureCause::ConnectTimeout
                | FailureCause::SendTimeout
                | FailureCause::ReadTimeout
                | FailureCause::IdleTimeout
        )
    }
}

/// A failed exchange: why, what the client gets, and whether the request may go to another
/// server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub cause: FailureCause,
    pub client: ClientAction,
    pub retryable: bool,
}

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The response reached the client whole.
    Done {
        upstream_reusable: bool,
    },
    Failed(Failure),
}

/// Why the request body was refused; nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestBodyError {
    #[error("the request has no body")]
    NoBody,
    #[error("more body than the announced Content-Length")]
    LongerThanAnnounced,
    #[error("the body ended short of the announced Content-Length")]
    ShorterThanAnnounced,
    #[error("the body was already finished")]
    Finished,
    #[error("the body waits for 100 Continue or the connection")]
    NotYet,
    #[error("the upstream's final response came first: the body is not sent")]
    Answered,
    #[error("the exchange is over")]
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Connect,
    Send,
    Read,
    Idle,
    ExpectContinue,
}

const TIMER_COUNT: usize = 5;

/// One deadline per [`Timer`]; the next wake-up is one `min`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct TimerTable([Option<Instant>; TIMER_COUNT]);

impl TimerTable {
    fn set(&mut self, t: Timer, at: Instant) {
        self.0[t as usize] = Some(at);
    }
    fn stop(&mut self, t: Timer) {
        self.0[t as usize] = None;
    }
    fn expired(&self, t: Timer, now: Instant) -> bool {
        self.0[t as usize].is_some_and(|at| at <= now)
    }
    fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
}

/// The request body's state as the upstream gets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestBody {
    Length {
        remaining: u64,
    },
    Chunked,
    /// Every byte (and the last chunk) handed to the caller, or no body at all.
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Response {
    /// No final head yet (interim ones may have come and gone).
    AwaitingHead,
    /// The client's head is out; the body streams.
    Body {
        body: ResponseBody,
        client: ClientFraming,
    },
}

/// One proxied request over one upstream connection (see the module doc for the call order).
#[derive(Debug, Clone)]
pub struct Exchange {
    spec: ExchangeSpec,
    timers: TimerTable,
    connected: bool,
    request: RequestBody,
    response: Response,
    /// The unwritten rest of a chunk's CRLF or of the last chunk, written before anything else.
    pending: &'static [u8],
    last_chunk_queued: bool,
    /// The upstream's `100 Continue` arrived, or the wait for it is over.
    continue_released: bool,
    /// The client's final head was returned by a successful `upstream_data`: a failure from
    /// then on aborts the client's stream.
    client_head_out: bool,
    /// A byte of a response (interim or final) arrived: from then on nothing is retried.
    response_byte: bool,
    upstream_keep_alive: bool,
    upstream_eof: bool,
    upstream_reset: bool,
    status: Option<u16>,
    connected_at: Option<Instant>,
    request_sent_at: Option<Instant>,
    head_at: Option<Instant>,
    bytes_to_upstream: u64,
    bytes_to_client: u64,
    end: Option<End>,
}

/// Free room that always holds the client's head written from an upstream head of `head_len`
/// bytes: each line grows by at most its CR and a space after the colon (each at least 3
/// bytes: at most doubled), a coding list by its `", "` separators (doubled at most), plus the
/// lines written anew (a standard reason of at most 32 bytes, a 38-byte Content-Length or
/// `", chunked"`, a 24-byte Connection, `Via: 1.1 `, the name and the last CRLF, the route's
/// fields set, and the
/// 37-byte `Date` line the gateway adds when the upstream sent none).
fn client_head_room(head_len: usize, rules: ClientHeadRules<'_>, date: bool) -> usize {
    const DATE_LINE: usize = "Date: \r\n".len() + crate::app::IMF_FIXDATE_LEN;
    2 * head_len
        + 128
        + rules.via().as_bytes().len()
        + rules.added_len()
        + if date { DATE_LINE } else { 0 }
}

/// Hex digits of a chunk size.
fn hex_digits(n: usize) -> usize {
    (usize::BITS - n.leading_zeros()).div_ceil(4).max(1) as usize
}

/// The most data a re-framed chunk can carry in `room` bytes, its size line included (its
/// CRLF may follow later): zero when not even a one-byte chunk fits.
fn chunk_data_room(room: usize) -> usize {
    if room < 4 {
        return 0; // "1\r\n" and one byte
    }
    let mut data = room - 3;
    // Each step lowers the need by one; the first guess overshoots by at most 15 digits.
    while hex_digits(data) + 2 + data > room {
        data -= 1;
    }
    data
}

enum HeadStep {
    /// The head is not complete: nothing consumed.
    Partial,
    /// The client's head needs this much free room.
    Blocked(usize),
    Took {
        consumed: usize,
        produced: usize,
    },
}

impl Exchange {
    /// Starts the exchange once the forwarded head is in the upstream send buffer.
    pub fn new(now: Instant, spec: ExchangeSpec) -> Self {
        let request = match spec.body {
            BodyFraming::None | BodyFraming::Length(0) => RequestBody::Finished,
            BodyFraming::Length(n) => RequestBody::Length { remaining: n },
            BodyFraming::Chunked => RequestBody::Chunked,
        };
        let mut ex = Exchange {
            spec,
            timers: TimerTable::default(),
            connected: false,
            request,
            response: Response::AwaitingHead,
            pending: &[],
            last_chunk_queued: false,
            continue_released: !spec.expect_continue || request == RequestBody::Finished,
            client_head_out: false,
            response_byte: false,
            upstream_keep_alive: false,
            upstream_eof: false,
            upstream_reset: false,
            status: None,
            connected_at: None,
            request_sent_at: None,
            head_at: None,
            bytes_to_upstream: 0,
            bytes_to_client: 0,
            end: None,
        };
        if spec.reused_connection {
            ex.on_connected(now);
        } else {
            ex.timers.set(Timer::Connect, now + spec.timeouts.connect);
        }
        ex
    }

    /// The upstream connection is up.
    pub fn connected(&mut self, now: Instant) {
        if self.end.is_none() && !self.connected {
            self.on_connected(now);
        }
    }

    fn on_connected(&mut self, now: Instant) {
        self.connected = true;
        self.connected_at = Some(now);
        self.timers.stop(Timer::Connect);
        if self.request == RequestBody::Finished {
            self.request_sent(now);
        } else {
            self.timers.set(Timer::Send, now + self.spec.timeouts.send);
            if !self.continue_released {
                let at = now + self.spec.timeouts.expect_continue;
                self.timers.set(Timer::ExpectContinue, at);
            }
        }
    }

    fn request_sent(&mut self, now: Instant) {
        self.timers.stop(Timer::Send);
        self.timers.stop(Timer::ExpectContinue);
        if self.connected && self.request_sent_at.is_none() {
            self.request_sent_at = Some(now);
            if self.response == Response::AwaitingHead {
                self.timers.set(Timer::Read, now + self.spec.timeouts.read);
            }
        }
    }

    /// The connection attempt failed (refused, unreachable).
    pub fn connect_failed(&mut self, _now: Instant) {
        if self.end.is_none() && !self.connected {
            self.fail(FailureCause::ConnectFailed);
        }
    }

    /// The upstream reset the connection (or any error that ends it abruptly).
    pub fn upstream_reset(&mut self, _now: Instant) {
        if self.end.is_some() {
            return;
        }
        self.upstream_reset = true;
        match self.response {
            _ if !self.connected => {
                self.fail(FailureCause::ConnectFailed);
            }
            // The response's bytes are all in: the client still gets them whole.
            Response::Body { body, .. } if body.is_complete() => {}
            _ => {
                self.fail(FailureCause::Reset);
            }
        }
    }

    /// The upstream closed its side (EOF), after every byte it sent was offered to
    /// [`Exchange::upstream_data`] and it consumed what it will. A close-delimited body ends
    /// here; its client end (a chunked body's last chunk) is written by the next
    /// `upstream_data`, with empty input.
    pub fn upstream_closed(&mut self, _now: Instant) {
        if self.end.is_some() {
            return;
        }
        self.upstream_eof = true;
        if !self.connected {
            self.fail(FailureCause::ConnectFailed);
            return;
        }
        let Response::Body { mut body, client } = self.response else {
            self.fail(FailureCause::Closed);
            return;
        };
        let closed = body.peer_closed();
        self.response = Response::Body { body, client };
        match closed {
            Err(e) => {
                self.fail(FailureCause::BadBody(e));
            }
            Ok(()) => {
                self.timers.stop(Timer::Idle);
                if self.body_flushed() {
                    self.finish_response(false);
                }
            }
        }
    }

    /// Whether the caller may hand request body bytes to [`Exchange::send_body`] now: the
    /// connection is up, the body is not finished, no final response came first, and any
    /// `Expect: 100-continue` was answered or waited for long enough.
    pub fn may_send_body(&self, now: Instant) -> bool {
        self.end.is_none()
            && self.connected
            && self.request != RequestBody::Finished
            && self.response == Response::AwaitingHead
            && (self.continue_released || self.timers.expired(Timer::ExpectContinue, now))
    }

    fn check_body_allowed(&mut self, now: Instant) -> Result<(), RequestBodyError> {
        if self.end.is_some() {
            return Err(RequestBodyError::Ended);
        }
        if self.request == RequestBody::Finished {
            let bodiless = matches!(self.spec.body, BodyFraming::None | BodyFraming::Length(0));
            return Err(if bodiless {
                RequestBodyError::NoBody
            } else {
                RequestBodyError::Finished
            });
        }
        if self.response != Response::AwaitingHead {
            return Err(RequestBodyError::Answered);
        }
        if !self.may_send_body(now) {
            return Err(RequestBodyError::NotYet);
        }
        self.continue_released = true;
        Ok(())
    }

    /// Writes as much of the client's decoded body `data` as `upstream_out` holds, framed as
    /// the forwarded head announced: copied for a Content-Length, one chunk (size line, data,
    /// CRLF) for chunked. More than the announced length is refused whole.
    pub fn send_body(
        &mut self,
        now: Instant,
        data: &[u8],
        upstream_out: &mut [u8],
    ) -> Result<Progress, RequestBodyError> {
        self.check_body_allowed(now)?;
        let (consumed, produced) = match &mut self.request {
            RequestBody::Finished => return Err(RequestBodyError::Finished),
            RequestBody::Length { remaining } => {
                if data.len() as u64 > *remaining {
                    return Err(RequestBodyError::LongerThanAnnounced);
                }
                let n = data.len().min(upstream_out.len());
                upstream_out[..n].copy_from_slice(&data[..n]);
                *remaining -= n as u64;
                (n, n)
            }
            RequestBody::Chunked => {
                // A whole chunk or nothing: the request direction keeps no partial chunk.
                let n = data.len().min(chunk_data_room(
                    upstream_out.len().saturating_sub(CHUNK_END.len()),
                ));
                match write_chunk_start(n as u64, upstream_out) {
                    Some(line) if n > 0 => {
                        upstream_out[line..line + n].copy_from_slice(&data[..n]);
                        let end = line + n + CHUNK_END.len();
                        upstream_out[line + n..end].copy_from_slice(CHUNK_END);
                        (n, end)
                    }
                    _ => (0, 0),
                }
            }
        };
        if produced > 0 {
            self.bytes_to_upstream += produced as u64;
            self.timers.set(Timer::Send, now + self.spec.timeouts.send);
        }
        let room_needed = (consumed < data.len()).then_some(match self.request {
            RequestBody::Chunked => 4 + CHUNK_END.len(),
            _ => 1,
        });
        Ok(Progress {
            consumed,
            produced,
            room_needed,
        })
    }

    /// The client's body is complete: checks a Content-Length was met, and for chunked writes
    /// the last chunk into `upstream_out`. Returns the bytes written; `Ok(None)` when the last
    /// chunk does not fit yet (call again with more room).
    pub fn finish_body(
        &mut self,
        now: Instant,
        upstream_out: &mut [u8],
    ) -> Result<Option<usize>, RequestBodyError> {
        self.check_body_allowed(now)?;
        let written = match self.request {
            RequestBody::Finished => return Err(RequestBodyError::Finished),
            RequestBody::Length { remaining } if remaining > 0 => {
                return Err(RequestBodyError::ShorterThanAnnounced)
            }
            RequestBody::Length { .. } => 0,
            RequestBody::Chunked => match upstream_out.get_mut(..LAST_CHUNK.len()) {
                None => return Ok(None),
                Some(dst) => {
                    dst.copy_from_slice(LAST_CHUNK);
                    LAST_CHUNK.len()
                }
            },
        };
        self.bytes_to_upstream += written as u64;
        self.request = RequestBody::Finished;
        self.request_sent(now);
        Ok(Some(written))
    }

    /// Takes what it can of the upstream's bytes `input` (the unconsumed ones, contiguous from
    /// the first byte of the response head while it is incomplete) and writes the client's
    /// bytes into `client_out`. `rules` are the route's changes to the client's head (its
    /// `Via` pseudonym, the fields it sets and removes): passed per call rather than kept, so an exchange borrows nothing and lives in its connection's
    /// slot like the rest of the connection's state. On `Err`, what this call wrote to `client_out` is not sent:
    /// the client gets the failure's [`ClientAction`] (a 502 if the final head was written
    /// by this very call).
    pub fn upstream_data(
        &mut self,
        now: Instant,
        input: &[u8],
        client_out: &mut [u8],
        rules: ClientHeadRules<'_>,
    ) -> Result<Progress, Failure> {
        match self.end {
            Some(End::Failed(f)) => return Err(f),
            Some(End::Done { .. }) => return Ok(Progress::default()),
            None => {}
        }
        if !input.is_empty() {
            // Bytes waiting for client room count too: the upstream is not silent, the wait
            // is the client's (the server side's send timeout watches that).
            self.response_byte = true;
            if matches!(self.response, Response::Body { .. }) {
                self.timers.set(Timer::Idle, now + self.spec.timeouts.idle);
            }
        }
        let mut p = Progress::default();
        let result = loop {
            match self.response {
                Response::AwaitingHead => {
                    let step = self.take_head(
                        now,
                        &input[p.consumed..],
                        &mut client_out[p.produced..],
                        rules,
                    );
                    match step {
                        Err(cause) => break Err(cause),
                        Ok(HeadStep::Partial) => break Ok(()),
                        Ok(HeadStep::Blocked(room)) => {
                            p.room_needed = Some(room);
                            break Ok(());
                        }
                        Ok(HeadStep::Took { consumed, produced }) => {
                            p.consumed += consumed;
                            p.produced += produced;
                        }
                    }
                }
                Response::Body { .. } => break self.stream_body(input, client_out, &mut p),
            }
        };
        match result {
            Err(cause) => Err(self.fail(cause)),
            Ok(()) => {
                self.bytes_to_client += p.produced as u64;
                self.client_head_out = matches!(self.response, Response::Body { .. });
                if self.end.is_none() && self.body_flushed() {
                    self.finish_response(p.consumed < input.len());
                }
                Ok(p)
            }
        }
    }

    /// Parses one head at the start of `input`: an interim one is forwarded or dropped, the
    /// final one becomes the client's head and starts the body.
    fn take_head(
        &mut self,
        now: Instant,
        input: &[u8],
        out: &mut [u8],
        rules: ClientHeadRules<'_>,
    ) -> Result<HeadStep, FailureCause> {
        let mut slots = HeaderSlots::new();
        let head = match parse_head(input, self.spec.request, &self.spec.limits, &mut slots) {
            Err(e) => return Err(FailureCause::BadHead(e)),
            Ok(HeadParse::Partial) => return Ok(HeadStep::Partial),
            Ok(HeadParse::Complete(head)) => head,
        };
        let http11_client = self.spec.client_version_minor >= 1;
        if head.is_interim() {
            // RFC 9110 §15.2: a proxy MUST forward 1xx responses unless it asked for them
            // itself (the gateway never adds an Expect), and MUST NOT send one to an
            // HTTP/1.0 client. The read timer bounds how many an upstream can send.
            let forward = http11_client;
            let produced = if forward {
                let client = ClientHead {
                    framing: ClientFraming::None,
                    connection: ClientConnection::Persistent,
                    rules,
                    date: self.spec.date.as_ref().map(|d| &d[..]),
                };
                match self.write_head(&head, &client, out, rules)? {
                    Some(n) => n,
                    None => return Ok(HeadStep::Blocked(self.head_room(&head, rules))),
                }
            } else {
                0
            };
            if head.status == 100 {
                self.continue_released = true;
                self.timers.stop(Timer::ExpectContinue);
            }
            return Ok(HeadStep::Took {
                consumed: head.head_len,
                produced,
            });
        }
        let framing = match head.framing {
            ResponseFraming::None => ClientFraming::None,
            ResponseFraming::Length(n) => ClientFraming::Length(n),
            ResponseFraming::Chunked | ResponseFraming::UntilClose if http11_client => {
                ClientFraming::Chunked
            }
            ResponseFraming::Chunked | ResponseFraming::UntilClose => ClientFraming::Close,
        };
        let connection = match (self.spec.client_keep_alive, http11_client) {
            (false, _) => ClientConnection::Close,
            (true, true) => ClientConnection::Persistent,
            (true, false) => ClientConnection::KeepAlive10,
        };
        let client = ClientHead {
            framing,
            connection,
            rules,
            date: self.spec.date.as_ref().map(|d| &d[..]),
        };
        let Some(produced) = self.write_head(&head, &client, out, rules)? else {
            return Ok(HeadStep::Blocked(self.head_room(&head, rules)));
        };
        self.status = Some(head.status);
        self.upstream_keep_alive = head.upstream_keep_alive;
        self.head_at = Some(now);
        self.response = Response::Body {
            body: ResponseBody::new(head.framing, &self.spec.limits),
            client: framing,
        };
        // The response governs from here: a body not yet sent (an early answer, or a final
        // status instead of 100 Continue) is not sent at all.
        self.timers.stop(Timer::Read);
        self.timers.stop(Timer::Send);
        self.timers.stop(Timer::ExpectContinue);
        self.timers.set(Timer::Idle, now + self.spec.timeouts.idle);
        Ok(HeadStep::Took {
            consumed: head.head_len,
            produced,
        })
    }

    fn head_room(&self, head: &UpstreamHead<'_, '_>, rules: ClientHeadRules<'_>) -> usize {
        client_head_room(head.head_len, rules, self.spec.date.is_some())
    }

    /// `Ok(None)`: the head does not fit `out` now, but fits the room [`client_head_room`]
    /// promises.
    fn write_head(
        &self,
        head: &UpstreamHead<'_, '_>,
        client: &ClientHead<'_>,
        out: &mut [u8],
        rules: ClientHeadRules<'_>,
    ) -> Result<Option<usize>, FailureCause> {
        match write_client_head(head, client, out) {
            Ok(n) => Ok(Some(n)),
            Err(ClientHeadError::HeadTooLarge) if out.len() < self.head_room(head, rules) => {
                Ok(None)
            }
            Err(e) => Err(FailureCause::ClientHead(e)),
        }
    }

    /// Streams body bytes from `input[p.consumed..]` into `out[p.produced..]` until one runs
    /// out or the client's body is complete.
    fn stream_body(
        &mut self,
        input: &[u8],
        out: &mut [u8],
        p: &mut Progress,
    ) -> Result<(), FailureCause> {
        let Response::Body { mut body, client } = self.response else {
            return Ok(());
        };
        let chunked = client == ClientFraming::Chunked;
        // Each round writes or consumes at least one byte, or returns: bounded by the buffers.
        let result = loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(out.len() - p.produced);
                out[p.produced..p.produced + n].copy_from_slice(&self.pending[..n]);
                self.pending = &self.pending[n..];
                p.produced += n;
                if !self.pending.is_empty() {
                    p.room_needed = Some(1);
                    break Ok(());
                }
                continue;
            }
            if body.is_complete() {
                if chunked && !self.last_chunk_queued {
                    self.last_chunk_queued = true;
                    self.pending = LAST_CHUNK;
                    continue;
                }
                break Ok(());
            }
            let rest = &input[p.consumed..];
            if rest.is_empty() {
                break Ok(());
            }
            let room = out.len() - p.produced;
            let data_room = if chunked { chunk_data_room(room) } else { room };
            if data_room == 0 {
                p.room_needed = Some(if chunked { 4 } else { 1 });
                break Ok(());
            }
            // The decoder is given no more than the client can take: the data it hands out
            // is then written whole, and its state never runs ahead of the client's bytes.
            let window = &rest[..rest.len().min(data_room)];
            let step = match body.advance(window) {
                Ok(step) => step,
                Err(e) => break Err(FailureCause::BadBody(e)),
            };
            let data = &window[step.framing..step.framing + step.data];
            p.consumed += step.framing + step.data;
            if !data.is_empty() {
                if chunked {
                    // `data_room` left space for the size line of any chunk up to its size.
                    let mut line = [0u8; 18];
                    let n = write_chunk_start(data.len() as u64, &mut line).unwrap_or(0);
                    out[p.produced..p.produced + n].copy_from_slice(&line[..n]);
                    p.produced += n;
                    self.pending = CHUNK_END;
                }
                out[p.produced..p.produced + data.len()].copy_from_slice(data);
                p.produced += data.len();
            }
        };
        self.response = Response::Body { body, client };
        result
    }

    /// The upstream's body is complete and every client byte of it written.
    fn body_flushed(&self) -> bool {
        match self.response {
            Response::AwaitingHead => false,
            Response::Body { body, client } => {
                body.is_complete()
                    && self.pending.is_empty()
                    && (client != ClientFraming::Chunked || self.last_chunk_queued)
            }
        }
    }

    fn finish_response(&mut self, bytes_past_end: bool) {
        let upstream_reusable = self.upstream_keep_alive
            && self.request == RequestBody::Finished
            && self.request_sent_at.is_some()
            && !self.upstream_eof
            && !self.upstream_reset
            && !bytes_past_end;
        self.timers = TimerTable::default();
        self.end = Some(End::Done { upstream_reusable });
    }

    fn fail(&mut self, cause: FailureCause) -> Failure {
        // A head written by the failing call itself is dropped with that call's output.
        let client = if self.client_head_out {
            ClientAction::Abort
        } else if cause.is_timeout() {
            ClientAction::Respond(GatewayStatus::GatewayTimeout)
        } else {
            ClientAction::Respond(GatewayStatus::BadGateway)
        };
        let before_any_response = matches!(
            cause,
            FailureCause::ConnectFailed
                | FailureCause::ConnectTimeout
                | FailureCause::Reset
                | FailureCause::Closed
        );
        let failure = Failure {
            cause,
            client,
            retryable: self.spec.idempotent && !self.response_byte && before_any_response,
        };
        self.timers = TimerTable::default();
        self.end = Some(End::Failed(failure));
        failure
    }

    /// The next instant [`Exchange::handle_timeout`] wants to be called, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Acts on every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.end.is_some() {
            return;
        }
        if self.timers.expired(Timer::ExpectContinue, now) {
            // RFC 9110 §10.1.1: the body may go without waiting any longer for 100.
            self.timers.stop(Timer::ExpectContinue);
            self.continue_released = true;
        }
        let causes = [
            (Timer::Connect, FailureCause::ConnectTimeout),
            (Timer::Send, FailureCause::SendTimeout),
            (Timer::Read, FailureCause::ReadTimeout),
            (Timer::Idle, FailureCause::IdleTimeout),
        ];
        if let Some((_, cause)) = causes.iter().find(|(t, _)| self.timers.expired(*t, now)) {
            self.fail(*cause);
        }
    }

    /// What the exchange was started with: a retry on another server starts a new exchange
    /// from the same spec (with its own `reused_connection`).
    pub fn spec(&self) -> &ExchangeSpec {
        &self.spec
    }

    /// `Some` once the exchange is over.
    pub fn end(&self) -> Option<End> {
        self.end
    }

    /// The pool's view of the server once the exchange is over (see the module doc: a 5xx is
    /// `Ok`).
    pub fn balance_outcome(&self) -> Option<balance::Outcome> {
        self.end.map(|end| match end {
            End::Done { .. } => balance::Outcome::Ok,
            End::Failed(_) => balance::Outcome::Failed,
        })
    }

    /// The final response's status, once its head is in.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Whether the client connection may carry another request after this response: the
    /// caller's decision, unless the body is close-delimited or the stream was aborted.
    pub fn client_keeps_connection(&self) -> bool {
        match (self.end, self.response) {
            (Some(End::Failed(f)), _) if f.client == ClientAction::Abort => false,
            (_, Response::Body { client, .. }) => {
                self.spec.client_keep_alive && client != ClientFraming::Close
            }
            _ => self.spec.client_keep_alive,
        }
    }

    /// Body bytes (framing included) written for the upstream; the head is the caller's.
    pub fn bytes_to_upstream(&self) -> u64 {
        self.bytes_to_upstream
    }

    /// Bytes written for the client: interim and final heads, body and its framing.
    pub fn bytes_to_client(&self) -> u64 {
        self.bytes_to_client
    }

    /// From the request's end (or the connection, when the head came before the body's end)
    /// to the final head's arrival.
    pub fn response_time(&self) -> Option<Duration> {
        let start = self.request_sent_at.or(self.connected_at)?;
        Some(self.head_at? - start)
    }
}

#[cfg(test)]
#[path = "exchange_tests.rs"]
mod tests;
