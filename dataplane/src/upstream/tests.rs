//! The upstream table against real TCP servers on loopback (std listeners on threads). Every
//! wait is a loop that sleeps in poll(2) on the ring's descriptor, with a deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use super::*;

const KEY: ServerKey = ServerKey(std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(10, 0, 0, 1),
    80,
)));
const T0: Instant = Instant::from_secs(100);
/// The keep-alive bound the tests release with, unless one is about it.
const KEEPALIVE: usize = 4;

fn conns(tune: impl FnOnce(&mut UpstreamConnsConfig)) -> UpstreamConns {
    let mut config = UpstreamConnsConfig {
        max_connections: 8,
        send_buffer_len: 4096,
        recv_buffer_len: 4096,
        ring_entries: 32,
        idle_timeout: Duration::from_secs(10),
    };
    tune(&mut config);
    UpstreamConns::new(config).unwrap()
}

/// Sleeps in poll(2) on the ring's descriptor for up to `ms`; true if it turned readable.
fn ring_readable(c: &UpstreamConns, ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: c.ring_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll(2) reads and writes one live pollfd, the count passed.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    rc == 1 && pfd.revents & libc::POLLIN != 0
}

/// Reaps, hands the events to `step`, flushes what it did, and sleeps until a completion, until
/// `step` says done; panics after 5 s.
fn drive(
    c: &mut UpstreamConns,
    mut step: impl FnMut(&mut UpstreamConns, &[UpstreamEvent]) -> bool,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut events = Vec::new();
    loop {
        events.clear();
        c.poll(&mut events);
        let done = step(c, &events);
        c.flush().unwrap();
        if done {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "condition not reached"
        );
        ring_readable(c, 10);
    }
}

/// Drives until the stats satisfy `what`.
fn drive_until(c: &mut UpstreamConns, what: impl Fn(&UpstreamStats) -> bool) {
    drive(c, |c, _| what(&c.stats()));
}

fn connected(c: &mut UpstreamConns, addr: SocketAddr, owner: u64) -> ConnId {
    let id = c.connect(KEY, addr, owner).unwrap();
    drive(c, |_, events| {
        for e in events {
            match *e {
                UpstreamEvent::Connected(got) if got == id => return true,
                UpstreamEvent::ConnectFailed(got, errno) if got == id => {
                    panic!("connect failed: errno {errno}")
                }
                _ => {}
            }
        }
        false
    });
    id
}

/// A listener (on 127.0.0.1 unless told) running `handle` on a thread per accepted connection, and
/// counting them. Dropping it stops accepting.
struct Server {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn spawn(handle: impl Fn(TcpStream, usize) + Send + Sync + 'static) -> Server {
        Server::spawn_on("127.0.0.1:0", handle)
    }

