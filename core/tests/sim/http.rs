//! The client's half of HTTP/1.1: the requests a run makes, how they are written, and a strict
//! incremental response parser that checks every body byte against what is expected.

use super::rng::Rng;

pub const MIB: usize = 1 << 20;

/// Byte `i` of the body of `GET /bytes/{n}`.
pub fn pattern_byte(i: usize) -> u8 {
    b'a' + (i % 26) as u8
}

#[derive(Clone, Debug)]
pub enum RequestKind {
    /// `GET /bytes/{n}`
    Bytes(usize),
    /// `POST /echo` with this body, sent with Content-Length or, given a chunk size, chunked.
    Echo { body: Vec<u8>, chunk: Option<usize> },
}

#[derive(Clone, Debug)]
pub struct Request {
    pub kind: RequestKind,
    /// Sends `Connection: close` (only ever on a connection's last request).
    pub close: bool,
}

impl Request {
    pub fn body_len(&self) -> usize {
        match &self.kind {
            RequestKind::Bytes(n) => *n,
            RequestKind::Echo { body, .. } => body.len(),
        }
    }

    /// The request bytes as they go on the wire.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let conn = if self.close {
            "Connection: close\r\n"
        } else {
            ""
        };
        match &self.kind {
            RequestKind::Bytes(n) => {
                out.extend_from_slice(
                    format!("GET /bytes/{n} HTTP/1.1\r\nHost: sim\r\n{conn}\r\n").as_bytes(),
                );
            }
            RequestKind::Echo { body, chunk: None } => {
                out.extend_from_slice(
                    format!(
                        "POST /echo HTTP/1.1\r\nHost: sim\r\nContent-Length: {}\r\n{conn}\r\n",
                        body.len()
                    )
                    .as_bytes(),
                );
                out.extend_from_slice(body);
            }
            RequestKind::Echo {
                body,
                chunk: Some(size),
            } => {
                out.extend_from_slice(
                    format!(
                        "POST /echo HTTP/1.1\r\nHost: sim\r\nTransfer-Encoding: chunked\r\n{conn}\r\n"
                    )
                    .as_bytes(),
                );
                for part in body.chunks(*size) {
                    out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                    out.extend_from_slice(part);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
        }
    }

    fn expected(&self, i: usize) -> u8 {
        match &self.kind {
            RequestKind::Bytes(_) => pattern_byte(i),
            RequestKind::Echo { body, .. } => body[i],
        }
    }

    pub fn describe(&self) -> String {
        match &self.kind {
            RequestKind::Bytes(n) => format!("GET /bytes/{n}"),
            RequestKind::Echo { body, chunk: None } => format!("POST /echo ({} B)", body.len()),
            RequestKind::Echo {
                body,
                chunk: Some(c),
            } => format!("POST /echo ({} B in {c}-byte chunks)", body.len()),
        }
    }
}

/// One connection's script: its requests in order, and how many may be outstanding at once.
#[derive(Clone, Debug)]
pub struct ConnPlan {
    pub requests: Vec<Request>,
    pub pipeline: usize,
    /// Reset the connection (RST) once this many responses are in, with later requests possibly
    /// already sent: the server must clean up whatever it was doing.
    pub abort_after: Option<usize>,
}

impl ConnPlan {
    /// Responses this connection waits for.
    pub fn expected_responses(&self) -> usize {
        self.abort_after.unwrap_or(self.requests.len())
    }
}

/// Everything a run asks of the server.
#[derive(Clone, Debug)]
pub struct Workload {
    pub conns: Vec<ConnPlan>,
    /// How many connections are open at once.
    pub concurrency: usize,
}

/// Body sizes: skewed to small, a few large, up to exactly 1 MiB.
fn body_size(rng: &mut Rng) -> usize {
    let r = rng.below(1000);
    match r {
        0..=49 => 0,
        50..=549 => rng.range(1, 512) as usize,
        550..=849 => rng.range(513, 8 * 1024) as usize,
        850..=959 => rng.range(8 * 1024 + 1, 64 * 1024) as usize,
        960..=989 => rng.range(64 * 1024 + 1, 256 * 1024) as usize,
        990..=994 => rng.range(256 * 1024 + 1, MIB as u64) as usize,
        _ => MIB,
    }
}

