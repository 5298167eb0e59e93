//! One connection's TLS layer, between the transport's bytes and HTTP's.
//!
//! [`TlsConn::process`] takes the ciphertext the transport received and the room it has to
//! send, and returns what it used of each, as `HttpConn::process` does: the caller's loop over
//! its buffers stays the same with or without TLS. Inside, in order, as long as something
//! moves: ciphertext rustls holds is written out; decrypted bytes go to HTTP, whose answer is
//! written as plaintext into the output room (which is free) and handed to rustls, which
//! encrypts it; the encrypted records are written over it; more ciphertext is read.
//!
//! HTTP is offered only as much output room as its answer can take once encrypted (a record's
//! overhead per 16 KiB), and only when rustls holds nothing unsent, so rustls never buffers
//! more than one record's worth beyond the transport's room: backpressure reaches HTTP as it
//! does without TLS. Input is read only while the decrypted bytes HTTP has not taken stay
//! under rustls' own bound (16 KiB) and this layer's buffer, so a client that does not read
//! its answers stops being read.
//!
//! Ending: HTTP's close becomes a `close_notify` after its last bytes; a TLS error becomes the
//! alert rustls chose; a ClientHello naming an unknown server (when configured so) becomes
//! `unrecognized_name`; plain HTTP on the port becomes nginx's 400. In each case
//! [`TlsConn::wants_close`] is true once those last bytes are written, and the transport
//! closes behind them.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::server::{Accepted, AcceptedAlert, Acceptor};
use rustls::{HandshakeKind, ProtocolVersion, ServerConnection};

use super::config::TlsSettings;
use super::stats::{TlsFailure, TlsStats, TlsThread};
use crate::access::TlsLogInfo;
use crate::http::{HttpConn, Progress};
use crate::time::Instant;

/// Plaintext bytes per TLS record (RFC 8446 §5.1).
const RECORD_PLAINTEXT: usize = 16 * 1024;
/// The most a record adds to its plaintext: 5 header bytes, then 16 of AEAD tag and an 8-byte
/// explicit nonce (TLS 1.2 GCM) or 1 byte of content type (TLS 1.3); rounded up.
const RECORD_OVERHEAD: usize = 40;
/// HTTP output handed to rustls per step: bounds the buffer rustls makes for it.
const MAX_PLAINTEXT_STEP: usize = 64 * 1024;
/// Steps per `process` call: each moves bytes or the call ends; this only bounds a call's
/// work when the transport's buffers are very large.
const MAX_STEPS: usize = 32;

/// The most ClientHello bytes read before it must be whole: a ClientHello with post-quantum
/// key shares, tickets and GREASE is a few KiB; past this it is refused (`decode_error`), so a
/// slow, padded one cannot hold rustls' 64 KiB handshake buffer per connection.
const MAX_CLIENT_HELLO: usize = 16 * 1024;

/// A fatal `unrecognized_name` alert (RFC 6066 §3, RFC 8446 §6): a plaintext record, since no
/// keys exist yet.
const UNRECOGNIZED_NAME_ALERT: &[u8] = &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70];

/// Fatal alerts for a ClientHello rustls refused without making one.
const UNEXPECTED_MESSAGE_ALERT: &[u8] = &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0a];
const HANDSHAKE_FAILURE_ALERT: &[u8] = &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28];
const DECODE_ERROR_ALERT: &[u8] = &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32];

/// nginx's answer to plain HTTP on a TLS port (its 497 turned into a 400), then a close.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Server: xgate\r\n\
Content-Type: text/plain\r\n\
Content-Length: 48\r\n\
Connection: close\r\n\
\r\n\
The plain HTTP request was sent to an HTTPS port";

/// Where the connection's TLS is.
enum State {
    /// No connection (a slot between connections).
    Idle,
    /// Reading the ClientHello.
    Accepting {
        acceptor: Box<Acceptor>,
        settings: Arc<TlsSettings>,
        /// Ciphertext bytes read so far (the first one says whether this is TLS at all).
        read: usize,
    },
    /// A whole ClientHello, waiting for the round's handshake budget: the session (and its
    /// key exchange and signature, the expensive part) starts when the budget allows.
    Accepted {
        accepted: Box<Accepted>,
        settings: Arc<TlsSettings>,
    },
    /// The handshake and then the records of the session.
    Serving(Box<ServerConnection>),
    /// The ClientHello was refused: the alert rustls made (or `fallback` if it made none),
    /// then a close.
    Alerting {
        alert: AcceptedAlert,
        fallback: &'static [u8],
        /// Some of rustls' alert went out already.
        written: bool,
    },
    /// Fixed bytes, then a close (`unrecognized_name`, the plain-HTTP answer).
    Refusing {
        bytes: &'static [u8],
        written: usize,
    },
}

