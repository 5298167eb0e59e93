//! Root-only: hostile HTTP clients and the connection bound, through the bypass path end to
//! end (XDP steering, AF_XDP, the user-space TCP engine and HTTP), with real kernel TCP
//! clients in a client network namespace (std `TcpStream`s made on threads that entered it).
//!
//! `hostile_clients_do_not_disturb_the_others`: one gateway with small limits (header timeout
//! 2 s, 4 KiB heads, HTTP idle/send timeout 6 s) while well-behaved background clients
//! (keep-alive and a new connection per request, every answer checked) run the whole time;
//! then slowloris, oversized heads, the request-smuggling corpus, a pipelined flood, a client
//! that never reads, and resets mid-request and mid-response. Each hostile connection must get
//! its answer (or none), be closed, and leave the engine (its 4-tuple gone from `user_flows`);
//! at the end the background clients saw no failure and no reset, and the engine holds nothing.
//!
//! `connection_table_full_refuses_cleanly`: `tcp.max_connections` = 8 on one queue: 8 held
//! connections work, the 9th is reset at once (the engine answers its cookie ACK with a RST),
//! the held ones keep working, and after two close, two new ones get in.
//!
//! Every wait is bounded; everything created is removed, also on panic. Skips (passes with a
//! message) when not run as root.

mod common;

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{is_root, run, wait_for, Topology, CLIENT_IP, GW_IP};
use dataplane::afxdp::PollerCounters;
use dataplane::gateway::{Bypass, BypassConfig, CgroupPlacement, PortConfig};
use dataplane::tcp::FlowKey;
use xgate_testnet::netns::{connect_in, spawn_in_netns};

const PORT: u16 = 18300;
const HEADER_TIMEOUT_SECS: u64 = 2;
const HTTP_IDLE_SECS: u64 = 6;
const MAX_HEADER_BYTES: usize = 4096;

/// The root tests move the whole process between cgroups: one at a time.
static ROOT_TESTS: Mutex<()> = Mutex::new(());

fn gw_addr() -> SocketAddrV4 {
    SocketAddrV4::new(GW_IP.parse().unwrap(), PORT)
}

fn sum(counters: &[PollerCounters], f: impl Fn(&PollerCounters) -> u64) -> u64 {
    counters.iter().map(f).sum()
}

/// Starts the gateway in the gateway netns with `PORT` on, after `tune` adjusted the config;
/// returns it with the port's kernel listener (held so that sock_ops keeps the port tagged).
fn start_gateway(
    topo: &mut Topology,
    tune: impl FnOnce(&mut BypassConfig),
) -> (Bypass, TcpListener) {
    topo.enter_gateway();
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut config = BypassConfig::new(
        topo.server_if.clone(),
        [PortConfig {
            port: PORT,
            bypass: true,
        }],
    );
    config.cgroup = CgroupPlacement::Join(topo.cgroup.clone());
    config.cores = (0..4).map(|q| q % ncpu).collect();
    config.engine.tcp.time_wait = dataplane::time::Duration::from_secs(2);
    tune(&mut config);
    let started = Bypass::start(&config);
    assert!(topo.leave_gateway(), "setns back to the test's netns");
    let mut gw = started.expect("starting the gateway");
    eprintln!(
        "gateway on {}: XDP {:?}, {} queue(s)",
        topo.server_if,
        gw.steering().attached_mode(),
        gw.queues()
    );
    let listener = gw.take_listener(PORT).expect("the port's listener");
    (gw, listener)
}

/// Stops the pollers and checks that none of them died on the way.
fn shutdown_clean(gw: &mut Bypass) {
    for exit in gw.shutdown() {
        assert!(
            !exit.panicked && exit.error.is_none() && exit.poller.is_some(),
            "poller of queue {} ended badly: panicked {} error {:?}",
            exit.queue,
            exit.panicked,
            exit.error
        );
    }
}

fn flow_of(stream_local_port: u16) -> FlowKey {
    FlowKey::new_v4(
        gw_addr(),
        SocketAddrV4::new(CLIENT_IP.parse().unwrap(), stream_local_port),
    )
}

fn local_port(s: &TcpStream) -> u16 {
    s.local_addr().expect("local address").port()
}

