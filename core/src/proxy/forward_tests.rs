//! Each test is named after the rule it proves; all build on `rules()` and `REQ`.

use super::*;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};

/// A client's field lines, as `ClientRequest::headers` borrows them.
type Fields<'a> = &'a [(&'a [u8], &'a [u8])];

const REQ: ClientRequest<'static> = ClientRequest {
    method: b"GET",
    target: b"/a?b=c",
    version_minor: 1,
    host: Some(b"example.com"),
    headers: &[],
    body: BodyFraming::None,
};

fn client_v4() -> ClientConn {
    ClientConn {
        peer: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 4711),
        tls: false,
    }
}

fn rules(config: ForwardConfig) -> ForwardRules {
    ForwardRules::new(&config).expect("valid config")
}

/// The default rules without `X-Forwarded-*`: only what every route does.
fn plain() -> ForwardRules {
    rules(ForwardConfig {
        x_forwarded: false,
        ..ForwardConfig::default()
    })
}

fn head_with(rules: &ForwardRules, req: &ClientRequest<'_>, client: ClientConn) -> String {
    let mut buf = [0u8; 4096];
    let n = rules
        .write_head(req, client, true, &mut buf)
        .expect("head written");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn head(rules: &ForwardRules, req: &ClientRequest<'_>) -> String {
    head_with(rules, req, client_v4())
}

/// The field lines of a head (request line and empty line left out).
fn field_lines(head: &str) -> Vec<&str> {
    let body = head
        .strip_suffix("\r\n\r\n")
        .expect("ends with the empty line");
    body.split("\r\n").skip(1).collect()
}

#[test]
fn whole_head_in_order() {
    let headers: Fields<'_> = &[
        (b"Host", b"example.com"),
        (b"User-Agent", b"curl/8.0"),
        (b"Accept", b"*/*"),
        (b"X-Trace", b"a,  b"),
    ];
    let got = head(&plain(), &ClientRequest { headers, ..REQ });
    assert_eq!(
        got,
        "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\
         X-Trace: a,  b\r\nVia: 1.1 xgate\r\n\r\n"
    );
}

#[test]
fn hop_by_hop_fields_are_dropped() {
    for name in [
        &b"Connection"[..],
        b"keep-alive",
        b"PROXY-CONNECTION",
        b"Te",
        b"Trailer",
        b"Upgrade",
        b"Transfer-Encoding",
    ] {
        let headers: Fields<'_> = &[(b"A", b"1"), (name, b"x"), (b"B", b"2")];
        let got = head(&plain(), &ClientRequest { headers, ..REQ });
        assert_eq!(
            field_lines(&got),
            ["Host: example.com", "A: 1", "B: 2", "Via: 1.1 xgate"],
            "{}",
            String::from_utf8_lossy(name)
        );
    }
}

#[test]
fn fields_named_by_connection_are_dropped() {
    let headers: Fields<'_> = &[
        (b"x-foo", b"1"),
        (b"Connection", b", X-Foo ,keep-alive"),
        (b"X-Keep", b"2"),
        (b"X-BAR", b"3"),
        (b"Keep-Alive", b"timeout=5"),
        (b"connection", b"\tx-bar\t,,"),
        (b"X-Foo", b"4"),
        (b"X-Foobar", b"5"),
    ];
    let got = head(&plain(), &ClientRequest { headers, ..REQ });
    assert_eq!(
        field_lines(&got),
        [
            "Host: example.com",
            "X-Keep: 2",
            "X-Foobar: 5",
            "Via: 1.1 xgate"
        ]
    );
}

#[test]
fn connection_cannot_remove_the_host_or_the_framing() {
    let headers: Fields<'_> = &[
        (b"Host", b"example.com"),
        (b"Content-Length", b"3"),
        (b"Connection", b"host, content-length"),
    ];
    let got = head(
        &plain(),
        &ClientRequest {
            headers,
            body: BodyFraming::Length(3),
            ..REQ
        },
    );
    assert_eq!(
        field_lines(&got),
        ["Host: example.com", "Content-Length: 3", "Via: 1.1 xgate"]
    );
}

#[test]
fn connection_named_fields_leave_the_combined_lists() {
    // A previous hop's Via or X-Forwarded-For declared hop-by-hop is not carried on.
    let headers: Fields<'_> = &[
        (b"Via", b"1.1 front"),
        (b"X-Forwarded-For", b"198.51.100.1"),
        (b"Connection", b"Via, X-Forwarded-For"),
    ];
    let got = head(
        &rules(ForwardConfig::default()),
        &ClientRequest { headers, ..REQ },
    );
    assert_eq!(
        field_lines(&got),
        [
            "Host: example.com",
            "Via: 1.1 xgate",
            "X-Forwarded-For: 192.0.2.7",
            "X-Forwarded-Proto: http",
            "X-Forwarded-Host: example.com"
        ]
    );
}

#[test]
fn end_to_end_values_are_byte_exact_obs_text_included() {
    let headers: Fields<'_> = &[
        (b"X-Obs", b"caf\xe9 \x80\xff"),
        (b"x-lower", b"a\tb"),
        (b"Empty", b""),
    ];
    let mut buf = [0u8; 512];
    let n = plain()
        .write_head(
            &ClientRequest { headers, ..REQ },
            client_v4(),
            true,
            &mut buf,
        )
        .unwrap();
    let expected: &[u8] =
        b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-Obs: caf\xe9 \x80\xff\r\n\
        x-lower: a\tb\r\nEmpty: \r\nVia: 1.1 xgate\r\n\r\n";
    assert_eq!(&buf[..n], expected);
}

