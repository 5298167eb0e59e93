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
    /// The highest rate every target sustains: 80% of the slowest target's closed-loop
    /// throughput.
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

    /// This level's share of the highest rate every target sustains.
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
        for s in Scenario::ALL {
            assert_eq!(Scenario::parse(s.name()), Some(s));
            let offered = Offered::open_loop_scenario(s, 777);
            assert_eq!(offered.is_some(), s == Scenario::OpenLoop);
            let args = s.args(offered.map(|o| o.rate));
            assert_eq!(args.contains(&"777".to_string()), s == Scenario::OpenLoop);
            assert!(s.args(Some(5)).ends_with(&["--rate".into(), "5".into()]));
        }
        assert_eq!(Scenario::parse("nope"), None);
    }
}
