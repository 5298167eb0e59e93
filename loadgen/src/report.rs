//! What a run measured: counters and histograms gathered per thread ([`Stats`]), merged into a
//! [`Report`] that serialises to the JSON documented in the crate root and prints as a human
//! summary.

use std::fmt::{self, Write as _};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::response::{BodyCheck, Failure};
use crate::scenario::{Scenario, Stop};
use crate::tls::{Negotiated, TlsOptions, Verify};

/// Value of the `schema` field; bumped when a field changes meaning or goes away (adding
/// fields keeps it).
pub const SCHEMA: &str = "xgate-loadgen-run/1";

/// Largest latency recorded exactly, in ns (one hour); larger values count as this.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// Points per halving of the remaining percentile range in `latency_distribution` (the
/// HdrHistogram convention for percentile plots).
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// How a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Its connection could not be opened (refused, unreachable, out of ports or descriptors,
    /// or no handshake within the timeout).
    Connect,
    /// The connection was reset (ECONNRESET, EPIPE, ECONNABORTED).
    Reset,
    /// No complete response within the timeout from its intended send time.
    Timeout,
    /// A complete response with another status than expected.
    Status,
    /// The connection ended inside the response's body.
    ShortBody,
    /// A complete body of the wrong length.
    BodyLength,
    /// A body whose bytes differ from the expected ones.
    BodyBytes,
    /// A response that cannot be read as HTTP/1.1 (the connection is then closed).
    Protocol,
    /// The server closed the connection before this request's response began (after
    /// `Connection: close` on an earlier pipelined response, or with nothing said).
    Closed,
    /// Any other socket error.
    Io,
    /// HTTPS: the TLS handshake failed (an alert, a certificate refused) or a record could not
    /// be read (the connection is then closed).
    Tls,
}

impl From<Failure> for ErrorKind {
    fn from(f: Failure) -> ErrorKind {
        match f {
            Failure::Status { .. } => ErrorKind::Status,
            Failure::BodyLength { .. } => ErrorKind::BodyLength,
            Failure::BodyBytes { .. } => ErrorKind::BodyBytes,
        }
    }
}

impl ErrorKind {
    /// The kind of a socket error.
    pub fn of_io(e: &std::io::Error) -> ErrorKind {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => ErrorKind::Reset,
            K::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Io,
        }
    }
}

/// Failed requests by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCounts {
    pub connect: u64,
    pub reset: u64,
    pub timeout: u64,
    pub status: u64,
    pub short_body: u64,
    pub body_length: u64,
    pub body_bytes: u64,
    pub protocol: u64,
    pub closed: u64,
    pub io: u64,
    pub tls: u64,
}

impl ErrorCounts {
    pub fn add(&mut self, kind: ErrorKind) {
        *self.slot(kind) += 1;
    }

    pub fn get(&self, kind: ErrorKind) -> u64 {
        let mut copy = *self;
        *copy.slot(kind)
    }

    fn slot(&mut self, kind: ErrorKind) -> &mut u64 {
        match kind {
            ErrorKind::Connect => &mut self.connect,
            ErrorKind::Reset => &mut self.reset,
            ErrorKind::Timeout => &mut self.timeout,
            ErrorKind::Status => &mut self.status,
            ErrorKind::ShortBody => &mut self.short_body,
            ErrorKind::BodyLength => &mut self.body_length,
            ErrorKind::BodyBytes => &mut self.body_bytes,
            ErrorKind::Protocol => &mut self.protocol,
            ErrorKind::Closed => &mut self.closed,
            ErrorKind::Io => &mut self.io,
            ErrorKind::Tls => &mut self.tls,
        }
    }

