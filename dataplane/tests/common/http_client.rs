//! A strict HTTP/1.1 client of the proxy suites: raw requests written on a `TcpStream`
//! connected from the client netns, each response read by its framing (`Content-Length`,
//! chunked, or up to the close), interim (1xx) responses counted and skipped. A body is
//! complete only when its framing says so. And [`curl`], where a real client is the point.
//!
//! Two ways to take a read that times out, chosen per connection ([`Silence`]): the end of
//! what comes, for a suite that collects failures and goes on, or a failed test.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use xgate_testnet::netns::connect_in;

use super::{Topology, GW_IP};

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The value of a field in a head (the first of that name), without regard to case.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
    /// The body ended as its framing says (a length reached, the last chunk, or the close of
    /// a body without either).
    pub complete: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.head, name)
    }

    pub fn is_chunked(&self) -> bool {
        self.header("Transfer-Encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    }
}

#[derive(Debug)]
pub enum Reply {
    Response(Response),
    /// The connection closed (or reset) before a response's first byte.
    Closed,
}

impl Reply {
    #[track_caller]
    pub fn response(self) -> Response {
        match self {
            Reply::Response(r) => r,
            Reply::Closed => panic!("closed without a response"),
        }
    }
}

/// What a read that times out means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// The end of what comes, like a close; [`Client::closed`] then answers false (as it
    /// does on any other read error than a reset).
    Ends,
    /// The gateway owed bytes: the test fails (panics).
    Fails,
}

pub struct Client {
    pub s: TcpStream,
    /// Read and not yet taken by a response.
    pub buf: Vec<u8>,
    /// Interim (1xx) responses skipped so far.
    pub interim: usize,
    silence: Silence,
    /// Reads at most 4 KiB a millisecond.
    slow: bool,
}

impl Client {
    /// Connects to the gateway's `port` from the client netns; reads and writes time out
    /// after `io_timeout`.
    pub fn connect(topo: &Topology, port: u16, io_timeout: Duration, silence: Silence) -> Client {
        let addr = SocketAddrV4::new(GW_IP.parse().unwrap(), port);
        let s = connect_in(&topo.client_ns, addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect :{port}: {e}"));
        s.set_read_timeout(Some(io_timeout)).unwrap();
        s.set_write_timeout(Some(io_timeout)).unwrap();
        Client {
            s,
            buf: Vec::new(),
            interim: 0,
            silence,
            slow: false,
        }
    }

    /// From now on: a 16 KiB receive buffer (the kernel doubles it), read slowly.
    pub fn slow_reader(&mut self) {
        let len: libc::c_int = 16 * 1024;
        // SAFETY: setsockopt on a socket we own, with a correctly sized int value.
        let rc = unsafe {
            libc::setsockopt(
                self.s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&len as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_RCVBUF: {}", io::Error::last_os_error());
        self.slow = true;
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("sending a request");
    }

    /// One read into `buf`, slowly for a slow reader.
    fn read_some(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 65536];
        let want = if self.slow {
            std::thread::sleep(Duration::from_millis(1));
            4096
        } else {
            chunk.len()
        };
        let n = self.s.read(&mut chunk[..want])?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads more; 0 at EOF or a reset (a reset counts as the connection's end), and at the
    /// read timeout when [`Silence::Ends`].
    pub fn fill(&mut self) -> usize {
        match self.read_some() {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => 0,
            Err(e)
                if self.silence == Silence::Ends
                    && matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                0
            }
            Err(e) => panic!("reading a response: {e}"),
        }
    }

    pub fn fill_to(&mut self, n: usize) -> bool {
        while self.buf.len() < n {
            if self.fill() == 0 {
                return false;
            }
        }
        true
    }

    pub fn line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return Some(line);
            }
            if self.fill() == 0 {
                return None;
            }
        }
    }

