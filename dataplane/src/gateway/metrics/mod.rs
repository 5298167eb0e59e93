//! The Prometheus text exposition (format 0.0.4) of a gateway's [`Status`]: the figures
//! `xgate status --json` shows, under Prometheus' naming conventions (`xgate_` prefix, base
//! units, `_total` counters, labels for port, path, class and reason).
//!
//! Written by hand rather than with a client library: every figure already exists as a
//! snapshot (the pollers' and the kernel path's counters, the BPF maps), so there is nothing
//! to register or update, only text to write; a registry would copy each value once more.
//! `prometheus-client` was weighed again (issue 11) and kept out: its registry holds live
//! metrics that are incremented or observed, so each 500 ms page would mean a registry rebuilt
//! and refilled from the snapshot, and a histogram cannot be given the engines' bucket counts
//! without a hand-written `EncodeMetric` — the code this page already is; its text encoder
//! writes OpenMetrics (a counter's family named without `_total`, a closing `# EOF`), which
//! would change the page scrapers and the tests read. What a crate would bring — the format's
//! rules — is small here: escaping ([`escape`]) and contiguous families (`text::Metrics`).
//! A test parses the output with an independent parser.

mod text;

use crate::http::HttpStats;
use crate::report::{PollerState, Status};
use crate::tcp::DropReason;
use crate::tls::{suite_name, TlsFailure, TlsStats};

use text::Metrics;

/// The metrics page of `s`: one function per group of families, in the page's order.
pub fn render(s: &Status) -> String {
    let mut m = Metrics::default();
    info(&mut m, s);
    steering(&mut m, s);
    ports_by_path(&mut m, s);
    http(&mut m, s);
    tls(&mut m, s);
    bypass_tcp(&mut m, s);
    bypass_drops(&mut m, s);
    socket_drops(&mut m, s);
    pollers(&mut m, s);
    kernel_path(&mut m, s);
    reloads(&mut m, s);
    access_log(&mut m, s);
    upstreams(&mut m, s);
    m.finish()
}

/// The gateway itself: interface, XDP mode, phase, and how old the counters are.
fn info(m: &mut Metrics, s: &Status) {
    let iface = escape(&s.ifname);
    m.family(
        "xgate_info",
        "gauge",
        "The gateway: interface and XDP attach mode.",
    );
    m.sample(
        "xgate_info",
        &format!(
            "ifname=\"{iface}\",xdp_mode=\"{}\",phase=\"{}\"",
            escape(&s.xdp_attached),
            escape(&s.phase)
        ),
        1,
    );
    m.family(
        "xgate_counters_age_seconds",
        "gauge",
        "Age of the pollers' and kernel path's counters in this page.",
    );
    m.sample_f64(
        "xgate_counters_age_seconds",
        "",
        s.counters_age_ms as f64 / 1e3,
    );
}

/// Per port: the steering state, the listener's tag and the XDP program's verdicts.
fn steering(m: &mut Metrics, s: &Status) {
    m.family(
        "xgate_port_bypass",
        "gauge",
        "Steering state of a port: 1 for the state it is in (on, draining, off, unset).",
    );
    for p in &s.ports {
        for state in ["on", "draining", "off", "unset"] {
            m.sample(
                "xgate_port_bypass",
                &format!("port=\"{}\",state=\"{state}\"", p.port),
                u64::from(p.state == state),
            );
        }
    }
    m.family(
        "xgate_port_listener_tagged",
        "gauge",
        "1 when sock_ops saw the gateway's listener of the port (needed for any steering).",
    );
    for p in &s.ports {
        m.sample(
            "xgate_port_listener_tagged",
            &format!("port=\"{}\"", p.port),
            u64::from(p.listener_tagged),
        );
    }
    m.family(
        "xgate_xdp_segments_total",
        "counter",
        "Packets the XDP program saw for the port (TCP segments, and ICMP errors about its \
         bypass connections), by verdict.",
    );
    for p in &s.ports {
        for (verdict, n) in [
            ("redirected", p.redirected),
            ("redirected_ipv6", p.redirected_ipv6),
            ("passed", p.passed),
            ("passed_kernel_owned", p.kernel_owned),
            ("passed_no_xsk", p.no_xsk),
            ("passed_no_listener", p.no_listener),
            ("passed_not_local", p.not_local),
        ] {
            m.sample(
                "xgate_xdp_segments_total",
                &format!("port=\"{}\",verdict=\"{verdict}\"", p.port),
                n,
            );
        }
    }
    m.family(
        "xgate_xdp_syns_steered_total",
        "counter",
        "SYNs the XDP program steered to user space.",
    );
    for p in &s.ports {
        m.sample(
            "xgate_xdp_syns_steered_total",
            &format!("port=\"{}\"", p.port),
            p.syns_steered,
        );
    }
    m.family(
        "xgate_xdp_icmp_steered_total",
        "counter",
        "ICMP fragmentation-needed and ICMPv6 packet-too-big errors the XDP program steered to \
         the port's bypass connections.",
    );
    for p in &s.ports {
        m.sample(
            "xgate_xdp_icmp_steered_total",
            &format!("port=\"{}\"", p.port),
            p.icmp_steered,
        );
    }
}

