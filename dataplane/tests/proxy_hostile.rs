//! Root-only: the reverse proxy (issue 13, "Tests") against hostile and failing upstreams and
//! the request-smuggling corpus, on both paths. Each test starts `xgate run` in the gateway
//! netns of a veth topology with two `[[ports]]` (one bypass, one kernel) and upstreams of
//! its own: [`Upstream`], a scripted HTTP/1.1 server on the gateway's loopback, run on
//! threads of this test process (which is outside the gateway's cgroup, so its sockets are
//! the kernel's), that records every request head it parses and answers each request by its
//! path: well, by resetting, by stalling, with bad framing, a giant head, a trickled body or a
//! close-delimited one. Clients are std `TcpStream`s connected from the client netns (and
//! curl where its rate limit is the point), each reading responses strictly: a body is
//! complete only when its framing says so.
//!
//! Each test is named after the rule it proves and runs it through both ports. Every wait is
//! bounded; everything created is removed, also on panic. Skips (passes with a message) when
//! not run as root.

mod common;

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::http_client::{Client, Reply, Response, Silence};
use common::upstream::{fill_until, read_chunked_body, read_sized_body, Listener};
use common::{is_root, start_xgate, wait_for, TempDir, Topology, GW_IP};

const BYPASS: u16 = 18480;
const KERNEL: u16 = 18481;
const PORTS: [u16; 2] = [BYPASS, KERNEL];
/// Nothing listens there, in the gateway netns.
const DEAD: u16 = 18491;
/// Nor there: a pool of two dead servers (the only server of a pool is never ejected).
const DEAD_TOO: u16 = 18492;
/// `read_timeout_secs` of the scripted pool.
const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// `idle_timeout_secs` of the scripted pool: the trickled bodies pause below it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Over the upstream response head limit (`UpstreamLimits::max_head_bytes`, 32 KiB).
const GIANT_HEAD: usize = 40 * 1024;

/// The root tests start gateways and upstreams of their own: one at a time.
static ROOT_TESTS: Mutex<()> = Mutex::new(());

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// `body` is `pattern(n)`; else where it differs.
#[track_caller]
fn assert_body(body: &[u8], n: usize, what: &str) {
    let want = pattern(n);
    if body == want {
        return;
    }
    let at = body.iter().zip(&want).position(|(a, b)| a != b);
    let near = |b: &[u8], at: usize| b[at.saturating_sub(16)..(at + 48).min(b.len())].to_vec();
    match at {
        Some(at) => panic!(
            "{what}: {} bytes (want {n}), first difference at {at}: got {:?}, want {:?}",
            body.len(),
            near(body, at),
            near(&want, at),
        ),
        None => panic!("{what}: {} bytes, want {n} (a prefix of it)", body.len()),
    }
}

/// SO_LINGER 0 then close: the kernel sends a RST instead of a FIN.
fn reset(s: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a correctly sized `linger` value.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", io::Error::last_os_error());
    drop(s);
}

// ---------------------------------------------------------------------------------------------
// The scripted upstream.

/// One request as the upstream parsed it.
#[derive(Debug, Clone)]
struct Seen {
    /// Which accepted connection it came on (0, 1, ... in accept order).
    conn: u64,
    method: String,
    target: String,
    head: String,
    body: Vec<u8>,
    /// Framing fields in the head: `Content-Length` and `Transfer-Encoding` lines.
    framing_fields: usize,
}

/// How an upstream answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// By the request's path (see [`answer`]).
    Scripted,
    /// Reads each request whole, then drops the connection without a byte of response: a
    /// reset, or a close (FIN) when the path has `/fin/`.
    DropAll,
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    /// Connections the gateway closed (the upstream read EOF on them).
    closed: Mutex<Vec<u64>>,
}

struct Upstream {
    shared: Arc<Shared>,
    listener: Listener,
}

impl Upstream {
    /// Listens on 127.0.0.1 (an ephemeral port) in the gateway netns `ns`.
    fn start(ns: &str, mode: Mode) -> Upstream {
        let shared = Arc::new(Shared::default());
        let sh = Arc::clone(&shared);
        let listener = Listener::start(ns, move |s, conn| serve(s, conn, mode, &sh));
        Upstream { shared, listener }
    }

    fn port(&self) -> u16 {
        self.listener.addr.port()
    }

    fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    fn seen_count(&self) -> usize {
        self.shared.seen.lock().unwrap().len()
    }

    fn was_closed(&self, conn: u64) -> bool {
        self.shared.closed.lock().unwrap().contains(&conn)
    }
}

/// A request read strictly: `Content-Length` or chunked, nothing lenient.
struct Request {
    method: String,
    target: String,
    head: String,
    body: Vec<u8>,
    framing_fields: usize,
}

/// The next request on the connection; `None` at EOF (or on bytes this strict reader cannot
/// frame, which the test then sees as a missing answer).
fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    let end = fill_until(s, buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end);
    let mut lines = head.split("\r\n");
    let mut start = lines.next()?.split(' ');
    let method = start.next()?.to_string();
    let target = start.next()?.to_string();
    let mut length = None;
    let mut chunked = false;
    let mut framing_fields = 0;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            framing_fields += 1;
            length = value.trim().parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            framing_fields += 1;
            chunked = value.trim().eq_ignore_ascii_case("chunked");
        }
    }
    let mut body = Vec::new();
    if target.starts_with("/h/early") {
        // Answered from the head alone: the body stays unread, for `answer` to deal with.
    } else if chunked {
        body = read_chunked_body(s, buf)?;
    } else if let Some(n) = length {
        body = read_sized_body(s, buf, n)?;
    }
    Some(Request {
        method,
        target,
        head,
        body,
        framing_fields,
    })
}

/// What the connection does after an answer.
enum After {
    KeepAlive,
    Close,
    Reset,
    /// Never answers: holds the connection until the gateway closes it.
    Hold,
}

fn serve(mut s: TcpStream, conn: u64, mode: Mode, shared: &Shared) {
    let mut buf = Vec::new();
    loop {
        let Some(req) = read_request(&mut s, &mut buf) else {
            shared.closed.lock().unwrap().push(conn);
            return;
        };
        let seq = {
            let mut seen = shared.seen.lock().unwrap();
            seen.push(Seen {
                conn,
                method: req.method.clone(),
                target: req.target.clone(),
                head: req.head.clone(),
                body: req.body.clone(),
                framing_fields: req.framing_fields,
            });
            seen.len() - 1
        };
        let after = match mode {
            Mode::DropAll if req.target.contains("/fin/") => After::Close,
            Mode::DropAll => After::Reset,
            Mode::Scripted => answer(&mut s, &req, conn, seq),
        };
        match after {
            After::KeepAlive => {}
            After::Close => {
                let _ = s.shutdown(Shutdown::Write);
                // Drain until the gateway closes too, so the FIN is not followed by a RST.
                let mut sink = [0u8; 4096];
                while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
                return;
            }
            After::Reset => return reset(s),
            After::Hold => {
                let mut sink = [0u8; 4096];
                while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
                shared.closed.lock().unwrap().push(conn);
                return;
            }
        }
    }
}

