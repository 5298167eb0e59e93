//! Request head: a raw-byte scan for the shapes httparse tolerates or that must be refused
//! before parsing (RFC 9112 §2.2, §5.2), then httparse, then the framing and connection
//! semantics of the header fields (RFC 9112 §6, §9; RFC 9110 §7.2, §10.1.1).

use std::mem::MaybeUninit;

use super::syntax::{content_length, list, trim_ows};
use super::HttpLimits;
use crate::app::{App, Handler};

/// Upper bound on header fields httparse is given room for (on the stack, per parse).
pub(crate) const MAX_HEADERS_CAP: usize = 128;
const _: () = assert!(MAX_HEADERS_CAP <= u8::MAX as usize); // `Request::field_count`

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// A request head that was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Request {
    /// Bytes of the head, including leading empty lines and the final CRLF.
    pub len: usize,
    pub head_only: bool,
    pub handler: Handler,
    pub framing: Framing,
    /// `Connection: close`, or HTTP/1.0 without `keep-alive`.
    pub close: bool,
    /// HTTP/1.0 with `Connection: keep-alive`: answer with `Connection: keep-alive`.
    pub keep_alive_10: bool,
    /// `Expect: 100-continue` in an HTTP/1.1 request.
    pub expect_continue: bool,
    /// RFC 9110 §9.2.2: the method is idempotent (a failed forward may be retried).
    pub idempotent: bool,
    /// How many field lines the head has (at most [`MAX_HEADERS_CAP`]): how many slots
    /// [`fields`] needs.
    pub field_count: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// No complete head yet; nothing may be consumed.
    Incomplete,
    Request(Request),
    /// Refuse with this status and close. `len` is unknown or irrelevant: nothing more is read.
    Reject(u16),
}

/// How far [`scan`] got through an incomplete head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ScanState {
    pos: usize,
    /// Where the request line starts, once past leading empty lines.
    start: Option<usize>,
    line_start: usize,
    request_line_done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    Incomplete,
    Complete(usize),
    Reject(u16),
}

/// Allowance for the method, spaces and version around the request-target when deciding 414
/// before the request line is complete.
const REQUEST_LINE_SLACK: usize = 64;

