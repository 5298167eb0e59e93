//! HTTP over a reliable byte stream (a kernel TCP socket, with or without TLS), without the
//! I/O.
//!
//! [`StreamConn`] is one connection's HTTP side for a transport that delivers bytes in order
//! and takes bytes to send, and that can shut its write side: it owns the `HttpConn`, an input
//! buffer (unconsumed bytes, contiguous from index 0) and an output buffer (the next bytes to
//! send), both allocated once per slot and reused. The transport moves bytes and reports what
//! happened; the connection says what to do next. In quinn-proto's style:
//!
//! - input: [`StreamConn::handle_recv`] (bytes received into the transport's buffer), or
//!   [`StreamConn::recv_buffer`] then [`StreamConn::handle_recv_in_place`] (bytes received
//!   straight into the input buffer), [`StreamConn::handle_eof`], [`StreamConn::handle_sent`],
//!   [`StreamConn::handle_write_shut`], [`StreamConn::handle_timeout`], [`StreamConn::abort`];
//! - output: [`StreamConn::poll_transmit`] (bytes to send; one send at a time),
//!   [`StreamConn::wants_recv`], [`StreamConn::state`], [`StreamConn::poll_timeout`].
//!
//! After any input, call [`StreamConn::advance`] until it stops returning
//! [`Advance::Again`] (each call runs `HttpConn::process` at most once, so the owner can move
//! the connection to the current generation of answers in between), then act on the state:
//! `Finishing` (shut the write side), `Closed` / `Aborted` (close the transport), then send
//! what `poll_transmit` gives and receive if `wants_recv`.
//!
//! Backpressure: a receive is wanted only while the input buffer has room for a whole receive
//! (`recv_len`), so a peer that does not read its answers stops being read (TCP holds it back)
//! instead of growing a queue; and the output buffer is refilled only once the previous send
//! has completed.
//!
//! Lingering: when HTTP is done and everything is sent, the write side is shut (our FIN goes
//! after the queued bytes) and the connection reads and drops input until the peer's FIN or
//! the linger deadline: closing a socket with unread input makes the kernel reset the
//! connection and drop the end of the response still in its send buffer.
//!
//! Closing first: a server that receives `Connection: close` initiates the closure (RFC 9112
//! §9.6), and its FIN should leave right behind the response, before the client has read it
//! and closed on its own (else the client closes first and holds the TIME_WAIT). So
//! [`StreamConn::sending_last`] says when the bytes handed out are the connection's last: the
//! transport may then queue its write-side shutdown behind that send, and report it with
//! `handle_write_shut` whenever it completes, before or after `handle_sent`; the connection
//! then lingers without passing through `Finishing`.

use std::sync::Arc;

use crate::access::AccessLogIo;
use crate::app::App;
use crate::http::{HttpConn, HttpLimits, Progress};
use crate::sessions::{SendStall, Session};
use crate::time::{Duration, Instant};
use crate::tls::{TlsConn, TlsSettings, TlsThread};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Reading requests and writing responses.
    Open,
    /// HTTP is done and every byte was sent; the peer has not closed. The transport must shut
    /// its write side now and call [`StreamConn::handle_write_shut`] (or `abort` on failure).
    Finishing,
    /// Our FIN is queued; input is read and dropped until the peer's FIN or `until`.
    Lingering { until: Instant },
    /// Ended in order: the transport closes (what is queued still goes out).
    Closed,
    /// Cut: the transport cancels what is in flight and closes.
    Aborted(AbortReason),
}

/// Why a connection was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortReason {
    /// Unconsumed input filled the input buffer with the whole output buffer free: the
    /// peer's input can never fit (limits larger than the buffer).
    InputOverflow,
    /// The peer took none of the bytes waiting for it for the send limit (see `SendStall`).
    SendTimeout,
    /// The transport's decision: a reset, an I/O error, a shutdown deadline.
    Transport,
}

/// What one [`StreamConn::advance`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Advance {
    /// HTTP processed input and there is more to do: settle the connection, call again.
    Again,
    /// HTTP processed input; nothing more until I/O: settle, then act on the state.
    Processed,
    /// Nothing ran (a send is in flight or waits to be posted, lingering, or ended).
    Waiting,
}

