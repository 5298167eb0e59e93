//! What to run: the target, the request, the load shape, when to stop and what every response
//! must be. [`Scenario::validate`] refuses combinations that make no sense, saying why.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use thiserror::Error;

use crate::response::{BodyCheck, Expect};
use crate::tls::TlsOptions;

/// Where requests go and what `Host` and path they carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// The `Host` header's value.
    pub host: String,
    /// Origin-form request target (path and query).
    pub path: String,
}

impl Target {
    /// `http://HOST[:PORT][/PATH]` or `https://...` (port 443 by default; whether to speak TLS
    /// is the scenario's [`Scenario::tls`], see [`is_https`]); HOST is an IP address (IPv6 in
    /// brackets) or a name that is resolved once, here. The `Host` header is `HOST[:PORT]` as
    /// written.
    pub fn from_url(url: &str) -> Result<Target, ScenarioError> {
        let bad = |why: &str| ScenarioError::Url {
            url: url.to_string(),
            why: why.to_string(),
        };
        let (rest, default_port) = if let Some(rest) = url.strip_prefix("http://") {
            (rest, 80)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (rest, 443)
        } else {
            return Err(bad("expected http://HOST[:PORT]/PATH or https://..."));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        if authority.contains('@') {
            return Err(bad("user information is not supported"));
        }
        if path.contains('#') {
            return Err(bad("a fragment (#...) is not sent in HTTP requests"));
        }
        let with_port = if authority.ends_with(']') || !authority.contains(':') {
            format!("{authority}:{default_port}")
        } else {
            authority.to_string()
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| bad(&format!("cannot resolve {authority}: {e}")))?
            .next()
            .ok_or_else(|| bad(&format!("{authority} resolves to no address")))?;
        let target = Target {
            addr,
            host: authority.to_string(),
            path: path.to_string(),
        };
        check_path(&target.path)?;
        Ok(target)
    }

    /// `addr` with `path`; the `Host` header is the address.
    pub fn from_addr(addr: SocketAddr, path: &str) -> Result<Target, ScenarioError> {
        check_path(path)?;
        Ok(Target {
            addr,
            host: addr.to_string(),
            path: path.to_string(),
        })
    }
}

fn check_path(path: &str) -> Result<(), ScenarioError> {
    let ok =
        path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic()) && !path.contains('#');
    if ok {
        Ok(())
    } else {
        Err(ScenarioError::Path(path.to_string()))
    }
}

/// When the measured part of a run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// Requests are started for this long after the warm-up, then the ones in flight finish.
    Duration(Duration),
    /// This many requests are counted (warm-up requests are not).
    Requests(u64),
}

/// One run of the load generator.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub target: Target,
    /// Request method, an HTTP token.
    pub method: String,
    /// Extra request headers. `Host` replaces the default one; `Content-Length`,
    /// `Transfer-Encoding` and `Connection` are loadgen's own and refused.
    pub headers: Vec<(String, String)>,
    /// Request body length; the body is the [`crate::response::ALPHABET`] pattern.
    pub body_size: usize,
    /// Keep-alive connections (or, with `churn`, concurrent connection slots), over all
    /// threads.
    pub connections: usize,
    /// Requests outstanding per keep-alive connection.
    pub pipeline: usize,
    /// Open loop at this many requests per second over all threads; `None` is closed loop.
    pub rate: Option<f64>,
    /// A new connection for each request (`Connection: close`).
    pub churn: bool,
    pub stop: Stop,
    /// Load before the measurement, not counted.
    pub warmup: Duration,
    /// A request without its complete response this long after its intended send time
    /// fails as a timeout; a connect that takes longer fails as a connect error.
    pub timeout: Duration,
    pub expect: Expect,
    pub threads: usize,
    /// CPUs to pin the threads to, thread `i` on `cpus[i % cpus.len()]`; empty: no pinning.
    pub cpus: Vec<usize>,
    /// A one-line progress display on stderr once a second.
    pub progress: bool,
    /// HTTPS: every connection speaks TLS with these settings; `None`: plain HTTP.
    pub tls: Option<TlsOptions>,
}