#[test]
fn content_length_is_written_from_the_framing() {
    let with_length: Fields<'_> = &[(b"content-length", b"42"), (b"A", b"1")];
    let chunked: Fields<'_> = &[(b"Transfer-Encoding", b"gzip, chunked"), (b"A", b"1")];
    let zero: Fields<'_> = &[(b"Content-Length", b"0")];
    let cases: [(Fields<'_>, BodyFraming, &[&str]); 5] = [
        (
            with_length,
            BodyFraming::Length(42),
            &["A: 1", "Content-Length: 42"],
        ),
        // The gateway decodes a chunked body and sends it with its length.
        (
            chunked,
            BodyFraming::Length(18_446_744_073_709_551_615),
            &["A: 1", "Content-Length: 18446744073709551615"],
        ),
        (
            chunked,
            BodyFraming::Chunked,
            &["A: 1", "Transfer-Encoding: chunked"],
        ),
        (zero, BodyFraming::None, &["Content-Length: 0"]),
        (&[], BodyFraming::None, &[]),
    ];
    for (headers, body, fields) in cases {
        let got = head(
            &plain(),
            &ClientRequest {
                method: b"POST",
                headers,
                body,
                ..REQ
            },
        );
        let mut expected = vec!["Host: example.com"];
        expected.extend_from_slice(fields);
        expected.push("Via: 1.1 xgate");
        assert_eq!(field_lines(&got), expected, "{body:?}");
    }
}

#[test]
fn upstream_connection_close_only_when_asked() {
    let mut buf = [0u8; 256];
    let n = plain()
        .write_head(&REQ, client_v4(), false, &mut buf)
        .unwrap();
    assert_eq!(
        &buf[..n],
        b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\nVia: 1.1 xgate\r\n\r\n"
    );
    assert!(!head(&plain(), &REQ).contains("Connection"));
}

#[test]
fn via_names_the_received_version_and_keeps_the_clients_list() {
    let headers: Fields<'_> = &[
        (b"Via", b"1.0 fred, 1.1 p.example.net"),
        (b"A", b"1"),
        (b"via", b" HTTP/1.1 q "),
    ];
    let cases = [
        (0, "1.0 fred, 1.1 p.example.net, HTTP/1.1 q, 1.0 xgate"),
        (1, "1.0 fred, 1.1 p.example.net, HTTP/1.1 q, 1.1 xgate"),
    ];
    let pseudonym = rules(ForwardConfig {
        via: "edge-7".into(),
        x_forwarded: false,
        ..ForwardConfig::default()
    });
    for (version_minor, via) in cases {
        let req = ClientRequest {
            version_minor,
            headers,
            ..REQ
        };
        let got = head(&plain(), &req);
        assert!(got.starts_with("GET /a?b=c HTTP/1.1\r\n"), "{got}");
        assert_eq!(
            field_lines(&got),
            ["Host: example.com", "A: 1", &format!("Via: {via}")]
        );
        let got = head(
            &pseudonym,
            &ClientRequest {
                headers: &[],
                ..req
            },
        );
        assert!(got.contains(&format!("\r\nVia: 1.{version_minor} edge-7\r\n")));
    }
}

#[test]
fn x_forwarded_for_is_appended_to_the_clients_list() {
    let headers: Fields<'_> = &[
        (b"X-Forwarded-For", b"203.0.113.9, 198.51.100.2"),
        (b"X-Forwarded-Proto", b"https"),
        (b"A", b"1"),
        (b"x-forwarded-for", b"2001:db8::9"),
        (b"X-Forwarded-Host", b"evil.example"),
    ];
    let got = head(
        &rules(ForwardConfig::default()),
        &ClientRequest { headers, ..REQ },
    );
    assert_eq!(
        field_lines(&got),
        [
            "Host: example.com",
            "A: 1",
            "Via: 1.1 xgate",
            "X-Forwarded-For: 203.0.113.9, 198.51.100.2, 2001:db8::9, 192.0.2.7",
            "X-Forwarded-Proto: http",
            "X-Forwarded-Host: example.com"
        ]
    );
}

#[test]
fn x_forwarded_for_names_ipv6_bare_and_mapped_ipv4_as_ipv4() {
    let cases = [
        (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            "2001:db8::1",
        ),
        (
            Ipv4Addr::new(198, 51, 100, 3).to_ipv6_mapped(),
            "198.51.100.3",
        ),
    ];
    for (ip, shown) in cases {
        let client = ClientConn {
            peer: SocketAddr::V6(SocketAddrV6::new(ip, 443, 0, 3)),
            tls: true,
        };
        let got = head_with(&rules(ForwardConfig::default()), &REQ, client);
        assert!(
            got.contains(&format!(
                "\r\nX-Forwarded-For: {shown}\r\nX-Forwarded-Proto: https\r\n"
            )),
            "{got}"
        );
    }
}

#[test]
fn x_forwarded_without_a_client_host_has_no_x_forwarded_host() {
    let r = rules(ForwardConfig {
        upstream_host: Some("backend:8080".into()),
        ..ForwardConfig::default()
    });
    let got = head(
        &r,
        &ClientRequest {
            version_minor: 0,
            host: None,
            ..REQ
        },
    );
    assert_eq!(
        field_lines(&got),
        [
            "Host: backend:8080",
            "Via: 1.0 xgate",
            "X-Forwarded-For: 192.0.2.7",
            "X-Forwarded-Proto: http"
        ]
    );
}

