use super::*;
use proptest::prelude::*;

fn spec(host: Option<&str>, prefix: Option<&str>, target: RouteTarget) -> RouteSpec {
    RouteSpec {
        matches: RouteMatch {
            host: host.map(Into::into),
            path_prefix: prefix.map(Into::into),
        },
        target,
        forward: ForwardConfig::default(),
    }
}

fn up(i: u16) -> RouteTarget {
    RouteTarget::Upstream(UpstreamId(i))
}

/// A table of upstream routes `(host, prefix)`; route `i` goes to upstream `i`.
fn table(routes: &[(Option<&str>, Option<&str>)]) -> RouteTable {
    RouteTable::new(
        routes
            .iter()
            .enumerate()
            .map(|(i, &(h, p))| spec(h, p, up(i as u16)))
            .collect(),
    )
    .expect("valid routes")
}

/// The index of the route `find` chooses.
fn found(t: &RouteTable, host: Option<&str>, path: &str) -> Option<usize> {
    t.find(host.map(str::as_bytes), path.as_bytes())
        .map(RouteId::index)
}

#[test]
fn a_prefix_matches_on_slash_boundaries_only() {
    let t = table(&[(None, Some("/api"))]);
    assert_eq!(found(&t, None, "/api"), Some(0));
    assert_eq!(found(&t, None, "/api/"), Some(0));
    assert_eq!(found(&t, None, "/api/x/y"), Some(0));
    assert_eq!(found(&t, None, "/apix"), None);
    assert_eq!(found(&t, None, "/ap"), None);
    assert_eq!(found(&t, None, "/"), None);
    assert_eq!(found(&t, None, "/API"), None, "paths are case-sensitive");
}

#[test]
fn a_prefix_ending_in_a_slash_matches_what_starts_with_it() {
    let t = table(&[(None, Some("/api/"))]);
    assert_eq!(found(&t, None, "/api/"), Some(0));
    assert_eq!(found(&t, None, "/api/x"), Some(0));
    assert_eq!(found(&t, None, "/api"), None);
    let root = table(&[(None, Some("/"))]);
    assert_eq!(found(&root, None, "/"), Some(0));
    assert_eq!(found(&root, None, "/anything/at/all"), Some(0));
    assert_eq!(found(&root, None, "*"), None, "`*` is not under `/`");
}

#[test]
fn a_route_without_prefix_matches_every_path_including_asterisk() {
    let t = table(&[(None, None)]);
    assert_eq!(found(&t, None, "/"), Some(0));
    assert_eq!(found(&t, Some("a"), "/x"), Some(0));
    assert_eq!(found(&t, None, "*"), Some(0));
}

#[test]
fn the_host_is_compared_without_case_and_without_port() {
    let t = table(&[(Some("API.Example.com"), None)]);
    assert_eq!(found(&t, Some("api.example.com"), "/"), Some(0));
    assert_eq!(found(&t, Some("API.EXAMPLE.COM:8080"), "/"), Some(0));
    assert_eq!(found(&t, Some("api.example.com:"), "/"), Some(0));
    assert_eq!(found(&t, Some("api.example.co"), "/"), None);
    assert_eq!(found(&t, Some("api.example.com."), "/"), None);
    assert_eq!(found(&t, Some("xapi.example.com"), "/"), None);
}

#[test]
fn a_route_with_a_host_does_not_match_a_request_without_one() {
    let t = table(&[(Some("a.example"), None)]);
    assert_eq!(found(&t, None, "/"), None);
    assert_eq!(found(&t, Some(""), "/"), None);
}

#[test]
fn an_ipv6_literal_keeps_its_colons() {
    let t = table(&[(Some("[2001:DB8::1]"), None), (Some("192.0.2.1"), None)]);
    assert_eq!(found(&t, Some("[2001:db8::1]"), "/"), Some(0));
    assert_eq!(found(&t, Some("[2001:db8::1]:8443"), "/"), Some(0));
    assert_eq!(found(&t, Some("[2001:db8::2]"), "/"), None);
    assert_eq!(found(&t, Some("192.0.2.1:80"), "/"), Some(1));
}