impl Scenario {
    /// `GET` on 16 keep-alive connections for 10 s, expecting 200, one thread.
    pub fn new(target: Target) -> Scenario {
        Scenario {
            target,
            method: "GET".to_string(),
            headers: Vec::new(),
            body_size: 0,
            connections: 16,
            pipeline: 1,
            rate: None,
            churn: false,
            stop: Stop::Duration(Duration::from_secs(10)),
            warmup: Duration::ZERO,
            timeout: Duration::from_secs(5),
            expect: Expect::default(),
            threads: 1,
            cpus: Vec::new(),
            progress: false,
            tls: None,
        }
    }

    /// "closed" or "open".
    pub fn loop_kind(&self) -> &'static str {
        if self.rate.is_some() {
            "open"
        } else {
            "closed"
        }
    }

    /// The body length a `--verify-body` run can expect when none was given: `n` for a path
    /// `/bytes/{n}` (the gateway's generated bytes), else the request body's length when there
    /// is one (what `/echo` answers).
    pub fn implied_body_len(&self) -> Option<u64> {
        let path = self.target.path.split('?').next().unwrap_or("");
        if let Some(n) = path.strip_prefix("/bytes/") {
            if let Ok(n) = n.parse() {
                return Some(n);
            }
        }
        (self.body_size > 0).then_some(self.body_size as u64)
    }

    /// Refuses scenarios that cannot run or would measure nonsense.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        use ScenarioError as E;
        if self.connections == 0 {
            return Err(E::NoConnections);
        }
        if self.pipeline == 0 {
            return Err(E::ZeroPipeline);
        }
        if self.churn && self.pipeline > 1 {
            return Err(E::PipelineWithChurn(self.pipeline));
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(E::Rate(rate));
            }
        }
        match self.stop {
            Stop::Duration(d) if d.is_zero() => return Err(E::ZeroDuration),
            Stop::Requests(0) => return Err(E::ZeroRequests),
            _ => {}
        }
        if self.timeout.is_zero() {
            return Err(E::ZeroTimeout);
        }
        if self.threads == 0 {
            return Err(E::ZeroThreads);
        }
        if self.threads > self.connections {
            return Err(E::MoreThreadsThanConnections {
                threads: self.threads,
                connections: self.connections,
            });
        }
        if let Some(&cpu) = self.cpus.iter().find(|&&c| c >= libc::CPU_SETSIZE as usize) {
            return Err(E::Cpu(cpu));
        }
        if !is_token(&self.method) {
            return Err(E::Method(self.method.clone()));
        }
        check_path(&self.target.path)?;
        for (name, value) in &self.headers {
            if !is_token(name) || value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
                return Err(E::Header(format!("{name}: {value}")));
            }
            for reserved in ["content-length", "transfer-encoding", "connection"] {
                if name.eq_ignore_ascii_case(reserved) {
                    return Err(E::ReservedHeader(name.clone()));
                }
            }
        }
        let head = self.method == "HEAD";
        if head && (self.expect.required_len().is_some() || self.expect.body != BodyCheck::Any) {
            return Err(E::BodyCheckOnHead);
        }
        if self.expect.body == BodyCheck::Pattern && self.expect.body_len.is_none() {
            return Err(E::VerifyWithoutLength);
        }
        if let (BodyCheck::Exact(bytes), Some(n)) = (&self.expect.body, self.expect.body_len) {
            if bytes.len() as u64 != n {
                return Err(E::ConflictingLength {
                    exact: bytes.len() as u64,
                    given: n,
                });
            }
        }
        if self.expect.head_request != head {
            return Err(E::HeadMismatch);
        }
        Ok(())
    }
}

