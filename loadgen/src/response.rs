//! Reading and checking HTTP/1.1 responses from a byte stream, sans-IO.
//!
//! [`ResponseParser`] is fed whatever a read returned: a response may be split anywhere, and one
//! read may hold the tail of one response and the heads of several pipelined ones. The parser
//! stops after each complete response ([`ResponseParser::feed`] returns it with the number of
//! bytes it took), so the caller can match it to its oldest outstanding request and feed the
//! rest. It keeps only a partial head between reads (in a buffer reused for the connection's
//! life); bodies are checked as they stream past and never stored.
//!
//! Every response is checked against an [`Expect`]: the status, the body length (by
//! `Content-Length`, chunked, or until EOF) and optionally the body bytes. A response that is
//! well-framed but not what was expected is a [`Failure`] in its [`Response`] and the stream
//! stays usable; a stream that cannot be framed any more is a [`ProtocolError`] and the
//! connection must be closed.

use std::sync::Arc;

use thiserror::Error;

/// The bytes of `GET /bytes/{n}` on the gateway, and of the request bodies loadgen sends (so
/// `POST /echo` answers them back): byte `i` is `b'a' + i % 26`.
pub const ALPHABET: &[u8; 26] = b"abcdefghijklmnopqrstuvwxyz";

/// Largest response head (status line and headers) accepted.
pub const MAX_HEAD_LEN: usize = 64 * 1024;

/// Most headers in one response head.
const MAX_HEADERS: usize = 64;

/// `len` bytes of the [`ALPHABET`] pattern, starting at byte 0.
pub fn pattern(len: usize) -> Vec<u8> {
    ALPHABET.iter().copied().cycle().take(len).collect()
}

/// What a response body must be, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyCheck {
    /// Bytes are not compared.
    Any,
    /// Byte `i` is `b'a' + i % 26` ([`ALPHABET`]): the gateway's `/bytes/{n}`, and `/echo` of a
    /// body loadgen sent.
    Pattern,
    /// Exactly these bytes (this also fixes the length).
    Exact(Arc<[u8]>),
}

/// What every response must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// Required status; `None` takes any final status.
    pub status: Option<u16>,
    /// Required body length; `None` takes any (but [`BodyCheck::Exact`] fixes it).
    pub body_len: Option<u64>,
    pub body: BodyCheck,
    /// The request was `HEAD`: responses carry no body whatever their headers say.
    pub head_request: bool,
}

impl Default for Expect {
    fn default() -> Self {
        Expect {
            status: Some(200),
            body_len: None,
            body: BodyCheck::Any,
            head_request: false,
        }
    }
}

impl Expect {
    /// The body length a response must have, if any is required.
    pub fn required_len(&self) -> Option<u64> {
        match &self.body {
            BodyCheck::Exact(bytes) => Some(bytes.len() as u64),
            _ => self.body_len,
        }
    }
}

/// A well-framed response that is not what was expected. The first one found is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Failure {
    #[error("status {got}, expected {expected}")]
    Status { expected: u16, got: u16 },
    #[error("body of {got} bytes, expected {expected}")]
    BodyLength { expected: u64, got: u64 },
    #[error("body byte {offset} differs from the expected bytes")]
    BodyBytes { offset: u64 },
}

/// The stream cannot be read as HTTP/1.1 responses any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProtocolError {
    #[error("malformed response head: {0}")]
    Head(httparse::Error),
    #[error("response head longer than {MAX_HEAD_LEN} bytes")]
    HeadTooLong,
    #[error("invalid or conflicting Content-Length")]
    ContentLength,
    #[error("unsupported Transfer-Encoding (only chunked is read)")]
    TransferEncoding,
    #[error("malformed chunk framing")]
    Chunk,
    #[error("101 Switching Protocols")]
    Upgrade,
}

/// One complete response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body_len: u64,
    /// The server closes the connection after this response (`Connection: close`, HTTP/1.0
    /// without keep-alive, or a body delimited by EOF).
    pub close: bool,
    pub verdict: Result<(), Failure>,
}