#[test]
fn the_longest_prefix_wins_whatever_the_order() {
    let t = table(&[
        (None, Some("/")),
        (None, Some("/a/b")),
        (None, Some("/a")),
        (None, None),
    ]);
    assert_eq!(found(&t, None, "/a/b/c"), Some(1));
    assert_eq!(found(&t, None, "/a/bc"), Some(2));
    assert_eq!(found(&t, None, "/a"), Some(2));
    assert_eq!(found(&t, None, "/b"), Some(0));
    assert_eq!(found(&t, None, "*"), Some(3));
}

#[test]
fn a_route_with_the_host_beats_a_longer_prefix_without_one() {
    let t = table(&[(Some("a.example"), Some("/")), (None, Some("/api"))]);
    assert_eq!(found(&t, Some("a.example"), "/api/x"), Some(0));
    assert_eq!(found(&t, Some("b.example"), "/api/x"), Some(1));
    assert_eq!(found(&t, Some("a.example"), "/web"), Some(0));
}

#[test]
fn for_equal_prefixes_a_route_with_a_host_wins() {
    let t = table(&[(None, Some("/api")), (Some("a.example"), Some("/api"))]);
    assert_eq!(found(&t, Some("a.example"), "/api"), Some(1));
    assert_eq!(found(&t, Some("b.example"), "/api"), Some(0));
    assert_eq!(found(&t, None, "/api"), Some(0));
    let catch_all = table(&[(None, None), (Some("a.example"), None)]);
    assert_eq!(found(&catch_all, Some("A.example:1"), "/"), Some(1));
}

#[test]
fn configuration_order_breaks_remaining_ties() {
    // Different hosts, same prefix: only one can match a request, but the order is still
    // configuration order; and a request matching neither host falls to the host-less route.
    let t = table(&[
        (Some("b.example"), Some("/x")),
        (Some("a.example"), Some("/x")),
        (None, Some("/x")),
    ]);
    assert_eq!(t.precedence[..], [0, 1, 2]);
    assert_eq!(found(&t, Some("a.example"), "/x"), Some(1));
    assert_eq!(found(&t, Some("c.example"), "/x"), Some(2));
}

#[test]
fn no_route_matches_in_an_empty_table() {
    let t = RouteTable::default();
    assert!(t.is_empty());
    assert_eq!(found(&t, Some("a"), "/"), None);
}

#[test]
fn target_and_forward_rules_are_those_of_the_route() {
    let mut api = spec(None, Some("/api"), up(3));
    api.forward.strip_prefix = Some("/api".into());
    let routes = vec![
        api.clone(),
        spec(
            None,
            Some("/down"),
            RouteTarget::Respond {
                status: 503,
                body: b"later\n"[..].into(),
            },
        ),
        spec(None, None, RouteTarget::Static),
    ];
    let t = RouteTable::new(routes).unwrap();
    assert_eq!(t.len(), 3);
    let id = t.find(None, b"/api/x").unwrap();
    assert_eq!(t.target(id), &up(3));
    assert_eq!(
        t.forward_rules(id),
        Some(&ForwardRules::new(&api.forward).unwrap())
    );
    let id = t.find(None, b"/down").unwrap();
    assert_eq!(
        t.target(id),
        &RouteTarget::Respond {
            status: 503,
            body: b"later\n"[..].into()
        }
    );
    assert_eq!(t.forward_rules(id), None);
    let id = t.find(None, b"/index.html").unwrap();
    assert_eq!(t.target(id), &RouteTarget::Static);
    assert_eq!(t.forward_rules(id), None);
}