/// Whether `url` asks for HTTPS.
pub fn is_https(url: &str) -> bool {
    url.starts_with("https://")
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A scenario loadgen refuses to run, and why.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ScenarioError {
    #[error("bad URL {url:?}: {why}")]
    Url { url: String, why: String },
    #[error("bad request path {0:?}: it must start with '/' and hold no spaces or control bytes")]
    Path(String),
    #[error("--connections must be at least 1")]
    NoConnections,
    #[error("--pipeline must be at least 1 (1 means no pipelining)")]
    ZeroPipeline,
    #[error("--pipeline {0} cannot be combined with --churn: a churned connection carries exactly one request")]
    PipelineWithChurn(usize),
    #[error("--rate must be a positive, finite number of requests per second, got {0}")]
    Rate(f64),
    #[error("--duration must be longer than zero")]
    ZeroDuration,
    #[error("--requests must be at least 1")]
    ZeroRequests,
    #[error("--timeout must be longer than zero")]
    ZeroTimeout,
    #[error("--threads must be at least 1")]
    ZeroThreads,
    #[error("--threads {threads} is more than --connections {connections}: every thread needs at least one connection")]
    MoreThreadsThanConnections { threads: usize, connections: usize },
    #[error("--cpu {0}: no such CPU")]
    Cpu(usize),
    #[error("--method {0:?} is not an HTTP token")]
    Method(String),
    #[error("bad header {0:?}: expected NAME: VALUE with a token NAME and no control bytes")]
    Header(String),
    #[error("header {0} is set by loadgen itself (Content-Length from --body-size, Connection from --churn)")]
    ReservedHeader(String),
    #[error("a HEAD response has no body: --expect-body-size and --verify-body do not apply")]
    BodyCheckOnHead,
    #[error("--verify-body needs the body's length: give --expect-body-size, use a /bytes/{{n}} path, or send a body to /echo with --body-size")]
    VerifyWithoutLength,
    #[error("--expect-body-size {given} contradicts the expected body's {exact} bytes")]
    ConflictingLength { exact: u64, given: u64 },
    #[error("expect.head_request must be set exactly when the method is HEAD")]
    HeadMismatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        Scenario::new(Target::from_url("http://127.0.0.1:8080/health").unwrap())
    }

    #[test]
    fn urls() {
        let t = Target::from_url("http://127.0.0.1:8080/bytes/10?x=1").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.host, "127.0.0.1:8080");
        assert_eq!(t.path, "/bytes/10?x=1");
        let t = Target::from_url("http://[::1]").unwrap();
        assert_eq!(t.addr, "[::1]:80".parse().unwrap());
        assert_eq!(t.path, "/");
        let t = Target::from_url("https://127.0.0.1/x").unwrap();
        assert_eq!(t.addr, "127.0.0.1:443".parse().unwrap());
        assert!(is_https("https://127.0.0.1/x") && !is_https("http://127.0.0.1/x"));
        for bad in [
            "ftp://127.0.0.1/",
            "127.0.0.1:80/",
            "http:///x",
            "http://127.0.0.1/a b",
            "http://127.0.0.1/a#b",
            "http://127.0.0.1:99999/",
        ] {
            assert!(Target::from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        type Change = fn(&mut Scenario);
        let cases: Vec<(Change, &str)> = vec![
            (|s| s.rate = Some(0.0), "--rate"),
            (|s| s.rate = Some(f64::NAN), "--rate"),
            (
                |s| {
                    s.churn = true;
                    s.pipeline = 4
                },
                "--churn",
            ),
            (|s| s.connections = 0, "--connections"),
            (|s| s.pipeline = 0, "--pipeline"),
            (|s| s.stop = Stop::Requests(0), "--requests"),
            (|s| s.stop = Stop::Duration(Duration::ZERO), "--duration"),
            (|s| s.timeout = Duration::ZERO, "--timeout"),
            (|s| s.threads = 17, "every thread needs"),
            (|s| s.method = "GE T".into(), "--method"),
            (
                |s| s.headers = vec![("Connection".into(), "close".into())],
                "--churn",
            ),
            (
                |s| s.headers = vec![("X-A".into(), "a\r\nb".into())],
                "bad header",
            ),
            (
                |s| s.expect.body = BodyCheck::Pattern,
                "--verify-body needs",
            ),
            (
                |s| {
                    s.method = "HEAD".into();
                    s.expect.head_request = true;
                    s.expect.body_len = Some(3)
                },
                "HEAD",
            ),
            (|s| s.cpus = vec![100_000], "--cpu"),
        ];
        for (change, words) in cases {
            let mut s = scenario();
            s.validate().unwrap();
            change(&mut s);
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(words), "{e:?} lacks {words:?}");
        }
    }

    #[test]
    fn the_body_length_is_implied_by_bytes_paths_and_echo_bodies() {
        let mut s = Scenario::new(Target::from_url("http://127.0.0.1/bytes/123").unwrap());
        assert_eq!(s.implied_body_len(), Some(123));
        s.target.path = "/echo".into();
        assert_eq!(s.implied_body_len(), None);
        s.body_size = 9;
        assert_eq!(s.implied_body_len(), Some(9));
    }
}
