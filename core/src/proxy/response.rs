//! An upstream's response, sans-IO: its head parsed ([`parse_head`]), how its body ends
//! ([`ResponseFraming`], RFC 9112 §6.3), the body's framing taken apart as it streams
//! ([`ResponseBody`]), and the head the client gets ([`write_client_head`]).
//!
//! Call order for one proxied exchange: append what the upstream sent and call [`parse_head`]
//! until it is `Complete` (an interim 1xx is forwarded or dropped, its `head_len` consumed, and
//! the next head parsed); write the client's head with [`write_client_head`]; feed the bytes
//! after the head to a [`ResponseBody`] made from the head's framing until it says `complete`;
//! if the upstream closes first, [`ResponseBody::peer_closed`] says whether that ended the
//! body or cut it. A body re-framed as chunked for the client is written with
//! [`write_chunk_start`], [`CHUNK_END`] and [`LAST_CHUNK`].
//!
//! Every [`ResponseError`] is a 502 for the client, sent before any byte of the response: the
//! head is checked whole before anything is written. A [`BodyError`] arrives after the client's
//! head went out, so the caller aborts the client's stream (closes it without the chunked
//! terminator, or short of its Content-Length) and never makes a cut body look complete.
//!
//! Nothing here allocates: the head's fields stay borrowed from the caller's bytes (the caller
//! lends the slots httparse fills, [`HeaderSlots`]), the body decoder counts bytes in the
//! caller's slices, and the client's head is written into the caller's bounded buffer.
//!
//! Departures and decisions, each named where it happens: Transfer-Encoding in an HTTP/1.0
//! response is refused (§6.1 calls the framing faulty); `chunked` anywhere but once, last, is
//! refused; a bare LF ends a line of the head (RFC 9112 §2.2 lets a recipient accept it, and
//! the client's head is written anew with CRLF); the upstream's trailer fields are dropped;
//! the head is parsed again from its first byte on each call (an upstream's head normally
//! arrives in one or two segments; the server side's resumable scan is for clients).

use std::mem::MaybeUninit;

use super::{BufferFull, HeadBuf};
use crate::app::{is_tchar, reason_phrase};
use crate::http::chunked::{ChunkError, ChunkedDecoder, Event};
use crate::http::syntax::{content_length, list};

/// Upper bound on header fields httparse is given room for.
pub const MAX_HEADERS_CAP: usize = 128;

/// Bounds on what an upstream may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamLimits {
    /// Status line + header fields + the empty line; a head not complete within this many
    /// bytes is refused.
    pub max_head_bytes: usize,
    /// Header fields per response (at most [`MAX_HEADERS_CAP`]).
    pub max_headers: usize,
    /// Body length: a larger Content-Length is refused with the head; a chunked or
    /// close-delimited body that grows past it is cut.
    pub max_body_len: u64,
    /// A chunk-size line including extensions.
    pub max_chunk_line_len: u32,
    /// The trailer section of a chunked body.
    pub max_trailer_bytes: u32,
}

impl Default for UpstreamLimits {
    fn default() -> Self {
        UpstreamLimits {
            max_head_bytes: 32 * 1024,
            max_headers: 100,
            max_body_len: 1 << 30,
            max_chunk_line_len: 1024,
            max_trailer_bytes: 8 * 1024,
        }
    }
}

/// The request the response answers, as far as the response's framing cares (RFC 9112 §6.3
/// rule 1: a response to HEAD has no body whatever its fields say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Head,
    Other,
}

/// How the upstream's response body ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body: a response to HEAD, 1xx, 204, 304 (rule 1).
    None,
    /// Exactly this many bytes (rule 6).
    Length(u64),
    /// The chunked transfer coding (rule 4).
    Chunked,
    /// Until the upstream closes (rule 4 without a final `chunked`, rule 8).
    UntilClose,
}