/// Finds the end of the head and refuses, in byte order (so the answer never depends on how the
/// input was split): NUL, bare CR, bare LF, whitespace at the start of a field line (obs-fold,
/// or whitespace after the start line), a request line longer than the URI limit (414) and a
/// head longer than the header limit (431). Empty lines before the request line are allowed
/// (RFC 9112 §2.2) if they are CRLF.
///
/// Resumable: `st` remembers how far the bytes were found clean, so a head that arrives in
/// many small pieces is scanned once in total, not once per piece. The caller keeps the bytes
/// it has not consumed and appends to them, so the scanned prefix does not change.
fn scan(buf: &[u8], limits: &HttpLimits, st: &mut ScanState) -> Scan {
    if st.pos > buf.len() {
        *st = ScanState::default(); // not the same input as before: start over
    }
    let mut i = st.pos;
    let start = match st.start {
        Some(start) => start,
        None => {
            // Leading empty lines.
            loop {
                match buf.get(i) {
                    Some(b'\r') => match buf.get(i + 1) {
                        Some(b'\n') => i += 2,
                        Some(_) => return Scan::Reject(400),
                        None => {
                            st.pos = i;
                            return Scan::Incomplete;
                        }
                    },
                    Some(b'\n') => return Scan::Reject(400),
                    Some(_) => break,
                    None => {
                        st.pos = i;
                        return Scan::Incomplete;
                    }
                }
                if i >= limits.max_header_bytes {
                    return Scan::Reject(400);
                }
            }
            st.start = Some(i);
            st.line_start = i;
            i
        }
    };
    let mut line_start = st.line_start;
    let mut request_line_done = st.request_line_done;
    let too_long =
        |request_line_done: bool| Scan::Reject(if request_line_done { 431 } else { 414 });
    let max = limits.max_header_bytes;
    // The first index at which an ordinary byte makes the request line too long (414).
    let uri_stop = start
        .saturating_add(limits.max_uri_len.saturating_add(REQUEST_LINE_SLACK))
        .saturating_add(1);
    while i < buf.len() {
        if i >= max {
            return too_long(request_line_done);
        }
        if i == line_start && i != start && (buf[i] == b' ' || buf[i] == b'\t') {
            // RFC 9112 §5.2 obs-fold, or §2.2 whitespace between start line and first field.
            return Scan::Reject(400);
        }
        // Skip the ordinary bytes of the line in one tight loop: only CR, LF and NUL (all
        // below 0x0e) end or break a line; whichever limit comes first ends the skip.
        let stop = if request_line_done {
            max
        } else {
            max.min(uri_stop.saturating_add(1))
        }
        .min(buf.len());
        let special = buf[i..stop]
            .iter()
            .position(|&b| b < 0x0e && (b == b'\r' || b == b'\n' || b == 0));
        let Some(k) = special else {
            i = stop;
            if !request_line_done && i > uri_stop {
                return Scan::Reject(414);
            }
            continue; // at `max` (refused above) or at the end of the input
        };
        i += k;
        match buf[i] {
            b'\r' => {
                if i + 2 > max {
                    // This CRLF would end past the limit, whatever follows.
                    return too_long(request_line_done);
                }
                match buf.get(i + 1) {
                    Some(b'\n') => {}
                    Some(_) => return Scan::Reject(400), // bare CR
                    None => break,
                }
                if i == line_start && request_line_done {
                    return Scan::Complete(i + 2);
                }
                request_line_done = true;
                i += 2;
                line_start = i;
            }
            // NUL, or a bare LF: every LF is taken with its CR above.
            _ => return Scan::Reject(400),
        }
    }
    if i >= max {
        return too_long(request_line_done);
    }
    st.pos = i;
    st.line_start = line_start;
    st.request_line_done = request_line_done;
    Scan::Incomplete
}

/// `uri-host [ ":" port ]` bytes (RFC 3986 §3.2.2: unreserved, pct-encoded, sub-delims, IP
/// literals in brackets).
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&b)
}

/// The status for a request line httparse refused for its version: 505 for a well-formed
/// `HTTP/x.y` that is not 1.0/1.1, 400 for garbage (RFC 9112 §2.3).
fn version_status(head: &[u8]) -> u16 {
    let line_end = head.iter().position(|&b| b == b'\r').unwrap_or(head.len());
    let line = &head[..line_end];
    if line.iter().filter(|&&b| b == b' ').count() != 2 {
        return 400;
    }
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or(b"");
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            505
        }
        [b'H', b'T', b'T', b'P', b'/', major] if major.is_ascii_digit() => 505,
        _ => 400,
    }
}

/// The path to route on: origin-form without the query, or the path of an absolute-form
/// target (RFC 9112 §3.2). `None` for targets that have no path to route on.
pub(crate) fn route_path(target: &[u8]) -> Option<&[u8]> {
    let path = if target.first() == Some(&b'/') {
        target
    } else if target == b"*" {
        return Some(target);
    } else {
        let scheme_end = target.windows(3).position(|w| w == b"://")?;
        let scheme = &target[..scheme_end];
        if !scheme.eq_ignore_ascii_case(b"http") && !scheme.eq_ignore_ascii_case(b"https") {
            return None;
        }
        let rest = &target[scheme_end + 3..];
        match rest.iter().position(|&b| b == b'/' || b == b'?') {
            Some(at) if rest[at] == b'/' => &rest[at..],
            _ => b"/",
        }
    };
    let end = path
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    Some(&path[..end])
}

