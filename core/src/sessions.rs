//! The set of live HTTP connections, kept the same way on both paths.
//!
//! The bypass engine (over `tcp::Endpoint`) and the kernel path (over io_uring sockets) each
//! serve a table of connections whose HTTP side is the same: an `HttpConn` answered by one
//! generation of the routes and limits ([`crate::answers::Answers`]), counted by listening port
//! ([`crate::tally`]), and checked for HTTP deadlines by a periodic sweep. [`HttpSessions`]
//! holds that part once. Each path puts its transport's state in the slot type `S` (the
//! engine's TCP handle; the kernel path's socket, operations in flight and stream buffers) and
//! drives the table from its own events.
//!
//! Slots are indexed by the caller (the TCP table's index, or the kernel path's free list), grow
//! once per index and are reused afterwards: opening a connection allocates nothing. A `live`
//! list of the open slots makes the sweep and the counters one pass over open connections, not
//! over every slot ever used; a slot leaves it in O(1) (`swap_remove`, with the moved slot's
//! position updated).
//!
//! [`SendStall`] is the "peer stopped reading" send timeout both paths apply (see its doc).

use std::net::SocketAddr;

use crate::access::{AccessContext, AccessLogIo, AccessSink, ConnLog, PathKind};
use crate::answers::{Answers, Generation, Served};
use crate::app::App;
use crate::http::{HttpConn, HttpLimits, HttpStats};
use crate::tally::{PortCount, PortTally, TallySlot};
use crate::time::{Duration, Instant};

/// How often HTTP deadlines (header and idle timeouts, seconds long) are checked. A deadline
/// fires at most this late; the sweep costs one pass over the live connections per period.
pub const SWEEP_PERIOD: Duration = Duration::from_millis(250);

/// A slot's transport-specific state: whatever it is, it carries the connection's `HttpConn`.
pub trait Session {
    fn http(&self) -> &HttpConn;
    fn http_mut(&mut self) -> &mut HttpConn;
}

/// One slot of the table: the caller's session and the bookkeeping every path needs.
struct Slot<S> {
    session: S,
    live: bool,
    /// Position in `HttpSessions::live`, for O(1) removal.
    live_pos: usize,
    /// The connection's port in the tally.
    tally: TallySlot,
    /// `http().stats().requests` already added to the tally.
    requests_tallied: u64,
    /// Which generation of the answers the connection is answered with.
    generation: Generation,
}

/// The live HTTP connections of one path. See the module documentation.
pub struct HttpSessions<S> {
    /// The routes and HTTP limits, in up to two generations across a reload.
    answers: Answers,
    slots: Vec<Slot<S>>,
    /// Indices of slots with a live connection.
    live: Vec<u32>,
    tally: PortTally,
    /// HTTP counters summed over connections that have closed.
    http_closed: HttpStats,
    next_sweep: Instant,
    /// `begin_drain` was called: connections opened from now on are drained from the start.
    draining: bool,
    /// The access log's records of this thread, and which path they are from; `None`: off.
    access: Option<(AccessSink, PathKind)>,
    /// Each slot's access-log state (who the connection is, the request line being
    /// answered), by slot index; grown only while the log is on.
    logs: Vec<ConnLog>,
}

impl<S: Session> HttpSessions<S> {
    /// `first_sweep`: when [`HttpSessions::sweep_due`] first answers true. `capacity`: live
    /// connections to reserve room for.
    pub fn new(app: App, limits: HttpLimits, first_sweep: Instant, capacity: usize) -> Self {
        HttpSessions {
            answers: Answers::new(app, limits),
            slots: Vec::new(),
            live: Vec::with_capacity(capacity.min(1 << 16)),
            tally: PortTally::default(),
            http_closed: HttpStats::default(),
            next_sweep: first_sweep,
            draining: false,
            access: None,
            logs: Vec::new(),
        }
    }

    /// Turns the access log on for connections opened from now on: their records collect in a
    /// sink of `capacity` records (allocated here), which the owner empties with
    /// [`access_sink`](Self::access_sink); what does not fit is counted, never waited for.
    pub fn enable_access_log(&mut self, path: PathKind, capacity: usize) {
        self.access = Some((AccessSink::with_capacity(capacity), path));
    }