    fn spawn_on(at: &str, handle: impl Fn(TcpStream, usize) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind(at).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = Arc::new(handle);
        let thread = {
            let (accepted, stop) = (accepted.clone(), stop.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let n = accepted.fetch_add(1, Ordering::SeqCst);
                    let handle = handle.clone();
                    thread::spawn(move || handle(stream, n));
                }
            })
        };
        Server {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Echoes framed messages (an 8-byte little-endian length, then that many bytes), frame by
/// frame, as long as the client keeps the connection.
fn echo(mut s: TcpStream, _: usize) {
    // Without it, the payload's first segment waits for the ACK of the head's (Nagle).
    let _ = s.set_nodelay(true);
    let mut head = [0u8; 8];
    let mut chunk = vec![0u8; 64 * 1024];
    while s.read_exact(&mut head).is_ok() {
        if s.write_all(&head).is_err() {
            return;
        }
        let mut left = u64::from_le_bytes(head) as usize;
        while left > 0 {
            let want = left.min(chunk.len());
            let Ok(n) = s.read(&mut chunk[..want]) else {
                return;
            };
            if n == 0 || s.write_all(&chunk[..n]).is_err() {
                return;
            }
            left -= n;
        }
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Sends one framed message through the connection's buffers while reading the echo, and
/// returns the echo. The receive buffer never holds more than its size.
fn round_trip(c: &mut UpstreamConns, id: ConnId, payload: &[u8]) -> Vec<u8> {
    let mut request = (payload.len() as u64).to_le_bytes().to_vec();
    request.extend_from_slice(payload);
    let recv_cap = c.config.recv_buffer_len;
    let (mut sent, mut echoed) = (0, Vec::with_capacity(request.len()));
    drive(c, |c, events| {
        for e in events {
            assert!(
                matches!(
                    e,
                    UpstreamEvent::Connected(_)
                        | UpstreamEvent::Sent(_)
                        | UpstreamEvent::Received(_)
                ),
                "{e:?}"
            );
            assert_eq!(e.id(), id);
        }
        let room = c.send_room(id);
        let n = room.len().min(request.len() - sent);
        room[..n].copy_from_slice(&request[sent..sent + n]);
        c.commit_send(id, n);
        sent += n;
        let got = c.received(id);
        assert!(got.len() <= recv_cap);
        echoed.extend_from_slice(got);
        let n = got.len();
        c.consume(id, n);
        echoed.len() >= request.len()
    });
    assert_eq!(c.unsent(id), 0);
    assert_eq!(&echoed[..8], &request[..8]);
    echoed.split_off(8)
}

#[test]
fn echoes_are_byte_exact_from_0_bytes_to_8_mib_through_4_kib_buffers() {
    let server = Server::spawn(echo);
    let mut c = conns(|_| {});
    // The request is committed before the connection is established: it waits for it.
    let id = c.connect(KEY, server.addr, 7).unwrap();
    for len in [0, 1, 4095, 4096, 4097, 100_003, 8 << 20] {
        let payload = pattern(len);
        let echoed = round_trip(&mut c, id, &payload);
        assert!(echoed == payload, "{len} bytes: echo differs");
    }
    assert_eq!(c.owner(id), Some(7));
    let st = c.stats();
    assert_eq!((st.connects, st.open, st.in_use), (1, 1, 1));
    assert_eq!(st.bytes_received, st.bytes_sent);
    assert_eq!(server.accepted(), 1);
}

#[test]
fn an_ipv6_upstream_is_reached_like_an_ipv4_one() {
    let server = Server::spawn_on("[::1]:0", echo);
    assert!(server.addr.is_ipv6());
    let mut c = conns(|_| {});
    let id = connected(&mut c, server.addr, 1);
    assert_eq!(round_trip(&mut c, id, b"over v6"), b"over v6");
}

#[test]
fn a_full_receive_buffer_posts_no_receive_and_the_response_arrives_in_order() {
    const LEN: usize = 1 << 20;
    let server = Server::spawn(|mut s, _| {
        let _ = s.write_all(&pattern(LEN));
    });
    let mut c = conns(|_| {});
    let id = connected(&mut c, server.addr, 1);
    let mut got = Vec::with_capacity(LEN);
    while got.len() < LEN {
        // The owner reads nothing until the buffer is full: from then on no receive is in
        // flight, so the upstream's bytes wait in its TCP window, not here.
        drive(&mut c, |c, _| {
            c.received(id).len() == 4096.min(LEN - got.len())
        });
        c.flush().unwrap();
        if c.received(id).len() == 4096 {
            assert_eq!(c.inflight(), 0, "a receive is posted into a full buffer");
        }
        // Half now, half at the next round: the rest moves to the front in between.
        let half = c.received(id).len().div_ceil(2);
        got.extend_from_slice(&c.received(id)[..half]);
        c.consume(id, half);
        let rest = c.received(id).len();
        got.extend_from_slice(c.received(id));
        c.consume(id, rest);
    }
    assert!(got == pattern(LEN), "bytes out of order");
    drive(&mut c, |_, events| events.contains(&UpstreamEvent::Eof(id)));
}

#[test]
fn bytes_consumed_while_a_receive_is_in_flight_leave_the_next_bytes_where_they_land() {
    // An echo of raw bytes: what is sent comes back as it is.
    let server = Server::spawn(|mut s, _| {
        let mut b = [0u8; 4096];
        while let Ok(n) = s.read(&mut b) {
            if n == 0 || s.write_all(&b[..n]).is_err() {
                return;
            }
        }
    });
    let mut c = conns(|_| {});
    let id = connected(&mut c, server.addr, 1);
    let send = |c: &mut UpstreamConns, bytes: &[u8]| {
        c.send_room(id)[..bytes.len()].copy_from_slice(bytes);
        c.commit_send(id, bytes.len());
    };
    send(&mut c, b"abc");
    // The owner reads nothing in the round the bytes arrive: the flush after it posts a
    // receive into the room after them.
    drive(&mut c, |c, _| c.received(id) == b"abc");
    assert_eq!(c.inflight(), 1, "a receive in flight after the bytes held");
    // Consumed while that receive is in flight: the next bytes land after "abc" and must be
    // read from there, not from the front (a slow client's last bytes, then the next answer
    // on the pooled connection).
    c.consume(id, 3);
    send(&mut c, b"defg");
    drive(&mut c, |c, _| c.received(id).len() >= 4);
    assert_eq!(c.received(id), b"defg");
    c.consume(id, 4);
    assert_eq!(
        round_trip_raw(&mut c, id, &pattern(10_000)),
        pattern(10_000)
    );
}

/// Sends `payload` to a raw echo server and reads the same number of bytes back.
fn round_trip_raw(c: &mut UpstreamConns, id: ConnId, payload: &[u8]) -> Vec<u8> {
    let (mut sent, mut echoed) = (0, Vec::new());
    drive(c, |c, _| {
        let room = c.send_room(id);
        let n = room.len().min(payload.len() - sent);
        room[..n].copy_from_slice(&payload[sent..sent + n]);
        c.commit_send(id, n);
        sent += n;
        let got = c.received(id);
        echoed.extend_from_slice(got);
        let n = got.len();
        c.consume(id, n);
        echoed.len() >= payload.len()
    });
    echoed
}

#[test]
fn a_closed_port_gives_connect_failed_with_econnrefused() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut c = conns(|_| {});
    let id = c.connect(KEY, port, 3).unwrap();
    let mut errno = 0;
    drive(&mut c, |_, events| {
        for e in events {
            if let UpstreamEvent::ConnectFailed(got, e) = *e {
                assert_eq!(got, id);
                errno = e;
            }
        }
        errno != 0
    });
    assert_eq!(errno, libc::ECONNREFUSED);
    assert_eq!(c.stats().connect_failures, 1);
    // A failed connection is still the owner's until released, and never reusable.
    assert_eq!(c.owner(id), Some(3));
    c.release(id, KEEPALIVE, T0);
    assert_eq!(c.owner(id), None);
    drive_until(&mut c, |st| st.open == 0 && st.in_use == 0 && st.idle == 0);
}

/// Closes with a reset (SO_LINGER 0).
fn reset(s: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt(2) reads the live `linger` for the size given.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
}

#[test]
fn a_server_that_resets_gives_reset_with_econnreset() {
    let server = Server::spawn(|mut s, _| {
        let mut b = [0u8; 1];
        let _ = s.read_exact(&mut b);
        reset(s);
    });
    let mut c = conns(|_| {});
    let id = connected(&mut c, server.addr, 1);
    c.send_room(id)[0] = b'x';
    c.commit_send(id, 1);
    let mut errno = 0;
    drive(&mut c, |_, events| {
        for e in events {
            match *e {
                UpstreamEvent::Reset(got, e) if got == id => errno = e,
                UpstreamEvent::Sent(got) if got == id => {}
                other => panic!("{other:?}"),
            }
        }
        errno != 0
    });
    assert_eq!(errno, libc::ECONNRESET);
    c.release(id, KEEPALIVE, T0);
    drive_until(&mut c, |st| st.open == 0 && st.idle == 0);
}

#[test]
fn a_server_that_closes_gives_eof_after_its_last_bytes() {
    let server = Server::spawn(|mut s, _| {
        let mut b = [0u8; 1];
        let _ = s.read_exact(&mut b);
        let _ = s.write_all(b"bye");
    });
    let mut c = conns(|_| {});
    let id = connected(&mut c, server.addr, 1);
    c.send_room(id)[0] = b'x';
    c.commit_send(id, 1);
    drive(&mut c, |_, events| events.contains(&UpstreamEvent::Eof(id)));
    assert_eq!(c.received(id), b"bye", "bytes before the EOF stay readable");
    c.release(id, KEEPALIVE, T0);
    drive_until(&mut c, |st| st.open == 0 && st.idle == 0);
}

#[test]
fn a_released_connection_is_checked_out_again_and_still_works() {
    let server = Server::spawn(echo);
    let mut c = conns(|_| {});
    let first = connected(&mut c, server.addr, 1);
    assert_eq!(round_trip(&mut c, first, b"one"), b"one");
    c.release(first, KEEPALIVE, T0);
    let st = c.stats();
    assert_eq!((st.idle, st.in_use, st.open), (1, 0, 1));
    assert_eq!(c.idle_count(KEY), 1);
    assert_eq!(
        c.checkout_idle(
            ServerKey(std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
                std::net::Ipv4Addr::new(10, 0, 0, 2),
                80
            ))),
            2,
            T0
        ),
        None
    );
    let again = c.checkout_idle(KEY, 2, T0).unwrap();
    assert_eq!(again.index, first.index);
    assert_ne!(again, first);
    assert_eq!((c.owner(first), c.owner(again)), (None, Some(2)));
    assert!(c.received(first).is_empty() && c.send_room(first).is_empty());
    assert_eq!(round_trip(&mut c, again, b"two"), b"two");
    let st = c.stats();
    assert_eq!((st.connects, st.reuses, st.idle, st.in_use), (1, 1, 0, 1));
    assert_eq!(server.accepted(), 1);
}