#[test]
fn forwarded_quotes_ipv6_ports_and_hosts_that_are_not_tokens() {
    let r = rules(ForwardConfig {
        x_forwarded: false,
        forwarded: true,
        ..ForwardConfig::default()
    });
    let v6 = ClientConn {
        peer: SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            4711,
        ),
        tls: true,
    };
    let got = head_with(&r, &REQ, v6);
    assert!(
        got.contains("\r\nForwarded: for=\"[2001:db8::1]:4711\";proto=https;host=example.com\r\n"),
        "{got}"
    );
    let got = head(
        &r,
        &ClientRequest {
            host: Some(b"example.com:8443"),
            ..REQ
        },
    );
    assert!(
        got.contains(
            "\r\nForwarded: for=\"192.0.2.7:4711\";proto=http;host=\"example.com:8443\"\r\n"
        ),
        "{got}"
    );
    let got = head(
        &r,
        &ClientRequest {
            host: Some(b"[::1]:80"),
            ..REQ
        },
    );
    assert!(got.contains(";host=\"[::1]:80\"\r\n"), "{got}");
}

#[test]
fn forwarded_is_appended_to_the_clients_elements() {
    let r = rules(ForwardConfig {
        x_forwarded: false,
        forwarded: true,
        ..ForwardConfig::default()
    });
    let headers: Fields<'_> = &[
        (b"Forwarded", b"for=192.0.2.43, for=\"[2001:db8:cafe::17]\""),
        (b"A", b"1"),
        (b"forwarded", b"for=unknown;by=_hidden"),
    ];
    let got = head(&r, &ClientRequest { headers, ..REQ });
    assert_eq!(
        field_lines(&got),
        [
            "Host: example.com",
            "A: 1",
            "Via: 1.1 xgate",
            "Forwarded: for=192.0.2.43, for=\"[2001:db8:cafe::17]\", for=unknown;by=_hidden, \
             for=\"192.0.2.7:4711\";proto=http;host=example.com"
        ]
    );
}

#[test]
fn forwarded_values_escape_quotes_and_backslashes() {
    let mut buf = [0u8; 64];
    let mut w = HeadBuf::new(&mut buf);
    w.put_token_or_quoted(b"a\"b\\c:d").unwrap();
    w.put(b" ").unwrap();
    w.put_token_or_quoted(b"plain.host").unwrap();
    let n = w.len();
    assert_eq!(&buf[..n], b"\"a\\\"b\\\\c:d\" plain.host");
}

#[test]
fn removing_a_list_the_gateway_writes_keeps_only_this_hop() {
    let r = rules(ForwardConfig {
        forwarded: true,
        remove_headers: vec!["x-forwarded-for".into(), "Forwarded".into()],
        ..ForwardConfig::default()
    });
    let headers: Fields<'_> = &[
        (b"X-Forwarded-For", b"10.0.0.1"),
        (b"Forwarded", b"for=10.0.0.1"),
    ];
    let got = head(&r, &ClientRequest { headers, ..REQ });
    assert!(got.contains("\r\nX-Forwarded-For: 192.0.2.7\r\n"), "{got}");
    assert!(
        got.contains("\r\nForwarded: for=\"192.0.2.7:4711\";proto=http;host=example.com\r\n"),
        "{got}"
    );
    assert!(!got.contains("10.0.0.1"), "{got}");
}

#[test]
fn without_x_forwarded_the_clients_fields_pass_unchanged() {
    let headers: Fields<'_> = &[
        (b"X-Forwarded-For", b"10.0.0.1"),
        (b"X-Forwarded-Proto", b"https"),
        (b"Forwarded", b"for=10.0.0.1"),
    ];
    let got = head(&plain(), &ClientRequest { headers, ..REQ });
    assert_eq!(
        field_lines(&got),
        [
            "Host: example.com",
            "X-Forwarded-For: 10.0.0.1",
            "X-Forwarded-Proto: https",
            "Forwarded: for=10.0.0.1",
            "Via: 1.1 xgate"
        ]
    );
}

#[test]
fn strip_prefix_at_segment_boundaries_only() {
    let r = rules(ForwardConfig {
        x_forwarded: false,
        strip_prefix: Some("/api".into()),
        ..ForwardConfig::default()
    });
    let cases: [(&[u8], &str); 9] = [
        (b"/api/x", "/x"),
        (b"/api/x/y?z=1", "/x/y?z=1"),
        (b"/api", "/"),
        (b"/api/", "/"),
        (b"/api?q=/api", "/?q=/api"),
        (b"/apix", "/apix"),
        (b"/API/x", "/API/x"),
        (b"/other/api/x", "/other/api/x"),
        (b"*", "*"),
    ];
    for (target, upstream) in cases {
        let got = head(
            &r,
            &ClientRequest {
                method: if target == b"*" { b"OPTIONS" } else { b"GET" },
                target,
                ..REQ
            },
        );
        let line = got.split("\r\n").next().unwrap();
        assert!(
            line.ends_with(&format!(" {upstream} HTTP/1.1")),
            "{:?} -> {line}",
            String::from_utf8_lossy(target)
        );
    }
}

