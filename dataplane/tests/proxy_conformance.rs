//! Root-only: the reverse proxy (issue 13, "Tests") against a real upstream and a table of
//! HTTP/1.1 conformance cases, on both paths. Each test starts `xgate run` in the gateway
//! netns of a veth topology with two `[[ports]]` (one bypass, one kernel) and an upstream on
//! the gateway's loopback, outside the gateway's cgroup (so its sockets are the kernel's):
//!
//! - nginx, with a configuration of the test's own in a temporary directory (static files,
//!   `PUT` through `dav_methods`), reached with curl from the client netns: what a real
//!   server's answers (`HEAD`, 304, 206, its own 404, 201) look like after the gateway;
//! - [`Recorder`], a server on threads of this test process that records every request it
//!   gets, raw, and answers each with its target as the body: what the gateway forwards, and
//!   what it refuses, for raw requests written on a TCP connection in the spirit of
//!   uNetworking's h1spec.
//!
//! Every wait is bounded; everything created is removed, also on panic. Skips (passes with a
//! message) when not run as root.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::http_client::{curl, header, Client, Silence};
use common::upstream::{fill_until, read_chunked_body, read_sized_body, Listener};
use common::{is_root, start_xgate, wait_for, TempDir, Topology, CLIENT_IP, GW_IP};
use xgate_testnet::netns::run_in;

const BYPASS: u16 = 18680;
const KERNEL: u16 = 18681;
const PORTS: [u16; 2] = [BYPASS, KERNEL];
/// nginx's port on the gateway's loopback.
const NGINX: u16 = 18690;

/// The root tests start gateways and upstreams of their own: one at a time.
static ROOT_TESTS: Mutex<()> = Mutex::new(());

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// A gateway configuration: both ports, one pool `pool` of one server at `upstream`, and
/// `routes` (TOML `[[route]]` tables naming it).
fn write_config(dir: &Path, topo: &Topology, upstream: u16, routes: &str) -> PathBuf {
    let path = dir.join("xgate.toml");
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
name = "pool"
servers = [{{ address = "127.0.0.1:{upstream}" }}]
max_fails = 0

{routes}
"#,
        iface = topo.server_if,
    );
    std::fs::write(&path, text).expect("writing the config");
    path
}

fn connect(topo: &Topology, port: u16) -> Client {
    Client::connect(topo, port, Duration::from_secs(5), Silence::Ends)
}

// ---------------------------------------------------------------------------------------------
// 1. nginx as the upstream.

/// nginx in the foreground, one process, everything (files, temporary paths, logs) in `dir`;
/// its access log names each request's connection and the request's number on it.
fn nginx_config(dir: &Path) -> PathBuf {
    let d = dir.display();
    let path = dir.join("nginx.conf");
    let text = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    log_format conn '$request $status $connection $connection_requests';
    access_log {d}/access.log conn;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    default_type application/octet-stream;
    client_max_body_size 16m;
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{NGINX};
        root {d}/www;
        location /dav/ {{
            root {d};
            dav_methods PUT;
        }}
    }}
}}
"#
    );
    std::fs::write(&path, text).expect("writing nginx.conf");
    path
}

/// Starts nginx in the gateway netns, outside the gateway's cgroup, and waits until it
/// accepts connections.
fn start_nginx(topo: &mut Topology, dir: &Path) {
    for sub in ["www", "dav", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).expect("nginx directories");
    }
    let conf = nginx_config(dir);
    let child = Command::new("ip")
        .args(["netns", "exec", &topo.server_ns, "nginx", "-p"])
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning nginx");
    topo.children.push(child);
    let ns = topo.server_ns.clone();
    wait_for("nginx to listen", Duration::from_secs(10), || {
        run_in(&ns, || TcpStream::connect(("127.0.0.1", NGINX))).is_ok()
    });
}

/// `body` is `want`; else where it differs.
#[track_caller]
fn assert_bytes(body: &[u8], want: &[u8], what: &str) {
    if body == want {
        return;
    }
    let at = body.iter().zip(want).position(|(a, b)| a != b);
    panic!(
        "{what}: {} bytes (want {}), first difference at {at:?}",
        body.len(),
        want.len()
    );
}

