//! The scenarios every target runs, as `loadgen run` arguments.

use serde::{Deserialize, Serialize};

/// One workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Closed loop, 64 keep-alive connections, `GET /health`: the most requests per second.
    KeepAlive,
    /// A new TCP connection per request (32 at a time), `GET /health`: handshakes per second.
    Churn,
    /// Open loop at a fixed rate below every target's saturation, 64 keep-alive connections:
    /// latency percentiles (coordinated omission corrected) and machine CPU per request.
    OpenLoop,
    /// `POST /echo` with a 1 KiB body, 64 keep-alive connections, every body checked.
    Echo1k,
    /// `GET /bytes/16384`, 64 keep-alive connections, every body checked.
    Bytes16k,
    /// Through a proxy to the origin ([`super::proxy`]): `GET` of a 2-byte answer, 64
    /// keep-alive connections.
    ProxyGet,
    /// Through a proxy: `POST` of a 1 KiB body, answered with 2 bytes, 64 keep-alive
    /// connections.
    ProxyPost1k,
    /// Through a proxy: `GET` of a 64 KiB file, 64 keep-alive connections, every body checked.
    ProxyGet64k,
    /// HTTPS ([`super::https`]): keep-alive `GET /health`, 64 connections.
    HttpsGet,
    /// HTTPS: keep-alive `POST /echo` of 1 KiB, 64 connections, every body checked.
    HttpsPost1k,
    /// HTTPS: a new connection per request (32 at a time), every one a full handshake.
    HttpsFull,
    /// HTTPS: a new connection per request (32 at a time), resuming with the session
    /// tickets of earlier ones.
    HttpsResumed,
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [
        Scenario::KeepAlive,
        Scenario::Churn,
        Scenario::OpenLoop,
        Scenario::Echo1k,
        Scenario::Bytes16k,
    ];

    /// The proxy scenarios (issue 13): every target forwards them to the same origin. They
    /// run on their own (`--scenario proxy`), against the proxy targets.
    pub const PROXY: [Scenario; 3] = [
        Scenario::ProxyGet,
        Scenario::ProxyPost1k,
        Scenario::ProxyGet64k,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::KeepAlive => "keep-alive",
            Scenario::Churn => "churn",
            Scenario::OpenLoop => "open-loop",
            Scenario::Echo1k => "echo-1k",
            Scenario::Bytes16k => "bytes-16k",
            Scenario::ProxyGet => "proxy-get",
            Scenario::ProxyPost1k => "proxy-post-1k",
            Scenario::ProxyGet64k => "proxy-get-64k",
            Scenario::HttpsGet => "https-get",
            Scenario::HttpsPost1k => "https-post-1k",
            Scenario::HttpsFull => "https-full-handshake",
            Scenario::HttpsResumed => "https-resumed-handshake",
        }
    }

    /// Whether this is an HTTPS scenario.
    pub fn is_https(self) -> bool {
        Self::HTTPS.contains(&self)
    }

    /// Whether each request of this scenario is a new connection (a handshake).
    pub fn is_handshake(self) -> bool {
        matches!(
            self,
            Scenario::Churn | Scenario::HttpsFull | Scenario::HttpsResumed
        )
    }

    /// Whether the targets forward this scenario to the origin.
    pub fn is_proxy(self) -> bool {
        Self::PROXY.contains(&self)
    }

    pub fn title(self) -> &'static str {
        match self {
            Scenario::KeepAlive => "keep-alive GET /health, 64 conns",
            Scenario::Churn => "connection per request, 32 at a time",
            Scenario::OpenLoop => "open loop, fixed rate, 64 conns",
            Scenario::Echo1k => "POST /echo 1 KiB, 64 conns",
            Scenario::Bytes16k => "GET /bytes/16384, 64 conns",
            Scenario::ProxyGet => "proxied keep-alive GET (2 B), 64 conns",
            Scenario::ProxyPost1k => "proxied POST 1 KiB (2 B answer), 64 conns",
            Scenario::ProxyGet64k => "proxied GET 64 KiB, 64 conns",
            Scenario::HttpsGet => "HTTPS keep-alive GET /health, 64 conns",
            Scenario::HttpsPost1k => "HTTPS keep-alive POST /echo 1 KiB, 64 conns",
            Scenario::HttpsFull => "HTTPS full handshake per request, 32 at a time",
            Scenario::HttpsResumed => "HTTPS resumed handshake per request, 32 at a time",
        }
    }

    pub fn parse(name: &str) -> Option<Scenario> {
        Self::ALL
            .into_iter()
            .chain(Self::PROXY)
            .chain(Self::HTTPS)
            .find(|s| s.name() == name)
    }

    /// The scenarios a `--scenario` name stands for: one, or the family `proxy`.
    pub fn parse_family(name: &str) -> Option<Vec<Scenario>> {
        if name == "proxy" {
            return Some(Self::PROXY.to_vec());
        }
        if name == "https" {
            return Some(Self::HTTPS.to_vec());
        }
        Self::parse(name).map(|s| vec![s])
    }

    /// The HTTPS scenarios (issue 16): every target terminates TLS with the same certificate.
    /// They run on their own (`--scenario https`), in the lab.
    pub const HTTPS: [Scenario; 4] = [
        Scenario::HttpsGet,
        Scenario::HttpsPost1k,
        Scenario::HttpsFull,
        Scenario::HttpsResumed,
    ];

    /// The workloads the lab runs, each closed-loop and at fixed rates (the open-loop
    /// scenario is keep-alive at a rate, which the lab's rates cover).
    pub const WORKLOADS: [Scenario; 4] = [
        Scenario::KeepAlive,
        Scenario::Churn,
        Scenario::Echo1k,
        Scenario::Bytes16k,
    ];

    /// The path wrk runs as a cross-check after this scenario (closed-loop GETs on 64
    /// connections, the shape `wrk -t1 -c64` has), if any: keep-alive, where the client's own
    /// cost bounds the figure on a 2-core machine, and bytes-16k, where the server's does.
    pub fn wrk_path(self) -> Option<&'static str> {
        match self {
            Scenario::KeepAlive => Some("/health"),
            Scenario::Bytes16k => Some("/bytes/16384"),
            _ => None,
        }
    }

    /// The sizes of `/bytes/{n}` this scenario asks for (nginx needs a file for each).
    pub fn byte_sizes() -> &'static [usize] {
        &[16384]
    }

    /// `loadgen run` arguments after the target's `--addr`, without duration, CPU or output
    /// options; with `rate`, open-loop at that many requests/s.
    pub fn args(self, rate: Option<u64>) -> Vec<String> {
        // HTTPS: TLS 1.3 with X25519 for every target (nginx's OpenSSL has no X25519MLKEM768,
        // which rustls would otherwise offer first), the certificate's name as SNI, and no
        // verification on the client's core (`--tls-insecure`: the servers still sign).
        let tls = [
            "--tls",
            "--tls-insecure",
            "--tls-version",
            "1.3",
            "--tls-kx",
            "x25519",
            "--server-name",
            super::https::SERVER_NAME,
        ];
        let v: Vec<&str> = match self {
            Scenario::KeepAlive => vec!["--path", "/health", "--connections", "64"],
            Scenario::Churn => vec!["--path", "/health", "--connections", "32", "--churn"],
            Scenario::OpenLoop => vec!["--path", "/health", "--connections", "64"],
            Scenario::Echo1k => vec![
                "--method",
                "POST",
                "--path",
                "/echo",
                "--body-size",
                "1024",
                "--expect-body-size",
                "1024",
                "--verify-body",
                "--connections",
                "64",
            ],
            Scenario::Bytes16k => vec![
                "--path",
                "/bytes/16384",
                "--expect-body-size",
                "16384",
                "--verify-body",
                "--connections",
                "64",
            ],
            // The origin's answers (`super::proxy`): paths no target answers itself, so a
            // request that is not forwarded fails (404) instead of passing unnoticed.
            Scenario::ProxyGet => vec![
                "--path",
                "/origin/small",
                "--expect-body-size",
                "2",
                "--connections",
                "64",
            ],
            Scenario::ProxyPost1k => vec![
                "--method",
                "POST",
                "--path",
                "/origin/post",
                "--body-size",
                "1024",
                "--expect-body-size",
                "2",
                "--connections",
                "64",
            ],
            Scenario::ProxyGet64k => vec![
                "--path",
                "/origin/bytes/65536",
                "--expect-body-size",
                "65536",
                "--verify-body",
                "--connections",
                "64",
            ],
            Scenario::HttpsGet => {
                [&tls[..], &["--path", "/health", "--connections", "64"]].concat()
            }
            Scenario::HttpsPost1k => [
                &tls[..],
                &[
                    "--method",
                    "POST",
                    "--path",
                    "/echo",
                    "--body-size",
                    "1024",
                    "--expect-body-size",
                    "1024",
                    "--verify-body",
                    "--connections",
                    "64",
                ],
            ]
            .concat(),
            Scenario::HttpsFull => [
                &tls[..],
                &["--path", "/health", "--connections", "32", "--churn"],
            ]
            .concat(),
            Scenario::HttpsResumed => [
                &tls[..],
                &[
                    "--path",
                    "/health",
                    "--connections",
                    "32",
                    "--churn",
                    "--tls-resume",
                ],
            ]
            .concat(),
        };
        let mut v: Vec<String> = v.into_iter().map(String::from).collect();
        if let Some(rate) = rate {
            v.push("--rate".into());
            v.push(rate.to_string());
        }
        v
    }
}