#[test]
fn set_headers_replace_and_remove_headers_drop() {
    let r = rules(ForwardConfig {
        x_forwarded: false,
        set_headers: vec![
            ("X-Route".into(), "api".into()),
            ("user-agent".into(), "xgate-probe/1".into()),
        ],
        remove_headers: vec!["Cookie".into(), "Proxy-Authorization".into()],
        ..ForwardConfig::default()
    });
    let headers: Fields<'_> = &[
        (b"User-Agent", b"curl/8.0"),
        (b"cookie", b"s=1"),
        (b"A", b"1"),
        (b"X-ROUTE", b"spoofed"),
        (b"Proxy-Authorization", b"Basic eDp5"),
        (b"COOKIE", b"t=2"),
    ];
    let got = head(&r, &ClientRequest { headers, ..REQ });
    assert_eq!(
        field_lines(&got),
        [
            "Host: example.com",
            "A: 1",
            "Via: 1.1 xgate",
            "X-Route: api",
            "user-agent: xgate-probe/1"
        ]
    );
}

#[test]
fn upstream_host_replaces_the_clients_host() {
    let r = rules(ForwardConfig {
        upstream_host: Some("10.0.0.5:8080".into()),
        ..ForwardConfig::default()
    });
    let headers: Fields<'_> = &[(b"Host", b"example.com")];
    let got = head(&r, &ClientRequest { headers, ..REQ });
    assert_eq!(
        field_lines(&got),
        [
            "Host: 10.0.0.5:8080",
            "Via: 1.1 xgate",
            "X-Forwarded-For: 192.0.2.7",
            "X-Forwarded-Proto: http",
            "X-Forwarded-Host: example.com"
        ]
    );
}

#[test]
fn no_host_to_send_is_refused() {
    let req = ClientRequest {
        version_minor: 0,
        host: None,
        ..REQ
    };
    assert_eq!(
        plain().write_head(&req, client_v4(), true, &mut [0u8; 256]),
        Err(ForwardError::MissingHost)
    );
    // An empty Host (a target URI without authority) is sent empty, and not reported.
    let got = head(
        &rules(ForwardConfig::default()),
        &ClientRequest {
            host: Some(b""),
            ..REQ
        },
    );
    assert_eq!(
        field_lines(&got),
        [
            "Host: ",
            "Via: 1.1 xgate",
            "X-Forwarded-For: 192.0.2.7",
            "X-Forwarded-Proto: http"
        ]
    );
}

#[test]
fn expect_is_kept_from_http11_and_dropped_from_http10() {
    let headers: Fields<'_> = &[(b"Expect", b"100-continue"), (b"A", b"1")];
    for (version_minor, kept) in [(1, true), (0, false)] {
        let got = head(
            &plain(),
            &ClientRequest {
                method: b"PUT",
                version_minor,
                headers,
                body: BodyFraming::Length(1),
                ..REQ
            },
        );
        assert_eq!(got.contains("\r\nExpect: 100-continue\r\n"), kept, "{got}");
        assert!(got.contains("\r\nA: 1\r\n"));
    }
}

#[test]
fn invalid_config_is_refused_naming_the_key() {
    let bad = |config: ForwardConfig| ForwardRules::new(&config).unwrap_err();
    let d = ForwardConfig::default;
    assert_eq!(
        bad(ForwardConfig {
            via: "x gate".into(),
            ..d()
        }),
        ForwardConfigError::BadVia("x gate".into())
    );
    assert_eq!(
        bad(ForwardConfig {
            via: String::new(),
            ..d()
        }),
        ForwardConfigError::BadVia(String::new())
    );
    for prefix in ["api", "/", "/api/", "/a?b", "/a#b", "/a b", "/\u{e9}", ""] {
        assert_eq!(
            bad(ForwardConfig {
                strip_prefix: Some(prefix.into()),
                ..d()
            }),
            ForwardConfigError::BadStripPrefix(prefix.into()),
            "{prefix:?}"
        );
    }
    for host in ["", "a b", "a\r\nX: y", "a/b"] {
        assert_eq!(
            bad(ForwardConfig {
                upstream_host: Some(host.into()),
                ..d()
            }),
            ForwardConfigError::BadUpstreamHost(host.into())
        );
    }
    assert_eq!(
        bad(ForwardConfig {
            set_headers: vec![("X Bad".into(), "v".into())],
            ..d()
        }),
        ForwardConfigError::BadHeaderName {
            key: "set_headers",
            name: "X Bad".into()
        }
    );
    assert_eq!(
        bad(ForwardConfig {
            remove_headers: vec!["X:".into()],
            ..d()
        }),
        ForwardConfigError::BadHeaderName {
            key: "remove_headers",
            name: "X:".into()
        }
    );
    for value in [
        "a\r\nInjected: 1",
        "a\nb",
        "a\0",
        " padded",
        "padded\t",
        "del\x7f",
    ] {
        assert_eq!(
            bad(ForwardConfig {
                set_headers: vec![("X-A".into(), value.into())],
                ..d()
            }),
            ForwardConfigError::BadHeaderValue {
                key: "set_headers",
                name: "X-A".into()
            },
            "{value:?}"
        );
    }
    for name in [
        "Host",
        "content-length",
        "Transfer-Encoding",
        "Connection",
        "keep-alive",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Upgrade",
        "Via",
        "X-Forwarded-For",
        "x-forwarded-proto",
        "X-Forwarded-Host",
    ] {
        let err = bad(ForwardConfig {
            set_headers: vec![(name.into(), "v".into())],
            ..d()
        });
        assert!(
            matches!(&err, ForwardConfigError::ReservedHeader { key: "set_headers", name: n, .. } if n == name),
            "{name}: {err:?}"
        );
    }
    let err = bad(ForwardConfig {
        forwarded: true,
        set_headers: vec![("forwarded".into(), "for=x".into())],
        ..d()
    });
    assert!(matches!(err, ForwardConfigError::ReservedHeader { .. }));
    let err = bad(ForwardConfig {
        remove_headers: vec!["Via".into()],
        ..d()
    });
    assert!(matches!(
        err,
        ForwardConfigError::ReservedHeader {
            key: "remove_headers",
            ..
        }
    ));
    assert_eq!(
        bad(ForwardConfig {
            set_headers: vec![("X-A".into(), "1".into())],
            remove_headers: vec!["x-a".into()],
            ..d()
        }),
        ForwardConfigError::DuplicateHeader {
            key: "remove_headers",
            name: "x-a".into()
        }
    );
    assert_eq!(
        bad(ForwardConfig {
            set_headers: vec![("X-A".into(), "1".into()), ("X-a".into(), "2".into())],
            ..d()
        }),
        ForwardConfigError::DuplicateHeader {
            key: "set_headers",
            name: "X-a".into()
        }
    );
    // The X-Forwarded-* and Forwarded may be set when the gateway does not write them.
    ForwardRules::new(&ForwardConfig {
        x_forwarded: false,
        set_headers: vec![
            ("X-Forwarded-Proto".into(), "https".into()),
            ("Forwarded".into(), "proto=https".into()),
        ],
        ..d()
    })
    .expect("not reserved without x_forwarded/forwarded");
    assert!(bad(ForwardConfig {
        via: "a,b".into(),
        ..d()
    })
    .to_string()
    .starts_with("via: \"a,b\""));
}

