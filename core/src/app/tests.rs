use super::*;

fn route(method: &str, path: &str, status: u16, body: &[u8]) -> RouteConfig {
    RouteConfig {
        method: method.into(),
        path: path.into(),
        status,
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: body.to_vec(),
    }
}

fn bytes(app: &App, id: ResponseId) -> String {
    let p = app.prepared(id);
    format!(
        "{}|{}",
        String::from_utf8_lossy(p.head()),
        String::from_utf8_lossy(p.tail())
    )
}

#[test]
fn static_response_is_serialised_once_split_around_date_and_connection() {
    let app = App::new(&AppConfig {
        routes: vec![route("GET", "/hello", 200, b"hi there")],
        ..AppConfig::default()
    })
    .unwrap();
    let Handler::Static(id) = app.handle(b"GET", b"/hello") else {
        panic!()
    };
    assert_eq!(
        bytes(&app, id),
        "HTTP/1.1 200 OK\r\nServer: xgate\r\nContent-Type: text/plain\r\n|Content-Length: 8\r\n\r\nhi there"
    );
    let p = app.prepared(id);
    assert_eq!(p.tail_without_body(), b"Content-Length: 8\r\n\r\n");
    assert_eq!(p.body(), b"hi there");
    assert_eq!(p.status(), 200);
    // HEAD is answered by the GET route.
    assert_eq!(app.handle(b"HEAD", b"/hello"), Handler::Static(id));
}

#[test]
fn rfc9110_15_3_5_no_content_has_no_content_length() {
    let app = App::new(&AppConfig {
        routes: vec![route("DELETE", "/x", 204, b"")],
        ..AppConfig::default()
    })
    .unwrap();
    let Handler::Static(id) = app.handle(b"DELETE", b"/x") else {
        panic!()
    };
    assert_eq!(app.prepared(id).tail(), b"\r\n");
    assert_eq!(
        App::new(&AppConfig {
            routes: vec![route("GET", "/x", 204, b"no")],
            ..AppConfig::default()
        })
        .err(),
        Some(AppError::BodyNotAllowed {
            index: 0,
            status: 204
        })
    );
}

#[test]
fn builtin_routes() {
    let app = App::new(&AppConfig::default()).unwrap();
    let Handler::Static(health) = app.handle(b"GET", b"/health") else {
        panic!()
    };
    assert_eq!(app.prepared(health).body(), b"ok");
    assert_eq!(app.handle(b"GET", b"/bytes/10"), Handler::Bytes(10));
    assert_eq!(app.handle(b"HEAD", b"/bytes/0"), Handler::Bytes(0));
    assert_eq!(app.handle(b"POST", b"/echo"), Handler::Echo);
    assert_eq!(app.status(app.handle(b"GET", b"/bytes/16777216")), 200);
    assert_eq!(app.status(app.handle(b"GET", b"/bytes/16777217")), 413);
    assert_eq!(app.status(app.handle(b"GET", b"/bytes/1x")), 400);
    assert_eq!(app.status(app.handle(b"GET", b"/bytes")), 404);
    assert_eq!(app.status(app.handle(b"GET", b"/missing")), 404);
    assert_eq!(app.status(app.handle(b"PUT", b"/health")), 405);
    assert_eq!(app.status(app.handle(b"GET", b"/")), 200);
    assert_eq!(
        app.dynamic_head(),
        b"HTTP/1.1 200 OK\r\nServer: xgate\r\nContent-Type: application/octet-stream\r\n"
    );
}

#[test]
fn builtin_routes_can_be_turned_off() {
    let app = App::new(&AppConfig {
        builtin_routes: false,
        ..AppConfig::default()
    })
    .unwrap();
    for (m, p) in [
        (&b"GET"[..], &b"/health"[..]),
        (b"GET", b"/bytes/1"),
        (b"POST", b"/echo"),
        (b"GET", b"/"),
    ] {
        assert_eq!(app.status(app.handle(m, p)), 404);
    }
}

#[test]
fn rfc9110_10_2_1_allow_lists_the_methods_of_a_path() {
    let app = App::new(&AppConfig {
        routes: vec![
            route("GET", "/r", 200, b""),
            route("PUT", "/r", 201, b""),
            route("POST", "/health", 200, b""),
        ],
        ..AppConfig::default()
    })
    .unwrap();
    let Handler::Static(id) = app.handle(b"DELETE", b"/r") else {
        panic!()
    };
    assert!(
        String::from_utf8_lossy(app.prepared(id).head()).contains("\r\nAllow: GET, HEAD, PUT\r\n")
    );
    // A configured route next to a built-in one on the same path.
    assert_eq!(app.status(app.handle(b"POST", b"/health")), 200);
    let Handler::Static(id) = app.handle(b"PUT", b"/health") else {
        panic!()
    };
    assert!(
        String::from_utf8_lossy(app.prepared(id).head()).contains("\r\nAllow: POST, GET, HEAD\r\n")
    );
}

