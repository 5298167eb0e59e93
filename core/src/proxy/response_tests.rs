//! Tests of `proxy::response`, each named after the rule it proves.

use super::*;
use proptest::prelude::*;

fn limits() -> UpstreamLimits {
    UpstreamLimits {
        max_head_bytes: 4096,
        max_headers: 32,
        max_body_len: 1 << 20,
        max_chunk_line_len: 64,
        max_trailer_bytes: 256,
    }
}

/// What a parse found, owned so that tests can compare it across inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed {
    head_len: usize,
    status: u16,
    version_minor: u8,
    reason: Vec<u8>,
    framing: ResponseFraming,
    keep_alive: bool,
    content_length: Option<u64>,
    transfer_coded: bool,
    interim: bool,
    fields: Vec<(Vec<u8>, Vec<u8>)>,
}

/// `Ok(None)` for `Partial`.
fn parse_with(
    input: &[u8],
    kind: RequestKind,
    l: &UpstreamLimits,
) -> Result<Option<Parsed>, ResponseError> {
    let mut slots = HeaderSlots::new();
    Ok(match parse_head(input, kind, l, &mut slots)? {
        HeadParse::Partial => None,
        HeadParse::Complete(h) => Some(Parsed {
            head_len: h.head_len,
            status: h.status,
            version_minor: h.version_minor,
            reason: h.reason.to_vec(),
            framing: h.framing,
            keep_alive: h.upstream_keep_alive,
            content_length: h.content_length,
            transfer_coded: h.transfer_coded,
            interim: h.is_interim(),
            fields: h.fields().map(|(n, v)| (n.to_vec(), v.to_vec())).collect(),
        }),
    })
}

fn parse(input: &[u8]) -> Result<Parsed, ResponseError> {
    parse_kind(input, RequestKind::Other)
}

fn parse_kind(input: &[u8], kind: RequestKind) -> Result<Parsed, ResponseError> {
    parse_with(input, kind, &limits()).map(|p| p.expect("a complete head"))
}

fn framing(input: &[u8]) -> ResponseFraming {
    parse(input).unwrap().framing
}

// ---- RFC 9112 §6.3, rule by rule ----

#[test]
fn rfc9112_6_3_rule1_response_to_head_has_no_body_even_with_length_or_chunked() {
    for input in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
    ] {
        let p = parse_kind(input, RequestKind::Head).unwrap();
        assert_eq!(p.framing, ResponseFraming::None);
        assert!(
            p.keep_alive,
            "a bodiless response leaves the connection usable"
        );
    }
    // The same head to a GET has a body.
    assert_eq!(
        framing(b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n"),
        ResponseFraming::Length(42)
    );
}

#[test]
fn rfc9112_6_3_rule1_1xx_204_304_have_no_body_even_with_length() {
    for status in [
        "100 Continue",
        "103 Early Hints",
        "204 No Content",
        "304 Not Modified",
    ] {
        for fields in [
            "Content-Length: 42\r\n",
            "Transfer-Encoding: chunked\r\n",
            "",
        ] {
            let input = format!("HTTP/1.1 {status}\r\n{fields}\r\n");
            let p = parse(input.as_bytes()).unwrap();
            assert_eq!(p.framing, ResponseFraming::None, "{input:?}");
            assert!(p.keep_alive, "{input:?}");
        }
    }
}

#[test]
fn rfc9112_6_3_rule1_an_invalid_length_on_a_bodiless_response_frames_nothing() {
    let p = parse(b"HTTP/1.1 304 Not Modified\r\nContent-Length: abc\r\n\r\n").unwrap();
    assert_eq!(p.framing, ResponseFraming::None);
    assert_eq!(p.content_length, None);
}

#[test]
fn rfc9112_6_3_rule3_transfer_encoding_overrides_length_and_the_upstream_is_closed() {
    for input in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n",
    ] {
        let p = parse(input).unwrap();
        assert_eq!(p.framing, ResponseFraming::Chunked);
        assert!(!p.keep_alive);
    }
}

#[test]
fn rfc9112_6_3_rule4_chunked_as_final_coding_is_chunked() {
    for input in [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        let p = parse(input).unwrap();
        assert_eq!(p.framing, ResponseFraming::Chunked, "{input:?}");
        assert!(p.keep_alive);
    }
    assert!(
        !parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .transfer_coded
    );
    assert!(
        parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
            .unwrap()
            .transfer_coded
    );
}

#[test]
fn rfc9112_6_3_rule4_transfer_encoding_without_final_chunked_reads_until_close() {
    let p = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").unwrap();
    assert_eq!(p.framing, ResponseFraming::UntilClose);
    assert!(!p.keep_alive);
    assert!(p.transfer_coded);
}

#[test]
fn rfc9112_6_1_chunked_twice_or_not_last_and_empty_codings_are_refused() {
    for input in [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n",
    ] {
        assert_eq!(
            parse(input),
            Err(ResponseError::BadTransferEncoding),
            "{input:?}"
        );
    }
}

#[test]
fn rfc9112_6_1_transfer_encoding_in_http10_is_faulty_framing() {
    for input in [
        &b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    ] {
        assert_eq!(parse(input), Err(ResponseError::TransferEncodingInHttp10));
    }
}