#[test]
fn response_rules_are_validated_and_refuse_the_fields_the_gateway_writes() {
    let bad = |c: ForwardConfig| ForwardRules::new(&c).unwrap_err();
    let d = ForwardConfig::default;
    for name in [
        "content-length",
        "Transfer-Encoding",
        "Connection",
        "Keep-Alive",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Upgrade",
        "Via",
        "Date",
    ] {
        let err = bad(ForwardConfig {
            response_set_headers: vec![(name.into(), "v".into())],
            ..d()
        });
        assert!(
            matches!(&err, ForwardConfigError::ReservedHeader { key: "response_set_headers", name: n, .. } if n == name),
            "{name}: {err:?}"
        );
        let err = bad(ForwardConfig {
            response_remove_headers: vec![name.into()],
            ..d()
        });
        assert!(
            matches!(&err, ForwardConfigError::ReservedHeader { key: "response_remove_headers", name: n, .. } if n == name),
            "{name}: {err:?}"
        );
    }
    assert_eq!(
        bad(ForwardConfig {
            response_set_headers: vec![("X-A".into(), "a\r\nInjected: 1".into())],
            ..d()
        }),
        ForwardConfigError::BadHeaderValue {
            key: "response_set_headers",
            name: "X-A".into()
        }
    );
    assert_eq!(
        bad(ForwardConfig {
            response_remove_headers: vec!["X Y".into()],
            ..d()
        }),
        ForwardConfigError::BadHeaderName {
            key: "response_remove_headers",
            name: "X Y".into()
        }
    );
    assert_eq!(
        bad(ForwardConfig {
            response_set_headers: vec![("Server".into(), "gw".into())],
            response_remove_headers: vec!["server".into()],
            ..d()
        }),
        ForwardConfigError::DuplicateHeader {
            key: "response_remove_headers",
            name: "server".into()
        }
    );
    // The two directions are ruled apart: one name in each is no duplicate, and a request's
    // Date or Host is the client's to send, while the response rules may name Host.
    let rules = ForwardRules::new(&ForwardConfig {
        set_headers: vec![("Date".into(), "x".into())],
        remove_headers: vec!["Server".into()],
        response_remove_headers: vec!["Server".into(), "Host".into()],
        response_set_headers: vec![("X-Forwarded-For".into(), "none".into())],
        ..d()
    })
    .expect("valid");
    assert_eq!(
        rules.client_head_rules().added_len(),
        "X-Forwarded-For: none\r\n".len()
    );
    assert_eq!(
        ForwardRules::new(&d()).unwrap().client_head_rules(),
        super::super::response::ClientHeadRules::new(rules.via())
    );
}

