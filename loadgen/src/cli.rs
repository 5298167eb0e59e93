//! The `loadgen` command line: clap types, and [`RunArgs::scenario`], which turns `loadgen
//! run`'s arguments into the [`Scenario`] the library runs. Parsing and validation happen
//! here and in [`Scenario::validate`]; running is [`crate::run`]'s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::response::BodyCheck;
use crate::scenario::{is_https, Scenario, ScenarioError, Stop, Target};
use crate::tls::{KeyExchange, TlsOptions, TlsVersion, Verify};

/// loadgen: an HTTP/1.1 load generator on kernel sockets (closed loop, open loop with
/// coordinated-omission correction, connection churn), made to compare xgate's bypass path,
/// its kernel path and nginx.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load one target and report latency, throughput and errors.
    Run(RunArgs),
    /// Measure xgate's bypass path, its kernel path and nginx side by side in a veth
    /// topology and write the results to bench-results/ (root only).
    Compare(crate::compare::CompareArgs),
    /// Download and upload through emulated paths (RTT, loss, bottleneck) with a real Linux
    /// client, on xgate's bypass path and its kernel path side by side, and write the
    /// results to bench-results/ (root only).
    Paths(crate::compare::paths::PathsArgs),
    /// Established and new clients on xgate's bypass path and its kernel path, quiet and
    /// under a SYN flood from spoofed sources, with xgate's memory, and write the results to
    /// bench-results/flood.md (root only).
    Flood(crate::compare::flood::FloodArgs),
    /// xgate's bypass path with one RX queue and with two (one poller per CPU), the client's
    /// share of the machine beside the pollers' CPU per request, and a projection per added
    /// core, labelled as one; writes bench-results/scaling.md (root only).
    Scaling(crate::compare::scaling::ScalingArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Target, http://HOST:PORT/PATH (port 80 and path / when left out); the Host header is
    /// HOST:PORT as written.
    #[arg(long, conflicts_with = "addr", required_unless_present = "addr")]
    pub url: Option<String>,
    /// Target address IP:PORT, [IPv6]:PORT for IPv6 (with --path); the Host header is the
    /// address.
    #[arg(long)]
    pub addr: Option<SocketAddr>,
    /// Request path with --addr.
    #[arg(long, default_value = "/", requires = "addr")]
    pub path: String,

    /// Keep-alive connections, or with --churn, connections open at once (over all threads).
    #[arg(short, long, default_value_t = 16)]
    pub connections: usize,
    /// Requests outstanding per keep-alive connection (1: no pipelining).
    #[arg(short, long, default_value_t = 1)]
    pub pipeline: usize,
    /// How long to send requests after the warm-up, e.g. 10s, 500ms, 2m (default 10s).
    #[arg(short, long, value_parser = parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,
    /// Count exactly this many requests (after the warm-up), then stop.
    #[arg(short = 'n', long)]
    pub requests: Option<u64>,
    /// Open loop: send this many requests per second whatever the server does; latency is
    /// counted from each request's due time. Without it: closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// A new connection for each request (Connection: close).
    #[arg(long)]
    pub churn: bool,
    /// Load before the measurement, not counted, e.g. 2s.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub warmup: Duration,

    /// Request method.
    #[arg(short, long, default_value = "GET")]
    pub method: String,
    /// Request body size in bytes (byte i is b'a' + i % 26, which /echo sends back).
    #[arg(long, default_value_t = 0)]
    pub body_size: usize,
    /// Extra request header NAME: VALUE (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// Status every response must have, or "any".
    #[arg(long, default_value = "200", value_parser = parse_status)]
    pub expect_status: StatusArg,
    /// Body length every response must have.
    #[arg(long)]
    pub expect_body_size: Option<u64>,
    /// Check every body byte: byte i must be b'a' + i % 26 (the gateway's /bytes/{n}, and
    /// /echo of loadgen's body). The length is --expect-body-size, else n of a /bytes/{n}
    /// path, else --body-size.
    #[arg(long, conflicts_with = "expect_body_file")]
    pub verify_body: bool,
    /// Every body must be exactly the bytes of this file.
    #[arg(long, value_name = "FILE")]
    pub expect_body_file: Option<PathBuf>,

    /// A request fails as a timeout without its response this long after its due time; a
    /// connect fails after this long.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,
    /// Load threads (each runs its share of the connections in its own epoll set).
    #[arg(short, long, default_value_t = 1)]
    pub threads: usize,
    /// Pin thread i to the i-th CPU of this list (cycled), e.g. 0,2-3.
    #[arg(long, value_name = "LIST", value_parser = parse_cpu_list)]
    pub cpu: Option<CpuList>,

    /// HTTPS: speak TLS (rustls) on every connection; an https:// URL implies it. Needs
    /// --tls-ca or --tls-insecure.
    #[arg(long)]
    pub tls: bool,
    /// HTTPS: trust the CA certificates of this PEM file (the server's certificate, its name
    /// and the handshake's signature are checked).
    #[arg(long, value_name = "FILE", conflicts_with = "tls_insecure")]
    pub tls_ca: Option<PathBuf>,
    /// HTTPS, benchmarks only: check nothing (any certificate, any name, no signature check),
    /// so the client's core spends nothing on verification; the server's work is unchanged.
    #[arg(long)]
    pub tls_insecure: bool,
    /// HTTPS: offer only this TLS version, 1.2 or 1.3 (default: both, 1.3 preferred).
    #[arg(long, value_name = "1.2|1.3", value_parser = ["1.2", "1.3"])]
    pub tls_version: Option<String>,
    /// HTTPS: the server name sent (SNI) and checked (default: the target's host; an IP
    /// address sends none).
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// HTTPS: keep a session cache so that new connections resume (tickets, or TLS 1.2
    /// session IDs); without it every connection makes a full handshake.
    #[arg(long)]
    pub tls_resume: bool,
    /// HTTPS: the key exchange offered: default (rustls' list, X25519MLKEM768 first),
    /// x25519, p256 or x25519mlkem768.
    #[arg(long, value_name = "GROUP", default_value = "default",
          value_parser = ["default", "x25519", "p256", "x25519mlkem768"])]
    pub tls_kx: String,

    /// Write the report as JSON to FILE, or to stdout with "-" (the summary then goes to
    /// stderr).
    #[arg(long, value_name = "FILE")]
    pub json: Option<String>,
    /// Show a progress line on stderr once a second (the default when stderr is a terminal).
    #[arg(long)]
    pub progress: bool,
    /// Never show the progress line.
    #[arg(long, conflicts_with = "progress")]
    pub no_progress: bool,
}