impl Workload {
    /// The workload for `seed`. `max_conns` bounds the run's size (and so its run time).
    pub fn generate(rng: &mut Rng, max_conns: usize) -> Workload {
        let n_conns = rng.range(max_conns.div_ceil(2) as u64, max_conns as u64) as usize;
        // Half the runs open a few connections at a time, half open them all at once.
        let concurrency = if rng.chance(0.5) {
            rng.range(1, 8).min(n_conns as u64) as usize
        } else {
            n_conns
        };
        let mut conns = Vec::with_capacity(n_conns);
        for _ in 0..n_conns {
            let n_req = match rng.below(10) {
                0..=2 => 1,
                3..=6 => rng.range(2, 4),
                _ => rng.range(5, 10),
            } as usize;
            let pipeline = if rng.chance(0.5) {
                1
            } else {
                rng.range(2, 4) as usize
            };
            let close_last = rng.chance(0.3);
            let requests = (0..n_req)
                .map(|i| {
                    let size = body_size(rng);
                    let kind = if rng.chance(0.6) {
                        RequestKind::Bytes(size)
                    } else {
                        let mut body = vec![0; size];
                        rng.fill(&mut body);
                        // Chunk sizes from 1 byte up, but at most 256 chunks per body.
                        let lo = (size / 256).max(1);
                        let hi = size.clamp(1, 20_000).max(lo);
                        let chunk = rng
                            .chance(0.25)
                            .then(|| rng.range(lo as u64, hi as u64) as usize);
                        RequestKind::Echo { body, chunk }
                    };
                    Request {
                        kind,
                        close: close_last && i + 1 == n_req,
                    }
                })
                .collect();
            let abort_after = rng.chance(0.05).then(|| rng.below(n_req as u64) as usize);
            conns.push(ConnPlan {
                requests,
                pipeline,
                abort_after,
            });
        }
        Workload { conns, concurrency }
    }

    pub fn request_count(&self) -> usize {
        self.conns.iter().map(ConnPlan::expected_responses).sum()
    }
}

#[derive(Debug)]
enum Body {
    Length { remaining: usize },
    ChunkSize,
    ChunkData { remaining: usize },
    ChunkDataEnd,
    Trailers,
}

#[derive(Debug)]
enum State {
    Head,
    Body(Body),
}

/// Parses a stream of responses, strictly, checking each against the request it answers.
#[derive(Debug)]
pub struct ResponseParser {
    buf: Vec<u8>,
    state: State,
    /// Body bytes of the current response checked so far.
    body_pos: usize,
    /// The current response said `Connection: close`.
    pub close: bool,
}

const MAX_HEAD: usize = 16 * 1024;

impl Default for ResponseParser {
    fn default() -> Self {
        ResponseParser {
            buf: Vec::new(),
            state: State::Head,
            body_pos: 0,
            close: false,
        }
    }
}

/// Finds a CRLF-terminated line at the start of `buf`; bare LF is an error.
fn line(buf: &[u8]) -> Result<Option<(&[u8], usize)>, String> {
    match buf.iter().position(|&b| b == b'\n') {
        None if buf.len() > 1024 => Err("line longer than 1 KiB".into()),
        None => Ok(None),
        Some(0) => Err("bare LF".into()),
        Some(i) if buf[i - 1] != b'\r' => Err("bare LF".into()),
        Some(i) => Ok(Some((&buf[..i - 1], i + 1))),
    }
}

impl ResponseParser {
    /// True when no response is partly parsed.
    pub fn idle(&self) -> bool {
        matches!(self.state, State::Head) && self.buf.is_empty()
    }

    /// Feeds bytes; `current` is the request the next unfinished response answers (`None` if
    /// none is outstanding, in which case any byte is an error). Returns how many responses
    /// completed; the caller advances `current` between calls, so it passes at most one at a
    /// time: this returns after the first completed response with the rest left buffered.
    pub fn feed(&mut self, data: &[u8], current: Option<&Request>) -> Result<bool, String> {
        self.buf.extend_from_slice(data);
        self.step(current)
    }

    /// Continues parsing what is buffered. Ok(true) when a response completed.
    pub fn step(&mut self, current: Option<&Request>) -> Result<bool, String> {
        let mut pos = 0;
        let result = self.parse(current, &mut pos);
        self.buf.drain(..pos);
        result
    }