/// The scripted answers, by path (the routes do not strip their prefix). Every answer that
/// looks valid names the connection and the request's index in `X-Upstream`.
fn answer(s: &mut TcpStream, req: &Request, conn: u64, seq: usize) -> After {
    let path = req.target.split('?').next().unwrap_or("");
    let tag = format!("X-Upstream: {conn}/{seq}\r\n");
    let write = |s: &mut TcpStream, bytes: &[u8]| s.write_all(bytes).is_ok();
    let ok_head = |len: usize| format!("HTTP/1.1 200 OK\r\n{tag}Content-Length: {len}\r\n\r\n");
    let rest = |prefix: &str| -> usize {
        path.strip_prefix(prefix)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    if path == "/h/early" {
        // A final answer before the request body is read; the body is then read and dropped
        // until the gateway closes, so no reset takes the answer away.
        write(
            s,
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return After::Close;
    }
    if req.method == "POST" {
        let mut out = ok_head(req.body.len()).into_bytes();
        out.extend_from_slice(&req.body);
        return if write(s, &out) {
            After::KeepAlive
        } else {
            After::Close
        };
    }
    if path == "/h/stall" {
        return After::Hold;
    }
    if path == "/h/stall-body" {
        // The head and a tenth of the body, then silence.
        write(
            s,
            format!("HTTP/1.1 200 OK\r\n{tag}Content-Length: 100\r\n\r\n0123456789").as_bytes(),
        );
        return After::Hold;
    }
    if path == "/h/close-after" {
        // A keep-alive answer, then the connection closed while it idles in the pool.
        let body = b"ok";
        let mut out = ok_head(body.len()).into_bytes();
        out.extend_from_slice(body);
        write(s, &out);
        std::thread::sleep(Duration::from_millis(100));
        return After::Close;
    }
    if let Some(ms) = path.strip_prefix("/h/slow/") {
        std::thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
        let mut out = ok_head(4).into_bytes();
        out.extend_from_slice(b"late");
        write(s, &out);
        return After::KeepAlive;
    }
    if path == "/h/slow-head" {
        // The head and body a byte at a time.
        let mut out = ok_head(5).into_bytes();
        out.extend_from_slice(b"slow!");
        for b in out.chunks(1) {
            if !write(s, b) {
                return After::Close;
            }
            std::thread::sleep(Duration::from_millis(3));
        }
        return After::KeepAlive;
    }
    if path == "/h/interim-flood" {
        // 1xx after 1xx and never a final answer, until the gateway closes.
        while write(s, b"HTTP/1.1 102 Processing\r\n\r\n") {
            std::thread::sleep(Duration::from_millis(50));
        }
        return After::Close;
    }
    if path == "/h/reset" {
        return After::Reset;
    }
    if path.starts_with("/h/bytes/") {
        let n = rest("/h/bytes/");
        let mut out = ok_head(n).into_bytes();
        out.extend_from_slice(&pattern(n));
        write(s, &out);
        return After::KeepAlive;
    }
    if path.starts_with("/h/trickle/") {
        // Pieces of 8 KiB, 2 ms apart, and two pauses of 60% of the idle timeout.
        let chunked = path.starts_with("/h/trickle/chunked/");
        let n = rest(if chunked {
            "/h/trickle/chunked/"
        } else {
            "/h/trickle/cl/"
        });
        let head = if chunked {
            format!("HTTP/1.1 200 OK\r\n{tag}Transfer-Encoding: chunked\r\n\r\n")
        } else {
            ok_head(n)
        };
        if !write(s, head.as_bytes()) {
            return After::Close;
        }
        let body = pattern(n);
        let pieces: Vec<&[u8]> = body.chunks(8192).collect();
        let pause = IDLE_TIMEOUT.mul_f64(0.6);
        for (i, piece) in pieces.iter().enumerate() {
            if i == pieces.len() / 3 || i == 2 * pieces.len() / 3 {
                std::thread::sleep(pause);
            } else {
                std::thread::sleep(Duration::from_millis(2));
            }
            let ok = if chunked {
                let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
                framed.extend_from_slice(piece);
                framed.extend_from_slice(b"\r\n");
                write(s, &framed)
            } else {
                write(s, piece)
            };
            if !ok {
                return After::Close;
            }
        }
        if chunked {
            write(s, b"0\r\n\r\n");
        }
        return After::KeepAlive;
    }
    if path.starts_with("/h/close10/") || path.starts_with("/h/close11/") {
        // A body delimited by the connection's close: HTTP/1.0 style, or HTTP/1.1 without a
        // length.
        let v10 = path.starts_with("/h/close10/");
        let n = rest(if v10 { "/h/close10/" } else { "/h/close11/" });
        let head = if v10 {
            format!("HTTP/1.0 200 OK\r\n{tag}\r\n")
        } else {
            format!("HTTP/1.1 200 OK\r\n{tag}Connection: close\r\n\r\n")
        };
        let mut out = head.into_bytes();
        out.extend_from_slice(&pattern(n));
        write(s, &out);
        return After::Close;
    }
    let bad: Option<(Vec<u8>, Option<Vec<u8>>, After)> = match path {
        "/h/bad/two-cl" => Some((
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".to_vec(),
            None,
            After::KeepAlive,
        )),
        "/h/bad/cl-list" => Some((
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!".to_vec(),
            None,
            After::KeepAlive,
        )),
        "/h/bad/te-cl" => Some((
            format!(
                "HTTP/1.1 200 OK\r\n{tag}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n\
                 5\r\nhello\r\n0\r\n\r\n"
            )
            .into_bytes(),
            None,
            After::KeepAlive,
        )),
        "/h/bad/chunk-size" => Some((
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            None,
            After::KeepAlive,
        )),
        "/h/bad/chunk-overflow" => Some((
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            None,
            After::KeepAlive,
        )),
        "/h/chunk-ext-trailer" => Some((
            format!(
                "HTTP/1.1 200 OK\r\n{tag}Transfer-Encoding: chunked\r\n\r\n\
                 5;a=\"b;c\"\r\nhello\r\n0;last\r\nX-Trailer: HTTP/1.1 200 OK\r\n\r\n"
            )
            .into_bytes(),
            None,
            After::KeepAlive,
        )),
        "/h/bad/chunk-size-late" => Some((
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".to_vec(),
            Some(b"zz\r\nhello\r\n0\r\n\r\n".to_vec()),
            After::KeepAlive,
        )),
        "/h/bad/status" => Some((
            b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            None,
            After::KeepAlive,
        )),
        "/h/bad/garbage" => Some((
            b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec(),
            None,
            After::KeepAlive,
        )),
        "/h/bad/giant-head" => {
            let mut head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n".to_vec();
            while head.len() < GIANT_HEAD {
                head.extend_from_slice(
                    format!("X-Big-{}: {}\r\n", head.len(), "b".repeat(200)).as_bytes(),
                );
            }
            head.extend_from_slice(b"\r\nok");
            Some((head, None, After::KeepAlive))
        }
        "/h/bad/short-cl" => Some((
            format!("HTTP/1.1 200 OK\r\n{tag}Content-Length: 100\r\n\r\n0123456789").into_bytes(),
            Some(Vec::new()),
            After::Close,
        )),
        "/h/bad/chunked-cut" => Some((
            format!("HTTP/1.1 200 OK\r\n{tag}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
                .into_bytes(),
            Some(Vec::new()),
            After::Close,
        )),
        "/h/bad/obs-fold" => Some((
            b"HTTP/1.1 200 OK\r\nX-A: a\r\n folded\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            None,
            After::KeepAlive,
        )),
        "/h/bad/space-colon" => Some((
            b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok".to_vec(),
            None,
            After::KeepAlive,
        )),
        "/h/bad/cl-sign" => Some((
            b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok".to_vec(),
            None,
            After::KeepAlive,
        )),
        "/h/bad/cl-huge" => Some((
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999\r\n\r\nok".to_vec(),
            None,
            After::KeepAlive,
        )),
        "/h/bad/te-http10" => Some((
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n".to_vec(),
            None,
            After::KeepAlive,
        )),
        "/h/bad/upgrade" => Some((
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                .to_vec(),
            None,
            After::KeepAlive,
        )),
        // Bodies where none may be: after a 204, and in the answer to a HEAD.
        "/h/bad/204-body" => Some((
            b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
                .to_vec(),
            None,
            After::KeepAlive,
        )),
        "/h/bad/head-body" => Some((
            b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled".to_vec(),
            None,
            After::KeepAlive,
        )),
        "/h/bad/extra-bytes" => Some((
            format!(
                "HTTP/1.1 200 OK\r\n{tag}Content-Length: 5\r\n\r\nhello\
                 HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
            )
            .into_bytes(),
            None,
            After::KeepAlive,
        )),
        _ => None,
    };
    if let Some((first, later, after)) = bad {
        if !write(s, &first) {
            return After::Close;
        }
        if let Some(later) = later {
            // In a segment of its own, after the client's head went out.
            std::thread::sleep(Duration::from_millis(300));
            write(s, &later);
        }
        return after;
    }
    // Anything else: a small answer naming the path.
    let body = format!("ok {path}");
    let mut out = ok_head(body.len()).into_bytes();
    out.extend_from_slice(body.as_bytes());
    write(s, &out);
    After::KeepAlive
}

// ---------------------------------------------------------------------------------------------
// The gateway.

struct Lab {
    // Dropped in order: the gateway (a child of `topo`) before the upstreams.
    topo: Topology,
    scripted: Upstream,
    resetting: Upstream,
    access_log: PathBuf,
    _dir: TempDir,
}

/// The pools: `hostile` (the scripted upstream; never ejected, so each case meets it),
/// `retry` (a resetting server and the scripted one), `resetting` (the resetting server
/// alone) and `dead` (nothing listens; ejected after one failure for a minute).
fn config_file(dir: &Path, topo: &Topology, scripted: u16, resetting: u16) -> PathBuf {
    let path = dir.join("xgate.toml");
    let read = READ_TIMEOUT.as_secs();
    let idle = IDLE_TIMEOUT.as_secs();
    let text = format!(
        r#"interface = "{iface}"
shutdown_grace_secs = 1

[[ports]]
port = {BYPASS}
bypass = true

[[ports]]
port = {KERNEL}
bypass = false

[[upstream]]
name = "hostile"
servers = [{{ address = "127.0.0.1:{scripted}" }}]
read_timeout_secs = {read}
idle_timeout_secs = {idle}
max_fails = 0

[[upstream]]
name = "retry"
servers = [{{ address = "127.0.0.1:{resetting}" }}, {{ address = "127.0.0.1:{scripted}" }}]
max_fails = 0

[[upstream]]
name = "resetting"
servers = [{{ address = "127.0.0.1:{resetting}" }}]
max_fails = 0

[[upstream]]
name = "dead"
servers = [{{ address = "127.0.0.1:{DEAD}" }}, {{ address = "127.0.0.1:{DEAD_TOO}" }}]
max_fails = 1
fail_timeout_secs = 60

[[route]]
path_prefix = "/h"
upstream = "hostile"

[[route]]
path_prefix = "/retry"
upstream = "retry"

[[route]]
path_prefix = "/resetting"
upstream = "resetting"

[[route]]
path_prefix = "/dead"
upstream = "dead"
"#,
        iface = topo.server_if,
    );
    std::fs::write(&path, text).expect("writing the config");
    path
}

impl Lab {
    fn start() -> Lab {
        let topo = Topology::create();
        let dir = TempDir::new(&format!("{}-proxy-hostile", topo.name));
        let scripted = Upstream::start(&topo.server_ns, Mode::Scripted);
        let resetting = Upstream::start(&topo.server_ns, Mode::DropAll);
        let config = config_file(&dir.0, &topo, scripted.port(), resetting.port());
        let access_log = dir.0.join("access.log");
        let mut lab = Lab {
            topo,
            scripted,
            resetting,
            access_log,
            _dir: dir,
        };
        let access_log = ["--access-log".as_ref(), lab.access_log.as_os_str()];
        start_xgate(&mut lab.topo, &config, &access_log);
        lab
    }

    fn connect(&self, port: u16) -> Client {
        Client::connect(&self.topo, port, Duration::from_secs(10), Silence::Fails)
    }

    /// One request on a connection of its own.
    fn one(&self, port: u16, req: &str) -> Reply {
        let mut c = self.connect(port);
        c.send(req.as_bytes());
        c.reply()
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

fn setup(name: &str) -> Option<(std::sync::MutexGuard<'static, ()>, Lab)> {
    if !is_root() {
        eprintln!("skipping {name}: needs root (netns, XDP, AF_XDP, cgroups)");
        return None;
    }
    let serial = ROOT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    Some((serial, Lab::start()))
}

// ---------------------------------------------------------------------------------------------
// 1. Resets before any response byte.

#[test]
fn reset_before_response_retries_idempotent_get_elsewhere_and_never_resends_post() {
    let Some((_serial, lab)) = setup("reset_before_response") else {
        return;
    };
    for port in PORTS {
        // A pool of two, one resetting everything: every GET is answered by the good one.
        let resets_before = lab.resetting.seen_count();
        let mut c = lab.connect(port);
        for i in 0..6 {
            c.send(get(&format!("/retry/{port}/{i}")).as_bytes());
            let r = c.reply().response();
            assert_eq!(r.status, 200, ":{port} GET #{i}: {}", r.head);
            assert_eq!(
                r.body,
                format!("ok /retry/{port}/{i}").as_bytes(),
                ":{port}"
            );
            assert!(r.complete);
        }
        // The same when the server closes (FIN) instead of resetting.
        for i in 0..4 {
            c.send(get(&format!("/retry/fin/{port}/{i}")).as_bytes());
            let r = c.reply().response();
            assert_eq!(r.status, 200, ":{port} GET fin #{i}: {}", r.head);
            assert_eq!(r.body, format!("ok /retry/fin/{port}/{i}").as_bytes());
        }
        let resets = lab.resetting.seen_count() - resets_before;
        let fins = lab
            .resetting
            .seen()
            .iter()
            .filter(|s| s.target.starts_with(&format!("/retry/fin/{port}/")))
            .count();
        assert!(
            resets - fins >= 1 && fins >= 1,
            ":{port}: round robin never tried the dropping server ({resets} drops, {fins} closes)"
        );
        eprintln!(":{port}: 10 GETs answered 200, {resets} of them retried ({fins} after a close)");

        // A POST to a pool whose only server resets: 502, and the upstream got it once.
        let before = lab.resetting.seen_count();
        let body = "a=1&b=2";
        let r = lab
            .one(
                port,
                &format!(
                    "POST /resetting/{port} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ),
            )
            .response();
        assert_eq!(r.status, 502, ":{port}: {}", r.head);
        // Give a (wrong) second attempt the time to arrive.
        std::thread::sleep(Duration::from_millis(300));
        let got: Vec<Seen> = lab.resetting.seen()[before..].to_vec();
        assert_eq!(
            got.len(),
            1,
            ":{port}: the POST reached the upstream {} times",
            got.len()
        );
        assert_eq!(got[0].method, "POST");
        assert_eq!(got[0].body, body.as_bytes());

        // An idempotent PUT with a body is not retried either: the gateway does not keep it.
        let before = lab.resetting.seen_count();
        let r = lab
            .one(
                port,
                &format!(
                    "PUT /resetting/{port} HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi"
                ),
            )
            .response();
        assert_eq!(r.status, 502, ":{port}: {}", r.head);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            lab.resetting.seen_count() - before,
            1,
            ":{port}: PUT resent"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Stalls.

#[test]
fn stalled_upstream_is_answered_504_after_the_read_timeout_and_cut_after_the_idle_timeout() {
    let Some((_serial, lab)) = setup("stalled_upstream") else {
        return;
    };
    for port in PORTS {
        let t = Instant::now();
        let mut c = lab.connect(port);
        c.send(get("/h/stall").as_bytes());
        let r = c.reply().response();
        let took = t.elapsed();
        assert_eq!(r.status, 504, ":{port}: {}", r.head);
        assert!(
            took >= READ_TIMEOUT.mul_f64(0.9) && took < READ_TIMEOUT * 4,
            ":{port}: 504 after {took:?}, read timeout {READ_TIMEOUT:?}"
        );
        assert!(
            c.closed(),
            ":{port}: the connection stays open after the 504"
        );
        // The stalled upstream connection is closed, not pooled.
        let conn = lab
            .scripted
            .seen()
            .iter()
            .rev()
            .find(|s| s.target == "/h/stall")
            .expect("the stall request reached the upstream")
            .conn;
        wait_for(
            "the stalled upstream connection closed",
            Duration::from_secs(3),
            || lab.scripted.was_closed(conn),
        );
        eprintln!(":{port}: 504 after {took:?}");

        // Interim responses without end do not extend the read timeout: the 1xx go on to
        // the HTTP/1.1 client, then the 504.
        let t = Instant::now();
        let mut c = lab.connect(port);
        c.send(get("/h/interim-flood").as_bytes());
        let r = c.reply().response();
        let took = t.elapsed();
        assert_eq!(r.status, 504, ":{port} interim flood: {}", r.head);
        assert!(c.interim > 0, ":{port}: no 1xx forwarded");
        assert!(took < READ_TIMEOUT * 4, ":{port}: 504 after {took:?}");
        assert!(
            c.closed(),
            ":{port}: the connection stays open after the 504"
        );
        eprintln!(
            ":{port}: {} interim responses, then 504 after {took:?}",
            c.interim
        );

        // Silence in the middle of the body: after the idle timeout the client's stream is
        // cut, short of its Content-Length, and closed.
        let t = Instant::now();
        let mut c = lab.connect(port);
        c.send(get("/h/stall-body").as_bytes());
        c.send(get("/h/bytes/10").as_bytes());
        let r = c.reply().response();
        let took = t.elapsed();
        assert_eq!(r.status, 200, ":{port}: {}", r.head);
        assert!(!r.complete, ":{port}: a stalled body ended clean");
        assert_eq!(r.body, b"0123456789", ":{port}");
        assert!(c.closed(), ":{port}: open after the cut");
        assert!(
            took >= IDLE_TIMEOUT.mul_f64(0.9) && took < IDLE_TIMEOUT * 3,
            ":{port}: cut after {took:?}, idle timeout {IDLE_TIMEOUT:?}"
        );
        eprintln!(":{port}: a stalled body cut after {took:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Bad framing from the upstream.

/// `Ok`: answered 502 before any byte of the upstream's head, connection closed. `Err`: the
/// upstream's head went out, then the stream was cut (the response is returned).
fn bad_gateway_or_cut(c: &mut Client, port: u16, case: &str) -> Result<(), Response> {
    let r = c.reply().response();
    if r.status == 502 {
        assert!(r.complete, ":{port} {case}: the 502 page is cut");
        assert!(
            r.header("X-Upstream").is_none(),
            ":{port} {case}: {}",
            r.head
        );
        assert!(c.closed(), ":{port} {case}: open after the 502");
        return Ok(());
    }
    assert!(
        !r.complete,
        ":{port} {case}: a clean response from a broken one: {} body {:?}",
        r.head,
        String::from_utf8_lossy(&r.body)
    );
    assert!(c.closed(), ":{port} {case}: the cut connection stays open");
    Err(r)
}

#[test]
fn bad_upstream_framing_is_a_502_or_a_cut_stream_never_a_clean_short_body() {
    let Some((_serial, lab)) = setup("bad_upstream_framing") else {
        return;
    };
    for port in PORTS {
        // Refused with the head: always a 502.
        for case in [
            "two-cl",
            "cl-list",
            "cl-sign",
            "cl-huge",
            "status",
            "garbage",
            "giant-head",
            "obs-fold",
            "space-colon",
            "te-http10",
            "upgrade",
        ] {
            let mut c = lab.connect(port);
            c.send(get(&format!("/h/bad/{case}")).as_bytes());
            c.send(get("/h/bytes/10").as_bytes());
            let t = Instant::now();
            bad_gateway_or_cut(&mut c, port, case)
                .unwrap_or_else(|r| panic!(":{port} {case}: not a 502 but a cut {}", r.head));
            assert!(
                t.elapsed() < READ_TIMEOUT,
                ":{port} {case}: the 502 took {:?} (a timeout, not the refusal)",
                t.elapsed()
            );
        }
        // A bad chunk size with the head: a 502 if both came in one read, else a cut.
        for case in ["chunk-size", "chunk-overflow"] {
            let mut c = lab.connect(port);
            c.send(get(&format!("/h/bad/{case}")).as_bytes());
            c.send(get("/h/bytes/10").as_bytes());
            if let Err(r) = bad_gateway_or_cut(&mut c, port, case) {
                assert_eq!((r.status, r.body.len()), (200, 0), ":{port} {case}");
            }
        }
        // Chunk extensions and a trailer (whose value looks like a status line): the data
        // whole, and nothing of the trailer taken for the next response.
        let mut c = lab.connect(port);
        c.send(get("/h/chunk-ext-trailer").as_bytes());
        let r = c.reply().response();
        assert_eq!(
            (r.status, &r.body[..], r.complete),
            (200, &b"hello"[..], true)
        );
        c.send(get("/h/bytes/10").as_bytes());
        let next = c.reply().response();
        assert_eq!(
            (next.status, &next.body[..]),
            (200, &pattern(10)[..]),
            ":{port}"
        );
        // Broken after the head went out: the client's stream is cut, never completed.
        for (case, body_before_cut) in [
            ("chunk-size-late", &b"hello"[..]),
            ("short-cl", &b"0123456789"[..]),
            ("chunked-cut", &b"hello"[..]),
        ] {
            let mut c = lab.connect(port);
            c.send(get(&format!("/h/bad/{case}")).as_bytes());
            c.send(get("/h/bytes/10").as_bytes());
            match bad_gateway_or_cut(&mut c, port, case) {
                Ok(()) => panic!(":{port} {case}: 502, but the head was out before the fault"),
                Err(r) => {
                    assert_eq!(r.status, 200);
                    assert_eq!(r.body, body_before_cut, ":{port} {case}");
                }
            }
        }
        // Transfer-Encoding with Content-Length: the chunked framing wins (RFC 9112 §6.3
        // rule 3), the length is not passed on, and the upstream connection is not reused.
        let mut c = lab.connect(port);
        c.send(get("/h/bad/te-cl").as_bytes());
        let r = c.reply().response();
        assert_eq!(
            (r.status, r.complete),
            (200, true),
            ":{port} te-cl: {}",
            r.head
        );
        assert_eq!(r.body, b"hello", ":{port} te-cl");
        assert!(
            r.header("Content-Length").is_none() || r.header("Content-Length") == Some("5"),
            ":{port} te-cl: the upstream's length passed on: {}",
            r.head
        );
        let conn: u64 = r
            .header("X-Upstream")
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        wait_for(
            "te-cl: its upstream connection closed",
            Duration::from_secs(3),
            || lab.scripted.was_closed(conn),
        );
        c.send(get("/h/bytes/10").as_bytes());
        let next = c.reply().response();
        assert_eq!(
            (next.status, &next.body[..]),
            (200, &pattern(10)[..]),
            ":{port}"
        );

        // A body where none may be (after a 204, in the answer to a HEAD): never passed on,
        // and the client's next request gets its own answer.
        let mut c = lab.connect(port);
        c.send(get("/h/bad/204-body").as_bytes());
        let r = c.reply().response();
        assert_eq!(r.status, 204, ":{port}: {}", r.head);
        c.send(get("/h/bytes/10").as_bytes());
        let next = c.reply().response();
        assert_eq!(
            (next.status, &next.body[..]),
            (200, &pattern(10)[..]),
            ":{port}: after a 204 with a body: {}",
            next.head
        );
        let mut c = lab.connect(port);
        c.send(b"HEAD /h/bad/head-body HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.reply_to_head().response();
        assert_eq!(r.status, 200, ":{port}: {}", r.head);
        c.send(get("/h/bytes/10").as_bytes());
        let next = c.reply().response();
        assert_eq!(
            (next.status, &next.body[..]),
            (200, &pattern(10)[..]),
            ":{port}: after a HEAD answered with a body: {}",
            next.head
        );

        // Bytes past the response's end: the client gets the response, not the extra bytes,
        // and its next request its own answer.
        let mut c = lab.connect(port);
        c.send(get("/h/bad/extra-bytes").as_bytes());
        let r = c.reply().response();
        assert_eq!(
            (r.status, &r.body[..], r.complete),
            (200, &b"hello"[..], true)
        );
        c.send(get("/h/bytes/10").as_bytes());
        let next = c.reply().response();
        assert_eq!(
            (next.status, &next.body[..]),
            (200, &pattern(10)[..]),
            ":{port}: the extra bytes reached the client: {}",
            next.head
        );
        let conn: u64 = r
            .header("X-Upstream")
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            lab.scripted.was_closed(conn) || {
                std::thread::sleep(Duration::from_millis(500));
                lab.scripted.was_closed(conn)
            },
            ":{port}: the upstream connection that sent extra bytes was kept"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Slow bodies.

#[test]
fn slow_upstream_and_slow_client_bodies_arrive_byte_exact() {
    let Some((_serial, lab)) = setup("slow_bodies") else {
        return;
    };
    const N: usize = 1_000_003;
    for port in PORTS {
        for kind in ["cl", "chunked"] {
            let t = Instant::now();
            let mut c = lab.connect(port);
            c.send(get(&format!("/h/trickle/{kind}/{N}")).as_bytes());
            let r = c.reply().response();
            assert_eq!(
                (r.status, r.complete),
                (200, true),
                ":{port} {kind}: {}",
                r.head
            );
            assert_eq!(r.body.len(), N, ":{port} {kind}");
            assert!(r.body == pattern(N), ":{port} {kind}: the body differs");
            eprintln!(
                ":{port}: trickled {kind} body of {N} bytes in {:?}",
                t.elapsed()
            );
        }
        // A head (and body) trickled a byte at a time.
        let r = lab.one(port, &get("/h/slow-head")).response();
        assert_eq!(
            (r.status, &r.body[..], r.complete),
            (200, &b"slow!"[..], true)
        );

        // A slow reader: a 16 KiB receive buffer read 4 KiB at a time, a millisecond apart,
        // so its window closes over and over and the gateway must hold the upstream back.
        let n = 4_000_037;
        let t = Instant::now();
        let mut c = lab.connect(port);
        c.slow_reader();
        c.send(get(&format!("/h/bytes/{n}")).as_bytes());
        let r = c.reply().response();
        assert_eq!(
            (r.status, r.complete),
            (200, true),
            ":{port} slow reader: {}",
            r.head
        );
        assert_eq!(r.body.len(), n, ":{port}: slow reader");
        assert!(
            r.body == pattern(n),
            ":{port}: slow reader: the body differs"
        );
        eprintln!(":{port}: {n} bytes to a slow reader in {:?}", t.elapsed());
        // The next answer on the same thread, over the upstream connection pooled after the
        // slow one, is its own.
        c.send(get("/h/bytes/1000").as_bytes());
        let r = c.reply().response();
        assert_eq!(
            (r.status, r.complete),
            (200, true),
            ":{port}: after the slow reader: {}",
            r.head
        );
        assert_body(&r.body, 1000, &format!(":{port}: after the slow reader"));
        // And curl's rate limit, for a reader the test does not write itself.
        let o = Command::new("ip")
            .args(["netns", "exec", &lab.topo.client_ns, "curl", "-sS"])
            .args(["--max-time", "30", "--limit-rate", "4M", "-o", "-"])
            .arg(format!("http://{GW_IP}:{port}/h/bytes/{n}"))
            .output()
            .expect("running curl");
        assert!(
            o.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_body(&o.stdout, n, &format!(":{port}: curl --limit-rate"));
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Close-delimited responses.

#[test]
fn close_delimited_response_is_rechunked_for_http11_and_close_delimited_for_http10() {
    let Some((_serial, lab)) = setup("close_delimited") else {
        return;
    };
    let n = 300_007;
    for port in PORTS {
        for style in ["close10", "close11"] {
            // HTTP/1.1 client: re-chunked, complete, and the connection goes on.
            let mut c = lab.connect(port);
            c.send(get(&format!("/h/{style}/{n}")).as_bytes());
            let r = c.reply().response();
            assert_eq!(r.status, 200, ":{port} {style}: {}", r.head);
            assert!(
                r.is_chunked(),
                ":{port} {style}: not re-chunked: {}",
                r.head
            );
            assert!(r.complete, ":{port} {style}: no last chunk");
            assert!(r.body == pattern(n), ":{port} {style}: the body differs");
            c.send(get("/h/bytes/10").as_bytes());
            let next = c.reply().response();
            assert_eq!((next.status, &next.body[..]), (200, &pattern(10)[..]));

            // HTTP/1.0 client: no Transfer-Encoding, the body ends with the connection.
            let mut c = lab.connect(port);
            c.send(format!("GET /h/{style}/{n} HTTP/1.0\r\nHost: t\r\n\r\n").as_bytes());
            let r = c.reply().response();
            assert_eq!(r.status, 200, ":{port} {style} 1.0: {}", r.head);
            assert!(
                r.header("Transfer-Encoding").is_none(),
                ":{port}: {}",
                r.head
            );
            assert!(r.header("Content-Length").is_none(), ":{port}: {}", r.head);
            assert!(r.head.starts_with("HTTP/1.1 "), ":{port}: {}", r.head);
            assert!(
                r.body == pattern(n),
                ":{port} {style} 1.0: the body differs"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 6. The smuggling corpus.

const SMUGGLED: &str = "GET /h/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

/// hostile_http.rs's corpus, aimed at the proxied prefix: (name, bytes, the refusal RFC 9112
/// calls for).
fn refused_corpus() -> Vec<(&'static str, String, u16)> {
    let post = "POST /h/rec HTTP/1.1\r\nHost: x\r\n";
    let chunked = format!("0\r\n\r\n{SMUGGLED}");
    vec![
        ("CL.TE", format!("{post}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}"), 400),
        ("TE.CL", format!("{post}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n{chunked}"), 400),
        ("TE.TE xchunked + CL", format!("{post}Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\n{chunked}"), 400),
        ("TE xchunked", format!("{post}Transfer-Encoding: xchunked\r\n\r\n{chunked}"), 501),
        ("TE chunked, identity", format!("{post}Transfer-Encoding: chunked, identity\r\n\r\n{chunked}"), 400),
        ("TE twice", format!("{post}Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n{chunked}"), 400),
        ("TE vertical tab", format!("{post}Transfer-Encoding: \x0bchunked\r\n\r\n{chunked}"), 400),
        ("TE in HTTP/1.0", format!("POST /h/rec HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}"), 400),
        ("TE obs-fold", format!("{post}X: y\r\n Transfer-Encoding: chunked\r\n\r\n{chunked}"), 400),
        ("TE space before colon", format!("{post}Transfer-Encoding : chunked\r\n\r\n{chunked}"), 400),
        ("TE bare CR", format!("{post}Transfer-Encoding: chunked\rX: y\r\n\r\n{chunked}"), 400),
        ("TE bare LF", format!("{post}Transfer-Encoding: chunked\nX: y\r\n\r\n{chunked}"), 400),
        ("CL duplicate, differing", format!("{post}Content-Length: 0\r\nContent-Length: 37\r\n\r\n{SMUGGLED}"), 400),
        ("CL list, differing", format!("{post}Content-Length: 0, 37\r\n\r\n{SMUGGLED}"), 400),
        ("CL plus sign", format!("{post}Content-Length: +37\r\n\r\n{SMUGGLED}"), 400),
        ("CL negative", format!("{post}Content-Length: -1\r\n\r\n{SMUGGLED}"), 400),
        ("CL overflow", format!("{post}Content-Length: 18446744073709551616\r\n\r\n{SMUGGLED}"), 400),
        ("CL obs-fold", format!("{post}Content-Length: 0\r\n 37\r\n\r\n{SMUGGLED}"), 400),
        ("NUL in field value", format!("{post}Content-Length: 3\x003\r\n\r\n{SMUGGLED}"), 400),
        ("bare LF ends the head", format!("{post}Content-Length: 0\n\n{SMUGGLED}"), 400),
        ("bare CR in request line", format!("POST /h/rec\rHTTP/1.1\r\nHost: x\r\n\r\n{SMUGGLED}"), 400),
        ("chunk size overflow", format!("{post}Transfer-Encoding: chunked\r\n\r\n1000000000000000000000000000025\r\n{SMUGGLED}"), 400),
        ("chunk size 2^64 - 1", format!("{post}Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n{SMUGGLED}"), 413),
        ("chunk size with sign", format!("{post}Transfer-Encoding: chunked\r\n\r\n+25\r\n{SMUGGLED}"), 400),
        ("chunk size 0x prefix", format!("{post}Transfer-Encoding: chunked\r\n\r\n0x25\r\n{SMUGGLED}"), 400),
        ("chunk size bare LF", format!("{post}Transfer-Encoding: chunked\r\n\r\n0\n\r\n{SMUGGLED}"), 400),
        ("two Host", format!("POST /h/rec HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 0\r\n\r\n{SMUGGLED}"), 400),
    ]
}

/// A request the gateway may accept: (name, bytes, the requests the upstream must get, each
/// its target and body).
type AcceptedCase = (&'static str, String, Vec<(&'static str, Vec<u8>)>);

/// Reads every response the gateway sends until it closes or stays silent for 500 ms.
fn read_all(c: &mut Client) -> Vec<Response> {
    c.s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut out = Vec::new();
    loop {
        // A quiet, open connection: nothing more is coming.
        if c.buf.is_empty() {
            let mut one = [0u8; 65536];
            match c.s.read(&mut one) {
                Ok(0) => return out,
                Ok(n) => c.buf.extend_from_slice(&one[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return out
                }
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return out,
                Err(e) => panic!("reading: {e}"),
            }
        }
        c.s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        match c.reply() {
            Reply::Response(r) => out.push(r),
            Reply::Closed => return out,
        }
        c.s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
    }
}

#[test]
fn smuggling_corpus_never_reaches_the_upstream_as_a_hidden_request() {
    let Some((_serial, lab)) = setup("smuggling_corpus") else {
        return;
    };
    for port in PORTS {
        // Refused at the gateway: one answer, the status the server side gives, a close, and
        // nothing at the upstream.
        for (name, input, status) in refused_corpus() {
            let before = lab.scripted.seen_count();
            let mut c = lab.connect(port);
            c.send(input.as_bytes());
            let answers = read_all(&mut c);
            let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
            assert_eq!(statuses, [status], ":{port} {name}: answers");
            assert!(c.closed(), ":{port} {name}: not closed after the refusal");
            let got = lab.scripted.seen()[before..].to_vec();
            assert!(got.is_empty(), ":{port} {name}: the upstream got {got:?}");
        }
        // Accepted, and unambiguous once forwarded: the upstream gets exactly the requests
        // the client got answers for, in order, with one framing field each, and the body
        // bytes the gateway read (a request inside a body stays a body).
        let cases: Vec<AcceptedCase> = vec![
            (
                "CL 0 and a second request after it",
                format!("POST /h/rec HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n{SMUGGLED}"),
                vec![("/h/rec", vec![]), ("/h/smuggled", vec![])],
            ),
            (
                "a request inside a Content-Length body",
                format!(
                    "POST /h/rec HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{SMUGGLED}",
                    SMUGGLED.len()
                ),
                vec![("/h/rec", SMUGGLED.as_bytes().to_vec())],
            ),
            (
                "a request inside a chunked body",
                format!(
                    "POST /h/rec HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n",
                    SMUGGLED.len()
                ),
                vec![("/h/rec", SMUGGLED.as_bytes().to_vec())],
            ),
            (
                "chunk extensions and a trailer",
                "POST /h/rec HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                 5;ext=\"a;b\";x\r\nhello\r\n0;last\r\nX-Trailer: GET /h/smuggled\r\n\r\n"
                    .to_string(),
                vec![("/h/rec", b"hello".to_vec())],
            ),
            (
                "Connection names Content-Length",
                "POST /h/rec HTTP/1.1\r\nHost: x\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello"
                    .to_string(),
                vec![("/h/rec", b"hello".to_vec())],
            ),
            (
                "Connection names Transfer-Encoding",
                "POST /h/rec HTTP/1.1\r\nHost: x\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                    .to_string(),
                vec![("/h/rec", b"hello".to_vec())],
            ),
            (
                "CL same value twice",
                "POST /h/rec HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
                    .to_string(),
                vec![("/h/rec", b"hello".to_vec())],
            ),
            (
                "GET with a Content-Length body holding a request",
                format!(
                    "GET /h/rec HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{SMUGGLED}",
                    SMUGGLED.len()
                ),
                vec![("/h/rec", SMUGGLED.as_bytes().to_vec())],
            ),
        ];
        for (name, input, want) in cases {
            let before = lab.scripted.seen_count();
            let mut c = lab.connect(port);
            c.send(input.as_bytes());
            let answers = read_all(&mut c);
            std::thread::sleep(Duration::from_millis(100));
            let got = lab.scripted.seen()[before..].to_vec();
            let targets: Vec<&str> = got.iter().map(|s| s.target.as_str()).collect();
            let want_targets: Vec<&str> = want.iter().map(|(t, _)| *t).collect();
            // A 4xx refusal is also a correct answer, as long as nothing went upstream.
            if answers.len() == 1 && (400..500).contains(&answers[0].status) {
                assert!(
                    got.is_empty(),
                    ":{port} {name}: refused, yet the upstream got {targets:?}"
                );
                eprintln!(":{port} {name}: refused {}", answers[0].status);
                continue;
            }
            assert_eq!(
                targets, want_targets,
                ":{port} {name}: what the upstream got"
            );
            assert_eq!(
                answers.len(),
                got.len(),
                ":{port} {name}: answers {answers:?}"
            );
            for ((seen, (_, body)), answer) in got.iter().zip(&want).zip(&answers) {
                assert_eq!(answer.status, 200, ":{port} {name}: {}", answer.head);
                assert_eq!(&seen.body, body, ":{port} {name}: the body forwarded");
                assert!(
                    seen.framing_fields <= 1,
                    ":{port} {name}: ambiguous head forwarded: {}",
                    seen.head
                );
                assert!(
                    !seen.head.contains("\n ") && !seen.head.contains("\n\t"),
                    ":{port} {name}: obs-fold forwarded: {}",
                    seen.head
                );
                let tag = format!("{}/", seen.conn);
                assert!(
                    answer
                        .header("X-Upstream")
                        .is_some_and(|t| t.starts_with(&tag)),
                    ":{port} {name}: an answer out of order"
                );
            }
        }
        // Across the whole run, no request hidden in a refused one reached the upstream
        // without the client getting its answer.
        let hidden = lab
            .scripted
            .seen()
            .iter()
            .filter(|s| s.target == "/h/smuggled")
            .count();
        assert_eq!(
            hidden, 1,
            ":{port}: /h/smuggled reached the upstream {hidden} times"
        );
        lab.scripted.shared.seen.lock().unwrap().clear();
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Each 5xx, and its access-log line.

/// The access log's lines for `needle` (the quoted request line), waiting for the writer.
fn log_lines(path: &Path, needle: &str, count: usize) -> Vec<String> {
    let mut lines = Vec::new();
    wait_for(
        &format!("{count} access-log line(s) with {needle}"),
        Duration::from_secs(5),
        || {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            lines = text
                .lines()
                .filter(|l| l.contains(needle))
                .map(str::to_string)
                .collect();
            lines.len() >= count
        },
    );
    lines
}

/// The fields after the quoted request line: STATUS BYTES_IN BYTES_OUT SECONDS PATH PORT
/// UPSTREAM UPSTREAM_SECONDS [cut].
fn after_request(line: &str) -> Vec<&str> {
    let (_, rest) = line.rsplit_once("\" ").expect("a quoted request line");
    rest.split(' ').collect()
}

#[test]
fn gateway_errors_are_502_503_504_each_logged_with_its_upstream() {
    let Some((_serial, lab)) = setup("gateway_errors") else {
        return;
    };
    let dead = [format!("127.0.0.1:{DEAD}"), format!("127.0.0.1:{DEAD_TOO}")];
    let scripted = format!("127.0.0.1:{}", lab.scripted.port());
    for port in PORTS {
        let path_name = if port == BYPASS { "bypass" } else { "kernel" };
        // 502: connection refused by both servers (the GET tried on each); both are ejected
        // (max_fails = 1) on that thread, and the next requests there find no server: 503. Each bypass queue has a pool of its
        // own, so a few connections may meet a fresh pool first.
        let mut statuses = Vec::new();
        for _ in 0..16 {
            let r = lab.one(port, &get(&format!("/dead/{port}"))).response();
            statuses.push(r.status);
            if r.status == 503 {
                break;
            }
        }
        assert_eq!(statuses[0], 502, ":{port}: {statuses:?}");
        assert_eq!(statuses.last(), Some(&503), ":{port}: {statuses:?}");
        assert!(
            statuses.iter().all(|s| *s == 502 || *s == 503),
            ":{port}: {statuses:?}"
        );
        let bad_gateways = statuses.iter().filter(|s| **s == 502).count();

        // 504: the stall.
        let r = lab.one(port, &get(&format!("/h/stall?{port}"))).response();
        assert_eq!(r.status, 504, ":{port}");

        // One line each: the upstream's address and `-` for its time when none answered.
        let lines = log_lines(
            &lab.access_log,
            &format!("\"GET /dead/{port} HTTP/1.1\""),
            statuses.len(),
        );
        for (line, status) in lines.iter().zip(&statuses) {
            let f = after_request(line);
            assert_eq!(f[0], status.to_string(), "{line}");
            assert_eq!((f[4], f[5]), (path_name, &*port.to_string()), "{line}");
            if *status == 502 {
                assert!(dead.iter().any(|d| d == f[6]) && f[7] == "-", "{line}");
            } else {
                assert_eq!((f[6], f[7]), ("-", "-"), "{line}");
            }
        }
        assert_eq!(
            lines
                .iter()
                .filter(|l| after_request(l)[0] == "502")
                .count(),
            bad_gateways
        );
        let lines = log_lines(
            &lab.access_log,
            &format!("\"GET /h/stall?{port} HTTP/1.1\""),
            1,
        );
        let f = after_request(&lines[0]);
        assert_eq!(f[0], "504", "{}", lines[0]);
        assert_eq!((f[6], f[7]), (&*scripted, "-"), "{}", lines[0]);
        eprintln!(":{port}: {statuses:?} then 504, logged");
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Connections that end early, on either side.

#[test]
fn a_pooled_connection_the_upstream_closed_is_not_used_again() {
    let Some((_serial, lab)) = setup("pooled_connection_closed") else {
        return;
    };
    for port in PORTS {
        // One server: no other to retry on, so the closed connection must not be picked.
        let mut c = lab.connect(port);
        for i in 0..3 {
            c.send(get("/h/close-after").as_bytes());
            let r = c.reply().response();
            assert_eq!(
                (r.status, &r.body[..]),
                (200, &b"ok"[..]),
                ":{port} #{i}: {}",
                r.head
            );
            // The upstream closes its side 100 ms after answering.
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

#[test]
fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    let Some((_serial, lab)) = setup("client_half_close") else {
        return;
    };
    for port in PORTS {
        let mut c = lab.connect(port);
        c.send(get("/h/slow/300").as_bytes());
        c.s.shutdown(Shutdown::Write).expect("half-close");
        let r = c.reply().response();
        assert_eq!(
            (r.status, &r.body[..]),
            (200, &b"late"[..]),
            ":{port}: {}",
            r.head
        );
        assert!(
            c.closed(),
            ":{port}: open after the answer to a half-closed client"
        );
    }
}

#[test]
fn an_upstream_answering_before_the_request_body_ends_is_passed_on_and_the_body_dropped() {
    let Some((_serial, lab)) = setup("early_answer") else {
        return;
    };
    let n = 2_000_000;
    for port in PORTS {
        let mut c = lab.connect(port);
        let mut writer = c.s.try_clone().expect("a second handle");
        let upload = std::thread::spawn(move || {
            let head = format!("POST /h/early HTTP/1.1\r\nHost: t\r\nContent-Length: {n}\r\n\r\n");
            // The gateway may stop reading (and close) before the body is all written.
            let _ = writer.write_all(head.as_bytes());
            let _ = writer.write_all(&pattern(n));
        });
        let t = Instant::now();
        let r = c.reply().response();
        assert_eq!(r.status, 413, ":{port}: {}", r.head);
        assert!(
            c.closed(),
            ":{port}: open after an answer that left the body unread"
        );
        assert!(
            t.elapsed() < Duration::from_secs(5),
            ":{port}: {:?}",
            t.elapsed()
        );
        upload.join().expect("the uploading thread");
    }
}
