//! The request, serialised once before the run. Every request of a run is the same bytes, so a
//! connection's unsent requests are a byte count into a buffer of repeated copies: writing
//! them costs no formatting and no allocation.

use crate::response::pattern;
use crate::scenario::Scenario;

/// Copies are added to the write buffer up to this size (a pipeline of small requests goes out
/// in one write; large requests go one per write).
const BATCH_BYTES: usize = 256 * 1024;

/// The request bytes, repeated.
#[derive(Debug, Clone)]
pub struct RequestBytes {
    len: usize,
    /// At least one copy; more when small (see [`BATCH_BYTES`]), up to `depth + 1`.
    repeated: Box<[u8]>,
}

impl RequestBytes {
    /// The request of `scenario`, repeated for up to `depth` requests in one write.
    pub fn new(scenario: &Scenario, depth: usize) -> RequestBytes {
        let one = serialise(scenario);
        let copies = (BATCH_BYTES / one.len()).clamp(1, depth + 1);
        RequestBytes {
            len: one.len(),
            repeated: one.repeat(copies).into_boxed_slice(),
        }
    }

    /// Length of one request.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true (a request has at least a request line); for clippy's `len` convention.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One request.
    pub fn one(&self) -> &[u8] {
        &self.repeated[..self.len]
    }

    /// The next bytes to write when `unsent` bytes of whole requests remain (the oldest
    /// possibly partly written): a prefix of them, as long as the buffer allows.
    pub fn next_chunk(&self, unsent: usize) -> &[u8] {
        let start = (self.len - unsent % self.len) % self.len;
        let end = (start + unsent).min(self.repeated.len());
        &self.repeated[start..end]
    }
}

/// `METHOD PATH HTTP/1.1`, `Host`, the extra headers, `Content-Length` when there is a body
/// (or the method usually has one), `Connection: close` when churning, then the body.
pub fn serialise(s: &Scenario) -> Vec<u8> {
    let mut r = Vec::with_capacity(128 + s.body_size);
    r.extend_from_slice(format!("{} {} HTTP/1.1\r\n", s.method, s.target.path).as_bytes());
    if !s
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("host"))
    {
        r.extend_from_slice(format!("Host: {}\r\n", s.target.host).as_bytes());
    }
    for (name, value) in &s.headers {
        r.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if s.body_size > 0 || matches!(s.method.as_str(), "POST" | "PUT" | "PATCH") {
        r.extend_from_slice(format!("Content-Length: {}\r\n", s.body_size).as_bytes());
    }
    if s.churn {
        r.extend_from_slice(b"Connection: close\r\n");
    }
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(&pattern(s.body_size));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Target;

    fn scenario() -> Scenario {
        Scenario::new(Target::from_url("http://127.0.0.1:8080/echo").unwrap())
    }

    #[test]
    fn get_and_post_with_a_pattern_body() {
        let s = scenario();
        assert_eq!(
            serialise(&s),
            b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n".to_vec()
        );
        let mut s = scenario();
        s.method = "POST".into();
        s.body_size = 30;
        s.churn = true;
        s.headers = vec![
            ("Host".into(), "example".into()),
            ("X-Test".into(), "1".into()),
        ];
        assert_eq!(
            String::from_utf8(serialise(&s)).unwrap(),
            "POST /echo HTTP/1.1\r\nHost: example\r\nX-Test: 1\r\nContent-Length: 30\r\n\
             Connection: close\r\n\r\nabcdefghijklmnopqrstuvwxyzabcd"
        );
    }

    #[test]
    fn unsent_requests_are_written_from_the_repeated_buffer() {
        let r = RequestBytes::new(&scenario(), 4);
        let one = r.one().to_vec();
        let mut stream = Vec::new();
        // Four requests, written in odd-sized pieces.
        let mut unsent = 4 * r.len();
        while unsent > 0 {
            let chunk = r.next_chunk(unsent);
            let n = chunk.len().min(7);
            stream.extend_from_slice(&chunk[..n]);
            unsent -= n;
        }
        assert_eq!(stream, one.repeat(4));
        // A partly written request followed by new ones.
        let chunk = r.next_chunk(r.len() * 2 + 5);
        assert_eq!(&chunk[..5], &one[one.len() - 5..]);
        assert_eq!(chunk.len(), r.len() * 2 + 5);
    }

    #[test]
    fn large_requests_go_one_write_each() {
        let mut s = scenario();
        s.method = "POST".into();
        s.body_size = 1 << 20;
        let r = RequestBytes::new(&s, 8);
        assert_eq!(r.next_chunk(3 * r.len()).len(), r.len());
        assert_eq!(r.next_chunk(r.len() + 10), &r.one()[r.len() - 10..]);
    }
}
