//! What a comparison run records (one JSON file per run) and how it is summarised: medians
//! and spreads over the repetitions, the ratios bypass/kernel and bypass/nginx, a markdown
//! table and two SVG charts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::attribution::Attribution;
use super::machine::{CpuBusy, MachineInfo};
use super::scenarios::{Offered, RateLevel, Scenario};
use super::servers::Target;
use super::svg;
use super::topology::Network;

/// Latency percentiles of one run, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    pub max: f64,
    pub mean: f64,
}

/// What the client measured in one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientFigures {
    /// Requests answered correctly.
    pub requests: u64,
    /// The client's own CPU time per request (loadgen's threads, user + system).
    #[serde(default)]
    pub client_cpu_us_per_request: f64,
    /// Failed requests, all kinds.
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub throughput_rps: f64,
    pub duration_secs: f64,
    pub latency_us: Latency,
    /// (percentile, µs) points of the latency distribution.
    pub curve: Vec<(f64, f64)>,
    /// HTTPS: the handshakes of the measurement, full and resumed, and what the first one
    /// negotiated (`version suite group`); `None` for plain HTTP.
    #[serde(default)]
    pub tls: Option<ClientTls>,
}

/// What an HTTPS client run's handshakes were.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientTls {
    pub handshakes_full: u64,
    pub handshakes_resumed: u64,
    pub negotiated: String,
}

/// One target, one scenario, one repetition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    pub target: Target,
    pub scenario: Scenario,
    pub rep: u32,
    /// The open-loop rate offered, `None` for a closed loop.
    #[serde(default)]
    pub offered: Option<Offered>,
    pub client: ClientFigures,
    /// CPU of the whole machine during the measured run (client and server, user and
    /// kernel: veth moves packets in softirq on the sender's core).
    pub cpu: CpuBusy,
    /// Machine CPU time (every thread's, `CpuBusy::task_cpu_secs`) per answered request,
    /// in microseconds.
    pub cpu_us_per_request: f64,
    /// The server core's CPU time per answered request, in microseconds: the server's
    /// processes plus the kernel threads bound to its core (`attribution.server`).
    #[serde(default)]
    pub server_core_us_per_request: f64,
    /// Where the run's CPU time went, by side and kind of thread (records written before
    /// this field have none).
    #[serde(default)]
    pub attribution: Option<Attribution>,
    pub load_average: f64,
    /// The client command, to reproduce the run by hand.
    pub command: String,
}

/// wrk on the same scenario, beside loadgen (the cross-check of loadgen's figures).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WrkCheck {
    pub target: Target,
    pub scenario: Scenario,
    pub rep: u32,
    pub wrk_rps: f64,
    pub loadgen_rps: f64,
    /// loadgen / wrk.
    pub ratio: f64,
    /// Each client's own CPU time per request (user + system, which on veth includes the
    /// receive work its sends run): on this 2-core machine the client shares the load's
    /// bottleneck, so the leaner client gets the higher figure.
    #[serde(default)]
    pub wrk_cpu_us_per_request: f64,
    #[serde(default)]
    pub loadgen_cpu_us_per_request: f64,
    pub command: String,
}

/// The configuration a run used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    /// The test network (records written before this field ran on veth).
    #[serde(default)]
    pub network: Network,
    pub reps: u32,
    pub duration_secs: u64,
    pub warmup_secs: u64,
    pub server_core: usize,
    pub client_core: usize,
    /// The open-loop scenario's rate (chosen or given).
    pub open_loop_rate: u64,
    /// How the rate was chosen.
    pub open_loop_rate_from: String,
    pub targets: Vec<Target>,
    pub scenarios: Vec<Scenario>,
    pub xgate: String,
    /// The text of `--xgate-config`, when one was given.
    #[serde(default)]
    pub xgate_config: Option<String>,
    pub nginx: String,
    /// The HAProxy binary, when it was a target.
    #[serde(default)]
    pub haproxy: Option<String>,
    /// The CPU of the proxy scenarios' origin; `None` in the gateway comparison.
    #[serde(default)]
    pub origin_core: Option<usize>,
    pub command_line: String,
    /// The network every target was measured over, read when it was built (records written
    /// before this field have none).
    #[serde(default)]
    pub topology: Option<TopologyRecord>,
    /// The lab's open-loop rates per workload, and how each was chosen.
    #[serde(default)]
    pub lab_rates: Vec<LabRate>,
}