/// Per port and path: connections open and taken, requests answered.
fn ports_by_path(m: &mut Metrics, s: &Status) {
    m.family(
        "xgate_connections",
        "gauge",
        "Connections open now, by port and path.",
    );
    m.family(
        "xgate_connections_opened_total",
        "counter",
        "Connections taken (handshakes completed), by port and path.",
    );
    m.family(
        "xgate_requests_total",
        "counter",
        "HTTP requests answered, by port and path.",
    );
    for p in &s.ports {
        for (path, c) in [("bypass", &p.bypass), ("kernel", &p.kernel)] {
            let labels = format!("port=\"{}\",path=\"{path}\"", p.port);
            m.sample("xgate_connections", &labels, c.connections);
            m.sample(
                "xgate_connections_opened_total",
                &labels,
                c.connections_total,
            );
            m.sample("xgate_requests_total", &labels, c.requests);
        }
    }
}

/// Per path: HTTP responses by class, refusals by reason, idle closes, response time.
fn http(m: &mut Metrics, s: &Status) {
    let paths: [(&str, &HttpStats); 2] =
        [("bypass", &s.bypass_http), ("kernel", &s.kernel_path.http)];
    m.family(
        "xgate_http_responses_total",
        "counter",
        "HTTP responses started, by path and status class.",
    );
    for (path, h) in paths {
        for class in 1..=5u16 {
            m.sample(
                "xgate_http_responses_total",
                &format!("path=\"{path}\",class=\"{class}xx\""),
                h.responses_class(class),
            );
        }
    }
    m.family(
        "xgate_http_refused_total",
        "counter",
        "Requests refused or cut, by path and reason.",
    );
    for (path, h) in paths {
        for (reason, n) in [
            ("bad_head", h.rejected),
            ("header_timeout", h.header_timeouts),
            ("body_timeout", h.body_timeouts),
            ("bad_body", h.body_errors),
            ("aborted", h.aborted),
        ] {
            m.sample(
                "xgate_http_refused_total",
                &format!("path=\"{path}\",reason=\"{reason}\""),
                n,
            );
        }
    }
    m.family(
        "xgate_http_idle_closes_total",
        "counter",
        "Keep-alive connections closed by the idle timeout, by path.",
    );
    for (path, h) in paths {
        m.sample(
            "xgate_http_idle_closes_total",
            &format!("path=\"{path}\""),
            h.idle_timeouts,
        );
    }
    m.family(
        "xgate_http_response_duration_seconds",
        "histogram",
        "From a request head received to the last byte of its response handed to TCP, by path.",
    );
    for (path, h) in paths {
        m.histogram(
            "xgate_http_response_duration_seconds",
            &format!("path=\"{path}\""),
            &h.latency,
        );
    }
}

/// TLS on both paths: handshakes full and resumed, versions, cipher suites, failures by kind,
/// server names answered with the default certificate, handshakes deferred by the budget.
fn tls(m: &mut Metrics, s: &Status) {
    let paths: [(&str, &TlsStats); 2] = [("bypass", &s.bypass_tls), ("kernel", &s.kernel_path.tls)];
    m.family(
        "xgate_tls_handshakes_total",
        "counter",
        "TLS handshakes completed, by path and kind (full, resumed).",
    );
    for (path, t) in paths {
        for (kind, n) in [
            ("full", t.handshakes_full),
            ("resumed", t.handshakes_resumed),
        ] {
            m.sample(
                "xgate_tls_handshakes_total",
                &format!("path=\"{path}\",kind=\"{kind}\""),
                n,
            );
        }
    }
    m.family(
        "xgate_tls_versions_total",
        "counter",
        "TLS handshakes completed, by path and protocol version.",
    );
    for (path, t) in paths {
        for (version, n) in [("1.2", t.versions[0]), ("1.3", t.versions[1])] {
            m.sample(
                "xgate_tls_versions_total",
                &format!("path=\"{path}\",version=\"{version}\""),
                n,
            );
        }
    }
    m.family(
        "xgate_tls_cipher_suites_total",
        "counter",
        "TLS handshakes completed, by path and cipher suite.",
    );
    for (path, t) in paths {
        for (i, n) in t.suites.iter().enumerate() {
            m.sample(
                "xgate_tls_cipher_suites_total",
                &format!("path=\"{path}\",suite=\"{}\"", suite_name(i)),
                *n,
            );
        }
    }
    m.family(
        "xgate_tls_failures_total",
        "counter",
        "TLS connections that failed or were refused before carrying HTTP, by path and reason.",
    );
    for (path, t) in paths {
        for why in TlsFailure::ALL {
            m.sample(
                "xgate_tls_failures_total",
                &format!("path=\"{path}\",reason=\"{}\"", why.as_str()),
                t.failures_of(why),
            );
        }
    }
    m.family(
        "xgate_tls_default_certificate_total",
        "counter",
        "ClientHellos whose server name had no certificate, answered with the default one.",
    );
    for (path, t) in paths {
        m.sample(
            "xgate_tls_default_certificate_total",
            &format!("path=\"{path}\""),
            t.default_certificate,
        );
    }
    m.family(
        "xgate_tls_handshakes_deferred_total",
        "counter",
        "Handshake steps put off to the next round because the round's budget was spent.",
    );
    for (path, t) in paths {
        m.sample(
            "xgate_tls_handshakes_deferred_total",
            &format!("path=\"{path}\""),
            t.handshakes_deferred,
        );
    }
}