/// Why an upstream's response head is refused; each one is a 502 for the client and the end
/// of the upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("the response head is not complete within the head limit")]
    HeadTooLarge,
    #[error("more header fields than the limit")]
    TooManyHeaders,
    #[error("malformed status line")]
    BadStatusLine,
    #[error("HTTP version other than HTTP/1.0 or HTTP/1.1")]
    BadVersion,
    #[error("status code {0} outside 100..=599")]
    BadStatus(u16),
    #[error("malformed header field")]
    BadHeader,
    #[error("obsolete line folding (obs-fold) in the header section")]
    ObsFold,
    #[error("101 Switching Protocols, but no upgrade was requested")]
    UnrequestedUpgrade,
    #[error("Transfer-Encoding in an HTTP/1.0 response")]
    TransferEncodingInHttp10,
    #[error("chunked is not the single, final transfer coding")]
    BadTransferEncoding,
    #[error("invalid or differing Content-Length")]
    BadContentLength,
    #[error("Content-Length over the body limit")]
    BodyTooLarge,
}

/// Room for the header fields httparse finds, lent to [`parse_head`]: the parsed head points
/// into it, so one parse needs no allocation and no 4 KiB of initialisation.
pub struct HeaderSlots<'b>([MaybeUninit<httparse::Header<'b>>; MAX_HEADERS_CAP]);

impl Default for HeaderSlots<'_> {
    fn default() -> Self {
        HeaderSlots([const { MaybeUninit::uninit() }; MAX_HEADERS_CAP])
    }
}

impl HeaderSlots<'_> {
    pub fn new() -> Self {
        Self::default()
    }
}

/// What [`parse_head`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadParse<'b, 'h> {
    /// No complete head yet; call again with more bytes appended.
    Partial,
    Complete(UpstreamHead<'b, 'h>),
}

/// An upstream response head that was accepted. Its fields borrow the received bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamHead<'b, 'h> {
    /// Bytes of the head, including the empty line that ends it.
    pub head_len: usize,
    pub status: u16,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version_minor: u8,
    /// The reason phrase as received (possibly empty).
    pub reason: &'b [u8],
    pub framing: ResponseFraming,
    /// Whether the upstream connection can carry another request once this body is read
    /// (RFC 9112 §9.3).
    pub upstream_keep_alive: bool,
    /// A valid Content-Length (one value or a list of identical ones), whether or not it
    /// frames the body: for HEAD and 304 it is metadata the client gets (RFC 9110 §8.6).
    pub content_length: Option<u64>,
    /// Transfer codings other than `chunked` were applied: the body stays coded and the client
    /// must be told (see [`write_client_head`]).
    pub transfer_coded: bool,
    request: RequestKind,
    /// A Connection field is present: only then can a field be named by one.
    has_connection: bool,
    /// A Date field is present (else the client's head gets the gateway's, RFC 9110 §6.6.1).
    has_date: bool,
    fields: &'h [httparse::Header<'b>],
}

/// Field names a proxy never forwards (RFC 9110 §7.6.1, RFC 9112 §6.1, §7.4): the
/// connection's own options, and the message framing, which is written again for the client.
const HOP_BY_HOP: [&[u8]; 8] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"upgrade",
    b"transfer-encoding",
    b"content-length",
];

/// Names the reason an httparse refusal gets. Only on the error path: a line that starts with
/// whitespace inside the head is obs-fold (RFC 9112 §5.2), which httparse reports as a bad
/// header name.
fn refusal(e: httparse::Error, window: &[u8]) -> ResponseError {
    match e {
        httparse::Error::Version => ResponseError::BadVersion,
        httparse::Error::Status => ResponseError::BadStatusLine,
        httparse::Error::TooManyHeaders => ResponseError::TooManyHeaders,
        httparse::Error::HeaderName => {
            let folded = window
                .windows(2)
                .any(|w| w[0] == b'\n' && (w[1] == b' ' || w[1] == b'\t'));
            if folded {
                ResponseError::ObsFold
            } else {
                ResponseError::BadHeader
            }
        }
        _ => ResponseError::BadHeader,
    }
}

