//! The path comparison (issue 14): downloads and uploads by a real Linux client (curl)
//! through emulated paths — round-trip time, random loss, a bottleneck's rate and queue
//! ([`xgate_testnet::path`], NFQUEUE in the client's namespace, since this kernel has no
//! netem) — against xgate's bypass path and its kernel path in the same run, with the
//! client's TCP timestamps on or off and its MTU 1500 or 1280. The figure is each transfer's
//! completion time on a new connection (curl's `time_total`: handshake, request, every byte),
//! and the goodput it makes.
//!
//! One `xgate run` serves both ports ([`super::servers::start_xgate`]) with `GET /bytes/{n}`
//! for downloads and a `POST /upload` route answered once the body is read, for uploads.
//! The emulator holds packets in a router namespace between the two, off both hosts (held
//! in the sender's own hook, a packet would still count against its socket's small-queue
//! limit and throttle it), and every segment is one packet on the wire (segmentation and
//! receive offloads off on every veth end), so a loss costs one segment, as on a real path. Targets alternate
//! transfer by transfer, so a slow moment of the machine falls on both.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use xgate_testnet::path::{PathEmulator, PathShape};

use super::servers::{self, Target};
use super::topology::{Topology, SERVER_IP};
use super::CompareError;

/// `loadgen paths`.
#[derive(Debug, Clone, Args)]
pub struct PathsArgs {
    /// Where results go: `runs/<time>-<commit>-paths.{json,md}`, the latest summary
    /// `paths.md` and `charts/paths-*.svg`.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// The xgate binary (default: beside this loadgen, else in PATH).
    #[arg(long)]
    pub xgate: Option<PathBuf>,
    /// Round-trip times to emulate, in ms.
    #[arg(long = "rtt-ms", value_delimiter = ',', default_values_t = [1u32, 20, 80])]
    pub rtt_ms: Vec<u32>,
    /// Random loss each way, in percent.
    #[arg(long = "loss", value_delimiter = ',', default_values_t = [0.0f64, 0.1, 1.0])]
    pub loss_pct: Vec<f64>,
    /// Bottleneck rates, in Mbit/s (its queue holds one bandwidth-delay product).
    #[arg(long = "rate-mbit", value_delimiter = ',', default_values_t = [10u64, 100])]
    pub rate_mbit: Vec<u64>,
    /// Transfer sizes in bytes.
    #[arg(long, value_delimiter = ',', default_values_t = [65536u64, 1 << 20, 32 << 20])]
    pub sizes: Vec<u64>,
    /// Client settings: `ts` or `nots` (TCP timestamps), then `-1500` or `-1280` (MTU).
    #[arg(long, value_delimiter = ',', default_values_t = ["ts-1500".to_string(), "nots-1500".to_string(), "ts-1280".to_string(), "nots-1280".to_string()])]
    pub clients: Vec<String>,
    /// Repetitions of every transfer on every target, on paths without random loss.
    #[arg(long, default_value_t = 3)]
    pub reps: u32,
    /// Repetitions on paths with random loss (default: three times `--reps`). A lossy
    /// transfer's time is bimodal -- whether a loss cost a timeout or a recovery round more --
    /// so a median of three is decided by which repetitions were unlucky on each target.
    #[arg(long)]
    pub lossy_reps: Option<u32>,
    /// CPU xgate's poller and kernel-path thread are pinned to.
    #[arg(long, default_value_t = 1)]
    pub server_core: usize,
    /// Longest a transfer may take before it counts as failed, in seconds.
    #[arg(long, default_value_t = 180)]
    pub timeout_secs: u64,
    /// Skip a size on a bottleneck that needs longer than this at line rate, in seconds (0:
    /// no limit). 32 MiB takes 27 s at 10 Mbit/s: the whole matrix with it is hours. What is
    /// skipped is named in the report.
    #[arg(long, default_value_t = 10.0)]
    pub max_line_secs: f64,
    /// The client's congestion control, which sends the uploads: `cubic` (the default, as a
    /// stock Linux client has it), another the kernel offers (`reno`, `bbr`...), or `host` for
    /// whatever this host's default is. BBR ignores random loss, so with it the lossy upload
    /// rows would test the path more than the bypass's receiving.
    #[arg(long = "client-cc", default_value = "cubic")]
    pub client_cc: String,
    /// Which transfers to run: `download`, `upload` or both.
    #[arg(long, value_delimiter = ',', default_values_t = [Direction::Download, Direction::Upload])]
    pub directions: Vec<Direction>,
}

