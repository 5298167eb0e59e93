//! Refusals: `Expect`, malformed and over-limit requests, and the request smuggling corpus.

use super::*;

// ---------------------------------------------------------------------------------------------
// Expect

#[test]
fn rfc9110_10_1_1_expect_100_continue_before_reading_the_body() {
    let r = all_ways(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_out(
        &r,
        &format!("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nServer: xgate\r\n{OCTET}{DATE}Content-Length: 2\r\n\r\nhi"),
        false,
    );
    // Sent as soon as the head is in, before any body byte.
    let app = app();
    let mut conn = HttpConn::new(HttpLimits::default());
    let mut out = [0u8; 4096];
    let head =
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    let p = conn.process(Instant::from_secs(1), &app, head, &mut out);
    assert!(show(&out[..p.produced]).starts_with("HTTP/1.1 100 Continue\r\n\r\n"));
}

#[test]
fn rfc9110_10_1_1_refused_request_gets_no_100_continue_and_closes() {
    let r = all_ways(
        b"POST /nope HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    );
    let s = show(&r.out);
    assert!(s.starts_with("HTTP/1.1 404 Not Found\r\n"), "{s}");
    assert!(s.contains("Connection: close\r\n"));
    assert!(r.closed);
    // Too large: 413 at once, no 100.
    let r = all_ways(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 99999999999\r\n\r\n");
    assert_out(&r, &error_response(413, "Content Too Large"), true);
}

#[test]
fn rfc9110_10_1_1_expect_without_body_sends_no_100() {
    let r = all_ways(b"GET /health HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n");
    assert_out(&r, &health(""), false);
}

#[test]
fn rfc9110_10_1_1_http10_ignores_100_continue() {
    let r = all_ways(b"POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi");
    assert!(show(&r.out).starts_with("HTTP/1.1 200 OK\r\n"));
}

#[test]
fn rfc9110_10_1_1_other_expectation_is_417() {
    let r = all_ways(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_out(&r, &error_response(417, "Expectation Failed"), true);
}

// ---------------------------------------------------------------------------------------------
// Errors

fn assert_refused(input: &[u8], status: u16, reason: &str) {
    let r = all_ways(input);
    assert_out(&r, &error_response(status, reason), true);
}

#[test]
fn rfc9112_3_2_missing_or_repeated_host_is_400() {
    assert_refused(b"GET /health HTTP/1.1\r\n\r\n", 400, "Bad Request");
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
        "Bad Request",
    );
    // RFC 9110 §7.2: an invalid Host value.
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost: a b\r\n\r\n",
        400,
        "Bad Request",
    );
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost: a/b\r\n\r\n",
        400,
        "Bad Request",
    );
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost: u@a\r\n\r\n",
        400,
        "Bad Request",
    );
    for ok in [
        &b"Host: [::1]:8080"[..],
        b"Host: example.com:80",
        b"Host: ",
        b"Host: 10.0.0.1",
    ] {
        let mut input = b"GET /health HTTP/1.1\r\n".to_vec();
        input.extend_from_slice(ok);
        input.extend_from_slice(b"\r\n\r\n");
        assert_out(&run(&input), &health(""), false);
    }
    // HTTP/1.0 may omit Host.
    assert!(show(&all_ways(b"GET /health HTTP/1.0\r\n\r\n").out).starts_with("HTTP/1.1 200 OK"));
}

#[test]
fn malformed_request_lines_are_400() {
    for input in [
        &b"GET  /health HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET /health\r\nHost: x\r\n\r\n",
        b"GET /hea lth HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health HTTP/1.1 \r\nHost: x\r\n\r\n",
        b"/health HTTP/1.1\r\nHost: x\r\n\r\n",
        b"G(T /health HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health FOO/1.1\r\nHost: x\r\n\r\n",
        b"GET example.com:80 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost x\r\n\r\n",
        b"GET /health HTTP/1.1\r\n: x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\x7f\r\n\r\n",
        b"GET /h\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
        // RFC 9112 §3.2: a request-target has no fragment.
        b"GET /health#top HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health?q=1# HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://x/health#f HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        assert_refused(input, 400, "Bad Request");
    }
}

#[test]
fn rfc9112_2_2_bare_cr_and_bare_lf_are_400() {
    assert_refused(b"GET /health HTTP/1.1\nHost: x\r\n\r\n", 400, "Bad Request");
    assert_refused(b"GET /health HTTP/1.1\r\nHost: x\n\r\n", 400, "Bad Request");
    assert_refused(b"GET /health HTTP/1.1\r\nHost: x\r\n\n", 400, "Bad Request");
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost: x\rY: z\r\n\r\n",
        400,
        "Bad Request",
    );
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\r",
        400,
        "Bad Request",
    );
    assert_refused(
        b"\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
        "Bad Request",
    );
}