/// What EOF meant for the response being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eof {
    /// Between responses: nothing was lost.
    Clean,
    /// The body was delimited by EOF: this is its end.
    Complete(Response),
    /// The stream ended inside a head (`in_body == false`) or inside a framed body.
    Truncated { in_body: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length {
        remaining: u64,
    },
    ChunkSize {
        size: u64,
        digits: u8,
        ext: bool,
        cr: bool,
    },
    ChunkData {
        remaining: u64,
    },
    ChunkDataEnd {
        cr: bool,
    },
    Trailer {
        line_len: usize,
        cr: bool,
    },
    UntilEof,
}

/// The response being read: what its head said and what its body has shown so far.
#[derive(Debug, Clone, Copy)]
struct Current {
    status: u16,
    close: bool,
    body_len: u64,
    failure: Option<Failure>,
}

/// Reads responses off one connection; [`reset`](ResponseParser::reset) for a new connection.
#[derive(Debug)]
pub struct ResponseParser {
    state: State,
    /// A head split across reads, kept until its end arrives.
    head: Vec<u8>,
    cur: Current,
}

impl Default for ResponseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseParser {
    pub fn new() -> Self {
        ResponseParser {
            state: State::Head,
            head: Vec::new(),
            cur: Current {
                status: 0,
                close: false,
                body_len: 0,
                failure: None,
            },
        }
    }

    /// Forgets any partial response (the connection was closed); keeps the head buffer's
    /// capacity.
    pub fn reset(&mut self) {
        self.state = State::Head;
        self.head.clear();
    }

    /// True between responses: no byte of a next response has been seen.
    pub fn is_idle(&self) -> bool {
        self.state == State::Head && self.head.is_empty()
    }

