//! `StreamConn` driven without sockets: a scripted transport sends what `poll_transmit` gives,
//! shuts the write side on `Finishing`, and delivers bytes, FIN and time.

use super::*;
use crate::app::AppConfig;
use crate::tls::TlsThread;

const RECV_LEN: usize = 1024;
const OUTPUT_LEN: usize = 4096;
const LINGER: Duration = Duration::from_secs(2);
const SEND_LIMIT: Duration = Duration::from_secs(5);
const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n";

struct Fixture {
    conn: StreamConn,
    app: App,
    now: Instant,
    /// Everything sent so far.
    wire: Vec<u8>,
    /// The transport shut its write side.
    write_shut: bool,
}

impl Fixture {
    fn new() -> Self {
        Self::with(HttpLimits::default(), None)
    }

    /// `input`: the input buffer's size if not the one the limits call for.
    fn with(limits: HttpLimits, input: Option<usize>) -> Self {
        let now = Instant::from_secs(100);
        let mut app = App::new(&AppConfig::default()).unwrap();
        app.set_date(784_111_777);
        let config = StreamConfig {
            recv_len: RECV_LEN,
            output_len: OUTPUT_LEN,
            linger: LINGER,
        };
        let mut conn = StreamConn::new(limits, config);
        conn.http_mut().reset();
        conn.http_mut().start(now);
        conn.open(input.unwrap_or(StreamConn::input_capacity(&limits, RECV_LEN)));
        Fixture {
            conn,
            app,
            now,
            wire: Vec::new(),
            write_shut: false,
        }
    }

    /// Advances until HTTP has nothing more to do, as a transport does after any input, and
    /// shuts the write side on `Finishing`.
    fn advance(&mut self, draining: bool) {
        for _ in 0..100 {
            if self.conn.advance(self.now, &self.app, draining) != Advance::Again {
                break;
            }
        }
        if self.conn.state() == Lifecycle::Finishing {
            self.write_shut = true;
            self.conn.handle_write_shut(self.now);
        }
    }

    /// Sends what is waiting, `limit` bytes per send, until nothing is left; returns sends.
    fn flush(&mut self, limit: usize) -> usize {
        let mut sends = 0;
        while let Some(bytes) = self.conn.poll_transmit(self.now) {
            let n = bytes.len().min(limit);
            self.wire.extend_from_slice(&bytes[..n]);
            self.conn.handle_sent(n);
            sends += 1;
            self.advance(false);
        }
        sends
    }

    fn recv(&mut self, data: &[u8]) {
        self.conn.handle_recv(self.now, &self.app, data);
        self.advance(false);
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.wire).into_owned()
    }
}

#[test]
fn a_request_is_answered_from_the_receive_buffer_and_the_connection_stays_open() {
    let mut f = Fixture::new();
    assert_eq!(f.conn.state(), Lifecycle::Open);
    assert!(f.conn.wants_recv());
    f.recv(HEALTH);
    assert_eq!(f.conn.buffered_input(), 0, "consumed straight from `data`");
    assert_eq!(f.flush(usize::MAX), 1);
    assert!(f.text().starts_with("HTTP/1.1 200 OK\r\n"), "{}", f.text());
    assert!(f.wire.ends_with(b"\r\n\r\nok"));
    assert_eq!(f.conn.state(), Lifecycle::Open);
    assert!(f.conn.wants_recv());
    assert_eq!(f.conn.http().stats().requests, 1);
}

#[test]
fn a_head_cut_by_the_receive_buffer_is_kept_and_completed_by_the_next() {
    let mut f = Fixture::new();
    f.recv(&HEALTH[..10]);
    assert_eq!(f.conn.buffered_input(), 10);
    assert!(f.conn.poll_transmit(f.now).is_none());
    f.recv(&HEALTH[10..]);
    f.flush(usize::MAX);
    assert!(f.wire.ends_with(b"\r\n\r\nok"));
    assert_eq!(f.conn.buffered_input(), 0);
}