/// The reason phrase as received: httparse hands an empty one for obs-text, which a proxy
/// forwards unchanged (RFC 9112 §4).
fn raw_reason(head: &[u8]) -> &[u8] {
    let mut line = head;
    while let [b'\r' | b'\n', rest @ ..] = line {
        line = rest; // empty lines before the status line, which httparse skips too
    }
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    let line = &line[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // "HTTP/1.x SP ddd SP reason": the status line was checked by httparse.
    line.get(13..).unwrap_or(b"")
}

/// Parses the upstream's response head at the start of `buf` (all bytes received so far,
/// contiguous). `Partial` until the head is complete; refused once `max_head_bytes` arrived
/// without its end. The answer does not depend on how the bytes were split.
pub fn parse_head<'b, 'h>(
    buf: &'b [u8],
    request: RequestKind,
    limits: &UpstreamLimits,
    slots: &'h mut HeaderSlots<'b>,
) -> Result<HeadParse<'b, 'h>, ResponseError> {
    // Only the first `max_head_bytes` are looked at, so a head that ends past the limit is
    // refused the same whether its end has arrived or not.
    let window = &buf[..buf.len().min(limits.max_head_bytes)];
    let max_headers = limits.max_headers.min(MAX_HEADERS_CAP);
    let mut resp = httparse::Response::new(&mut []);
    // Default config: obs-fold, whitespace before a colon and extra spaces in the status line
    // are refused, invalid fields are not skipped.
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        window,
        &mut slots.0[..max_headers],
    );
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_head_bytes => {
            return Err(ResponseError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(HeadParse::Partial),
        Err(e) => return Err(refusal(e, window)),
    };
    let (Some(version_minor), Some(status)) = (resp.version, resp.code) else {
        return Err(ResponseError::BadStatusLine);
    };
    let fields: &'h [httparse::Header<'b>] = resp.headers;
    if !(100..=599).contains(&status) {
        return Err(ResponseError::BadStatus(status)); // RFC 9110 §15: three digits, 1xx..5xx
    }
    if status == 101 {
        // RFC 9110 §15.2.2: only an answer to Upgrade, and the proxy never asks for one.
        return Err(ResponseError::UnrequestedUpgrade);
    }
    let http10 = version_minor == 0;

    let mut length: Option<u64> = None;
    let mut length_bad = false;
    let mut te_seen = false;
    let mut chunked_count = 0u32;
    let mut chunked_last = false;
    let mut other_coding = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut has_connection = false;
    let mut has_date = false;
    for f in fields {
        let name = f.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            match (content_length(f.value), length) {
                (None, _) => length_bad = true,
                (Some(n), Some(prev)) if n != prev => length_bad = true,
                (Some(n), _) => length = Some(n),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te_seen = true;
            for coding in list(f.value) {
                let chunked = coding.eq_ignore_ascii_case(b"chunked");
                chunked_count += u32::from(chunked);
                other_coding |= !chunked;
                chunked_last = chunked;
            }
        } else if name.eq_ignore_ascii_case(b"date") {
            has_date = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            has_connection = true;
            for option in list(f.value) {
                conn_close |= option.eq_ignore_ascii_case(b"close");
                conn_keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let content_length = if length_bad { None } else { length };

    // RFC 9112 §6.3, rule by rule (rule 2, CONNECT, never applies: the proxy does not tunnel).
    let bodiless = request == RequestKind::Head || status < 200 || status == 204 || status == 304;
    let (framing, framing_allows_reuse) = if bodiless {
        // Rule 1: the body ends with the head, whatever Content-Length or Transfer-Encoding
        // say (for HEAD and 304 they describe the representation, not this message).
        (ResponseFraming::None, true)
    } else if te_seen {
        if http10 {
            // §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing (a 1.0
            // sender cannot have chunked it); it cannot be delimited, so it is refused.
            return Err(ResponseError::TransferEncodingInHttp10);
        }
        if chunked_count > 1 || (chunked_count == 1 && !chunked_last) {
            // §7: chunked at most once; a non-final chunked could not be framed again for the
            // client without applying chunked twice.
            return Err(ResponseError::BadTransferEncoding);
        }
        if chunked_count == 0 && !other_coding {
            return Err(ResponseError::BadTransferEncoding); // empty field value
        }
        // Rule 3: Transfer-Encoding overrides Content-Length, and a message with both may be
        // an attempt at smuggling: the upstream connection is not used again.
        let reuse = length.is_none() && !length_bad;
        if chunked_last {
            (ResponseFraming::Chunked, reuse) // rule 4
        } else {
            (ResponseFraming::UntilClose, false) // rule 4, response without a final chunked
        }
    } else if length_bad {
        // Rule 5: a proxy closes the upstream, discards the response and answers 502.
        return Err(ResponseError::BadContentLength);
    } else if let Some(n) = length {
        if n > limits.max_body_len {
            return Err(ResponseError::BodyTooLarge);
        }
        (ResponseFraming::Length(n), true) // rule 6
    } else {
        (ResponseFraming::UntilClose, false) // rule 8
    };
    // RFC 9112 §9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive".
    let persistent = if http10 {
        conn_keep_alive && !conn_close
    } else {
        !conn_close
    };
    Ok(HeadParse::Complete(UpstreamHead {
        head_len,
        status,
        version_minor,
        reason: raw_reason(&window[..head_len]),
        framing,
        upstream_keep_alive: persistent && framing_allows_reuse,
        content_length,
        // A bodiless response's codings describe a body it does not carry.
        transfer_coded: !bodiless && te_seen && other_coding,
        request,
        has_connection,
        has_date,
        fields,
    }))
}

impl<'b> UpstreamHead<'b, '_> {
    /// An interim response (1xx other than 101, which is refused): the final one follows on
    /// the same connection (RFC 9110 §15.2). The caller forwards it (not to an HTTP/1.0
    /// client) or drops it, consumes `head_len` and parses the next head.
    pub fn is_interim(&self) -> bool {
        self.status < 200
    }

    /// The header fields as received, in order.
    pub fn fields(&self) -> impl Iterator<Item = (&'b [u8], &'b [u8])> + '_ {
        self.fields.iter().map(|f| (f.name.as_bytes(), f.value))
    }

    /// The fields a proxy forwards (RFC 9110 §7.6.1): in order, without the hop-by-hop ones,
    /// without those the Connection field names, and without the framing fields.
    pub fn end_to_end_fields(&self) -> impl Iterator<Item = (&'b [u8], &'b [u8])> + '_ {
        self.fields().filter(|(name, _)| {
            !HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
                && !self.named_by_connection(name)
        })
    }

    fn named_by_connection(&self, name: &[u8]) -> bool {
        self.has_connection
            && self
                .fields()
                .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
                .any(|(_, v)| list(v).any(|option| option.eq_ignore_ascii_case(name)))
    }

    /// The transfer codings other than `chunked`, in the order they were applied.
    fn other_codings(&self) -> impl Iterator<Item = &'b [u8]> + '_ {
        self.fields()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"transfer-encoding"))
            .flat_map(|(_, v)| list(v))
            .filter(|c| !c.eq_ignore_ascii_case(b"chunked"))
    }

    fn has_body(&self) -> bool {
        self.framing != ResponseFraming::None
    }
}