    /// This thread's access-log records since the owner last emptied the sink.
    pub fn access_sink(&mut self) -> Option<&mut AccessSink> {
        self.access.as_mut().map(|(sink, _)| sink)
    }

    /// The client's address, for the access log of the live connection in slot `index` (a
    /// no-op when the log is off).
    pub fn set_access_client(&mut self, index: usize, client: SocketAddr) {
        let Some((_, path)) = self.access else {
            return;
        };
        let Some(slot) = self.slots.get_mut(index).filter(|s| s.live) else {
            return;
        };
        let port = self.tally.port_of(slot.tally);
        if let Some(log) = self.logs.get_mut(index) {
            log.set_context(Some(AccessContext {
                client: Some(client),
                port,
                path,
            }));
        }
    }

    /// The limits new connections get.
    pub fn limits(&self) -> HttpLimits {
        self.answers.current().limits
    }

    /// The routes new requests are answered with.
    pub fn app(&self) -> &App {
        &self.answers.current().app
    }

    /// Wall-clock seconds since the Unix epoch, for the `Date` header. Cheap when unchanged.
    pub fn set_date(&mut self, unix_secs: u64) {
        self.answers.set_date(unix_secs);
    }

    /// Live connections.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Slots ever opened (live or not): the next index a growing table would use.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Indices of the live slots, in no particular order. Closing a slot moves the last one
    /// into its place: loop by position from the end to close while iterating.
    pub fn live(&self) -> &[u32] {
        &self.live
    }

    /// The session in slot `index` if it is live.
    pub fn get(&self, index: usize) -> Option<&S> {
        self.slots.get(index).filter(|s| s.live).map(|s| &s.session)
    }

    /// The session in slot `index` if it is live.
    pub fn get_mut(&mut self, index: usize) -> Option<&mut S> {
        self.slots
            .get_mut(index)
            .filter(|s| s.live)
            .map(|s| &mut s.session)
    }

    /// A live session together with the routes its connection is answered with.
    pub fn with_app(&mut self, index: usize) -> Option<(&mut S, &App)> {
        let slot = self.slots.get_mut(index).filter(|s| s.live)?;
        Some((
            &mut slot.session,
            &self.answers.for_conn(slot.generation).app,
        ))
    }

    /// [`with_app`](Self::with_app), and what `HttpConn::process_logged` needs when the
    /// access log is on.
    pub fn with_app_log(
        &mut self,
        index: usize,
    ) -> Option<(&mut S, &App, Option<AccessLogIo<'_>>)> {
        let slot = self.slots.get_mut(index).filter(|s| s.live)?;
        let log = match (self.access.as_mut(), self.logs.get_mut(index)) {
            (Some((sink, _)), Some(conn)) => Some(AccessLogIo { conn, sink }),
            _ => None,
        };
        Some((
            &mut slot.session,
            &self.answers.for_conn(slot.generation).app,
            log,
        ))
    }

    /// The tally entry of a listening port (made on first use).
    pub fn tally_slot(&mut self, port: u16) -> TallySlot {
        self.tally.slot(port)
    }

    /// Opens a connection in slot `index`, counted under `tally`: its `HttpConn` is reset to
    /// the current generation and started at `now` (and drained if a drain has begun). Slots
    /// up to `index` that do not exist yet are made with `make` (once per index, up to the
    /// caller's bound; reused afterwards). Returns the session for the transport to set up.
    pub fn open(
        &mut self,
        index: usize,
        now: Instant,
        tally: TallySlot,
        mut make: impl FnMut(HttpLimits) -> S,
    ) -> &mut S {
        let limits = self.answers.current().limits;
        while self.slots.len() <= index {
            self.slots.push(Slot {
                session: make(limits),
                live: false,
                live_pos: 0,
                tally: TallySlot::default(),
                requests_tallied: 0,
                generation: Generation::Current,
            });
        }
        self.tally.opened(tally);
        let slot = &mut self.slots[index];
        debug_assert!(!slot.live, "a live slot was opened twice");
        let http = slot.session.http_mut();
        http.reset();
        http.set_limits(limits);
        if let Some((_, path)) = self.access {
            if self.logs.len() <= index {
                // Once per slot index, like the slots themselves.
                self.logs.resize_with(index + 1, ConnLog::default);
            }
            // The client's address follows with `set_access_client` when the path knows it.
            self.logs[index].set_context(Some(AccessContext {
                client: None,
                port: self.tally.port_of(tally),
                path,
            }));
        }
        slot.generation = Generation::Current;
        http.start(now);
        if self.draining {
            http.begin_drain();
        }
        slot.live = true;
        slot.tally = tally;
        slot.requests_tallied = 0;
        slot.live_pos = self.live.len();
        self.live.push(index as u32);
        &mut slot.session
    }