/// The bypass engines' TCP: handshakes, cookies, retransmits, loss probes, RACK and D-SACK,
/// segments, resets, challenge ACKs.
fn bypass_tcp(m: &mut Metrics, s: &Status) {
    let t = &s.bypass_tcp;
    m.family(
        "xgate_bypass_tcp_handshakes_total",
        "counter",
        "Bypass handshakes completed (from a SYN cache entry or a valid SYN cookie).",
    );
    m.sample(
        "xgate_bypass_tcp_handshakes_total",
        "",
        t.cookies_validated + t.syn_cache_completed,
    );
    m.family(
        "xgate_bypass_tcp_syn_cookies_sent_total",
        "counter",
        "SYN-ACKs the bypass engines sent from a cookie alone (no SYN cache entry).",
    );
    m.sample(
        "xgate_bypass_tcp_syn_cookies_sent_total",
        "",
        t.cookies_sent,
    );
    m.family(
        "xgate_bypass_tcp_syn_cache_total",
        "counter",
        "SYN cache entries, by what happened to them (overflow: a SYN answered with a cookie alone).",
    );
    for (event, n) in [
        ("added", t.syn_cache_added),
        ("completed", t.syn_cache_completed),
        ("expired", t.syn_cache_expired),
        ("reset", t.syn_cache_reset),
        ("overflow", t.syn_cache_overflows),
    ] {
        m.sample(
            "xgate_bypass_tcp_syn_cache_total",
            &format!("event=\"{event}\""),
            n,
        );
    }
    m.family(
        "xgate_bypass_tcp_retransmits_total",
        "counter",
        "Segments the bypass engines sent again, by trigger.",
    );
    m.sample(
        "xgate_bypass_tcp_retransmits_total",
        "kind=\"recovery\"",
        t.retransmits
            .saturating_sub(t.timeout_retransmits)
            .saturating_sub(t.probe_retransmits)
            .saturating_sub(t.pmtu_retransmits),
    );
    m.sample(
        "xgate_bypass_tcp_retransmits_total",
        "kind=\"pmtu\"",
        t.pmtu_retransmits,
    );
    m.sample(
        "xgate_bypass_tcp_retransmits_total",
        "kind=\"timeout\"",
        t.timeout_retransmits,
    );
    m.sample(
        "xgate_bypass_tcp_retransmits_total",
        "kind=\"probe\"",
        t.probe_retransmits,
    );
    m.sample(
        "xgate_bypass_tcp_retransmits_total",
        "kind=\"syn_ack\"",
        t.syn_ack_retransmits,
    );
    m.family(
        "xgate_bypass_tcp_connections_accepted_total",
        "counter",
        "Bypass connections established, by the client's address family.",
    );
    for (family, n) in [("ipv4", t.accepted_ipv4), ("ipv6", t.accepted_ipv6)] {
        m.sample(
            "xgate_bypass_tcp_connections_accepted_total",
            &format!("family=\"{family}\""),
            n,
        );
    }
    m.family(
        "xgate_kernel_connections_accepted_total",
        "counter",
        "Kernel-path connections accepted (sock_ops, all ports), by the client's address family \
         (an IPv4 client of a dual-stack listener counts as IPv4).",
    );
    let kernel_all: u64 = s.ports.iter().map(|p| p.kernel_connections_total).sum();
    let kernel_v6: u64 = s.ports.iter().map(|p| p.kernel_connections_ipv6).sum();
    for (family, n) in [
        ("ipv4", kernel_all.saturating_sub(kernel_v6)),
        ("ipv6", kernel_v6),
    ] {
        m.sample(
            "xgate_kernel_connections_accepted_total",
            &format!("family=\"{family}\""),
            n,
        );
    }
    m.family(
        "xgate_bypass_tcp_pmtu_total",
        "counter",
        "ICMP fragmentation-needed / ICMPv6 packet-too-big messages about bypass connections, \
         by what they did (lowered: the connection's MSS; the others were ignored).",
    );
    for (event, n) in [
        ("lowered", t.pmtu_lowered),
        ("unchanged", t.pmtu_unchanged),
        ("stale", t.pmtu_stale),
        ("unknown_flow", t.pmtu_unknown_flow),
        ("below_minimum", t.pmtu_below_minimum),
    ] {
        m.sample(
            "xgate_bypass_tcp_pmtu_total",
            &format!("event=\"{event}\""),
            n,
        );
    }
    m.family(
        "xgate_bypass_tcp_buffer_growths_total",
        "counter",
        "Connection rings the bypass engines grew, by ring (tcp.tx_buffer_max, tcp.rx_buffer_max).",
    );
    for (ring, n) in [
        ("send", t.send_buffer_growths),
        ("receive", t.recv_buffer_growths),
    ] {
        m.sample(
            "xgate_bypass_tcp_buffer_growths_total",
            &format!("ring=\"{ring}\""),
            n,
        );
    }
    m.family(
        "xgate_bypass_tcp_buffer_refusals_total",
        "counter",
        "Connections refused ring growth because tcp.buffer_budget was spent.",
    );
    m.sample(
        "xgate_bypass_tcp_buffer_refusals_total",
        "",
        t.buffer_refusals,
    );
    m.family(
        "xgate_bypass_tcp_buffer_grown_bytes",
        "gauge",
        "Bytes of ring growth the bypass engines' connections hold now.",
    );
    m.sample(
        "xgate_bypass_tcp_buffer_grown_bytes",
        "",
        t.buffer_grown_bytes,
    );
    m.family(
        "xgate_bypass_tcp_recoveries_total",
        "counter",
        "Loss recovery episodes the bypass engines entered (fast retransmit or RACK).",
    );
    m.sample("xgate_bypass_tcp_recoveries_total", "", t.fast_retransmits);
    m.family(
        "xgate_bypass_tcp_loss_probes_total",
        "counter",
        "Tail loss probes the bypass engines sent (RFC 8985 TLP).",
    );
    m.sample("xgate_bypass_tcp_loss_probes_total", "", t.loss_probes);
    m.family(
        "xgate_bypass_tcp_rack_lost_total",
        "counter",
        "Segments RACK (RFC 8985) marked lost.",
    );
    m.sample("xgate_bypass_tcp_rack_lost_total", "", t.rack_lost);
    m.family(
        "xgate_bypass_tcp_dsacks_total",
        "counter",
        "D-SACK blocks (RFC 2883) the bypass engines sent and received.",
    );
    m.sample(
        "xgate_bypass_tcp_dsacks_total",
        "direction=\"sent\"",
        t.dsacks_sent,
    );
    m.sample(
        "xgate_bypass_tcp_dsacks_total",
        "direction=\"received\"",
        t.dsacks_received,
    );
    m.family(
        "xgate_bypass_tcp_ecn_total",
        "counter",
        "ECN (RFC 3168) on the bypass: connections that negotiated it, segments that arrived \
         marked Congestion Experienced, window reductions for an ECN-Echo.",
    );
    m.sample(
        "xgate_bypass_tcp_ecn_total",
        "event=\"negotiated\"",
        t.ecn_negotiated,
    );
    m.sample(
        "xgate_bypass_tcp_ecn_total",
        "event=\"ce_received\"",
        t.ecn_ce_received,
    );
    m.sample(
        "xgate_bypass_tcp_ecn_total",
        "event=\"reduction\"",
        t.ecn_reductions,
    );
    m.family(
        "xgate_bypass_tcp_hystart_total",
        "counter",
        "HyStart++ (RFC 9406) in the bypass's first slow starts: Conservative Slow Start \
         entered on a rise in the RTT and abandoned as jitter; slow starts ended without a \
         loss by the ACK train or after CSS (Linux's TCPHystartTrainDetect, \
         TCPHystartDelayDetect).",
    );
    for (event, n) in [
        ("css_entered", t.hystart_css_entries),
        ("css_abandoned", t.hystart_css_abandoned),
        ("train_exit", t.hystart_train_exits),
        ("delay_exit", t.hystart_delay_exits),
    ] {
        m.sample(
            "xgate_bypass_tcp_hystart_total",
            &format!("event=\"{event}\""),
            n,
        );
    }
    m.family(
        "xgate_bypass_tcp_hystart_exit_cwnd_segments_total",
        "counter",
        "The congestion windows (segments) at which HyStart++ ended the bypass's slow \
         starts, summed; divided by the exits, the mean (Linux's TCPHystartTrainCwnd, \
         TCPHystartDelayCwnd).",
    );
    m.sample(
        "xgate_bypass_tcp_hystart_exit_cwnd_segments_total",
        "by=\"train\"",
        t.hystart_train_exit_segments,
    );
    m.sample(
        "xgate_bypass_tcp_hystart_exit_cwnd_segments_total",
        "by=\"delay\"",
        t.hystart_delay_exit_segments,
    );
    m.family(
        "xgate_bypass_tcp_segments_total",
        "counter",
        "TCP segments the bypass engines received and sent.",
    );
    m.sample(
        "xgate_bypass_tcp_segments_total",
        "direction=\"in\"",
        t.segments_in,
    );
    m.sample(
        "xgate_bypass_tcp_segments_total",
        "direction=\"out\"",
        t.segments_out,
    );
    m.family(
        "xgate_bypass_tcp_resets_total",
        "counter",
        "RSTs the bypass engines received and sent.",
    );
    m.sample(
        "xgate_bypass_tcp_resets_total",
        "direction=\"in\"",
        t.rsts_in,
    );
    m.sample(
        "xgate_bypass_tcp_resets_total",
        "direction=\"out\"",
        t.rsts_out,
    );
    m.family(
        "xgate_bypass_tcp_challenge_acks_total",
        "counter",
        "RFC 5961 challenge ACKs sent, and those the rate limit suppressed.",
    );
    m.sample(
        "xgate_bypass_tcp_challenge_acks_total",
        "result=\"sent\"",
        t.challenge_acks_sent,
    );
    m.sample(
        "xgate_bypass_tcp_challenge_acks_total",
        "result=\"suppressed\"",
        t.challenge_acks_suppressed,
    );
}