/// A decoding step of [`ResponseBody::advance`]: the input starts with `framing` bytes to
/// drop, then `data` bytes of body to forward. When `complete`, the body ended there and any
/// bytes after `framing + data` are not part of it. Otherwise call again with the rest of
/// the input (if any is left) or with more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyStep {
    pub framing: usize,
    pub data: usize,
    pub complete: bool,
}

/// Why a response body is cut after its head went out; the caller aborts the client's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("malformed chunked framing")]
    BadChunk,
    #[error("body over the body limit")]
    TooLarge,
    #[error("the upstream closed before the body's end")]
    Truncated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
    UntilClose { received: u64 },
    Complete,
    Failed(BodyError),
}

/// Takes a response body's framing apart as its bytes arrive, by the head's framing. It never
/// buffers: it says, for the caller's slice, which bytes are framing and which are body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseBody {
    state: BodyState,
    max_body_len: u64,
}

impl ResponseBody {
    pub fn new(framing: ResponseFraming, limits: &UpstreamLimits) -> Self {
        let state = match framing {
            ResponseFraming::None | ResponseFraming::Length(0) => BodyState::Complete,
            ResponseFraming::Length(n) => BodyState::Length { remaining: n },
            ResponseFraming::Chunked => BodyState::Chunked(ChunkedDecoder::new(
                limits.max_body_len,
                limits.max_chunk_line_len,
                limits.max_trailer_bytes,
            )),
            ResponseFraming::UntilClose => BodyState::UntilClose { received: 0 },
        };
        ResponseBody {
            state,
            max_body_len: limits.max_body_len,
        }
    }