#[test]
fn a_connection_with_bytes_left_either_way_is_not_pooled() {
    let server = Server::spawn(echo);
    let mut c = conns(|_| {});
    let id = connected(&mut c, server.addr, 1);
    // Bytes committed and not yet sent (no flush since).
    c.send_room(id)[..4].copy_from_slice(&[1, 0, 0, 0]);
    c.commit_send(id, 4);
    assert_eq!(c.unsent(id), 4);
    c.release(id, KEEPALIVE, T0);
    assert_eq!(c.stats().idle, 0);
    let id = connected(&mut c, server.addr, 1);
    // A whole frame whose echo is not read.
    c.send_room(id)[..9].copy_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, b'z']);
    c.commit_send(id, 9);
    drive(&mut c, |c, _| c.received(id).len() == 9);
    c.release(id, KEEPALIVE, T0);
    assert_eq!(c.stats().idle, 0);
    drive_until(&mut c, |st| st.open == 0);
}

#[test]
fn the_keepalive_bound_closes_the_oldest_extra_connection() {
    let server = Server::spawn(echo);
    let mut c = conns(|_| {});
    let ids: Vec<ConnId> = (0..3).map(|o| connected(&mut c, server.addr, o)).collect();
    for (k, &id) in ids.iter().enumerate() {
        c.release(id, 2, T0 + Duration::from_secs(k as u64));
    }
    let st = c.stats();
    assert_eq!((st.idle, st.idle_evicted), (2, 1));
    drive_until(&mut c, |st| st.open == 2 && st.closed == 1);
    // The newest goes out first; the oldest was the one closed.
    let a = c
        .checkout_idle(KEY, 9, T0 + Duration::from_secs(3))
        .unwrap();
    let b = c
        .checkout_idle(KEY, 9, T0 + Duration::from_secs(3))
        .unwrap();
    assert_eq!((a.index, b.index), (ids[2].index, ids[1].index));
    assert_eq!(c.checkout_idle(KEY, 9, T0 + Duration::from_secs(3)), None);
}