/// An absolute-form target (`http://host:port/path?q`) split into its authority and the rest
/// (path and query); `None` for the other forms.
fn split_absolute(target: &[u8]) -> Option<(&[u8], &[u8])> {
    if target.first() == Some(&b'/') || target == b"*" {
        return None;
    }
    let scheme_end = target.windows(3).position(|w| w == b"://")?;
    let rest = &target[scheme_end + 3..];
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?' || b == b'#')
        .unwrap_or(rest.len());
    Some(rest.split_at(end))
}

/// The authority of an absolute-form target, `None` for other forms.
pub(crate) fn absolute_authority(target: &[u8]) -> Option<&[u8]> {
    split_absolute(target).map(|(authority, _)| authority)
}

/// The request line and fields of a head [`parse`] accepted, read again for forwarding.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Fields<'h> {
    pub method: &'h [u8],
    pub target: &'h [u8],
    pub version_minor: u8,
    /// The `Host` value, OWS trimmed.
    pub host: Option<&'h [u8]>,
    /// How many of the caller's field slots were filled.
    pub count: usize,
}

/// Field slots for a head of this many fields or fewer come from a small array: filling all
/// [`MAX_HEADERS_CAP`] slots (4 KiB) cost a forwarded request more than reading its head.
pub(crate) const FEW_FIELDS: usize = 16;

/// Reads the request line and field lines of `head`, a complete head [`parse`] accepted, into
/// `slots` as (name, value) without OWS. `None` if it does not have that shape, or has more
/// fields than slots (only a caller passing other bytes gets that).
///
/// Not httparse again: `parse` proved the shape (each line ends in CRLF, no obs-fold; a request
/// line of three parts between single spaces; each field line a token name, a colon and a
/// value), so splitting at the first SP, CR and colon finds what httparse found (a property
/// test holds it to httparse), without its validation or its per-field copies.
pub(crate) fn fields<'h, const N: usize>(
    head: &'h [u8],
    slots: &mut [(&'h [u8], &'h [u8]); N],
) -> Option<Fields<'h>> {
    let mut rest = head;
    while let Some(after) = rest.strip_prefix(b"\r\n") {
        rest = after; // RFC 9112 §2.2: empty lines before the request line
    }
    let (line, after) = split_line(rest)?;
    rest = after;
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let version_minor = match version {
        b"HTTP/1.0" => 0,
        b"HTTP/1.1" => 1,
        _ => return None,
    };
    let mut host = None;
    let mut count = 0;
    loop {
        let (line, after) = split_line(rest)?;
        rest = after;
        if line.is_empty() {
            break;
        }
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"host") {
            host = Some(value);
        }
        *slots.get_mut(count)? = (name, value);
        count += 1;
    }
    Some(Fields {
        method,
        target,
        version_minor,
        host,
        count,
    })
}

/// The line at the start of `bytes` without its CRLF, and what follows the CRLF.
fn split_line(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let cr = find_cr(bytes)?;
    let after = bytes[cr..].strip_prefix(b"\r\n")?;
    Some((&bytes[..cr], after))
}

