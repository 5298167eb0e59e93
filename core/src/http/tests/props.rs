//! Property tests: any input, cut anywhere, gives well-formed responses; and the checker
//! that says what well-formed is.

use super::*;
use proptest::prelude::*;
use proptest::sample::Index;

/// Checks that `out` is a sequence of well-formed responses. All but the last must be
/// complete; the last may be cut short only when `closed` (a response aborted by a close) or
/// when it is an echo waiting for input. Returns the statuses of the complete final responses.
pub(crate) fn check_responses(out: &[u8], closed: bool) -> Result<Vec<u16>, String> {
    let mut pos = 0;
    let mut finals = Vec::new();
    while pos < out.len() {
        let rest = &out[pos..];
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(rest) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Err(format!("incomplete head at {pos}")),
            Err(e) => return Err(format!("bad head at {pos}: {e}")),
        };
        if rest[..head_len]
            .windows(2)
            .any(|w| w[1] == b'\n' && w[0] != b'\r')
        {
            return Err("bare LF in response head".into());
        }
        let code = resp.code.ok_or("no status")?;
        if resp.version != Some(1) || !(100..=599).contains(&code) {
            return Err(format!("bad status line at {pos}"));
        }
        pos += head_len;
        if code < 200 {
            if resp.headers.iter().any(|h| !h.name.is_empty()) {
                return Err("headers on 100".into());
            }
            continue;
        }
        let find = |name: &str| {
            resp.headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
                .collect::<Vec<_>>()
        };
        if find("server") != [&b"xgate"[..]] || find("date").len() != 1 {
            return Err("missing Server/Date".into());
        }
        let cl = find("content-length");
        let te = find("transfer-encoding");
        let rest = &out[pos..];
        match (cl.as_slice(), te.as_slice()) {
            ([n], []) => {
                let n: usize = std::str::from_utf8(n)
                    .map_err(|e| e.to_string())?
                    .parse()
                    .map_err(|e: std::num::ParseIntError| e.to_string())?;
                if rest.len() < n {
                    return if closed || code == 200 {
                        Ok(finals.clone())
                    } else {
                        Err("short body".into())
                    };
                }
                pos += n;
            }
            ([], [b"chunked"]) => {
                let mut at = 0;
                loop {
                    let Some(eol) = rest[at..].windows(2).position(|w| w == b"\r\n") else {
                        return Ok(finals.clone()); // cut
                    };
                    let size = usize::from_str_radix(
                        std::str::from_utf8(&rest[at..at + eol]).map_err(|e| e.to_string())?,
                        16,
                    )
                    .map_err(|e| e.to_string())?;
                    at += eol + 2;
                    if size == 0 {
                        if rest.len() < at + 2 {
                            return Ok(finals.clone());
                        }
                        if &rest[at..at + 2] != b"\r\n" {
                            return Err("bad last chunk".into());
                        }
                        at += 2;
                        break;
                    }
                    if rest.len() < at + size + 2 {
                        return Ok(finals.clone());
                    }
                    if &rest[at + size..at + size + 2] != b"\r\n" {
                        return Err("bad chunk end".into());
                    }
                    at += size + 2;
                }
                pos += at;
            }
            _ => return Err(format!("bad framing at {pos}")),
        }
        finals.push(code);
    }
    Ok(finals.clone())
}

const TEMPLATES: &[&str] = &[
    "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /bytes/40 HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
    "POST /submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
    "POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "DELETE /echo HTTP/1.1\r\nHost: x\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
];

