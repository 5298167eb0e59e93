//! The answers in force — the routes ([`App`]) and the HTTP limits — and how a reload replaces
//! them without dropping a connection.
//!
//! A response in progress holds ids into the [`App`] it started with, so an `App` cannot be
//! replaced under it. [`Answers`] therefore keeps two generations: the current one, which new
//! connections and connections between requests use, and the previous one, kept only while
//! connections are still in the middle of a request or response that started before the
//! reload. Each connection carries a [`Generation`] tag; the owner (the engine of a poller, or
//! the kernel path) asks [`Answers::for_conn`] which to use, and moves a connection to the
//! current generation when it is between requests ([`Answers::release`]). Once nobody uses
//! the previous generation it is dropped. A reload that arrives while the previous one still
//! has users waits (the newest wins) and is applied when they are done.
//!
//! Cost on the hot path: one tag compare per `process` call. Memory: at most three `App`s.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::app::App;
use crate::http::{HttpConn, HttpLimits};

/// Hands a new generation from the thread that builds it (the main thread, at SIGHUP) to a
/// thread that serves (a poller, the kernel path), which looks once per loop round: one
/// relaxed load while nothing is posted. A newer post replaces one not yet taken.
#[derive(Default)]
pub struct ReloadMailbox {
    posted: AtomicBool,
    next: Mutex<Option<Served>>,
}

impl ReloadMailbox {
    pub fn post(&self, next: Served) {
        *self.next.lock().unwrap_or_else(|e| e.into_inner()) = Some(next);
        self.posted.store(true, Ordering::Release);
    }

    /// The posted generation, if any (never blocks on the poster for long: it holds the
    /// lock only to move a value in).
    pub fn take(&self) -> Option<Served> {
        if !self.posted.load(Ordering::Relaxed) {
            return None;
        }
        let mut slot = self.next.lock().unwrap_or_else(|e| e.into_inner());
        self.posted.store(false, Ordering::Relaxed);
        slot.take()
    }
}

impl std::fmt::Debug for ReloadMailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadMailbox")
            .field("posted", &self.posted.load(Ordering::Relaxed))
            .finish()
    }
}

/// The routes and limits connections are answered with.
pub struct Answers {
    current: Served,
    previous: Option<Served>,
    /// Connections tagged [`Generation::Previous`].
    previous_users: usize,
    /// A reload waiting for the previous generation's users to finish.
    pending: Option<Served>,
    /// Reloads applied so far.
    applied: u64,
    /// The wall clock last set, for the `Date` of a generation that becomes current.
    unix_secs: u64,
}

/// One generation: an [`App`] and the [`HttpLimits`] that go with it.
pub struct Served {
    pub app: App,
    pub limits: HttpLimits,
}

/// Which generation a connection uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Generation {
    #[default]
    Current,
    Previous,
}

impl Answers {
    pub fn new(app: App, limits: HttpLimits) -> Self {
        Answers {
            current: Served { app, limits },
            previous: None,
            previous_users: 0,
            pending: None,
            applied: 0,
            unix_secs: 0,
        }
    }

    /// The generation new connections use.
    pub fn current(&self) -> &Served {
        &self.current
    }

    /// The generation a connection tagged `g` uses.
    pub fn for_conn(&self, g: Generation) -> &Served {
        match (g, &self.previous) {
            (Generation::Previous, Some(p)) => p,
            _ => &self.current,
        }
    }

    /// Sets the wall clock of every generation's `Date`.
    pub fn set_date(&mut self, unix_secs: u64) {
        self.unix_secs = unix_secs;
        self.current.app.set_date(unix_secs);
        if let Some(p) = &mut self.previous {
            p.app.set_date(unix_secs);
        }
    }

    /// Reloads applied so far (a pending one is not counted until it is applied).
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Whether a reload waits for the previous generation's users.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Takes a new generation. Returns true when the owner must now call [`Answers::rotate`]
    /// (then tag its connections with [`Answers::adopt`] and finish with
    /// [`Answers::settle`]); false when it waits for the previous generation's users.
    pub fn offer(&mut self, next: Served) -> bool {
        self.pending = Some(next);
        self.previous.is_none()
    }