#[test]
fn rfc9112_6_3_rule5_invalid_content_length_is_refused() {
    for value in [
        "+5",
        "-1",
        "5 5",
        "0x5",
        "",
        ",",
        "5,6",
        "18446744073709551616",
        "99999999999999999999",
    ] {
        let input = format!("HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\n");
        assert_eq!(
            parse(input.as_bytes()),
            Err(ResponseError::BadContentLength),
            "{value:?}"
        );
    }
    assert_eq!(
        parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
        Err(ResponseError::BadContentLength)
    );
}

#[test]
fn rfc9110_8_6_identical_content_lengths_are_one() {
    for input in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 42, 42\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\nContent-Length: 42\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 042\r\n\r\n",
    ] {
        assert_eq!(framing(input), ResponseFraming::Length(42), "{input:?}");
    }
    let unbounded = UpstreamLimits {
        max_body_len: u64::MAX,
        ..limits()
    };
    let max = b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n";
    assert_eq!(
        parse_with(max, RequestKind::Other, &unbounded)
            .unwrap()
            .unwrap()
            .framing,
        ResponseFraming::Length(u64::MAX)
    );
}

#[test]
fn rfc9112_6_3_rule6_content_length_frames_the_body() {
    let p = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n").unwrap();
    assert_eq!(p.framing, ResponseFraming::Length(7));
    assert!(p.keep_alive);
    assert_eq!(
        framing(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ResponseFraming::Length(0)
    );
}

#[test]
fn content_length_over_the_body_limit_is_refused_with_the_head() {
    let l = UpstreamLimits {
        max_body_len: 10,
        ..limits()
    };
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    let big = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n";
    assert!(parse_with(ok, RequestKind::Other, &l).is_ok());
    assert_eq!(
        parse_with(big, RequestKind::Other, &l),
        Err(ResponseError::BodyTooLarge)
    );
}

#[test]
fn rfc9112_6_3_rule8_no_framing_reads_until_close_and_is_not_reused() {
    for input in [
        &b"HTTP/1.1 200 OK\r\n\r\n"[..],
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n",
    ] {
        let p = parse(input).unwrap();
        assert_eq!(p.framing, ResponseFraming::UntilClose);
        assert!(!p.keep_alive);
    }
}

#[test]
fn rfc9112_9_3_persistence_by_version_and_connection() {
    let cases: &[(&[u8], bool)] = &[
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true),
        (
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            false,
        ),
        (
            b"HTTP/1.1 200 OK\r\nConnection: x, Close\r\nContent-Length: 0\r\n\r\n",
            false,
        ),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
        (
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            true,
        ),
        (
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n",
            false,
        ),
    ];
    for (input, keep_alive) in cases {
        assert_eq!(parse(input).unwrap().keep_alive, *keep_alive, "{input:?}");
    }
}

// ---- status line ----