impl RunConfig {
    /// The name of this run's latest summary in `--out` (`<name>.md`, `charts/<name>-*.svg`):
    /// the network's for the gateway comparison, `proxy-<network>` for the proxy comparison,
    /// so that neither overwrites the other's.
    pub fn summary_name(&self) -> String {
        let network = self.network.name();
        if self.origin_core.is_some() {
            format!("proxy-{network}")
        } else {
            network.to_string()
        }
    }
}

/// The highest open-loop rate of one workload in the lab (its other levels are shares of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabRate {
    pub scenario: Scenario,
    /// Requests per second.
    pub high: u64,
    /// How it was chosen.
    pub from: String,
}

impl LabRate {
    /// The rate offered at `level`, at least 100 requests/s.
    pub fn at(&self, level: RateLevel) -> u64 {
        ((self.high as f64 * level.share_of_high()) as u64).max(100)
    }
}

/// The test network of a run: one for every target, so they all meet the same client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyRecord {
    /// What it is, in words.
    pub kind: String,
    /// RX/TX queues of each veth end.
    pub queues: u32,
    /// `ethtool -k` of the server's veth end: feature -> on.
    pub server_offloads: BTreeMap<String, bool>,
    /// The same for the client's end.
    pub client_offloads: BTreeMap<String, bool>,
}

impl TopologyRecord {
    /// The summaries' line about the network: what it is, its queues and its offloads.
    pub fn summary_line(&self) -> String {
        format!(
            "Topology: {}, {} queue(s); offloads, the same for every target ({}).",
            self.kind,
            self.queues,
            self.offloads_line()
        )
    }

    /// "server veth: tx-checksumming on, ...; client veth: ...".
    pub fn offloads_line(&self) -> String {
        let side = |m: &BTreeMap<String, bool>| {
            m.iter()
                .map(|(f, on)| format!("{f} {}", if *on { "on" } else { "off" }))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "server veth: {}; client veth: {}",
            side(&self.server_offloads),
            side(&self.client_offloads)
        )
    }
}

/// One comparison run: everything measured, and where.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub schema: u32,
    pub started_utc: String,
    pub commit: String,
    pub machine: MachineInfo,
    pub config: RunConfig,
    pub measurements: Vec<Measurement>,
    pub wrk: Vec<WrkCheck>,
}

/// Median, min and max of a set of values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }
}

impl RunRecord {
    /// The veth comparison's runs of one target and scenario (the lab's runs at its rates
    /// have tables of their own).
    fn of(&self, target: Target, scenario: Scenario) -> impl Iterator<Item = &Measurement> {
        self.measurements.iter().filter(move |m| {
            m.target == target
                && m.scenario == scenario
                && m.offered.is_none_or(|o| o.level == RateLevel::Fixed)
        })
    }

    /// Every file this run writes under `out`, with its text: `runs/<time>-<commit>-<network>`
    /// `.json` (every figure) and `.md`, and the latest summary, `<summary name>.md` and
    /// `charts/<summary name>-<chart>.svg` ([`RunConfig::summary_name`]). The `runs/` names
    /// need no `proxy-`: the time, to the second, is when this network's run started, which
    /// lasts minutes, so only two comparisons running at once could share a name, and those
    /// would measure each other on the same pinned cores; the record itself says which
    /// comparison it is.
    pub fn files(&self, out: &Path) -> Vec<(PathBuf, String)> {
        let stamp = self.started_utc.replace([':', '-'], "");
        let run = format!("{stamp}-{}-{}", self.commit, self.config.network.name());
        let summary = self.config.summary_name();
        let md = self.markdown();
        let mut files = vec![
            (
                out.join("runs").join(format!("{run}.json")),
                serde_json::to_string_pretty(self).expect("plain data") + "\n",
            ),
            (out.join("runs").join(format!("{run}.md")), md.clone()),
            (out.join(format!("{summary}.md")), md),
        ];
        for (chart, svg) in self.charts() {
            files.push((
                out.join("charts").join(format!("{summary}-{chart}.svg")),
                svg,
            ));
        }
        files
    }