/// Waits until the connection from `port` has left the engine (its `user_flows` entry is gone).
fn wait_flow_gone(gw: &Bypass, port: u16, within: Duration, what: &str) {
    let key = flow_of(port);
    wait_for(&format!("{what}: flow {port} gone"), within, || {
        !gw.maps().user_flows().contains(&key)
    });
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

/// `GET /bytes/{n}`'s body: byte i is b'a' + i % 26.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

// ---------------------------------------------------------------------------------------------
// A small verifying HTTP/1.1 client.

#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// A client connection with the bytes read past the last response.
struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(ns: &str) -> io::Result<Client> {
        let s = connect_in(ns, gw_addr(), Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(Client { s, buf: Vec::new() })
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16384];
        let n = self.s.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// The next response; `None` at EOF before its first byte.
    fn response(&mut self) -> io::Result<Option<Response>> {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if self.fill()? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "EOF inside a head",
                ));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end);
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(ErrorKind::InvalidData, format!("head {head:?}")))?;
        let len = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .ok_or_else(|| io::Error::new(ErrorKind::InvalidData, format!("no length {head:?}")))?;
        while self.buf.len() < len {
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "EOF inside a body",
                ));
            }
        }
        let body = self.buf.drain(..len).collect();
        Ok(Some(Response { status, head, body }))
    }

    /// Sends `req` and reads one response.
    fn exchange(&mut self, req: &[u8]) -> io::Result<Response> {
        self.s.write_all(req)?;
        self.response()?
            .ok_or_else(|| io::Error::new(ErrorKind::UnexpectedEof, "closed before answering"))
    }

    /// Reads until EOF; true when it was a clean EOF with nothing more.
    fn expect_eof(&mut self) -> io::Result<bool> {
        while self.fill()? > 0 {}
        Ok(self.buf.is_empty())
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

/// One request of the background mix, with the body its answer must have.
fn mixed_request(i: usize, close: bool) -> (Vec<u8>, Vec<u8>) {
    let conn = if close { "Connection: close\r\n" } else { "" };
    match i % 3 {
        0 => (
            format!("GET /health HTTP/1.1\r\nHost: t\r\n{conn}\r\n").into_bytes(),
            b"ok".to_vec(),
        ),
        1 => {
            let n = (i * 7919) % 20000;
            (
                format!("GET /bytes/{n} HTTP/1.1\r\nHost: t\r\n{conn}\r\n").into_bytes(),
                pattern(n),
            )
        }
        _ => {
            let body: Vec<u8> = (0..(i * 131) % 5000).map(|k| (k * 7 + i) as u8).collect();
            let mut req = format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\n{conn}Content-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            req.extend_from_slice(&body);
            (req, body)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Well-behaved background clients.

#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    failures: Vec<String>,
}

struct Background {
    stop: Arc<AtomicBool>,
    threads: Vec<(&'static str, JoinHandle<Tally>)>,
}

impl Background {
    /// `keepalive` clients on one connection each and `churn` clients opening a connection per
    /// request (`Connection: close`), each pausing a little between requests so that the
    /// hostile cases still get the machine's attention.
    fn start(ns: &str, keepalive: usize, churn: usize) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for k in 0..keepalive {
            let (stop, ns2) = (Arc::clone(&stop), ns.to_string());
            let t = spawn_in_netns(ns, "bg-keepalive", move || {
                let mut tally = Tally::default();
                let mut client = None;
                let mut i = k;
                while !stop.load(Ordering::Relaxed) {
                    if client.is_none() {
                        match Client::connect(&ns2) {
                            Ok(c) => client = Some(c),
                            Err(e) => {
                                tally.failures.push(format!("keep-alive connect: {e}"));
                                std::thread::sleep(Duration::from_millis(100));
                                continue;
                            }
                        }
                    }
                    let c = client.as_mut().unwrap();
                    let (req, want) = mixed_request(i, false);
                    match c.exchange(&req) {
                        Ok(r) if r.status == 200 && r.body == want => tally.ok += 1,
                        Ok(r) => {
                            tally.failures.push(format!(
                                "keep-alive #{i}: status {} body {} bytes (want {})",
                                r.status,
                                r.body.len(),
                                want.len()
                            ));
                            client = None;
                        }
                        Err(e) => {
                            tally.failures.push(format!("keep-alive #{i}: {e}"));
                            client = None;
                        }
                    }
                    i += 1;
                    std::thread::sleep(Duration::from_millis(3));
                }
                tally
            });
            threads.push(("keep-alive", t));
        }
        for k in 0..churn {
            let (stop, ns2) = (Arc::clone(&stop), ns.to_string());
            let t = spawn_in_netns(ns, "bg-churn", move || {
                let mut tally = Tally::default();
                let mut i = k;
                while !stop.load(Ordering::Relaxed) {
                    let (req, want) = mixed_request(i, true);
                    let res = Client::connect(&ns2).and_then(|mut c| {
                        let r = c.exchange(&req)?;
                        let eof = c.expect_eof()?;
                        Ok((r, eof))
                    });
                    match res {
                        Ok((r, true)) if r.status == 200 && r.body == want => tally.ok += 1,
                        Ok((r, eof)) => tally.failures.push(format!(
                            "churn #{i}: status {} body {} bytes (want {}), clean EOF {eof}",
                            r.status,
                            r.body.len(),
                            want.len()
                        )),
                        Err(e) => tally.failures.push(format!("churn #{i}: {e}")),
                    }
                    i += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                tally
            });
            threads.push(("churn", t));
        }
        Background { stop, threads }
    }

    /// Stops the clients; panics unless every one answered requests without any failure.
    fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let mut failures = Vec::new();
        for (kind, t) in self.threads {
            let tally = t.join().expect("background client panicked");
            eprintln!(
                "background {kind}: {} ok, {} failed",
                tally.ok,
                tally.failures.len()
            );
            assert!(tally.ok > 0, "a {kind} background client answered nothing");
            failures.extend(tally.failures);
        }
        assert!(
            failures.is_empty(),
            "background clients failed: {:?}",
            &failures[..failures.len().min(10)]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The hostile cases.

/// Trickles a never-ending head, one byte every 250 ms, until the gateway answers and closes.
/// Returns the answer's status, how long it took, and the client's port.
fn slowloris(ns: &str) -> (u16, Duration, u16) {
    let mut c = Client::connect(ns).expect("slowloris connect");
    let port = local_port(&c.s);
    c.s.set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let start = Instant::now();
    c.s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .unwrap();
    let mut eof = false;
    while !eof {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "slowloris: no answer after 20 s"
        );
        // The gateway may already have closed: a refused write is fine, the answer is read.
        let _ = c.s.write_all(b"a");
        match c.fill() {
            Ok(0) => eof = true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("slowloris read: {e} after {} bytes", c.buf.len()),
        }
    }
    let took = start.elapsed();
    let r = c
        .response()
        .expect("slowloris answer")
        .expect("an answer before EOF");
    assert!(c.buf.is_empty(), "bytes after the 408");
    (r.status, took, port)
}

/// Sends `input` whole and reads to EOF: the answers the gateway gave, and the client's port.
fn send_and_read_all(ns: &str, input: &[u8]) -> (Vec<Response>, u16) {
    let mut c = Client::connect(ns).expect("connect");
    let port = local_port(&c.s);
    // A refused write (the gateway answered and closed early) still leaves the answer to read.
    let _ = c.s.write_all(input);
    let mut out = Vec::new();
    loop {
        match c.response() {
            Ok(Some(r)) => out.push(r),
            Ok(None) => break,
            Err(e) => panic!(
                "reading after {:?}: {e} ({} answers, {} bytes left)",
                String::from_utf8_lossy(&input[..input.len().min(80)]),
                out.len(),
                c.buf.len()
            ),
        }
    }
    (out, port)
}

const SMUGGLED: &str = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";

/// The unit tests' smuggling corpus (src/http/tests.rs), each followed by a request that a
/// lenient reader would take as a second one: (name, bytes, the status RFC 9112 calls for).
fn smuggling_corpus() -> Vec<(&'static str, String, u16)> {
    let post = "POST /echo HTTP/1.1\r\nHost: x\r\n";
    let chunked = format!("0\r\n\r\n{SMUGGLED}");
    vec![
        ("CL.TE", format!("{post}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}"), 400),
        ("TE.CL", format!("{post}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n{chunked}"), 400),
        ("TE.TE xchunked + CL", format!("{post}Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\n{chunked}"), 400),
        ("TE xchunked", format!("{post}Transfer-Encoding: xchunked\r\n\r\n{chunked}"), 501),
        ("TE chunked, identity", format!("{post}Transfer-Encoding: chunked, identity\r\n\r\n{chunked}"), 400),
        ("TE twice", format!("{post}Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n{chunked}"), 400),
        ("TE vertical tab", format!("{post}Transfer-Encoding: \x0bchunked\r\n\r\n{chunked}"), 400),
        ("TE in HTTP/1.0", format!("POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}"), 400),
        ("TE obs-fold", format!("{post}X: y\r\n Transfer-Encoding: chunked\r\n\r\n{chunked}"), 400),
        ("TE space before colon", format!("{post}Transfer-Encoding : chunked\r\n\r\n{chunked}"), 400),
        ("TE bare CR", format!("{post}Transfer-Encoding: chunked\rX: y\r\n\r\n{chunked}"), 400),
        ("TE bare LF", format!("{post}Transfer-Encoding: chunked\nX: y\r\n\r\n{chunked}"), 400),
        ("CL duplicate, differing", format!("{post}Content-Length: 0\r\nContent-Length: 33\r\n\r\n{SMUGGLED}"), 400),
        ("CL list, differing", format!("{post}Content-Length: 0, 33\r\n\r\n{SMUGGLED}"), 400),
        ("CL plus sign", format!("{post}Content-Length: +33\r\n\r\n{SMUGGLED}"), 400),
        ("CL negative", format!("{post}Content-Length: -1\r\n\r\n{SMUGGLED}"), 400),
        ("CL overflow", format!("{post}Content-Length: 18446744073709551616\r\n\r\n{SMUGGLED}"), 400),
        ("CL obs-fold", format!("{post}Content-Length: 0\r\n 33\r\n\r\n{SMUGGLED}"), 400),
        ("NUL in field value", format!("{post}Content-Length: 3\x003\r\n\r\n{SMUGGLED}"), 400),
        ("bare LF ends the head", format!("{post}Content-Length: 0\n\n{SMUGGLED}"), 400),
        ("bare CR in request line", format!("POST /echo\rHTTP/1.1\r\nHost: x\r\n\r\n{SMUGGLED}"), 400),
        ("chunk size overflow", format!("{post}Transfer-Encoding: chunked\r\n\r\n1000000000000000000000000000021\r\n{SMUGGLED}"), 400),
        ("chunk size 2^64 - 1", format!("{post}Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n{SMUGGLED}"), 413),
        ("chunk size with sign", format!("{post}Transfer-Encoding: chunked\r\n\r\n+21\r\n{SMUGGLED}"), 400),
        ("chunk size 0x prefix", format!("{post}Transfer-Encoding: chunked\r\n\r\n0x21\r\n{SMUGGLED}"), 400),
        ("chunk size bare LF", format!("{post}Transfer-Encoding: chunked\r\n\r\n0\n\r\n{SMUGGLED}"), 400),
        ("two Host", format!("POST /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 0\r\n\r\n{SMUGGLED}"), 400),
    ]
}

#[test]
fn hostile_clients_do_not_disturb_the_others() {
    if !is_root() {
        eprintln!("SKIPPED: the hostile HTTP test needs root (netns, XDP, AF_XDP, cgroups)");
        return;
    }
    let _serial = ROOT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let mut topo = Topology::create();
    let (mut gw, _listener) = start_gateway(&mut topo, |c| {
        c.engine.http.header_timeout = dataplane::time::Duration::from_secs(HEADER_TIMEOUT_SECS);
        c.engine.http.idle_timeout = dataplane::time::Duration::from_secs(HTTP_IDLE_SECS);
        c.engine.http.max_header_bytes = MAX_HEADER_BYTES;
    });
    let ns = topo.client_ns.clone();
    let background = Background::start(&ns, 2, 2);
    wait_for("background requests", Duration::from_secs(10), || {
        sum(&gw.counters(), |c| c.http_requests) >= 20
    });

    // Slowloris: ten heads trickled at once; each gets its 408 after the header timeout (and
    // not before), and leaves the engine.
    let t = Instant::now();
    let lorises: Vec<_> = (0..10)
        .map(|_| {
            let ns2 = ns.clone();
            std::thread::spawn(move || slowloris(&ns2))
        })
        .collect();
    for l in lorises {
        let (status, took, port) = l.join().expect("slowloris thread");
        assert_eq!(status, 408, "slowloris answer");
        assert!(
            took >= Duration::from_millis(HEADER_TIMEOUT_SECS * 1000 - 100),
            "408 before the header timeout: {took:?}"
        );
        wait_flow_gone(&gw, port, Duration::from_secs(10), "slowloris");
    }
    eprintln!("slowloris: 10 x 408, all gone, {:?}", t.elapsed());

    // Oversized heads: 431 for a head over max_header_bytes or too many fields, 414 for a
    // request line over it; then the connection is closed.
    let big_field = format!(
        "GET /health HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "b".repeat(MAX_HEADER_BYTES * 2)
    );
    let many_fields = format!(
        "GET /health HTTP/1.1\r\nHost: t\r\n{}\r\n",
        (0..70)
            .map(|i| format!("X-F{i}: v\r\n"))
            .collect::<String>()
    );
    let long_uri = format!(
        "GET /{} HTTP/1.1\r\nHost: t\r\n\r\n",
        "u".repeat(MAX_HEADER_BYTES + 100)
    );
    for (name, input, status) in [
        ("big field", big_field, 431),
        ("70 fields", many_fields, 431),
        ("long URI", long_uri, 414),
    ] {
        let (answers, port) = send_and_read_all(&ns, input.as_bytes());
        let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [status], "{name}");
        assert!(answers[0].head.contains("Connection: close"), "{name}");
        wait_flow_gone(&gw, port, Duration::from_secs(5), name);
    }
    eprintln!("oversized heads: 431, 431, 414, closed");

    // The smuggling corpus: exactly one answer with the status RFC 9112 calls for, then the
    // connection closes; the request hidden behind never gets an answer.
    let t = Instant::now();
    let corpus = smuggling_corpus();
    for (name, input, status) in &corpus {
        let (answers, port) = send_and_read_all(&ns, input.as_bytes());
        let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [*status], "{name}: answers");
        assert!(answers[0].head.contains("Connection: close"), "{name}");
        wait_flow_gone(&gw, port, Duration::from_secs(5), name);
    }
    eprintln!(
        "smuggling corpus: {} cases, one refusal each, {:?}",
        corpus.len(),
        t.elapsed()
    );

    // A pipelined flood: thousands of requests written without reading (a writer thread, so
    // TCP backpressure cannot deadlock the test), then read: every answer, in order.
    const FLOOD: usize = 3000;
    let t = Instant::now();
    let mut c = Client::connect(&ns).expect("flood connect");
    let flood_port = local_port(&c.s);
    let mut writer = c.s.try_clone().unwrap();
    let w = std::thread::spawn(move || {
        let mut all = Vec::new();
        for i in 0..FLOOD {
            all.extend_from_slice(&get(&format!("/bytes/{}", i % 700)));
        }
        writer.write_all(&all).map(|()| all.len())
    });
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..FLOOD {
        let r = c
            .response()
            .unwrap_or_else(|e| panic!("flood answer {i}: {e}"))
            .unwrap_or_else(|| panic!("flood: EOF at answer {i}"));
        assert_eq!(r.status, 200, "flood answer {i}");
        assert_eq!(r.body, pattern(i % 700), "flood answer {i} out of order?");
    }
    let written = w.join().unwrap().expect("flood writes");
    let r = c.exchange(&get("/health")).expect("after the flood");
    assert_eq!(r.body, b"ok");
    drop(c);
    wait_flow_gone(&gw, flood_port, Duration::from_secs(5), "flood");
    eprintln!(
        "pipelined flood: {FLOOD} requests ({written} bytes) answered in order, {:?}",
        t.elapsed()
    );

    // A client that never reads: it pipelines large requests until its writes block (the
    // gateway stops reading once its send buffer is full: what it holds is bounded by its
    // buffers), then sits there. The gateway must not keep it forever.
    let t = Instant::now();
    let mut c = Client::connect(&ns).expect("never-reader connect");
    let lazy_port = local_port(&c.s);
    c.s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    let req = get("/bytes/1000000");
    let mut sent = 0usize;
    loop {
        match c.s.write(&req) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("never-reader write: {e}"),
        }
        assert!(sent < 64 << 20, "the gateway never pushed back");
    }
    eprintln!(
        "never-reader: writes blocked after {sent} bytes of requests ({:?})",
        t.elapsed()
    );
    wait_flow_gone(
        &gw,
        lazy_port,
        Duration::from_secs(HTTP_IDLE_SECS * 4 + 10),
        "never-reader",
    );
    eprintln!("never-reader: gone after {:?}", t.elapsed());
    drop(c);

    // Resets: mid-head, mid-body, mid-response. Each leaves the engine at once (well before
    // the idle timeout that would otherwise end it).
    let t = Instant::now();
    for _ in 0..5 {
        let mut c = Client::connect(&ns).expect("connect");
        c.s.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
            .unwrap();
        c.s.write_all(&[b'x'; 1000]).unwrap();
        let port = local_port(&c.s);
        reset(c.s);
        wait_flow_gone(
            &gw,
            port,
            Duration::from_secs(HTTP_IDLE_SECS - 2),
            "reset mid-body",
        );

        let mut c = Client::connect(&ns).expect("connect");
        c.s.write_all(&get("/bytes/8000000")).unwrap();
        let mut got = 0;
        while got < 100_000 {
            got += c.fill().expect("response bytes");
        }
        let port = local_port(&c.s);
        reset(c.s);
        wait_flow_gone(
            &gw,
            port,
            Duration::from_secs(HTTP_IDLE_SECS - 2),
            "reset mid-response",
        );

        let mut c = Client::connect(&ns).expect("connect");
        c.s.write_all(b"GET /health HTTP/1.1\r\nHo").unwrap();
        let port = local_port(&c.s);
        reset(c.s);
        wait_flow_gone(&gw, port, Duration::from_secs(10), "reset mid-head");

        // And a half-close mid-head: no answer, closed.
        let mut c = Client::connect(&ns).expect("connect");
        c.s.write_all(b"GET /health HTTP/1.1\r\nHo").unwrap();
        c.s.shutdown(Shutdown::Write).unwrap();
        assert!(c.expect_eof().expect("EOF"), "an answer to half a head");
        let port = local_port(&c.s);
        drop(c);
        wait_flow_gone(&gw, port, Duration::from_secs(10), "FIN mid-head");
    }
    eprintln!(
        "resets mid-body, mid-response, mid-head, FIN mid-head: 5 x 4, {:?}",
        t.elapsed()
    );

    // The gateway is still up, the background clients never noticed, and once they stop the
    // engine holds nothing.
    let mut c = Client::connect(&ns).expect("connect after the hostile cases");
    assert_eq!(c.exchange(&get("/health")).unwrap().body, b"ok");
    drop(c);
    background.finish();
    wait_for("no connection left", Duration::from_secs(15), || {
        sum(&gw.counters(), |c| c.connections) == 0 && gw.maps().user_flows().is_empty()
    });
    let c = gw.counters();
    assert_eq!(sum(&c, |c| c.flow_map_errors), 0);
    assert_eq!(sum(&c, |c| c.flows_added), sum(&c, |c| c.flows_removed));
    eprintln!(
        "engine: {} requests, {} connections, {} RSTs out, user_flows empty; test {:?}",
        sum(&c, |c| c.http_requests),
        sum(&c, |c| c.tcp_established),
        sum(&c, |c| c.tcp_rsts_out),
        started.elapsed()
    );
    shutdown_clean(&mut gw);
}

/// `tcp.max_connections` = 8 on one RX queue: 8 connections are served, more are reset at
/// once (connect succeeds against the SYN cookie, the cookie ACK draws a RST), the held ones
/// are unaffected, and freed slots are taken again.
#[test]
fn connection_table_full_refuses_cleanly() {
    if !is_root() {
        eprintln!("SKIPPED: the connection bound test needs root (netns, XDP, AF_XDP, cgroups)");
        return;
    }
    let _serial = ROOT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    common::log_capture::install();
    const MAX: usize = 8;
    let mut topo = Topology::create();
    // One queue each way, so the bound is one engine's.
    for (ns, ifname) in [
        (topo.server_ns.clone(), topo.server_if.clone()),
        (topo.client_ns.clone(), topo.client_if.clone()),
    ] {
        run(&[
            "ip", "netns", "exec", &ns, "ethtool", "-L", &ifname, "rx", "1", "tx", "1",
        ]);
    }
    let (mut gw, _listener) = start_gateway(&mut topo, |c| {
        c.queues = Some(1);
        c.engine.tcp.max_connections = MAX;
    });
    assert_eq!(gw.queues(), 1);
    let ns = topo.client_ns.clone();

    let mut held: Vec<Client> = (0..MAX)
        .map(|i| {
            let mut c = Client::connect(&ns).expect("connect");
            let r = c
                .exchange(&get("/health"))
                .unwrap_or_else(|e| panic!("held {i}: {e}"));
            assert_eq!(r.body, b"ok");
            c
        })
        .collect();
    // The pollers publish their gauges every 100 ms and before sleeping.
    wait_for(
        "the engine to count the held ones",
        Duration::from_secs(2),
        || sum(&gw.counters(), |c| c.connections) == MAX as u64,
    );

    // Over the bound: refused at once, cleanly.
    let refused = |n: usize| {
        for i in 0..n {
            let t = Instant::now();
            // The cookie's SYN-ACK lets connect() succeed; the RST to the handshake's last
            // ACK shows in the first read, or already in connect() when it came first.
            let res = Client::connect(&ns).and_then(|mut c| c.exchange(&get("/health")));
            match res {
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
                other => panic!("connection {} over the bound: {other:?}", MAX + i + 1),
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "refusal took {:?}",
                t.elapsed()
            );
        }
    };
    let rsts_before = sum(&gw.counters(), |c| c.tcp_rsts_out);
    refused(3);
    wait_for("the refusals' RSTs counted", Duration::from_secs(2), || {
        sum(&gw.counters(), |c| c.tcp_rsts_out) >= rsts_before + 3
    });
    // Logged for the operator, with the port and the limit, and rate-limited: three
    // refusals, one line (two if they straddled the 10 s period).
    let warned = || common::log_capture::lines_with("connection table is full");
    wait_for("the refusal's warning", Duration::from_secs(2), || {
        !warned().is_empty()
    });
    let lines = warned();
    assert!((1..3).contains(&lines.len()), "{lines:#?}");
    assert!(
        lines[0].contains(&format!("port={PORT}")) && lines[0].contains(&format!("limit={MAX}")),
        "{lines:#?}"
    );

    // The held ones did not notice.
    for (i, c) in held.iter_mut().enumerate() {
        let r = c
            .exchange(&get("/bytes/3000"))
            .unwrap_or_else(|e| panic!("held {i}: {e}"));
        assert_eq!(r.body, pattern(3000), "held {i}");
    }

    // Two close; two new ones get in, the next is refused again.
    for c in held.drain(..2) {
        let port = local_port(&c.s);
        drop(c);
        wait_flow_gone(&gw, port, Duration::from_secs(5), "closed held connection");
    }
    wait_for("two free slots", Duration::from_secs(5), || {
        sum(&gw.counters(), |c| c.connections) == (MAX - 2) as u64
    });
    for _ in 0..2 {
        let mut c = Client::connect(&ns).expect("connect");
        assert_eq!(
            c.exchange(&get("/health")).expect("a freed slot").body,
            b"ok"
        );
        held.push(c);
    }
    refused(1);
    for (i, c) in held.iter_mut().enumerate() {
        assert_eq!(
            c.exchange(&get("/health"))
                .unwrap_or_else(|e| panic!("held {i} at the end: {e}"))
                .body,
            b"ok"
        );
    }
    drop(held);
    wait_for("no connection left", Duration::from_secs(10), || {
        sum(&gw.counters(), |c| c.connections) == 0 && gw.maps().user_flows().is_empty()
    });
    shutdown_clean(&mut gw);
}