/// Seconds `size` bytes take at `rate_mbit` without overhead.
fn line_secs(size: u64, rate_mbit: u64) -> f64 {
    size as f64 * 8.0 / (rate_mbit as f64 * 1e6)
}

/// Whether `size` is run on a bottleneck of `rate_mbit` under a budget of `max_line_secs`
/// (0: every size is).
fn within_budget(size: u64, rate_mbit: u64, max_line_secs: f64) -> bool {
    max_line_secs <= 0.0 || line_secs(size, rate_mbit) <= max_line_secs
}

/// A path's shape, as run.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PathCase {
    pub rtt_ms: u32,
    pub loss_pct: f64,
    pub rate_mbit: u64,
}

impl PathCase {
    pub fn shape(&self) -> PathShape {
        PathShape::symmetric(
            Duration::from_millis(u64::from(self.rtt_ms)),
            Some(self.rate_mbit * 1_000_000),
            (self.loss_pct * 10_000.0).round() as u32,
        )
    }

    pub fn name(&self) -> String {
        format!(
            "RTT {} ms, loss {}%, {} Mbit/s",
            self.rtt_ms, self.loss_pct, self.rate_mbit
        )
    }
}

/// The client's TCP as set in its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientSetting {
    pub timestamps: bool,
    pub mtu: u32,
}

impl ClientSetting {
    /// `ts-1500`, `nots-1280`...
    pub fn parse(s: &str) -> Option<ClientSetting> {
        let (ts, mtu) = s.split_once('-')?;
        let timestamps = match ts {
            "ts" => true,
            "nots" => false,
            _ => return None,
        };
        let mtu: u32 = mtu.parse().ok().filter(|m| (576..=9000).contains(m))?;
        Some(ClientSetting { timestamps, mtu })
    }

    pub fn name(&self) -> String {
        format!(
            "{}-{}",
            if self.timestamps { "ts" } else { "nots" },
            self.mtu
        )
    }

    /// Sets the client namespace's `tcp_timestamps` and its veth's MTU.
    fn apply(&self, topo: &Topology) -> Result<(), CompareError> {
        let ts = format!("net.ipv4.tcp_timestamps={}", u8::from(self.timestamps));
        let mtu = self.mtu.to_string();
        for cmd in [
            vec!["ip", "netns", "exec", &topo.client_ns, "sysctl", "-qw", &ts],
            vec![
                "ip",
                "-n",
                &topo.client_ns,
                "link",
                "set",
                "dev",
                &topo.client_if,
                "mtu",
                &mtu,
            ],
        ] {
            xgate_testnet::run(&cmd)?;
        }
        Ok(())
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Download,
    Upload,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Download => "download",
            Direction::Upload => "upload",
        }
    }
}

/// One transfer's outcome.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Transfer {
    pub path: PathCase,
    pub client: ClientSetting,
    pub direction: Direction,
    pub size: u64,
    pub target: Target,
    pub rep: u32,
    /// Completion time; `None` when it failed (`error` says why).
    pub secs: Option<f64>,
    pub error: Option<String>,
}

/// What the emulator did on one path (its counters, both ways, over every transfer), and
/// what the bypass's TCP did there (its retransmit and segment counters, this path's share).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EmulatorNote {
    pub path: PathCase,
    pub summary: String,
    #[serde(default)]
    pub bypass_tcp: Vec<(String, f64)>,
}

/// Everything a run measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PathsRecord {
    pub schema: u32,
    pub started_utc: String,
    pub commit: String,
    pub machine: super::machine::MachineInfo,
    pub command_line: String,
    pub reps: u32,
    /// Repetitions on paths with random loss (runs before it was recorded: `reps`).
    #[serde(default)]
    pub lossy_reps: Option<u32>,
    pub transfers: Vec<Transfer>,
    pub emulator: Vec<EmulatorNote>,
    /// The (size, rate) pairs left out by `--max-line-secs`, each with why.
    #[serde(default)]
    pub skipped: Vec<String>,
    /// The client's congestion control (uploads are its sends, on both paths alike): the
    /// one `--client-cc` set on its route, else the host's default; empty in runs before it
    /// was recorded. The kernel path runs xgate's `[tcp] congestion` (CUBIC here), set on
    /// its listeners; runs before 65ce485 had the kernel path on the host's default too.
    #[serde(default)]
    pub client_cc: String,
    /// Whether `client_cc` was chosen by `--client-cc` (None: a run before the option, whose
    /// client had the host's default).
    #[serde(default)]
    pub client_cc_chosen: Option<bool>,
}