/// What the bypass path dropped: segments by the engines' reason, and the poller rounds a full
/// TX ring, a missing UMEM frame or an empty fill ring stopped.
fn bypass_drops(m: &mut Metrics, s: &Status) {
    let t = &s.bypass_tcp;
    m.family(
        "xgate_bypass_drops_total",
        "counter",
        "Segments the bypass engines dropped or refused, by reason, and poller rounds stopped \
         by a full ring.",
    );
    for r in DropReason::ALL {
        m.sample(
            "xgate_bypass_drops_total",
            &format!("reason=\"{}\"", r.name()),
            t.drop_count(r),
        );
    }
    let ring = |f: fn(&PollerState) -> u64| s.pollers.iter().map(f).sum::<u64>();
    m.sample(
        "xgate_bypass_drops_total",
        "reason=\"tx_ring_full\"",
        ring(|p| p.tx_ring_full),
    );
    m.sample(
        "xgate_bypass_drops_total",
        "reason=\"tx_no_frame\"",
        ring(|p| p.tx_no_frame),
    );
    m.sample(
        "xgate_bypass_drops_total",
        "reason=\"fill_ring_empty\"",
        ring(|p| p.fill_ring_empty),
    );
}

/// What the kernel dropped at each AF_XDP socket before the poller saw it (`XDP_STATISTICS`):
/// the one place where a bypass frame can vanish without the engines counting it.
fn socket_drops(m: &mut Metrics, s: &Status) {
    m.family(
        "xgate_bypass_socket_drops_total",
        "counter",
        "Frames the kernel dropped at a poller's AF_XDP socket, by RX queue and reason \
         (rx_ring_full: the poller did not keep up; fill_ring_empty: no free frame), and \
         descriptors it found invalid.",
    );
    for p in &s.pollers {
        let reasons = [
            ("rx_ring_full", p.socket_rx_ring_full),
            ("fill_ring_empty", p.socket_rx_fill_ring_empty),
            ("other", p.socket_rx_dropped),
            ("rx_invalid_desc", p.socket_rx_invalid_descs),
            ("tx_invalid_desc", p.socket_tx_invalid_descs),
        ];
        for (reason, n) in reasons {
            m.sample(
                "xgate_bypass_socket_drops_total",
                &format!("queue=\"{}\",reason=\"{reason}\"", p.queue),
                n,
            );
        }
    }
}