#[test]
fn rfc9112_5_1_whitespace_before_colon_is_400() {
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost : x\r\n\r\n",
        400,
        "Bad Request",
    );
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost\t: x\r\n\r\n",
        400,
        "Bad Request",
    );
}

#[test]
fn rfc9112_5_2_obs_fold_is_400() {
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
        400,
        "Bad Request",
    );
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost: x\r\nX: a\r\n\tb\r\n\r\n",
        400,
        "Bad Request",
    );
    // RFC 9112 §2.2: whitespace between the start line and the first field.
    assert_refused(
        b"GET /health HTTP/1.1\r\n Host: x\r\n\r\n",
        400,
        "Bad Request",
    );
}

#[test]
fn nul_in_head_is_400() {
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost: x\x00y\r\n\r\n",
        400,
        "Bad Request",
    );
    assert_refused(
        b"GET /he\x00alth HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
        "Bad Request",
    );
}

#[test]
fn rfc9112_2_3_unsupported_version_is_505() {
    assert_refused(
        b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n",
        505,
        "HTTP Version Not Supported",
    );
    assert_refused(
        b"GET /health HTTP/1.2\r\nHost: x\r\n\r\n",
        505,
        "HTTP Version Not Supported",
    );
    assert_refused(
        b"GET /health HTTP/0.9\r\nHost: x\r\n\r\n",
        505,
        "HTTP Version Not Supported",
    );
}

#[test]
fn rfc9110_9_1_unknown_method_is_501() {
    assert_refused(
        b"BREW /health HTTP/1.1\r\nHost: x\r\n\r\n",
        501,
        "Not Implemented",
    );
}

#[test]
fn rfc9112_6_1_unknown_transfer_coding_is_501() {
    assert_refused(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        501,
        "Not Implemented",
    );
    assert_refused(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
        501,
        "Not Implemented",
    );
}

#[test]
fn rfc9112_6_3_chunked_not_final_is_400() {
    assert_refused(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        400,
        "Bad Request",
    );
    assert_refused(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "Bad Request");
    assert_refused(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        400,
        "Bad Request",
    );
}

#[test]
fn rfc9110_15_5_14_body_over_limit_is_413() {
    let limits = HttpLimits {
        max_body_len: 10,
        ..HttpLimits::default()
    };
    let r = run_all_ways(
        &app(),
        limits,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n",
        false,
        true,
    );
    assert_out(&r, &error_response(413, "Content Too Large"), true);
    // Chunked: the limit trips when a chunk size crosses it; the echo has started, so the
    // response is cut and the connection closed.
    let r = run_all_ways(
        &app(),
        limits,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n6\r\nabcdef\r\n0\r\n\r\n",
        false,
        true,
    );
    assert!(r.closed);
    assert!(show(&r.out).ends_with("5\r\nabcde\r\n"));
}

#[test]
fn rfc9112_3_uri_too_long_is_414() {
    let limits = HttpLimits {
        max_uri_len: 32,
        ..HttpLimits::default()
    };
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(32));
    let r = run_all_ways(&app(), limits, long.as_bytes(), false, true);
    assert_out(&r, &error_response(414, "URI Too Long"), true);
    // Decided before the request line ends.
    let very = format!("GET /{}", "a".repeat(200));
    let r = run_all_ways(&app(), limits, very.as_bytes(), false, false);
    assert_out(&r, &error_response(414, "URI Too Long"), true);
}

#[test]
fn rfc6585_5_too_many_or_too_large_headers_is_431() {
    let limits = HttpLimits {
        max_headers: 4,
        ..HttpLimits::default()
    };
    let input = b"GET /health HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    let r = run_all_ways(&app(), limits, input, false, true);
    assert_out(
        &r,
        &error_response(431, "Request Header Fields Too Large"),
        true,
    );
    let input = b"GET /health HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    let r = run_all_ways(&app(), limits, input, false, false);
    assert_out(&r, &health(""), false);

    let limits = HttpLimits {
        max_header_bytes: 64,
        ..HttpLimits::default()
    };
    let input = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "v".repeat(40)
    );
    let r = run_all_ways(&app(), limits, input.as_bytes(), false, true);
    assert_out(
        &r,
        &error_response(431, "Request Header Fields Too Large"),
        true,
    );
    // Exactly at the limit is fine.
    let input = b"GET /health HTTP/1.1\r\nHost: x\r\nX: vvvvvvvvvvvvvvvvvvvvvvvvvv\r\n\r\n";
    assert_eq!(input.len(), 64);
    let r = run_all_ways(&app(), limits, input, false, true);
    assert_out(&r, &health(""), false);
}