    /// Makes the pending generation current; the old current becomes the previous one.
    /// Every live connection must then go through [`Answers::adopt`], then call
    /// [`Answers::settle`].
    pub fn rotate(&mut self) {
        let Some(mut next) = self.pending.take() else {
            return;
        };
        next.app.set_date(self.unix_secs);
        debug_assert!(self.previous.is_none() && self.previous_users == 0);
        let old = std::mem::replace(&mut self.current, next);
        self.previous = Some(old);
        self.previous_users = 0;
        self.applied += 1;
    }

    /// Right after [`Answers::rotate`], for each live connection: one between requests moves
    /// to the current generation now (its limits with it); one in the middle of a request or
    /// response stays on the previous one until [`Answers::release`].
    pub fn adopt(&mut self, tag: &mut Generation, conn: &mut HttpConn) {
        if conn.is_between_requests() {
            *tag = Generation::Current;
            conn.set_limits(self.current.limits);
        } else {
            *tag = Generation::Previous;
            self.previous_users += 1;
        }
    }

    /// After the connections were adopted: drops the previous generation if nobody uses it.
    /// Returns true if another reload is pending and ready (call `rotate` again).
    pub fn settle(&mut self) -> bool {
        if self.previous_users == 0 {
            self.previous = None;
        }
        self.previous.is_none() && self.pending.is_some()
    }

    /// After serving a connection tagged `Previous`: if it is between requests (or done), it
    /// moves to the current generation. Returns true when that made a pending reload ready
    /// (call `rotate`, `adopt`, `settle`).
    pub fn release(&mut self, tag: &mut Generation, conn: &mut HttpConn) -> bool {
        if *tag != Generation::Previous || !conn.is_between_requests() {
            return false;
        }
        conn.set_limits(self.current.limits);
        self.forget(tag)
    }