/// Per poller (RX queue): loop rounds, busy ratio, frames.
fn pollers(m: &mut Metrics, s: &Status) {
    m.family(
        "xgate_poller_loops_total",
        "counter",
        "Poller loop rounds that did work (busy) or found none (idle), by RX queue.",
    );
    m.family(
        "xgate_poller_busy_ratio",
        "gauge",
        "Share of a poller's loop rounds that did work, since start.",
    );
    m.family(
        "xgate_poller_frames_total",
        "counter",
        "Frames a poller received and sent, by RX queue.",
    );
    for p in &s.pollers {
        let q = format!("queue=\"{}\"", p.queue);
        m.sample(
            "xgate_poller_loops_total",
            &format!("{q},kind=\"busy\""),
            p.busy_loops,
        );
        m.sample(
            "xgate_poller_loops_total",
            &format!("{q},kind=\"idle\""),
            p.idle_loops,
        );
        let total = p.busy_loops + p.idle_loops;
        let ratio = if total == 0 {
            0.0
        } else {
            p.busy_loops as f64 / total as f64
        };
        m.sample_f64("xgate_poller_busy_ratio", &q, ratio);
        m.sample(
            "xgate_poller_frames_total",
            &format!("{q},direction=\"rx\""),
            p.rx_frames,
        );
        m.sample(
            "xgate_poller_frames_total",
            &format!("{q},direction=\"tx\""),
            p.tx_frames,
        );
    }
}

/// The kernel path: connections refused, socket errors and peer resets.
fn kernel_path(m: &mut Metrics, s: &Status) {
    let k = &s.kernel_path;
    m.family(
        "xgate_kernel_connections_refused_total",
        "counter",
        "Connections the kernel path accepted and closed at once (over its bound, or draining).",
    );
    m.sample("xgate_kernel_connections_refused_total", "", k.refused);
    m.family(
        "xgate_kernel_errors_total",
        "counter",
        "Kernel-path socket errors, and connections reset by their peer.",
    );
    m.sample("xgate_kernel_errors_total", "kind=\"error\"", k.errors);
    m.sample("xgate_kernel_errors_total", "kind=\"peer_reset\"", k.resets);
}

/// The access log, when there is one: lines written and lost, failures, reopens.
fn access_log(m: &mut Metrics, s: &Status) {
    let Some(a) = &s.access_log else {
        return;
    };
    m.family(
        "xgate_access_log_lines_total",
        "counter",
        "Access-log lines written, and records lost (a serving thread's buffer full, or a \
         failed write).",
    );
    m.sample(
        "xgate_access_log_lines_total",
        "result=\"written\"",
        a.written,
    );
    m.sample(
        "xgate_access_log_lines_total",
        "result=\"dropped\"",
        a.dropped,
    );
    m.family(
        "xgate_access_log_errors_total",
        "counter",
        "Access-log writes and reopens that failed.",
    );
    m.sample("xgate_access_log_errors_total", "", a.errors);
    m.family(
        "xgate_access_log_reopens_total",
        "counter",
        "Access-log reopens (SIGUSR1).",
    );
    m.sample("xgate_access_log_reopens_total", "", a.reopens);
}

