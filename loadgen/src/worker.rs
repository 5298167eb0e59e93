//! One load thread: its share of the connections in one epoll set, driven edge-triggered.
//!
//! Each connection *slot* holds at most one socket, the requests outstanding on it (their
//! intended and actual send times, oldest first), a byte count of requests not yet written and
//! a [`ResponseParser`]. Responses are matched to requests in order. Nothing is allocated per
//! request: the request bytes are shared and repeated ([`RequestBytes`]), reads go to one
//! buffer per thread, a slot's queue is sized to the pipeline depth.
//!
//! Modes:
//! - closed loop, keep-alive: a slot refills its pipeline as soon as a response frees room;
//! - closed loop, churn: a free slot connects, sends one request with `Connection: close`,
//!   reads the response, waits for the server's FIN (so the server, not loadgen, holds the
//!   TIME_WAIT) and is free again;
//! - open loop: requests become due on the [`Schedule`], woken by a timerfd armed at the next
//!   due time (no spinning, no millisecond rounding). A due request goes to the slot that has
//!   waited longest with room for it (a FIFO of slots with room); when every slot is full it
//!   waits in a FIFO backlog and goes out on the first slot that frees up. Its latency counts
//!   from its due time either way, so time spent waiting for a busy connection is measured,
//!   not omitted (wrk2's correction). With churn, "room" is a free slot and the request's
//!   connect is part of its latency.
//!
//! HTTPS: a connection's TCP handshake is followed by its TLS handshake (state
//! `Handshaking`), driven sans-IO through its rustls [`ClientConnection`]: ciphertext read
//! into the thread's buffer is handed to `read_tls` and `process_new_packets`, plaintext is
//! drained into a second per-thread buffer and parsed as before, request bytes go through
//! `writer()` and `write_tls` writes the records. A connection is established (counted, its
//! handshake time recorded, requests given to it) when its TLS handshake ends; a keep-alive
//! run finishes every TLS handshake before the clock starts. rustls allocates a buffer per
//! record it encrypts or decrypts (`crate::tls`).
//!
//! Timeouts are checked on a tick of a tenth of the timeout (at most 100 ms): a request still
//! without its response `timeout` after its due time fails with every request on its
//! connection, which is closed and reopened; a backlog entry that old fails alone.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::report::{ErrorKind, Stats};
use crate::request::RequestBytes;
use crate::response::{Eof, Expect, Response, ResponseParser};
use crate::scenario::{Scenario, Stop};
use crate::schedule::{Bound, Schedule};
use crate::sys::{self, Epoll, Event, TimerFd};
use crate::tls::{self, Negotiated, TlsClient};
use crate::Error;
use rustls::ClientConnection;

const TIMER_TOKEN: u64 = u64::MAX;
const READ_BUF: usize = 256 * 1024;
/// HTTPS: decrypted bytes are drained into this (a TLS record holds at most 16 KiB).
const PLAIN_BUF: usize = 64 * 1024;
const EVENTS: usize = 256;
const NS_PER_MS: u64 = 1_000_000;

/// What every thread of a run shares, read-only but for the request budget.
pub(crate) struct Plan {
    pub addr: SocketAddr,
    pub request: RequestBytes,
    pub expect: Expect,
    /// Requests outstanding per connection (1 with churn).
    pub depth: usize,
    pub churn: bool,
    pub rate: Option<f64>,
    pub threads: usize,
    pub stop: Stop,
    pub warmup_ns: u64,
    pub timeout_ns: u64,
    /// Closed loop with a request count: requests claimed so far by all threads.
    pub claimed: AtomicU64,
    /// HTTPS: the client settings every connection starts from.
    pub tls: Option<TlsClient>,
}

impl Plan {
    /// The plan of `s`; fails when its TLS settings cannot be used (a CA file, a name).
    pub fn new(s: &Scenario) -> Result<Plan, Error> {
        let tls = match &s.tls {
            Some(t) => Some(TlsClient::new(t, &s.target.host)?),
            None => None,
        };
        Ok(Plan {
            addr: s.target.addr,
            request: RequestBytes::new(s, s.pipeline),
            expect: s.expect.clone(),
            depth: s.pipeline,
            churn: s.churn,
            rate: s.rate,
            threads: s.threads,
            stop: s.stop,
            warmup_ns: duration_ns(s.warmup),
            timeout_ns: duration_ns(s.timeout).max(1),
            claimed: AtomicU64::new(0),
            tls,
        })
    }
}