    /// Reads from `input` until one response is complete or the input is used up. Returns the
    /// bytes consumed and the response if one completed; call again with the rest.
    pub fn feed(
        &mut self,
        input: &[u8],
        expect: &Expect,
    ) -> Result<(usize, Option<Response>), ProtocolError> {
        let mut at = 0;
        loop {
            if at == input.len() && self.state != State::Head {
                return Ok((at, None));
            }
            match self.state {
                State::Head => {
                    if at == input.len() {
                        return Ok((at, None));
                    }
                    let (n, done) = self.read_head(&input[at..], expect)?;
                    at += n;
                    if let Some(r) = done {
                        return Ok((at, Some(r)));
                    }
                }
                State::Length { remaining } => {
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - at);
                    self.body(&input[at..at + n], expect);
                    at += n;
                    let remaining = remaining - n as u64;
                    if remaining == 0 {
                        return Ok((at, Some(self.finish(expect))));
                    }
                    self.state = State::Length { remaining };
                }
                State::UntilEof => {
                    self.body(&input[at..], expect);
                    return Ok((input.len(), None));
                }
                State::ChunkData { remaining } => {
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - at);
                    self.body(&input[at..at + n], expect);
                    at += n;
                    let remaining = remaining - n as u64;
                    self.state = if remaining == 0 {
                        State::ChunkDataEnd { cr: false }
                    } else {
                        State::ChunkData { remaining }
                    };
                }
                State::ChunkSize { .. } | State::ChunkDataEnd { .. } | State::Trailer { .. } => {
                    let b = input[at];
                    at += 1;
                    if let Some(r) = self.chunk_byte(b, expect)? {
                        return Ok((at, Some(r)));
                    }
                }
            }
        }
    }

    /// The peer closed the stream.
    pub fn eof(&mut self, expect: &Expect) -> Eof {
        let eof = match self.state {
            State::Head if self.head.is_empty() => Eof::Clean,
            State::Head => Eof::Truncated { in_body: false },
            State::UntilEof => Eof::Complete(self.finish(expect)),
            _ => Eof::Truncated { in_body: true },
        };
        self.reset();
        eof
    }

    /// Parses a head from `input` (after any partial head kept from earlier reads). Returns the
    /// bytes of `input` consumed and the response if it has no body.
    fn read_head(
        &mut self,
        input: &[u8],
        expect: &Expect,
    ) -> Result<(usize, Option<Response>), ProtocolError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        if self.head.is_empty() {
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(input).map_err(ProtocolError::Head)? {
                httparse::Status::Complete(n) => {
                    let done = self.start(&resp, expect)?;
                    Ok((n, done))
                }
                httparse::Status::Partial => {
                    if input.len() > MAX_HEAD_LEN {
                        return Err(ProtocolError::HeadTooLong);
                    }
                    self.head.extend_from_slice(input);
                    Ok((input.len(), None))
                }
            }
        } else {
            let old = self.head.len();
            let take = input.len().min(MAX_HEAD_LEN + 1 - old.min(MAX_HEAD_LEN));
            let mut head = std::mem::take(&mut self.head);
            head.extend_from_slice(&input[..take]);
            let mut resp = httparse::Response::new(&mut headers);
            let parsed = resp.parse(&head);
            let result = match parsed {
                Err(e) => Err(ProtocolError::Head(e)),
                Ok(httparse::Status::Complete(n)) => {
                    self.start(&resp, expect).map(|done| (n - old, done))
                }
                Ok(httparse::Status::Partial) if head.len() > MAX_HEAD_LEN => {
                    Err(ProtocolError::HeadTooLong)
                }
                Ok(httparse::Status::Partial) => Ok((take, None)),
            };
            if !matches!(parsed, Ok(httparse::Status::Partial)) {
                head.clear();
            }
            self.head = head;
            result
        }
    }

    /// A head is complete: decides the framing and checks the status. Returns the response if
    /// it has no body; informational (1xx) heads are skipped.
    fn start(
        &mut self,
        resp: &httparse::Response<'_, '_>,
        expect: &Expect,
    ) -> Result<Option<Response>, ProtocolError> {
        let status = resp.code.unwrap_or(0);
        if status == 101 {
            return Err(ProtocolError::Upgrade);
        }
        if (100..200).contains(&status) {
            self.state = State::Head;
            return Ok(None);
        }
        let http10 = resp.version == Some(0);
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut close = false;
        let mut keep_alive = false;
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let n = parse_length(h.value).ok_or(ProtocolError::ContentLength)?;
                if length.is_some_and(|l| l != n) {
                    return Err(ProtocolError::ContentLength);
                }
                length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                let last = h.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
                if !trim(last).eq_ignore_ascii_case(b"chunked") {
                    return Err(ProtocolError::TransferEncoding);
                }
                chunked = true;
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|&b| b == b',') {
                    let token = trim(token);
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
        }
        let mut failure = None;
        if let Some(expected) = expect.status {
            if expected != status {
                failure = Some(Failure::Status {
                    expected,
                    got: status,
                });
            }
        }
        self.cur = Current {
            status,
            close: close || (http10 && !keep_alive),
            body_len: 0,
            failure,
        };
        let no_body = expect.head_request || status == 204 || status == 304;
        self.state = if no_body {
            State::Head
        } else if chunked {
            State::ChunkSize {
                size: 0,
                digits: 0,
                ext: false,
                cr: false,
            }
        } else if let Some(n) = length {
            if n == 0 {
                State::Head
            } else {
                State::Length { remaining: n }
            }
        } else {
            self.cur.close = true;
            State::UntilEof
        };
        Ok((self.state == State::Head).then(|| self.finish(expect)))
    }

    /// One byte of chunk framing (size line, the CRLF after data, or the trailer section).
    fn chunk_byte(&mut self, b: u8, expect: &Expect) -> Result<Option<Response>, ProtocolError> {
        match &mut self.state {
            State::ChunkSize {
                size,
                digits,
                ext,
                cr,
            } => {
                if *cr {
                    if b != b'\n' || *digits == 0 {
                        return Err(ProtocolError::Chunk);
                    }
                    self.state = if *size == 0 {
                        State::Trailer {
                            line_len: 0,
                            cr: false,
                        }
                    } else {
                        State::ChunkData { remaining: *size }
                    };
                } else if b == b'\r' {
                    *cr = true;
                } else if *ext {
                    // Chunk extensions are skipped up to the CR.
                } else if let Some(d) = hex_digit(b) {
                    if *digits == 16 {
                        return Err(ProtocolError::Chunk);
                    }
                    *size = *size << 4 | u64::from(d);
                    *digits += 1;
                } else if b == b';' || b == b' ' || b == b'\t' {
                    *ext = true;
                } else {
                    return Err(ProtocolError::Chunk);
                }
            }
            State::ChunkDataEnd { cr } => match (b, *cr) {
                (b'\r', false) => *cr = true,
                (b'\n', true) => {
                    self.state = State::ChunkSize {
                        size: 0,
                        digits: 0,
                        ext: false,
                        cr: false,
                    }
                }
                _ => return Err(ProtocolError::Chunk),
            },
            State::Trailer { line_len, cr } => {
                if *cr {
                    if b != b'\n' {
                        return Err(ProtocolError::Chunk);
                    }
                    if *line_len == 0 {
                        self.state = State::Head;
                        return Ok(Some(self.finish(expect)));
                    }
                    *line_len = 0;
                    *cr = false;
                } else if b == b'\r' {
                    *cr = true;
                } else {
                    *line_len += 1;
                    if *line_len > MAX_HEAD_LEN {
                        return Err(ProtocolError::HeadTooLong);
                    }
                }
            }
            _ => unreachable!("chunk_byte outside chunk framing"),
        }
        Ok(None)
    }

    /// Body bytes at offset `self.cur.body_len`: counted, and compared when asked.
    fn body(&mut self, data: &[u8], expect: &Expect) {
        let offset = self.cur.body_len;
        self.cur.body_len += data.len() as u64;
        if self.cur.failure.is_some() {
            return;
        }
        let mismatch = match &expect.body {
            BodyCheck::Any => None,
            BodyCheck::Pattern => first_pattern_mismatch(data, offset),
            BodyCheck::Exact(bytes) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let want = &bytes[start..];
                let n = want.len().min(data.len());
                // Bytes past the expected end are a length failure, found in `finish`.
                data[..n]
                    .iter()
                    .zip(want)
                    .position(|(a, b)| a != b)
                    .map(|i| i as u64)
            }
        };
        if let Some(i) = mismatch {
            self.cur.failure = Some(Failure::BodyBytes { offset: offset + i });
        }
    }

    fn finish(&mut self, expect: &Expect) -> Response {
        let cur = self.cur;
        let mut verdict = cur.failure.map_or(Ok(()), Err);
        if verdict.is_ok() && !expect.head_request {
            if let Some(expected) = expect.required_len() {
                if expected != cur.body_len {
                    verdict = Err(Failure::BodyLength {
                        expected,
                        got: cur.body_len,
                    });
                }
            }
        }
        self.state = State::Head;
        Response {
            status: cur.status,
            body_len: cur.body_len,
            close: cur.close,
            verdict,
        }
    }
}

/// Index of the first byte of `data` (at body offset `offset`) that breaks the pattern.
fn first_pattern_mismatch(data: &[u8], offset: u64) -> Option<u64> {
    let mut phase = (offset % 26) as usize;
    let mut at = 0;
    while at < data.len() {
        let n = (26 - phase).min(data.len() - at);
        let got = &data[at..at + n];
        let want = &ALPHABET[phase..phase + n];
        if got != want {
            let i = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
            return Some((at + i) as u64);
        }
        at += n;
        phase = 0;
    }
    None
}

fn parse_length(v: &[u8]) -> Option<u64> {
    let v = trim(v);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests;