#[test]
fn connection_close_finishes_then_lingers_dropping_input_until_the_peer_fin() {
    let mut f = Fixture::new();
    f.recv(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(
        f.conn.state(),
        Lifecycle::Open,
        "not finished before the answer is sent"
    );
    assert!(!f.write_shut);
    f.flush(usize::MAX);
    // Open -> Finishing -> (write side shut) -> Lingering.
    assert!(f.write_shut);
    assert_eq!(
        f.conn.state(),
        Lifecycle::Lingering {
            until: f.now + LINGER
        }
    );
    assert!(
        f.conn.wants_recv(),
        "lingering reads, to see the peer's FIN"
    );
    f.recv(b"more bytes the peer still sends");
    assert_eq!(f.conn.buffered_input(), 0, "dropped");
    assert!(f.conn.poll_transmit(f.now).is_none());
    // Per-connection receives land in the input buffer; lingering drops them too.
    let room = f.conn.recv_buffer();
    room[..4].copy_from_slice(b"junk");
    f.conn.handle_recv_in_place(4);
    f.advance(false);
    assert_eq!(f.conn.buffered_input(), 0);
    // Lingering -> Closed at the peer's FIN.
    f.conn.handle_eof();
    assert!(!f.conn.wants_recv());
    f.advance(false);
    assert_eq!(f.conn.state(), Lifecycle::Closed);
    assert!(f.conn.is_ended());
}

#[test]
fn lingering_ends_at_its_deadline_without_the_peer_fin() {
    let mut f = Fixture::new();
    f.recv(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    f.flush(usize::MAX);
    let until = f.now + LINGER;
    assert_eq!(f.conn.poll_timeout(SEND_LIMIT), Some(until));
    assert!(!f.conn.handle_timeout(
        until - Duration::from_millis(1),
        SEND_LIMIT,
        &mut TlsThread::default()
    ));
    assert_eq!(f.conn.state(), Lifecycle::Lingering { until });
    assert!(!f
        .conn
        .handle_timeout(until, SEND_LIMIT, &mut TlsThread::default()));
    assert_eq!(f.conn.state(), Lifecycle::Closed);
    assert_eq!(f.conn.poll_timeout(SEND_LIMIT), None);
}

#[test]
fn peer_fin_after_a_complete_request_gets_the_answer_then_closes_without_lingering() {
    let mut f = Fixture::new();
    f.conn.handle_recv(f.now, &f.app, HEALTH);
    f.conn.handle_eof();
    f.advance(false);
    assert!(!f.conn.wants_recv(), "nothing more to read after FIN");
    f.flush(usize::MAX);
    assert!(f.wire.ends_with(b"\r\n\r\nok"));
    // Open -> Closed: the peer has closed, so there is nothing to linger for.
    assert_eq!(f.conn.state(), Lifecycle::Closed);
    assert!(!f.write_shut);
}

#[test]
fn the_output_buffer_is_refilled_only_after_the_send_completes() {
    let mut f = Fixture::new();
    f.recv(b"GET /bytes/10000 HTTP/1.1\r\nHost: t\r\n\r\n");
    let first = f.conn.poll_transmit(f.now).unwrap().to_vec();
    assert_eq!(first.len(), OUTPUT_LEN);
    assert!(f.conn.is_sending());
    assert!(f.conn.poll_transmit(f.now).is_none(), "one send at a time");
    assert_eq!(
        f.conn.advance(f.now, &f.app, false),
        Advance::Waiting,
        "HTTP is not run while a send is in flight"
    );
    // A partial send resumes where it stopped, from the same bytes.
    f.conn.handle_sent(100);
    f.wire.extend_from_slice(&first[..100]);
    let rest = f.conn.poll_transmit(f.now).unwrap();
    assert_eq!(rest, &first[100..]);
    f.wire.extend_from_slice(rest);
    f.conn.handle_sent(OUTPUT_LEN - 100);
    f.advance(false);
    f.flush(1000);
    let body = &f.wire[f.wire.len() - 10_000..];
    assert!(body
        .iter()
        .enumerate()
        .all(|(i, &b)| b == b'a' + (i % 26) as u8));
    assert_eq!(f.conn.state(), Lifecycle::Open);
}

#[test]
fn no_receive_is_wanted_while_the_input_buffer_cannot_take_a_whole_receive() {
    let mut f = Fixture::new();
    // The peer pipelines requests for large answers and reads none of them: input piles up
    // behind the first answer's unfinished send.
    let request = b"GET /bytes/100000 HTTP/1.1\r\nHost: t\r\n\r\n";
    f.recv(request);
    let _ = f.conn.poll_transmit(f.now).unwrap(); // in flight, never completes
    let mut fed = 0;
    while f.conn.wants_recv() {
        f.recv(request);
        fed += 1;
        assert!(fed < 10_000, "input never held back");
    }
    let capacity = StreamConn::input_capacity(&HttpLimits::default(), RECV_LEN);
    assert!(f.conn.buffered_input() > capacity - RECV_LEN);
    assert_eq!(f.conn.state(), Lifecycle::Open, "held back, not cut");
    // Once the peer reads, the input drains and receiving resumes.
    f.conn.handle_sent(OUTPUT_LEN);
    for _ in 0..10_000 {
        f.advance(false);
        if f.conn.wants_recv() {
            break;
        }
        let n = f.conn.poll_transmit(f.now).map(<[u8]>::len).unwrap();
        f.conn.handle_sent(n);
    }
    assert!(f.conn.wants_recv());
    assert_eq!(f.conn.state(), Lifecycle::Open);
}

#[test]
fn input_that_can_never_fit_aborts_with_input_overflow() {
    // An input buffer smaller than the head limit plus a receive: a head longer than it fills
    // the buffer with nothing consumed and the whole output buffer free.
    let mut f = Fixture::with(HttpLimits::default(), Some(RECV_LEN + 100));
    let mut head = b"GET /health HTTP/1.1\r\nX-Long: ".to_vec();
    head.resize(500, b'x');
    f.recv(&head);
    assert_eq!(
        f.conn.state(),
        Lifecycle::Aborted(AbortReason::InputOverflow)
    );
    assert!(!f.conn.wants_recv());
    assert!(f.conn.poll_transmit(f.now).is_none());
}

#[test]
fn a_send_in_flight_for_the_send_limit_is_cut() {
    let mut f = Fixture::new();
    f.recv(HEALTH);
    let t0 = f.now;
    let _ = f.conn.poll_transmit(t0).unwrap(); // the peer never takes it
    let idle = t0 + HttpLimits::default().idle_timeout;
    assert_eq!(
        f.conn.poll_timeout(SEND_LIMIT),
        Some(t0 + SEND_LIMIT),
        "the send deadline comes before HTTP's idle deadline at {idle:?}"
    );
    assert!(!f.conn.handle_timeout(
        t0 + SEND_LIMIT - Duration::from_millis(1),
        SEND_LIMIT,
        &mut TlsThread::default()
    ));
    assert_eq!(f.conn.state(), Lifecycle::Open);
    assert!(!f
        .conn
        .handle_timeout(t0 + SEND_LIMIT, SEND_LIMIT, &mut TlsThread::default()));
    assert_eq!(f.conn.state(), Lifecycle::Aborted(AbortReason::SendTimeout));
}

#[test]
fn a_slow_reader_that_keeps_taking_bytes_is_not_cut() {
    let mut f = Fixture::new();
    f.recv(b"GET /bytes/20000 HTTP/1.1\r\nHost: t\r\n\r\n");
    // 1000 bytes every 4 s, always slower than the send limit in total but never stalled
    // for it: each completed send restarts the clock.
    let mut got = 0;
    while let Some(bytes) = f.conn.poll_transmit(f.now) {
        let n = bytes.len().min(1000);
        f.now += Duration::from_secs(4);
        // (HTTP's idle deadline may fire once the whole answer is produced.)
        let _ = f
            .conn
            .handle_timeout(f.now, SEND_LIMIT, &mut TlsThread::default());
        assert!(!matches!(f.conn.state(), Lifecycle::Aborted(_)));
        f.conn.handle_sent(n);
        got += n;
        f.advance(false);
    }
    assert!(got > 20_000);
}

#[test]
fn drain_finishes_an_idle_connection_and_answers_a_request_with_close() {
    let mut idle = Fixture::new();
    idle.conn.http_mut().begin_drain();
    idle.advance(true);
    assert!(idle.write_shut, "idle between requests: finished at once");
    assert!(matches!(idle.conn.state(), Lifecycle::Lingering { .. }));

    let mut busy = Fixture::new();
    busy.conn.handle_recv(busy.now, &busy.app, &HEALTH[..5]);
    busy.conn.http_mut().begin_drain();
    busy.advance(true);
    assert_eq!(
        busy.conn.state(),
        Lifecycle::Open,
        "a request is being read"
    );
    busy.conn.handle_recv(busy.now, &busy.app, &HEALTH[5..]);
    busy.advance(true);
    busy.flush(usize::MAX);
    assert!(
        busy.text().contains("Connection: close\r\n"),
        "{}",
        busy.text()
    );
    assert!(busy.write_shut);
    assert!(matches!(busy.conn.state(), Lifecycle::Lingering { .. }));
}

#[test]
fn the_http_idle_timeout_closes_an_idle_connection_through_finishing() {
    let mut f = Fixture::new();
    let deadline = f.conn.poll_timeout(SEND_LIMIT).unwrap();
    assert_eq!(deadline, f.now + HttpLimits::default().idle_timeout);
    assert!(!f.conn.handle_timeout(
        deadline - Duration::from_millis(1),
        SEND_LIMIT,
        &mut TlsThread::default()
    ));
    f.now = deadline;
    assert!(
        f.conn
            .handle_timeout(deadline, SEND_LIMIT, &mut TlsThread::default()),
        "HTTP's deadline fired"
    );
    f.advance(false);
    assert!(f.write_shut);
    assert!(matches!(f.conn.state(), Lifecycle::Lingering { .. }));
    assert_eq!(f.conn.http().stats().idle_timeouts, 1);
}

#[test]
fn a_receive_in_place_survives_input_consumed_while_it_was_in_flight() {
    let mut f = Fixture::new();
    // Two requests arrive in one receive into the input buffer.
    let room = f.conn.recv_buffer();
    let two = [HEALTH, HEALTH].concat();
    room[..two.len()].copy_from_slice(&two);
    f.conn.handle_recv_in_place(two.len());
    f.advance(false);
    // The first answer is in flight; the second request waits in the input buffer while a
    // third is being received behind it.
    let _ = f.conn.poll_transmit(f.now).unwrap();
    let room = f.conn.recv_buffer();
    room[..HEALTH.len()].copy_from_slice(HEALTH);
    // The send completes first: HTTP consumes the second request, moving `in_len` down.
    f.conn.handle_sent(OUTPUT_LEN);
    f.advance(false);
    f.flush(usize::MAX);
    // Then the receive completes: its bytes join what is left, with no gap.
    f.conn.handle_recv_in_place(HEALTH.len());
    f.advance(false);
    f.flush(usize::MAX);
    assert_eq!(f.conn.http().stats().requests, 3);
    assert_eq!(f.conn.buffered_input(), 0);
}

#[test]
fn abort_ends_the_connection_once_and_keeps_the_first_reason() {
    let mut f = Fixture::new();
    f.recv(HEALTH);
    f.conn.abort(AbortReason::Transport);
    assert_eq!(f.conn.state(), Lifecycle::Aborted(AbortReason::Transport));
    assert!(
        f.conn.poll_transmit(f.now).is_none(),
        "nothing is sent after a cut"
    );
    assert!(!f.conn.wants_recv());
    assert_eq!(f.conn.advance(f.now, &f.app, false), Advance::Waiting);
    assert!(!f.conn.handle_timeout(
        f.now + Duration::from_secs(3600),
        SEND_LIMIT,
        &mut TlsThread::default()
    ));
    f.conn.abort(AbortReason::SendTimeout);
    assert_eq!(f.conn.state(), Lifecycle::Aborted(AbortReason::Transport));
    assert_eq!(f.conn.poll_timeout(SEND_LIMIT), None);
    // A slot is reused with `open`: back to `Open`, empty.
    f.conn.http_mut().reset();
    f.conn.open(16);
    assert_eq!(f.conn.state(), Lifecycle::Open);
    assert_eq!(f.conn.buffered_input(), 0);
    assert!(!f.conn.is_sending());
}

/// Sends `poll_transmit`'s bytes with the write-side shutdown queued behind the last of
/// them, as the kernel path links them; `shut_first` reports the shutdown before the send.
/// Returns what `sending_last` said for each send.
fn flush_linking_the_shutdown(f: &mut Fixture, limit: usize, shut_first: bool) -> Vec<bool> {
    let mut last = Vec::new();
    while let Some(bytes) = f.conn.poll_transmit(f.now) {
        let len = bytes.len();
        let n = len.min(limit);
        f.wire.extend_from_slice(&bytes[..n]);
        let linked = f.conn.sending_last();
        last.push(linked);
        // A short send breaks the link: the shutdown is cancelled, never reported.
        let shut = linked && n == len;
        if shut && shut_first {
            f.conn.handle_write_shut(f.now);
        }
        f.conn.handle_sent(n);
        if shut && !shut_first {
            f.conn.handle_write_shut(f.now);
        }
        for _ in 0..100 {
            if f.conn.advance(f.now, &f.app, false) != Advance::Again {
                break;
            }
        }
    }
    last
}

#[test]
fn the_last_bytes_of_a_close_are_marked_and_the_fin_behind_them_lingers_at_once() {
    for shut_first in [false, true] {
        let mut f = Fixture::new();
        f.recv(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert!(!f.conn.sending_last(), "nothing handed out yet");
        let last = flush_linking_the_shutdown(&mut f, usize::MAX, shut_first);
        assert_eq!(last, [true], "one send, the last");
        assert!(f.wire.ends_with(b"\r\n\r\nok"));
        // Open -> Lingering, without Finishing (the transport has nothing left to shut).
        assert_eq!(
            f.conn.state(),
            Lifecycle::Lingering {
                until: f.now + LINGER
            },
            "shutdown reported {}",
            if shut_first { "first" } else { "second" }
        );
        assert!(
            f.conn.wants_recv(),
            "lingering reads, to see the peer's FIN"
        );
        f.conn.handle_eof();
        f.advance(false);
        assert_eq!(f.conn.state(), Lifecycle::Closed);
    }
}

#[test]
fn only_the_final_send_of_a_large_close_answer_is_the_last_and_a_short_one_is_resent() {
    let mut f = Fixture::new();
    let n = 3 * OUTPUT_LEN + 100;
    f.recv(format!("GET /bytes/{n} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes());
    // Sends cut at 1000 bytes: the last output buffer takes several, each marked last, each
    // link broken until the one that takes all that is left.
    let last = flush_linking_the_shutdown(&mut f, 1000, false);
    let first_last = last.iter().position(|&l| l).unwrap();
    assert!(first_last > 0 && last[first_last..].iter().all(|&l| l));
    assert!(last[..first_last].iter().all(|&l| !l));
    let head_end = f.wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(f.wire.len() - head_end, n);
    assert!(matches!(f.conn.state(), Lifecycle::Lingering { .. }));
}

#[test]
fn keep_alive_answers_are_never_the_last() {
    let mut f = Fixture::new();
    f.recv(HEALTH);
    let bytes = f.conn.poll_transmit(f.now).unwrap().len();
    assert!(!f.conn.sending_last());
    // A shutdown the connection did not ask for changes nothing while its bytes are out.
    f.conn.handle_write_shut(f.now);
    f.conn.handle_sent(bytes);
    f.advance(false);
    assert_eq!(f.conn.state(), Lifecycle::Open);
    assert!(!f.write_shut);
}

#[test]
fn a_fin_that_went_before_all_the_last_bytes_cuts_the_connection() {
    // Reported first, then the send turns out short: the rest can never be sent.
    let mut f = Fixture::new();
    f.recv(b"GET /bytes/1000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let len = f.conn.poll_transmit(f.now).unwrap().len();
    assert!(f.conn.sending_last());
    f.conn.handle_write_shut(f.now);
    f.conn.handle_sent(len - 1);
    assert_eq!(f.conn.state(), Lifecycle::Aborted(AbortReason::Transport));
    // Reported after a short send (a transport whose link did not break).
    let mut f = Fixture::new();
    f.recv(b"GET /bytes/1000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let len = f.conn.poll_transmit(f.now).unwrap().len();
    f.conn.handle_sent(len - 1);
    f.conn.handle_write_shut(f.now);
    assert_eq!(f.conn.state(), Lifecycle::Aborted(AbortReason::Transport));
}

#[test]
fn a_drain_makes_the_answer_waiting_to_be_sent_the_last() {
    let mut f = Fixture::new();
    f.recv(HEALTH);
    assert!(f.conn.poll_transmit(f.now).is_some());
    assert!(!f.conn.sending_last(), "keep-alive until the drain");
    f.conn.handle_sent(0);
    // The answer is written and waits to be sent: the drain closes after it.
    f.conn.http_mut().begin_drain();
    let last = flush_linking_the_shutdown(&mut f, usize::MAX, false);
    assert_eq!(last, [true]);
    assert!(f.wire.ends_with(b"\r\n\r\nok"));
    f.advance(true);
    assert!(matches!(f.conn.state(), Lifecycle::Lingering { .. }));
}