/// The index of the first CR in `bytes`: eight bytes per round (a field value is most of a
/// head's bytes), then byte by byte.
fn find_cr(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const CRS: u64 = u64::from_ne_bytes([b'\r'; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in words.by_ref() {
        let x = u64::from_le_bytes(word.try_into().ok()?) ^ CRS;
        // Non-zero when a byte of `x` is zero, i.e. a byte of the word is CR; the lowest set
        // bit is always at the first such byte (a borrow runs only upwards, from a zero byte).
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        if zero != 0 {
            return Some(at + zero.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let tail = words.remainder();
    tail.iter().position(|&b| b == b'\r').map(|i| at + i)
}

/// The origin-form (`/path?query`) of a target for the upstream: the target itself unless it
/// is absolute-form, whose path and query follow the authority (an empty path is `/`).
/// `None` for an absolute-form target with a query but no path (`http://h?q`), which would
/// need a byte the target does not have.
pub(crate) fn origin_form(target: &[u8]) -> Option<&[u8]> {
    let Some((_, rest)) = split_absolute(target) else {
        return Some(target);
    };
    match rest.first() {
        None => Some(b"/"),
        Some(b'/') => Some(rest),
        Some(_) => None,
    }
}

/// Parses the head at the start of `buf`. `st` carries the scan over calls while the head is
/// incomplete; reset it once the head is consumed.
pub(crate) fn parse(buf: &[u8], limits: &HttpLimits, app: &App, st: &mut ScanState) -> Outcome {
    let len = match scan(buf, limits, st) {
        Scan::Incomplete => return Outcome::Incomplete,
        Scan::Reject(status) => return Outcome::Reject(status),
        Scan::Complete(len) => len,
    };
    let head = &buf[..len];
    // Uninitialised: httparse writes only the fields it finds, and `req.headers` covers only
    // those, so the 4 KiB array is not filled per request.
    let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS_CAP];
    let max_headers = limits.max_headers.clamp(1, MAX_HEADERS_CAP);
    let mut req = httparse::Request::new(&mut []);
    // Default config: for requests, httparse refuses obs-fold, whitespace before the colon and
    // multiple spaces in the request line, and does not skip invalid fields.
    match req.parse_with_uninit_headers(head, &mut headers[..max_headers]) {
        Ok(httparse::Status::Complete(n)) if n == len => {}
        Ok(_) => return Outcome::Reject(400),
        Err(httparse::Error::TooManyHeaders) => return Outcome::Reject(431),
        Err(httparse::Error::Version) => return Outcome::Reject(version_status(head)),
        Err(_) => return Outcome::Reject(400),
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Outcome::Reject(400);
    };
    let (method, target) = (method.as_bytes(), target.as_bytes());
    if target.len() > limits.max_uri_len {
        return Outcome::Reject(414);
    }
    let http10 = version == 0;
    let field_count = req.headers.len();

    let mut hosts = 0u32;
    let mut host_bad = false;
    let mut host: Option<&[u8]> = None;
    let mut length: Option<u64> = None;
    let mut length_bad = false;
    let mut te_seen = false;
    let mut chunked_count = 0u32;
    let mut chunked_last = false;
    let mut te_other = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    let mut expect_other = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            let value = trim_ows(value);
            host = Some(value);
            host_bad |= !value.iter().all(|&b| is_host_byte(b));
        } else if name.eq_ignore_ascii_case(b"content-length") {
            match (content_length(value), length) {
                (None, _) => length_bad = true,
                (Some(n), Some(prev)) if n != prev => length_bad = true,
                (Some(n), _) => length = Some(n),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te_seen = true;
            for coding in list(value) {
                if coding.eq_ignore_ascii_case(b"chunked") {
                    chunked_count += 1;
                    chunked_last = true;
                } else {
                    te_other = true;
                    chunked_last = false;
                }
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in list(value) {
                if option.eq_ignore_ascii_case(b"close") {
                    conn_close = true;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    conn_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            if trim_ows(value).eq_ignore_ascii_case(b"100-continue") {
                expect_continue = true;
            } else {
                expect_other = true;
            }
        }
    }

    // Framing first: anything ambiguous here is a smuggling vector (RFC 9112 §6.1, §6.3).
    let framing = if te_seen {
        if http10 {
            return Outcome::Reject(400); // §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing
        }
        if length.is_some() || length_bad {
            return Outcome::Reject(400); // §6.1: both Content-Length and Transfer-Encoding
        }
        if chunked_count == 0 && !te_other {
            return Outcome::Reject(400); // empty field value
        }
        if chunked_count > 0 && (!chunked_last || chunked_count > 1) {
            return Outcome::Reject(400); // §6.3: chunked is not the final coding
        }
        if te_other {
            return Outcome::Reject(501); // §6.1: a coding we do not implement
        }
        Framing::Chunked
    } else if length_bad {
        return Outcome::Reject(400); // §6.3: invalid or differing Content-Length
    } else {
        match length {
            Some(0) | None => Framing::None,
            Some(n) => Framing::Length(n),
        }
    };
    if (!http10 && hosts != 1) || hosts > 1 || host_bad {
        return Outcome::Reject(400); // §3.2: exactly one valid Host in HTTP/1.1
    }
    // RFC 3986: a URI is ASCII (httparse lets obs-text through); RFC 9112 §3.2: no form of
    // request-target has a fragment (a client strips it), so a `#` is an invalid request-line
    // (§3: SHOULD 400), never a fragment to forward. One pass, without a branch per byte.
    let bad_target = target
        .iter()
        .fold(false, |bad, &b| bad | (b >= 0x80) | (b == b'#'));
    if bad_target {
        return Outcome::Reject(400);
    }
    let Some(path) = route_path(target) else {
        return Outcome::Reject(400);
    };
    // RFC 9112 §3.2.2: an absolute-form target's authority is the request's host (looked
    // for only when there are routes to match).
    let routed = app
        .routes()
        .and_then(|_| app.route(absolute_authority(target).or(host), path));
    if routed.is_none() && !app.knows_method(method) {
        return Outcome::Reject(501); // RFC 9110 §9.1
    }
    if let Framing::Length(n) = framing {
        if n > limits.max_body_len {
            return Outcome::Reject(413);
        }
    }
    if expect_other && !http10 {
        return Outcome::Reject(417); // RFC 9110 §10.1.1
    }
    let handler = match routed {
        Some(handler) => handler,
        None => app.handle(method, path),
    };
    let close = conn_close || (http10 && !conn_keep_alive);
    Outcome::Request(Request {
        len,
        head_only: method == b"HEAD",
        handler,
        framing,
        close,
        keep_alive_10: http10 && !close,
        expect_continue: expect_continue && !http10,
        // Only a forwarded request is ever retried.
        idempotent: matches!(handler, Handler::Upstream(_))
            && crate::proxy::exchange::is_idempotent(method),
        field_count: u8::try_from(field_count).unwrap_or(u8::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The scan as it was first written, one byte per round: the reference the line-at-a-time
    /// `scan` must agree with.
    fn scan_bytewise(buf: &[u8], limits: &HttpLimits, st: &mut ScanState) -> Scan {
        if st.pos > buf.len() {
            *st = ScanState::default();
        }
        let mut i = st.pos;
        let start = match st.start {
            Some(start) => start,
            None => {
                loop {
                    match buf.get(i) {
                        Some(b'\r') => match buf.get(i + 1) {
                            Some(b'\n') => i += 2,
                            Some(_) => return Scan::Reject(400),
                            None => {
                                st.pos = i;
                                return Scan::Incomplete;
                            }
                        },
                        Some(b'\n') => return Scan::Reject(400),
                        Some(_) => break,
                        None => {
                            st.pos = i;
                            return Scan::Incomplete;
                        }
                    }
                    if i >= limits.max_header_bytes {
                        return Scan::Reject(400);
                    }
                }
                st.start = Some(i);
                st.line_start = i;
                i
            }
        };
        let mut line_start = st.line_start;
        let mut request_line_done = st.request_line_done;
        let too_long =
            |request_line_done: bool| Scan::Reject(if request_line_done { 431 } else { 414 });
        while i < buf.len() {
            if i >= limits.max_header_bytes {
                return too_long(request_line_done);
            }
            let b = buf[i];
            if i == line_start && i != start && (b == b' ' || b == b'\t') {
                // RFC 9112 §5.2 obs-fold, or §2.2 whitespace between start line and first field.
                return Scan::Reject(400);
            }
            match b {
                0 => return Scan::Reject(400),
                b'\n' => return Scan::Reject(400), // bare LF: every LF is taken with its CR below
                b'\r' => {
                    if i + 2 > limits.max_header_bytes {
                        // This CRLF would end past the limit, whatever follows.
                        return too_long(request_line_done);
                    }
                    match buf.get(i + 1) {
                        Some(b'\n') => {}
                        Some(_) => return Scan::Reject(400), // bare CR
                        None => break,
                    }
                    if i == line_start && request_line_done {
                        return Scan::Complete(i + 2);
                    }
                    request_line_done = true;
                    i += 2;
                    line_start = i;
                    continue;
                }
                _ => {}
            }
            if !request_line_done
                && i - start > limits.max_uri_len.saturating_add(REQUEST_LINE_SLACK)
            {
                return Scan::Reject(414);
            }
            i += 1;
        }
        if i >= limits.max_header_bytes {
            return too_long(request_line_done);
        }
        st.pos = i;
        st.line_start = line_start;
        st.request_line_done = request_line_done;
        Scan::Incomplete
    }

    /// The fields as httparse reads them (what `fields` did before it split lines itself):
    /// the reference `fields` must agree with.
    fn fields_httparse<'h>(
        head: &'h [u8],
        slots: &mut [(&'h [u8], &'h [u8]); MAX_HEADERS_CAP],
    ) -> Option<Fields<'h>> {
        let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS_CAP];
        let mut req = httparse::Request::new(&mut []);
        match req.parse_with_uninit_headers(head, &mut headers) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return None,
        }
        let mut host = None;
        for (slot, h) in slots.iter_mut().zip(req.headers.iter()) {
            let value = trim_ows(h.value);
            if h.name.eq_ignore_ascii_case("host") {
                host = Some(value);
            }
            *slot = (h.name.as_bytes(), value);
        }
        Some(Fields {
            method: req.method?.as_bytes(),
            target: req.path?.as_bytes(),
            version_minor: req.version?,
            host,
            count: req.headers.len(),
        })
    }

    fn limits(max_header_bytes: usize, max_uri_len: usize) -> HttpLimits {
        HttpLimits {
            max_header_bytes,
            max_uri_len,
            ..HttpLimits::default()
        }
    }

    /// Feeds `input` in pieces ending at `cuts`, as a transport would; returns the first
    /// answer that is not `Incomplete` (or the last one).
    fn scan_in_pieces(
        f: fn(&[u8], &HttpLimits, &mut ScanState) -> Scan,
        input: &[u8],
        cuts: &[usize],
        limits: &HttpLimits,
    ) -> (Scan, ScanState) {
        let mut st = ScanState::default();
        let mut ends: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
        ends.push(input.len());
        ends.sort_unstable();
        let mut last = Scan::Incomplete;
        for end in ends {
            last = f(&input[..end], limits, &mut st);
            if last != Scan::Incomplete {
                break;
            }
        }
        (last, st)
    }

    #[test]
    fn scan_limits_at_their_edges() {
        let l = limits(1024, 8);
        // Refused once the request line runs more than `max_uri_len + REQUEST_LINE_SLACK`
        // bytes past its first byte, with or without its CRLF yet.
        let fits = [b"G".repeat(9 + REQUEST_LINE_SLACK), b"\r\n".to_vec()].concat();
        let long = [b"G".repeat(10 + REQUEST_LINE_SLACK), b"\r\n".to_vec()].concat();
        for input in [&fits[..], &fits[..fits.len() - 2]] {
            assert_eq!(scan(input, &l, &mut ScanState::default()), Scan::Incomplete);
        }
        for input in [&long[..], &long[..long.len() - 2]] {
            assert_eq!(
                scan(input, &l, &mut ScanState::default()),
                Scan::Reject(414)
            );
        }
        // A head of exactly `max_header_bytes` fits; one byte more does not.
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let exact = limits(head.len(), 8);
        assert_eq!(
            scan(head, &exact, &mut ScanState::default()),
            Scan::Complete(head.len())
        );
        let short = limits(head.len() - 1, 8);
        assert_eq!(
            scan(head, &short, &mut ScanState::default()),
            Scan::Reject(431)
        );
        // A tab inside a field value is ordinary; NUL and a bare LF are not.
        let tab = b"GET / HTTP/1.1\r\nHost: \tx\r\n\r\n";
        assert_eq!(
            scan(tab, &l, &mut ScanState::default()),
            Scan::Complete(tab.len())
        );
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: \0x\r\n\r\n"[..],
            b"GET / HTTP/1.1\nHost: x\r\n\r\n",
        ] {
            assert_eq!(scan(bad, &l, &mut ScanState::default()), Scan::Reject(400));
        }
    }

    proptest! {
        /// Line at a time or byte at a time, cut anywhere: the same answer, and the same
        /// state to resume from.
        #[test]
        fn scan_agrees_with_the_bytewise_scan(
            // Mostly ordinary bytes, so that lines grow past the limits too.
            input in prop::collection::vec(
                prop_oneof![
                    2 => Just(b'\r'),
                    2 => Just(b'\n'),
                    1 => Just(0u8),
                    1 => Just(b' '),
                    1 => Just(b'\t'),
                    1 => Just(0x0b),
                    40 => 0x21u8..0x7f,
                ],
                0..200,
            ),
            cuts in prop::collection::vec(0usize..200, 0..4),
            max_header_bytes in 0usize..220,
            max_uri_len in 0usize..60,
        ) {
            let l = limits(max_header_bytes, max_uri_len);
            let lines = scan_in_pieces(scan, &input, &cuts, &l);
            let bytes = scan_in_pieces(scan_bytewise, &input, &cuts, &l);
            prop_assert_eq!(lines, bytes);
        }
    }

    #[test]
    fn find_cr_finds_the_first_cr() {
        for len in 0..40 {
            for at in 0..=len {
                let mut bytes = vec![b'a'; len];
                if at < len {
                    bytes[at] = b'\r';
                }
                // A second CR after the first, and bytes a borrow could confuse, around it.
                if at + 3 < len {
                    bytes[at + 3] = b'\r';
                }
                if at > 0 {
                    bytes[at - 1] = b'\r' + 1;
                }
                let want = bytes.iter().position(|&b| b == b'\r');
                assert_eq!(find_cr(&bytes), want, "len {len}, CR at {at}");
            }
        }
        assert_eq!(
            find_cr(&[0x0c, 0x00, 0x0d, 0x8d, 0xff, 0, 0, 0, 0x0d]),
            Some(2)
        );
    }

    #[test]
    fn fields_of_a_head() {
        let head = b"\r\nGET http://a.example/x?y HTTP/1.0\r\nHost:  a.example\t\r\n\
                     X-A: b:c \r\nX-Empty:\r\n\r\n";
        let mut slots = [(&b""[..], &b""[..]); FEW_FIELDS];
        let f = fields(head, &mut slots).expect("a head parse accepts");
        assert_eq!(
            f,
            Fields {
                method: b"GET",
                target: b"http://a.example/x?y",
                version_minor: 0,
                host: Some(b"a.example"),
                count: 3,
            }
        );
        assert_eq!(
            slots[..3],
            [
                (&b"Host"[..], &b"a.example"[..]),
                (b"X-A", b"b:c"),
                (b"X-Empty", b""),
            ]
        );
        // More fields than slots, or bytes that are not such a head: none.
        let mut two = [(&b""[..], &b""[..]); 2];
        assert_eq!(fields(head, &mut two), None);
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n"[..],
            b"GET / HTTP/1.1\r\nHost a\r\n\r\n",
            b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
            b"GET /\r\n\r\n",
            b"",
        ] {
            assert_eq!(fields(bad, &mut slots), None, "{:?}", bad.escape_ascii());
        }
    }

    /// Heads made of the pieces httparse and `scan` judge: methods, targets, versions, names
    /// and values, with and without the whitespace and bytes they refuse.
    fn arbitrary_head() -> impl Strategy<Value = Vec<u8>> {
        let piece = |chars: &'static [u8], max: usize| {
            prop::collection::vec(prop::sample::select(chars), 0..max)
        };
        let field = (
            // Mostly what is accepted, so that most heads get to the comparison.
            (
                piece(b"HostX-ab!", 8),
                piece(b"HostX-ab!HostX-ab!HostX-ab!: \t", 1),
            )
                .prop_map(|(name, maybe_bad)| [name, maybe_bad].concat()),
            prop::sample::select(vec![&b":"[..], b": ", b": ", b": ", b":\t", b":  ", b" :"]),
            (
                piece(b"ab: \t,\x80\xff\"", 12),
                piece(b"abcdefghijklmnopqrstuvwxyz\x7f", 1),
            )
                .prop_map(|(value, maybe_bad)| [value, maybe_bad].concat()),
        )
            .prop_map(|(name, sep, value)| [&name[..], sep, &value[..], b"\r\n"].concat());
        (
            0usize..3,
            prop::sample::select(vec![&b"GET"[..], b"POST", b"M-1", b"GET", b"G T", b""]),
            prop::sample::select(vec![&b" "[..], b" ", b" ", b" ", b" ", b"  ", b""]),
            (Just(b"/".to_vec()), piece(b"/a?#:h*", 8)).prop_map(|(a, b)| [a, b].concat()),
            prop::sample::select(vec![
                &b" HTTP/1.1"[..],
                b" HTTP/1.1",
                b" HTTP/1.1",
                b" HTTP/1.0",
                b" HTTP/1.2",
                b"",
                b"  HTTP/1.1",
            ]),
            prop::collection::vec(field, 0..6),
        )
            .prop_map(|(empties, method, sp, target, version, fields)| {
                let mut head = b"\r\n".repeat(empties);
                head.extend([method, sp, &target[..], version, b"\r\n"].concat());
                head.extend(fields.concat());
                head.extend(b"\r\n");
                head
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]
        /// Whatever head the server side accepted (the scan, then httparse), splitting its
        /// lines finds what httparse finds.
        #[test]
        fn fields_agrees_with_httparse(head in arbitrary_head()) {
            let l = limits(16 * 1024, 8 * 1024);
            let scanned = scan(&head, &l, &mut ScanState::default());
            let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS_CAP];
            let mut req = httparse::Request::new(&mut []);
            let parsed = req.parse_with_uninit_headers(&head, &mut headers);
            if scanned != Scan::Complete(head.len())
                || parsed != Ok(httparse::Status::Complete(head.len()))
            {
                return Ok(()); // refused: never forwarded
            }
            let mut want_slots = [(&b""[..], &b""[..]); MAX_HEADERS_CAP];
            let want = fields_httparse(&head, &mut want_slots);
            prop_assert!(want.is_some());
            let mut slots = [(&b""[..], &b""[..]); MAX_HEADERS_CAP];
            let got = fields(&head, &mut slots);
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(slots, want_slots);
        }
    }

    #[test]
    fn route_path_forms() {
        assert_eq!(route_path(b"/a?b=c"), Some(&b"/a"[..]));
        assert_eq!(route_path(b"http://example.com/x?y"), Some(&b"/x"[..]));
        assert_eq!(route_path(b"http://example.com"), Some(&b"/"[..]));
        assert_eq!(route_path(b"HTTPS://example.com?q"), Some(&b"/"[..]));
        assert_eq!(route_path(b"*"), Some(&b"*"[..]));
        assert_eq!(route_path(b"example.com:443"), None);
        assert_eq!(route_path(b"ftp://x/y"), None);
    }

    #[test]
    fn version_statuses() {
        assert_eq!(version_status(b"GET / HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(version_status(b"GET / HTTP/1.2\r\n\r\n"), 505);
        assert_eq!(version_status(b"GET / HTTP/2\r\n\r\n"), 505);
        assert_eq!(version_status(b"GET / FOO/1.1\r\n\r\n"), 400);
        assert_eq!(version_status(b"GET /a b HTTP/1.1\r\n\r\n"), 400);
    }
}