    /// A connection tagged `Previous` closed. Returns as [`Answers::release`].
    pub fn forget(&mut self, tag: &mut Generation) -> bool {
        if *tag != Generation::Previous {
            return false;
        }
        *tag = Generation::Current;
        self.previous_users = self.previous_users.saturating_sub(1);
        self.settle()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::answering_v as app_saying;
    use crate::time::Instant;

    /// Feeds `input` and returns the output, through a buffer of `out_cap` bytes (one call).
    fn step(
        answers: &Answers,
        tag: Generation,
        conn: &mut HttpConn,
        input: &[u8],
        out_cap: usize,
    ) -> Vec<u8> {
        let mut out = vec![0u8; out_cap];
        let p = conn.process(
            Instant::from_secs(1),
            &answers.for_conn(tag).app,
            input,
            &mut out,
        );
        out.truncate(p.produced);
        out
    }

    fn body(response: &[u8]) -> &[u8] {
        let at = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        &response[at + 4..]
    }

    #[test]
    fn a_response_in_progress_finishes_with_the_routes_it_started_with() {
        let limits = HttpLimits::default();
        let mut answers = Answers::new(app_saying("one"), limits);
        let mut busy = HttpConn::new(limits);
        let mut idle = HttpConn::new(limits);
        let (mut busy_tag, mut idle_tag) = (Generation::Current, Generation::Current);
        let get = b"GET /v HTTP/1.1\r\nHost: x\r\n\r\n";
        let done = step(&answers, idle_tag, &mut idle, get, 4096);
        assert_eq!(body(&done), b"one");
        // `busy` has written only part of its answer when the reload comes.
        let first = step(&answers, busy_tag, &mut busy, get, 20);
        assert_eq!(first.len(), 20);

        let bigger = HttpLimits {
            max_header_bytes: limits.max_header_bytes * 2,
            ..limits
        };
        assert!(answers.offer(Served {
            app: app_saying("two"),
            limits: bigger,
        }));
        answers.rotate();
        answers.adopt(&mut busy_tag, &mut busy);
        answers.adopt(&mut idle_tag, &mut idle);
        assert!(!answers.settle());
        assert_eq!(
            (busy_tag, idle_tag),
            (Generation::Previous, Generation::Current)
        );
        assert_eq!(idle.limits().max_header_bytes, bigger.max_header_bytes);
        assert_eq!(busy.limits().max_header_bytes, limits.max_header_bytes);
        assert_eq!(answers.applied(), 1);

        // The busy one finishes its old answer byte-exact, then moves over.
        let rest = step(&answers, busy_tag, &mut busy, b"", 4096);
        let whole = [first, rest].concat();
        assert_eq!(body(&whole), b"one");
        assert!(!answers.release(&mut busy_tag, &mut busy));
        assert_eq!(busy_tag, Generation::Current);
        assert!(answers.previous.is_none(), "the old routes are dropped");
        assert_eq!(busy.limits().max_header_bytes, bigger.max_header_bytes);
        // Both now answer with the new routes.
        for (tag, conn) in [(busy_tag, &mut busy), (idle_tag, &mut idle)] {
            assert_eq!(body(&step(&answers, tag, conn, get, 4096)), b"two");
        }
    }

    #[test]
    fn a_reload_during_another_waits_and_the_newest_wins() {
        let limits = HttpLimits::default();
        let mut answers = Answers::new(app_saying("one"), limits);
        let mut busy = HttpConn::new(limits);
        let mut tag = Generation::Current;
        let get = b"GET /v HTTP/1.1\r\nHost: x\r\n\r\n";
        let first = step(&answers, tag, &mut busy, get, 20);
        assert!(answers.offer(Served {
            app: app_saying("two"),
            limits
        }));
        answers.rotate();
        answers.adopt(&mut tag, &mut busy);
        assert!(!answers.settle());
        // Two more reloads while `busy` is still on "one": they wait; the last one counts.
        assert!(!answers.offer(Served {
            app: app_saying("three"),
            limits
        }));
        assert!(!answers.offer(Served {
            app: app_saying("four"),
            limits
        }));
        assert!(answers.is_pending());
        let rest = step(&answers, tag, &mut busy, b"", 4096);
        assert_eq!(body(&[first, rest].concat()), b"one");
        assert!(
            answers.release(&mut tag, &mut busy),
            "the pending reload is ready"
        );
        answers.rotate();
        answers.adopt(&mut tag, &mut busy);
        assert!(!answers.settle());
        assert_eq!(answers.applied(), 2);
        assert_eq!(body(&step(&answers, tag, &mut busy, get, 4096)), b"four");
    }

    #[test]
    fn the_mailbox_hands_over_the_newest_post_once() {
        let limits = HttpLimits::default();
        let mailbox = ReloadMailbox::default();
        assert!(mailbox.take().is_none());
        mailbox.post(Served {
            app: app_saying("a"),
            limits,
        });
        mailbox.post(Served {
            app: app_saying("b"),
            limits,
        });
        let got = mailbox.take().expect("posted");
        let mut conn = HttpConn::new(limits);
        let answers = Answers::new(got.app, limits);
        let out = step(
            &answers,
            Generation::Current,
            &mut conn,
            b"GET /v HTTP/1.1\r\nHost: x\r\n\r\n",
            4096,
        );
        assert_eq!(body(&out), b"b");
        assert!(mailbox.take().is_none(), "taken once");
    }

    #[test]
    fn a_closed_connection_on_the_previous_generation_releases_it() {
        let limits = HttpLimits::default();
        let mut answers = Answers::new(app_saying("one"), limits);
        let mut busy = HttpConn::new(limits);
        let mut tag = Generation::Current;
        step(
            &answers,
            tag,
            &mut busy,
            b"GET /v HTTP/1.1\r\nHost: x\r\n\r\n",
            20,
        );
        assert!(answers.offer(Served {
            app: app_saying("two"),
            limits
        }));
        answers.rotate();
        answers.adopt(&mut tag, &mut busy);
        answers.settle();
        assert!(answers.previous.is_some());
        assert!(!answers.forget(&mut tag));
        assert!(answers.previous.is_none());
        assert_eq!(tag, Generation::Current);
    }
}
