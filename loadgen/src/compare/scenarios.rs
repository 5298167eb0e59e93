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
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [
        Scenario::KeepAlive,
        Scenario::Churn,
        Scenario::OpenLoop,
        Scenario::Echo1k,
        Scenario::Bytes16k,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::KeepAlive => "keep-alive",
            Scenario::Churn => "churn",
            Scenario::OpenLoop => "open-loop",
            Scenario::Echo1k => "echo-1k",
            Scenario::Bytes16k => "bytes-16k",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Scenario::KeepAlive => "keep-alive GET /health, 64 conns",
            Scenario::Churn => "connection per request, 32 at a time",
            Scenario::OpenLoop => "open loop, fixed rate, 64 conns",
            Scenario::Echo1k => "POST /echo 1 KiB, 64 conns",
            Scenario::Bytes16k => "GET /bytes/16384, 64 conns",
        }
    }

    pub fn parse(name: &str) -> Option<Scenario> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

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

    /// `loadgen run` arguments after the target's `--addr`, without duration, rate, CPU or
    /// output options. `rate` is used by the open-loop scenario only.
    pub fn args(self, rate: u64) -> Vec<String> {
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
        };
        let mut v: Vec<String> = v.into_iter().map(String::from).collect();
        if self == Scenario::OpenLoop {
            v.push("--rate".into());
            v.push(rate.to_string());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_only_open_loop_has_a_rate() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::parse(s.name()), Some(s));
            assert_eq!(
                s.args(777).contains(&"777".to_string()),
                s == Scenario::OpenLoop
            );
        }
        assert_eq!(Scenario::parse("nope"), None);
    }
}