    /// The charts of this record: (name, SVG).
    pub fn charts(&self) -> Vec<(&'static str, String)> {
        match self.config.network {
            // The latency chart is the open-loop scenario's (the proxy comparison has none).
            Network::Veth if self.config.scenarios.contains(&Scenario::OpenLoop) => vec![
                ("throughput", self.throughput_svg()),
                ("latency", self.latency_svg()),
            ],
            Network::Veth => vec![("throughput", self.throughput_svg())],
            Network::Lab => super::lab_report::charts(self),
        }
    }

    /// Throughput over the repetitions.
    pub fn throughput(&self, target: Target, scenario: Scenario) -> Option<Spread> {
        Spread::of(self.of(target, scenario).map(|m| m.client.throughput_rps))
    }

    pub fn cpu_per_request(&self, target: Target, scenario: Scenario) -> Option<Spread> {
        Spread::of(self.of(target, scenario).map(|m| m.cpu_us_per_request))
    }

    /// A latency percentile over the repetitions.
    pub fn latency(
        &self,
        target: Target,
        scenario: Scenario,
        pick: fn(&Latency) -> f64,
    ) -> Option<Spread> {
        Spread::of(
            self.of(target, scenario)
                .map(|m| pick(&m.client.latency_us)),
        )
    }

    pub fn errors(&self, target: Target, scenario: Scenario) -> u64 {
        self.of(target, scenario).map(|m| m.client.errors).sum()
    }