    pub fn is_complete(&self) -> bool {
        self.state == BodyState::Complete
    }

    /// Decodes from the start of `input` up to the next piece of body data (see [`BodyStep`]).
    /// An error is final: every later call returns it again.
    pub fn advance(&mut self, input: &[u8]) -> Result<BodyStep, BodyError> {
        let step = |framing, data, complete| BodyStep {
            framing,
            data,
            complete,
        };
        match &mut self.state {
            BodyState::Complete => Ok(step(0, 0, true)),
            BodyState::Failed(e) => Err(*e),
            BodyState::Length { remaining } => {
                let take = (input.len() as u64).min(*remaining);
                *remaining -= take;
                let done = *remaining == 0;
                if done {
                    self.state = BodyState::Complete;
                }
                Ok(step(0, take as usize, done))
            }
            BodyState::UntilClose { received } => {
                *received = received.saturating_add(input.len() as u64);
                if *received > self.max_body_len {
                    return self.fail(BodyError::TooLarge);
                }
                Ok(step(0, input.len(), false))
            }
            BodyState::Chunked(decoder) => {
                let mut framing = 0;
                // Each round consumes at least one framing byte or returns: bounded by input.
                loop {
                    let (n, event) = decoder.advance(&input[framing..]);
                    framing += n;
                    match event {
                        Err(ChunkError::Syntax) => return self.fail(BodyError::BadChunk),
                        Err(ChunkError::TooLarge) => return self.fail(BodyError::TooLarge),
                        Ok(Event::NeedMore) => return Ok(step(framing, 0, false)),
                        Ok(Event::ChunkStart(_) | Event::ChunkEnd) => {}
                        Ok(Event::Data(remaining)) => {
                            let take = ((input.len() - framing) as u64).min(remaining);
                            decoder.take_data(take);
                            return Ok(step(framing, take as usize, false));
                        }
                        Ok(Event::Done) => {
                            self.state = BodyState::Complete;
                            return Ok(step(framing, 0, true));
                        }
                    }
                }
            }
        }
    }

    /// The upstream closed its side after every byte it sent was given to `advance`. A
    /// close-delimited body ends here; a Length or chunked body short of its end is
    /// `Truncated`, and the client must see an aborted stream, never a clean end.
    pub fn peer_closed(&mut self) -> Result<(), BodyError> {
        match self.state {
            BodyState::Complete => Ok(()),
            BodyState::UntilClose { .. } => {
                self.state = BodyState::Complete;
                Ok(())
            }
            BodyState::Failed(e) => Err(e),
            BodyState::Length { .. } | BodyState::Chunked(_) => self.fail(BodyError::Truncated),
        }
    }

    fn fail<T>(&mut self, e: BodyError) -> Result<T, BodyError> {
        self.state = BodyState::Failed(e);
        Err(e)
    }
}

/// How the client's copy of the body is delimited, chosen by the caller: the upstream's
/// length when it sent one, chunked to re-frame a chunked or close-delimited body for an
/// HTTP/1.1 client, close-delimited for an HTTP/1.0 client (RFC 9112 §6.1: never
/// Transfer-Encoding to 1.0), `None` for a response without a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFraming {
    Length(u64),
    Chunked,
    Close,
    None,
}

/// The `received-by` of our `Via` entry (RFC 9110 §7.6.3): a pseudonym or `host[:port]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViaName<'a>(&'a [u8]);

impl<'a> ViaName<'a> {
    /// `None` unless `name` is a token, or a host with an optional port.
    pub fn new(name: &'a [u8]) -> Option<Self> {
        let ok = !name.is_empty()
            && name
                .iter()
                .all(|&b| is_tchar(b) || b == b':' || b == b'[' || b == b']');
        ok.then_some(ViaName(name))
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

/// What a route changes in the heads its clients get, besides framing and persistence: this
/// hop's `Via` entry, on every head, and the route's `response_set_headers` and
/// `response_remove_headers`, on final responses only. An interim response (1xx) is relayed
/// with only `Via` added: the fields a route sets describe the response, which the final head
/// carries, and a field it removes would be sent again there anyway.
///
/// Built by `ForwardRules::client_head_rules` from a validated configuration: no rule names
/// a field the gateway writes itself (framing, hop-by-hop, `Via`, `Date`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHeadRules<'a> {
    via: ViaName<'a>,
    /// `Name: value\r\n` for each field set, in order.
    set_lines: &'a [u8],
    /// The names of the fields set and removed: the upstream's fields of these names are not
    /// copied.
    ruled_names: &'a [Box<[u8]>],
}

impl<'a> ClientHeadRules<'a> {
    /// Only this hop's `Via`: the upstream's other end-to-end fields pass unchanged.
    pub fn new(via: ViaName<'a>) -> Self {
        ClientHeadRules {
            via,
            set_lines: &[],
            ruled_names: &[],
        }
    }