/// The proxy: per upstream server, requests, responses by class, failures by kind, retries,
/// connections active and idle, passive health, the upstream's response time; per path, the
/// requests answered 503/502 for want of a server or a connection.
fn upstreams(m: &mut Metrics, s: &Status) {
    m.family(
        "xgate_proxy_unforwarded_total",
        "counter",
        "Requests routed upstream that the gateway answered itself, by path and reason \
         (no_server: 503, no server of the pool eligible; no_connection: 502).",
    );
    let bypass = |f: fn(&PollerState) -> u64| s.pollers.iter().map(f).sum::<u64>();
    for (path, reason, n) in [
        ("bypass", "no_server", bypass(|p| p.upstream_no_server)),
        (
            "bypass",
            "no_connection",
            bypass(|p| p.upstream_no_connection),
        ),
        ("kernel", "no_server", s.kernel_path.upstream_no_server),
        (
            "kernel",
            "no_connection",
            s.kernel_path.upstream_no_connection,
        ),
    ] {
        m.sample(
            "xgate_proxy_unforwarded_total",
            &format!("path=\"{path}\",reason=\"{reason}\""),
            n,
        );
    }
    if s.upstreams.is_empty() {
        return;
    }
    let label = |u: &crate::proxy::forwarder::UpstreamServerState| {
        format!(
            "upstream=\"{}\",server=\"{}\"",
            escape(&u.upstream),
            escape(&u.server)
        )
    };
    m.family(
        "xgate_upstream_requests_total",
        "counter",
        "Exchanges started with an upstream server (a retry is one more).",
    );
    for u in &s.upstreams {
        m.sample(
            "xgate_upstream_requests_total",
            &label(u),
            u.counters.requests,
        );
    }
    m.family(
        "xgate_upstream_responses_total",
        "counter",
        "Final responses of an upstream server passed on, by status class.",
    );
    for u in &s.upstreams {
        for class in 1..=5usize {
            m.sample(
                "xgate_upstream_responses_total",
                &format!("{},class=\"{class}xx\"", label(u)),
                u.counters.responses[class - 1],
            );
        }
    }
    m.family(
        "xgate_upstream_failures_total",
        "counter",
        "Failed exchanges with an upstream server, by kind.",
    );
    for u in &s.upstreams {
        for (kind, n) in u.counters.failures.by_name() {
            m.sample(
                "xgate_upstream_failures_total",
                &format!("{},kind=\"{kind}\"", label(u)),
                n,
            );
        }
    }
    m.family(
        "xgate_upstream_retried_total",
        "counter",
        "Requests that failed on this server and went to another one.",
    );
    for u in &s.upstreams {
        m.sample(
            "xgate_upstream_retried_total",
            &label(u),
            u.counters.retried,
        );
    }
    m.family(
        "xgate_upstream_stale_connections_total",
        "counter",
        "Pooled connections the upstream had closed when a request went on them (the request \
         went again on a new connection; not counted as a failure).",
    );
    for u in &s.upstreams {
        m.sample(
            "xgate_upstream_stale_connections_total",
            &label(u),
            u.counters.stale_connections,
        );
    }
    m.family(
        "xgate_upstream_abandoned_total",
        "counter",
        "Exchanges the client abandoned (it went away, or its body was bad).",
    );
    for u in &s.upstreams {
        m.sample(
            "xgate_upstream_abandoned_total",
            &label(u),
            u.counters.abandoned,
        );
    }
    m.family(
        "xgate_upstream_connections",
        "gauge",
        "Connections to an upstream server: carrying an exchange (active) or pooled (idle).",
    );
    for u in &s.upstreams {
        m.sample(
            "xgate_upstream_connections",
            &format!("{},state=\"active\"", label(u)),
            u.counters.in_flight,
        );
        m.sample(
            "xgate_upstream_connections",
            &format!("{},state=\"idle\"", label(u)),
            u.idle_connections,
        );
    }
    m.family(
        "xgate_upstream_ejected_threads",
        "gauge",
        "Serving threads that have the server out of rotation now (passive health), of \
         xgate_upstream_threads.",
    );
    for u in &s.upstreams {
        m.sample(
            "xgate_upstream_ejected_threads",
            &label(u),
            u.ejected_threads,
        );
    }
    m.family(
        "xgate_upstream_threads",
        "gauge",
        "Serving threads that have sent the server a request.",
    );
    for u in &s.upstreams {
        m.sample("xgate_upstream_threads", &label(u), u.threads);
    }
    m.family(
        "xgate_upstream_response_seconds",
        "histogram",
        "From the request's end to the upstream's response head.",
    );
    for u in &s.upstreams {
        m.histogram(
            "xgate_upstream_response_seconds",
            &label(u),
            &u.counters.response_time,
        );
    }
}