/// One connection's TLS: see the module documentation. Kept in its slot and reused: the
/// decrypted-input buffer is allocated once per slot, rustls' state once per connection.
pub struct TlsConn {
    state: State,
    /// Decrypted bytes HTTP has not consumed, contiguous from index 0.
    plain: Box<[u8]>,
    plain_len: usize,
    /// When the handshake must be done by (`None` once done).
    deadline: Option<Instant>,
    /// The handshake completed (and was counted).
    established: bool,
    /// HTTP is done: `close_notify` is queued behind its last bytes.
    close_notify: bool,
    /// Failed or refused: what is queued (an alert, an answer) goes out, then the close.
    failed: bool,
    /// The client sent `close_notify`: what follows is dropped.
    peer_closed: bool,
    /// The last `process` left a whole ClientHello waiting: the round's handshake budget was
    /// spent. The owner runs the connection again next round.
    deferred: bool,
    /// The connection was put off once already (counted once).
    deferral_counted: bool,
    /// `plain`'s size for this connection: allocated once the handshake is done, so a
    /// connection that never finishes one holds none of it.
    plain_capacity: usize,
}

impl Default for TlsConn {
    fn default() -> Self {
        TlsConn {
            state: State::Idle,
            plain: Box::default(),
            plain_len: 0,
            deadline: None,
            established: false,
            close_notify: false,
            failed: false,
            peer_closed: false,
            deferred: false,
            deferral_counted: false,
            plain_capacity: 0,
        }
    }
}

impl TlsConn {
    /// The decrypted-input buffer a connection needs with HTTP limits that accept heads of
    /// `max_head` bytes: a whole head, and one record beside it.
    pub fn plain_capacity(max_head: usize) -> usize {
        max_head + RECORD_PLAINTEXT
    }

    /// Starts a new connection under `settings` at `now`; the buffer grows to `plain_capacity`
    /// if smaller (once per slot).
    pub fn open(&mut self, settings: Arc<TlsSettings>, now: Instant, plain_capacity: usize) {
        self.plain_capacity = plain_capacity;
        self.deadline = Some(now + settings.options().handshake_timeout);
        self.state = State::Accepting {
            acceptor: Box::default(),
            settings,
            read: 0,
        };
        self.plain_len = 0;
        self.established = false;
        self.close_notify = false;
        self.failed = false;
        self.peer_closed = false;
        self.deferred = false;
        self.deferral_counted = false;
    }

    /// The last `process` put off the handshake for want of budget: run it again next round.
    /// False once the connection failed or its handshake went on.
    pub fn is_deferred(&self) -> bool {
        self.deferred && !self.failed && matches!(self.state, State::Accepted { .. })
    }

    /// Decrypted bytes HTTP has not taken yet (a head being received).
    pub fn buffered_plaintext(&self) -> usize {
        self.plain_len
    }

    /// Whether a connection is open in this slot.
    pub fn is_open(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// The handshake is done: HTTP runs.
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// The connection ended at the transport: counts a handshake that never finished and
    /// frees rustls' state (the buffer stays for the slot's next connection).
    pub fn finish(&mut self, thread: &mut TlsThread) {
        let stats = &mut thread.stats;
        if self.is_open() && !self.established && !self.failed {
            stats.failed(TlsFailure::Abandoned);
        }
        self.state = State::Idle;
        self.deadline = None;
        self.plain_len = 0;
        self.deferred = false;
    }

    /// When the handshake times out, while it runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline.filter(|_| !self.failed)
    }

    /// The handshake deadline passed: the connection is to close (`wants_close`). Returns
    /// whether it fired.
    pub fn handle_timeout(&mut self, now: Instant, thread: &mut TlsThread) -> bool {
        match self.poll_timeout() {
            Some(t) if t <= now => {
                thread.stats.failed(TlsFailure::Timeout);
                self.failed = true;
                self.deadline = None;
                self.deferred = false;
                true
            }
            _ => false,
        }
    }

