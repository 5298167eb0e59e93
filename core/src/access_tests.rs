use super::*;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

fn record(head: &[u8]) -> AccessRecord {
    let mut r = AccessRecord::default();
    r.set_request_line(head);
    r
}

fn anchor() -> WallAnchor {
    // 2026-12-06T11:00:00Z at instant 10 s.
    WallAnchor {
        instant: Instant::from_secs(10),
        unix_micros: 1_796_554_800_000_000,
    }
}

fn line(r: &AccessRecord, format: LogFormat) -> String {
    let mut out = Vec::new();
    write_line(r, &anchor(), format, &mut out);
    String::from_utf8(out).expect("a log line is ASCII")
}

fn full_record() -> AccessRecord {
    let mut r = record(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    r.status = 200;
    r.bytes_in = 37;
    r.bytes_out = 16_512;
    r.received = Instant::from_micros(10_250_000);
    r.duration = Duration::from_micros(1_234);
    r.completed = true;
    r.client = Some(SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(192, 0, 2, 7),
        4711,
    )));
    r.port = 80;
    r.path = PathKind::Bypass;
    r
}

#[test]
fn the_request_line_is_taken_apart() {
    let r = record(b"\r\nPOST /echo HTTP/1.0\r\nHost: x\r\n\r\n");
    assert_eq!(r.method(), b"POST");
    assert_eq!(r.target(), b"/echo");
    assert_eq!(r.version_minor, Some(0));
    assert!(!r.target_cut);
}

#[test]
fn a_long_target_is_cut_and_marked() {
    let mut head = b"GET /".to_vec();
    head.extend(std::iter::repeat_n(b'a', 400));
    head.extend_from_slice(b" HTTP/1.1\r\n\r\n");
    let r = record(&head);
    assert_eq!(r.target().len(), TARGET_MAX);
    assert!(r.target_cut);
    assert!(line(&r, LogFormat::Text).contains("aaa... HTTP/1.1\""));
    let json: serde_json::Value = serde_json::from_str(&line(&r, LogFormat::Json)).unwrap();
    assert_eq!(json["target_cut"], true);
}

#[test]
fn a_request_line_that_cannot_be_read_leaves_method_and_target_empty() {
    for head in [
        &b""[..],
        b"\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"AVERYLONGMETHODNAMEOVER16 / HTTP/1.1\r\n",
    ] {
        let r = record(head);
        assert!(r.method().is_empty() && r.target().is_empty(), "{head:?}");
        assert_eq!(r.version_minor, None);
        assert!(line(&r, LogFormat::Text).contains(" \"-\" "));
    }
    // A version that is not HTTP/1.x is shown as unknown, method and target kept.
    let r = record(b"GET / HTTP/2.0\r\n\r\n");
    assert_eq!((r.method(), r.version_minor), (&b"GET"[..], None));
}

#[test]
fn the_text_line_has_every_field_in_order() {
    assert_eq!(
        line(&full_record(), LogFormat::Text),
        "2026-12-06T11:00:00.250000Z 192.0.2.7:4711 \"GET /a?b=1 HTTP/1.1\" 200 37 16512 \
         0.001234 bypass 80 - - - -\n"
    );
    let mut r = full_record();
    r.completed = false;
    r.path = PathKind::Kernel;
    r.client = Some(SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::LOCALHOST,
        9,
        0,
        0,
    )));
    r.upstream = Some(UpstreamInfo {
        server: "10.0.0.2:8080".parse().unwrap(),
        time: Some(Duration::from_micros(2_000_500)),
    });
    assert_eq!(
        line(&r, LogFormat::Text),
        "2026-12-06T11:00:00.250000Z [::1]:9 \"GET /a?b=1 HTTP/1.1\" 200 37 16512 0.001234 \
         kernel 80 10.0.0.2:8080 2.000500 - - cut\n"
    );
    // A TLS connection: its version and server name (escaped, cut when long).
    r.tls = Some(TlsLogInfo::new(3, Some(b"example.com")));
    assert!(line(&r, LogFormat::Text).ends_with(" 2.000500 TLSv1.3 example.com cut\n"));
    r.tls = Some(TlsLogInfo::new(2, None));
    assert!(line(&r, LogFormat::Text).ends_with(" 2.000500 TLSv1.2 - cut\n"));
    let long = vec![b'a'; SERVER_NAME_MAX + 5];
    r.tls = Some(TlsLogInfo::new(3, Some(&long)));
    let text = line(&r, LogFormat::Text);
    assert!(text.contains(&format!(" TLSv1.3 {}... ", "a".repeat(SERVER_NAME_MAX))));
    r.tls = Some(TlsLogInfo::new(3, Some(b"x\"y z")));
    assert!(
        line(&r, LogFormat::Text).contains(" TLSv1.3 x\\x22y\\x20z cut"),
        "{}",
        line(&r, LogFormat::Text)
    );
}