    /// Closes the live connection in slot `index` at `now` (a no-op if it is not live): its
    /// counters join the closed ones, it leaves its generation, and the access-log record of
    /// an answer it was still writing is kept as cut. Returns true when that made a pending
    /// reload ready: call [`HttpSessions::apply_reload`].
    #[must_use]
    pub fn close(&mut self, index: usize, now: Instant) -> bool {
        let Some(slot) = self.slots.get_mut(index).filter(|s| s.live) else {
            return false;
        };
        if let (Some(f), Some((sink, _)), Some(log)) = (
            slot.session.http_mut().close_access(now),
            self.access.as_mut(),
            self.logs.get(index),
        ) {
            sink.push(log.complete(f));
        }
        slot.live = false;
        let ready = self.answers.forget(&mut slot.generation);
        self.tally.closed(slot.tally);
        self.http_closed.add(slot.session.http().stats());
        let pos = slot.live_pos;
        self.live.swap_remove(pos);
        if let Some(&moved) = self.live.get(pos) {
            self.slots[moved as usize].live_pos = pos;
        }
        ready
    }

    /// Adds the requests the connection in slot `index` accepted since the last call to its
    /// port's count.
    pub fn tally_requests(&mut self, index: usize) {
        let Some(slot) = self.slots.get_mut(index).filter(|s| s.live) else {
            return;
        };
        let requests = slot.session.http().stats().requests;
        self.tally
            .answered(slot.tally, requests - slot.requests_tallied);
        slot.requests_tallied = requests;
    }

    /// After the connection in slot `index` was served: counts its requests and, if it was
    /// left on the previous generation and is now between requests, moves it to the current
    /// one. Returns true when that made a pending reload ready (call `apply_reload`).
    #[must_use]
    pub fn settle(&mut self, index: usize) -> bool {
        self.tally_requests(index);
        let Some(slot) = self.slots.get_mut(index).filter(|s| s.live) else {
            return false;
        };
        self.answers
            .release(&mut slot.generation, slot.session.http_mut())
    }

    /// Offers a new generation of routes and limits. Returns true when it can be applied now
    /// (call `apply_reload`); false when it waits for connections still on the previous one.
    #[must_use]
    pub fn reload(&mut self, next: Served) -> bool {
        self.answers.offer(next)
    }

    /// Makes the pending generation current and moves every live connection between requests
    /// to it (see [`crate::answers`]), as many times as reloads are ready. `rotated` sees the
    /// limits of each generation made current, before the connections adopt them.
    pub fn apply_reload(&mut self, mut rotated: impl FnMut(&HttpLimits)) {
        loop {
            self.answers.rotate();
            rotated(&self.answers.current().limits);
            for &i in &self.live {
                let slot = &mut self.slots[i as usize];
                self.answers
                    .adopt(&mut slot.generation, slot.session.http_mut());
            }
            if !self.answers.settle() {
                break;
            }
        }
    }

    /// Reloads applied so far.
    pub fn reloads_applied(&self) -> u64 {
        self.answers.applied()
    }

    /// Requests accepted so far (a running total, cheap to read).
    pub fn requests(&self) -> u64 {
        self.tally.requests()
    }

    /// Connections and requests by local port.
    pub fn port_counts(&self) -> &[PortCount] {
        self.tally.counts()
    }

    /// HTTP counters summed over connections that have closed.
    pub fn http_closed(&self) -> &HttpStats {
        &self.http_closed
    }

    /// HTTP counters of closed connections plus those of the live ones (one pass over the
    /// live connections).
    pub fn http_stats(&self) -> HttpStats {
        let mut total = self.http_closed;
        for &i in &self.live {
            total.add(self.slots[i as usize].session.http().stats());
        }
        total
    }