#[test]
fn rfc9112_7_1_bad_chunk_size_is_400() {
    // A skipped body is read before the answer starts, so any bad chunk gets a 400.
    let app = app_with_post_route();
    for body in [
        &b"zz\r\n"[..],
        b"3\r\nabc\r\nq\r\n",
        b"3\r\nabcd\r\n0\r\n\r\n",
        b"3\nabc\r\n0\r\n\r\n",
    ] {
        let mut input =
            b"POST /submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        input.extend_from_slice(body);
        let r = run_all_ways(&app, HttpLimits::default(), &input, false, true);
        assert_out(&r, &error_response(400, "Bad Request"), true);
    }
    // /echo writes its head once the first chunk-size line is known to be good.
    assert_refused(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        400,
        "Bad Request",
    );
    // After that the response has started: it is cut and the connection closed.
    let r = all_ways(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nzz\r\n",
    );
    assert!(r.closed);
    assert!(show(&r.out).ends_with("Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n"));
}

#[test]
fn rfc9112_7_1_chunked_body_over_limit_is_413() {
    let limits = HttpLimits {
        max_body_len: 10,
        ..HttpLimits::default()
    };
    let app = app_with_post_route();
    let input = b"POST /submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n6\r\nabcdef\r\n0\r\n\r\n";
    let r = run_all_ways(&app, limits, input, false, true);
    assert_out(&r, &error_response(413, "Content Too Large"), true);
    let r = run_all_ways(
        &app,
        limits,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n",
        false,
        true,
    );
    assert_out(&r, &error_response(413, "Content Too Large"), true);
}

#[test]
fn rfc9110_10_1_1_continue_then_body_then_answer_for_skipped_bodies() {
    let app = app_with_post_route();
    let input = b"POST /submit HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabcGET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let r = run_all_ways(&app, HttpLimits::default(), input, false, true);
    let want = format!(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nServer: xgate\r\n{DATE}Content-Length: 4\r\n\r\ndone{}",
        health("")
    );
    assert_out(&r, &want, false);
}

// ---------------------------------------------------------------------------------------------
// Request smuggling corpus: each must be refused with exactly one error response and a close,
// whatever follows (here, a request hidden in what a lenient peer would take as the body).

const SMUGGLED: &str = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";