    fn named(&self) -> [(&'static str, u64); 11] {
        [
            ("connect", self.connect),
            ("reset", self.reset),
            ("timeout", self.timeout),
            ("status", self.status),
            ("short_body", self.short_body),
            ("body_length", self.body_length),
            ("body_bytes", self.body_bytes),
            ("protocol", self.protocol),
            ("closed", self.closed),
            ("io", self.io),
            ("tls", self.tls),
        ]
    }

    pub fn total(&self) -> u64 {
        self.named().iter().map(|(_, n)| n).sum()
    }

    fn merge(&mut self, o: &ErrorCounts) {
        for (kind, n) in [
            (ErrorKind::Connect, o.connect),
            (ErrorKind::Reset, o.reset),
            (ErrorKind::Timeout, o.timeout),
            (ErrorKind::Status, o.status),
            (ErrorKind::ShortBody, o.short_body),
            (ErrorKind::BodyLength, o.body_length),
            (ErrorKind::BodyBytes, o.body_bytes),
            (ErrorKind::Protocol, o.protocol),
            (ErrorKind::Closed, o.closed),
            (ErrorKind::Io, o.io),
            (ErrorKind::Tls, o.tls),
        ] {
            *self.slot(kind) += n;
        }
    }
}

/// Connections opened and lost during the measurement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ConnectionCounts {
    /// connect(2) calls.
    pub attempted: u64,
    /// Handshakes completed.
    pub established: u64,
    /// Attempts that failed or timed out.
    pub failed: u64,
    /// Connections the server ended (EOF, reset, `Connection: close`).
    pub closed_by_server: u64,
}

impl ConnectionCounts {
    fn merge(&mut self, o: &ConnectionCounts) {
        self.attempted += o.attempted;
        self.established += o.established;
        self.failed += o.failed;
        self.closed_by_server += o.closed_by_server;
    }
}

/// HTTPS: the handshakes completed during the measurement, by kind, and what the first one
/// negotiated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TlsCounts {
    /// Full handshakes (with or without a HelloRetryRequest).
    pub handshakes_full: u64,
    /// Handshakes that resumed a session.
    pub handshakes_resumed: u64,
    pub negotiated: Option<Negotiated>,
}

impl TlsCounts {
    fn merge(&mut self, o: &TlsCounts) {
        self.handshakes_full += o.handshakes_full;
        self.handshakes_resumed += o.handshakes_resumed;
        self.negotiated = self.negotiated.or(o.negotiated);
    }
}

/// One thread's measurements.
#[derive(Debug, Clone)]
pub struct Stats {
    pub ok: u64,
    pub errors: ErrorCounts,
    pub connections: ConnectionCounts,
    /// HTTPS handshakes (all zero for plain HTTP).
    pub tls: TlsCounts,
    /// Bytes written to and read from the sockets (TLS records, with HTTPS).
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Successful requests, ns from the intended send time to the response's last byte.
    pub latency: Histogram<u64>,
    /// Successful requests, ns from the actual send (open loop; equals `latency` closed).
    pub latency_uncorrected: Histogram<u64>,
    /// Successful requests, ns from the intended to the actual send (open loop): waiting for
    /// a free connection, and loadgen's own wake-up lag.
    pub send_lag: Histogram<u64>,
    /// Handshakes, ns from connect(2) to writable (with HTTPS: to the TLS handshake's end).
    pub connect_latency: Histogram<u64>,
    pub cpu_user: Duration,
    pub cpu_system: Duration,
    /// When the last counted request ended (ns, the run's clock); 0 if none did.
    pub last_outcome_ns: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            ok: 0,
            errors: ErrorCounts::default(),
            connections: ConnectionCounts::default(),
            tls: TlsCounts::default(),
            bytes_sent: 0,
            bytes_received: 0,
            latency: histogram(),
            latency_uncorrected: histogram(),
            send_lag: histogram(),
            connect_latency: histogram(),
            cpu_user: Duration::ZERO,
            cpu_system: Duration::ZERO,
            last_outcome_ns: 0,
        }
    }
}

impl Stats {
    pub fn merge(&mut self, o: &Stats) {
        self.ok += o.ok;
        self.errors.merge(&o.errors);
        self.connections.merge(&o.connections);
        self.tls.merge(&o.tls);
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        // Same bounds everywhere, so adding cannot fail.
        let _ = self.latency.add(&o.latency);
        let _ = self.latency_uncorrected.add(&o.latency_uncorrected);
        let _ = self.send_lag.add(&o.send_lag);
        let _ = self.connect_latency.add(&o.connect_latency);
        self.cpu_user += o.cpu_user;
        self.cpu_system += o.cpu_system;
        self.last_outcome_ns = self.last_outcome_ns.max(o.last_outcome_ns);
    }
}

/// A latency histogram summarised, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub stdev: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub p99_99: f64,
    pub max: f64,
}

/// Nanoseconds to microseconds, keeping nanosecond precision.
fn us(ns: f64) -> f64 {
    ns.round() / 1000.0
}