    /// With fields set (`set_lines`: `Name: value\r\n` lines) and removed (`ruled_names`:
    /// the names of both). The caller has validated both (`ForwardRules::new`).
    pub(super) fn with_fields(
        via: ViaName<'a>,
        set_lines: &'a [u8],
        ruled_names: &'a [Box<[u8]>],
    ) -> Self {
        ClientHeadRules {
            via,
            set_lines,
            ruled_names,
        }
    }

    pub fn via(&self) -> ViaName<'a> {
        self.via
    }

    /// Bytes the rules may add to a head: the lines set (a removal only shortens it).
    pub fn added_len(&self) -> usize {
        self.set_lines.len()
    }

    fn removes(&self, name: &[u8]) -> bool {
        self.ruled_names
            .iter()
            .any(|ruled| name.eq_ignore_ascii_case(ruled))
    }
}

/// What becomes of the client's connection after this response (RFC 9112 §9.3, §9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientConnection {
    /// HTTP/1.1 persistence: no Connection field.
    Persistent,
    /// An HTTP/1.0 client that asked for `keep-alive` keeps its connection: it is told so
    /// (RFC 9112 Appendix C.2.2), or it would wait for the close.
    KeepAlive10,
    /// `Connection: close`, then the gateway closes (§9.6).
    Close,
}

/// What the caller decided about the client's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHead<'a> {
    pub framing: ClientFraming,
    /// `ClientFraming::Close` always sends `Connection: close`, whatever this says.
    pub connection: ClientConnection,
    pub rules: ClientHeadRules<'a>,
    /// The gateway's clock as an IMF-fixdate (`App::date`). RFC 9110 §6.6.1: a recipient with a
    /// clock that forwards a response without `Date` MUST append one; it is added then.
    pub date: Option<&'a [u8]>,
}

/// Why the client's head could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientHeadError {
    #[error("the client's head does not fit the buffer")]
    HeadTooLarge,
    #[error("the client framing does not fit the upstream response")]
    FramingMismatch,
}

impl From<BufferFull> for ClientHeadError {
    fn from(_: BufferFull) -> Self {
        ClientHeadError::HeadTooLarge
    }
}