fn duration_ns(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Counters a thread publishes for the progress line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Progress {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    /// When the request was due: its latency starts here.
    intended: u64,
    /// When it was handed to its connection.
    sent: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    Closed,
    Connecting {
        since: u64,
    },
    /// HTTPS: TCP is up, the TLS handshake is not over (`since`: the connect(2)).
    Handshaking {
        since: u64,
    },
    Open,
    /// Churn: the response is in; waiting for the server's FIN.
    Lingering {
        since: u64,
    },
}

struct Slot {
    /// Bumped whenever the socket goes, so events of an old socket are recognised.
    generation: u32,
    stream: Option<TcpStream>,
    state: ConnState,
    inflight: VecDeque<Pending>,
    /// Bytes of outstanding requests not written yet.
    unsent: usize,
    parser: ResponseParser,
    /// In the open loop's queue of slots with room.
    queued: bool,
    /// The server announced it closes after a response: send nothing more.
    closing: bool,
    /// HTTPS: the connection's TLS state, from the end of the TCP handshake.
    tls: Option<ClientConnection>,
}

impl Slot {
    fn new(depth: usize) -> Slot {
        Slot {
            generation: 0,
            stream: None,
            state: ConnState::Closed,
            inflight: VecDeque::with_capacity(depth),
            unsent: 0,
            parser: ResponseParser::new(),
            queued: false,
            closing: false,
            tls: None,
        }
    }
}

fn token(index: usize, generation: u32) -> u64 {
    (u64::from(generation) << 32) | index as u64
}

pub(crate) struct Worker {
    plan: Arc<Plan>,
    progress: Arc<Progress>,
    epoll: Epoll,
    timer: Option<TimerFd>,
    schedule: Option<Schedule>,
    slots: Vec<Slot>,
    /// Open loop, keep-alive: slots with room, longest waiting first.
    room: VecDeque<u32>,
    /// Slots without a connection and nothing to do yet: churn slots free for a request,
    /// keep-alive slots to reconnect when there is demand (open loop).
    idle: Vec<u32>,
    /// Slots to act on at the next turn of the loop (reconnect, start a churn request).
    todo: Vec<u32>,
    todo_spare: Vec<u32>,
    /// Open loop: due requests waiting for room, oldest first (their due times).
    backlog: VecDeque<u64>,
    /// Slots with unsent bytes to write at the end of this turn.
    dirty: Vec<u32>,
    rbuf: Box<[u8]>,
    /// HTTPS: decrypted bytes (empty for plain HTTP).
    pbuf: Box<[u8]>,
    events: Vec<Event>,
    stats: Stats,
    start: u64,
    measure_start: u64,
    /// Duration runs: no request is started from here on.
    end: Option<u64>,
    measuring: bool,
    /// No new requests: finish the outstanding ones and return.
    stopping: bool,
    cpu_at_start: (std::time::Duration, std::time::Duration),
}

impl Worker {
    pub fn new(
        plan: Arc<Plan>,
        progress: Arc<Progress>,
        connections: usize,
    ) -> Result<Worker, Error> {
        let epoll = Epoll::new().map_err(|e| Error::os("epoll_create1", e))?;
        let timer = match plan.rate {
            Some(_) => {
                sys::minimise_timer_slack()
                    .map_err(|e| Error::os("prctl(PR_SET_TIMERSLACK)", e))?;
                let t = TimerFd::new().map_err(|e| Error::os("timerfd_create", e))?;
                epoll
                    .add(t.raw_fd(), sys::EPOLLIN | sys::EPOLLET, TIMER_TOKEN)
                    .map_err(|e| Error::os("epoll_ctl", e))?;
                Some(t)
            }
            None => None,
        };
        let depth = plan.depth;
        let plan_tls = plan.tls.is_some();
        Ok(Worker {
            plan,
            progress,
            epoll,
            timer,
            schedule: None,
            slots: (0..connections).map(|_| Slot::new(depth)).collect(),
            room: VecDeque::with_capacity(connections),
            idle: Vec::with_capacity(connections),
            todo: Vec::with_capacity(connections),
            todo_spare: Vec::with_capacity(connections),
            backlog: VecDeque::new(),
            dirty: Vec::with_capacity(connections),
            rbuf: vec![0u8; READ_BUF].into_boxed_slice(),
            pbuf: vec![0u8; if plan_tls { PLAIN_BUF } else { 0 }].into_boxed_slice(),
            events: sys::empty_events(EVENTS),
            stats: Stats::default(),
            start: 0,
            measure_start: 0,
            end: None,
            measuring: false,
            stopping: false,
            cpu_at_start: (Default::default(), Default::default()),
        })
    }

    /// Keep-alive runs: opens every connection before the clock starts. Any failure, or a
    /// handshake not done within the timeout, fails the run.
    pub fn connect_all(&mut self) -> Result<(), Error> {
        if self.plan.churn {
            return Ok(());
        }
        let addr = self.plan.addr;
        let now = sys::now_ns();
        for i in 0..self.slots.len() {
            self.open_socket(i, now)
                .map_err(|source| Error::Connect { addr, source })?;
        }
        let deadline = now + self.plan.timeout_ns;
        let mut open = 0;
        while open < self.slots.len() {
            let now = sys::now_ns();
            if now >= deadline {
                return Err(Error::Connect {
                    addr,
                    source: io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "{} of {} connections not established within the timeout",
                            self.slots.len() - open,
                            self.slots.len()
                        ),
                    ),
                });
            }
            let n = self
                .epoll
                .wait(&mut self.events, ms_until(now, deadline))
                .map_err(|e| Error::os("epoll_wait", e))?;
            for e in 0..n {
                let ev = self.events[e];
                let t = sys::event_token(&ev);
                let i = (t & 0xffff_ffff) as usize;
                if t == TIMER_TOKEN || i >= self.slots.len() {
                    continue;
                }
                let flags = sys::event_flags(&ev);
                let slot = &mut self.slots[i];
                let done = match slot.state {
                    ConnState::Connecting { since } => {
                        let stream = slot.stream.as_ref().expect("connecting slot has a socket");
                        if let Some(source) = connect_error(stream, flags) {
                            return Err(Error::Connect { addr, source });
                        }
                        if flags & sys::EPOLLOUT == 0 {
                            false
                        } else if self.plan.tls.is_none() {
                            slot.state = ConnState::Open;
                            true
                        } else {
                            self.start_tls(i, since)
                                .and_then(|()| self.pump_handshake(i))
                                .map_err(|source| Error::Connect { addr, source })?
                        }
                    }
                    ConnState::Handshaking { .. } => self
                        .pump_handshake(i)
                        .map_err(|source| Error::Connect { addr, source })?,
                    _ => false,
                };
                if done {
                    open += 1;
                }
            }
        }
        Ok(())
    }

    /// HTTPS: the TCP handshake of slot `i` is over; starts its TLS handshake (the
    /// ClientHello is queued, not yet written).
    fn start_tls(&mut self, i: usize, since: u64) -> io::Result<()> {
        let client = self.plan.tls.as_ref().expect("an HTTPS run");
        let conn = client.connect().map_err(io::Error::other)?;
        let slot = &mut self.slots[i];
        slot.tls = Some(conn);
        slot.state = ConnState::Handshaking { since };
        Ok(())
    }

    /// Before the clock starts ([`Worker::connect_all`]): reads what the server sent, writes
    /// what the handshake needs; whether the TLS handshake is over (the slot is then open).
    fn pump_handshake(&mut self, i: usize) -> io::Result<bool> {
        let slot = &mut self.slots[i];
        let (Some(stream), Some(conn)) = (&slot.stream, slot.tls.as_mut()) else {
            return Err(io::Error::other("no TLS connection"));
        };
        let mut sock: &TcpStream = stream;
        loop {
            match sock.read(&mut self.rbuf) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection during the TLS handshake",
                    ))
                }
                Ok(n) => {
                    let mut data = &self.rbuf[..n];
                    while !data.is_empty() {
                        conn.read_tls(&mut data)?;
                        if let Err(e) = conn.process_new_packets() {
                            // Tell the server why (rustls queued an alert), then give up.
                            let _ = conn.write_tls(&mut sock);
                            return Err(io::Error::other(format!("TLS handshake: {e}")));
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        while conn.wants_write() {
            match conn.write_tls(&mut sock) {
                Ok(_) => {}
                // The rest goes out on the next EPOLLOUT edge, which calls this again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if conn.is_handshaking() {
            return Ok(false);
        }
        count_handshake(&mut self.stats, conn);
        slot.state = ConnState::Open;
        Ok(true)
    }

    /// Runs from `start` (ns, [`sys::now_ns`]'s clock, the same for every thread) until the
    /// run's end and the last outstanding request's outcome.
    pub fn run(mut self, start: u64, thread: usize) -> Result<Stats, Error> {
        let plan = Arc::clone(&self.plan);
        self.start = start;
        self.measure_start = start + plan.warmup_ns;
        self.end = match plan.stop {
            Stop::Duration(d) => Some(self.measure_start + duration_ns(d)),
            Stop::Requests(_) => None,
        };
        if let Some(rate) = plan.rate {
            let bound = match (plan.stop, self.end) {
                (_, Some(end)) => Bound::Until(end),
                (Stop::Requests(n), None) => Bound::Count(n),
                (Stop::Duration(_), None) => unreachable!("a duration run has an end"),
            };
            self.schedule = Some(Schedule::new(
                start,
                self.measure_start,
                rate,
                thread,
                plan.threads,
                bound,
            ));
        }
        while sys::now_ns() < start {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let now = sys::now_ns();
        self.begin_measurement_if_due(now);
        for i in 0..self.slots.len() {
            match (self.slots[i].state, plan.churn) {
                (ConnState::Open, _) => self.has_room(i as u32, now),
                _ => self.todo.push(i as u32),
            }
        }
        let tick = (plan.timeout_ns / 10).clamp(NS_PER_MS, 100 * NS_PER_MS);
        let mut next_tick = now + tick;
        loop {
            let now = sys::now_ns();
            self.begin_measurement_if_due(now);
            if self.end.is_some_and(|end| now >= end) {
                self.stopping = true;
            }
            if let Some(schedule) = &mut self.schedule {
                while let Some(due) = schedule.pop_due(now) {
                    self.backlog.push_back(due);
                }
                if schedule.done() {
                    self.stopping = true;
                }
            }
            self.do_todo(now);
            if now >= next_tick {
                self.expire(now);
                next_tick = now + tick;
            }
            self.assign_backlog(now);
            self.flush_dirty();
            self.publish();
            if self.stopping && self.todo.is_empty() && self.quiet() {
                break;
            }
            if let (Some(timer), Some(schedule)) = (&mut self.timer, &self.schedule) {
                timer
                    .arm_at(schedule.peek().unwrap_or(0))
                    .map_err(|e| Error::os("timerfd_settime", e))?;
            }
            let mut wake = next_tick;
            if !self.measuring {
                wake = wake.min(self.measure_start);
            }
            if let (Some(end), false) = (self.end, self.stopping) {
                wake = wake.min(end);
            }
            let timeout = if self.todo.is_empty() {
                ms_until(now, wake)
            } else {
                0
            };
            let n = self
                .epoll
                .wait(&mut self.events, timeout)
                .map_err(|e| Error::os("epoll_wait", e))?;
            let now = sys::now_ns();
            for e in 0..n {
                let ev = self.events[e];
                let t = sys::event_token(&ev);
                if t == TIMER_TOKEN {
                    if let Some(timer) = &mut self.timer {
                        timer.fired();
                    }
                    continue;
                }
                self.on_event(
                    (t & 0xffff_ffff) as usize,
                    (t >> 32) as u32,
                    sys::event_flags(&ev),
                    now,
                );
            }
        }
        let (user, system) = sys::thread_cpu_time();
        self.stats.cpu_user = user.saturating_sub(self.cpu_at_start.0);
        self.stats.cpu_system = system.saturating_sub(self.cpu_at_start.1);
        self.publish();
        Ok(self.stats)
    }

    /// At the end of the warm-up: counters of bytes, connections and CPU start from zero
    /// (requests are counted by their due time instead).
    fn begin_measurement_if_due(&mut self, now: u64) {
        if self.measuring || now < self.measure_start {
            return;
        }
        self.measuring = true;
        self.stats.bytes_sent = 0;
        self.stats.bytes_received = 0;
        self.stats.connections = Default::default();
        // What was negotiated stays: a keep-alive run's handshakes all came before.
        self.stats.tls.handshakes_full = 0;
        self.stats.tls.handshakes_resumed = 0;
        self.stats.connect_latency.reset();
        self.cpu_at_start = sys::thread_cpu_time();
    }

    fn publish(&self) {
        self.progress.ok.store(self.stats.ok, Ordering::Relaxed);
        self.progress
            .failed
            .store(self.stats.errors.total(), Ordering::Relaxed);
    }

    /// No request outstanding anywhere.
    fn quiet(&self) -> bool {
        self.backlog.is_empty() && self.slots.iter().all(|s| s.inflight.is_empty())
    }

    /// Closed loop: may one more request start now? Claims it from a request budget.
    fn claim(&mut self, now: u64) -> bool {
        if self.stopping {
            return false;
        }
        if now < self.measure_start {
            return true;
        }
        if let Stop::Requests(n) = self.plan.stop {
            if self.plan.claimed.fetch_add(1, Ordering::Relaxed) >= n {
                self.stopping = true;
                return false;
            }
        }
        true
    }

    fn record(&mut self, p: Pending, outcome: Result<(), ErrorKind>, now: u64) {
        if p.intended < self.measure_start {
            return;
        }
        self.stats.last_outcome_ns = self.stats.last_outcome_ns.max(now);
        match outcome {
            Ok(()) => {
                self.stats.ok += 1;
                self.stats
                    .latency
                    .saturating_record(now.saturating_sub(p.intended));
                self.stats
                    .latency_uncorrected
                    .saturating_record(now.saturating_sub(p.sent));
                self.stats
                    .send_lag
                    .saturating_record(p.sent.saturating_sub(p.intended));
            }
            Err(kind) => self.stats.errors.add(kind),
        }
    }

    /// Starts a connection on a closed slot. Errors are the caller's to count.
    fn open_socket(&mut self, i: usize, now: u64) -> io::Result<()> {
        self.stats.connections.attempted += 1;
        let (stream, _) = sys::connect_nonblocking(&self.plan.addr)?;
        let slot = &mut self.slots[i];
        let events = sys::EPOLLIN | sys::EPOLLOUT | sys::EPOLLRDHUP | sys::EPOLLET;
        self.epoll
            .add(stream.as_raw_fd(), events, token(i, slot.generation))?;
        slot.stream = Some(stream);
        slot.state = ConnState::Connecting { since: now };
        Ok(())
    }

    /// Opens a connection; a failure is counted like a failed handshake.
    fn connect(&mut self, i: usize, now: u64) {
        if self.open_socket(i, now).is_err() {
            self.connect_failed(i, now);
        }
    }

    /// A connection attempt failed: its request fails as `connect` (churn); a keep-alive slot
    /// charges the request it would have sent next (closed loop) or the oldest waiting one
    /// (open loop), so a dead server costs requests, not a busy loop.
    fn connect_failed(&mut self, i: usize, now: u64) {
        self.connect_failed_as(i, ErrorKind::Connect, now);
    }

    /// [`Worker::connect_failed`], the requests failing as `kind` (`tls` for a TLS handshake
    /// that failed).
    fn connect_failed_as(&mut self, i: usize, kind: ErrorKind, now: u64) {
        self.stats.connections.failed += 1;
        if self.slots[i].inflight.is_empty() {
            let charged = if self.plan.rate.is_none() {
                self.claim(now).then_some(now)
            } else {
                self.backlog.pop_front()
            };
            if let Some(due) = charged {
                self.record(
                    Pending {
                        intended: due,
                        sent: now,
                    },
                    Err(kind),
                    now,
                );
            }
        }
        while let Some(p) = self.slots[i].inflight.pop_front() {
            self.record(p, Err(kind), now);
        }
        self.close_slot(i);
        let retry = self.plan.churn || self.plan.rate.is_none() || !self.backlog.is_empty();
        if retry {
            self.todo.push(i as u32);
        } else {
            self.idle.push(i as u32);
        }
    }

    fn close_slot(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        debug_assert!(slot.inflight.is_empty());
        slot.stream = None;
        slot.generation = slot.generation.wrapping_add(1);
        slot.state = ConnState::Closed;
        slot.parser.reset();
        slot.unsent = 0;
        slot.queued = false;
        slot.closing = false;
        slot.tls = None;
    }

    /// Fails every outstanding request of a connection (the oldest as `first`, the others as
    /// `rest`), closes it and lets the slot start again.
    fn fail_connection(&mut self, i: usize, first: ErrorKind, rest: ErrorKind, now: u64) {
        let mut kind = first;
        while let Some(p) = self.slots[i].inflight.pop_front() {
            self.record(p, Err(kind), now);
            kind = rest;
        }
        self.close_slot(i);
        self.todo.push(i as u32);
    }

    /// Slots queued for action: reconnect, or start a churn request.
    fn do_todo(&mut self, now: u64) {
        // Swap in the spare list so the calls below can queue slots for the next turn
        // without allocating.
        let mut work = std::mem::take(&mut self.todo_spare);
        std::mem::swap(&mut work, &mut self.todo);
        for &i in &work {
            let i = i as usize;
            if self.slots[i].state != ConnState::Closed {
                continue;
            }
            match (self.plan.churn, self.plan.rate.is_some()) {
                // Closed-loop churn: a free slot starts the next request's connection.
                (true, false) => {
                    if self.claim(now) {
                        self.slots[i].inflight.push_back(Pending {
                            intended: now,
                            sent: now,
                        });
                        self.connect(i, now);
                    } else {
                        self.idle.push(i as u32);
                    }
                }
                (true, true) => self.idle.push(i as u32),
                // Closed-loop keep-alive: reconnect at once while the run goes on.
                (false, false) if !self.stopping => self.connect(i, now),
                // Open-loop keep-alive: reconnect at once while the run goes on or requests
                // wait, else when demand comes.
                (false, true) if !self.stopping || !self.backlog.is_empty() => self.connect(i, now),
                (false, _) => self.idle.push(i as u32),
            }
        }
        work.clear();
        self.todo_spare = work;
    }

    /// A keep-alive slot has room: closed loop fills it, open loop queues it.
    fn has_room(&mut self, idx: u32, now: u64) {
        let i = idx as usize;
        if self.plan.rate.is_none() {
            let depth = self.plan.depth;
            let len = self.plan.request.len();
            while {
                let s = &self.slots[i];
                s.state == ConnState::Open && !s.closing && s.inflight.len() < depth
            } && self.claim(now)
            {
                let s = &mut self.slots[i];
                s.inflight.push_back(Pending {
                    intended: now,
                    sent: now,
                });
                s.unsent += len;
            }
            self.mark_dirty(i);
        } else if !self.slots[i].queued {
            self.slots[i].queued = true;
            self.room.push_back(idx);
        }
    }

    fn mark_dirty(&mut self, i: usize) {
        if self.slots[i].unsent > 0 {
            self.dirty.push(i as u32);
        }
    }

    /// Open loop: hands waiting requests to slots with room, oldest request first.
    fn assign_backlog(&mut self, now: u64) {
        if self.plan.rate.is_none() {
            return;
        }
        let len = self.plan.request.len();
        let depth = self.plan.depth;
        while let Some(&due) = self.backlog.front() {
            if self.plan.churn {
                let Some(i) = self.idle.pop() else { break };
                let i = i as usize;
                if self.slots[i].state != ConnState::Closed {
                    continue;
                }
                self.backlog.pop_front();
                self.slots[i].inflight.push_back(Pending {
                    intended: due,
                    sent: now,
                });
                self.connect(i, now);
                continue;
            }
            let Some(idx) = self.room.pop_front() else {
                break;
            };
            let i = idx as usize;
            let s = &mut self.slots[i];
            s.queued = false;
            if s.state != ConnState::Open || s.closing || s.inflight.len() >= depth {
                continue;
            }
            self.backlog.pop_front();
            s.inflight.push_back(Pending {
                intended: due,
                sent: now,
            });
            s.unsent += len;
            if s.inflight.len() < depth {
                s.queued = true;
                self.room.push_back(idx);
            }
            self.dirty.push(idx);
        }
        if !self.backlog.is_empty() && !self.plan.churn {
            // Demand with no room: bring back connections the server closed.
            while let Some(i) = self.idle.pop() {
                if self.slots[i as usize].state == ConnState::Closed {
                    self.connect(i as usize, now);
                }
            }
        }
    }

    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for &i in &dirty {
            self.flush(i as usize);
        }
        dirty.clear();
        self.dirty = dirty;
    }

    /// Writes unsent requests until done or the socket buffer is full (the edge-triggered
    /// EPOLLOUT resumes it).
    fn flush(&mut self, i: usize) {
        if self.plan.tls.is_some() {
            self.flush_tls(i);
            return;
        }
        loop {
            let s = &mut self.slots[i];
            if s.unsent == 0 || s.state != ConnState::Open {
                return;
            }
            let Some(stream) = &s.stream else { return };
            let chunk = self.plan.request.next_chunk(s.unsent);
            let mut w: &TcpStream = stream;
            match w.write(chunk) {
                Ok(n) => {
                    s.unsent -= n;
                    self.stats.bytes_sent += n as u64;
                    if n < chunk.len() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let kind = ErrorKind::of_io(&e);
                    self.fail_connection(i, kind, kind, sys::now_ns());
                    return;
                }
            }
        }
    }

    /// HTTPS: hands unsent requests to rustls (an open connection only; it accepts up to its
    /// buffer limit) and writes its records until done or the socket buffer is full.
    fn flush_tls(&mut self, i: usize) {
        loop {
            let s = &mut self.slots[i];
            let (Some(stream), Some(conn)) = (&s.stream, s.tls.as_mut()) else {
                return;
            };
            if s.state == ConnState::Open {
                while s.unsent > 0 {
                    let chunk = self.plan.request.next_chunk(s.unsent);
                    match conn.writer().write(chunk) {
                        Ok(n) if n > 0 => s.unsent -= n,
                        // Its buffer is full: the records below make room.
                        _ => break,
                    }
                }
            }
            if !conn.wants_write() {
                return;
            }
            let mut w: &TcpStream = stream;
            match conn.write_tls(&mut w) {
                Ok(0) => return,
                Ok(n) => self.stats.bytes_sent += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let kind = ErrorKind::of_io(&e);
                    self.fail_connection(i, kind, kind, sys::now_ns());
                    return;
                }
            }
        }
    }

    /// The connection of slot `i` is ready for requests (TCP connected, or with HTTPS the TLS
    /// handshake over): counted, its handshake time recorded, and given work.
    fn established(&mut self, i: usize, since: u64, now: u64) {
        self.slots[i].state = ConnState::Open;
        self.stats.connections.established += 1;
        self.stats
            .connect_latency
            .saturating_record(now.saturating_sub(since));
        if self.plan.churn {
            self.slots[i].unsent = self.plan.request.len();
        } else {
            self.has_room(i as u32, now);
        }
        self.flush(i);
    }

    /// HTTPS: a TLS failure (an alert, a bad record): during the handshake it fails like a
    /// connect, its requests as `tls`; after it, every outstanding request fails (the oldest
    /// as `tls`) and the connection closes.
    fn tls_failed(&mut self, i: usize, now: u64) {
        let s = &mut self.slots[i];
        if let (Some(stream), Some(conn)) = (&s.stream, s.tls.as_mut()) {
            // rustls queued an alert that says why; the server may log it.
            let mut w: &TcpStream = stream;
            let _ = conn.write_tls(&mut w);
        }
        if let ConnState::Handshaking { .. } = s.state {
            self.connect_failed_as(i, ErrorKind::Tls, now);
        } else {
            self.fail_connection(i, ErrorKind::Tls, ErrorKind::Closed, now);
        }
    }

    /// HTTPS: ciphertext read from slot `i`'s socket; decrypts it, ends the handshake when it
    /// does, and hands the plaintext to the response parser.
    fn on_tls_bytes(&mut self, i: usize, mut data: &[u8], now: u64) {
        let generation = self.slots[i].generation;
        let mut plain = std::mem::take(&mut self.pbuf);
        'records: while !data.is_empty() {
            let s = &mut self.slots[i];
            if s.generation != generation {
                break;
            }
            let since = match s.state {
                ConnState::Handshaking { since } => Some(since),
                ConnState::Open => None,
                // Churn's close_notify after the response, or a closed slot: nothing to read.
                _ => break,
            };
            let Some(conn) = s.tls.as_mut() else { break };
            // Never handed an empty slice, so rustls never takes it for the end of the stream.
            let ok = conn.read_tls(&mut data).is_ok() && conn.process_new_packets().is_ok();
            if !ok {
                self.tls_failed(i, now);
                break;
            }
            if let (Some(since), false) = (since, conn.is_handshaking()) {
                count_handshake(&mut self.stats, conn);
                self.established(i, since, now);
            }
            loop {
                let s = &mut self.slots[i];
                if s.generation != generation {
                    break 'records;
                }
                let Some(conn) = s.tls.as_mut() else {
                    break 'records;
                };
                match conn.reader().read(&mut plain) {
                    Ok(n) if n > 0 => self.on_bytes(i, &plain[..n], now),
                    // 0: the server's close_notify (its FIN follows); WouldBlock: all read.
                    _ => break,
                }
            }
        }
        self.pbuf = plain;
    }

    fn on_event(&mut self, i: usize, generation: u32, flags: u32, now: u64) {
        if i >= self.slots.len() || self.slots[i].generation != generation {
            return;
        }
        match self.slots[i].state {
            ConnState::Closed => {}
            ConnState::Connecting { since } => {
                let stream = self.slots[i].stream.as_ref().expect("socket");
                if connect_error(stream, flags).is_some() {
                    self.connect_failed(i, now);
                    return;
                }
                if flags & sys::EPOLLOUT == 0 {
                    return;
                }
                if self.plan.tls.is_some() {
                    if self.start_tls(i, since).is_err() {
                        self.connect_failed_as(i, ErrorKind::Tls, now);
                        return;
                    }
                    // The ClientHello.
                    self.flush(i);
                } else {
                    self.established(i, since, now);
                }
                if flags & (sys::EPOLLIN | sys::EPOLLRDHUP) != 0
                    && self.slots[i].generation == generation
                {
                    self.read_ready(i, flags);
                }
            }
            ConnState::Open | ConnState::Handshaking { .. } | ConnState::Lingering { .. } => {
                if flags & (sys::EPOLLIN | sys::EPOLLRDHUP | sys::EPOLLHUP | sys::EPOLLERR) != 0 {
                    self.read_ready(i, flags);
                }
                if flags & sys::EPOLLOUT != 0 && self.slots[i].generation == generation {
                    self.flush(i);
                }
            }
        }
    }

    /// Reads until the socket is drained (a short read means it was, unless the peer also
    /// hung up, which needs the read that returns 0).
    fn read_ready(&mut self, i: usize, flags: u32) {
        let generation = self.slots[i].generation;
        let hangup = flags & (sys::EPOLLRDHUP | sys::EPOLLHUP | sys::EPOLLERR) != 0;
        let mut buf = std::mem::take(&mut self.rbuf);
        while let Some(stream) = &self.slots[i].stream {
            let mut r: &TcpStream = stream;
            match r.read(&mut buf) {
                Ok(0) => {
                    self.on_eof(i, sys::now_ns());
                    break;
                }
                Ok(n) => {
                    self.stats.bytes_received += n as u64;
                    if self.plan.tls.is_some() {
                        self.on_tls_bytes(i, &buf[..n], sys::now_ns());
                    } else {
                        self.on_bytes(i, &buf[..n], sys::now_ns());
                    }
                    if self.slots[i].generation != generation || (n < buf.len() && !hangup) {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let kind = ErrorKind::of_io(&e);
                    if self.slots[i].state == ConnState::Open {
                        self.stats.connections.closed_by_server += 1;
                    }
                    self.fail_connection(i, kind, kind, sys::now_ns());
                    break;
                }
            }
        }
        self.rbuf = buf;
        if self.slots[i].generation != generation {
            return;
        }
        match self.slots[i].state {
            ConnState::Open => {
                let now = sys::now_ns();
                if !self.plan.churn && self.slots[i].inflight.len() < self.plan.depth {
                    self.has_room(i as u32, now);
                }
                self.flush(i);
            }
            // What the handshake answers (the client's Finished, ...).
            ConnState::Handshaking { .. } => self.flush(i),
            _ => {}
        }
    }

    fn on_bytes(&mut self, i: usize, mut data: &[u8], now: u64) {
        let generation = self.slots[i].generation;
        while !data.is_empty() {
            let s = &mut self.slots[i];
            if s.generation != generation || s.state != ConnState::Open {
                // Bytes after the response a churned or closing connection was waiting for.
                return;
            }
            match s.parser.feed(data, &self.plan.expect) {
                Ok((n, response)) => {
                    data = &data[n..];
                    if let Some(r) = response {
                        self.on_response(i, r, now);
                    }
                }
                Err(_) => {
                    self.fail_connection(i, ErrorKind::Protocol, ErrorKind::Closed, now);
                    return;
                }
            }
        }
    }

    fn on_response(&mut self, i: usize, r: Response, now: u64) {
        let Some(p) = self.slots[i].inflight.pop_front() else {
            // A response nobody asked for: the stream is out of step.
            if now >= self.measure_start {
                self.stats.errors.add(ErrorKind::Protocol);
            }
            self.fail_connection(i, ErrorKind::Protocol, ErrorKind::Closed, now);
            return;
        };
        self.record(p, r.verdict.map_err(ErrorKind::from), now);
        if self.plan.churn {
            if r.close {
                // Let the server close first, so the TIME_WAIT is its own.
                self.slots[i].state = ConnState::Lingering { since: now };
            } else {
                self.close_slot(i);
                self.todo.push(i as u32);
            }
        } else if r.close || self.slots[i].closing {
            self.slots[i].closing = true;
            self.stats.connections.closed_by_server += 1;
            self.fail_connection(i, ErrorKind::Closed, ErrorKind::Closed, now);
        }
    }

    fn on_eof(&mut self, i: usize, now: u64) {
        match self.slots[i].state {
            ConnState::Lingering { .. } => {
                self.close_slot(i);
                self.todo.push(i as u32);
                return;
            }
            ConnState::Handshaking { .. } => {
                self.connect_failed_as(i, ErrorKind::Tls, now);
                return;
            }
            _ => {}
        }
        self.stats.connections.closed_by_server += 1;
        let eof = self.slots[i].parser.eof(&self.plan.expect);
        match eof {
            Eof::Clean => self.fail_connection(i, ErrorKind::Closed, ErrorKind::Closed, now),
            Eof::Complete(r) => {
                if let Some(p) = self.slots[i].inflight.pop_front() {
                    self.record(p, r.verdict.map_err(ErrorKind::from), now);
                }
                self.fail_connection(i, ErrorKind::Closed, ErrorKind::Closed, now);
            }
            Eof::Truncated { in_body } => {
                let first = if in_body {
                    ErrorKind::ShortBody
                } else {
                    ErrorKind::Closed
                };
                self.fail_connection(i, first, ErrorKind::Closed, now);
            }
        }
    }

    /// Timeouts: handshakes, requests on connections, requests still waiting for room, and
    /// churned connections whose server never sent its FIN.
    fn expire(&mut self, now: u64) {
        let timeout = self.plan.timeout_ns;
        for i in 0..self.slots.len() {
            match self.slots[i].state {
                ConnState::Connecting { since } | ConnState::Handshaking { since }
                    if now.saturating_sub(since) >= timeout =>
                {
                    self.connect_failed(i, now);
                }
                ConnState::Lingering { since } if now.saturating_sub(since) >= timeout => {
                    self.close_slot(i);
                    self.todo.push(i as u32);
                }
                ConnState::Open => {
                    if let Some(p) = self.slots[i].inflight.front() {
                        if now.saturating_sub(p.intended) >= timeout {
                            self.fail_connection(i, ErrorKind::Timeout, ErrorKind::Timeout, now);
                        }
                    }
                }
                _ => {}
            }
        }
        while let Some(&due) = self.backlog.front() {
            if now.saturating_sub(due) < timeout {
                break;
            }
            self.backlog.pop_front();
            self.record(
                Pending {
                    intended: due,
                    sent: now,
                },
                Err(ErrorKind::Timeout),
                now,
            );
        }
    }
}

/// Counts a finished TLS handshake by kind, and keeps the first one's parameters.
fn count_handshake(stats: &mut Stats, conn: &ClientConnection) {
    if tls::resumed(conn) {
        stats.tls.handshakes_resumed += 1;
    } else {
        stats.tls.handshakes_full += 1;
    }
    stats
        .tls
        .negotiated
        .get_or_insert_with(|| Negotiated::of(conn));
}

/// The error of a connecting socket that epoll reported, if the handshake failed.
fn connect_error(stream: &TcpStream, flags: u32) -> Option<io::Error> {
    match stream.take_error() {
        Ok(Some(e)) => Some(e),
        Err(e) => Some(e),
        Ok(None) if flags & (sys::EPOLLERR | sys::EPOLLHUP) != 0 => Some(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "connection closed during the handshake",
        )),
        Ok(None) => None,
    }
}

/// Milliseconds from `now` until `deadline`, rounded up, for epoll_wait.
fn ms_until(now: u64, deadline: u64) -> i32 {
    let ns = deadline.saturating_sub(now);
    i32::try_from(ns.div_ceil(NS_PER_MS)).unwrap_or(i32::MAX)
}