#[test]
fn nginx_behind_the_gateway_answers_byte_exact_on_both_paths() {
    if !is_root() {
        eprintln!("skipping nginx_behind_the_gateway: needs root (netns, XDP, AF_XDP, cgroups)");
        return;
    }
    let _serial = ROOT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut topo = Topology::create();
    let dir = TempDir::new(&format!("{}-conform-nginx", topo.name));
    start_nginx(&mut topo, &dir.0);
    let sizes = [0usize, 1, 65_536, 3 * 1024 * 1024 + 7];
    for n in sizes {
        std::fs::write(dir.0.join(format!("www/f{n}")), pattern(n)).expect("a static file");
    }
    let config = write_config(&dir.0, &topo, NGINX, "[[route]]\nupstream = \"pool\"\n");
    start_xgate(&mut topo, &config, &[]);

    for port in PORTS {
        // Static files, byte-exact, with nginx's length and this hop's Via.
        for n in sizes {
            let (status, head, body) = curl(&topo, &[], &format!("/f{n}"), port);
            assert_eq!(status, 200, ":{port} f{n}: {head}");
            assert_eq!(
                header(&head, "Content-Length"),
                Some(&*n.to_string()),
                "{head}"
            );
            assert_eq!(header(&head, "Via"), Some("1.1 xgate"), "{head}");
            assert!(header(&head, "Server").is_some_and(|s| s.starts_with("nginx")));
            assert_bytes(&body, &pattern(n), &format!(":{port} f{n}"));
        }

        // HEAD: nginx's length kept, no body (the next answer on the connection starts right
        // after the head); a conditional GET with nginx's ETag: a 304 without a body.
        let mut c = connect(&topo, port);
        c.send(b"HEAD /f65536 HTTP/1.1\r\nHost: t\r\n\r\n");
        let head = c.response(true).expect("an answer to HEAD");
        assert_eq!(head.status, 200, ":{port} {}", head.head);
        assert_eq!(
            head.header("Content-Length"),
            Some("65536"),
            "{}",
            head.head
        );
        assert!(head.header("Via").is_some(), "{}", head.head);
        let etag = head.header("ETag").expect("nginx's ETag").to_string();
        c.send(
            format!("GET /f65536 HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n").as_bytes(),
        );
        let not_modified = c.response(false).expect("an answer to the conditional GET");
        assert_eq!(not_modified.status, 304, ":{port} {}", not_modified.head);
        assert_eq!(not_modified.header("ETag"), Some(&*etag));
        assert!(
            not_modified.header("Via").is_some(),
            "{}",
            not_modified.head
        );
        c.send(b"GET /f1 HTTP/1.1\r\nHost: t\r\n\r\n");
        let after = c.response(false).expect("an answer after the 304");
        assert_eq!(
            (after.status, after.body.clone()),
            (200, pattern(1)),
            ":{port}: the answer after HEAD and 304 (a body leaked?): {}",
            after.head
        );

        // A range: 206, byte-exact.
        let (status, head, body) = curl(&topo, &["-r", "1000-41999"], "/f65536", port);
        assert_eq!(status, 206, ":{port} {head}");
        assert_eq!(
            header(&head, "Content-Range"),
            Some("bytes 1000-41999/65536")
        );
        assert_eq!(header(&head, "Content-Length"), Some("41000"));
        assert_bytes(
            &body,
            &pattern(65_536)[1000..42_000],
            &format!(":{port} range"),
        );

        // nginx's own 404, body and all.
        let (status, head, body) = curl(&topo, &[], "/missing", port);
        assert_eq!(status, 404, ":{port} {head}");
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("404 Not Found") && text.contains("nginx"),
            "{text}"
        );
        assert_eq!(
            header(&head, "Content-Length"),
            Some(&*body.len().to_string())
        );

        // PUT uploads stored by nginx, the body with a Content-Length and chunked, then
        // fetched back byte-exact.
        let data = pattern(2 * 1024 * 1024 + 3);
        let upload = dir.0.join("upload.bin");
        std::fs::write(&upload, &data).expect("the upload");
        let file = upload.to_str().expect("a UTF-8 path");
        for (name, extra) in [
            ("cl", vec![]),
            ("chunked", vec!["-H", "Transfer-Encoding: chunked"]),
        ] {
            let target = format!("/dav/{port}-{name}.bin");
            let mut args = vec!["-T", file];
            args.extend(extra);
            let (status, head, _) = curl(&topo, &args, &target, port);
            assert_eq!(status, 201, ":{port} PUT {name}: {head}");
            let stored = std::fs::read(dir.0.join(&target[1..])).expect("the stored file");
            assert_bytes(&stored, &data, &format!(":{port} stored {name}"));
            let (status, _, body) = curl(&topo, &[], &target, port);
            assert_eq!(status, 200);
            assert_bytes(&body, &data, &format!(":{port} fetched {name}"));
        }

        // Keep-alive: three requests on one client connection, one nginx connection.
        let urls: Vec<String> = (0..3)
            .map(|i| format!("http://{GW_IP}:{port}/f1?k={port}-{i}"))
            .collect();
        let o = Command::new("ip")
            .args(["netns", "exec", &topo.client_ns, "curl", "-sS"])
            .args(["--max-time", "20", "-o", "/dev/null", "-o", "/dev/null"])
            .args(["-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n"])
            .args(&urls)
            .output()
            .expect("curl");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "200 1\n200 0\n200 0\n",
            ":{port}: one client connection"
        );
        let log = std::fs::read_to_string(dir.0.join("access.log")).expect("nginx's log");
        let conns: Vec<&str> = (0..3)
            .map(|i| {
                let needle = format!("GET /f1?k={port}-{i} HTTP/1.1 200 ");
                let line = log.lines().find(|l| l.starts_with(&needle));
                let line = line.unwrap_or_else(|| panic!("{needle} in {log}"));
                line.split(' ').nth(4).expect("$connection")
            })
            .collect();
        assert!(
            conns.iter().all(|c| *c == conns[0]),
            ":{port}: one nginx connection: {conns:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. h1spec-style conformance, with a recording upstream.

/// One request as the recording upstream read it.
#[derive(Debug, Clone)]
struct Seen {
    /// Which accepted connection it came on (0, 1, ... in accept order).
    conn: u64,
    target: String,
    /// The head as received, up to and with its empty line.
    head: String,
    /// The body, its chunked framing (if any) decoded.
    body: Vec<u8>,
    /// `Content-Length` and `Transfer-Encoding` fields in the head.
    framing_fields: usize,
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    /// The bytes a connection brought after its last complete request, when it ended in a
    /// request the recorder could not frame (or one cut short), for the failure messages.
    unframed: Mutex<Vec<Vec<u8>>>,
}

/// An HTTP/1.1 server on the gateway's loopback that records every request and answers
/// each `200` with the target it got as the body (`X-Upstream: <conn>/<index>`), after a
/// `100 Continue` when the request asks for one. It reads strictly (`Content-Length` or
/// chunked, nothing lenient): a request it cannot frame ends the connection unanswered.
struct Recorder {
    shared: Arc<Shared>,
    listener: Listener,
}

impl Recorder {
    fn start(ns: &str) -> Recorder {
        let shared = Arc::new(Shared::default());
        let sh = Arc::clone(&shared);
        let listener = Listener::start(ns, move |s, conn| record(s, conn, &sh));
        Recorder { shared, listener }
    }

    fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

/// A connection of the recorder, and every byte read from it.
struct Tee {
    s: TcpStream,
    log: Vec<u8>,
}

impl Read for Tee {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.s.read(out)?;
        self.log.extend_from_slice(&out[..n]);
        Ok(n)
    }
}

/// Reads and records requests on `s` and answers them, until EOF or a request it cannot
/// frame.
fn record(s: TcpStream, conn: u64, shared: &Shared) {
    let mut s = Tee { s, log: Vec::new() };
    let mut buf = Vec::new();
    // Where in `log` the requests framed so far end.
    let mut framed = 0;
    loop {
        let Some(seen) = read_request(&mut s, &mut buf, conn) else {
            if s.log.len() > framed {
                shared
                    .unframed
                    .lock()
                    .unwrap()
                    .push(s.log.split_off(framed));
            }
            return;
        };
        framed = s.log.len() - buf.len();
        let index = {
            let mut all = shared.seen.lock().unwrap();
            all.push(seen.clone());
            all.len() - 1
        };
        let body = seen.target.as_bytes();
        let answer = format!(
            "HTTP/1.1 200 OK\r\nX-Upstream: {conn}/{index}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut out = answer.into_bytes();
        if !seen.head.starts_with("HEAD ") {
            out.extend_from_slice(body);
        }
        if s.s.write_all(&out).is_err() {
            return;
        }
    }
}

fn read_request(s: &mut Tee, buf: &mut Vec<u8>, conn: u64) -> Option<Seen> {
    let end = fill_until(s, buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end);
    let target = head.split(' ').nth(1)?.to_string();
    let mut length = None;
    let mut chunked = false;
    let mut framing_fields = 0;
    let mut expect = false;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            framing_fields += 1;
            length = Some(value.trim().parse::<usize>().ok()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            framing_fields += 1;
            chunked = value.trim().eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("expect") {
            expect = value.trim().eq_ignore_ascii_case("100-continue");
        }
    }
    if expect {
        s.s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").ok()?;
    }
    let mut body = Vec::new();
    if chunked {
        body = read_chunked_body(s, buf)?;
    } else if let Some(n) = length {
        body = read_sized_body(s, buf, n)?;
    }
    Some(Seen {
        conn,
        target,
        head,
        body,
        framing_fields,
    })
}

/// What the upstream must have got for one request.
struct Fwd {
    target: &'static str,
    body: Vec<u8>,
    /// This hop's `Via` element: the protocol version the client sent, the pseudonym.
    via: &'static str,
    /// Lines the forwarded head must hold (compared without regard to case).
    has: Vec<&'static str>,
    /// Text the forwarded head must not hold anywhere (compared without regard to case): the
    /// names of fields that must not reach the upstream (`"\r\nte:"` for a name that is
    /// part of others).
    lacks: Vec<&'static str>,
}

fn fwd(target: &'static str) -> Fwd {
    Fwd {
        target,
        body: Vec::new(),
        via: "Via: 1.1 xgate",
        has: Vec::new(),
        lacks: Vec::new(),
    }
}

/// A request the client sent as HTTP/1.0: its `Via` element says so (RFC 9110 §7.6.3).
fn fwd10(target: &'static str) -> Fwd {
    Fwd {
        via: "Via: 1.0 xgate",
        ..fwd(target)
    }
}

/// One case: raw bytes written on a new connection to the gateway, and what must follow.
struct Case {
    name: &'static str,
    input: Vec<u8>,
    /// Sent once the first interim (1xx) answer has come (`Expect: 100-continue`).
    after_continue: Option<&'static [u8]>,
    /// The final statuses the client gets, in order.
    answers: Vec<u16>,
    /// Whether the gateway closes the connection after them; if not, a further request on
    /// the connection must be forwarded and answered.
    closes: bool,
    /// What reaches the upstream, in order (nothing for a request the gateway answers).
    upstream: Vec<Fwd>,
    /// The ports the case is asserted on.
    ports: &'static [u16],
}

fn case(name: &'static str, input: impl AsRef<[u8]>, answers: &[u16], closes: bool) -> Case {
    Case {
        name,
        input: input.as_ref().to_vec(),
        after_continue: None,
        answers: answers.to_vec(),
        closes,
        upstream: Vec::new(),
        ports: &PORTS,
    }
}

impl Case {
    fn forwards(mut self, f: Fwd) -> Case {
        self.upstream.push(f);
        self
    }
}

/// A case the gateway refuses: `status`, the connection closed, nothing upstream.
fn refused(name: &'static str, input: impl AsRef<[u8]>, status: u16) -> Case {
    case(name, input, &[status], true)
}

const FOLLOW_UP: &[u8] = b"GET /r/follow-up HTTP/1.1\r\nHost: t\r\n\r\n";

/// Every h1spec-style case. Each forwarded request also gets the checks of [`check_case`]
/// (this hop's `Via`, the client in `X-Forwarded-For`, at most one framing field).
fn cases() -> Vec<Case> {
    let long_field = format!(
        "GET /r/x HTTP/1.1\r\nHost: t\r\nX-Long: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let long_target = format!("GET /r/{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(20_000));
    let hop = "GET /r/hop HTTP/1.1\r\nHost: t\r\nConnection: X-Hop, Keep-Alive, Upgrade\r\n\
               X-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\n\
               Proxy-Connection: keep-alive\r\nX-Keep: yes\r\n\r\n";
    vec![
        // Request line (RFC 9112 §3).
        case(
            "absolute-form: the path forwarded, Host from the target",
            "GET http://abs.example/r/abs?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n",
            &[200],
            false,
        )
        .forwards(Fwd {
            has: vec!["Host: abs.example"],
            ..fwd("/r/abs?q=1")
        }),
        case(
            "asterisk-form OPTIONS",
            "OPTIONS * HTTP/1.1\r\nHost: star.example\r\n\r\n",
            &[200],
            false,
        )
        .forwards(fwd("*")),
        // `*` fits the request-target's grammar; only OPTIONS gives it a meaning, and no
        // route takes it: the gateway's own 404.
        case(
            "asterisk-form with GET",
            "GET * HTTP/1.1\r\nHost: t\r\n\r\n",
            &[404],
            false,
        ),
        case(
            "absolute-form with a port",
            "GET http://abs.example:8080/r/port HTTP/1.1\r\nHost: abs.example:8080\r\n\r\n",
            &[200],
            false,
        )
        .forwards(Fwd {
            has: vec!["Host: abs.example:8080"],
            ..fwd("/r/port")
        }),
        case(
            "an empty line before the request line is ignored",
            "\r\nGET /r/empty-line HTTP/1.1\r\nHost: t\r\n\r\n",
            &[200],
            false,
        )
        .forwards(fwd("/r/empty-line")),
        refused(
            "two spaces in the request line",
            "GET  /r/x HTTP/1.1\r\nHost: t\r\n\r\n",
            400,
        ),
        refused(
            "a method that is not a token",
            "G@T /r/x HTTP/1.1\r\nHost: t\r\n\r\n",
            400,
        ),
        case(
            "an extension method goes upstream",
            "PURGE /r/purge HTTP/1.1\r\nHost: t\r\n\r\n",
            &[200],
            false,
        )
        .forwards(fwd("/r/purge")),
        refused(
            "version not HTTP/1.x syntax",
            "GET /r/x HTTP/1.x\r\nHost: t\r\n\r\n",
            400,
        ),
        refused(
            "version in lower case",
            "GET /r/x http/1.1\r\nHost: t\r\n\r\n",
            400,
        ),
        refused(
            "major version 2",
            "GET /r/x HTTP/2.0\r\nHost: t\r\n\r\n",
            505,
        ),
        // RFC 9110 §2.5 says a higher minor version SHOULD be processed as HTTP/1.1: a
        // departure on purpose (docs/architecture.md), refused at the gateway.
        refused(
            "a minor version above 1.1",
            "GET /r/v12 HTTP/1.2\r\nHost: t\r\n\r\n",
            505,
        ),
        // RFC 9112 §3.2: no request-target form holds a fragment; the line is invalid (§3).
        refused("a fragment in the target", "GET /r/x#f HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        refused("a request line of 20 KB", long_target, 414),
        case(
            "HTTP/1.0 without Host: the pool's name sent",
            "GET /r/h10 HTTP/1.0\r\n\r\n",
            &[200],
            true,
        )
        .forwards(Fwd {
            has: vec!["Host: pool"],
            ..fwd10("/r/h10")
        }),
        refused("HTTP/1.1 without Host", "GET /r/x HTTP/1.1\r\n\r\n", 400),
        refused(
            "two Host fields",
            "GET /r/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            400,
        ),
        refused(
            "Host with a space",
            "GET /r/x HTTP/1.1\r\nHost: a b\r\n\r\n",
            400,
        ),
        // Field syntax (RFC 9112 §5).
        case(
            "whitespace around a field value is not part of it",
            "GET /r/ows HTTP/1.1\r\nHost: t\r\nX-A: \t b c \t\r\n\r\n",
            &[200],
            false,
        )
        .forwards(Fwd {
            has: vec!["X-A: b c"],
            ..fwd("/r/ows")
        }),
        refused(
            "whitespace before the colon",
            "GET /r/x HTTP/1.1\r\nHost: t\r\nX-A : b\r\n\r\n",
            400,
        ),
        refused(
            "obs-fold",
            "GET /r/x HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n",
            400,
        ),
        refused(
            "whitespace before the first field",
            "GET /r/x HTTP/1.1\r\n Host: t\r\n\r\n",
            400,
        ),
        refused(
            "NUL in a field value",
            "GET /r/x HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n",
            400,
        ),
        refused(
            "bare CR in a field value",
            "GET /r/x HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n",
            400,
        ),
        refused(
            "an empty field name",
            "GET /r/x HTTP/1.1\r\nHost: t\r\n: b\r\n\r\n",
            400,
        ),
        refused(
            "a field name that is not a token",
            "GET /r/x HTTP/1.1\r\nHost: t\r\nX(A): b\r\n\r\n",
            400,
        ),
        refused("a field of 20 KB", long_field, 431),
        // Framing (RFC 9112 §6).
        refused(
            "Content-Length and Transfer-Encoding",
            "POST /r/x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            400,
        ),
        refused(
            "two differing Content-Length",
            "POST /r/x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            400,
        ),
        refused(
            "Transfer-Encoding not ending in chunked",
            "POST /r/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            400,
        ),
        refused(
            "an unknown transfer coding",
            "POST /r/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nhello",
            501,
        ),
        case(
            "transfer coding names are case-insensitive",
            "POST /r/te-case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            &[200],
            false,
        )
        .forwards(Fwd {
            body: b"hello".to_vec(),
            ..fwd("/r/te-case")
        }),
        case(
            "a Content-Length with leading zeros",
            "POST /r/cl0 HTTP/1.1\r\nHost: t\r\nContent-Length: 005\r\n\r\nhello",
            &[200],
            false,
        )
        .forwards(Fwd {
            body: b"hello".to_vec(),
            ..fwd("/r/cl0")
        }),
        case(
            "a Content-Length body",
            "POST /r/cl HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
            &[200],
            false,
        )
        .forwards(Fwd {
            body: b"hello".to_vec(),
            ..fwd("/r/cl")
        }),
        case(
            "chunk extensions are accepted",
            "POST /r/ext HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
             5;a=b;q=\"x y\"\r\nhello\r\n6 ; c\r\n world\r\n0;last\r\n\r\n",
            &[200],
            false,
        )
        .forwards(Fwd {
            body: b"hello world".to_vec(),
            ..fwd("/r/ext")
        }),
        refused(
            "a chunk size that is not hex",
            "POST /r/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            400,
        ),
        refused(
            "a chunk without its CRLF",
            "POST /r/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
            400,
        ),
        case(
            "trailer fields are accepted, not forwarded as header fields",
            "POST /r/trailer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
             5\r\nhello\r\n0\r\nX-Trailer: t\r\nX-Other: o\r\n\r\n",
            &[200],
            false,
        )
        .forwards(Fwd {
            body: b"hello".to_vec(),
            lacks: vec!["x-trailer", "x-other"],
            ..fwd("/r/trailer")
        }),
        // Pipelining (RFC 9112 §9.3.2).
        case(
            "three pipelined requests in one write",
            "GET /r/p1 HTTP/1.1\r\nHost: t\r\n\r\n\
             POST /r/p2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc\
             GET /r/p3 HTTP/1.1\r\nHost: t\r\n\r\n",
            &[200, 200, 200],
            false,
        )
        .forwards(fwd("/r/p1"))
        .forwards(Fwd {
            body: b"abc".to_vec(),
            ..fwd("/r/p2")
        })
        .forwards(fwd("/r/p3")),
        // Expect (RFC 9110 §10.1.1).
        Case {
            after_continue: Some(b"hello"),
            ..case(
                "Expect: 100-continue, the body sent after the 100",
                "POST /r/expect HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
                &[200],
                false,
            )
            .forwards(Fwd {
                body: b"hello".to_vec(),
                ..fwd("/r/expect")
            })
        },
        // Persistence (RFC 9112 §9.3).
        case(
            "Connection: close is honoured",
            "GET /r/close HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            &[200],
            true,
        )
        .forwards(fwd("/r/close")),
        case(
            "nothing after Connection: close is read",
            "GET /r/close HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n\
             GET /r/after-close HTTP/1.1\r\nHost: t\r\n\r\n",
            &[200],
            true,
        )
        .forwards(fwd("/r/close")),
        // RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored
        // (and no 1xx may go to an HTTP/1.0 client, RFC 9110 §15.2).
        case(
            "Expect: 100-continue from an HTTP/1.0 client",
            "POST /r/e10 HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
            &[200],
            true,
        )
        .forwards(Fwd {
            body: b"hello".to_vec(),
            ..fwd10("/r/e10")
        }),
        case(
            "HTTP/1.0 closes by default",
            "GET /r/h10 HTTP/1.0\r\nHost: t\r\n\r\n",
            &[200],
            true,
        )
        .forwards(fwd10("/r/h10")),
        case(
            "HTTP/1.0 keep-alive",
            "GET /r/h10ka HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n",
            &[200],
            false,
        )
        .forwards(fwd10("/r/h10ka")),
        // Hop-by-hop fields (RFC 9110 §7.6.1).
        case("hop-by-hop fields are not forwarded", hop, &[200], false).forwards(Fwd {
            has: vec!["X-Keep: yes"],
            lacks: vec![
                "x-hop",
                "\r\nkeep-alive:",
                "\r\nte:",
                "upgrade",
                "websocket",
                "proxy-connection",
            ],
            ..fwd("/r/hop")
        }),
        // Max-Forwards (RFC 9110 §7.6.2).
        // The gateway answers as the final recipient: /r/mf is no resource of its own.
        case(
            "Max-Forwards: 0 on OPTIONS is answered by the gateway",
            "OPTIONS /r/mf HTTP/1.1\r\nHost: t\r\nMax-Forwards: 0\r\n\r\n",
            &[404],
            true,
        ),
        case(
            "Max-Forwards: 0 on OPTIONS * is answered by the gateway",
            "OPTIONS * HTTP/1.1\r\nHost: star.example\r\nMax-Forwards: 0\r\n\r\n",
            &[404],
            true,
        ),
        // No resource of the gateway's own answers `*` (RFC 9110 §9.3.7 asks nothing more).
        case(
            "OPTIONS * on no route is answered by the gateway",
            "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n",
            &[404],
            false,
        ),
        case(
            "Max-Forwards: 0 on TRACE is answered by the gateway",
            "TRACE /r/mf HTTP/1.1\r\nHost: t\r\nMax-Forwards: 0\r\n\r\n",
            &[404],
            true,
        ),
        case(
            "Max-Forwards is decremented on TRACE",
            "TRACE /r/tr HTTP/1.1\r\nHost: t\r\nMax-Forwards: 1\r\n\r\n",
            &[200],
            false,
        )
        .forwards(Fwd {
            has: vec!["Max-Forwards: 0"],
            ..fwd("/r/tr")
        }),
        // An empty Host is a valid field value (RFC 9110 §7.2): forwarded as it came.
        case(
            "an empty Host",
            "GET /r/empty-host HTTP/1.1\r\nHost: \r\n\r\n",
            &[200],
            false,
        )
        .forwards(Fwd {
            has: vec!["Host: "],
            ..fwd("/r/empty-host")
        }),
        case(
            "an unknown expectation",
            "GET /r/x HTTP/1.1\r\nHost: t\r\nExpect: teapot\r\n\r\n",
            &[417],
            true,
        ),
        case(
            "CONNECT",
            "CONNECT r.example:443 HTTP/1.1\r\nHost: r.example:443\r\n\r\n",
            &[400],
            true,
        ),
        case(
            "the client's Via kept, this hop's appended",
            "GET /r/via HTTP/1.1\r\nHost: t\r\nVia: 1.0 fred\r\n\r\n",
            &[200],
            false,
        )
        .forwards(Fwd {
            via: "Via: 1.0 fred, 1.1 xgate",
            ..fwd("/r/via")
        }),
        chunked_upload("/r/big-chunked", 200_000, 65_536),
        chunked_upload("/r/small-chunked", 20_000, 4_096),
        case(
            "Max-Forwards is decremented on OPTIONS",
            "OPTIONS /r/mf HTTP/1.1\r\nHost: t\r\nMax-Forwards: 3\r\n\r\n",
            &[200],
            false,
        )
        .forwards(Fwd {
            has: vec!["Max-Forwards: 2"],
            ..fwd("/r/mf")
        }),
    ]
}

/// A chunked POST of `n` bytes in chunks of `chunk` bytes.
fn chunked_upload(target: &'static str, n: usize, chunk: usize) -> Case {
    let body = pattern(n);
    let mut input =
        format!("POST {target} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    for piece in body.chunks(chunk) {
        input.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        input.extend_from_slice(piece);
        input.extend_from_slice(b"\r\n");
    }
    input.extend_from_slice(b"0\r\n\r\n");
    case("a chunked upload", input, &[200], false).forwards(Fwd {
        body,
        ..fwd(target)
    })
}

/// Runs `c` on a new connection to `port`; the first difference from what it wants, if any.
fn check_case(topo: &Topology, rec: &Recorder, port: u16, c: &Case) -> Result<(), String> {
    let before = rec.seen().len();
    let unframed_before = rec.shared.unframed.lock().unwrap().len();
    let unframed = || -> Vec<String> {
        std::thread::sleep(Duration::from_millis(200));
        rec.shared.unframed.lock().unwrap()[unframed_before..]
            .iter()
            .map(|raw| String::from_utf8_lossy(raw).into_owned())
            .collect()
    };
    let mut conn = connect(topo, port);
    if let Err(e) = conn.s.write_all(&c.input) {
        return Err(format!(
            "sending the request: {e}; the upstream could not frame {:?}, got {:?}",
            unframed(),
            rec.seen()[before..].to_vec(),
        ));
    }
    if let Some(body) = c.after_continue {
        match conn.head() {
            Some((100, _)) => conn.send(body),
            other => return Err(format!("no 100 Continue first: {other:?}")),
        }
    }
    let mut answers = Vec::new();
    for _ in &c.answers {
        match conn.response(false) {
            Some(r) => answers.push(r),
            None => break,
        }
    }
    if conn.interim > 0 {
        return Err(format!("{} interim answers no one asked for", conn.interim));
    }
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    if statuses != c.answers {
        return Err(format!(
            "answers {statuses:?}, want {:?}: {answers:?}; the upstream could not frame {:?}",
            c.answers,
            unframed(),
        ));
    }
    let mut want = c.upstream.iter().map(|f| f.target).collect::<Vec<_>>();
    if c.closes {
        conn.s
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        if !conn.closed() {
            return Err(format!(
                "the connection stays open (or more came: {:?})",
                String::from_utf8_lossy(&conn.buf)
            ));
        }
    } else {
        conn.send(FOLLOW_UP);
        match conn.response(false) {
            Some(r) if r.status == 200 && r.body == b"/r/follow-up" => {}
            other => return Err(format!("the connection is not usable after: {other:?}")),
        }
        want.push("/r/follow-up");
    }
    let got = rec.seen()[before..].to_vec();
    let targets: Vec<&str> = got.iter().map(|s| s.target.as_str()).collect();
    if targets != want {
        return Err(format!(
            "the upstream got {targets:?}, want {want:?}: {got:?}"
        ));
    }
    // The upstream's answers reach the client in order, each to its request.
    let relayed: Vec<&[u8]> = answers
        .iter()
        .filter(|r| r.header("X-Upstream").is_some())
        .map(|r| &r.body[..])
        .collect();
    let sent: Vec<&[u8]> = c.upstream.iter().map(|f| f.target.as_bytes()).collect();
    if relayed != sent {
        return Err(format!("answers relayed {relayed:?}, want {sent:?}"));
    }
    let tags: Vec<&str> = answers
        .iter()
        .filter_map(|r| r.header("X-Upstream"))
        .collect();
    let want_tags: Vec<String> = (got.iter().enumerate())
        .take(c.upstream.len())
        .map(|(i, seen)| format!("{}/{}", seen.conn, before + i))
        .collect();
    if tags != want_tags {
        return Err(format!("answers from {tags:?}, want {want_tags:?}"));
    }
    for (seen, f) in got.iter().zip(&c.upstream) {
        let head = seen.head.to_ascii_lowercase();
        let lines: Vec<&str> = head.split("\r\n").collect();
        let client = format!("x-forwarded-for: {CLIENT_IP}");
        for line in f.has.iter().copied().chain([f.via, &client]) {
            if !lines.contains(&line.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "{line:?} not in the forwarded head: {:?}",
                    seen.head
                ));
            }
        }
        for text in &f.lacks {
            if head.contains(text) {
                return Err(format!("{text:?} forwarded: {:?}", seen.head));
            }
        }
        if seen.body != f.body {
            return Err(format!("body forwarded {:?}, want {:?}", seen.body, f.body));
        }
        if seen.framing_fields > 1 {
            return Err(format!("two framing fields forwarded: {:?}", seen.head));
        }
    }
    Ok(())
}

#[test]
fn h1spec_cases_through_the_proxy_on_both_paths() {
    if !is_root() {
        eprintln!(
            "skipping h1spec_cases_through_the_proxy: needs root (netns, XDP, AF_XDP, cgroups)"
        );
        return;
    }
    let _serial = ROOT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut topo = Topology::create();
    let dir = TempDir::new(&format!("{}-conform-h1", topo.name));
    let rec = Recorder::start(&topo.server_ns);
    let routes = "[[route]]\npath_prefix = \"/r\"\nupstream = \"pool\"\n\n\
                  [[route]]\nhost = \"star.example\"\nupstream = \"pool\"\n";
    let config = write_config(&dir.0, &topo, rec.listener.addr.port(), routes);
    start_xgate(&mut topo, &config, &[]);
    let mut failures = Vec::new();
    for port in PORTS {
        for c in cases() {
            if !c.ports.contains(&port) {
                continue;
            }
            if let Err(e) = check_case(&topo, &rec, port, &c) {
                failures.push(format!(":{port} {}: {e}", c.name));
            }
        }
    }
    // The gateway (a child of `topo`) stops before the recorder.
    drop(topo);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