/// Requests that keep the connection open, with the final status each gets.
const KEEP_ALIVE: &[(&str, u16)] = &[
    ("GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 200),
    ("GET /bytes/40 HTTP/1.1\r\nHost: x\r\n\r\n", 200),
    ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200),
    ("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 200),
    ("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n", 200),
    ("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi", 200),
    ("POST /submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n", 200),
    ("POST /submit HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc", 200),
    ("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    ("DELETE /echo HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    ("GET /bytes/x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("\r\nGET /health?q HTTP/1.1\r\nHost: x\r\n\r\n", 200),
];

fn structured() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(0..TEMPLATES.len(), 1..5),
        proptest::collection::vec((any::<Index>(), any::<u8>(), 0..3u8), 0..4),
    )
        .prop_map(|(picks, edits)| {
            let mut v: Vec<u8> = picks.iter().flat_map(|&i| TEMPLATES[i].bytes()).collect();
            for (at, byte, op) in edits {
                if v.is_empty() {
                    break;
                }
                let i = at.index(v.len());
                match op {
                    0 => v[i] = byte,
                    1 => v.insert(i, byte),
                    _ => {
                        v.remove(i);
                    }
                }
            }
            v
        })
}

fn input_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..200), structured()]
        // HEAD answers have a Content-Length and no body: the checker cannot tell them apart.
        .prop_filter("no HEAD", |v| {
            !v.windows(4).any(|w| w.eq_ignore_ascii_case(b"HEAD"))
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES overrides, for long runs.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn rfc9112_9_3_2_pipelined_requests_get_responses_in_order(
        picks in proptest::collection::vec(0..KEEP_ALIVE.len(), 1..12),
        cuts in proptest::collection::vec(any::<Index>(), 0..8),
        cap in prop_oneof![1usize..80, Just(65536usize)],
    ) {
        let app = app_with_post_route();
        let input: Vec<u8> = picks.iter().flat_map(|&i| KEEP_ALIVE[i].0.bytes()).collect();
        let want: Vec<u16> = picks.iter().map(|&i| KEEP_ALIVE[i].1).collect();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
        cuts.sort_unstable();
        let r = run_with(&app, HttpLimits::default(), &input, &cuts, cap, false);
        prop_assert!(!r.closed);
        prop_assert_eq!(r.left, 0);
        let got = check_responses(&r.out, false);
        prop_assert_eq!(got, Ok(want));
    }

    #[test]
    fn arbitrary_input_in_arbitrary_splits_gives_well_formed_identical_output(
        input in input_bytes(),
        cuts in proptest::collection::vec(any::<Index>(), 0..6),
        cap in prop_oneof![1usize..80, Just(65536usize)],
        eof in any::<bool>(),
    ) {
        let app = app_with_post_route();
        let limits = HttpLimits { max_header_bytes: 512, max_uri_len: 64, max_body_len: 64, ..HttpLimits::default() };
        let whole = run_with(&app, limits, &input, &[], 65536, eof);
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
        cuts.sort_unstable();
        let split = run_with(&app, limits, &input, &cuts, cap, eof);
        prop_assert_eq!(&split.out, &whole.out);
        prop_assert_eq!(split.closed, whole.closed);
        if let Err(e) = check_responses(&whole.out, whole.closed) {
            prop_assert!(false, "{}\n{}", e, show(&whole.out));
        }
        if eof {
            prop_assert!(whole.closed, "EOF always ends the connection");
        }
    }
}

#[test]
fn response_checker_catches_malformed_output() {
    let ok = format!("HTTP/1.1 100 Continue\r\n\r\n{}{}", health(""), health(""));
    assert_eq!(check_responses(ok.as_bytes(), false), Ok(vec![200, 200]));
    let bad: [&[u8]; 5] = [
        b"HTTP/1.1 200 OK\r\nServer: xgate\r\n\r\n",                       // no Date, no framing
        b"HTTP/1.1 200 OK\nServer: xgate\r\nDate: x\r\nContent-Length: 0\r\n\r\n", // bare LF
        b"HTTP/1.1 404 Not Found\r\nServer: xgate\r\nDate: x\r\nContent-Length: 5\r\n\r\nab", // short non-200 body
        b"HTTP/1.1 200 OK\r\nServer: xgate\r\nDate: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
        b"garbage",
    ];
    for b in bad {
        assert!(check_responses(b, false).is_err(), "{}", show(b));
    }
}

#[test]
fn extreme_limits_do_not_panic() {
    let input = b"\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;e\r\nabc\r\n0\r\nT: 1\r\n\r\nGET /bytes/9 HTTP/1.1\r\nHost: x\r\n\r\n";
    for limits in [
        HttpLimits {
            max_header_bytes: 0,
            max_headers: 0,
            max_uri_len: 0,
            max_body_len: 0,
            max_chunk_line_len: 0,
            max_trailer_bytes: 0,
            header_timeout: Duration::ZERO,
            idle_timeout: Duration::ZERO,
        },
        HttpLimits {
            max_header_bytes: usize::MAX,
            max_headers: usize::MAX,
            max_uri_len: usize::MAX,
            max_body_len: u64::MAX,
            max_chunk_line_len: u32::MAX,
            max_trailer_bytes: u32::MAX,
            header_timeout: Duration::MAX,
            idle_timeout: Duration::MAX,
        },
    ] {
        let r = run_all_ways(&app(), limits, input, true, false);
        assert!(check_responses(&r.out, r.closed).is_ok());
        let mut conn = HttpConn::new(limits);
        conn.start(Instant::from_micros(u64::MAX));
        let _ = conn.poll_timeout();
        conn.handle_timeout(Instant::from_micros(u64::MAX));
    }
}
