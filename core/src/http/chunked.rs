//! Incremental decoder for the chunked transfer coding (RFC 9112 §7.1).
//!
//! It consumes framing bytes one at a time and stops at every event, and hands data out as a
//! count (the caller copies or skips the bytes), so it never buffers and never needs a chunk
//! to arrive whole. Chunk extensions and trailer fields are tolerated and skipped, with bounded
//! lengths.

/// A decoding step's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// All of the input was framing; more is needed.
    NeedMore,
    /// A chunk-size line announced `n` (> 0) data bytes; data follows.
    ChunkStart(u64),
    /// The data of a chunk and its CRLF are complete.
    ChunkEnd,
    /// The last chunk and the trailer section are complete.
    Done,
    /// The decoder is inside chunk data: `n` bytes remain in this chunk. Take some of them
    /// with [`ChunkedDecoder::take_data`].
    Data(u64),
}

/// Why a chunked body is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkError {
    /// Bad chunk size, bad extension byte, missing CRLF, bare CR or LF, obs-fold in trailers,
    /// over-long chunk line or trailer section, or a size that overflows.
    Syntax,
    /// The chunk sizes add up to more than the body limit.
    TooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Chunk-size line: `digits` hex digits read so far; `ext` once past the size; `cr` after CR.
    Size {
        value: u64,
        digits: u8,
        ext: bool,
        cr: bool,
        line_len: u32,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerLineStart,
    TrailerEndLf,
    TrailerLine {
        cr: bool,
    },
    Done,
}