    /// The markdown summary.
    pub fn markdown(&self) -> String {
        if self.config.network == Network::Lab {
            return super::lab_report::markdown(self);
        }
        let c = &self.config;
        let mut s = String::new();
        let _ = writeln!(s, "# xgate comparison — {}\n", self.started_utc);
        let _ = writeln!(
            s,
            "Commit `{}` on {} ({} CPUs, {:.0} GiB, kernel {}{}), load average before the run {:.2}.",
            self.commit,
            self.machine.cpu_model,
            self.machine.cpus,
            self.machine.memory_gib,
            self.machine.kernel,
            self.machine
                .virtualised
                .as_deref()
                .map(|v| format!(", virtualised: {v}"))
                .unwrap_or_default(),
            self.measurements.first().map_or(0.0, |m| m.load_average)
        );
        let _ = writeln!(
            s,
            "Server pinned to CPU {}, client (loadgen, one thread) to CPU {}, over a veth pair \
             between two network namespaces (AF_XDP in copy mode). {} repetition(s) of {} s \
             after {} s of warm-up, targets interleaved; figures are medians with [min–max]. \
             Reproduce: `{}`.\n",
            c.server_core, c.client_core, c.reps, c.duration_secs, c.warmup_secs, c.command_line
        );
        if let Some(t) = &c.topology {
            let _ = writeln!(s, "{}\n", t.summary_line());
        }
        if let Some(origin) = c.origin_core {
            s += &super::lab_report::proxy_note(origin, c.client_core);
        }
        let has = |t: Target| c.targets.contains(&t);
        let others: Vec<(Target, &str)> = [
            (Target::XgateKernel, "kernel"),
            (Target::Nginx, "nginx"),
            (Target::Haproxy, "haproxy"),
        ]
        .into_iter()
        .filter(|&(t, _)| has(Target::XgateBypass) && has(t))
        .collect();
        let _ = writeln!(s, "## Throughput (requests/s)\n");
        let mut head = "| scenario |".to_string();
        let mut rule = "| --- |".to_string();
        for t in &c.targets {
            head += &format!(" {} |", t.name());
            rule += " ---: |";
        }
        for (_, name) in &others {
            head += &format!(" bypass / {name} |");
            rule += " ---: |";
        }
        let _ = writeln!(s, "{head}\n{rule}");
        for &sc in &c.scenarios {
            if sc == Scenario::OpenLoop {
                continue;
            }
            let mut row = format!("| {} |", sc.title());
            for &t in &c.targets {
                row += &format!(" {} |", cell(self.throughput(t, sc), self.errors(t, sc)));
            }
            let ratio = |a: Target, b: Target| {
                ratio_cell(
                    self.throughput(a, sc).map(|x| x.median),
                    self.throughput(b, sc).map(|x| x.median),
                )
            };
            for &(other, _) in &others {
                row += &format!(" {} |", ratio(Target::XgateBypass, other));
            }
            let _ = writeln!(s, "{row}");
        }

        if c.scenarios.contains(&Scenario::OpenLoop) {
            let sc = Scenario::OpenLoop;
            let _ = writeln!(
                s,
                "\n## Open loop at {} requests/s: latency (µs, coordinated omission corrected) and machine CPU\n",
                c.open_loop_rate
            );
            let _ = writeln!(
                s,
                "Rate: {}. CPU is the CPU time of every thread on the machine (client, server, kernel threads; user, kernel and the softirq work charged to them) per answered request.\n",
                c.open_loop_rate_from
            );
            let _ = writeln!(
                s,
                "| target | achieved req/s | p50 | p90 | p99 | p99.9 | p99.99 | max | CPU µs/request | errors |"
            );
            let _ = writeln!(
                s,
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
            );
            let picks: [fn(&Latency) -> f64; 6] = [
                |l| l.p50,
                |l| l.p90,
                |l| l.p99,
                |l| l.p999,
                |l| l.p9999,
                |l| l.max,
            ];
            for &t in &c.targets {
                let mut row = format!(
                    "| {} | {} |",
                    t.name(),
                    self.throughput(t, sc)
                        .map_or("—".into(), |x| format!("{:.0}", x.median))
                );
                for p in picks {
                    row += &format!(" {} |", num_cell(self.latency(t, sc, p)));
                }
                row += &format!(
                    " {} | {} |",
                    num_cell(self.cpu_per_request(t, sc)),
                    self.errors(t, sc)
                );
                let _ = writeln!(s, "{row}");
            }
            let _ = writeln!(s);
            let p99 = |t| self.latency(t, sc, |l| l.p99).map(|x| x.median);
            let cpu = |t| self.cpu_per_request(t, sc).map(|x| x.median);
            for (other, name) in [
                (Target::XgateKernel, "kernel path"),
                (Target::Nginx, "nginx"),
            ] {
                if has(Target::XgateBypass) && has(other) {
                    let _ = writeln!(
                        s,
                        "- bypass / {name}: CPU per request {}, p99 {}",
                        ratio_cell(cpu(Target::XgateBypass), cpu(other)),
                        ratio_cell(p99(Target::XgateBypass), p99(other))
                    );
                }
            }
        }

        if self.measurements.iter().any(|m| m.attribution.is_some()) {
            let _ = writeln!(
                s,
                "\n## Where the CPU went (µs per request, closed loop, median over the repetitions)\n"
            );
            let _ = writeln!(
                s,
                "On this plain veth pair each end's receive runs inside the other end's transmit: \
                 the server core's figure includes the client's TCP receive of every response, and \
                 the client core's the server's receive of every request. The lab run \
                 (`--network lab`) separates them.\n"
            );
            s += &super::lab_report::attribution_table(self, None);
        }
        s += &self.wrk_section();
        let errors: u64 = self.measurements.iter().map(|m| m.client.errors).sum();
        let _ = writeln!(
            s,
            "\n{} failed request(s) in the whole run{}.",
            errors,
            if errors == 0 {
                " (every response checked: status, length, and the bytes of /echo and /bytes)"
            } else {
                "; see the JSON file for their kinds"
            }
        );
        s
    }