#[test]
fn a_lower_bound_at_release_trims_the_idle_list_and_zero_closes() {
    let server = Server::spawn(echo);
    let mut c = conns(|_| {});
    let ids: Vec<ConnId> = (0..4).map(|o| connected(&mut c, server.addr, o)).collect();
    for &id in &ids[..3] {
        c.release(id, 3, T0);
    }
    assert_eq!(c.idle_count(KEY), 3);
    // A reload lowered the pool's keepalive to 1: this release leaves one, itself.
    c.release(ids[3], 1, T0 + Duration::from_secs(1));
    assert_eq!(c.idle_count(KEY), 1);
    assert_eq!(c.stats().idle_evicted, 3);
    let kept = c
        .checkout_idle(KEY, 9, T0 + Duration::from_secs(1))
        .unwrap();
    assert_eq!(kept.index, ids[3].index);
    c.release(kept, 0, T0 + Duration::from_secs(1));
    assert_eq!(c.idle_count(KEY), 0);
    drive_until(&mut c, |st| st.open == 0 && st.closed == 4);
}

#[test]
fn idle_connections_expire_at_their_idle_timeout() {
    let server = Server::spawn(echo);
    let mut c = conns(|_| {});
    let a = connected(&mut c, server.addr, 1);
    let b = connected(&mut c, server.addr, 2);
    c.release(a, KEEPALIVE, T0);
    c.release(b, KEEPALIVE, T0 + Duration::from_secs(1));
    assert_eq!(c.next_expiry(), Some(T0 + Duration::from_secs(10)));
    c.expire_idle(T0 + Duration::from_secs(10) - Duration::from_micros(1));
    assert_eq!(c.stats().idle, 2);
    c.expire_idle(T0 + Duration::from_secs(10));
    assert_eq!((c.stats().idle, c.stats().idle_expired), (1, 1));
    assert_eq!(c.next_expiry(), Some(T0 + Duration::from_secs(11)));
    // A checkout past the timeout closes the expired connection instead of handing it out.
    assert_eq!(c.checkout_idle(KEY, 3, T0 + Duration::from_secs(11)), None);
    assert_eq!((c.stats().idle, c.stats().idle_expired), (0, 2));
    assert_eq!(c.next_expiry(), None);
    drive_until(&mut c, |st| st.open == 0);
}