const SIZE_START: State = State::Size {
    value: 0,
    digits: 0,
    ext: false,
    cr: false,
    line_len: 0,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkedDecoder {
    state: State,
    total: u64,
    trailer_bytes: u32,
    max_body: u64,
    max_line: u32,
    max_trailer: u32,
}

fn hex_value(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

/// Bytes allowed in a chunk extension (names, values, quoted strings, BWS): VCHAR, SP, HTAB,
/// obs-text. Controls are refused.
fn is_ext_byte(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// Bytes allowed in a trailer field line: field-name, ':', field-value.
fn is_field_byte(b: u8) -> bool {
    is_ext_byte(b)
}

impl ChunkedDecoder {
    pub(crate) fn new(max_body: u64, max_line: u32, max_trailer: u32) -> Self {
        ChunkedDecoder {
            state: SIZE_START,
            total: 0,
            trailer_bytes: 0,
            max_body,
            max_line,
            max_trailer,
        }
    }

    /// Marks `n` data bytes (at most the `Data(_)` count) as taken.
    pub(crate) fn take_data(&mut self, n: u64) {
        if let State::Data { remaining } = &mut self.state {
            *remaining -= n.min(*remaining);
            if *remaining == 0 {
                self.state = State::DataCr;
            }
        }
    }

    /// Decodes framing from `input` up to the next event. Returns the bytes consumed (framing
    /// only: data is never consumed here) and the event.
    pub(crate) fn advance(&mut self, input: &[u8]) -> (usize, Result<Event, ChunkError>) {
        let mut i = 0;
        while i < input.len() {
            if let State::Data { remaining } = self.state {
                return (i, Ok(Event::Data(remaining)));
            }
            let b = input[i];
            i += 1;
            match &mut self.state {
                State::Size {
                    value,
                    digits,
                    ext,
                    cr,
                    line_len,
                } => {
                    *line_len = line_len.saturating_add(1);
                    if *line_len > self.max_line {
                        return (i, Err(ChunkError::Syntax));
                    }
                    if *cr {
                        if b != b'\n' {
                            return (i, Err(ChunkError::Syntax));
                        }
                        let size = *value;
                        if size == 0 {
                            self.state = State::TrailerLineStart;
                            continue;
                        }
                        self.total = self.total.saturating_add(size);
                        if self.total > self.max_body {
                            return (i, Err(ChunkError::TooLarge));
                        }
                        self.state = State::Data { remaining: size };
                        return (i, Ok(Event::ChunkStart(size)));
                    }
                    match b {
                        b'\r' if *digits > 0 => *cr = true,
                        _ if !*ext => match hex_value(b) {
                            Some(d) => {
                                // 16 hex digits fill a u64; more is an overflow (or an attack).
                                if *digits >= 16 {
                                    return (i, Err(ChunkError::Syntax));
                                }
                                *digits += 1;
                                *value = (*value << 4) | d;
                            }
                            None if *digits > 0 && (b == b';' || b == b' ' || b == b'\t') => {
                                *ext = true
                            }
                            None => return (i, Err(ChunkError::Syntax)),
                        },
                        _ if is_ext_byte(b) => {}
                        _ => return (i, Err(ChunkError::Syntax)),
                    }
                }
                // `advance` returns before reading a byte in the data state.
                State::Data { .. } => {}
                State::DataCr => {
                    if b != b'\r' {
                        return (i, Err(ChunkError::Syntax));
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return (i, Err(ChunkError::Syntax));
                    }
                    self.state = SIZE_START;
                    return (i, Ok(Event::ChunkEnd));
                }
                State::TrailerLineStart => match b {
                    b'\r' => self.state = State::TrailerEndLf,
                    // Bare LF, or obs-fold (a line starting with whitespace).
                    b'\n' | b' ' | b'\t' => return (i, Err(ChunkError::Syntax)),
                    _ => {
                        if !self.count_trailer_byte() || !is_field_byte(b) {
                            return (i, Err(ChunkError::Syntax));
                        }
                        self.state = State::TrailerLine { cr: false };
                    }
                },
                State::TrailerEndLf => {
                    if b != b'\n' {
                        return (i, Err(ChunkError::Syntax));
                    }
                    self.state = State::Done;
                    return (i, Ok(Event::Done));
                }
                State::TrailerLine { cr } => {
                    let was_cr = *cr;
                    if !self.count_trailer_byte() {
                        return (i, Err(ChunkError::Syntax));
                    }
                    match (was_cr, b) {
                        (true, b'\n') => self.state = State::TrailerLineStart,
                        (false, b'\r') => self.state = State::TrailerLine { cr: true },
                        (false, b) if is_field_byte(b) => {}
                        _ => return (i, Err(ChunkError::Syntax)),
                    }
                }
                State::Done => return (i - 1, Ok(Event::Done)),
            }
        }
        match self.state {
            State::Data { remaining } => (i, Ok(Event::Data(remaining))),
            State::Done => (i, Ok(Event::Done)),
            _ => (i, Ok(Event::NeedMore)),
        }
    }

    fn count_trailer_byte(&mut self) -> bool {
        self.trailer_bytes = self.trailer_bytes.saturating_add(1);
        self.trailer_bytes <= self.max_trailer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns the data or the error.
    fn decode(input: &[u8], step: usize) -> Result<Vec<u8>, ChunkError> {
        let mut d = ChunkedDecoder::new(1 << 20, 64, 256);
        let mut data = Vec::new();
        let mut have = 0; // bytes delivered
        let mut pos = 0; // bytes consumed
        loop {
            let avail = &input[pos..have];
            let (n, ev) = d.advance(avail);
            pos += n;
            match ev? {
                Event::Done => return Ok(data),
                Event::Data(rem) => {
                    let take = (rem as usize).min(have - pos);
                    if take > 0 {
                        data.extend_from_slice(&input[pos..pos + take]);
                        pos += take;
                        d.take_data(take as u64);
                        continue;
                    }
                }
                Event::ChunkStart(_) | Event::ChunkEnd => continue,
                Event::NeedMore => {}
            }
            if have == input.len() {
                return Err(ChunkError::Syntax); // truncated; tests only feed complete bodies
            }
            have = (have + step).min(input.len());
        }
    }

    #[test]
    fn rfc9112_7_1_chunked_with_extensions_and_trailers() {
        let body = b"4;name=value;q=\"x y\"\r\nWiki\r\n5 ; ext\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\nX-T: 1\r\n\r\n";
        for step in [1, 2, 3, 7, 1000] {
            assert_eq!(decode(body, step).unwrap(), b"Wikipedia in\r\n\r\nchunks.");
        }
    }

    #[test]
    fn rfc9112_7_1_bad_framing_is_refused() {
        let cases: &[&[u8]] = &[
            b"\r\n",                    // missing size
            b"g\r\n",                   // not hex
            b"4\nWiki\r\n0\r\n\r\n",    // bare LF after size
            b"4\rWiki\r\n0\r\n\r\n",    // bare CR
            b"4\r\nWikiX\r\n0\r\n\r\n", // data longer than size
            b"4\r\nWiki\n0\r\n\r\n",    // bare LF after data
            b"0\r\nX: y\n\r\n",         // bare LF in trailer
            b"0\r\n folded\r\n\r\n",    // obs-fold in trailers
            b"10000000000000000\r\n",   // 17 hex digits: overflow
            b"-1\r\n",                  // sign
            b"+1\r\n",                  // sign
            b"0x1\r\n",                 // 0x prefix: 'x' is not hex nor extension start
            b"1;\x00\r\n",              // control byte in extension
        ];
        for case in cases {
            assert_eq!(
                decode(case, 1000),
                Err(ChunkError::Syntax),
                "{:?}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn chunk_sizes_adding_up_past_the_limit_are_too_large() {
        let mut d = ChunkedDecoder::new(10, 64, 256);
        assert_eq!(d.advance(b"b\r\n"), (3, Err(ChunkError::TooLarge)));
        let mut d = ChunkedDecoder::new(10, 64, 256);
        assert_eq!(
            d.advance(b"ffffffffffffffff\r\n").1,
            Err(ChunkError::TooLarge)
        );
    }

    #[test]
    fn over_long_chunk_line_is_refused() {
        let mut line = b"1;".to_vec();
        line.extend(std::iter::repeat_n(b'a', 100));
        assert_eq!(decode(&line, 1000), Err(ChunkError::Syntax));
    }
}