    fn parse(&mut self, current: Option<&Request>, pos: &mut usize) -> Result<bool, String> {
        loop {
            let buf = &self.buf[*pos..];
            if buf.is_empty() {
                return Ok(false);
            }
            let Some(req) = current else {
                return Err(format!(
                    "{} unexpected bytes with no request outstanding: {:?}",
                    buf.len(),
                    String::from_utf8_lossy(&buf[..buf.len().min(64)])
                ));
            };
            match &mut self.state {
                State::Head => {
                    let mut headers = [httparse::EMPTY_HEADER; 32];
                    let mut resp = httparse::Response::new(&mut headers);
                    let n = match resp.parse(buf) {
                        Ok(httparse::Status::Complete(n)) => n,
                        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                            return Err("response head larger than 16 KiB".into())
                        }
                        Ok(httparse::Status::Partial) => return Ok(false),
                        Err(e) => {
                            return Err(format!(
                                "bad response head ({e}): {:?}",
                                String::from_utf8_lossy(&buf[..buf.len().min(200)])
                            ))
                        }
                    };
                    if !buf.starts_with(b"HTTP/1.1 ") {
                        return Err("status line is not HTTP/1.1".into());
                    }
                    if resp.code != Some(200) {
                        return Err(format!(
                            "status {:?} {:?} for {}",
                            resp.code,
                            resp.reason,
                            req.describe()
                        ));
                    }
                    let mut length = None;
                    let mut chunked = false;
                    self.close = false;
                    for h in resp.headers.iter() {
                        let value = std::str::from_utf8(h.value)
                            .map_err(|_| format!("non-UTF-8 value in header {}", h.name))?
                            .trim();
                        if h.name.eq_ignore_ascii_case("content-length") {
                            if length.is_some() {
                                return Err("repeated Content-Length".into());
                            }
                            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                                return Err(format!("bad Content-Length {value:?}"));
                            }
                            length = Some(
                                value
                                    .parse::<usize>()
                                    .map_err(|e| format!("Content-Length {value:?}: {e}"))?,
                            );
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            if !value.eq_ignore_ascii_case("chunked") || chunked {
                                return Err(format!("unsupported Transfer-Encoding {value:?}"));
                            }
                            chunked = true;
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            self.close = value.eq_ignore_ascii_case("close");
                        }
                    }
                    self.body_pos = 0;
                    self.state = match (length, chunked) {
                        (Some(_), true) => {
                            return Err("both Content-Length and chunked".into());
                        }
                        (None, false) => {
                            return Err("response without Content-Length or chunked".into())
                        }
                        (Some(n), false) => {
                            if n != req.body_len() {
                                return Err(format!(
                                    "Content-Length {n} for {} (want {})",
                                    req.describe(),
                                    req.body_len()
                                ));
                            }
                            State::Body(Body::Length { remaining: n })
                        }
                        (None, true) => State::Body(Body::ChunkSize),
                    };
                    *pos += n;
                    if let State::Body(Body::Length { remaining: 0 }) = self.state {
                        self.state = State::Head;
                        return Ok(true);
                    }
                }
                State::Body(Body::Length { remaining }) => {
                    let take = buf.len().min(*remaining);
                    check_body(req, self.body_pos, &buf[..take])?;
                    self.body_pos += take;
                    *remaining -= take;
                    *pos += take;
                    if *remaining == 0 {
                        self.state = State::Head;
                        return Ok(true);
                    }
                }
                State::Body(Body::ChunkSize) => {
                    let Some((l, used)) = line(buf)? else {
                        return Ok(false);
                    };
                    let hex = l.split(|&b| b == b';').next().unwrap_or_default();
                    let hex = std::str::from_utf8(hex).map_err(|_| "bad chunk size")?;
                    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(format!("bad chunk size line {hex:?}"));
                    }
                    let size =
                        usize::from_str_radix(hex, 16).map_err(|e| format!("chunk size: {e}"))?;
                    *pos += used;
                    self.state = State::Body(if size == 0 {
                        Body::Trailers
                    } else {
                        Body::ChunkData { remaining: size }
                    });
                }
                State::Body(Body::ChunkData { remaining }) => {
                    let take = buf.len().min(*remaining);
                    if self.body_pos + take > req.body_len() {
                        return Err(format!(
                            "chunked body longer than {} for {}",
                            req.body_len(),
                            req.describe()
                        ));
                    }
                    check_body(req, self.body_pos, &buf[..take])?;
                    self.body_pos += take;
                    *remaining -= take;
                    *pos += take;
                    if *remaining == 0 {
                        self.state = State::Body(Body::ChunkDataEnd);
                    }
                }
                State::Body(Body::ChunkDataEnd) => {
                    if buf.len() < 2 {
                        return Ok(false);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err("chunk data not followed by CRLF".into());
                    }
                    *pos += 2;
                    self.state = State::Body(Body::ChunkSize);
                }
                State::Body(Body::Trailers) => {
                    let Some((l, used)) = line(buf)? else {
                        return Ok(false);
                    };
                    *pos += used;
                    if l.is_empty() {
                        if self.body_pos != req.body_len() {
                            return Err(format!(
                                "chunked body of {} B for {}",
                                self.body_pos,
                                req.describe()
                            ));
                        }
                        self.state = State::Head;
                        return Ok(true);
                    }
                }
            }
        }
    }
}

fn check_body(req: &Request, start: usize, data: &[u8]) -> Result<(), String> {
    for (k, &b) in data.iter().enumerate() {
        let i = start + k;
        let want = req.expected(i);
        if b != want {
            return Err(format!(
                "body byte {i} of {} is {b:#04x}, want {want:#04x}",
                req.describe()
            ));
        }
    }
    Ok(())
}