/// Answers one byte, then waits for the test's word before closing (`None`) or sending bytes
/// nobody asked for.
fn answer_then(words: mpsc::Receiver<Option<&'static [u8]>>) -> Server {
    let words = std::sync::Mutex::new(words);
    Server::spawn(move |mut s, _| {
        let mut b = [0u8; 1];
        let _ = s.read_exact(&mut b);
        let _ = s.write_all(b"a");
        if let Ok(Some(bytes)) = words.lock().unwrap().recv() {
            let _ = s.write_all(bytes);
            let _ = s.read(&mut b); // holds the connection open
        }
    })
}

fn pooled_after_one_answer(c: &mut UpstreamConns, server: &Server) {
    let id = connected(c, server.addr, 1);
    c.send_room(id)[0] = b'x';
    c.commit_send(id, 1);
    drive(c, |c, _| c.received(id) == b"a");
    c.consume(id, 1);
    c.release(id, KEEPALIVE, T0);
    assert_eq!(c.stats().idle, 1);
}

#[test]
fn an_idle_connection_the_server_closes_leaves_the_pool() {
    let (tell, words) = mpsc::channel();
    let server = answer_then(words);
    let mut c = conns(|_| {});
    pooled_after_one_answer(&mut c, &server);
    tell.send(None).unwrap();
    drive_until(&mut c, |st| st.idle == 0 && st.open == 0);
    assert_eq!(c.stats().idle_broken, 1);
    assert_eq!(c.checkout_idle(KEY, 2, T0), None);
}

#[test]
fn an_idle_connection_that_receives_bytes_unasked_is_closed_silently() {
    let (tell, words) = mpsc::channel();
    let server = answer_then(words);
    let mut c = conns(|_| {});
    pooled_after_one_answer(&mut c, &server);
    tell.send(Some(b"late")).unwrap();
    drive(&mut c, |c, events| {
        assert!(
            events.is_empty(),
            "an idle connection has no owner: {events:?}"
        );
        c.stats().open == 0
    });
    assert_eq!(c.stats().idle_broken, 1);
    assert_eq!(c.checkout_idle(KEY, 2, T0), None);
}