    /// Whether the transport should close now (after the bytes already given to it): TLS
    /// failed or refused and its last bytes are out, or HTTP is done (`http_wants_close`)
    /// and the `close_notify` behind its answer is out, or HTTP is done before the handshake
    /// finished.
    pub fn wants_close(&self, http_wants_close: bool) -> bool {
        let pending = match &self.state {
            State::Idle => return true,
            State::Accepting { .. } | State::Accepted { .. } => false,
            State::Serving(conn) => conn.wants_write(),
            State::Alerting { .. } => true, // `flush` empties it and leaves this state
            State::Refusing { bytes, written } => *written < bytes.len(),
        };
        if pending {
            return false;
        }
        self.failed
            || matches!(self.state, State::Alerting { .. } | State::Refusing { .. })
            || (self.close_notify && http_wants_close)
            || (http_wants_close && !self.established)
    }

    /// Moves bytes: see the module documentation. `input` is the received ciphertext not yet
    /// consumed, `output` the room to send; `http_process` runs HTTP over decrypted input
    /// and plaintext output room (the caller's `HttpConn::process` or driver). Returns the
    /// ciphertext consumed and produced.
    pub fn process(
        &mut self,
        now: Instant,
        thread: &mut TlsThread,
        input: &[u8],
        output: &mut [u8],
        http: &mut HttpConn,
        mut http_process: impl FnMut(&mut HttpConn, &[u8], &mut [u8]) -> Progress,
    ) -> Progress {
        let mut consumed = 0;
        let mut produced = 0;
        self.deferred = false;
        // A handshake past its deadline goes no further, even before the owner's sweep.
        self.handle_timeout(now, thread);
        for _ in 0..MAX_STEPS {
            let before = (consumed, produced);
            produced += self.flush(&mut output[produced..]);
            if !self.failed && matches!(self.state, State::Accepting { .. }) {
                consumed += self.accept(&mut thread.stats, &input[consumed..]);
            }
            if !self.failed && matches!(self.state, State::Accepted { .. }) {
                if !thread.take_handshake() {
                    // The round's handshakes are spent: the ClientHello waits, parsed.
                    if !self.deferral_counted {
                        self.deferral_counted = true;
                        thread.stats.handshakes_deferred += 1;
                    }
                    self.deferred = true;
                    break;
                }
                self.start_session(&mut thread.stats);
            }
            produced += self.flush(&mut output[produced..]);
            if let State::Serving(conn) = &mut self.state {
                if self.established && !self.failed {
                    // Decrypted bytes to HTTP, HTTP's answer to rustls.
                    self.plain_len += read_plaintext(conn, &mut self.plain[self.plain_len..]);
                    if !conn.wants_write() && !self.close_notify {
                        let room = plaintext_room(output.len() - produced);
                        let out = &mut output[produced..produced + room];
                        let p = http_process(http, &self.plain[..self.plain_len], out);
                        let taken = p.consumed.min(self.plain_len);
                        self.plain.copy_within(taken..self.plain_len, 0);
                        self.plain_len -= taken;
                        if p.produced > 0 {
                            // Unlimited buffers (set at accept): always takes all of it.
                            let _ = conn.writer().write_all(&out[..p.produced.min(room)]);
                        }
                        if http.wants_close() {
                            conn.send_close_notify();
                            self.close_notify = true;
                        }
                        if p.consumed > 0 || p.produced > 0 {
                            // Plaintext moved; the ciphertext counts below show it too.
                            produced += flush_conn(conn, &mut output[produced..]);
                            continue;
                        }
                    }
                }
                produced += flush_conn(conn, &mut output[produced..]);
                consumed += self.read_ciphertext(&mut thread.stats, http, &input[consumed..]);
                produced += self.flush(&mut output[produced..]);
            } else if self.failed || matches!(self.state, State::Refusing { .. }) {
                // Refused or failed before a session: whatever else arrives is dropped.
                consumed = input.len();
            }
            if (consumed, produced) == before {
                break;
            }
        }
        Progress { consumed, produced }
    }