#[test]
fn rfc9110_15_2_100_and_103_are_interim_101_is_refused() {
    assert!(parse(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap().interim);
    assert!(
        parse(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
            .unwrap()
            .interim
    );
    assert!(!parse(b"HTTP/1.1 200 OK\r\n\r\n").unwrap().interim);
    assert_eq!(
        parse(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"),
        Err(ResponseError::UnrequestedUpgrade)
    );
}

#[test]
fn rfc9112_4_status_line_version_and_code_are_checked() {
    assert_eq!(
        parse(b"HTTP/2.0 200 OK\r\n\r\n"),
        Err(ResponseError::BadVersion)
    );
    assert_eq!(
        parse(b"HTTP/1.2 200 OK\r\n\r\n"),
        Err(ResponseError::BadVersion)
    );
    assert_eq!(
        parse(b"http/1.1 200 OK\r\n\r\n"),
        Err(ResponseError::BadVersion)
    );
    assert_eq!(
        parse(b"HTTP/1.1 99 X\r\n\r\n"),
        Err(ResponseError::BadStatusLine)
    );
    assert_eq!(
        parse(b"HTTP/1.1 2000 X\r\n\r\n"),
        Err(ResponseError::BadStatusLine)
    );
    assert_eq!(
        parse(b"HTTP/1.1 099 X\r\n\r\n"),
        Err(ResponseError::BadStatus(99))
    );
    assert_eq!(
        parse(b"HTTP/1.1 600 X\r\n\r\n"),
        Err(ResponseError::BadStatus(600))
    );
    assert_eq!(
        parse(b"HTTP/1.1  200 OK\r\n\r\n"),
        Err(ResponseError::BadStatusLine)
    );
    assert_eq!(parse(b"HTTP/1.1 599 X\r\n\r\n").unwrap().status, 599);
    let p = parse(b"HTTP/1.0 200\r\n\r\n").unwrap();
    assert_eq!(
        (p.status, p.version_minor, &p.reason[..]),
        (200, 0, &b""[..])
    );
}

#[test]
fn rfc9112_4_reason_phrase_is_kept_as_received_with_obs_text() {
    let p = parse(b"HTTP/1.1 200 Tr\xe8s bien\r\n\r\n").unwrap();
    assert_eq!(p.reason, b"Tr\xe8s bien");
    let p = parse(b"HTTP/1.1 404 Not \tFound \r\n\r\n").unwrap();
    assert_eq!(p.reason, b"Not \tFound ");
}

// ---- header section ----

#[test]
fn rfc9112_5_2_obs_fold_is_refused() {
    assert_eq!(
        parse(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n"),
        Err(ResponseError::ObsFold)
    );
    assert_eq!(
        parse(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\t2\r\n\r\n"),
        Err(ResponseError::ObsFold)
    );
}

#[test]
fn rfc9112_5_malformed_fields_are_refused() {
    for input in [
        &b"HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nX A: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: \x001\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: 1\r2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n: 1\r\n\r\n",
    ] {
        assert_eq!(parse(input), Err(ResponseError::BadHeader), "{input:?}");
    }
}

#[test]
fn header_count_limit() {
    let l = UpstreamLimits {
        max_headers: 2,
        ..limits()
    };
    let two = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";
    let three = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert!(parse_with(two, RequestKind::Other, &l).unwrap().is_some());
    assert_eq!(
        parse_with(three, RequestKind::Other, &l),
        Err(ResponseError::TooManyHeaders)
    );
    // The cap holds whatever the limit says.
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..=MAX_HEADERS_CAP {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let l = UpstreamLimits {
        max_headers: usize::MAX,
        max_head_bytes: usize::MAX,
        ..limits()
    };
    assert_eq!(
        parse_with(&many, RequestKind::Other, &l),
        Err(ResponseError::TooManyHeaders)
    );
}

#[test]
fn head_size_limit_at_its_edge() {
    let head = b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n";
    let exact = UpstreamLimits {
        max_head_bytes: head.len(),
        ..limits()
    };
    let short = UpstreamLimits {
        max_head_bytes: head.len() - 1,
        ..limits()
    };
    assert_eq!(
        parse_with(head, RequestKind::Other, &exact)
            .unwrap()
            .unwrap()
            .head_len,
        head.len()
    );
    assert_eq!(
        parse_with(head, RequestKind::Other, &short),
        Err(ResponseError::HeadTooLarge)
    );
    // With body bytes after it, the head still fits its limit.
    let with_body = [&head[..], b"body"].concat();
    assert_eq!(
        parse_with(&with_body, RequestKind::Other, &exact)
            .unwrap()
            .unwrap()
            .head_len,
        head.len()
    );
}

#[test]
fn a_head_split_at_every_byte_parses_the_same() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let whole = parse(input).unwrap();
    assert_eq!(whole.framing, ResponseFraming::Chunked);
    for end in 0..input.len() {
        let got = parse_with(&input[..end], RequestKind::Other, &limits()).unwrap();
        if end < whole.head_len {
            assert_eq!(got, None, "at {end}");
        } else {
            assert_eq!(got.as_ref(), Some(&whole), "at {end}");
        }
    }
    // A head over the limit: Partial while the bytes are under it, then refused, whether the
    // end arrived or not.
    let l = UpstreamLimits {
        max_head_bytes: 40,
        ..limits()
    };
    for end in 0..input.len() {
        let got = parse_with(&input[..end], RequestKind::Other, &l);
        if end < 40 {
            assert_eq!(got, Ok(None), "at {end}");
        } else {
            assert_eq!(got, Err(ResponseError::HeadTooLarge), "at {end}");
        }
    }
}

// ---- body ----

/// Feeds `input` to a body decoder in pieces of `step` bytes (the first piece ends at
/// `first`), as a transport would; returns the body, where it ended, and what the close said
/// if the input ran out first.
fn decode_body(
    framing: ResponseFraming,
    input: &[u8],
    first: usize,
    step: usize,
    l: &UpstreamLimits,
) -> (Vec<u8>, Result<usize, BodyError>) {
    let mut body = ResponseBody::new(framing, l);
    let mut data = Vec::new();
    let mut pos = 0;
    let mut have = first.min(input.len());
    loop {
        // Each round consumes at least one byte, completes, or asks for more.
        match body.advance(&input[pos..have]) {
            Err(e) => return (data, Err(e)),
            Ok(s) => {
                assert!(s.framing + s.data <= have - pos);
                data.extend_from_slice(&input[pos + s.framing..pos + s.framing + s.data]);
                pos += s.framing + s.data;
                if s.complete {
                    assert!(body.is_complete());
                    return (data, Ok(pos));
                }
                if pos < have {
                    continue;
                }
            }
        }
        if have == input.len() {
            return (data, body.peer_closed().map(|()| pos));
        }
        have = (have + step).min(input.len());
    }
}

const CHUNKED: &[u8] =
    b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\n";
const CHUNKED_DATA: &[u8] = b"Wikipedia in\r\n\r\nchunks.";

#[test]
fn chunked_body_is_decoded_byte_exact_across_every_split_point() {
    let input = [CHUNKED, b"HTTP/1.1 200 OK\r\n"].concat(); // the next response follows
    for first in 0..=input.len() {
        for step in [1, 3, input.len()] {
            let (data, end) = decode_body(ResponseFraming::Chunked, &input, first, step, &limits());
            assert_eq!(data, CHUNKED_DATA, "split at {first}, step {step}");
            assert_eq!(end, Ok(CHUNKED.len()), "split at {first}, step {step}");
        }
    }
}

#[test]
fn length_body_ends_at_its_length_and_leaves_what_follows() {
    let input = b"hello worldHTTP/1.1";
    for first in 0..=input.len() {
        let (data, end) = decode_body(ResponseFraming::Length(11), input, first, 2, &limits());
        assert_eq!(data, b"hello world");
        assert_eq!(end, Ok(11));
    }
    let (data, end) = decode_body(ResponseFraming::Length(0), input, 5, 1, &limits());
    assert_eq!((data, end), (Vec::new(), Ok(0)));
    let (data, end) = decode_body(ResponseFraming::None, input, 5, 1, &limits());
    assert_eq!((data, end), (Vec::new(), Ok(0)));
}

#[test]
fn truncated_length_and_chunked_bodies_are_truncated_at_eof() {
    let (data, end) = decode_body(ResponseFraming::Length(12), b"hello world", 3, 3, &limits());
    assert_eq!(
        (data, end),
        (b"hello world".to_vec(), Err(BodyError::Truncated))
    );
    for cut in 0..CHUNKED.len() {
        let (_, end) = decode_body(ResponseFraming::Chunked, &CHUNKED[..cut], 1, 1, &limits());
        assert_eq!(end, Err(BodyError::Truncated), "cut at {cut}");
    }
}

#[test]
fn until_close_body_is_complete_at_eof() {
    let input = b"everything until the close";
    for first in 0..=input.len() {
        let (data, end) = decode_body(ResponseFraming::UntilClose, input, first, 4, &limits());
        assert_eq!(data, input);
        assert_eq!(end, Ok(input.len()));
    }
    let mut body = ResponseBody::new(ResponseFraming::UntilClose, &limits());
    assert!(!body.is_complete());
    assert_eq!(body.peer_closed(), Ok(()));
    assert!(body.is_complete());
}

#[test]
fn bodies_over_the_limit_are_cut() {
    let l = UpstreamLimits {
        max_body_len: 8,
        ..limits()
    };
    let (_, end) = decode_body(ResponseFraming::Chunked, CHUNKED, 100, 1, &l);
    assert_eq!(end, Err(BodyError::TooLarge));
    let (_, end) = decode_body(ResponseFraming::UntilClose, b"123456789", 4, 1, &l);
    assert_eq!(end, Err(BodyError::TooLarge));
    let (data, end) = decode_body(ResponseFraming::UntilClose, b"12345678", 4, 1, &l);
    assert_eq!((data, end), (b"12345678".to_vec(), Ok(8)));
}

#[test]
fn bad_chunked_framing_is_refused_and_the_error_stays() {
    let mut body = ResponseBody::new(ResponseFraming::Chunked, &limits());
    assert_eq!(
        body.advance(b"4\r\nWikiX"),
        Ok(BodyStep {
            framing: 3,
            data: 4,
            complete: false
        })
    );
    assert_eq!(body.advance(b"X"), Err(BodyError::BadChunk));
    assert_eq!(body.advance(b"\r\n0\r\n\r\n"), Err(BodyError::BadChunk));
    assert_eq!(body.peer_closed(), Err(BodyError::BadChunk));
}

// ---- the client's head ----

fn via() -> ViaName<'static> {
    ViaName::new(b"xgate").unwrap()
}

fn client_head(
    input: &[u8],
    kind: RequestKind,
    framing: ClientFraming,
    connection: ClientConnection,
) -> Result<Vec<u8>, ClientHeadError> {
    let mut slots = HeaderSlots::new();
    let HeadParse::Complete(head) = parse_head(input, kind, &limits(), &mut slots).unwrap() else {
        panic!("partial head");
    };
    let client = ClientHead {
        framing,
        connection,
        rules: ClientHeadRules::new(via()),
        date: None,
    };
    let mut out = [0u8; 1024];
    let n = write_client_head(&head, &client, &mut out)?;
    Ok(out[..n].to_vec())
}

fn text(bytes: Result<Vec<u8>, ClientHeadError>) -> String {
    String::from_utf8(bytes.unwrap()).unwrap()
}

#[test]
fn rfc9110_7_6_1_hop_by_hop_fields_and_those_connection_names_are_dropped() {
    let input = b"HTTP/1.1 200 OK\r\n\
        Date: Sun, 06 Dec 2026 11:00:00 GMT\r\n\
        Connection: x-secret, Keep-Alive\r\n\
        Keep-Alive: timeout=5\r\n\
        X-Secret: 1\r\n\
        Proxy-Connection: keep-alive\r\n\
        TE: trailers\r\n\
        Trailer: Expires\r\n\
        Upgrade: h2c\r\n\
        Content-Type: text/plain\r\n\
        connection: X-Other\r\n\
        x-other: 2\r\n\
        Transfer-Encoding: chunked\r\n\
        Content-Length: 3\r\n\
        Via: 1.1 backend\r\n\
        \r\n";
    assert_eq!(
        text(client_head(
            input,
            RequestKind::Other,
            ClientFraming::Chunked,
            ClientConnection::Persistent
        )),
        "HTTP/1.1 200 OK\r\n\
         Date: Sun, 06 Dec 2026 11:00:00 GMT\r\n\
         Content-Type: text/plain\r\n\
         Via: 1.1 backend\r\n\
         Transfer-Encoding: chunked\r\n\
         Via: 1.1 xgate\r\n\r\n"
    );
}

/// The client's head of `input` under the rules of a route configured with `forward`.
fn ruled_head(input: &[u8], forward: &crate::proxy::forward::ForwardConfig) -> String {
    let rules = crate::proxy::forward::ForwardRules::new(forward).unwrap();
    let mut slots = HeaderSlots::new();
    let HeadParse::Complete(head) =
        parse_head(input, RequestKind::Other, &limits(), &mut slots).unwrap()
    else {
        panic!("partial head");
    };
    let framing = match head.framing {
        ResponseFraming::Length(n) => ClientFraming::Length(n),
        _ => ClientFraming::None,
    };
    let client = ClientHead {
        framing,
        connection: ClientConnection::Persistent,
        rules: rules.client_head_rules(),
        date: None,
    };
    let mut out = [0u8; 1024];
    let n = write_client_head(&head, &client, &mut out).unwrap();
    String::from_utf8(out[..n].to_vec()).unwrap()
}

#[test]
fn a_routes_response_rules_replace_and_drop_upstream_fields_of_final_responses_only() {
    let forward = crate::proxy::forward::ForwardConfig {
        response_set_headers: vec![
            ("Cache-Control".into(), "no-store".into()),
            (
                "Strict-Transport-Security".into(),
                "max-age=63072000".into(),
            ),
        ],
        response_remove_headers: vec!["Server".into(), "x-powered-by".into()],
        ..Default::default()
    };
    // Matched without regard to case, every line of a name, wherever it is; the set fields
    // come last, in the configured order, whether the upstream sent them or not.
    assert_eq!(
        ruled_head(
            b"HTTP/1.1 200 OK\r\nserver: nginx\r\nCache-Control: public\r\nETag: \"a\"\r\n\
              X-Powered-By: php\r\nSERVER: again\r\ncache-control: max-age=9\r\nContent-Length: 0\r\n\r\n",
            &forward
        ),
        "HTTP/1.1 200 OK\r\nETag: \"a\"\r\nContent-Length: 0\r\nVia: 1.1 xgate\r\n\
         Cache-Control: no-store\r\nStrict-Transport-Security: max-age=63072000\r\n\r\n"
    );
    // A 304 and a 204 are final: ruled too.
    assert_eq!(
        ruled_head(b"HTTP/1.1 304 Not Modified\r\nServer: x\r\n\r\n", &forward),
        "HTTP/1.1 304 Not Modified\r\nVia: 1.1 xgate\r\nCache-Control: no-store\r\n\
         Strict-Transport-Security: max-age=63072000\r\n\r\n"
    );
    // An interim response is relayed with Via only.
    assert_eq!(
        ruled_head(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nServer: x\r\n\r\n",
            &forward
        ),
        "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nServer: x\r\nVia: 1.1 xgate\r\n\r\n"
    );
}

#[test]
fn rfc9110_7_6_3_via_carries_the_upstream_version() {
    let head = text(client_head(
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n",
        RequestKind::Other,
        ClientFraming::Length(2),
        ClientConnection::Persistent,
    ));
    assert_eq!(
        head,
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nVia: 1.0 xgate\r\n\r\n"
    );
    assert!(ViaName::new(b"gw.example:8080").is_some());
    assert!(ViaName::new(b"[::1]:80").is_some());
    for bad in [&b""[..], b"a b", b"a\r\nX: y", b"a,b"] {
        assert_eq!(ViaName::new(bad), None, "{bad:?}");
    }
}

#[test]
fn client_framing_variants() {
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    let until_close = b"HTTP/1.1 200 OK\r\nServer: s\r\n\r\n";
    // Re-framed for an HTTP/1.1 client, or close-delimited for an HTTP/1.0 one.
    assert_eq!(
        text(client_head(
            until_close,
            RequestKind::Other,
            ClientFraming::Chunked,
            ClientConnection::Persistent
        )),
        "HTTP/1.1 200 OK\r\nServer: s\r\nTransfer-Encoding: chunked\r\nVia: 1.1 xgate\r\n\r\n"
    );
    assert_eq!(
        text(client_head(
            chunked,
            RequestKind::Other,
            ClientFraming::Close,
            ClientConnection::Persistent
        )),
        "HTTP/1.1 200 OK\r\nConnection: close\r\nVia: 1.1 xgate\r\n\r\n"
    );
    // A body read whole can be sent with its length.
    assert_eq!(
        text(client_head(
            chunked,
            RequestKind::Other,
            ClientFraming::Length(9),
            ClientConnection::Close
        )),
        "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\nVia: 1.1 xgate\r\n\r\n"
    );
}

#[test]
fn rfc9110_8_6_head_and_304_keep_content_length_1xx_and_204_do_not() {
    let with_length = |status: &str| format!("HTTP/1.1 {status}\r\nContent-Length: 42\r\n\r\n");
    assert_eq!(
        text(client_head(
            with_length("200 OK").as_bytes(),
            RequestKind::Head,
            ClientFraming::None,
            ClientConnection::Persistent
        )),
        "HTTP/1.1 200 OK\r\nContent-Length: 42\r\nVia: 1.1 xgate\r\n\r\n"
    );
    assert_eq!(
        text(client_head(
            with_length("304 Not Modified").as_bytes(),
            RequestKind::Other,
            ClientFraming::None,
            ClientConnection::Persistent
        )),
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 42\r\nVia: 1.1 xgate\r\n\r\n"
    );
    for (status, kind) in [
        ("204 No Content", RequestKind::Other),
        ("204 No Content", RequestKind::Head),
        ("100 Continue", RequestKind::Head),
    ] {
        assert_eq!(
            text(client_head(
                with_length(status).as_bytes(),
                kind,
                ClientFraming::None,
                ClientConnection::Persistent
            )),
            format!("HTTP/1.1 {status}\r\nVia: 1.1 xgate\r\n\r\n")
        );
    }
}

#[test]
fn client_framing_that_does_not_fit_the_response_is_refused() {
    let length = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    let none = b"HTTP/1.1 204 No Content\r\n\r\n";
    let gzip = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    let cases: &[(&[u8], ClientFraming)] = &[
        (length, ClientFraming::None),
        (length, ClientFraming::Length(4)),
        (none, ClientFraming::Length(0)),
        (none, ClientFraming::Chunked),
        (none, ClientFraming::Close),
        (gzip, ClientFraming::Length(5)),
    ];
    for (input, framing) in cases {
        assert_eq!(
            client_head(
                input,
                RequestKind::Other,
                *framing,
                ClientConnection::Persistent
            ),
            Err(ClientHeadError::FramingMismatch),
            "{input:?} {framing:?}"
        );
    }
}

#[test]
fn rfc9112_6_1_other_transfer_codings_are_forwarded() {
    let gzip =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: br, chunked\r\n\r\n";
    assert_eq!(
        text(client_head(
            gzip,
            RequestKind::Other,
            ClientFraming::Chunked,
            ClientConnection::Persistent
        )),
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, br, chunked\r\nVia: 1.1 xgate\r\n\r\n"
    );
    assert_eq!(
        text(client_head(gzip, RequestKind::Other, ClientFraming::Close, ClientConnection::Persistent)),
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, br\r\nConnection: close\r\nVia: 1.1 xgate\r\n\r\n"
    );
}

#[test]
fn rfc9112_4_empty_reason_gets_the_standard_one_others_are_kept() {
    assert_eq!(
        text(client_head(
            b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n",
            RequestKind::Other,
            ClientFraming::Length(0),
            ClientConnection::Persistent
        )),
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nVia: 1.1 xgate\r\n\r\n"
    );
    let head = client_head(
        b"HTTP/1.1 299 Tr\xe8s bien\r\nContent-Length: 0\r\n\r\n",
        RequestKind::Other,
        ClientFraming::Length(0),
        ClientConnection::Persistent,
    )
    .unwrap();
    assert!(head.starts_with(b"HTTP/1.1 299 Tr\xe8s bien\r\n"));
}

#[test]
fn a_buffer_too_small_for_the_client_head_is_an_error_at_every_size() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 123456\r\n\r\n";
    let mut slots = HeaderSlots::new();
    let HeadParse::Complete(head) =
        parse_head(input, RequestKind::Other, &limits(), &mut slots).unwrap()
    else {
        panic!("partial head");
    };
    let client = ClientHead {
        framing: ClientFraming::Length(123456),
        connection: ClientConnection::Close,
        rules: ClientHeadRules::new(via()),
        date: None,
    };
    let mut big = [0u8; 512];
    let full = write_client_head(&head, &client, &mut big).unwrap();
    for size in 0..full {
        let mut out = vec![0u8; size];
        assert_eq!(
            write_client_head(&head, &client, &mut out),
            Err(ClientHeadError::HeadTooLarge),
            "size {size}"
        );
    }
    let mut exact = vec![0u8; full];
    assert_eq!(write_client_head(&head, &client, &mut exact), Ok(full));
    assert_eq!(exact, big[..full]);
}

#[test]
fn rfc9112_7_1_chunks_written_for_the_client_decode_byte_exact() {
    let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    for size in [1, 15, 16, 255, 256, 4096, 5000] {
        let mut framed = Vec::new();
        for piece in data.chunks(size) {
            let mut line = [0u8; 18];
            let n = write_chunk_start(piece.len() as u64, &mut line).unwrap();
            framed.extend_from_slice(&line[..n]);
            framed.extend_from_slice(piece);
            framed.extend_from_slice(CHUNK_END);
        }
        framed.extend_from_slice(LAST_CHUNK);
        let (got, end) = decode_body(ResponseFraming::Chunked, &framed, 7, 100, &limits());
        assert_eq!(got, data, "chunks of {size}");
        assert_eq!(end, Ok(framed.len()));
    }
    let mut line = [0u8; 18];
    assert_eq!(
        write_chunk_start(0, &mut line),
        Some(0),
        "never a last chunk"
    );
    assert_eq!(write_chunk_start(u64::MAX, &mut line), Some(18));
    assert_eq!(&line, b"ffffffffffffffff\r\n");
    assert_eq!(write_chunk_start(0x1a, &mut line), Some(4));
    assert_eq!(&line[..4], b"1a\r\n");
    assert_eq!(write_chunk_start(0x1a, &mut line[..3]), None);
    assert_eq!(write_chunk_start(0x1a, &mut line[..4]), Some(4));
}

#[test]
fn rfc9112_2_2_a_bare_lf_ends_a_head_line() {
    let input = b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: 1\n\nhi";
    let p = parse(input).unwrap();
    assert_eq!(p.head_len, input.len() - 2);
    assert_eq!(p.framing, ResponseFraming::Length(2));
    assert_eq!(p.reason, b"OK");
    assert_eq!(
        text(client_head(
            input,
            RequestKind::Other,
            ClientFraming::Length(2),
            ClientConnection::Persistent
        )),
        "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\nVia: 1.1 xgate\r\n\r\n"
    );
}

#[test]
fn transfer_codings_of_a_bodiless_response_are_not_forwarded() {
    let input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n";
    let p = parse_kind(input, RequestKind::Head).unwrap();
    assert!(!p.transfer_coded);
    assert_eq!(
        text(client_head(
            input,
            RequestKind::Head,
            ClientFraming::None,
            ClientConnection::Persistent
        )),
        "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nVia: 1.1 xgate\r\n\r\n"
    );
}

#[test]
fn rfc9112_9_3_the_client_connection_field_follows_the_caller() {
    let input = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n";
    let head =
        |connection, framing| text(client_head(input, RequestKind::Other, framing, connection));
    assert_eq!(
        head(ClientConnection::Persistent, ClientFraming::Length(1)),
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nVia: 1.1 xgate\r\n\r\n"
    );
    assert_eq!(
        head(ClientConnection::KeepAlive10, ClientFraming::Length(1)),
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\nVia: 1.1 xgate\r\n\r\n"
    );
    assert_eq!(
        head(ClientConnection::Close, ClientFraming::Length(1)),
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\nVia: 1.1 xgate\r\n\r\n"
    );
    // A close-delimited body closes, whatever the caller hoped.
    for connection in [ClientConnection::Persistent, ClientConnection::KeepAlive10] {
        assert_eq!(
            head(connection, ClientFraming::Close),
            "HTTP/1.1 200 OK\r\nConnection: close\r\nVia: 1.1 xgate\r\n\r\n"
        );
    }
}

// ---- properties ----

proptest! {
    /// Whatever an upstream sends, parsing never panics, and a complete head's framing and
    /// length are consistent with the bytes.
    #[test]
    fn random_upstream_bytes_never_panic(
        input in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            // Mostly-plausible heads reach the field checks.
            (
                prop::sample::select(vec!["HTTP/1.1 ", "HTTP/1.0 ", "HTTP/1.1 200 OK\r\n"]),
                prop::collection::vec(
                    prop_oneof![
                        8 => 0x20u8..0x7f,
                        2 => Just(b'\r'),
                        2 => Just(b'\n'),
                        1 => Just(b':'),
                        1 => any::<u8>(),
                    ],
                    0..300,
                ),
            ).prop_map(|(p, rest)| [p.as_bytes(), &rest].concat()),
        ],
        head in any::<bool>(),
        max_head_bytes in 0usize..400,
    ) {
        let kind = if head { RequestKind::Head } else { RequestKind::Other };
        let l = UpstreamLimits { max_head_bytes, ..limits() };
        if let Ok(Some(p)) = parse_with(&input, kind, &l) {
            prop_assert!(p.head_len <= input.len().min(max_head_bytes));
            prop_assert!((100..=599).contains(&p.status) && p.status != 101);
            if p.framing == ResponseFraming::UntilClose {
                prop_assert!(!p.keep_alive);
            }
            // The client's head can always be written, or refused, without a panic.
            let mut slots = HeaderSlots::new();
            if let Ok(HeadParse::Complete(h)) = parse_head(&input, kind, &l, &mut slots) {
                let client = ClientHead { framing: ClientFraming::Chunked, connection: ClientConnection::Persistent, rules: ClientHeadRules::new(via()), date: None };
                let mut out = [0u8; 256];
                let _ = write_client_head(&h, &client, &mut out);
            }
        }
    }

    /// A well-formed response with random fields, body and framing, cut anywhere: the parsed
    /// framing and the body decoder give back the body byte-exact, and the client's head
    /// keeps every end-to-end field in order.
    #[test]
    fn well_formed_response_round_trips(
        fields in prop::collection::vec(
            (
                prop::sample::select(vec!["X-A", "Server", "Content-Type", "Set-Cookie", "Link", "ETag"]),
                "[!-~]([ -~]{0,20}[!-~])?",
            ),
            0..8,
        ),
        body in prop::collection::vec(any::<u8>(), 0..200),
        chunk_sizes in prop::collection::vec(1usize..40, 1..10),
        framing_kind in 0u8..3,
        http10 in any::<bool>(),
        first in 0usize..400,
        step in 1usize..64,
    ) {
        let http10 = http10 && framing_kind != 1; // no Transfer-Encoding in HTTP/1.0
        let mut input = format!("HTTP/1.{} 200 OK\r\n", if http10 { 0 } else { 1 }).into_bytes();
        for (name, value) in &fields {
            input.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        let expected = match framing_kind {
            0 => {
                input.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
                input.extend_from_slice(&body);
                ResponseFraming::Length(body.len() as u64)
            }
            1 => {
                input.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                let mut rest = &body[..];
                let mut sizes = chunk_sizes.iter().cycle();
                while !rest.is_empty() {
                    let n = (*sizes.next().unwrap()).min(rest.len());
                    input.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                    input.extend_from_slice(&rest[..n]);
                    input.extend_from_slice(b"\r\n");
                    rest = &rest[n..];
                }
                input.extend_from_slice(b"0\r\n\r\n");
                ResponseFraming::Chunked
            }
            _ => {
                input.extend_from_slice(b"\r\n");
                input.extend_from_slice(&body);
                ResponseFraming::UntilClose
            }
        };
        let whole = parse(&input).unwrap();
        prop_assert_eq!(whole.framing, expected);
        let end = first.min(input.len());
        let partial = parse_with(&input[..end], RequestKind::Other, &limits()).unwrap();
        if end < whole.head_len {
            prop_assert_eq!(partial, None);
        } else {
            prop_assert_eq!(partial.as_ref(), Some(&whole));
        }
        let (data, done) = decode_body(
            whole.framing,
            &input[whole.head_len..],
            first.saturating_sub(whole.head_len),
            step,
            &limits(),
        );
        prop_assert_eq!(&data, &body);
        prop_assert_eq!(done, Ok(input.len() - whole.head_len));

        // The client's head, parsed again, has the same fields in order plus the framing.
        let client_framing = match expected {
            ResponseFraming::Length(n) => ClientFraming::Length(n),
            _ if http10 => ClientFraming::Close,
            _ => ClientFraming::Chunked,
        };
        let out = client_head(&input, RequestKind::Other, client_framing, ClientConnection::Persistent).unwrap();
        let again = parse(&out).unwrap();
        prop_assert_eq!(again.head_len, out.len());
        let forwarded: Vec<_> = again
            .fields
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case(b"content-length")
                && !n.eq_ignore_ascii_case(b"transfer-encoding")
                && !n.eq_ignore_ascii_case(b"connection")
                && !n.eq_ignore_ascii_case(b"via"))
            .cloned()
            .collect();
        let sent: Vec<_> = fields
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        prop_assert_eq!(forwarded, sent);
        let via_value = if http10 { &b"1.0 xgate"[..] } else { b"1.1 xgate" };
        prop_assert_eq!(again.fields.last(), Some(&(b"Via".to_vec(), via_value.to_vec())));
        let reframed = match client_framing {
            ClientFraming::Length(n) => ResponseFraming::Length(n),
            ClientFraming::Chunked => ResponseFraming::Chunked,
            _ => ResponseFraming::UntilClose,
        };
        prop_assert_eq!(again.framing, reframed);
    }
}

#[test]
fn rfc9110_6_6_1_a_response_without_date_gets_the_gateways() {
    const DATE: &[u8] = b"Sun, 06 Dec 2026 11:00:00 GMT";
    let write = |input: &[u8], date: Option<&[u8]>| {
        let mut slots = HeaderSlots::new();
        let head = match parse_head(input, RequestKind::Other, &limits(), &mut slots) {
            Ok(HeadParse::Complete(h)) => h,
            other => panic!("{other:?}"),
        };
        let client = ClientHead {
            framing: ClientFraming::Length(0),
            connection: ClientConnection::Persistent,
            rules: ClientHeadRules::new(via()),
            date,
        };
        let mut out = [0u8; 512];
        let n = write_client_head(&head, &client, &mut out).unwrap();
        String::from_utf8(out[..n].to_vec()).unwrap()
    };
    let without = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let got = write(without, Some(DATE));
    assert_eq!(got.matches("\r\nDate: ").count(), 1, "{got}");
    assert!(
        got.contains("\r\nDate: Sun, 06 Dec 2026 11:00:00 GMT\r\n"),
        "{got}"
    );
    // The upstream's own Date is kept, and not doubled.
    let with =
        b"HTTP/1.1 200 OK\r\nDATE: Sat, 05 Dec 2026 10:00:00 GMT\r\nContent-Length: 0\r\n\r\n";
    let got = write(with, Some(DATE));
    assert_eq!(
        got.to_ascii_lowercase().matches("\r\ndate: ").count(),
        1,
        "{got}"
    );
    assert!(got.contains("Sat, 05 Dec 2026 10:00:00 GMT"), "{got}");
    // Without a clock, nothing is added.
    assert!(!write(without, None).contains("Date:"));
}