fn smuggling_corpus() -> Vec<(&'static str, String, u16)> {
    let post = "POST /echo HTTP/1.1\r\nHost: x\r\n";
    let chunked_body = format!("0\r\n\r\n{SMUGGLED}");
    let cases: Vec<(&str, String, u16)> = vec![
        ("CL.TE", format!("{post}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_body}"), 400),
        ("TE.CL", format!("{post}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n{chunked_body}"), 400),
        ("TE.TE xchunked + CL", format!("{post}Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\n{chunked_body}"), 400),
        ("TE xchunked", format!("{post}Transfer-Encoding: xchunked\r\n\r\n{chunked_body}"), 501),
        ("TE leading space in value + CL", format!("{post}Transfer-Encoding:  chunked\r\nContent-Length: 5\r\n\r\n{chunked_body}"), 400),
        ("TE chunked, identity", format!("{post}Transfer-Encoding: chunked, identity\r\n\r\n{chunked_body}"), 400),
        ("TE identity", format!("{post}Transfer-Encoding: identity\r\n\r\n{chunked_body}"), 501),
        ("TE twice, chunked first", format!("{post}Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n{chunked_body}"), 400),
        ("TE chunked twice", format!("{post}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_body}"), 400),
        ("TE with parameters", format!("{post}Transfer-Encoding: chunked;q=1\r\n\r\n{chunked_body}"), 501),
        ("TE empty", format!("{post}Transfer-Encoding: \r\n\r\n{chunked_body}"), 400),
        ("TE vertical tab", format!("{post}Transfer-Encoding: \x0bchunked\r\n\r\n{chunked_body}"), 400),
        ("TE in HTTP/1.0", format!("POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_body}"), 400),
        ("TE line starting with space (obs-fold)", format!("{post}X: y\r\n Transfer-Encoding: chunked\r\n\r\n{chunked_body}"), 400),
        ("TE space before colon", format!("{post}Transfer-Encoding : chunked\r\n\r\n{chunked_body}"), 400),
        ("TE tab before colon", format!("{post}Transfer-Encoding\t: chunked\r\n\r\n{chunked_body}"), 400),
        ("TE first field after whitespace", format!("POST /echo HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: x\r\n\r\n{chunked_body}"), 400),
        ("TE bare CR", format!("{post}Transfer-Encoding: chunked\rX: y\r\n\r\n{chunked_body}"), 400),
        ("TE bare LF", format!("{post}Transfer-Encoding: chunked\nX: y\r\n\r\n{chunked_body}"), 400),
        ("CL duplicate, differing", format!("{post}Content-Length: 0\r\nContent-Length: 33\r\n\r\n{SMUGGLED}"), 400),
        ("CL list, differing", format!("{post}Content-Length: 0, 33\r\n\r\n{SMUGGLED}"), 400),
        ("CL plus sign", format!("{post}Content-Length: +33\r\n\r\n{SMUGGLED}"), 400),
        ("CL negative", format!("{post}Content-Length: -1\r\n\r\n{SMUGGLED}"), 400),
        ("CL hex", format!("{post}Content-Length: 0x21\r\n\r\n{SMUGGLED}"), 400),
        ("CL inner space", format!("{post}Content-Length: 3 3\r\n\r\n{SMUGGLED}"), 400),
        ("CL empty", format!("{post}Content-Length: \r\n\r\n{SMUGGLED}"), 400),
        ("CL overflow", format!("{post}Content-Length: 18446744073709551616\r\n\r\n{SMUGGLED}"), 400),
        ("CL obs-fold", format!("{post}Content-Length: 0\r\n 33\r\n\r\n{SMUGGLED}"), 400),
        ("CL space before colon", format!("{post}Content-Length : 33\r\n\r\n{SMUGGLED}"), 400),
        ("NUL in field name", format!("{post}Content-Length\x00: 33\r\n\r\n{SMUGGLED}"), 400),
        ("NUL in field value", format!("{post}Content-Length: 3\x003\r\n\r\n{SMUGGLED}"), 400),
        ("bare LF ends the head", format!("{post}Content-Length: 0\n\n{SMUGGLED}"), 400),
        ("bare CR in request line", format!("POST /echo\rHTTP/1.1\r\nHost: x\r\n\r\n{SMUGGLED}"), 400),
        ("chunk size hex overflow", format!("{post}Transfer-Encoding: chunked\r\n\r\n1000000000000000000000000000021\r\n{SMUGGLED}"), 400),
        ("chunk size 2^64 - 1", format!("{post}Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n{SMUGGLED}"), 413),
        ("chunk size with sign", format!("{post}Transfer-Encoding: chunked\r\n\r\n+21\r\n{SMUGGLED}"), 400),
        ("chunk size 0x prefix", format!("{post}Transfer-Encoding: chunked\r\n\r\n0x21\r\n{SMUGGLED}"), 400),
        ("chunk size bare LF", format!("{post}Transfer-Encoding: chunked\r\n\r\n0\n\r\n{SMUGGLED}"), 400),
        ("two Host", format!("POST /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 0\r\n\r\n{SMUGGLED}"), 400),
    ];
    cases
}

#[test]
fn request_smuggling_corpus_is_refused_with_one_answer_and_close() {
    let app = app();
    for (name, input, status) in smuggling_corpus() {
        let r = run_all_ways(&app, HttpLimits::default(), input.as_bytes(), false, false);
        let reason = crate::app::reason_phrase(status);
        assert_eq!(show(&r.out), error_response(status, reason), "{name}");
        assert!(r.closed, "{name}");
        // And with every split, for a few output sizes.
        for cut in 1..input.len() {
            for cap in [1, 64] {
                let s = run_with(
                    &app,
                    HttpLimits::default(),
                    input.as_bytes(),
                    &[cut],
                    cap,
                    false,
                );
                assert_eq!(s.out, r.out, "{name}: split {cut} output {cap}");
            }
        }
    }
}

#[test]
fn request_smuggling_corpus_on_a_body_skipping_route() {
    // Same shapes against a static POST route (body skipped rather than echoed).
    let app = app_with_post_route();
    for (name, input, status) in smuggling_corpus() {
        let input = input.replace("POST /echo", "POST /submit");
        let r = run_all_ways(&app, HttpLimits::default(), input.as_bytes(), false, false);
        let reason = crate::app::reason_phrase(status);
        assert_eq!(show(&r.out), error_response(status, reason), "{name}");
        assert!(r.closed, "{name}");
    }
}