    /// Feeds the ClientHello to the acceptor; once whole, picks the session (or the refusal).
    fn accept(&mut self, stats: &mut TlsStats, input: &[u8]) -> usize {
        let State::Accepting {
            acceptor,
            settings,
            read,
        } = &mut self.state
        else {
            return 0;
        };
        if input.is_empty() {
            return 0;
        }
        if *read == 0 && input[0].is_ascii_uppercase() {
            // "GET /", "POST ..." where a handshake record (22) should be.
            stats.failed(TlsFailure::PlainHttp);
            self.refuse(PLAIN_HTTP_ANSWER);
            return input.len();
        }
        // Up to the ClientHello's bound: what comes after a whole one is the client's next
        // flight, which waits in the transport's buffer.
        let allowed = input.len().min(MAX_CLIENT_HELLO.saturating_sub(*read));
        let mut taken = 0;
        while taken < allowed {
            match acceptor.read_tls(&mut &input[taken..allowed]) {
                Ok(0) | Err(_) => break,
                Ok(n) => taken += n,
            }
        }
        *read += taken;
        let accepted = match acceptor.accept() {
            Ok(None) => {
                if *read >= MAX_CLIENT_HELLO {
                    stats.failed(TlsFailure::DecodeError);
                    self.refuse(DECODE_ERROR_ALERT);
                    return input.len();
                }
                return taken;
            }
            Ok(Some(accepted)) => accepted,
            Err((err, alert)) => {
                self.alert(stats, &err, alert);
                return taken;
            }
        };
        let settings = settings.clone();
        let (refused, defaulted) = {
            let hello = accepted.client_hello();
            let name = hello.server_name();
            (
                settings.refuses_name(name),
                name.is_some_and(|n| !settings.knows_name(n)),
            )
        };
        if refused {
            stats.failed(TlsFailure::UnrecognizedName);
            self.refuse(UNRECOGNIZED_NAME_ALERT);
            return taken;
        }
        if defaulted {
            stats.default_certificate += 1;
        }
        self.state = State::Accepted {
            accepted: Box::new(accepted),
            settings,
        };
        taken
    }

    /// The session begins (the key exchange and the signature: the costly step the round's
    /// budget is for).
    fn start_session(&mut self, stats: &mut TlsStats) {
        let State::Accepted { accepted, settings } =
            std::mem::replace(&mut self.state, State::Idle)
        else {
            return;
        };
        match accepted.into_connection(settings.server_config().clone()) {
            Ok(mut conn) => {
                // Bounded by `plaintext_room` instead (see the module documentation).
                conn.set_buffer_limit(None);
                self.state = State::Serving(Box::new(conn));
            }
            Err((err, alert)) => self.alert(stats, &err, alert),
        }
    }

    fn alert(&mut self, stats: &mut TlsStats, err: &rustls::Error, alert: AcceptedAlert) {
        let why = TlsFailure::of(err);
        stats.failed(why);
        self.failed = true;
        self.deadline = None;
        let fallback = match why {
            TlsFailure::UnexpectedMessage => UNEXPECTED_MESSAGE_ALERT,
            TlsFailure::Incompatible => HANDSHAKE_FAILURE_ALERT,
            _ => DECODE_ERROR_ALERT,
        };
        self.state = State::Alerting {
            alert,
            fallback,
            written: false,
        };
    }

    fn refuse(&mut self, bytes: &'static [u8]) {
        self.failed = true;
        self.deadline = None;
        self.state = State::Refusing { bytes, written: 0 };
    }

    /// Reads ciphertext into rustls and processes it, while the decrypted backlog allows.
    fn read_ciphertext(
        &mut self,
        stats: &mut TlsStats,
        http: &mut HttpConn,
        input: &[u8],
    ) -> usize {
        let State::Serving(conn) = &mut self.state else {
            return 0;
        };
        if self.peer_closed || self.failed {
            // After close_notify (or a fatal error), nothing more is read from this session.
            return input.len();
        }
        let mut taken = 0;
        // Read only while HTTP's unread input leaves room for a record: backpressure (before
        // the handshake is done there is no HTTP input, and no buffer yet).
        while taken < input.len()
            && (!self.established || self.plain_len + RECORD_PLAINTEXT <= self.plain.len())
        {
            let n = match conn.read_tls(&mut &input[taken..]) {
                Ok(0) | Err(_) => break, // rustls' decrypted backlog is full
                Ok(n) => n,
            };
            taken += n;
            match conn.process_new_packets() {
                Ok(io) => {
                    if io.peer_has_closed() {
                        self.peer_closed = true;
                    }
                }
                Err(err) => {
                    // rustls queued the alert; it goes out, then the close.
                    stats.failed(TlsFailure::of(&err));
                    self.failed = true;
                    self.deadline = None;
                    return input.len();
                }
            }
            if !self.established && !conn.is_handshaking() {
                self.established = true;
                self.deadline = None;
                if self.plain.len() < self.plain_capacity {
                    // Once per slot (reused by its later connections).
                    self.plain = vec![0u8; self.plain_capacity].into_boxed_slice();
                }
                count_handshake(conn, stats);
                let minor = match conn.protocol_version() {
                    Some(ProtocolVersion::TLSv1_2) => 2,
                    _ => 3,
                };
                let name = conn.server_name().map(str::as_bytes);
                http.set_tls_info(TlsLogInfo::new(minor, name));
            }
            self.plain_len += read_plaintext(conn, &mut self.plain[self.plain_len..]);
            if self.peer_closed {
                return input.len();
            }
        }
        taken
    }