/// Which of a workload's open-loop rates a run offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RateLevel {
    /// A tenth of the highest: the cost of a lightly loaded server (no batching to hide in).
    Low,
    /// Half of the highest.
    Mid,
    /// The highest rate offered: 80% of the slowest target's closed-loop throughput, meant to
    /// be one every target sustains (the report checks which it did: a target's open-loop
    /// capacity can be lower than its closed-loop one).
    High,
    /// The veth comparison's one open-loop rate.
    Fixed,
}

impl RateLevel {
    pub const LAB: [RateLevel; 3] = [RateLevel::Low, RateLevel::Mid, RateLevel::High];

    pub fn name(self) -> &'static str {
        match self {
            RateLevel::Low => "low",
            RateLevel::Mid => "mid",
            RateLevel::High => "high",
            RateLevel::Fixed => "fixed",
        }
    }

    /// This level's share of the highest rate offered.
    pub fn share_of_high(self) -> f64 {
        match self {
            RateLevel::Low => 0.1,
            RateLevel::Mid => 0.5,
            RateLevel::High | RateLevel::Fixed => 1.0,
        }
    }
}

/// An open-loop run's offered rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offered {
    pub level: RateLevel,
    /// Requests per second.
    pub rate: u64,
}

impl Offered {
    /// The veth comparison's offer: its open-loop scenario at `rate`, the others closed.
    pub fn open_loop_scenario(scenario: Scenario, rate: u64) -> Option<Offered> {
        (scenario == Scenario::OpenLoop).then_some(Offered {
            level: RateLevel::Fixed,
            rate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_only_open_loop_has_a_rate_in_the_veth_run() {
        for s in Scenario::ALL
            .into_iter()
            .chain(Scenario::PROXY)
            .chain(Scenario::HTTPS)
        {
            assert_eq!(Scenario::parse(s.name()), Some(s));
            assert_eq!(Scenario::parse_family(s.name()), Some(vec![s]));
            let offered = Offered::open_loop_scenario(s, 777);
            assert_eq!(offered.is_some(), s == Scenario::OpenLoop);
            let args = s.args(offered.map(|o| o.rate));
            assert_eq!(args.contains(&"777".to_string()), s == Scenario::OpenLoop);
            assert!(s.args(Some(5)).ends_with(&["--rate".into(), "5".into()]));
        }
        assert_eq!(Scenario::parse("nope"), None);
        assert_eq!(Scenario::parse_family("nope"), None);
    }

    #[test]
    fn the_https_family_speaks_tls_and_only_the_resumed_handshakes_resume() {
        assert_eq!(
            Scenario::parse_family("https"),
            Some(Scenario::HTTPS.to_vec())
        );
        for s in Scenario::HTTPS {
            assert!(s.is_https() && !s.is_proxy(), "{s:?}");
            let args = s.args(None);
            for flag in ["--tls", "--tls-insecure", "--server-name"] {
                assert!(args.contains(&flag.to_string()), "{s:?}: {args:?}");
            }
            assert!(
                args.windows(2).any(|w| w == ["--tls-kx", "x25519"]),
                "{s:?}"
            );
            assert_eq!(
                args.contains(&"--tls-resume".to_string()),
                s == Scenario::HttpsResumed
            );
            assert_eq!(args.contains(&"--churn".to_string()), s.is_handshake());
        }
        for s in Scenario::ALL.into_iter().chain(Scenario::PROXY) {
            assert!(!s.is_https() && !s.args(None).contains(&"--tls".to_string()));
        }
    }

    #[test]
    fn the_proxy_family_is_the_proxy_scenarios_on_the_origin_s_paths() {
        assert_eq!(
            Scenario::parse_family("proxy"),
            Some(Scenario::PROXY.to_vec())
        );
        for s in Scenario::ALL {
            assert!(!s.is_proxy(), "{s:?}");
        }
        for s in Scenario::PROXY {
            assert!(s.is_proxy(), "{s:?}");
            let args = s.args(None);
            let path = &args[args.iter().position(|a| a == "--path").unwrap() + 1];
            assert!(path.starts_with("/origin/"), "{s:?}: {path}");
            assert!(args.contains(&"--expect-body-size".to_string()), "{s:?}");
        }
        let post = Scenario::ProxyPost1k.args(None);
        assert!(
            post.windows(2).any(|w| w == ["--body-size", "1024"]),
            "{post:?}"
        );
    }
}