#[test]
fn the_table_bound_refuses_a_connect_until_a_slot_is_free() {
    let server = Server::spawn(echo);
    let mut c = conns(|config| config.max_connections = 2);
    let a = connected(&mut c, server.addr, 1);
    let _b = connected(&mut c, server.addr, 2);
    assert!(matches!(
        c.connect(KEY, server.addr, 3),
        Err(ConnsError::TableFull)
    ));
    c.release(a, 0, T0);
    // The slot is free once its cancelled receive has completed.
    drive(&mut c, |c, _| c.stats().open == 1);
    let third = c.connect(KEY, server.addr, 3).unwrap();
    assert_eq!(third.index, a.index);
}

#[test]
fn a_late_completion_never_reaches_the_next_owner_of_the_slot() {
    // Each connection is greeted with its number as soon as it is accepted.
    let server = Server::spawn(|mut s, n| {
        let _ = s.write_all(format!("conn-{n}").as_bytes());
        let mut b = [0u8; 1];
        let _ = s.read(&mut b);
    });
    let mut c = conns(|config| config.max_connections = 1);
    let first = connected(&mut c, server.addr, 1);
    c.flush().unwrap();
    assert_eq!(c.inflight(), 1);
    // Released with its receive in flight, whose completion may carry the greeting.
    c.release(first, 0, T0);
    assert!(matches!(
        c.connect(KEY, server.addr, 2),
        Err(ConnsError::TableFull)
    ));
    let mut events = Vec::new();
    drive(&mut c, |c, got| {
        events.extend_from_slice(got);
        c.stats().open == 0
    });
    assert!(events.is_empty(), "{events:?}");
    let second = connected(&mut c, server.addr, 2);
    assert_eq!(second.index, first.index);
    assert_ne!(second, first);
    drive(&mut c, |c, got| {
        assert!(got.iter().all(|e| e.id() == second), "{got:?}");
        c.received(second).len() >= 6
    });
    assert_eq!(c.received(second), b"conn-1");
    assert_eq!((c.owner(first), c.received(first)), (None, &b""[..]));
    c.consume(first, 100);
    c.release(first, KEEPALIVE, T0);
    assert_eq!(c.received(second), b"conn-1", "a stale id changes nothing");
}