    /// Writes what TLS has queued into `out`.
    fn flush(&mut self, out: &mut [u8]) -> usize {
        match &mut self.state {
            State::Serving(conn) => flush_conn(conn, out),
            State::Alerting {
                alert,
                fallback,
                written,
            } => {
                let mut w = &mut *out;
                let room = w.len();
                while !w.is_empty() {
                    match alert.write(&mut w) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                let n = room - w.len();
                *written |= n > 0;
                if !w.is_empty() {
                    // All of it went out, then the close; rustls refuses some ClientHellos
                    // (a message that is not one) without an alert: ours then, since the
                    // RFC asks for one (RFC 8446 §6.2).
                    let bytes = if *written { &[][..] } else { *fallback };
                    self.state = State::Refusing { bytes, written: 0 };
                    return n + self.flush(&mut out[n..]);
                }
                n
            }
            State::Refusing { bytes, written } => {
                let n = (bytes.len() - *written).min(out.len());
                out[..n].copy_from_slice(&bytes[*written..*written + n]);
                *written += n;
                n
            }
            State::Idle | State::Accepting { .. } | State::Accepted { .. } => 0,
        }
    }
}

fn flush_conn(conn: &mut ServerConnection, out: &mut [u8]) -> usize {
    let mut w = &mut *out;
    let room = w.len();
    while !w.is_empty() && conn.wants_write() {
        match conn.write_tls(&mut w) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    room - w.len()
}

/// Moves decrypted bytes from rustls into `room`.
fn read_plaintext(conn: &mut ServerConnection, room: &mut [u8]) -> usize {
    let mut n = 0;
    while n < room.len() {
        match conn.reader().read(&mut room[n..]) {
            Ok(0) | Err(_) => break, // close_notify seen, or nothing more yet
            Ok(k) => n += k,
        }
    }
    n
}

/// The most plaintext whose records fit in `avail` bytes (see the module documentation).
fn plaintext_room(avail: usize) -> usize {
    let records = avail.div_ceil(RECORD_PLAINTEXT + RECORD_OVERHEAD);
    avail
        .saturating_sub(records * RECORD_OVERHEAD)
        .min(MAX_PLAINTEXT_STEP)
}

fn count_handshake(conn: &ServerConnection, stats: &mut TlsStats) {
    match conn.handshake_kind() {
        Some(HandshakeKind::Resumed) => stats.handshakes_resumed += 1,
        _ => stats.handshakes_full += 1,
    }
    match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_2) => stats.versions[0] += 1,
        Some(ProtocolVersion::TLSv1_3) => stats.versions[1] += 1,
        _ => {}
    }
    if let Some(suite) = conn.negotiated_cipher_suite() {
        stats.count_suite(suite.suite());
    }
}

#[cfg(test)]
mod room_tests {
    use super::*;

    #[test]
    fn plaintext_room_leaves_each_record_its_overhead() {
        for avail in [
            0,
            1,
            39,
            40,
            41,
            100,
            16_424,
            16_425,
            32_848,
            40_000,
            65_536,
            1 << 20,
        ] {
            let p = plaintext_room(avail);
            let records = p.div_ceil(RECORD_PLAINTEXT);
            assert!(p + records * RECORD_OVERHEAD <= avail, "avail {avail}: {p}");
        }
        assert_eq!(plaintext_room(1 << 20), MAX_PLAINTEXT_STEP);
        assert!(plaintext_room(16_424) >= RECORD_PLAINTEXT - RECORD_OVERHEAD);
    }
}