#[test]
fn hosts_that_are_not_uri_hosts_are_refused() {
    for bad in [
        "",
        "a.example:80",
        "a b",
        "a/b",
        "[::1",
        "[not-v6]",
        "::1",
        "a%2",
        "a%zz",
        "é.example",
    ] {
        let e = RouteTable::new(vec![
            spec(None, None, RouteTarget::Static),
            spec(Some(bad), None, up(0)),
        ])
        .unwrap_err();
        assert_eq!(
            e,
            RouteError::BadHost {
                route: 1,
                host: bad.into()
            }
        );
    }
    for good in [
        "a.example",
        "A-B_c~d",
        "10.0.0.1",
        "[::1]",
        "%41.example",
        "x!$&'()*+,;=",
    ] {
        assert!(
            RouteTable::new(vec![spec(Some(good), None, up(0))]).is_ok(),
            "{good}"
        );
    }
    let e = RouteTable::new(vec![spec(Some("a:1"), None, up(0))]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "route[0].host: \"a:1\" is not a host name or IP address without port"
    );
}

#[test]
fn prefixes_that_are_not_paths_are_refused() {
    for bad in ["", "api", "/a?b", "/a#b", "/a b", "/é"] {
        let e = RouteTable::new(vec![spec(None, Some(bad), up(0))]).unwrap_err();
        assert_eq!(
            e,
            RouteError::BadPathPrefix {
                route: 0,
                prefix: bad.into()
            }
        );
    }
    assert!(e_string(vec![spec(None, Some("x"), up(0))]).starts_with("route[0].path_prefix: \"x\""));
}

fn e_string(routes: Vec<RouteSpec>) -> String {
    RouteTable::new(routes).unwrap_err().to_string()
}

#[test]
fn a_configured_response_needs_a_final_status_and_a_body_it_allows() {
    let respond = |status, body: &[u8]| {
        spec(
            None,
            None,
            RouteTarget::Respond {
                status,
                body: body.into(),
            },
        )
    };
    assert_eq!(
        RouteTable::new(vec![respond(101, b"")]).unwrap_err(),
        RouteError::BadStatus {
            route: 0,
            status: 101
        }
    );
    assert_eq!(
        RouteTable::new(vec![respond(600, b"")]).unwrap_err(),
        RouteError::BadStatus {
            route: 0,
            status: 600
        }
    );
    assert_eq!(
        RouteTable::new(vec![respond(204, b"x")]).unwrap_err(),
        RouteError::BodyNotAllowed {
            route: 0,
            status: 204
        }
    );
    assert!(RouteTable::new(vec![respond(204, b"")]).is_ok());
    assert!(RouteTable::new(vec![respond(599, b"x")]).is_ok());
}

#[test]
fn forwarding_rules_are_checked_and_named_by_route() {
    let mut r = spec(None, None, up(0));
    r.forward.strip_prefix = Some("/api/".into());
    let e = RouteTable::new(vec![spec(None, Some("/x"), RouteTarget::Static), r]).unwrap_err();
    assert!(matches!(
        e,
        RouteError::Forward {
            route: 1,
            source: ForwardConfigError::BadStripPrefix(_)
        }
    ));
    assert!(
        e.to_string()
            .starts_with("route[1].strip_prefix: \"/api/\""),
        "{e}"
    );
}

#[test]
fn forwarding_rules_on_a_route_that_does_not_forward_are_refused() {
    let mut r = spec(None, None, RouteTarget::Static);
    r.forward.forwarded = true;
    assert_eq!(
        RouteTable::new(vec![r]).unwrap_err(),
        RouteError::ForwardWithoutUpstream { route: 0 }
    );
}