/// `--expect-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusArg(pub Option<u16>);

/// `--cpu`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

impl RunArgs {
    /// The scenario these arguments describe, validated.
    pub fn scenario(&self, stderr_is_terminal: bool) -> Result<Scenario, CliError> {
        let target = match (&self.url, self.addr) {
            (Some(url), _) => Target::from_url(url)?,
            (None, Some(addr)) => Target::from_addr(addr, &self.path)?,
            (None, None) => return Err(CliError::NoTarget),
        };
        let mut s = Scenario::new(target);
        s.method = self.method.clone();
        s.body_size = self.body_size;
        s.headers = self
            .headers
            .iter()
            .map(|h| {
                let (name, value) = h
                    .split_once(':')
                    .ok_or_else(|| ScenarioError::Header(h.clone()))?;
                Ok((name.trim().to_string(), value.trim().to_string()))
            })
            .collect::<Result<_, ScenarioError>>()?;
        s.connections = self.connections;
        s.pipeline = self.pipeline;
        s.rate = self.rate;
        s.churn = self.churn;
        s.stop = match (self.duration, self.requests) {
            (_, Some(n)) => Stop::Requests(n),
            (Some(d), None) => Stop::Duration(d),
            (None, None) => Stop::Duration(Duration::from_secs(10)),
        };
        s.warmup = self.warmup;
        s.timeout = self.timeout;
        s.threads = self.threads;
        s.cpus = self.cpu.clone().map(|c| c.0).unwrap_or_default();
        s.progress = !self.no_progress && (self.progress || stderr_is_terminal);
        s.expect.status = self.expect_status.0;
        s.expect.head_request = s.method == "HEAD";
        s.expect.body_len = self.expect_body_size;
        if let Some(path) = &self.expect_body_file {
            let bytes = std::fs::read(path).map_err(|source| CliError::BodyFile {
                path: path.clone(),
                source,
            })?;
            s.expect.body = BodyCheck::Exact(Arc::from(bytes));
        } else if self.verify_body {
            s.expect.body = BodyCheck::Pattern;
            if s.expect.body_len.is_none() {
                s.expect.body_len = s.implied_body_len();
            }
        }
        s.tls = self.tls_options()?;
        s.validate()?;
        Ok(s)
    }