#[test]
fn malformed_requests_are_refused_before_writing() {
    let headers: Fields<'_> = &[(b"A", b"1"), (b"B", b"x\r\nInjected: 1")];
    let cases: [(ClientRequest<'_>, RequestPart); 10] = [
        (
            ClientRequest {
                method: b"G T",
                ..REQ
            },
            RequestPart::Method,
        ),
        (ClientRequest { method: b"", ..REQ }, RequestPart::Method),
        (
            ClientRequest {
                target: b"/a b",
                ..REQ
            },
            RequestPart::Target,
        ),
        (
            ClientRequest {
                target: b"http://example.com/",
                ..REQ
            },
            RequestPart::Target,
        ),
        (
            ClientRequest {
                target: b"/caf\xc3\xa9",
                ..REQ
            },
            RequestPart::Target,
        ),
        (ClientRequest { target: b"", ..REQ }, RequestPart::Target),
        (
            ClientRequest {
                host: Some(b"a\r\nX: y"),
                ..REQ
            },
            RequestPart::Host,
        ),
        (ClientRequest { headers, ..REQ }, RequestPart::Field(1)),
        (
            ClientRequest {
                headers: &[(b"A", b"1\n"), (b"B", b"2")],
                ..REQ
            },
            RequestPart::Field(0),
        ),
        (
            ClientRequest {
                headers: &[(b"A", b"1"), (b"B", b"2"), (b"Bad Name", b"3")],
                ..REQ
            },
            RequestPart::Field(2),
        ),
    ];
    for (req, part) in cases {
        let mut buf = [0xaau8; 256];
        assert_eq!(
            plain().write_head(&req, client_v4(), true, &mut buf),
            Err(ForwardError::Malformed(part))
        );
        assert!(buf.iter().all(|&b| b == 0xaa), "{part}: nothing written");
    }
    let nul: Fields<'_> = &[(b"A", b"\0")];
    assert_eq!(
        plain().write_head(
            &ClientRequest {
                headers: nul,
                ..REQ
            },
            client_v4(),
            true,
            &mut [0u8; 256]
        ),
        Err(ForwardError::Malformed(RequestPart::Field(0)))
    );
}

#[test]
fn a_small_buffer_is_head_too_large_at_every_length() {
    let r = rules(ForwardConfig {
        forwarded: true,
        strip_prefix: Some("/a".into()),
        set_headers: vec![("X-Set".into(), "1".into())],
        ..ForwardConfig::default()
    });
    let headers: Fields<'_> = &[
        (b"Via", b"1.0 fred"),
        (b"X-Forwarded-For", b"10.1.1.1"),
        (b"Forwarded", b"for=10.1.1.1"),
        (b"Accept", b"*/*"),
        (b"Content-Length", b"1234567"),
    ];
    let req = ClientRequest {
        headers,
        body: BodyFraming::Length(1_234_567),
        ..REQ
    };
    let client = ClientConn {
        peer: SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 3, 4, 5, 6)),
            65535,
        ),
        tls: true,
    };
    let mut full = [0u8; 1024];
    let len = r.write_head(&req, client, false, &mut full).unwrap();
    for size in 0..len {
        let mut buf = vec![0u8; size];
        assert_eq!(
            r.write_head(&req, client, false, &mut buf),
            Err(ForwardError::HeadTooLarge),
            "size {size}"
        );
    }
    let mut exact = vec![0u8; len];
    assert_eq!(r.write_head(&req, client, false, &mut exact), Ok(len));
    assert_eq!(exact, full[..len]);
}

/// Hop-by-hop fields (RFC 9110 §7.6.1, RFC 9112 §7), lower-case: the model `known` is
/// checked against.
const HOP_BY_HOP: [&[u8]; 7] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"upgrade",
    b"transfer-encoding",
];

#[test]
fn byte_tables_agree_with_their_definitions() {
    for b in 0..=255u8 {
        assert_eq!(TCHAR[usize::from(b)], crate::app::is_tchar(b), "{b:#x}");
        let host = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&b);
        assert_eq!(HOST_BYTE[usize::from(b)], host, "{b:#x}");
    }
}

#[test]
fn known_names_match_without_regard_to_case_only_in_full() {
    for name in HOP_BY_HOP {
        assert_eq!(known(name), Known::HopByHop);
        assert_eq!(known(&name.to_ascii_uppercase()), Known::HopByHop);
        assert_eq!(known(&name[1..]), Known::Other);
        assert_eq!(known(&[name, &b"x"[..]].concat()), Known::Other);
    }
    let cases: [(&[u8], Known); 10] = [
        (b"Host", Known::Host),
        (b"content-LENGTH", Known::ContentLength),
        (b"Expect", Known::Expect),
        (b"Max-Forwards", Known::MaxForwards),
        (b"VIA", Known::Via),
        (b"X-Forwarded-For", Known::XForwardedFor),
        (b"x-forwarded-proto", Known::XForwardedSingle),
        (b"X-Forwarded-Host", Known::XForwardedSingle),
        (b"Forwarded", Known::Forwarded),
        (b"X-Forwarded-Port", Known::Other),
    ];
    for (name, class) in cases {
        assert_eq!(known(name), class, "{}", String::from_utf8_lossy(name));
    }
}

#[test]
fn connection_options_past_the_cap_are_still_honoured() {
    // 20 options, the last naming a field: gathered up to the cap, then read again.
    let many = (0..19)
        .map(|i| format!("x-opt-{i}"))
        .chain(["X-Last".to_string()])
        .collect::<Vec<_>>()
        .join(", ");
    let headers: Vec<(&[u8], &[u8])> = vec![
        (b"Connection", many.as_bytes()),
        (b"X-Opt-3", b"1"),
        (b"X-Last", b"2"),
        (b"X-Kept", b"3"),
    ];
    let connection = ConnectionOptions::gather(&headers);
    assert!(connection.overflow);
    let got = head(
        &plain(),
        &ClientRequest {
            headers: &headers,
            ..REQ
        },
    );
    assert_eq!(
        field_lines(&got),
        ["Host: example.com", "X-Kept: 3", "Via: 1.1 xgate"]
    );
}

/// Field names a random request is made of: hop-by-hop, framing, the ones the gateway
/// combines or replaces, and end-to-end ones.
const NAMES: [&str; 20] = [
    "Connection",
    "Keep-Alive",
    "Proxy-Connection",
    "TE",
    "Trailer",
    "Upgrade",
    "Transfer-Encoding",
    "Content-Length",
    "Host",
    "Via",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "Forwarded",
    "Expect",
    "Accept",
    "X-A",
    "X-B",
    "Cookie",
    "User-Agent",
];

fn random_case(name: &str, mask: u32) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 32) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// A `Connection` value: names from `NAMES` (and `close`) in random case, between random
/// commas and OWS.
fn connection_value() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            0..NAMES.len() + 1,
            any::<u32>(),
            prop::sample::select(vec!["", " ", "\t", " \t "]),
            prop::sample::select(vec![",", ", ", " ,", ",,", " , ,"]),
        ),
        1..5,
    )
    .prop_map(|options| {
        let mut v = String::new();
        for (i, (n, mask, ows, comma)) in options.into_iter().enumerate() {
            if i > 0 {
                v.push_str(comma);
            }
            v.push_str(ows);
            v.push_str(&random_case(NAMES.get(n).copied().unwrap_or("close"), mask));
        }
        v.trim_matches([' ', '\t']).to_string()
    })
}

