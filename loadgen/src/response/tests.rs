use super::*;

fn ok_with(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nServer: xgate\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn chunked(chunks: &[&[u8]]) -> Vec<u8> {
    let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for c in chunks {
        r.extend_from_slice(format!("{:x};ext=1\r\n", c.len()).as_bytes());
        r.extend_from_slice(c);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"0\r\nTrailer-Field: x\r\n\r\n");
    r
}

fn expect_pattern(len: u64) -> Expect {
    Expect {
        status: Some(200),
        body_len: Some(len),
        body: BodyCheck::Pattern,
        head_request: false,
    }
}

/// Feeds `stream` in pieces of the given sizes (cycled) and collects every response.
fn feed_in_pieces(
    stream: &[u8],
    sizes: &[usize],
    expect: &Expect,
) -> Result<Vec<Response>, ProtocolError> {
    let mut p = ResponseParser::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < stream.len() {
        let end = (at + sizes[i % sizes.len()]).min(stream.len());
        i += 1;
        let mut piece = &stream[at..end];
        while !piece.is_empty() {
            let (n, r) = p.feed(piece, expect)?;
            assert!(n > 0 || r.is_some(), "no progress");
            piece = &piece[n..];
            out.extend(r);
        }
        at = end;
    }
    assert!(p.is_idle(), "bytes of a next response left over");
    Ok(out)
}

/// Splits `stream` at every position into two reads, and also feeds it a byte at a time.
fn every_split(stream: &[u8], expect: &Expect) -> Vec<Response> {
    let whole = feed_in_pieces(stream, &[stream.len()], expect).unwrap();
    for cut in 1..stream.len() {
        let got = feed_in_pieces(stream, &[cut, stream.len()], expect).unwrap();
        assert_eq!(got, whole, "split at {cut}");
    }
    assert_eq!(feed_in_pieces(stream, &[1], expect).unwrap(), whole);
    whole
}

fn good(body_len: u64) -> Response {
    Response {
        status: 200,
        body_len,
        close: false,
        verdict: Ok(()),
    }
}

#[test]
fn whole_response_with_pattern_body() {
    let r = every_split(&ok_with(&pattern(100)), &expect_pattern(100));
    assert_eq!(r, vec![good(100)]);
}

#[test]
fn the_pattern_matches_the_gateway_and_checks_every_phase() {
    assert_eq!(&pattern(28)[..], b"abcdefghijklmnopqrstuvwxyzab");
    assert_eq!(first_pattern_mismatch(&pattern(100)[30..], 30), None);
    let mut body = pattern(100);
    body[57] = b'!';
    assert_eq!(first_pattern_mismatch(&body[10..], 10), Some(47));
}

#[test]
fn pipelined_responses_back_to_back_split_anywhere() {
    let mut stream = Vec::new();
    for _ in 0..3 {
        stream.extend(ok_with(&pattern(40)));
    }
    stream.extend(chunked(&[&pattern(40)[..13], &pattern(40)[13..]]));
    stream.extend(ok_with(&pattern(40)));
    let r = every_split(&stream, &expect_pattern(40));
    assert_eq!(r, vec![good(40); 5]);
}

#[test]
fn chunked_body_is_reassembled_and_checked() {
    let body = pattern(300);
    let stream = chunked(&[&body[..1], &body[1..200], &body[200..]]);
    let r = every_split(&stream, &expect_pattern(300));
    assert_eq!(r, vec![good(300)]);

    let mut bad = body.clone();
    bad[250] = b'A';
    let stream = chunked(&[&bad[..200], &bad[200..]]);
    let r = every_split(&stream, &expect_pattern(300));
    assert_eq!(r[0].verdict, Err(Failure::BodyBytes { offset: 250 }));
}

#[test]
fn chunked_framing_errors_are_protocol_errors() {
    let e = Expect::default();
    for bad in [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    ] {
        assert!(feed_in_pieces(bad, &[1], &e).is_err(), "{bad:?}");
        assert!(feed_in_pieces(bad, &[bad.len()], &e).is_err(), "{bad:?}");
    }
}

#[test]
fn wrong_length_is_a_body_length_failure_and_the_stream_stays_in_step() {
    let mut stream = ok_with(&pattern(99));
    stream.extend(ok_with(&pattern(101)));
    stream.extend(ok_with(&pattern(100)));
    let r = every_split(&stream, &expect_pattern(100));
    assert_eq!(
        r.iter().map(|r| r.verdict).collect::<Vec<_>>(),
        vec![
            Err(Failure::BodyLength {
                expected: 100,
                got: 99
            }),
            Err(Failure::BodyLength {
                expected: 100,
                got: 101
            }),
            Ok(())
        ]
    );
}

#[test]
fn wrong_bytes_name_the_first_offset() {
    let mut body = pattern(64);
    body[0] = b'b';
    body[40] = b'?';
    let r = every_split(&ok_with(&body), &expect_pattern(64));
    assert_eq!(r[0].verdict, Err(Failure::BodyBytes { offset: 0 }));

    let exact: Arc<[u8]> = Arc::from(&b"hello world"[..]);
    let e = Expect {
        body: BodyCheck::Exact(exact),
        ..Expect::default()
    };
    let r = every_split(&ok_with(b"hello World"), &e);
    assert_eq!(r[0].verdict, Err(Failure::BodyBytes { offset: 6 }));
    let r = every_split(&ok_with(b"hello world"), &e);
    assert_eq!(r[0].verdict, Ok(()));
    let r = every_split(&ok_with(b"hello worldly"), &e);
    assert_eq!(
        r[0].verdict,
        Err(Failure::BodyLength {
            expected: 11,
            got: 13
        })
    );
}

#[test]
fn bad_status_is_reported_and_its_body_skipped() {
    let mut stream = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nbusy!".to_vec();
    stream.extend(ok_with(&pattern(10)));
    let r = every_split(&stream, &expect_pattern(10));
    assert_eq!(
        r[0].verdict,
        Err(Failure::Status {
            expected: 200,
            got: 503
        })
    );
    assert_eq!(r[0].body_len, 5);
    assert_eq!(r[1], good(10));

    let any = Expect {
        status: None,
        ..Expect::default()
    };
    assert_eq!(every_split(&stream, &any)[0].verdict, Ok(()));
}

#[test]
fn connection_close_and_http10_are_seen() {
    let e = Expect::default();
    let r = every_split(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n",
        &e,
    );
    assert!(r[0].close);
    let r = every_split(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", &e);
    assert!(r[0].close);
    let r = every_split(
        b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n",
        &e,
    );
    assert!(!r[0].close);
}

#[test]
fn body_until_eof_completes_at_eof() {
    let e = expect_pattern(30);
    let mut p = ResponseParser::new();
    let mut stream = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    stream.extend(pattern(30));
    for b in stream.chunks(7) {
        assert_eq!(p.feed(b, &e).unwrap(), (b.len(), None));
    }
    let Eof::Complete(r) = p.eof(&e) else {
        panic!("not complete")
    };
    assert_eq!(
        r,
        Response {
            close: true,
            ..good(30)
        }
    );
    assert_eq!(p.eof(&e), Eof::Clean);
}

#[test]
fn eof_inside_a_response_is_truncation() {
    let e = expect_pattern(50);
    let stream = ok_with(&pattern(50));
    for cut in 1..stream.len() {
        let mut p = ResponseParser::new();
        let (n, r) = p.feed(&stream[..cut], &e).unwrap();
        assert_eq!((n, r), (cut, None));
        let head_len = stream.len() - 50;
        assert_eq!(
            p.eof(&e),
            Eof::Truncated {
                in_body: cut >= head_len
            },
            "cut at {cut}"
        );
    }
}

#[test]
fn head_requests_and_204_have_no_body() {
    let e = Expect {
        head_request: true,
        ..expect_pattern(1000)
    };
    let mut stream = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec();
    stream.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
    assert_eq!(every_split(&stream, &e), vec![good(0); 2]);

    let e = Expect {
        status: Some(204),
        ..Expect::default()
    };
    let r = every_split(b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", &e);
    assert_eq!(r[0].verdict, Ok(()));
}

#[test]
fn informational_heads_are_skipped() {
    let mut stream = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
    stream.extend(ok_with(&pattern(3)));
    assert_eq!(every_split(&stream, &expect_pattern(3)), vec![good(3)]);
}

#[test]
fn bad_heads_are_protocol_errors() {
    let e = Expect::default();
    for bad in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"garbage\r\n\r\n",
    ] {
        assert!(feed_in_pieces(bad, &[1], &e).is_err(), "{bad:?}");
        assert!(feed_in_pieces(bad, &[bad.len()], &e).is_err(), "{bad:?}");
    }
}

#[test]
fn an_endless_head_is_refused() {
    let mut p = ResponseParser::new();
    let e = Expect::default();
    p.feed(b"HTTP/1.1 200 OK\r\nX-Filler: ", &e).unwrap();
    let line = b"0123456789012345678901234567890123456789";
    let mut result = Ok((0, None));
    for _ in 0..2000 {
        result = p.feed(line, &e);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(ProtocolError::HeadTooLong));
}