    /// The TLS settings, when --tls or an https:// URL asks for them.
    fn tls_options(&self) -> Result<Option<TlsOptions>, CliError> {
        let https = self.tls || self.url.as_deref().is_some_and(is_https);
        if !https {
            let stray = [
                ("--tls-ca", self.tls_ca.is_some()),
                ("--tls-insecure", self.tls_insecure),
                ("--tls-version", self.tls_version.is_some()),
                ("--server-name", self.server_name.is_some()),
                ("--tls-resume", self.tls_resume),
                ("--tls-kx", self.tls_kx != "default"),
            ]
            .into_iter()
            .find(|(_, given)| *given);
            return match stray {
                Some((flag, _)) => Err(CliError::TlsOptionWithoutTls(flag)),
                None => Ok(None),
            };
        }
        let verify = match (&self.tls_ca, self.tls_insecure) {
            (Some(ca), _) => Verify::Ca(ca.clone()),
            (None, true) => Verify::Insecure,
            (None, false) => return Err(CliError::TlsWithoutVerify),
        };
        Ok(Some(TlsOptions {
            version: self.tls_version.as_deref().and_then(TlsVersion::parse),
            server_name: self.server_name.clone(),
            verify,
            resume: self.tls_resume,
            kx: KeyExchange::parse(&self.tls_kx).unwrap_or(KeyExchange::Default),
        }))
    }
}

/// Arguments that do not make a scenario.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("give a target with --url or --addr")]
    NoTarget,
    #[error("{0} is an HTTPS option: add --tls or use an https:// URL")]
    TlsOptionWithoutTls(&'static str),
    #[error(
        "HTTPS needs a way to check the server: --tls-ca FILE, or --tls-insecure for a benchmark"
    )]
    TlsWithoutVerify,
    #[error("cannot read --expect-body-file {path:?}")]
    BodyFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `10s`, `250ms`, `100us`, `2m`, `1.5s`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 10s, 500ms, 2m)"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?} (use ns, us, ms, s, m, h)"
            ))
        }
    };
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("{s:?}: {e}"))
}

fn parse_status(s: &str) -> Result<StatusArg, String> {
    if s.eq_ignore_ascii_case("any") {
        return Ok(StatusArg(None));
    }
    match s.parse::<u16>() {
        Ok(code) if (100..=599).contains(&code) => Ok(StatusArg(Some(code))),
        _ => Err(format!("{s:?} is not a status code 100..=599 or \"any\"")),
    }
}