/// Where xgate's admin endpoint listens, inside the server's namespace.
const ADMIN: &str = "127.0.0.1:9189";
/// The metrics of the bypass's TCP a path note keeps.
const TCP_METRICS: [&str; 9] = [
    "xgate_bypass_tcp_retransmits_total",
    "xgate_bypass_tcp_recoveries_total",
    "xgate_bypass_tcp_segments_total",
    "xgate_bypass_tcp_loss_probes_total",
    "xgate_bypass_tcp_rack_lost_total",
    "xgate_bypass_tcp_dsacks_total",
    "xgate_bypass_tcp_buffer_growths_total",
    "xgate_bypass_tcp_hystart_total",
    "xgate_bypass_tcp_hystart_exit_cwnd_segments_total",
];

/// The bypass's TCP counters now (series name with labels, value), from xgate's metrics.
fn tcp_counters(topo: &Topology) -> Vec<(String, f64)> {
    scrape_metrics(topo, ADMIN, &TCP_METRICS)
}

/// The samples of the metric families named `families` (series with labels, value) that
/// xgate's admin endpoint at `admin`, in the server's namespace, serves now; none if it does
/// not answer.
pub(crate) fn scrape_metrics(
    topo: &Topology,
    admin: &str,
    families: &[&str],
) -> Vec<(String, f64)> {
    let out = topo
        .in_server("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://{admin}/metrics"))
        .output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    text.lines()
        .filter(|l| families.iter().any(|m| l.starts_with(m)))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// `now - before`, series by series.
pub(crate) fn counter_deltas(
    before: &[(String, f64)],
    now: &[(String, f64)],
) -> Vec<(String, f64)> {
    now.iter()
        .map(|(series, v)| {
            let was = before
                .iter()
                .find(|(s, _)| s == series)
                .map_or(0.0, |x| x.1);
            (series.clone(), v - was)
        })
        .collect()
}

/// The port's route for uploads: 200 once the body is read.
const UPLOAD_PATH: &str = "/upload";
/// The NFQUEUE queues of the router's namespace (ours alone: the namespace is).
const QUEUE_BASE: u16 = 40;

/// xgate's configuration for the run: bodies and `/bytes` up to the largest size, the upload
/// route.
fn xgate_config(largest: u64) -> String {
    let limit = largest.max(1 << 20);
    format!(
        "[admin]\nlisten = \"{ADMIN}\"\n\n[http]\nmax_body_len = {limit}\n\n\
         [app]\nmax_bytes_len = {limit}\n\n\
         [[app.routes]]\nmethod = \"POST\"\npath = \"{UPLOAD_PATH}\"\nstatus = 200\nbody = \"ok\\n\"\n"
    )
}