fn random_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        prop_oneof![
            1 => connection_value().prop_map(|v| ("Connection".to_string(), v)),
            4 => (0..NAMES.len(), any::<u32>(), "[!-~]([ -~]{0,10}[!-~])?")
                .prop_map(|(n, mask, v)| (random_case(NAMES[n], mask), v)),
        ],
        0..20,
    )
}

/// The lower-cased names every `Connection` line of `headers` lists.
fn connection_options(headers: &[(String, String)]) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(','))
        .map(|o| o.trim_matches([' ', '\t']).to_ascii_lowercase())
        .filter(|o| !o.is_empty())
        .collect()
}

proptest! {
    /// Whatever the client's fields and `Connection` options, the head parses as one complete
    /// HTTP/1.1 request, Host first, with no hop-by-hop field and none a `Connection` option
    /// named, and the end-to-end fields in the client's order, byte-exact.
    #[test]
    fn output_parses_and_carries_no_hop_by_hop_field(
        headers in random_headers(),
        version_minor in 0u8..2,
        body in prop_oneof![
            Just(BodyFraming::None),
            any::<u64>().prop_map(BodyFraming::Length),
            Just(BodyFraming::Chunked),
        ],
        keep_alive in any::<bool>(),
        x_forwarded in any::<bool>(),
        forwarded in any::<bool>(),
    ) {
        let pairs: Vec<(&[u8], &[u8])> =
            headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
        let req = ClientRequest { version_minor, headers: &pairs, body, ..REQ };
        let r = rules(ForwardConfig { x_forwarded, forwarded, ..ForwardConfig::default() });
        let mut buf = [0u8; 4096];
        let n = r.write_head(&req, client_v4(), keep_alive, &mut buf).unwrap();

        let mut parsed = [httparse::EMPTY_HEADER; 64];
        let mut upstream = httparse::Request::new(&mut parsed);
        prop_assert_eq!(upstream.parse(&buf[..n]), Ok(httparse::Status::Complete(n)));
        prop_assert_eq!(upstream.version, Some(1));
        let fields = upstream.headers;
        prop_assert!(fields[0].name == "Host" && fields[0].value == b"example.com");

        let options = connection_options(&headers);
        let mut gateway_writes =
            vec!["host", "content-length", "transfer-encoding", "connection", "via"];
        if x_forwarded {
            gateway_writes.extend(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]);
        }
        if forwarded {
            gateway_writes.push("forwarded");
        }
        for f in fields.iter() {
            let lower = f.name.to_ascii_lowercase();
            prop_assert!(
                !HOP_BY_HOP.contains(&lower.as_bytes()) || (lower == "connection"
                    && !keep_alive && f.value == b"close")
                    || (lower == "transfer-encoding" && f.value == b"chunked"),
                "{} forwarded", f.name
            );
            prop_assert!(
                !options.contains(&lower) || gateway_writes.contains(&lower.as_str()),
                "{} named by Connection", f.name
            );
        }
        let expected: Vec<(&str, &str)> = headers
            .iter()
            .filter(|(name, _)| {
                let lower = name.to_ascii_lowercase();
                let dropped = gateway_writes.contains(&lower.as_str())
                    || HOP_BY_HOP.contains(&lower.as_bytes())
                    || options.contains(&lower)
                    || (version_minor == 0 && lower == "expect");
                !dropped
            })
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let copied: Vec<(&str, &str)> = fields
            .iter()
            .filter(|f| !gateway_writes.contains(&f.name.to_ascii_lowercase().as_str()))
            .map(|f| (f.name, std::str::from_utf8(f.value).unwrap()))
            .collect();
        prop_assert_eq!(copied, expected);
        let framing: Vec<&str> = fields
            .iter()
            .filter(|f| ["content-length", "transfer-encoding"]
                .contains(&f.name.to_ascii_lowercase().as_str()))
            .map(|f| f.name)
            .collect();
        let client_length = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
        let want: &[&str] = match body {
            BodyFraming::None if client_length => &["Content-Length"],
            BodyFraming::None => &[],
            BodyFraming::Length(_) => &["Content-Length"],
            BodyFraming::Chunked => &["Transfer-Encoding"],
        };
        prop_assert_eq!(framing, want);

        // The single values the gateway writes: one line each, its own.
        if x_forwarded {
            for (name, value) in [("x-forwarded-proto", "http"), ("x-forwarded-host", "example.com")] {
                let lines: Vec<&[u8]> = fields
                    .iter()
                    .filter(|f| f.name.eq_ignore_ascii_case(name))
                    .map(|f| f.value)
                    .collect();
                prop_assert_eq!(lines, vec![value.as_bytes()], "{}", name);
            }
        }
        // Each list the gateway writes: one line, the client's surviving values, then its own.
        let mut lists = vec![("via", format!("1.{version_minor} xgate"))];
        if x_forwarded {
            lists.push(("x-forwarded-for", "192.0.2.7".to_string()));
        }
        if forwarded {
            lists.push((
                "forwarded",
                "for=\"192.0.2.7:4711\";proto=http;host=example.com".to_string(),
            ));
        }
        for (list, own) in lists {
            let mut want: Vec<&str> = headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(list) && !options.contains(&list.to_string()))
                .map(|(_, v)| v.as_str())
                .collect();
            want.push(&own);
            let lines: Vec<&[u8]> = fields
                .iter()
                .filter(|f| f.name.eq_ignore_ascii_case(list))
                .map(|f| f.value)
                .collect();
            let joined = want.join(", ");
            prop_assert_eq!(lines, vec![joined.as_bytes()], "{}", list);
        }
    }

    /// A CR, LF or NUL in any value is refused with that field's index, before a byte is
    /// written; any other value (obs-text, SP, HTAB inside) reaches the upstream byte-exact,
    /// one field line per client field.
    #[test]
    fn no_field_can_be_injected_through_a_value(
        values in prop::collection::vec(
            prop::collection::vec(
                prop_oneof![
                    8 => 0x21u8..0x7f,
                    2 => 0x80u8..=0xff,
                    1 => Just(b' '),
                    1 => Just(b'\t'),
                    1 => Just(b'\r'),
                    1 => Just(b'\n'),
                    1 => Just(0u8),
                ],
                0..12,
            ),
            1..6,
        ),
    ) {
        let values: Vec<Vec<u8>> = values.into_iter().map(|v| trim_ows(&v).to_vec()).collect();
        let names = ["X-0", "X-1", "X-2", "X-3", "X-4", "X-5"];
        let pairs: Vec<(&[u8], &[u8])> = values
            .iter()
            .zip(names)
            .map(|(v, n)| (n.as_bytes(), &v[..]))
            .collect();
        let req = ClientRequest { headers: &pairs, ..REQ };
        let mut buf = [0xaau8; 1024];
        let result = plain().write_head(&req, client_v4(), true, &mut buf);
        let first_bad = values
            .iter()
            .position(|v| v.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0));
        match first_bad {
            Some(i) => {
                prop_assert_eq!(result, Err(ForwardError::Malformed(RequestPart::Field(i))));
                prop_assert!(buf.iter().all(|&b| b == 0xaa));
            }
            None => {
                let n = result.unwrap();
                let mut parsed = [httparse::EMPTY_HEADER; 16];
                let mut upstream = httparse::Request::new(&mut parsed);
                prop_assert_eq!(upstream.parse(&buf[..n]), Ok(httparse::Status::Complete(n)));
                // Host, the client's fields, Via.
                prop_assert_eq!(upstream.headers.len(), values.len() + 2);
                for (f, v) in upstream.headers[1..].iter().zip(&values) {
                    prop_assert_eq!(f.value, &v[..]);
                }
            }
        }
    }
}