    /// The wrk cross-check table, if wrk ran.
    pub fn wrk_section(&self) -> String {
        let mut s = String::new();
        if !self.wrk.is_empty() {
            let _ = writeln!(s, "\n## Cross-check with wrk\n");
            let _ = writeln!(
                s,
                "wrk (`-t1 -c64`, pinned to the client's CPU) on the same scenario and target, right after loadgen. Each client's own CPU per request is shown: where rate x client CPU per request is a whole core, the client's core is the limit and the leaner client reports more.\n"
            );
            let _ = writeln!(
                s,
                "| target | scenario | rep | loadgen req/s | wrk req/s | loadgen / wrk | loadgen CPU µs/req | wrk CPU µs/req |"
            );
            let _ = writeln!(s, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
            for w in &self.wrk {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.1} | {:.1} |",
                    w.target.name(),
                    w.scenario.name(),
                    w.rep,
                    w.loadgen_rps,
                    w.wrk_rps,
                    w.ratio,
                    w.loadgen_cpu_us_per_request,
                    w.wrk_cpu_us_per_request
                );
            }
        }
        s
    }

    /// Throughput bars, one panel per closed-loop scenario.
    pub fn throughput_svg(&self) -> String {
        let names: Vec<&str> = self.config.targets.iter().map(|t| t.name()).collect();
        let panels: Vec<svg::BarPanel> = self
            .config
            .scenarios
            .iter()
            .filter(|&&s| s != Scenario::OpenLoop)
            .map(|&sc| svg::BarPanel {
                title: sc.name().to_string(),
                unit: "requests/s".into(),
                values: self
                    .config
                    .targets
                    .iter()
                    .map(|&t| self.throughput(t, sc).map(|x| (x.median, x.min, x.max)))
                    .collect(),
            })
            .collect();
        svg::bars(
            &format!(
                "Throughput, median of {} run(s) ({})",
                self.config.reps, self.started_utc
            ),
            &names,
            &panels,
        )
    }

    /// Latency-percentile curves of the open-loop scenario (the run with the median p99 of
    /// each target).
    pub fn latency_svg(&self) -> String {
        let sc = Scenario::OpenLoop;
        let series: Vec<(&str, Vec<(f64, f64)>)> = self
            .config
            .targets
            .iter()
            .map(|&t| {
                let mut runs: Vec<&Measurement> = self.of(t, sc).collect();
                runs.sort_by(|a, b| a.client.latency_us.p99.total_cmp(&b.client.latency_us.p99));
                let curve = runs
                    .get(runs.len() / 2)
                    .map(|m| m.client.curve.clone())
                    .unwrap_or_default();
                (t.name(), curve)
            })
            .collect();
        svg::percentile_curves(
            &format!(
                "Latency by percentile at {} requests/s, open loop ({})",
                self.config.open_loop_rate, self.started_utc
            ),
            &series,
        )
    }
}

fn cell(v: Option<Spread>, errors: u64) -> String {
    match v {
        None => "—".into(),
        Some(x) => {
            let e = if errors > 0 {
                format!(" ({errors} errors)")
            } else {
                String::new()
            };
            format!("{:.0} [{:.0}–{:.0}]{e}", x.median, x.min, x.max)
        }
    }
}

fn num_cell(v: Option<Spread>) -> String {
    v.map_or("—".into(), |x| {
        if x.median >= 100.0 {
            format!("{:.0}", x.median)
        } else {
            format!("{:.1}", x.median)
        }
    })
}