    /// The next response head, interim (1xx) ones included; `None` when the connection ends
    /// (or stays silent, when [`Silence::Ends`]) before one.
    pub fn head(&mut self) -> Option<(u16, String)> {
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.fill() == 0 {
                assert!(
                    self.buf.is_empty(),
                    "the connection ended inside a head: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end);
        let status = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a status line: {head:?}"));
        Some((status, head))
    }

    /// The next final response (interim ones skipped), its body read by its framing.
    pub fn reply(&mut self) -> Reply {
        self.reply_to(false)
    }

    /// The next final response to a HEAD: no body, whatever the head says.
    pub fn reply_to_head(&mut self) -> Reply {
        self.reply_to(true)
    }

    /// The next final response, its body read by its framing (none after a HEAD, a 204 or a
    /// 304, whatever the head says); a body cut short is returned as far as it came, not
    /// [`complete`](Response::complete).
    pub fn reply_to(&mut self, head_only: bool) -> Reply {
        let (status, head) = loop {
            let Some((status, head)) = self.head() else {
                return Reply::Closed;
            };
            if !(100..200).contains(&status) {
                break (status, head);
            }
            self.interim += 1;
        };
        let mut r = Response {
            status,
            head,
            body: Vec::new(),
            complete: false,
        };
        if head_only || status == 204 || status == 304 {
            r.complete = true;
            return Reply::Response(r);
        }
        if r.is_chunked() {
            loop {
                let Some(line) = self.line() else {
                    return Reply::Response(r);
                };
                let text = String::from_utf8_lossy(&line).into_owned();
                let size = usize::from_str_radix(text.split(';').next().unwrap_or(""), 16)
                    .unwrap_or_else(|_| panic!("a chunk size line: {text:?}"));
                if size == 0 {
                    loop {
                        match self.line() {
                            None => return Reply::Response(r),
                            Some(l) if l.is_empty() => break,
                            Some(_) => {}
                        }
                    }
                    r.complete = true;
                    return Reply::Response(r);
                }
                if !self.fill_to(size + 2) {
                    r.body.append(&mut self.buf);
                    return Reply::Response(r);
                }
                r.body.extend_from_slice(&self.buf[..size]);
                assert_eq!(&self.buf[size..size + 2], b"\r\n", "a chunk's CRLF");
                self.buf.drain(..size + 2);
            }
        }
        if let Some(len) = r.header("Content-Length") {
            let n: usize = len.parse().expect("a Content-Length");
            r.complete = self.fill_to(n);
            let take = n.min(self.buf.len());
            r.body = self.buf.drain(..take).collect();
            return Reply::Response(r);
        }
        // Close-delimited.
        while self.fill() > 0 {}
        r.body = std::mem::take(&mut self.buf);
        r.complete = true;
        Reply::Response(r)
    }

    /// [`reply_to`](Self::reply_to), where every answer must be complete: `None` when the
    /// connection ends before one; panics on a body cut short.
    pub fn response(&mut self, to_head: bool) -> Option<Response> {
        match self.reply_to(to_head) {
            Reply::Closed => None,
            Reply::Response(r) => {
                assert!(r.complete, "a body cut short: {}", r.head);
                Some(r)
            }
        }
    }

    /// True when the peer closed the connection (a FIN or a reset) with nothing more to
    /// read; false when it stays silent until the read timeout, if [`Silence::Ends`].
    pub fn closed(&mut self) -> bool {
        loop {
            match self.read_some() {
                Ok(0) => return self.buf.is_empty(),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return self.buf.is_empty(),
                Err(_) if self.silence == Silence::Ends => return false,
                Err(e) => panic!("reading a response: {e}"),
            }
        }
    }
}

/// curl from the client netns with `args` on `url_path` of the gateway's `port`; (status,
/// head, body) of the last response (a 100 Continue skipped), the head with its last CRLF.
pub fn curl(topo: &Topology, args: &[&str], url_path: &str, port: u16) -> (u16, String, Vec<u8>) {
    let o = Command::new("ip")
        .args(["netns", "exec", &topo.client_ns, "curl", "-sS", "-D", "-"])
        .args(["--max-time", "20", "-o", "/dev/stdout"])
        .args(args)
        .arg(format!("http://{GW_IP}:{port}{url_path}"))
        .output()
        .expect("running curl");
    assert!(
        o.status.success(),
        "curl :{port}{url_path}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut rest = &o.stdout[..];
    loop {
        let split = find(rest, b"\r\n\r\n").expect("a response head");
        if rest.starts_with(b"HTTP/1.1 1") {
            rest = &rest[split + 4..];
            continue;
        }
        let head = String::from_utf8_lossy(&rest[..split + 2]).into_owned();
        let body = rest[split + 4..].to_vec();
        let status = head[9..12].parse().expect("a status");
        return (status, head, body);
    }
}