#[test]
fn max_forwards_of_trace_and_options_is_decremented_and_zero_stops_here() {
    let headers: Fields<'_> = &[(b"Max-Forwards", b"10"), (b"A", b"1")];
    for method in [&b"TRACE"[..], b"OPTIONS"] {
        let got = head(
            &plain(),
            &ClientRequest {
                method,
                headers,
                ..REQ
            },
        );
        assert!(got.contains("\r\nMax-Forwards: 9\r\nA: 1\r\n"), "{got}");
        let zero: Fields<'_> = &[(b"max-forwards", b"0")];
        let mut buf = [0xaau8; 256];
        assert_eq!(
            plain().write_head(
                &ClientRequest {
                    method,
                    headers: zero,
                    ..REQ
                },
                client_v4(),
                true,
                &mut buf
            ),
            Err(ForwardError::MaxForwardsZero)
        );
        assert!(buf.iter().all(|&b| b == 0xaa));
    }
    // Other methods carry it unread; a value that is not a count goes as sent.
    let got = head(
        &plain(),
        &ClientRequest {
            headers: &[(b"Max-Forwards", b"0")],
            ..REQ
        },
    );
    assert!(got.contains("\r\nMax-Forwards: 0\r\n"), "{got}");
    let got = head(
        &plain(),
        &ClientRequest {
            method: b"OPTIONS",
            headers: &[
                (b"Max-Forwards", b"1, 2"),
                (b"Max-Forwards", b"99999999999999999999999"),
            ],
            ..REQ
        },
    );
    assert!(
        got.contains("\r\nMax-Forwards: 1, 2\r\nMax-Forwards: 18446744073709551614\r\n"),
        "{got}"
    );
}

proptest! {
    /// Addresses are written as `Display` writes them (RFC 5952 for IPv6), zero runs of
    /// every length and place included.
    #[test]
    fn addresses_are_written_as_display_writes_them(
        groups in prop::array::uniform8(prop_oneof![3 => Just(0u16), 1 => 1u16..16, 1 => any::<u16>()]),
        v4 in any::<[u8; 4]>(),
    ) {
        for ip in [IpAddr::V6(Ipv6Addr::from(groups)), IpAddr::V4(Ipv4Addr::from(v4))] {
            let mut buf = [0u8; 64];
            let mut w = HeadBuf::new(&mut buf);
            w.put_ip(ip).unwrap();
            let n = w.len();
            prop_assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), ip.to_string());
        }
    }
}

#[test]
fn addresses_at_the_edges_of_rfc_5952() {
    for text in [
        "::",
        "::1",
        "1::",
        "2001:db8::1:0:0:1",
        "2001:0:0:1::1",
        "1:0:1:0:1:0:1:0",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "::ffff:1.2.3.4",
        "0.0.0.0",
        "255.255.255.255",
    ] {
        let ip: IpAddr = text.parse().unwrap();
        let mut buf = [0u8; 64];
        let mut w = HeadBuf::new(&mut buf);
        w.put_ip(ip).unwrap();
        let n = w.len();
        assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), ip.to_string());
    }
}