/// `0,2-3,7` -> [0, 2, 3, 7].
pub fn parse_cpu_list(s: &str) -> Result<CpuList, String> {
    let mut cpus = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let bad = || format!("{part:?} in {s:?} is not a CPU number or range like 2-5");
        if let Some((a, b)) = part.split_once('-') {
            let a: usize = a.trim().parse().map_err(|_| bad())?;
            let b: usize = b.trim().parse().map_err(|_| bad())?;
            if a > b {
                return Err(bad());
            }
            cpus.extend(a..=b);
        } else {
            cpus.push(part.parse().map_err(|_| bad())?);
        }
    }
    Ok(CpuList(cpus))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::BodyCheck;

    fn args(extra: &[&str]) -> Result<RunArgs, clap::Error> {
        let mut v = vec!["loadgen", "run", "--url", "http://127.0.0.1:9/bytes/64"];
        v.extend_from_slice(extra);
        Cli::try_parse_from(v).map(|c| match c.command {
            Command::Run(a) => a,
            Command::Compare(_) | Command::Paths(_) | Command::Flood(_) | Command::Scaling(_) => {
                unreachable!("parsed `run`")
            }
        })
    }

    fn scenario(extra: &[&str]) -> Result<Scenario, String> {
        args(extra)
            .map_err(|e| e.to_string())?
            .scenario(false)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn durations_and_cpu_lists() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(parse_cpu_list("0,2-4"), Ok(CpuList(vec![0, 2, 3, 4])));
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
    }

    #[test]
    fn a_full_command_line() {
        let s = scenario(&[
            "-c",
            "64",
            "--pipeline",
            "4",
            "--requests",
            "1000",
            "--verify-body",
            "-H",
            "X-A: b",
            "--threads",
            "2",
            "--cpu",
            "0-1",
            "--timeout",
            "2s",
            "--warmup",
            "1s",
        ])
        .unwrap();
        assert_eq!(s.connections, 64);
        assert_eq!(s.pipeline, 4);
        assert_eq!(s.stop, Stop::Requests(1000));
        assert_eq!(s.expect.body, BodyCheck::Pattern);
        assert_eq!(s.expect.body_len, Some(64));
        assert_eq!(s.headers, vec![("X-A".to_string(), "b".to_string())]);
        assert_eq!(s.cpus, vec![0, 1]);
        assert_eq!(s.timeout, Duration::from_secs(2));
        assert_eq!(s.warmup, Duration::from_secs(1));
        assert_eq!(s.stop, Stop::Requests(1000));
        assert!(!s.progress);
    }

    #[test]
    fn nonsense_is_refused_with_what_is_wrong() {
        for (extra, words) in [
            (&["--rate", "0"][..], "--rate"),
            (&["--churn", "--pipeline", "8"], "--churn"),
            (
                &["--duration", "1s", "--requests", "5"],
                "cannot be used with",
            ),
            (&["--connections", "0"], "--connections"),
            (&["--expect-status", "700"], "status code"),
            (&["--threads", "3", "-c", "2"], "every thread needs"),
            (&["--duration", "0s"], "--duration"),
            (&["-H", "no colon"], "bad header"),
            (&["-m", "HEAD", "--verify-body"], "HEAD"),
            (&["--cpu", "x"], "CPU number"),
        ] {
            let e = scenario(extra).unwrap_err();
            assert!(e.contains(words), "{extra:?}: {e:?} lacks {words:?}");
        }
        let e = Cli::try_parse_from(["loadgen", "run"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--url"), "{e}");
        let e = Cli::try_parse_from([
            "loadgen",
            "run",
            "--url",
            "http://127.0.0.1/echo",
            "--verify-body",
        ])
        .unwrap()
        .command;
        let Command::Run(a) = e else {
            unreachable!("parsed `run`")
        };
        let e = a.scenario(false).unwrap_err().to_string();
        assert!(e.contains("--verify-body needs"), "{e}");
    }

    #[test]
    fn https_options_make_tls_settings_and_need_tls() {
        let mut v = vec!["loadgen", "run", "--url", "https://127.0.0.1:8443/health"];
        v.extend([
            "--tls-insecure",
            "--tls-resume",
            "--tls-version",
            "1.2",
            "--server-name",
            "other.test",
            "--tls-kx",
            "x25519",
        ]);
        let Command::Run(a) = Cli::try_parse_from(v).unwrap().command else {
            unreachable!("parsed `run`")
        };
        let t = a.scenario(false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.tls,
            Some(TlsOptions {
                version: Some(TlsVersion::V12),
                server_name: Some("other.test".into()),
                verify: Verify::Insecure,
                resume: true,
                kx: KeyExchange::X25519,
            })
        );
        let s = scenario(&["--tls", "--tls-ca", "/ca.pem"]).unwrap();
        assert_eq!(s.tls.unwrap().verify, Verify::Ca("/ca.pem".into()));
        assert_eq!(scenario(&[]).unwrap().tls, None);
        for (extra, words) in [
            (&["--tls"][..], "--tls-ca FILE, or --tls-insecure"),
            (&["--tls-ca", "/ca.pem"], "--tls-ca is an HTTPS option"),
            (&["--tls-resume"], "--tls-resume is an HTTPS option"),
            (&["--tls-kx", "p256"], "--tls-kx is an HTTPS option"),
            (&["--tls", "--tls-version", "1.1"], "1.1"),
            (
                &["--tls", "--tls-ca", "/a", "--tls-insecure"],
                "cannot be used",
            ),
        ] {
            let e = scenario(extra).unwrap_err();
            assert!(e.contains(words), "{extra:?}: {e:?} lacks {words:?}");
        }
    }

    #[test]
    fn addr_and_path_make_a_target() {
        let c = Cli::try_parse_from([
            "loadgen",
            "run",
            "--addr",
            "127.0.0.1:8080",
            "--path",
            "/health",
            "--rate",
            "100",
        ])
        .unwrap();
        let Command::Run(a) = c.command else {
            unreachable!("parsed `run`")
        };
        let s = a.scenario(true).unwrap();
        assert_eq!(s.target.host, "127.0.0.1:8080");
        assert_eq!(s.target.path, "/health");
        assert_eq!(s.rate, Some(100.0));
        assert!(s.progress);
    }

    /// An IPv6 target either way, its Host header the bracketed literal (RFC 3986's
    /// IP-literal, which RFC 9110 §7.2's Host takes).
    #[test]
    fn an_ipv6_address_is_a_target() {
        let want: SocketAddr = "[fd78:6761:7465::1]:18180".parse().unwrap();
        let forms: [&[&str]; 2] = [
            &["--addr", "[fd78:6761:7465::1]:18180", "--path", "/bytes/64"],
            &["--url", "http://[fd78:6761:7465::1]:18180/bytes/64"],
        ];
        for form in forms {
            let mut v = vec!["loadgen", "run"];
            v.extend(form);
            let Command::Run(a) = Cli::try_parse_from(v).unwrap().command else {
                unreachable!("parsed `run`")
            };
            let s = a.scenario(false).unwrap();
            assert_eq!(s.target.addr, want, "{form:?}");
            assert_eq!(s.target.host, "[fd78:6761:7465::1]:18180", "{form:?}");
            assert_eq!(s.target.path, "/bytes/64", "{form:?}");
        }
    }
}