#[test]
fn configured_route_wins_over_builtin() {
    let app = App::new(&AppConfig {
        routes: vec![route("GET", "/health", 503, b"draining")],
        ..AppConfig::default()
    })
    .unwrap();
    let Handler::Static(id) = app.handle(b"GET", b"/health") else {
        panic!()
    };
    assert_eq!(app.prepared(id).status(), 503);
    assert!(app
        .prepared(id)
        .head()
        .starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"));
}

#[test]
fn invalid_configs_are_refused() {
    let cases: Vec<(RouteConfig, AppError)> = vec![
        (
            route("G T", "/", 200, b""),
            AppError::BadMethod {
                index: 0,
                method: "G T".into(),
            },
        ),
        (
            route("GET", "x", 200, b""),
            AppError::BadPath {
                index: 0,
                path: "x".into(),
            },
        ),
        (
            route("GET", "/a?b", 200, b""),
            AppError::BadPath {
                index: 0,
                path: "/a?b".into(),
            },
        ),
        (
            route("GET", "/", 100, b""),
            AppError::BadStatus {
                index: 0,
                status: 100,
            },
        ),
        (
            route("GET", "/", 600, b""),
            AppError::BadStatus {
                index: 0,
                status: 600,
            },
        ),
        (
            RouteConfig {
                headers: vec![("Bad Name".into(), "v".into())],
                ..route("GET", "/", 200, b"")
            },
            AppError::BadHeaderName {
                index: 0,
                name: "Bad Name".into(),
            },
        ),
        (
            RouteConfig {
                headers: vec![("X".into(), "a\r\nInjected: 1".into())],
                ..route("GET", "/", 200, b"")
            },
            AppError::BadHeaderValue {
                index: 0,
                name: "X".into(),
            },
        ),
        (
            RouteConfig {
                headers: vec![("content-length".into(), "3".into())],
                ..route("GET", "/", 200, b"")
            },
            AppError::ReservedHeader {
                index: 0,
                name: "content-length".into(),
            },
        ),
    ];
    for (r, want) in cases {
        assert_eq!(
            App::new(&AppConfig {
                routes: vec![r],
                ..AppConfig::default()
            })
            .err(),
            Some(want)
        );
    }
    let dup = AppConfig {
        routes: vec![route("GET", "/", 200, b""), route("GET", "/", 200, b"")],
        ..AppConfig::default()
    };
    assert!(matches!(
        App::new(&dup),
        Err(AppError::DuplicateRoute { index: 1, .. })
    ));
}

#[test]
fn custom_methods_are_known_only_when_configured() {
    let app = App::new(&AppConfig {
        routes: vec![route("PURGE", "/c", 200, b"")],
        ..AppConfig::default()
    })
    .unwrap();
    assert!(app.knows_method(b"PURGE"));
    assert!(app.knows_method(b"GET"));
    assert!(!app.knows_method(b"BREW"));
}

#[test]
fn rfc9110_5_6_7_date_is_refreshed_once_per_second() {
    let mut app = App::new(&AppConfig::default()).unwrap();
    assert_eq!(app.date(), b"Thu, 01 Jan 1970 00:00:00 GMT");
    app.set_date(784_111_777);
    assert_eq!(app.date(), b"Sun, 06 Nov 1994 08:49:37 GMT");
    app.set_date(784_111_778);
    assert_eq!(app.date(), b"Sun, 06 Nov 1994 08:49:38 GMT");
}

#[test]
fn protocol_error_responses_are_prepared() {
    let app = App::new(&AppConfig::default()).unwrap();
    for status in [400, 404, 405, 408, 413, 414, 417, 431, 500, 501, 505] {
        let p = app.prepared(app.status_response(status));
        assert_eq!(p.status(), status);
        assert!(p.head().starts_with(
            format!(
                "HTTP/1.1 {status} {}\r\nServer: xgate\r\n",
                reason_phrase(status)
            )
            .as_bytes()
        ));
    }
    assert_eq!(app.prepared(app.status_response(299)).status(), 500);
}

#[test]
fn an_explicit_head_route_wins_over_get_whatever_the_order() {
    for routes in [
        vec![
            route("GET", "/r", 200, b"get"),
            route("HEAD", "/r", 204, b""),
        ],
        vec![
            route("HEAD", "/r", 204, b""),
            route("GET", "/r", 200, b"get"),
        ],
    ] {
        let app = App::new(&AppConfig {
            routes,
            ..AppConfig::default()
        })
        .unwrap();
        assert_eq!(app.status(app.handle(b"HEAD", b"/r")), 204);
        assert_eq!(app.status(app.handle(b"GET", b"/r")), 200);
    }
}
