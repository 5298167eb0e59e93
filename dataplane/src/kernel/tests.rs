//! The kernel path's own unit tests, against real sockets on loopback (the stream logic is
//! tested without sockets in `crate::stream`).

use super::ring::{user_data, Op};
use super::*;

fn poll_until(kp: &mut KernelPath, now: &mut Instant, mut what: impl FnMut(&KernelPath) -> bool) {
    for _ in 0..5000 {
        *now += Duration::from_millis(1);
        kp.poll(*now, 0);
        if what(kp) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("condition not reached");
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[test]
fn no_descriptor_outlives_its_connection_or_the_kernel_path() {
    use std::io::{Read, Write};
    let baseline = open_fds();
    let app = App::new(&crate::app::AppConfig::default()).unwrap();
    let config = KernelConfig {
        max_connections: 8,
        ..KernelConfig::default()
    };
    let mut kp = KernelPath::new(config, app).unwrap();
    let addr = kp
        .listen(
            std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 0),
            64,
        )
        .unwrap();
    let mut now = Instant::from_secs(1);
    for i in 0..300 {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        if i % 2 == 0 {
            s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .unwrap();
            s.set_nonblocking(true).unwrap();
            let mut got = Vec::new();
            poll_until(&mut kp, &mut now, |_| {
                let mut buf = [0u8; 512];
                match s.read(&mut buf) {
                    Ok(0) => true,
                    Ok(n) => {
                        got.extend_from_slice(&buf[..n]);
                        false
                    }
                    Err(_) => false,
                }
            });
            assert!(got.ends_with(b"ok"));
        }
        drop(s);
        poll_until(&mut kp, &mut now, |kp| kp.connection_count() == 0);
    }
    assert_eq!(kp.stats().closed, 300);
    // Listener, ring and the closed connections' sockets: a few, not hundreds.
    let serving = open_fds();
    assert!(
        serving < baseline + 20,
        "{baseline} -> {serving} descriptors"
    );
    drop(kp);
    let after = open_fds();
    assert!(
        after < baseline + 10,
        "{baseline} -> {after} descriptors after drop"
    );
}

#[test]
fn completions_of_an_earlier_generation_never_touch_the_reused_slot() {
    use std::io::{Read, Write};
    let app = App::new(&crate::app::AppConfig::default()).unwrap();
    let mut kp = KernelPath::new(KernelConfig::default(), app).unwrap();
    let addr = kp
        .listen(
            std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 0),
            16,
        )
        .unwrap();
    let mut now = Instant::from_secs(1);
    // Completions for slots that do not exist are ignored.
    kp.complete(now, user_data(Op::Recv, 9, 1), 100, 0);
    kp.complete(now, user_data(Op::Send, 9, 1), 100, 0);

    let first = std::net::TcpStream::connect(addr).unwrap();
    poll_until(&mut kp, &mut now, |kp| kp.connection_count() == 1);
    let old_gen = kp.sessions.get(0).unwrap().gen;
    drop(first);
    poll_until(&mut kp, &mut now, |kp| kp.connection_count() == 0);

    let mut second = std::net::TcpStream::connect(addr).unwrap();
    poll_until(&mut kp, &mut now, |kp| kp.connection_count() == 1);
    assert_eq!(kp.free.len(), 0, "the slot was reused");
    assert_ne!(kp.sessions.get(0).unwrap().gen, old_gen);
    let before = kp.stats;
    // Late completions of the first connection: a receive with data, a send, an error.
    kp.complete(now, user_data(Op::Recv, 0, old_gen), 50, 0);
    kp.complete(now, user_data(Op::Send, 0, old_gen), 10, 0);
    kp.complete(now, user_data(Op::Recv, 0, old_gen), -libc::ECONNRESET, 0);
    assert_eq!(kp.stats, before);
    assert!(kp.sessions.get(0).is_some_and(|c| !c.closing()));

    second
        .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    second
        .set_read_timeout(Some(std::time::Duration::from_millis(1)))
        .unwrap();
    let mut got = Vec::new();
    poll_until(&mut kp, &mut now, |_| {
        let mut buf = [0u8; 512];
        match (&second).read(&mut buf) {
            Ok(0) => true,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                false
            }
            Err(_) => false,
        }
    });
    assert!(got.ends_with(b"\r\n\r\nok"));
}