/// Reloads asked for, by result.
fn reloads(m: &mut Metrics, s: &Status) {
    m.family(
        "xgate_reloads_total",
        "counter",
        "Reloads asked for (SIGHUP), by result.",
    );
    m.sample(
        "xgate_reloads_total",
        "result=\"accepted\"",
        s.reload.accepted,
    );
    m.sample(
        "xgate_reloads_total",
        "result=\"refused\"",
        s.reload.requested - s.reload.accepted.min(s.reload.requested),
    );
}

/// Label values: backslash, double quote and newline escaped (the format's only rules).
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{KernelState, PathStatus, PortStatus};
    use crate::time::Duration;

    fn status() -> Status {
        let mut s = Status {
            ifname: "eth1".into(),
            pid: 7,
            xdp_attached: "native".into(),
            phase: "running".into(),
            counters_age_ms: 250,
            ..Status::default()
        };
        s.ports = vec![
            PortStatus {
                port: 80,
                listener_tagged: true,
                state: "on".into(),
                redirected: 1000,
                bypass: PathStatus {
                    connections: 3,
                    connections_total: 10,
                    requests: 99,
                },
                ..PortStatus::default()
            },
            PortStatus {
                port: 8080,
                state: "off".into(),
                kernel: PathStatus {
                    connections: 1,
                    connections_total: 2,
                    requests: 5,
                },
                ..PortStatus::default()
            },
        ];
        s.bypass_http.responses = [0, 90, 0, 9, 0];
        s.bypass_http.latency.record(Duration::from_micros(80));
        s.bypass_http.latency.record(Duration::from_millis(3));
        s.bypass_tcp.retransmits = 5;
        s.bypass_tcp.timeout_retransmits = 3;
        s.bypass_tcp.probe_retransmits = 1;
        s.bypass_tcp.fast_retransmits = 2;
        s.bypass_tcp.send_buffer_growths = 7;
        s.bypass_tcp.recv_buffer_growths = 3;
        s.bypass_tcp.buffer_refusals = 1;
        s.bypass_tcp.buffer_grown_bytes = 4 << 20;
        s.bypass_tcp.hystart_css_entries = 4;
        s.bypass_tcp.hystart_css_abandoned = 3;
        s.bypass_tcp.hystart_train_exits = 2;
        s.bypass_tcp.hystart_train_exit_segments = 480;
        s.bypass_tcp.hystart_delay_exits = 1;
        s.bypass_tcp.hystart_delay_exit_segments = 90;
        s.bypass_tcp.drops[DropReason::BadCookie.index()] = 4;
        s.pollers = vec![PollerState {
            queue: 0,
            busy_loops: 1,
            idle_loops: 3,
            tx_ring_full: 6,
            socket_rx_ring_full: 11,
            ..PollerState::default()
        }];
        s.kernel_path = KernelState::default();
        s.reload.requested = 3;
        s.reload.accepted = 2;
        s.access_log = Some(crate::report::AccessLogState {
            path: "/var/log/xgate/access.log".into(),
            written: 41,
            dropped: 2,
            errors: 0,
            reopens: 1,
        });
        let mut up = crate::proxy::forwarder::UpstreamServerState {
            upstream: "api".into(),
            server: "10.0.0.2:8080".into(),
            idle_connections: 4,
            ejected_threads: 1,
            threads: 3,
            ..Default::default()
        };
        up.counters.requests = 17;
        up.counters.responses = [0, 15, 0, 0, 1];
        up.counters.failures.read_timeout = 2;
        up.counters.in_flight = 1;
        up.counters.response_time.record(Duration::from_millis(2));
        s.upstreams = vec![up];
        s.kernel_path.upstream_no_server = 6;
        s
    }

    fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)));
        match found.map(|s| &s.value) {
            Some(prometheus_parse::Value::Counter(v))
            | Some(prometheus_parse::Value::Gauge(v))
            | Some(prometheus_parse::Value::Untyped(v)) => *v,
            other => panic!("{name} {labels:?}: {other:?}"),
        }
    }

    #[test]
    fn the_page_parses_and_carries_the_status_figures() {
        let page = render(&status());
        let lines = page.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("a valid page");
        assert_eq!(
            value(
                &scrape,
                "xgate_requests_total",
                &[("port", "80"), ("path", "bypass")]
            ),
            99.0
        );
        assert_eq!(
            value(
                &scrape,
                "xgate_connections",
                &[("port", "8080"), ("path", "kernel")]
            ),
            1.0
        );
        assert_eq!(
            value(
                &scrape,
                "xgate_port_bypass",
                &[("port", "80"), ("state", "on")]
            ),
            1.0
        );
        assert_eq!(
            value(
                &scrape,
                "xgate_port_bypass",
                &[("port", "80"), ("state", "off")]
            ),
            0.0
        );
        assert_eq!(
            value(
                &scrape,
                "xgate_http_responses_total",
                &[("path", "bypass"), ("class", "4xx")]
            ),
            9.0
        );
        assert_eq!(
            value(
                &scrape,
                "xgate_bypass_drops_total",
                &[("reason", "bad_cookie")]
            ),
            4.0
        );
        assert_eq!(
            value(
                &scrape,
                "xgate_bypass_drops_total",
                &[("reason", "tx_ring_full")]
            ),
            6.0
        );
        assert_eq!(
            value(
                &scrape,
                "xgate_bypass_socket_drops_total",
                &[("queue", "0"), ("reason", "rx_ring_full")]
            ),
            11.0
        );
        assert_eq!(
            value(
                &scrape,
                "xgate_bypass_socket_drops_total",
                &[("queue", "0"), ("reason", "fill_ring_empty")]
            ),
            0.0
        );
        for (kind, n) in [("recovery", 1.0), ("timeout", 3.0), ("probe", 1.0)] {
            assert_eq!(
                value(
                    &scrape,
                    "xgate_bypass_tcp_retransmits_total",
                    &[("kind", kind)]
                ),
                n,
                "{kind}"
            );
        }
        assert_eq!(
            value(&scrape, "xgate_bypass_tcp_recoveries_total", &[]),
            2.0
        );
        for (event, n) in [
            ("css_entered", 4.0),
            ("css_abandoned", 3.0),
            ("train_exit", 2.0),
            ("delay_exit", 1.0),
        ] {
            assert_eq!(
                value(
                    &scrape,
                    "xgate_bypass_tcp_hystart_total",
                    &[("event", event)]
                ),
                n,
                "{event}"
            );
        }
        for (by, n) in [("train", 480.0), ("delay", 90.0)] {
            assert_eq!(
                value(
                    &scrape,
                    "xgate_bypass_tcp_hystart_exit_cwnd_segments_total",
                    &[("by", by)]
                ),
                n,
                "{by}"
            );
        }
        for (ring, n) in [("send", 7.0), ("receive", 3.0)] {
            assert_eq!(
                value(
                    &scrape,
                    "xgate_bypass_tcp_buffer_growths_total",
                    &[("ring", ring)]
                ),
                n,
                "{ring}"
            );
        }
        for (name, n) in [
            ("xgate_bypass_tcp_buffer_refusals_total", 1.0),
            ("xgate_bypass_tcp_buffer_grown_bytes", f64::from(4u32 << 20)),
        ] {
            assert_eq!(value(&scrape, name, &[]), n, "{name}");
        }
        assert_eq!(
            value(&scrape, "xgate_poller_busy_ratio", &[("queue", "0")]),
            0.25
        );
        assert_eq!(
            value(&scrape, "xgate_reloads_total", &[("result", "refused")]),
            1.0
        );
        assert_eq!(
            value(
                &scrape,
                "xgate_access_log_lines_total",
                &[("result", "dropped")]
            ),
            2.0
        );
        assert_eq!(value(&scrape, "xgate_access_log_reopens_total", &[]), 1.0);
        let api = [("upstream", "api"), ("server", "10.0.0.2:8080")];
        assert_eq!(value(&scrape, "xgate_upstream_requests_total", &api), 17.0);
        let with = |extra: (&'static str, &'static str)| {
            let mut l = api.to_vec();
            l.push(extra);
            l
        };
        assert_eq!(
            value(
                &scrape,
                "xgate_upstream_responses_total",
                &with(("class", "5xx"))
            ),
            1.0
        );
        assert_eq!(
            value(
                &scrape,
                "xgate_upstream_failures_total",
                &with(("kind", "read_timeout"))
            ),
            2.0
        );
        assert_eq!(
            value(
                &scrape,
                "xgate_upstream_connections",
                &with(("state", "idle"))
            ),
            4.0
        );
        assert_eq!(value(&scrape, "xgate_upstream_ejected_threads", &api), 1.0);
        assert_eq!(
            value(
                &scrape,
                "xgate_proxy_unforwarded_total",
                &[("path", "kernel"), ("reason", "no_server")]
            ),
            6.0
        );
        assert_eq!(
            value(
                &scrape,
                "xgate_info",
                &[("ifname", "eth1"), ("xdp_mode", "native")]
            ),
            1.0
        );
        // The latency histogram: cumulative buckets, sum and count in seconds.
        let h = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "xgate_http_response_duration_seconds"
                    && s.labels.get("path") == Some("bypass")
            })
            .expect("histogram");
        match &h.value {
            prometheus_parse::Value::Histogram(buckets) => {
                let at = |le: f64| {
                    buckets
                        .iter()
                        .find(|b| b.less_than == le || (b.less_than - le).abs() < 1e-12)
                        .map(|b| b.count)
                };
                assert_eq!(at(0.0001), Some(1.0));
                assert_eq!(at(0.005), Some(2.0));
                assert_eq!(at(f64::INFINITY), Some(2.0));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn every_family_is_declared_once_and_its_samples_are_contiguous() {
        let page = render(&status());
        let mut declared = Vec::new();
        let mut current = String::new();
        for line in page.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap().to_string();
                assert!(!declared.contains(&name), "{name} declared twice");
                declared.push(name.clone());
                current = name;
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let name = line.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| *f == current))
                .unwrap_or(name);
            assert_eq!(family, current, "{line} outside its family");
        }
        assert!(!page.contains("xgate_undeclared"));
    }
}