#[test]
fn a_route_that_could_never_be_chosen_is_refused() {
    let e = RouteTable::new(vec![
        spec(Some("A.example"), Some("/x"), up(0)),
        spec(None, Some("/x"), up(0)),
        spec(Some("a.EXAMPLE"), Some("/x"), RouteTarget::Static),
    ])
    .unwrap_err();
    assert_eq!(
        e,
        RouteError::Duplicate {
            route: 2,
            earlier: 0
        }
    );
    assert!(RouteTable::new(vec![spec(None, None, up(0)), spec(None, None, up(1))]).is_err());
    // No prefix and `/` differ (on `*`), so both may be given.
    assert!(RouteTable::new(vec![spec(None, None, up(0)), spec(None, Some("/"), up(1))]).is_ok());
}

#[test]
fn more_than_max_routes_are_refused() {
    let routes: Vec<RouteSpec> = (0..=MAX_ROUTES)
        .map(|i| spec(None, Some(&format!("/{i}")), up(0)))
        .collect();
    assert_eq!(
        RouteTable::new(routes[..MAX_ROUTES].to_vec()).map(|t| t.len()),
        Ok(MAX_ROUTES)
    );
    assert_eq!(
        RouteTable::new(routes).unwrap_err(),
        RouteError::TooMany {
            count: MAX_ROUTES + 1
        }
    );
}

/// The rules of the module's doc, written the obvious way: every matching route, the best by
/// (has a host, prefix length, earliest).
fn reference(
    routes: &[(Option<String>, Option<String>)],
    host: Option<&str>,
    path: &str,
) -> Option<usize> {
    let host = host.map(|h| {
        let end = if h.starts_with('[') {
            h.find(']').map_or(h.len(), |at| at + 1)
        } else {
            h.find(':').unwrap_or(h.len())
        };
        h[..end].to_lowercase()
    });
    routes
        .iter()
        .enumerate()
        .filter(|(_, (h, p))| {
            let host_ok = match h {
                None => true,
                Some(h) => host.as_deref() == Some(h.to_lowercase().as_str()),
            };
            let path_ok = match p {
                None => true,
                Some(p) => {
                    path == p
                        || path.starts_with(&format!("{p}/"))
                        || (p.ends_with('/') && path.starts_with(p.as_str()))
                }
            };
            host_ok && path_ok
        })
        .max_by_key(|&(i, (h, p))| {
            (
                h.is_some(),
                p.as_ref().map_or(0, String::len),
                std::cmp::Reverse(i),
            )
        })
        .map(|(i, _)| i)
}

fn arb_host() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a.example".to_string()),
        Just("A.Example".to_string()),
        Just("b.example".to_string()),
        Just("[::1]".to_string()),
        Just("10.0.0.1".to_string()),
    ]
}

fn arb_path() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![Just("a"), Just("ab"), Just("b"), Just("")],
        0..4,
    )
    .prop_map(|segments| format!("/{}", segments.join("/")))
}

proptest! {
    #[test]
    fn find_agrees_with_the_rules_written_the_obvious_way(
        routes in prop::collection::vec(
            (prop::option::of(arb_host()), prop::option::of(arb_path())),
            0..8,
        ),
        host in prop::option::of((arb_host(), prop_oneof![Just(""), Just(":80"), Just(":")])
            .prop_map(|(h, port)| format!("{h}{port}"))),
        path in prop_oneof![arb_path(), Just("*".to_string())],
    ) {
        // Same host and prefix is refused (tested above): keep the first of each.
        let mut routes = routes;
        let mut seen = Vec::new();
        routes.retain(|(h, p)| {
            let key = (h.as_ref().map(|h| h.to_lowercase()), p.clone());
            let fresh = !seen.contains(&key);
            seen.push(key);
            fresh
        });
        let specs: Vec<RouteSpec> = routes
            .iter()
            .map(|(h, p)| spec(h.as_deref(), p.as_deref(), up(0)))
            .collect();
        let t = RouteTable::new(specs).expect("valid routes");
        prop_assert_eq!(
            found(&t, host.as_deref(), &path),
            reference(&routes, host.as_deref(), &path)
        );
    }
}