impl LatencySummary {
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        let q = |q: f64| us(h.value_at_quantile(q) as f64);
        LatencySummary {
            count: h.len(),
            min: us(h.min() as f64),
            mean: us(h.mean()),
            stdev: us(h.stdev()),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p99_9: q(0.999),
            p99_99: q(0.9999),
            max: us(h.max() as f64),
        }
    }
}

/// One point of a latency-by-percentile curve: `percentile` % of the successful requests took
/// at most `latency_us`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PercentilePoint {
    pub percentile: f64,
    pub latency_us: f64,
}

/// The curve HdrHistogram draws (5 points per halving of the remaining range, so the tail is
/// dense), ending at 100 %.
pub fn distribution(h: &Histogram<u64>) -> Vec<PercentilePoint> {
    h.iter_quantiles(TICKS_PER_HALF_DISTANCE)
        .map(|v| PercentilePoint {
            percentile: v.quantile_iterated_to() * 100.0,
            latency_us: us(v.value_iterated_to() as f64),
        })
        .collect()
}

/// The scenario as recorded in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioReport {
    pub url: String,
    pub addr: String,
    pub method: String,
    pub body_size: usize,
    /// "closed" or "open".
    #[serde(rename = "loop")]
    pub loop_kind: &'static str,
    pub churn: bool,
    pub connections: usize,
    pub pipeline: usize,
    pub rate: Option<f64>,
    pub threads: usize,
    pub cpus: Vec<usize>,
    pub duration_s: Option<f64>,
    pub requests: Option<u64>,
    pub warmup_s: f64,
    pub timeout_s: f64,
    pub expect_status: Option<u16>,
    pub expect_body_size: Option<u64>,
    /// "none", "pattern" or "exact".
    pub verify_body: &'static str,
    /// HTTPS settings; null for plain HTTP.
    pub tls: Option<TlsScenarioReport>,
}

/// A run's TLS settings as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsScenarioReport {
    /// "1.2", "1.3", or "1.2+1.3" (both offered).
    pub versions: &'static str,
    /// The name sent as SNI and checked; null: the target's host.
    pub server_name: Option<String>,
    /// "ca" (the certificate checked against --tls-ca) or "insecure" (nothing checked).
    pub verify: &'static str,
    /// Whether new connections resume sessions.
    pub resume: bool,
    /// The key exchange offered: "default", "x25519", "p256" or "x25519mlkem768".
    pub kx: &'static str,
}

impl TlsScenarioReport {
    fn of(t: &TlsOptions) -> TlsScenarioReport {
        TlsScenarioReport {
            versions: t.version.map_or("1.2+1.3", |v| v.name()),
            server_name: t.server_name.clone(),
            verify: match t.verify {
                Verify::Ca(_) => "ca",
                Verify::Insecure => "insecure",
            },
            resume: t.resume,
            kx: t.kx.name(),
        }
    }
}

impl ScenarioReport {
    pub fn of(s: &Scenario) -> ScenarioReport {
        ScenarioReport {
            url: format!(
                "{}://{}{}",
                if s.tls.is_some() { "https" } else { "http" },
                s.target.host,
                s.target.path
            ),
            addr: s.target.addr.to_string(),
            method: s.method.clone(),
            body_size: s.body_size,
            loop_kind: s.loop_kind(),
            churn: s.churn,
            connections: s.connections,
            pipeline: s.pipeline,
            rate: s.rate,
            threads: s.threads,
            cpus: s.cpus.clone(),
            duration_s: match s.stop {
                Stop::Duration(d) => Some(d.as_secs_f64()),
                Stop::Requests(_) => None,
            },
            requests: match s.stop {
                Stop::Requests(n) => Some(n),
                Stop::Duration(_) => None,
            },
            warmup_s: s.warmup.as_secs_f64(),
            timeout_s: s.timeout.as_secs_f64(),
            expect_status: s.expect.status,
            expect_body_size: s.expect.required_len(),
            verify_body: match s.expect.body {
                BodyCheck::Any => "none",
                BodyCheck::Pattern => "pattern",
                BodyCheck::Exact(_) => "exact",
            },
            tls: s.tls.as_ref().map(TlsScenarioReport::of),
        }
    }
}

/// loadgen's own CPU time during the measurement (its worker threads).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CpuUsage {
    pub user_s: f64,
    pub system_s: f64,
    /// (user + system) / requests, in µs; 0 without requests.
    pub per_request_us: f64,
}