/// With cooperative task running a completion can wait as task work until the thread next
/// enters the kernel (a timer tick at the latest): `poll` enters as soon as the kernel flags
/// it, so an owner that spins without system calls (a busy poller) sees its response at once.
#[test]
fn flagged_task_work_is_posted_by_the_next_poll() {
    // The server's thread and this one on CPUs of their own: a switch back to this thread
    // would run the work on its way to user space, before the flag can be seen.
    let cpus = allowed_cpus();
    let [mine, theirs, ..] = cpus[..] else {
        eprintln!("skipped: needs two CPUs, this thread may use {cpus:?}");
        return;
    };
    pin_to(mine);
    let (tell, told) = mpsc::channel::<()>();
    let told = std::sync::Mutex::new(told);
    let server = Server::spawn(move |mut s, _| {
        pin_to(theirs);
        while told.lock().unwrap().recv().is_ok() {
            if s.write_all(b"hi").is_err() {
                return;
            }
        }
    });
    let mut c = conns(|_| {});
    let id = connected(&mut c, server.addr, 1);
    let mut checked = 0;
    // A round is conclusive when this thread saw the flag before anything (a tick) ran the
    // work; the others are tried again.
    for _ in 0..200 {
        // The receive is posted with nothing to read, so its completion comes from the
        // server's send, as task work. Until `poll`, this thread makes no system call
        // (`Instant::now` reads the vDSO clock).
        c.flush().unwrap();
        tell.send(()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let mut flagged = false;
        while std::time::Instant::now() < deadline {
            flagged = c.ring.task_work_flagged();
            if flagged || c.ring.posted() > 0 {
                break;
            }
            std::hint::spin_loop();
        }
        let mut events = Vec::new();
        c.poll(&mut events);
        if flagged {
            assert!(
                events.contains(&UpstreamEvent::Received(id)),
                "task work flagged and not posted by poll: {events:?}"
            );
            checked += 1;
        } else if !events.contains(&UpstreamEvent::Received(id)) {
            drive(&mut c, |_, e| e.contains(&UpstreamEvent::Received(id)));
        }
        let n = c.received(id).len();
        c.consume(id, n);
        if checked >= 3 {
            return;
        }
    }
    panic!("the flag was never seen before the work ran ({checked} conclusive rounds)");
}

/// The CPUs this thread may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity writes at most its
    // size into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; pid 0 is the calling thread.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) } != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET reads the set within its size.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Binds the calling thread to `cpu`.
fn pin_to(cpu: usize) {
    crate::afxdp::pin_to_core(cpu).expect("sched_setaffinity");
}

#[test]
fn ring_fd_is_readable_once_a_completion_is_ready() {
    let (tell, told) = mpsc::channel::<()>();
    let told = std::sync::Mutex::new(told);
    let server = Server::spawn(move |mut s, _| {
        let _ = told.lock().unwrap().recv();
        let _ = s.write_all(b"hi");
        let mut b = [0u8; 1];
        let _ = s.read(&mut b);
    });
    let mut c = conns(|_| {});
    assert!(!ring_readable(&c, 0));
    let id = c.connect(KEY, server.addr, 1).unwrap();
    c.flush().unwrap();
    assert!(
        ring_readable(&c, 1000),
        "the connect's completion does not wake poll(2)"
    );
    let mut events = Vec::new();
    c.poll(&mut events);
    assert_eq!(events, [UpstreamEvent::Connected(id)]);
    // The receive is posted and nothing has arrived: not readable.
    c.flush().unwrap();
    assert!(!ring_readable(&c, 0));
    tell.send(()).unwrap();
    assert!(
        ring_readable(&c, 1000),
        "the receive's completion does not wake poll(2)"
    );
    events.clear();
    c.poll(&mut events);
    assert_eq!(events, [UpstreamEvent::Received(id)]);
    assert_eq!(c.received(id), b"hi");
    assert!(!ring_readable(&c, 0), "readable with nothing left to reap");
}

#[test]
fn dropping_the_table_with_operations_in_flight_closes_every_socket() {
    let (closed, seen) = mpsc::channel();
    let closed = std::sync::Mutex::new(closed);
    let server = Server::spawn(move |mut s, _| {
        let mut b = [0u8; 16];
        while matches!(s.read(&mut b), Ok(n) if n > 0) {}
        let _ = closed.lock().unwrap().send(());
    });
    let mut c = conns(|_| {});
    let a = connected(&mut c, server.addr, 1);
    let b = connected(&mut c, server.addr, 2);
    c.release(b, KEEPALIVE, T0);
    c.flush().unwrap();
    assert!(
        c.inflight() >= 2,
        "a receive is in flight on each connection"
    );
    let _ = a;
    drop(c);
    for _ in 0..2 {
        seen.recv_timeout(std::time::Duration::from_secs(2))
            .expect("a socket outlived the table");
    }
}

#[test]
fn a_configuration_out_of_range_is_refused() {
    for tune in [
        (|c: &mut UpstreamConnsConfig| c.max_connections = 0) as fn(&mut UpstreamConnsConfig),
        |c| c.send_buffer_len = 0,
        |c| c.recv_buffer_len = 0,
    ] {
        let mut config = UpstreamConnsConfig::default();
        tune(&mut config);
        let err = UpstreamConns::new(config).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}

#[test]
fn releasing_a_connection_still_connecting_cancels_the_connect() {
    // A listener with a backlog of 0 that never accepts: its queue takes one connection, and
    // the SYN of the next is dropped, so that connect stays in flight (the SYN is resent only
    // after a second).
    let listener =
        socket::tcp_listener(std::net::SocketAddrV4::new([127, 0, 0, 1].into(), 0), 0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut c = conns(|_| {});
    let queued = connected(&mut c, addr, 1);
    let waiting = c.connect(KEY, addr, 2).unwrap();
    c.flush().unwrap();
    assert!(!ring_readable(&c, 100), "the second connect completed");
    assert_eq!(
        c.inflight(),
        2,
        "a receive on the first, the second's connect"
    );
    c.release(waiting, 0, T0);
    drive(&mut c, |c, events| {
        assert!(events.is_empty(), "{events:?}");
        c.stats().open == 1
    });
    assert_eq!(
        c.stats().connect_failures,
        0,
        "a cancelled connect is no failure"
    );
    // Dropping the table with a connect in flight does not wait for the SYN's retries.
    let _ = c.connect(KEY, addr, 3).unwrap();
    c.flush().unwrap();
    let started = std::time::Instant::now();
    drop(c);
    assert!(started.elapsed() < std::time::Duration::from_millis(500));
    drop((listener, queued));
}

#[test]
fn a_reset_under_a_send_in_flight_is_told_once() {
    let (tell, told) = mpsc::channel::<()>();
    let told = std::sync::Mutex::new(told);
    // Reads nothing until told, then resets.
    let server = Server::spawn(move |s, _| {
        let _ = told.lock().unwrap().recv();
        reset(s);
    });
    let mut c = conns(|_| {});
    let id = connected(&mut c, server.addr, 1);
    // Fill both sockets' buffers until a send stays in flight.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut events = Vec::new();
    loop {
        let n = c.send_room(id).len();
        c.commit_send(id, n);
        c.flush().unwrap();
        let slot = &c.slots[id.index as usize];
        if !ring_readable(&c, 50) && slot.send_pending && slot.recv_pending {
            break;
        }
        events.clear();
        c.poll(&mut events);
        assert!(
            events.iter().all(|e| *e == UpstreamEvent::Sent(id)),
            "{events:?}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no send stayed in flight"
        );
    }
    tell.send(()).unwrap();
    // The send fails with the reset, and the receive then reads the socket as closed: one
    // event tells the owner, not a reset and an EOF.
    let mut told = Vec::new();
    drive(&mut c, |c, events| {
        told.extend(events.iter().filter(|e| **e != UpstreamEvent::Sent(id)));
        c.slots[id.index as usize].quiet()
    });
    assert!(
        matches!(told[..], [UpstreamEvent::Reset(got, libc::ECONNRESET | libc::EPIPE)] if got == id),
        "{told:?}"
    );
    c.release(id, KEEPALIVE, T0);
    drive_until(&mut c, |st| st.open == 0);
}

/// The owner reads everything while a receive is in flight (a slow client freed room late):
/// the next bytes must land after the ones consumed, not over the buffer's front. Found by
/// the proxy's 100 MB download (64 bytes of the stream replaced by older ones).
#[test]
fn consuming_everything_under_a_receive_in_flight_keeps_the_stream_in_order() {
    const LEN: usize = 256 * 1024;
    let server = Server::spawn(|mut s, _| {
        // In pieces, so that receives complete with part of the buffer filled.
        for chunk in pattern(LEN).chunks(1000) {
            if s.write_all(chunk).is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    });
    let mut c = conns(|_| {});
    let id = connected(&mut c, server.addr, 1);
    let mut got = Vec::with_capacity(LEN);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut events = Vec::new();
    while got.len() < LEN {
        assert!(
            std::time::Instant::now() < deadline,
            "stalled at {}",
            got.len()
        );
        events.clear();
        c.poll(&mut events);
        // The receive is re-posted first, then the owner takes what came.
        c.flush().unwrap();
        got.extend_from_slice(c.received(id));
        let n = c.received(id).len();
        c.consume(id, n);
        ring_readable(&c, 10);
    }
    assert!(got == pattern(LEN), "bytes out of order");
}