#[test]
fn the_json_line_carries_the_same_fields() {
    let text = line(&full_record(), LogFormat::Json);
    assert!(text.ends_with("}\n") && text.matches('\n').count() == 1);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["time"], "2026-12-06T11:00:00.250000Z");
    assert_eq!(v["client"], "192.0.2.7:4711");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["target"], "/a?b=1");
    assert_eq!(v["version"], "HTTP/1.1");
    assert_eq!(v["status"], 200);
    assert_eq!(v["bytes_in"], 37);
    assert_eq!(v["bytes_out"], 16_512);
    assert_eq!(v["duration_us"], 1_234);
    assert_eq!(v["path"], "bypass");
    assert_eq!(v["port"], 80);
    assert_eq!(v["upstream"], serde_json::Value::Null);
    assert_eq!(v["tls"], serde_json::Value::Null);
    assert_eq!(v["server_name"], serde_json::Value::Null);
    assert_eq!(v["completed"], true);
    let mut r = full_record();
    r.tls = Some(TlsLogInfo::new(2, Some(b"example.com")));
    let v: serde_json::Value = serde_json::from_str(&line(&r, LogFormat::Json)).unwrap();
    assert_eq!(v["tls"], "TLSv1.2");
    assert_eq!(v["server_name"], "example.com");
}

#[test]
fn an_upstream_that_sent_no_head_has_a_server_and_no_time() {
    let mut r = full_record();
    r.upstream = Some(UpstreamInfo {
        server: "10.0.0.2:8080".parse().unwrap(),
        time: None,
    });
    assert!(line(&r, LogFormat::Text).ends_with(" 10.0.0.2:8080 - - -\n"));
    let v: serde_json::Value = serde_json::from_str(&line(&r, LogFormat::Json)).unwrap();
    assert_eq!(v["upstream"], "10.0.0.2:8080");
    assert_eq!(v["upstream_us"], serde_json::Value::Null);
}

#[test]
fn records_before_the_anchor_are_placed_before_it() {
    let mut r = full_record();
    r.received = Instant::from_secs(9);
    assert!(line(&r, LogFormat::Text).starts_with("2026-12-06T10:59:59.000000Z "));
}

#[test]
fn dates_agree_with_the_imf_fixdate_calendar() {
    // An independent calendar (httpdate's, behind the Date header) for every 7th day over
    // 150 years.
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    for day in (0..(150 * 366)).step_by(7) {
        let secs = day * 86_400 + 45_296; // 12:34:56
        let mut imf = [0u8; crate::app::IMF_FIXDATE_LEN];
        crate::app::format_imf_fixdate(secs, &mut imf);
        let imf = std::str::from_utf8(&imf).unwrap();
        let mut out = Vec::new();
        put_rfc3339(secs * 1_000_000 + 7, &mut out);
        let ours = String::from_utf8(out).unwrap();
        let (y, m, d) = (&ours[0..4], &ours[5..7], &ours[8..10]);
        let month = MONTHS[m.parse::<usize>().unwrap() - 1];
        assert_eq!(
            &imf[5..16],
            format!("{d} {month} {y}"),
            "day {day}: {ours} vs {imf}"
        );
        assert_eq!(&ours[10..], "T12:34:56.000007Z");
    }
}

#[test]
fn a_sink_says_when_it_is_half_full_and_full() {
    let mut sink = AccessSink::with_capacity(4);
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push((sink.is_half_full(), sink.is_full()));
        sink.push(full_record());
    }
    assert_eq!(
        seen,
        [
            (false, false),
            (false, false),
            (true, false),
            (true, false),
            (true, true)
        ]
    );
    assert_eq!((sink.len(), sink.dropped()), (4, 1));
}

#[test]
fn a_full_sink_counts_what_it_drops() {
    let mut sink = AccessSink::with_capacity(2);
    for status in [200, 404, 500] {
        let mut r = full_record();
        r.status = status;
        sink.push(r);
    }
    assert_eq!(sink.len(), 2);
    assert_eq!(sink.dropped(), 1);
    assert_eq!(sink.records()[1].status, 404);
    sink.clear();
    assert!(sink.is_empty());
    sink.push(full_record());
    assert_eq!((sink.len(), sink.dropped()), (1, 1));
}

proptest! {
    /// Whatever bytes a client puts in its request line, each record is one line, and the
    /// JSON one parses back to the same method and target (non-ASCII shown as \u00HH).
    #[test]
    fn any_request_line_gives_one_well_formed_line(
        method in proptest::collection::vec(any::<u8>(), 1..12),
        target in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut head = Vec::new();
        head.extend(method.iter().map(|&b| if b == b' ' || b == b'\r' || b == b'\n' { b'M' } else { b }));
        head.push(b' ');
        head.extend(target.iter().map(|&b| if b == b' ' || b == b'\r' || b == b'\n' { b'T' } else { b }));
        head.extend_from_slice(b" HTTP/1.1\r\n\r\n");
        let r = record(&head);
        for format in [LogFormat::Text, LogFormat::Json] {
            let l = line(&r, format);
            prop_assert_eq!(l.matches('\n').count(), 1);
            prop_assert!(l.bytes().all(|b| (0x20..0x7f).contains(&b) || b == b'\n'));
        }
        let v: serde_json::Value = serde_json::from_str(&line(&r, LogFormat::Json)).unwrap();
        let decode = |s: &str| -> Vec<u8> { s.chars().map(|c| c as u32 as u8).collect() };
        prop_assert_eq!(decode(v["method"].as_str().unwrap()), r.method().to_vec());
        let target = v["target"].as_str().map(decode).unwrap_or_default();
        prop_assert_eq!(target, r.target().to_vec());
    }
}