/// Sizes a [`StreamConn`] is made with.
#[derive(Debug, Clone, Copy)]
pub struct StreamConfig {
    /// Bytes per receive: a receive is wanted only with this much room in the input buffer.
    pub recv_len: usize,
    /// The output buffer: the most one send carries.
    pub output_len: usize,
    /// How long to linger after our FIN (see the module documentation).
    pub linger: Duration,
}

/// One HTTP connection over a byte stream. See the module documentation.
pub struct StreamConn {
    http: HttpConn,
    state: Lifecycle,
    config: StreamConfig,
    /// Unconsumed input, contiguous from index 0.
    input: Box<[u8]>,
    in_len: usize,
    /// Where the receive into `recv_buffer` writes (`in_len` then; input consumed meanwhile
    /// moves `in_len` down, never into that region).
    recv_at: usize,
    /// Response bytes `out_pos..out_len` are still to be sent.
    output: Box<[u8]>,
    out_pos: usize,
    out_len: usize,
    /// `poll_transmit` handed out bytes whose `handle_sent` has not come.
    sending: bool,
    /// Bytes the transport reported sent: the send timeout's measure of progress.
    sent: u64,
    send_stall: SendStall,
    /// The peer sent FIN; `eof_told` once `HttpConn::peer_closed` has been called.
    eof: bool,
    eof_told: bool,
    /// The transport shut its write side behind the last bytes, before they were reported
    /// sent: linger as soon as they are.
    write_shut: bool,
    /// On a TLS port, the connection's TLS (idle otherwise): the input buffer then holds
    /// ciphertext, the output buffer records.
    tls: TlsConn,
}

impl Session for StreamConn {
    fn http(&self) -> &HttpConn {
        &self.http
    }
    fn http_mut(&mut self) -> &mut HttpConn {
        &mut self.http
    }
}

impl StreamConn {
    /// A closed connection with its output buffer; the input buffer comes with `open`.
    pub fn new(limits: HttpLimits, config: StreamConfig) -> Self {
        StreamConn {
            http: HttpConn::new(limits),
            state: Lifecycle::Closed,
            config,
            input: Box::default(),
            in_len: 0,
            recv_at: 0,
            output: vec![0u8; config.output_len].into_boxed_slice(),
            out_pos: 0,
            out_len: 0,
            sending: false,
            sent: 0,
            send_stall: SendStall::default(),
            eof: false,
            eof_told: false,
            write_shut: false,
            tls: TlsConn::default(),
        }
    }

    /// The input buffer a connection with `limits` needs: the largest head or trailer section
    /// plus one receive.
    pub fn input_capacity(limits: &HttpLimits, recv_len: usize) -> usize {
        limits
            .max_header_bytes
            .max(limits.max_trailer_bytes as usize)
            + recv_len
    }

    /// Starts a new connection in this slot (the `HttpConn` is reset by its owner, see
    /// `HttpSessions::open`): empty buffers, `Open`. The input buffer grows to
    /// `input_capacity` if smaller (a new slot, or a reload raised the head limits: once per
    /// slot, not per request). Only with nothing of the previous connection in flight.
    pub fn open(&mut self, input_capacity: usize) {
        if self.input.len() < input_capacity {
            self.input = vec![0u8; input_capacity].into_boxed_slice();
        }
        self.state = Lifecycle::Open;
        self.in_len = 0;
        self.recv_at = 0;
        self.out_pos = 0;
        self.out_len = 0;
        self.sending = false;
        self.sent = 0;
        self.send_stall.clear();
        self.eof = false;
        self.eof_told = false;
        self.write_shut = false;
    }

    /// Makes the connection just opened a TLS one, under `settings`.
    pub fn open_tls(&mut self, settings: Arc<TlsSettings>, now: Instant) {
        let limits = self.http.limits();
        let max_head = limits
            .max_header_bytes
            .max(limits.max_trailer_bytes as usize);
        self.tls
            .open(settings, now, TlsConn::plain_capacity(max_head));
    }