    /// Graceful shutdown of HTTP (RFC 9112 §9.6): every live connection, and every one opened
    /// from now on, answers with `Connection: close` (see `HttpConn::begin_drain`). The caller
    /// then serves each live connection so that idle ones close.
    pub fn begin_drain(&mut self) {
        self.draining = true;
        for &i in &self.live {
            self.slots[i as usize].session.http_mut().begin_drain();
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// When the next sweep of HTTP deadlines is due.
    pub fn next_sweep(&self) -> Instant {
        self.next_sweep
    }

    /// The next sweep while a connection is live.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.live.is_empty()).then_some(self.next_sweep)
    }

    /// True (once per [`SWEEP_PERIOD`]) when the caller must sweep its live connections now;
    /// the next sweep is then due a period after `now`.
    #[must_use]
    pub fn sweep_due(&mut self, now: Instant) -> bool {
        if now < self.next_sweep {
            return false;
        }
        self.next_sweep = now + SWEEP_PERIOD;
        true
    }

    /// Runs the HTTP deadline of the live connection in slot `index` if it is due. Returns
    /// true if it fired: serve the connection (a 408 or a close may be waiting).
    #[must_use]
    pub fn handle_http_timeout(&mut self, index: usize, now: Instant) -> bool {
        let Some(session) = self.get_mut(index) else {
            return false;
        };
        let http = session.http_mut();
        if http.poll_timeout().is_some_and(|t| t <= now) {
            http.handle_timeout(now);
            // A timeout that cut an answer finished it here, outside `process`.
            if let (Some(f), Some((sink, _)), Some(log)) = (
                http.take_access_record(),
                self.access.as_mut(),
                self.logs.get(index),
            ) {
                sink.push(log.complete(f));
            }
            return true;
        }
        false
    }

    /// Takes every slot out (the table is empty afterwards), for an owner that must leak the
    /// buffers a transport may still be using.
    pub fn take_sessions(&mut self) -> Vec<S> {
        self.live.clear();
        std::mem::take(&mut self.slots)
            .into_iter()
            .map(|s| s.session)
            .collect()
    }
}

impl Session for HttpConn {
    fn http(&self) -> &HttpConn {
        self
    }
    fn http_mut(&mut self) -> &mut HttpConn {
        self
    }
}

/// The send timeout: a peer that stopped reading.
///
/// TCP keeps a connection whose peer holds its window at zero as long as the peer answers the
/// probes (RFC 9293 §3.8.6.1), and a socket keeps a send waiting for the same peer forever; so a
/// client that stops reading would keep its slot and its buffers, whether HTTP waits to write
/// more or has closed behind a queued response. RFC 6429 leaves ending such a connection to the
/// application: like nginx's `send_timeout`, when bytes have waited for the peer and it has
/// taken none of them for the HTTP idle timeout, the connection is reset. (A peer that stops
/// answering altogether is TCP's business: retransmission limit, idle timer.)
///
/// `progress` is any number that moves when the peer takes bytes (SND.UNA on the bypass path,
/// bytes sent on the kernel path).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendStall(Option<(u64, Instant)>);

impl SendStall {
    /// Bytes are waiting for the peer at `progress`: the stall starts now (whatever was seen
    /// before).
    pub fn restart(&mut self, now: Instant, progress: u64) {
        self.0 = Some((progress, now));
    }

    /// Checked at `now` with bytes waiting (`Some(progress)`) or not (`None`). Returns true
    /// (and forgets the stall) when `progress` has not moved for `limit`; a new `progress`
    /// starts a new stall, `None` ends it.
    #[must_use]
    pub fn check(&mut self, now: Instant, waiting: Option<u64>, limit: Duration) -> bool {
        let Some(progress) = waiting else {
            self.0 = None;
            return false;
        };
        match self.0 {
            Some((seen, since)) if seen == progress => {
                if now - since >= limit {
                    self.0 = None;
                    return true;
                }
                false
            }
            _ => {
                self.0 = Some((progress, now));
                false
            }
        }
    }

    /// When the stall started, if one is going on.
    pub fn since(&self) -> Option<Instant> {
        self.0.map(|(_, since)| since)
    }