fn ratio_cell(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "—".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(
        target: Target,
        scenario: Scenario,
        rep: u32,
        rps: f64,
        p99: f64,
        cpu: f64,
    ) -> Measurement {
        Measurement {
            target,
            scenario,
            rep,
            client: ClientFigures {
                requests: (rps * 10.0) as u64,
                throughput_rps: rps,
                duration_secs: 10.0,
                latency_us: Latency {
                    p99,
                    ..Latency::default()
                },
                curve: vec![(50.0, p99 / 2.0), (99.0, p99)],
                ..ClientFigures::default()
            },
            offered: Offered::open_loop_scenario(scenario, 10),
            cpu: CpuBusy::default(),
            cpu_us_per_request: cpu,
            server_core_us_per_request: cpu / 2.0,
            attribution: None,
            load_average: 0.5,
            command: "loadgen run ...".into(),
        }
    }

    fn record() -> RunRecord {
        let mut ms = Vec::new();
        for rep in 0..3 {
            let r = rep as f64;
            ms.push(m(
                Target::XgateBypass,
                Scenario::KeepAlive,
                rep,
                100.0 + r,
                0.0,
                0.0,
            ));
            ms.push(m(
                Target::XgateKernel,
                Scenario::KeepAlive,
                rep,
                50.0 + r,
                0.0,
                0.0,
            ));
            ms.push(m(
                Target::Nginx,
                Scenario::KeepAlive,
                rep,
                40.0 + r,
                0.0,
                0.0,
            ));
            ms.push(m(
                Target::XgateBypass,
                Scenario::OpenLoop,
                rep,
                10.0,
                100.0,
                20.0,
            ));
            ms.push(m(
                Target::XgateKernel,
                Scenario::OpenLoop,
                rep,
                10.0,
                400.0,
                40.0,
            ));
            ms.push(m(Target::Nginx, Scenario::OpenLoop, rep, 10.0, 300.0, 50.0));
        }
        RunRecord {
            schema: 1,
            started_utc: "2026-11-22T06:00:00Z".into(),
            commit: "abc1234".into(),
            machine: MachineInfo {
                hostname: "h".into(),
                kernel: "6.1".into(),
                cpu_model: "cpu".into(),
                cpus: 2,
                memory_gib: 24.0,
                virtualised: None,
            },
            config: RunConfig {
                network: Network::Veth,
                lab_rates: Vec::new(),
                reps: 3,
                duration_secs: 10,
                warmup_secs: 2,
                server_core: 1,
                client_core: 0,
                open_loop_rate: 10,
                open_loop_rate_from: "given".into(),
                targets: Target::ALL.to_vec(),
                scenarios: vec![Scenario::KeepAlive, Scenario::OpenLoop],
                xgate: "xgate".into(),
                xgate_config: None,
                nginx: "nginx".into(),
                haproxy: None,
                origin_core: None,
                command_line: "loadgen compare".into(),
                topology: Some(TopologyRecord {
                    kind: "veth pair".into(),
                    queues: 1,
                    server_offloads: [("generic-receive-offload".to_string(), false)].into(),
                    client_offloads: [("tcp-segmentation-offload".to_string(), false)].into(),
                }),
            },
            measurements: ms,
            wrk: Vec::new(),
        }
    }

    #[test]
    fn spread_is_median_min_max() {
        let s = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        let s = Spread::of([4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert!(Spread::of([]).is_none());
        assert!(Spread::of([f64::NAN]).is_none());
    }

    #[test]
    fn markdown_has_medians_and_ratios() {
        let md = record().markdown();
        assert!(md.contains("| keep-alive GET /health, 64 conns | 101 [100–102] | 51 [50–52] | 41 [40–42] | 1.98x | 2.46x |"), "{md}");
        assert!(
            md.contains("bypass / kernel path: CPU per request 0.50x, p99 0.25x"),
            "{md}"
        );
        assert!(
            md.contains("bypass / nginx: CPU per request 0.40x, p99 0.33x"),
            "{md}"
        );
        assert!(md.contains("0 failed request(s)"));
        assert!(
            md.contains(
                "Topology: veth pair, 1 queue(s); offloads, the same for every target (server \
                 veth: generic-receive-offload off; client veth: tcp-segmentation-offload off)."
            ),
            "{md}"
        );
    }

    #[test]
    fn a_proxy_run_compares_the_bypass_with_each_proxy() {
        let mut r = record();
        r.config.targets = Target::PROXY.to_vec();
        r.config.scenarios = vec![Scenario::ProxyGet];
        r.config.origin_core = Some(0);
        r.measurements.clear();
        for (t, rps) in [
            (Target::XgateBypass, 90.0),
            (Target::XgateKernel, 60.0),
            (Target::Nginx, 45.0),
            (Target::Haproxy, 30.0),
        ] {
            r.measurements
                .push(m(t, Scenario::ProxyGet, 0, rps, 100.0, 10.0));
        }
        let md = r.markdown();
        assert!(
            md.contains("| bypass / kernel | bypass / nginx | bypass / haproxy |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| proxied keep-alive GET (2 B), 64 conns | 90 [90–90] | 60 [60–60] | 45 [45–45] | 30 [30–30] | 1.50x | 2.00x | 3.00x |"
            ),
            "{md}"
        );
        assert!(
            md.contains("pinned to CPU 0, on the server namespace's loopback"),
            "{md}"
        );
        assert!(
            md.contains("The origin shares the client's CPU here"),
            "{md}"
        );
        r.config.origin_core = Some(2);
        assert!(!r.markdown().contains("shares the client's CPU"));
        let charts: Vec<&str> = r.charts().iter().map(|c| c.0).collect();
        assert_eq!(charts, ["throughput"]);
    }

    /// The names of the files `r` writes under `out/`, relative to it.
    fn file_names(r: &RunRecord) -> Vec<String> {
        let out = Path::new("out");
        r.files(out)
            .into_iter()
            .map(|(p, _)| p.strip_prefix(out).unwrap().display().to_string())
            .collect()
    }

    /// A proxy comparison's record on `network` (one measurement is enough for the names).
    fn proxy_record(network: Network) -> RunRecord {
        let mut r = record();
        r.config.network = network;
        r.config.targets = Target::PROXY.to_vec();
        r.config.scenarios = vec![Scenario::ProxyGet];
        r.config.origin_core = Some(0);
        r.measurements = vec![m(
            Target::XgateBypass,
            Scenario::ProxyGet,
            0,
            90.0,
            0.0,
            0.0,
        )];
        r
    }

    #[test]
    fn the_gateway_comparison_s_summary_is_named_after_the_network() {
        assert_eq!(
            file_names(&record()),
            [
                "runs/20261122T060000Z-abc1234-veth.json",
                "runs/20261122T060000Z-abc1234-veth.md",
                "veth.md",
                "charts/veth-throughput.svg",
                "charts/veth-latency.svg",
            ]
        );
        let mut lab = record();
        lab.config.network = Network::Lab;
        assert_eq!(
            file_names(&lab),
            [
                "runs/20261122T060000Z-abc1234-lab.json",
                "runs/20261122T060000Z-abc1234-lab.md",
                "lab.md",
                "charts/lab-server-core-cost.svg",
                "charts/lab-server-core-capacity.svg",
            ]
        );
    }

    /// The names of the summaries committed in bench-results/ (renamed by hand before the
    /// tool named them), so that a new run replaces them.
    #[test]
    fn the_proxy_comparison_s_summary_is_named_proxy_and_leaves_the_gateway_s_in_place() {
        assert_eq!(
            file_names(&proxy_record(Network::Veth)),
            [
                "runs/20261122T060000Z-abc1234-veth.json",
                "runs/20261122T060000Z-abc1234-veth.md",
                "proxy-veth.md",
                "charts/proxy-veth-throughput.svg",
            ]
        );
        assert_eq!(
            file_names(&proxy_record(Network::Lab)),
            [
                "runs/20261122T060000Z-abc1234-lab.json",
                "runs/20261122T060000Z-abc1234-lab.md",
                "proxy-lab.md",
                "charts/proxy-lab-server-core-cost.svg",
                "charts/proxy-lab-server-core-capacity.svg",
            ]
        );
        // What each file holds is the run's own: the record, its summary, its charts.
        let r = proxy_record(Network::Veth);
        let files = r.files(Path::new("out"));
        let back: RunRecord = serde_json::from_str(&files[0].1).unwrap();
        assert_eq!(back.config.origin_core, Some(0));
        assert_eq!(files[1].1, r.markdown());
        assert_eq!(files[2].1, r.markdown());
        assert!(files[3].1.starts_with("<svg"), "{}", files[3].1);
    }

    #[test]
    fn record_round_trips_through_json() {
        let r = record();
        let json = serde_json::to_string(&r).unwrap();
        let back: RunRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back.measurements.len(), r.measurements.len());
        assert_eq!(back.markdown(), r.markdown());
        assert!(r.throughput_svg().contains("<svg"));
        assert_eq!(r.latency_svg().matches("<polyline").count(), 3);
    }
}