/// Everything one run measured. Serialises to the documented JSON; `histograms` stays out of
/// it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub scenario: ScenarioReport,
    /// From the end of the warm-up to the later of the planned end and the last counted
    /// request's end.
    pub elapsed_s: f64,
    /// Counted requests: `ok + failed`.
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    pub errors: ErrorCounts,
    /// `ok / elapsed_s`.
    pub throughput_rps: f64,
    pub connections: ConnectionCounts,
    /// HTTPS: handshakes by kind and what was negotiated; null for plain HTTP.
    pub tls: Option<TlsCounts>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Successful requests; in the open loop measured from the intended send time.
    pub latency_us: LatencySummary,
    pub latency_distribution: Vec<PercentilePoint>,
    /// Open loop only: measured from the actual send, as a client that ignores coordinated
    /// omission would report.
    pub latency_uncorrected_us: Option<LatencySummary>,
    /// Open loop only: from the intended to the actual send of each successful request
    /// (time spent waiting for a free connection, plus loadgen's own wake-up lag; its low
    /// percentiles show what the client itself adds).
    pub send_lag_us: Option<LatencySummary>,
    pub connect_latency_us: LatencySummary,
    pub cpu: CpuUsage,
    #[serde(skip)]
    pub stats: Stats,
}

impl Report {
    pub fn new(scenario: &Scenario, stats: Stats, elapsed: Duration) -> Report {
        let failed = stats.errors.total();
        let requests = stats.ok + failed;
        let elapsed_s = elapsed.as_secs_f64();
        let cpu_s = (stats.cpu_user + stats.cpu_system).as_secs_f64();
        Report {
            schema: SCHEMA,
            scenario: ScenarioReport::of(scenario),
            elapsed_s,
            requests,
            ok: stats.ok,
            failed,
            errors: stats.errors,
            throughput_rps: if elapsed_s > 0.0 {
                stats.ok as f64 / elapsed_s
            } else {
                0.0
            },
            connections: stats.connections,
            tls: scenario.tls.as_ref().map(|_| stats.tls),
            bytes_sent: stats.bytes_sent,
            bytes_received: stats.bytes_received,
            latency_us: LatencySummary::of(&stats.latency),
            latency_distribution: distribution(&stats.latency),
            latency_uncorrected_us: scenario
                .rate
                .map(|_| LatencySummary::of(&stats.latency_uncorrected)),
            send_lag_us: scenario.rate.map(|_| LatencySummary::of(&stats.send_lag)),
            connect_latency_us: LatencySummary::of(&stats.connect_latency),
            cpu: CpuUsage {
                user_s: stats.cpu_user.as_secs_f64(),
                system_s: stats.cpu_system.as_secs_f64(),
                per_request_us: if requests > 0 {
                    cpu_s * 1e6 / requests as f64
                } else {
                    0.0
                },
            },
            stats,
        }
    }

    /// Successful requests that took at least `at_least` (from the intended send time).
    pub fn count_at_least(&self, at_least: Duration) -> u64 {
        count_at_least(&self.stats.latency, at_least)
    }

    /// Like [`Report::count_at_least`], measured from the actual send.
    pub fn uncorrected_count_at_least(&self, at_least: Duration) -> u64 {
        count_at_least(&self.stats.latency_uncorrected, at_least)
    }