    pub fn clear(&mut self) {
        self.0 = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::answering_v as app;

    fn sessions() -> HttpSessions<HttpConn> {
        HttpSessions::new(app("1"), HttpLimits::default(), Instant::from_secs(1), 8)
    }

    /// Serves `input` on slot `index` into `out`, as a path does; returns the bytes produced.
    fn serve(s: &mut HttpSessions<HttpConn>, index: usize, input: &[u8], out: &mut [u8]) -> usize {
        let (http, app) = s.with_app(index).unwrap();
        let p = http.process(Instant::from_secs(1), app, input, out);
        p.produced
    }

    #[test]
    fn slots_are_reused_and_the_live_list_follows_swap_removal() {
        let mut s = sessions();
        let port = s.tally_slot(80);
        let now = Instant::from_secs(1);
        for i in [0usize, 3, 1] {
            s.open(i, now, port, HttpConn::new);
        }
        assert_eq!(s.slot_count(), 4, "grown up to the highest index, once");
        assert_eq!(s.len(), 3);
        assert!(s.get(2).is_none(), "made but never opened");
        assert!(!s.close(0, now));
        assert!(!s.close(0, now), "closing twice is a no-op");
        assert_eq!(s.len(), 2);
        // Slot 1 moved into position 0; closing it through its new position works.
        assert_eq!(s.live(), &[1, 3]);
        assert!(!s.close(1, now));
        assert_eq!(s.live(), &[3]);
        s.open(0, now, port, |_| unreachable!("slot 0 exists"));
        assert_eq!(s.live(), &[3, 0]);
        let c = s.port_counts()[0];
        assert_eq!((c.port, c.live, c.total), (80, 2, 4));
    }

    #[test]
    fn requests_are_tallied_once_and_closed_stats_kept() {
        let mut s = sessions();
        let port = s.tally_slot(8080);
        s.open(0, Instant::from_secs(1), port, HttpConn::new);
        let mut out = vec![0u8; 4096];
        let req = b"GET /v HTTP/1.1\r\nHost: t\r\n\r\nGET /v HTTP/1.1\r\nHost: t\r\n\r\n";
        assert!(serve(&mut s, 0, req, &mut out) > 0);
        assert!(!s.settle(0));
        assert!(!s.settle(0));
        assert_eq!(s.requests(), 2);
        assert_eq!(s.port_counts()[0].requests, 2);
        assert_eq!(s.http_stats().requests, 2);
        assert_eq!(s.http_closed().requests, 0);
        assert!(!s.close(0, Instant::from_secs(2)));
        assert_eq!(s.http_closed().requests, 2);
        assert_eq!(s.http_stats().requests, 2);
        assert_eq!(s.port_counts()[0].live, 0);
    }

    #[test]
    fn access_records_carry_the_connection_and_a_closed_answer_is_kept_as_cut() {
        use crate::access::PathKind;
        let mut s = sessions();
        s.enable_access_log(PathKind::Kernel, 8);
        let port = s.tally_slot(8080);
        let now = Instant::from_secs(1);
        s.open(0, now, port, HttpConn::new);
        let client: SocketAddr = "192.0.2.9:5000".parse().unwrap();
        s.set_access_client(0, client);
        let mut out = vec![0u8; 4096];
        let (http, app, log) = s.with_app_log(0).unwrap();
        let req =
            b"GET /v HTTP/1.1\r\nHost: t\r\n\r\nGET /bytes/100000 HTTP/1.1\r\nHost: t\r\n\r\n";
        let p = http.process_logged(now, app, req, &mut out, log.unwrap());
        assert_eq!(p.produced, out.len(), "the second answer is under way");
        let sink = s.access_sink().unwrap();
        assert_eq!(sink.len(), 1);
        let r = sink.records()[0];
        assert_eq!(
            (r.client, r.port, r.path),
            (Some(client), 8080, PathKind::Kernel)
        );
        assert_eq!((r.status, r.target()), (200, &b"/v"[..]));
        assert!(!s.close(0, now + Duration::from_millis(3)));
        let sink = s.access_sink().unwrap();
        assert_eq!(sink.len(), 2);
        let cut = sink.records()[1];
        assert!(!cut.completed);
        assert_eq!(
            (cut.target(), cut.client),
            (&b"/bytes/100000"[..], Some(client))
        );
        // A table without the log has no sink, and its connections log nothing.
        let mut plain = sessions();
        assert!(plain.access_sink().is_none());
        let port = plain.tally_slot(80);
        plain.open(0, now, port, HttpConn::new);
        plain.set_access_client(0, client);
        assert!(plain.with_app_log(0).unwrap().2.is_none());
    }

    #[test]
    fn a_reload_waits_for_a_connection_mid_request_and_applies_when_it_closes() {
        let mut s = sessions();
        let port = s.tally_slot(80);
        let now = Instant::from_secs(1);
        s.open(0, now, port, HttpConn::new);
        s.open(1, now, port, HttpConn::new);
        // Slot 1 is in the middle of a request head.
        let mut out = vec![0u8; 4096];
        serve(&mut s, 1, b"GET /v HTTP/1.1\r\n", &mut out);
        let served = |b: &str| Served {
            app: app(b),
            limits: HttpLimits::default(),
        };
        assert!(s.reload(served("2")));
        let mut rotations = 0;
        s.apply_reload(|_| rotations += 1);
        assert_eq!((rotations, s.reloads_applied()), (1, 1));
        // A second reload must wait for slot 1 to leave the previous generation.
        assert!(!s.reload(served("3")));
        assert_eq!(s.reloads_applied(), 1);
        assert!(
            s.close(1, now),
            "the last user of the previous generation closed"
        );
        s.apply_reload(|_| rotations += 1);
        assert_eq!((rotations, s.reloads_applied()), (2, 2));
        let n = serve(&mut s, 0, b"GET /v HTTP/1.1\r\nHost: t\r\n\r\n", &mut out);
        assert!(out[..n].ends_with(b"\r\n\r\n3"));
    }

    #[test]
    fn drain_reaches_live_and_later_connections_and_the_sweep_runs_once_a_period() {
        let mut s = sessions();
        let port = s.tally_slot(80);
        let t0 = Instant::from_secs(1);
        assert_eq!(s.poll_timeout(), None, "nothing live, nothing to sweep");
        s.open(0, t0, port, HttpConn::new);
        assert_eq!(s.poll_timeout(), Some(t0));
        assert!(s.sweep_due(t0));
        assert!(!s.sweep_due(t0 + Duration::from_millis(249)));
        assert!(s.sweep_due(t0 + SWEEP_PERIOD));
        s.begin_drain();
        s.open(1, t0, port, HttpConn::new);
        assert!(s.is_draining());
        let mut out = vec![0u8; 4096];
        for i in 0..2 {
            let n = serve(&mut s, i, b"GET /v HTTP/1.1\r\nHost: t\r\n\r\n", &mut out);
            let text = String::from_utf8_lossy(&out[..n]).into_owned();
            assert!(text.contains("Connection: close\r\n"), "{text}");
        }
    }

    #[test]
    fn the_http_deadline_fires_only_when_due() {
        let mut s = sessions();
        let port = s.tally_slot(80);
        let t0 = Instant::from_secs(1);
        s.open(0, t0, port, HttpConn::new);
        let due = s.get(0).unwrap().poll_timeout().unwrap();
        assert!(!s.handle_http_timeout(0, due - Duration::from_millis(1)));
        assert!(s.handle_http_timeout(0, due));
        assert!(s.get(0).unwrap().wants_close(), "the idle timeout closes");
        assert!(!s.handle_http_timeout(5, due), "no such slot");
    }

    #[test]
    fn send_stall_expires_only_without_progress_for_the_whole_limit() {
        let limit = Duration::from_secs(5);
        let t = Instant::from_secs(10);
        let mut stall = SendStall::default();
        assert!(
            !stall.check(t, Some(7), limit),
            "first sight starts the stall"
        );
        assert!(!stall.check(t + Duration::from_secs(4), Some(7), limit));
        // Progress restarts it.
        assert!(!stall.check(t + Duration::from_secs(4), Some(8), limit));
        assert!(!stall.check(t + Duration::from_secs(8), Some(8), limit));
        assert!(stall.check(t + Duration::from_secs(9), Some(8), limit));
        assert_eq!(stall.since(), None, "forgotten once it fired");
        // Nothing waiting ends it.
        assert!(!stall.check(t, Some(1), limit));
        assert!(!stall.check(t + Duration::from_secs(3), None, limit));
        assert!(!stall.check(t + Duration::from_secs(6), Some(1), limit));
        // `restart` dates the stall from the given instant even without progress.
        stall.restart(t + Duration::from_secs(20), 1);
        assert!(!stall.check(t + Duration::from_secs(24), Some(1), limit));
        assert!(stall.check(t + Duration::from_secs(25), Some(1), limit));
    }
}