    /// Whether this connection speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_open()
    }

    /// The connection ended at the transport: TLS counts a handshake that never finished and
    /// frees its state.
    pub fn finish_tls(&mut self, thread: &mut TlsThread) {
        if self.tls.is_open() {
            self.tls.finish(thread);
        }
    }

    /// The last `advance` put off the TLS handshake for want of the round's budget: run it
    /// again next round.
    pub fn is_tls_deferred(&self) -> bool {
        self.state == Lifecycle::Open && self.tls.is_deferred()
    }

    /// HTTP is done and, with TLS, its last records (the `close_notify`, or an alert) are
    /// written.
    fn done(&self) -> bool {
        if self.tls.is_open() {
            self.tls.wants_close(self.http.wants_close())
        } else {
            self.http.wants_close()
        }
    }

    pub fn state(&self) -> Lifecycle {
        self.state
    }

    /// `Closed` or `Aborted`: nothing more will be read or written.
    pub fn is_ended(&self) -> bool {
        matches!(self.state, Lifecycle::Closed | Lifecycle::Aborted(_))
    }

    /// The peer's FIN has been seen.
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// Bytes received and not yet consumed by HTTP.
    pub fn buffered_input(&self) -> usize {
        self.in_len
    }

    /// Whether the transport should have a receive posted: open or lingering, before the
    /// peer's FIN, and with room for a whole receive in the input buffer (backpressure).
    pub fn wants_recv(&self) -> bool {
        matches!(
            self.state,
            Lifecycle::Open | Lifecycle::Finishing | Lifecycle::Lingering { .. }
        ) && !self.eof
            && self.input.len() - self.in_len >= self.config.recv_len
    }

    /// Bytes received into the transport's own buffer (a provided-buffer ring). Handed to
    /// HTTP straight from `data` when nothing waits before them; what it leaves (a head cut
    /// by the buffer's end, input held back while output waits) is kept in the input buffer.
    /// Dropped unless `Open` (a lingering connection reads only to find the peer's FIN).
    pub fn handle_recv(&mut self, now: Instant, app: &App, data: &[u8]) {
        self.handle_recv_logged(now, app, data, None);
    }

    /// [`handle_recv`](Self::handle_recv), with the access log's sink when the log is on.
    pub fn handle_recv_logged(
        &mut self,
        now: Instant,
        app: &App,
        data: &[u8],
        log: Option<AccessLogIo<'_>>,
    ) {
        if self.state != Lifecycle::Open {
            return;
        }
        let mut data = data;
        // Straight from `data` when nothing waits before it; not when requests may go
        // upstream: only `advance_with` runs those (the input buffer keeps them meanwhile).
        let direct = app.proxy().is_none() && !self.tls.is_open();
        if direct && self.in_len == 0 && !self.sending && self.out_pos == self.out_len && !self.eof
        {
            self.out_pos = 0;
            let p = match log {
                Some(io) => self
                    .http
                    .process_logged(now, app, data, &mut self.output, io),
                None => self.http.process(now, app, data, &mut self.output),
            };
            self.out_len = p.produced;
            data = &data[p.consumed.min(data.len())..];
        }
        let room = self.input.len() - self.in_len;
        // A receive is wanted only with room for a whole buffer, so this always fits.
        let n = data.len().min(room);
        self.input[self.in_len..self.in_len + n].copy_from_slice(&data[..n]);
        self.in_len += n;
    }

    /// Where a receive straight into the input buffer may write (the free end of it). The
    /// region stays untouched until `handle_recv_in_place`: the connection only ever moves
    /// bytes below it, and the buffer is replaced only by `open`.
    #[must_use]
    pub fn recv_buffer(&mut self) -> &mut [u8] {
        self.recv_at = self.in_len;
        &mut self.input[self.in_len..]
    }

    /// `n` bytes landed where `recv_buffer` pointed.
    pub fn handle_recv_in_place(&mut self, n: usize) {
        // Input consumed meanwhile moved `in_len` down: close the gap.
        let n = n.min(self.input.len() - self.recv_at);
        self.input
            .copy_within(self.recv_at..self.recv_at + n, self.in_len);
        self.in_len += n;
    }

    /// The peer closed its side (a receive returned 0 bytes).
    pub fn handle_eof(&mut self) {
        self.eof = true;
    }

    /// The next bytes to send, if no send is in flight: the transport sends them and reports
    /// with `handle_sent`. The bytes stay put (and unwritten) until then. Starts the send
    /// timeout's clock.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<&[u8]> {
        if self.sending || self.out_pos >= self.out_len || self.is_ended() {
            return None;
        }
        self.sending = true;
        self.send_stall.restart(now, self.sent);
        Some(&self.output[self.out_pos..self.out_len])
    }

    /// Whether bytes handed out by `poll_transmit` are still being sent.
    pub fn is_sending(&self) -> bool {
        self.sending
    }

    /// Whether the bytes handed out by `poll_transmit` (still being sent) are the
    /// connection's last: HTTP is done and wants to close, nothing more will be written. The
    /// transport may queue its write-side shutdown right behind them (only after all of them:
    /// a short send must not be followed by the FIN) and report it with `handle_write_shut`.
    #[must_use]
    pub fn sending_last(&self) -> bool {
        self.sending && self.state == Lifecycle::Open && self.done()
    }

    /// The send of `poll_transmit`'s bytes completed with `n` of them taken. Returns how many
    /// of them were bytes handed out (`n`, unless the transport reports more). Bytes left
    /// unsent behind a write side already shut can never go: the connection is cut.
    pub fn handle_sent(&mut self, n: usize) -> usize {
        self.sending = false;
        let n = n.min(self.out_len - self.out_pos);
        self.out_pos += n;
        self.sent += n as u64;
        if self.write_shut && self.out_pos < self.out_len {
            self.abort(AbortReason::Transport);
        }
        n
    }

    /// The transport shut its write side: after `Finishing`, or behind bytes that
    /// `sending_last` called the last (before `handle_sent` reports them: the connection
    /// lingers once they are). Lingering lasts until the peer's FIN or `now` + the linger
    /// time. Shut with bytes still to send and none in flight, the connection is cut.
    pub fn handle_write_shut(&mut self, now: Instant) {
        match self.state {
            Lifecycle::Finishing => self.linger(now),
            // The last bytes are in flight, or sent and not yet advanced past.
            Lifecycle::Open if self.done() && (self.sending || self.out_pos == self.out_len) => {
                self.write_shut = true
            }
            Lifecycle::Open if !self.sending && self.out_pos < self.out_len => {
                self.abort(AbortReason::Transport);
            }
            _ => {}
        }
    }

    fn linger(&mut self, now: Instant) {
        self.state = Lifecycle::Lingering {
            until: now + self.config.linger,
        };
        self.in_len = 0;
    }

    /// Cuts the connection (a no-op once ended).
    pub fn abort(&mut self, reason: AbortReason) {
        if !self.is_ended() {
            self.state = Lifecycle::Aborted(reason);
        }
    }

    /// Moves the connection forward without waiting, one `HttpConn::process` at most: lets
    /// HTTP consume input and produce output once the previous output is sent, tells it about
    /// the peer's FIN after the last input, and decides the end: `Finishing` (or `Closed` if
    /// the peer has closed too) when HTTP is done (or `draining` and no input is waiting),
    /// `Aborted(InputOverflow)` when input can never fit (not input held for an upstream). Lingering, it drops input and
    /// closes at the peer's FIN.
    pub fn advance(&mut self, now: Instant, app: &App, draining: bool) -> Advance {
        self.advance_logged(now, app, draining, &mut TlsThread::new(0), None)
    }

    /// [`advance`](Self::advance), with the access log's sink when the log is on.
    pub fn advance_logged(
        &mut self,
        now: Instant,
        app: &App,
        draining: bool,
        tls: &mut TlsThread,
        mut log: Option<AccessLogIo<'_>>,
    ) -> Advance {
        self.advance_with(now, draining, tls, |http, input, output| {
            match log.as_mut() {
                Some(io) => http.process_logged(now, app, input, output, io.reborrow()),
                None => http.process(now, app, input, output),
            }
        })
    }

    /// [`advance`](Self::advance) with the caller's way of running HTTP over the input and
    /// output (a thread that forwards requests upstream runs them through its
    /// `proxy::forwarder::Forwarder`); without TLS, `process` is called at most once (with
    /// TLS, as often as the records ask, over one buffer of each).
    pub fn advance_with(
        &mut self,
        now: Instant,
        draining: bool,
        tls: &mut TlsThread,
        mut process: impl FnMut(&mut HttpConn, &[u8], &mut [u8]) -> Progress,
    ) -> Advance {
        match self.state {
            Lifecycle::Open => {}
            Lifecycle::Lingering { .. } => {
                self.in_len = 0;
                if self.eof {
                    self.state = Lifecycle::Closed;
                }
                return Advance::Waiting;
            }
            Lifecycle::Finishing | Lifecycle::Closed | Lifecycle::Aborted(_) => {
                return Advance::Waiting
            }
        }
        if self.sending || self.out_pos < self.out_len {
            return Advance::Waiting;
        }
        self.out_pos = 0;
        self.out_len = 0;
        let input = &self.input[..self.in_len];
        let p = if self.tls.is_open() {
            let (http, out) = (&mut self.http, &mut self.output);
            self.tls.process(now, tls, input, out, http, process)
        } else {
            process(&mut self.http, input, &mut self.output)
        };
        self.consume_input(p.consumed);
        self.out_len = p.produced;
        if self.eof && !self.eof_told {
            // HTTP saw the final input above; now it learns that no more will come.
            self.eof_told = true;
            self.http.peer_closed(now);
            if self.out_len == 0 {
                return Advance::Again;
            }
        }
        if self.out_len > 0 {
            return Advance::Again; // to be sent
        }
        // Draining ends a connection with no input waiting, unless its request is at an
        // upstream (its answer is still to come).
        // With TLS, a head partly received sits decrypted in the TLS layer, not in `input`.
        let idle =
            self.in_len == 0 && self.tls.buffered_plaintext() == 0 && !self.http.is_forwarding();
        if self.done() || (draining && idle) {
            if self.eof {
                self.state = Lifecycle::Closed;
            } else if self.write_shut {
                self.linger(now); // the FIN went behind the last bytes
            } else {
                self.state = Lifecycle::Finishing;
            }
            return Advance::Processed;
        }
        // Input held for an upstream (a body waiting for room in the upstream's send buffer,
        // requests pipelined behind a forwarded one) is backpressure, not overflow: no
        // receive is posted until HTTP takes some (`wants_recv`), and the client's TCP window
        // closes.
        let held_for_upstream = self.http.is_forwarding() || self.http.upstream_request().is_some();
        if self.input.len() - self.in_len < self.config.recv_len && !self.eof && !held_for_upstream
        {
            self.state = Lifecycle::Aborted(AbortReason::InputOverflow);
        }
        Advance::Processed
    }

    /// The next deadline: the end of lingering, the send timeout for `send_limit`, or HTTP's
    /// header or idle deadline.
    #[must_use]
    pub fn poll_timeout(&self, send_limit: Duration) -> Option<Instant> {
        let linger = match self.state {
            Lifecycle::Open => None,
            Lifecycle::Lingering { until } => Some(until),
            Lifecycle::Finishing | Lifecycle::Closed | Lifecycle::Aborted(_) => return None,
        };
        let send = self
            .sending
            .then(|| self.send_stall.since().map(|t| t + send_limit))
            .flatten();
        [
            linger,
            send,
            self.http.poll_timeout(),
            self.tls.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs what is due at `now`: lingering ends (`Closed`); a send in flight for
    /// `send_limit` without completing cuts the connection (`Aborted(SendTimeout)`); else
    /// HTTP's deadline. Returns true if HTTP's deadline fired: `advance` then.
    #[must_use]
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        send_limit: Duration,
        tls: &mut TlsThread,
    ) -> bool {
        match self.state {
            Lifecycle::Open => {}
            Lifecycle::Lingering { until } if now >= until => {
                self.state = Lifecycle::Closed;
                return false;
            }
            // HTTP may still have a deadline here (a drain finished it between requests).
            Lifecycle::Lingering { .. } => {}
            Lifecycle::Finishing | Lifecycle::Closed | Lifecycle::Aborted(_) => return false,
        }
        if self.sending && self.send_stall.check(now, Some(self.sent), send_limit) {
            self.state = Lifecycle::Aborted(AbortReason::SendTimeout);
            return false;
        }
        if self.tls.handle_timeout(now, tls) {
            // The handshake took too long: `advance` closes (TLS then wants the close).
            return true;
        }
        if self.http.poll_timeout().is_some_and(|t| t <= now) {
            self.http.handle_timeout(now);
            return true;
        }
        false
    }

    fn consume_input(&mut self, n: usize) {
        let n = n.min(self.in_len);
        if n > 0 {
            // Only `..in_len`: a receive in place may be writing after it.
            self.input[..self.in_len].copy_within(n.., 0);
            self.in_len -= n;
        }
    }
}

#[cfg(test)]
mod tests;