/// Runs the comparison and writes its files; returns the record and the files written.
pub fn run(args: &PathsArgs) -> Result<(PathsRecord, Vec<PathBuf>), CompareError> {
    if !xgate_testnet::is_root() {
        return Err(CompareError::Setup(
            "loadgen paths needs root (namespaces, XDP, iptables)".into(),
        ));
    }
    let clients: Vec<ClientSetting> = args
        .clients
        .iter()
        .map(|c| {
            ClientSetting::parse(c).ok_or_else(|| {
                CompareError::Setup(format!(
                    "--clients: {c:?} is not ts|nots-<MTU 576..9000>, e.g. nots-1280"
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    if args.sizes.is_empty() || args.sizes.iter().any(|&s| s == 0 || s > 1 << 30) {
        return Err(CompareError::Setup("--sizes: 1 byte to 1 GiB each".into()));
    }
    if args.loss_pct.iter().any(|l| !(0.0..=50.0).contains(l))
        || args.rate_mbit.iter().any(|&r| r == 0 || r > 10_000)
        || args.rtt_ms.iter().any(|&r| r > 10_000)
        || args.reps == 0
        || args.lossy_reps == Some(0)
    {
        return Err(CompareError::Setup(
            "--loss 0-50 (%), --rate-mbit 1-10000, --rtt-ms up to 10000, --reps and --lossy-reps at least 1".into(),
        ));
    }
    // Each once, downloads first, however they were given.
    let directions: Vec<Direction> = [Direction::Download, Direction::Upload]
        .into_iter()
        .filter(|d| args.directions.contains(d))
        .collect();
    if directions.is_empty() {
        return Err(CompareError::Setup(
            "--directions: download, upload or both".into(),
        ));
    }
    if args.client_cc.is_empty()
        || !args
            .client_cc
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(CompareError::Setup(format!(
            "--client-cc {:?}: a congestion control's name (cubic, reno, bbr...) or host",
            args.client_cc
        )));
    }
    let lossy_reps = args.lossy_reps.unwrap_or(args.reps.saturating_mul(3));
    let reps_on = |loss_pct: f64| {
        if loss_pct > 0.0 {
            lossy_reps
        } else {
            args.reps
        }
    };
    // Beside this loadgen first, as `--xgate` says: the README runs target/release/loadgen
    // with target/release/xgate beside it and nothing in PATH.
    let me =
        std::env::current_exe().map_err(|e| CompareError::io(Path::new("/proc/self/exe"), e))?;
    let xgate = super::find_xgate(args.xgate.as_deref(), &me)?;
    let largest = *args.sizes.iter().max().unwrap_or(&1);
    // Ctrl-C or SIGTERM ends the run between transfers, and every drop cleans up: the
    // work directory, xgate, the emulator, the namespaces.
    super::install_signal_handlers();
    let work_dir =
        super::WorkDir(std::env::temp_dir().join(format!("xgate-paths-{}", std::process::id())));
    let work = &work_dir.0;
    std::fs::create_dir_all(work).map_err(|e| CompareError::io(work, e))?;
    let config = work.join("xgate.toml");
    std::fs::write(&config, xgate_config(largest)).map_err(|e| CompareError::io(&config, e))?;
    for &size in &args.sizes {
        let f = work.join(format!("body-{size}"));
        let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        std::fs::write(&f, body).map_err(|e| CompareError::io(&f, e))?;
    }

    let topo = Topology::for_paths()?;
    if args.client_cc != "host" {
        topo.set_client_congestion_control(&args.client_cc)
            .map_err(|e| {
                CompareError::Setup(format!(
                    "--client-cc {}: {e} (loaded now: {}; another may be a module to load)",
                    args.client_cc,
                    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control")
                        .unwrap_or_default()
                        .trim()
                ))
            })?;
    }
    let client_cc = if args.client_cc != "host" {
        args.client_cc.clone()
    } else {
        xgate_testnet::run(&[
            "ip",
            "netns",
            "exec",
            &topo.client_ns,
            "cat",
            "/proc/sys/net/ipv4/tcp_congestion_control",
        ])
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
    };
    let log = work.join("xgate.log");
    let server = servers::start_xgate(&xgate, Some(&config), &topo, args.server_core, &log)?;
    let mut record = PathsRecord {
        schema: 1,
        started_utc: super::utc_now(),
        commit: super::git_commit(),
        machine: super::machine::MachineInfo::read(),
        command_line: std::env::args().collect::<Vec<_>>().join(" "),
        reps: args.reps,
        lossy_reps: Some(lossy_reps),
        transfers: Vec::new(),
        emulator: Vec::new(),
        skipped: Vec::new(),
        client_cc,
        client_cc_chosen: Some(args.client_cc != "host"),
    };
    for &rate_mbit in &args.rate_mbit {
        for &size in &args.sizes {
            if !within_budget(size, rate_mbit, args.max_line_secs) {
                record.skipped.push(format!(
                    "{size} bytes at {rate_mbit} Mbit/s: {:.0} s at line rate per transfer, over --max-line-secs {}",
                    line_secs(size, rate_mbit),
                    args.max_line_secs
                ));
            }
        }
    }
    // The least the run can take: every transfer at line rate, plus a round trip or two each.
    let floor: f64 = args
        .rate_mbit
        .iter()
        .flat_map(|&rate| {
            args.sizes
                .iter()
                .filter(move |&&size| within_budget(size, rate, args.max_line_secs))
                .map(move |&size| line_secs(size, rate))
        })
        .sum::<f64>()
        * (args.rtt_ms.len() * clients.len() * directions.len() * 2) as f64
        * args
            .loss_pct
            .iter()
            .map(|&l| f64::from(reps_on(l)))
            .sum::<f64>();
    eprintln!(
        "paths: at least {:.0} minutes of transfers at line rate",
        (floor / 60.0).ceil()
    );
    let mut cases = Vec::new();
    for &rate_mbit in &args.rate_mbit {
        for &rtt_ms in &args.rtt_ms {
            for &loss_pct in &args.loss_pct {
                cases.push(PathCase {
                    rtt_ms,
                    loss_pct,
                    rate_mbit,
                });
            }
        }
    }
    let run_cases = |record: &mut PathsRecord| -> Result<(), CompareError> {
        let mut counters = tcp_counters(&topo);
        for (n, case) in cases.iter().enumerate() {
            let router = topo
                .router
                .as_ref()
                .ok_or_else(|| CompareError::Setup("the path topology has no router".into()))?;
            let emulator = PathEmulator::start(router, case.shape(), QUEUE_BASE, n as u64 + 1)
                .map_err(|e| CompareError::Setup(format!("path emulator: {e}")))?;
            eprintln!("path {}/{}: {}", n + 1, cases.len(), case.name());
            for client in &clients {
                client.apply(&topo)?;
                for &size in args
                    .sizes
                    .iter()
                    .filter(|&&size| within_budget(size, case.rate_mbit, args.max_line_secs))
                {
                    for &direction in &directions {
                        for rep in 0..reps_on(case.loss_pct) {
                            // Both targets of a repetition draw their random losses from one
                            // seed (see `loss_seed`), and so does every client setting: the
                            // penalty of a setting is measured against much the same luck.
                            let seed = loss_seed(&[
                                u64::from(case.rtt_ms),
                                u64::from(case.shape().down.loss_ppm),
                                case.rate_mbit,
                                size,
                                direction as u64,
                                rep as u64,
                            ]);
                            for target in [Target::XgateBypass, Target::XgateKernel] {
                                super::check_interrupted()?;
                                emulator.reseed_losses(seed);
                                let body = work.join(format!("body-{size}"));
                                let result = transfer(
                                    &topo,
                                    target,
                                    direction,
                                    size,
                                    &body,
                                    Duration::from_secs(args.timeout_secs),
                                );
                                record.transfers.push(Transfer {
                                    path: *case,
                                    client: *client,
                                    direction,
                                    size,
                                    target,
                                    rep,
                                    secs: result.as_ref().ok().copied(),
                                    error: result.err(),
                                });
                            }
                        }
                    }
                }
            }
            let now = tcp_counters(&topo);
            record.emulator.push(EmulatorNote {
                path: *case,
                summary: emulator.stats().summary(),
                bypass_tcp: counter_deltas(&counters, &now),
            });
            counters = now;
            emulator
                .stop()
                .map_err(|e| CompareError::Setup(format!("path emulator: {e}")))?;
        }
        Ok(())
    };
    if let Err(e) = run_cases(&mut record) {
        // The work directory, xgate's log with it, goes with the drops: say what it said.
        if !matches!(e, CompareError::Interrupted) {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = said.lines().rev().take(40).collect();
            eprintln!("paths: {e}; the end of xgate's log:");
            for line in tail.iter().rev() {
                eprintln!("  {line}");
            }
        }
        return Err(e);
    }
    ClientSetting {
        timestamps: true,
        mtu: 1500,
    }
    .apply(&topo)?;
    server.stop(Duration::from_secs(5));
    drop(work_dir);
    let written = super::paths_report::write(&record, &args.out)?;
    Ok((record, written))
}

/// The loss seed of one repetition of one transfer on one path, the same for both targets:
/// with one seed each, the round trip in which the first random loss fell decided a
/// transfer more than the stack did (1% loss rows swung 0.42x-4.71x with 3 repetitions).
/// With it, both stacks meet the same losses for as long as they send the same packets, so
/// the comparison is of how each recovers (the emulator draws each loss from the seed and the
/// packet's place in its own connection, so the last packets of the transfer before, still
/// passing after the reseed, do not move them: they did, and a lost SYN, a second's wait,
/// fell on one target's transfer and not the other's). Distinct for every repetition, so the reps still
/// sample several loss patterns (FNV-1a over the coordinates). The coordinates are the
/// path's own values, not its place in the run, so a run of one path (`--rtt-ms 80 --loss 1
/// --rate-mbit 100`) meets, repetition for repetition, the losses of the whole matrix's.
fn loss_seed(coordinates: &[u64]) -> u64 {
    coordinates
        .iter()
        .flat_map(|c| c.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// One transfer with curl from the client's namespace on a new connection: its
/// completion time, or why it failed.
fn transfer(
    topo: &Topology,
    target: Target,
    direction: Direction,
    size: u64,
    body: &Path,
    timeout: Duration,
) -> Result<f64, String> {
    let base = format!("http://{SERVER_IP}:{}", target.port());
    let max_time = timeout.as_secs().max(1).to_string();
    let mut cmd = topo.in_client("curl");
    cmd.args(["-sS", "-o", "/dev/null", "--max-time", &max_time]);
    let want_status;
    match direction {
        Direction::Download => {
            want_status = 200;
            cmd.args(["-w", "%{http_code} %{size_download} %{time_total}"])
                .arg(format!("{base}/bytes/{size}"));
        }
        Direction::Upload => {
            want_status = 200;
            // No `Expect: 100-continue`: the body follows the head at once, on both targets.
            cmd.args([
                "-H",
                "Expect:",
                "-H",
                "Content-Type: application/octet-stream",
            ])
            .args(["-w", "%{http_code} %{size_upload} %{time_total}"])
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .arg(format!("{base}{UPLOAD_PATH}"));
        }
    }
    let out = cmd.output().map_err(|e| format!("curl: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    let (status, bytes, secs) = (
        words.next().and_then(|w| w.parse::<u16>().ok()),
        words.next().and_then(|w| w.parse::<f64>().ok()),
        words.next().and_then(|w| w.parse::<f64>().ok()),
    );
    match (status, bytes, secs) {
        (Some(s), Some(b), Some(t)) if s == want_status && b as u64 == size && t > 0.0 => Ok(t),
        _ => Err(format!(
            "curl said {:?} ({})",
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_settings_are_parsed_and_named() {
        let c = ClientSetting::parse("nots-1280").unwrap();
        assert_eq!(
            c,
            ClientSetting {
                timestamps: false,
                mtu: 1280
            }
        );
        assert_eq!(c.name(), "nots-1280");
        assert_eq!(ClientSetting::parse("ts-1500").unwrap().name(), "ts-1500");
        for bad in ["ts", "ts-", "ts-100", "tso-1500", "ts-99999", "nots-1280x"] {
            assert_eq!(ClientSetting::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_path_case_shapes_both_directions() {
        let p = PathCase {
            rtt_ms: 80,
            loss_pct: 0.1,
            rate_mbit: 10,
        };
        let shape = p.shape();
        assert_eq!(shape.up.delay, Duration::from_millis(40));
        assert_eq!(shape.down.loss_ppm, 1000);
        assert_eq!(shape.down.rate_bps, Some(10_000_000));
        assert_eq!(p.name(), "RTT 80 ms, loss 0.1%, 10 Mbit/s");
    }

    #[test]
    fn the_config_allows_the_largest_body_and_routes_uploads() {
        let c = xgate_config(32 << 20);
        assert!(c.contains("max_body_len = 33554432"), "{c}");
        assert!(c.contains("max_bytes_len = 33554432"), "{c}");
        assert!(c.contains("path = \"/upload\""), "{c}");
        assert!(xgate_config(10).contains("max_body_len = 1048576"));
        assert!(c.contains("listen = \"127.0.0.1:9189\""), "{c}");
    }

    #[test]
    fn the_line_rate_budget_skips_only_sizes_too_slow_for_the_bottleneck() {
        assert!((line_secs(32 << 20, 10) - 26.8).abs() < 0.1);
        assert!(!within_budget(32 << 20, 10, 10.0));
        assert!(within_budget(32 << 20, 100, 10.0));
        assert!(within_budget(1 << 20, 10, 10.0));
        assert!(within_budget(32 << 20, 10, 0.0), "0 means no limit");
    }

    #[test]
    fn counter_deltas_are_taken_series_by_series() {
        let before = vec![("a{kind=\"fast\"}".to_string(), 3.0)];
        let now = vec![
            ("a{kind=\"fast\"}".to_string(), 5.0),
            ("a{kind=\"timeout\"}".to_string(), 2.0),
        ];
        assert_eq!(
            counter_deltas(&before, &now),
            [
                ("a{kind=\"fast\"}".to_string(), 2.0),
                ("a{kind=\"timeout\"}".to_string(), 2.0)
            ]
        );
    }
}