/// Writes the head the client gets into `out` and returns its length: `HTTP/1.1`, the status
/// and the upstream's reason phrase (a standard one if it sent none), the end-to-end fields
/// in order, the framing `client.framing` asks for, the Connection field `client.connection`
/// asks for, our `Via` entry with the protocol version received from the upstream, and on a
/// final response the route's fields (`client.rules`: the upstream's fields of the names it
/// sets or removes are left out, the fields it sets written last).
///
/// With `ClientFraming::None`, a response to HEAD and a 304 keep the upstream's valid
/// Content-Length as metadata (RFC 9110 §8.6); 1xx and 204 never carry one. A body with
/// transfer codings other than `chunked` keeps them in `Transfer-Encoding` (then `chunked`
/// for a chunked client), which a Content-Length cannot describe.
pub fn write_client_head(
    head: &UpstreamHead<'_, '_>,
    client: &ClientHead<'_>,
    out: &mut [u8],
) -> Result<usize, ClientHeadError> {
    let mismatch = match client.framing {
        ClientFraming::None => head.has_body(),
        ClientFraming::Length(n) => {
            !head.has_body()
                || head.transfer_coded
                || matches!(head.framing, ResponseFraming::Length(m) if m != n)
        }
        ClientFraming::Chunked | ClientFraming::Close => !head.has_body(),
    };
    if mismatch {
        return Err(ClientHeadError::FramingMismatch);
    }
    let mut out = HeadBuf::new(out);
    let reason = if head.reason.is_empty() {
        reason_phrase(head.status).as_bytes()
    } else {
        head.reason
    };
    out.put(b"HTTP/1.1 ")?;
    out.put_decimal(u64::from(head.status))?;
    out.put(b" ")?;
    out.put(reason)?;
    out.put(b"\r\n")?;
    let ruled = !head.is_interim();
    for (name, value) in head.end_to_end_fields() {
        if ruled && client.rules.removes(name) {
            continue;
        }
        out.put(name)?;
        out.put(b": ")?;
        out.put(value)?;
        out.put(b"\r\n")?;
    }
    if let (false, Some(date)) = (head.has_date, client.date) {
        out.put(b"Date: ")?;
        out.put(date)?;
        out.put(b"\r\n")?;
    }
    let coded = |out: &mut HeadBuf<'_>, chunked: bool| -> Result<(), ClientHeadError> {
        out.put(b"Transfer-Encoding: ")?;
        for (i, coding) in head.other_codings().enumerate() {
            if i > 0 {
                out.put(b", ")?;
            }
            out.put(coding)?;
        }
        if chunked {
            out.put(b", chunked")?;
        }
        Ok(out.put(b"\r\n")?)
    };
    match client.framing {
        ClientFraming::Length(n) => {
            out.put(b"Content-Length: ")?;
            out.put_decimal(n)?;
            out.put(b"\r\n")?;
        }
        ClientFraming::Chunked if head.transfer_coded => coded(&mut out, true)?,
        ClientFraming::Chunked => out.put(b"Transfer-Encoding: chunked\r\n")?,
        ClientFraming::Close if head.transfer_coded => coded(&mut out, false)?,
        ClientFraming::Close => {}
        ClientFraming::None => {
            // 1xx and 204 never carry Content-Length; HEAD and 304 may, describing the
            // representation.
            let metadata = (head.request == RequestKind::Head || head.status == 304)
                && head.status >= 200
                && head.status != 204;
            if let (true, Some(n)) = (metadata, head.content_length) {
                out.put(b"Content-Length: ")?;
                out.put_decimal(n)?;
                out.put(b"\r\n")?;
            }
        }
    }
    match (client.connection, client.framing) {
        (ClientConnection::Close, _) | (_, ClientFraming::Close) => {
            out.put(b"Connection: close\r\n")?
        }
        (ClientConnection::KeepAlive10, _) => out.put(b"Connection: keep-alive\r\n")?,
        (ClientConnection::Persistent, _) => {}
    }
    out.put(if head.version_minor == 0 {
        b"Via: 1.0 "
    } else {
        b"Via: 1.1 "
    })?;
    out.put(client.rules.via.0)?;
    out.put(b"\r\n")?;
    if ruled {
        out.put(client.rules.set_lines)?;
    }
    out.put(b"\r\n")?;
    Ok(out.len())
}

/// Ends a chunk's data in the client's re-framed body.
pub const CHUNK_END: &[u8] = b"\r\n";
/// Ends the client's re-framed body: the last chunk and an empty trailer section (the
/// upstream's trailer fields are not forwarded, as its `Trailer` field is not).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Writes the chunk-size line (RFC 9112 §7.1) that starts a chunk of `len` bytes of the
/// client's re-framed body; the data follows, then [`CHUNK_END`]. Returns its length, or
/// `None` if `out` is too small. For `len` 0 it writes nothing: a zero-size chunk would end
/// the body, which only [`LAST_CHUNK`] may do.
pub fn write_chunk_start(len: u64, out: &mut [u8]) -> Option<usize> {
    if len == 0 {
        return Some(0);
    }
    let digits = (64 - len.leading_zeros()).div_ceil(4) as usize;
    let line = out.get_mut(..digits + 2)?;
    for (i, d) in line[..digits].iter_mut().enumerate() {
        let nibble = (len >> (4 * (digits - 1 - i))) & 0xf;
        *d = b"0123456789abcdef"[nibble as usize];
    }
    line[digits..].copy_from_slice(b"\r\n");
    Some(digits + 2)
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