    /// The human summary printed after a run.
    pub fn summary(&self) -> String {
        let s = &self.scenario;
        let mut out = String::new();
        let shape = match (s.loop_kind, s.churn) {
            ("open", false) => format!(
                "open loop at {} req/s over {} keep-alive connection(s), pipeline {}",
                s.rate.unwrap_or(0.0),
                s.connections,
                s.pipeline
            ),
            ("open", true) => format!(
                "open loop at {} req/s, a new connection per request, up to {} at once",
                s.rate.unwrap_or(0.0),
                s.connections
            ),
            (_, false) => format!(
                "closed loop, {} keep-alive connection(s), pipeline {}",
                s.connections, s.pipeline
            ),
            (_, true) => format!(
                "closed loop, a new connection per request, {} at once",
                s.connections
            ),
        };
        let _ = writeln!(out, "loadgen: {} {} ({})", s.method, s.url, s.addr);
        let _ = writeln!(
            out,
            "  {shape}; {} thread(s); {:.2} s measured",
            s.threads, self.elapsed_s
        );
        let _ = writeln!(
            out,
            "  requests     {} ok, {} failed; {:.1} req/s",
            group(self.ok),
            group(self.failed),
            self.throughput_rps
        );
        let l = &self.latency_us;
        let _ = writeln!(out, "  latency      {}", latency_line(l));
        if let Some(u) = &self.latency_uncorrected_us {
            let _ = writeln!(out, "  uncorrected  {}", latency_line(u));
        }
        if let Some(lag) = &self.send_lag_us {
            let _ = writeln!(out, "  send lag     {}", latency_line(lag));
        }
        let errors: Vec<String> = self
            .errors
            .named()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name} {}", group(*n)))
            .collect();
        let _ = writeln!(
            out,
            "  errors       {}",
            if errors.is_empty() {
                "none".to_string()
            } else {
                errors.join(", ")
            }
        );
        let c = &self.connections;
        let handshake = if c.established > 0 {
            format!(
                " (median handshake {})",
                fmt_us(self.connect_latency_us.p50)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  connections  {} opened during the measurement{handshake}, {} failed, {} closed by the server",
            group(c.established),
            group(c.failed),
            group(c.closed_by_server)
        );
        if let Some(t) = &self.tls {
            let what = t.negotiated.map_or(String::new(), |n| {
                format!(" ({} {} {})", n.version, n.cipher_suite, n.kx_group)
            });
            let _ = writeln!(
                out,
                "  tls          {} full, {} resumed handshake(s){what}",
                group(t.handshakes_full),
                group(t.handshakes_resumed)
            );
        }
        let _ = writeln!(
            out,
            "  transfer     {} sent, {} received",
            bytes(self.bytes_sent),
            bytes(self.bytes_received)
        );
        let _ = write!(
            out,
            "  loadgen cpu  user {:.2} s, system {:.2} s ({:.2} µs per request)",
            self.cpu.user_s, self.cpu.system_s, self.cpu.per_request_us
        );
        out
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}

fn count_at_least(h: &Histogram<u64>, at_least: Duration) -> u64 {
    let from = u64::try_from(at_least.as_nanos()).unwrap_or(u64::MAX);
    if h.is_empty() || from > h.max() {
        return 0;
    }
    h.count_between(from, h.max())
}

fn latency_line(l: &LatencySummary) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  mean {}",
        fmt_us(l.p50),
        fmt_us(l.p90),
        fmt_us(l.p99),
        fmt_us(l.p99_9),
        fmt_us(l.p99_99),
        fmt_us(l.max),
        fmt_us(l.mean)
    )
}

fn fmt_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

fn bytes(n: u64) -> String {
    let n = n as f64;
    if n < 1e3 {
        format!("{n} B")
    } else if n < 1e6 {
        format!("{:.1} kB", n / 1e3)
    } else if n < 1e9 {
        format!("{:.1} MB", n / 1e6)
    } else {
        format!("{:.2} GB", n / 1e9)
    }
}

/// 1234567 -> "1,234,567".
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_and_counts_from_a_histogram() {
        let mut h = histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let l = LatencySummary::of(&h);
        assert_eq!(l.count, 1000);
        assert!((l.p50 - 500.0).abs() < 1.0, "{l:?}");
        assert!((l.p99 - 990.0).abs() < 1.0, "{l:?}");
        assert!((l.max - 1000.0).abs() < 1.0, "{l:?}");
        assert_eq!(count_at_least(&h, Duration::from_micros(901)), 100);
        assert_eq!(count_at_least(&h, Duration::from_secs(1)), 0);
        let d = distribution(&h);
        assert!(d.len() > 20);
        assert!(d
            .windows(2)
            .all(|w| w[0].percentile <= w[1].percentile && w[0].latency_us <= w[1].latency_us));
        assert_eq!(d.last().unwrap().percentile, 100.0);
    }

    #[test]
    fn error_counts_add_up() {
        let mut e = ErrorCounts::default();
        e.add(ErrorKind::Reset);
        e.add(ErrorKind::Reset);
        e.add(ErrorKind::BodyBytes);
        let mut f = ErrorCounts::default();
        f.merge(&e);
        f.merge(&e);
        assert_eq!(f.get(ErrorKind::Reset), 4);
        assert_eq!(f.total(), 6);
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(group(999), "999");
    }
}
