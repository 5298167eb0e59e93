//! The scaling figure (issue 15, item 4): xgate's bypass path with one RX queue (one poller on
//! one CPU) and with two (one poller per CPU), the same workloads, on this machine, and what
//! that says about more cores.
//!
//! The network is compare's plain veth pair ([`Topology::with_queues`]), built once with one
//! queue on each end and once with two: the client's flows spread over its end's TX queues by
//! their hash, and TX queue `q` feeds the server end's RX queue `q`, whose AF_XDP socket is
//! poller `q`'s. Three setups ([`Setup`]):
//!
//! - `1q`: one queue, its poller pinned to the server's CPU, the client (one thread) pinned to
//!   the other: compare's layout, where the poller has a core to itself. Its poller CPU per
//!   request is the per-queue cost the projection starts from.
//! - `1q-shared`: one queue on the server's CPU, the client as in `2q` (a thread on each CPU):
//!   what the second queue adds with the client placed the same way.
//! - `2q`: two queues, poller `q` on CPU `q`, the client's two threads one on each CPU.
//!
//! A 2-CPU machine has no core for the client once both carry a poller: the client's CPU
//! time is measured (its threads', through `RUSAGE_CHILDREN`) beside each poller's
//! (`xgate-q<N>`, from the scheduler's clock: [`super::attribution`]), the kernel threads',
//! and everything else's, so the report can say what bounds each figure. Each poller's
//! requests, connections and loop rounds come from `xgate status --json`, read before and
//! after each measured run (once the gateway's counters have settled), which gives the split
//! of the work over the queues.
//!
//! The servers and the repetitions are interleaved: for each repetition, one `xgate run` per
//! queue count serves its setups' workloads, the order reversed every other repetition.
//! Everything started is stopped by PID and the namespaces are deleted, also on error or
//! Ctrl-C. The summary ([`super::scaling_report`]) adds the projection.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use serde::{Deserialize, Serialize};

use super::attribution::{SoftirqCounts, ThreadRun, ThreadSample};
use super::machine::{ipis_per_cpu, load_average, CpuSample, MachineInfo};
use super::report::{ClientFigures, TopologyRecord};
use super::scenarios::Scenario;
use super::servers::{self, Server, Target, XgatePollers};
use super::topology::{Network, Topology};
use super::{check_interrupted, client_run_on, ClientLoad, CompareError};

/// `loadgen scaling`.
#[derive(Debug, Clone, Args)]
pub struct ScalingArgs {
    /// Where results go: `runs/<time>-<commit>-scaling.{json,md}`, the latest summary
    /// `scaling.md` and `charts/scaling-*.svg`.
    #[arg(long, value_name = "DIR", default_value = "bench-results")]
    pub out: PathBuf,
    /// The xgate binary (default: beside this loadgen, else in PATH).
    #[arg(long, value_name = "PATH")]
    pub xgate: Option<PathBuf>,
    /// Repetitions of every workload in every setup (more, shorter runs: this VM's figures
    /// vary from run to run more than within one).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub reps: u32,
    /// Seconds each measured run lasts.
    #[arg(long, value_name = "SECS", default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// Seconds of warm-up before each measured run (not counted).
    #[arg(long, value_name = "SECS", default_value_t = 1)]
    pub warmup: u64,
    /// A workload to run (repeat; default all): keep-alive (`GET /health`, 64 connections),
    /// bytes-16k (`GET /bytes/16384`, 64 connections), churn (a connection per request, 32
    /// at a time).
    #[arg(long = "workload", value_name = "NAME")]
    pub workloads: Vec<String>,
    /// A setup to run (repeat; default all): 1q, 1q-shared, 2q.
    #[arg(long = "setup", value_name = "NAME")]
    pub setups: Vec<String>,
    /// The one-queue poller's CPU (queue 1's with two queues).
    #[arg(long, value_name = "CPU", default_value_t = 1)]
    pub server_core: usize,
    /// The one-queue client's CPU (queue 0's poller with two queues).
    #[arg(long, value_name = "CPU", default_value_t = 0)]
    pub client_core: usize,
    /// A short run to check that everything works (1 repetition of 2 s, 1 s warm-up); its
    /// figures are not worth committing.
    #[arg(long)]
    pub quick: bool,
    /// Measure nothing: write the summary, the charts and the run's files again from the
    /// JSON record of an earlier run (`runs/<time>-<commit>-scaling.json`), e.g. after a
    /// change to the report.
    #[arg(long, value_name = "FILE")]
    pub from_record: Option<PathBuf>,
}

/// The workloads, in the order they run.
pub const WORKLOADS: [Scenario; 3] = [Scenario::KeepAlive, Scenario::Bytes16k, Scenario::Churn];

/// Where the pollers and the client run (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Setup {
    #[serde(rename = "1q")]
    OneQueue,
    #[serde(rename = "1q-shared")]
    OneQueueShared,
    #[serde(rename = "2q")]
    TwoQueues,
}

impl Setup {
    pub const ALL: [Setup; 3] = [Setup::OneQueue, Setup::OneQueueShared, Setup::TwoQueues];

    pub fn name(self) -> &'static str {
        match self {
            Setup::OneQueue => "1q",
            Setup::OneQueueShared => "1q-shared",
            Setup::TwoQueues => "2q",
        }
    }

    pub fn parse(name: &str) -> Option<Setup> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn title(self) -> &'static str {
        match self {
            Setup::OneQueue => "1 queue, client on the other CPU",
            Setup::OneQueueShared => "1 queue, client on both CPUs",
            Setup::TwoQueues => "2 queues, client on both CPUs",
        }
    }

    /// Its pollers' and its client's CPUs, given the one-queue layout's (server, client).
    pub fn layout(self, (server, client): (usize, usize)) -> Layout {
        let (poller_cpus, client_cpus) = match self {
            Setup::OneQueue => (vec![server], vec![client]),
            Setup::OneQueueShared => (vec![server], vec![client, server]),
            Setup::TwoQueues => (vec![client, server], vec![client, server]),
        };
        Layout {
            setup: self,
            poller_cpus,
            client_cpus,
            kernel_core: server,
        }
    }
}

/// Where one setup's threads ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub setup: Setup,
    /// Poller `q`'s CPU at index `q` (as many as the setup's RX queues).
    pub poller_cpus: Vec<usize>,
    /// One client thread per CPU listed, pinned there.
    pub client_cpus: Vec<usize>,
    /// xgate's kernel-path thread (idle here: only the bypass port is loaded).
    pub kernel_core: usize,
}

impl Layout {
    pub fn queues(&self) -> u32 {
        self.poller_cpus.len() as u32
    }
}

/// One poller's share of a measured run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PollerRun {
    pub queue: u32,
    /// The CPU it was pinned to, as `xgate status` reports it.
    pub cpu: Option<usize>,
    /// Its thread's CPU time (`xgate-q<queue>`, scheduler clock), in seconds.
    pub cpu_secs: f64,
    /// Requests it answered, connections it established, and its loop rounds that did work
    /// and that found none, during the run (`xgate status --json` deltas).
    pub requests: u64,
    pub established: u64,
    pub busy_loops: u64,
    pub idle_loops: u64,
}

/// Where a measured run's CPU time went, in CPU-seconds, from every thread's scheduler clock.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuSplit {
    /// loadgen's threads (the finished client, `RUSAGE_CHILDREN`): on a plain veth this
    /// includes the kernel's receive of its requests into the server's AF_XDP ring (XDP and
    /// the copy), which runs inside the client's send.
    pub client_secs: f64,
    /// The pollers together (their split is in [`ScalingRun::pollers`]): on a plain veth this
    /// includes the client's TCP receive of every response, which runs inside the pollers'
    /// transmit.
    pub pollers_secs: f64,
    /// xgate's other threads (its main thread, the idle kernel-path thread).
    pub xgate_other_secs: f64,
    /// `ksoftirqd/N`: network softirq work deferred to a thread.
    pub ksoftirqd_secs: f64,
    /// NAPI threads (none on a plain veth, where receive is not threaded).
    pub napi_secs: f64,
    /// Every other kernel thread (kworkers, RCU, ...).
    pub other_kernel_secs: f64,
    /// Every other process (this runner, anything else on the machine).
    pub other_secs: f64,
    /// The largest parts of `other_secs` and `other_kernel_secs`: (name, seconds), at most 3.
    pub other_top: Vec<(String, f64)>,
    /// Each CPU's time in softirq, sampled by the timer tick (lossy on this VM; it also sees
    /// softirq work run while the CPU was idle, which no thread's clock counts).
    pub softirq_tick_secs: Vec<f64>,
    /// Each CPU's busy share from `/proc/stat`.
    pub busy_per_cpu: Vec<f64>,
    /// `NET_RX` softirqs raised on each CPU.
    pub net_rx: Vec<u64>,
    /// Inter-processor interrupts each CPU received ([`super::machine::ipis_per_cpu`]).
    #[serde(default)]
    pub ipis: Vec<u64>,
}

impl CpuSplit {
    /// Every thread's time on the machine.
    pub fn total_secs(&self) -> f64 {
        self.client_secs
            + self.pollers_secs
            + self.xgate_other_secs
            + self.ksoftirqd_secs
            + self.napi_secs
            + self.other_kernel_secs
            + self.other_secs
    }
}

/// One measured run: a setup, a workload, a repetition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScalingRun {
    pub setup: Setup,
    pub workload: Scenario,
    pub rep: u32,
    pub client: ClientFigures,
    /// Wall-clock seconds between the two thread samples (the client's whole process,
    /// its connection set-up included).
    pub elapsed_secs: f64,
    pub pollers: Vec<PollerRun>,
    pub cpu: CpuSplit,
    /// The client command, to reproduce the run by hand.
    pub command: String,
}

/// Everything a run of `loadgen scaling` measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScalingRecord {
    pub schema: u32,
    pub started_utc: String,
    pub commit: String,
    pub machine: MachineInfo,
    pub command_line: String,
    pub reps: u32,
    pub duration_secs: u64,
    pub warmup_secs: u64,
    /// The first figure of the load average before the run (a busy machine shows here).
    pub load_average_before: f64,
    pub layouts: Vec<Layout>,
    pub workloads: Vec<Scenario>,
    /// The veth pair of each queue count, as built.
    pub topologies: Vec<TopologyRecord>,
    pub runs: Vec<ScalingRun>,
}

/// A poller's counters at one moment, from `xgate status --json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollerCounters {
    pub queue: u32,
    pub core: Option<usize>,
    pub requests: u64,
    pub established: u64,
    pub busy_loops: u64,
    pub idle_loops: u64,
}

/// The `pollers` of `xgate status --json`.
pub fn parse_pollers(status: &serde_json::Value) -> Vec<PollerCounters> {
    let n = |p: &serde_json::Value, k: &str| p[k].as_u64().unwrap_or(0);
    status["pollers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| PollerCounters {
                    queue: n(p, "queue") as u32,
                    core: p["core"].as_u64().map(|c| c as usize),
                    requests: n(p, "requests"),
                    established: n(p, "established"),
                    busy_loops: n(p, "busy_loops"),
                    idle_loops: n(p, "idle_loops"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The queue of a poller thread's name, `xgate-q<N>`.
pub fn poller_queue(thread_name: &str) -> Option<u32> {
    thread_name.strip_prefix("xgate-q")?.parse().ok()
}

/// Sorts the threads' time (`runs`, between two samples) into [`CpuSplit`] and each poller's
/// seconds by queue; `server_pid` is xgate's process, `client_secs` the finished client's.
pub fn split_cpu(
    runs: &[ThreadRun],
    server_pid: u32,
    client_secs: f64,
) -> (CpuSplit, BTreeMap<u32, f64>) {
    let mut split = CpuSplit {
        client_secs,
        ..CpuSplit::default()
    };
    let mut pollers: BTreeMap<u32, f64> = BTreeMap::new();
    let mut others: BTreeMap<&str, f64> = BTreeMap::new();
    for t in runs {
        if t.tgid == server_pid {
            match poller_queue(&t.name) {
                Some(q) => {
                    *pollers.entry(q).or_default() += t.secs;
                    split.pollers_secs += t.secs;
                }
                None => split.xgate_other_secs += t.secs,
            }
            continue;
        }
        let slot = match (t.kernel, t.name.as_str()) {
            (true, n) if n.starts_with("ksoftirqd/") => &mut split.ksoftirqd_secs,
            (true, n) if n.starts_with("napi/") => &mut split.napi_secs,
            (true, _) => &mut split.other_kernel_secs,
            (false, _) => &mut split.other_secs,
        };
        *slot += t.secs;
        if !t.name.starts_with("ksoftirqd/") && !t.name.starts_with("napi/") {
            *others.entry(t.name.as_str()).or_default() += t.secs;
        }
    }
    let mut top: Vec<(String, f64)> = others.into_iter().map(|(n, s)| (n.into(), s)).collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(3);
    split.other_top = top;
    (split, pollers)
}

/// Each poller's counters between `before` and `after`, with its thread's CPU time.
pub fn poller_runs(
    before: &[PollerCounters],
    after: &[PollerCounters],
    cpu_secs: &BTreeMap<u32, f64>,
) -> Vec<PollerRun> {
    after
        .iter()
        .map(|a| {
            let b = before
                .iter()
                .find(|b| b.queue == a.queue)
                .copied()
                .unwrap_or_default();
            PollerRun {
                queue: a.queue,
                cpu: a.core,
                cpu_secs: cpu_secs.get(&a.queue).copied().unwrap_or(0.0),
                requests: a.requests.saturating_sub(b.requests),
                established: a.established.saturating_sub(b.established),
                busy_loops: a.busy_loops.saturating_sub(b.busy_loops),
                idle_loops: a.idle_loops.saturating_sub(b.idle_loops),
            }
        })
        .collect()
}

/// How long the gateway's published counters take to catch up once the load stops: the
/// state file is rewritten every 500 ms, from counters each poller publishes before it sleeps.
const SETTLE: Duration = Duration::from_millis(1200);

/// The pollers' counters now, from `xgate status --iface <server end> --json`.
fn status_pollers(xgate: &Path, topo: &Topology) -> Result<Vec<PollerCounters>, CompareError> {
    let shown = format!(
        "{} status --iface {} --json",
        xgate.display(),
        topo.server_if
    );
    let out = std::process::Command::new(xgate)
        .args(["status", "--iface", &topo.server_if, "--json"])
        .output()
        .map_err(|e| CompareError::Command {
            command: shown.clone(),
            message: e.to_string(),
        })?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .ok()
        .filter(|_| out.status.success())
        .ok_or_else(|| CompareError::Command {
            command: shown,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })?;
    Ok(parse_pollers(&json))
}

/// What every measured run needs.
struct Bench {
    loadgen: PathBuf,
    xgate: PathBuf,
    duration: u64,
    warmup: u64,
}

/// Warm-up, then the measured run with the pollers' counters, every thread's CPU time,
/// `/proc/stat` and `/proc/softirqs` read around it.
fn measure(
    bench: &Bench,
    topo: &Topology,
    server: &Server,
    layout: &Layout,
    (workload, rep): (Scenario, u32),
) -> Result<ScalingRun, CompareError> {
    let load = |secs| ClientLoad {
        target: Target::XgateBypass,
        scenario: workload,
        rate: None,
        secs,
    };
    if bench.warmup > 0 {
        client_run_on(
            &bench.loadgen,
            topo,
            &load(bench.warmup),
            &layout.client_cpus,
        )?;
    }
    std::thread::sleep(SETTLE);
    let counters_before = status_pollers(&bench.xgate, topo)?;
    let stat_before =
        CpuSample::read().map_err(|e| CompareError::io(Path::new("/proc/stat"), e))?;
    let irq_before = SoftirqCounts::read();
    let ipis_before = ipis_per_cpu();
    let threads_before = ThreadSample::read();
    let start = Instant::now();
    let (client, command) = client_run_on(
        &bench.loadgen,
        topo,
        &load(bench.duration),
        &layout.client_cpus,
    )?;
    let threads_after = ThreadSample::read();
    let elapsed_secs = start.elapsed().as_secs_f64();
    let irq = SoftirqCounts::read().since(&irq_before);
    let ipis: Vec<u64> = ipis_per_cpu()
        .iter()
        .zip(ipis_before.iter().chain(std::iter::repeat(&0)))
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    let stat = stat_before
        .busy_since(&CpuSample::read().map_err(|e| CompareError::io(Path::new("/proc/stat"), e))?);
    std::thread::sleep(SETTLE);
    let counters_after = status_pollers(&bench.xgate, topo)?;
    let (mut cpu, poller_secs) = split_cpu(
        &threads_before.runs_until(&threads_after),
        server.pid(),
        threads_before.children_secs_until(&threads_after),
    );
    cpu.softirq_tick_secs = stat.softirq_secs;
    cpu.busy_per_cpu = stat.per_cpu;
    cpu.net_rx = irq.net_rx;
    cpu.ipis = ipis;
    Ok(ScalingRun {
        setup: layout.setup,
        workload,
        rep,
        client,
        elapsed_secs,
        pollers: poller_runs(&counters_before, &counters_after, &poller_secs),
        cpu,
        command,
    })
}

/// One line of progress on stderr.
fn print_run(r: &ScalingRun) {
    let split: Vec<String> = r
        .pollers
        .iter()
        .map(|p| format!("q{} {} req {:.2} s", p.queue, p.requests, p.cpu_secs))
        .collect();
    eprintln!(
        "  rep {} {:<9} {:<10} {:>9.0} req/s  pollers {:>6.2} µs/req  client {:>5.1}% of the machine  [{}]  errors {}",
        r.rep,
        r.setup.name(),
        r.workload.name(),
        r.client.throughput_rps,
        super::scaling_report::poller_us_per_request(r),
        100.0 * super::scaling_report::client_share(r),
        split.join(", "),
        r.client.errors
    );
}

/// The setups and workloads asked for, in their canonical order.
fn selection(args: &ScalingArgs) -> Result<(Vec<Setup>, Vec<Scenario>), CompareError> {
    let mut setups = Vec::new();
    for name in &args.setups {
        setups.push(Setup::parse(name).ok_or_else(|| {
            CompareError::Setup(format!("unknown setup {name:?} (1q, 1q-shared, 2q)"))
        })?);
    }
    let mut workloads = Vec::new();
    for name in &args.workloads {
        workloads.push(
            Scenario::parse(name)
                .filter(|s| WORKLOADS.contains(s))
                .ok_or_else(|| {
                    CompareError::Setup(format!(
                        "unknown workload {name:?} (keep-alive, bytes-16k, churn)"
                    ))
                })?,
        );
    }
    let setups = Setup::ALL
        .into_iter()
        .filter(|s| setups.is_empty() || setups.contains(s))
        .collect();
    let workloads = WORKLOADS
        .into_iter()
        .filter(|w| workloads.is_empty() || workloads.contains(w))
        .collect();
    Ok((setups, workloads))
}

/// The layouts served by one `xgate run`: those with the same pollers, in groups by queue
/// count, fewest first.
fn server_groups(layouts: &[Layout]) -> Vec<Vec<Layout>> {
    let mut groups: Vec<Vec<Layout>> = Vec::new();
    for l in layouts {
        match groups
            .iter_mut()
            .find(|g| g[0].poller_cpus == l.poller_cpus)
        {
            Some(g) => g.push(l.clone()),
            None => groups.push(vec![l.clone()]),
        }
    }
    groups.sort_by_key(|g| g[0].queues());
    groups
}

/// Runs the scaling figure and writes its files; returns the record and the files written.
pub fn run(args: &ScalingArgs) -> Result<(ScalingRecord, Vec<PathBuf>), CompareError> {
    if let Some(file) = &args.from_record {
        let text = std::fs::read_to_string(file).map_err(|e| CompareError::io(file, e))?;
        let record: ScalingRecord = serde_json::from_str(&text).map_err(|e| {
            CompareError::Setup(format!("{}: not a scaling record: {e}", file.display()))
        })?;
        let written = super::scaling_report::write(&record, &args.out)?;
        // The record as it was measured, not as re-serialised (a float read back may differ
        // in its last digit).
        for f in written
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "json"))
        {
            std::fs::write(f, &text).map_err(|e| CompareError::io(f, e))?;
        }
        return Ok((record, written));
    }
    if !xgate_testnet::is_root() {
        return Err(CompareError::Setup(
            "loadgen scaling needs root (network namespaces, XDP)".into(),
        ));
    }
    super::install_signal_handlers();
    let (setups, workloads) = selection(args)?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cores = (args.server_core, args.client_core);
    if cores.0 == cores.1 || cores.0 >= cpus || cores.1 >= cpus {
        return Err(CompareError::Setup(format!(
            "--server-core {} and --client-core {} must be two CPUs of 0..{}",
            cores.0,
            cores.1,
            cpus.saturating_sub(1)
        )));
    }
    let me =
        std::env::current_exe().map_err(|e| CompareError::io(Path::new("/proc/self/exe"), e))?;
    let (reps, duration, warmup) = if args.quick {
        (1, 2, 1)
    } else {
        (args.reps, args.duration, args.warmup)
    };
    let bench = Bench {
        xgate: super::find_xgate(args.xgate.as_deref(), &me)?,
        loadgen: me,
        duration,
        warmup,
    };
    let work = std::env::temp_dir().join(format!("loadgen-scaling-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| CompareError::io(&work, e))?;
    let _work = super::WorkDir(work.clone());
    let commit = super::git_commit();
    let started_utc = super::utc_now();
    let load_average_before = load_average();
    let layouts: Vec<Layout> = setups.iter().map(|s| s.layout(cores)).collect();
    let groups = server_groups(&layouts);

    // One veth pair per queue count, each torn down when this returns.
    let mut topos: BTreeMap<u32, Topology> = BTreeMap::new();
    for g in &groups {
        let q = g[0].queues();
        if let std::collections::btree_map::Entry::Vacant(e) = topos.entry(q) {
            e.insert(Topology::with_queues(Network::Veth, cores, q)?);
        }
    }
    let topologies = topos
        .values()
        .map(Topology::record)
        .collect::<Result<Vec<_>, _>>()?;
    eprintln!(
        "loadgen scaling: {} setup(s) x {} workload(s) x {} rep(s) of {} s (+{} s warm-up); about {} minutes",
        layouts.len(),
        workloads.len(),
        reps,
        duration,
        warmup,
        (layouts.len() * workloads.len()) as u64 * u64::from(reps) * (duration + warmup + 4) / 60 + 1
    );

    let mut runs = Vec::new();
    for rep in 0..reps {
        let mut order = groups.clone();
        if rep % 2 == 1 {
            order.reverse();
        }
        for mut group in order {
            if rep % 2 == 1 {
                group.reverse();
            }
            let topo = &topos[&group[0].queues()];
            let pollers = XgatePollers {
                cores: group[0].poller_cpus.clone(),
                kernel_core: group[0].kernel_core,
            };
            let log = work.join("xgate.log");
            let server = servers::start_xgate_with(&bench.xgate, None, topo, &pollers, &log)?;
            for layout in &group {
                for &workload in &workloads {
                    check_interrupted()?;
                    let r = measure(&bench, topo, &server, layout, (workload, rep))?;
                    print_run(&r);
                    runs.push(r);
                }
            }
            if !server.stop(Duration::from_secs(15)) {
                eprintln!("  xgate did not stop on SIGTERM within 15 s; killed");
            }
        }
    }
    drop(topos);

    let record = ScalingRecord {
        schema: 1,
        started_utc,
        commit,
        machine: MachineInfo::read(),
        command_line: super::command_line(),
        reps,
        duration_secs: duration,
        warmup_secs: warmup,
        load_average_before,
        layouts,
        workloads,
        topologies,
        runs,
    };
    let written = super::scaling_report::write(&record, &args.out)?;
    Ok((record, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setups_place_pollers_and_client() {
        for s in Setup::ALL {
            assert_eq!(Setup::parse(s.name()), Some(s));
        }
        assert_eq!(Setup::parse("3q"), None);
        let one = Setup::OneQueue.layout((1, 0));
        assert_eq!((one.poller_cpus, one.client_cpus), (vec![1], vec![0]));
        let shared = Setup::OneQueueShared.layout((1, 0));
        assert_eq!(
            (shared.poller_cpus, shared.client_cpus),
            (vec![1], vec![0, 1])
        );
        let two = Setup::TwoQueues.layout((1, 0));
        assert_eq!(two.queues(), 2);
        assert_eq!((two.poller_cpus, two.client_cpus), (vec![0, 1], vec![0, 1]));
        assert_eq!(
            serde_json::to_string(&Setup::OneQueueShared).unwrap(),
            "\"1q-shared\""
        );
    }

    #[test]
    fn one_gateway_serves_the_setups_with_the_same_pollers() {
        let layouts: Vec<Layout> = [Setup::TwoQueues, Setup::OneQueue, Setup::OneQueueShared]
            .iter()
            .map(|s| s.layout((1, 0)))
            .collect();
        let groups: Vec<Vec<Setup>> = server_groups(&layouts)
            .iter()
            .map(|g| g.iter().map(|l| l.setup).collect())
            .collect();
        assert_eq!(
            groups,
            vec![
                vec![Setup::OneQueue, Setup::OneQueueShared],
                vec![Setup::TwoQueues]
            ]
        );
    }

    #[test]
    fn status_pollers_are_read_and_differenced() {
        let before = parse_pollers(&serde_json::json!({
            "pollers": [
                {"queue": 0, "core": 0, "requests": 10, "established": 1, "busy_loops": 5, "idle_loops": 7},
                {"queue": 1, "core": 1, "requests": 20, "established": 2, "busy_loops": 6, "idle_loops": 8}
            ]
        }));
        let after = parse_pollers(&serde_json::json!({
            "pollers": [
                {"queue": 0, "core": 0, "requests": 110, "established": 33, "busy_loops": 105, "idle_loops": 17},
                {"queue": 1, "core": null, "requests": 320, "established": 34, "busy_loops": 306, "idle_loops": 8}
            ]
        }));
        let secs = BTreeMap::from([(0, 1.5), (1, 2.5)]);
        let runs = poller_runs(&before, &after, &secs);
        assert_eq!(runs.len(), 2);
        assert_eq!(
            runs[0],
            PollerRun {
                queue: 0,
                cpu: Some(0),
                cpu_secs: 1.5,
                requests: 100,
                established: 32,
                busy_loops: 100,
                idle_loops: 10
            }
        );
        assert_eq!(
            (runs[1].cpu, runs[1].requests, runs[1].idle_loops),
            (None, 300, 0)
        );
        assert!(parse_pollers(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn thread_time_is_sorted_into_pollers_client_kernel_and_rest() {
        let t = |tgid, name: &str, kernel, secs| ThreadRun {
            tgid,
            name: name.into(),
            kernel,
            bound_cpu: None,
            secs,
        };
        let runs = [
            t(100, "xgate-q0", false, 4.0),
            t(100, "xgate-q1", false, 3.0),
            t(100, "xgate", false, 0.25),
            t(100, "xgate-kernel", false, 0.125),
            t(7, "ksoftirqd/0", true, 0.5),
            t(8, "napi/x-1", true, 0.0625),
            t(9, "kworker/1:0", true, 0.75),
            t(200, "cargo", false, 1.0),
            t(201, "sshd", false, 0.1),
        ];
        let (split, pollers) = split_cpu(&runs, 100, 6.0);
        assert_eq!(pollers, BTreeMap::from([(0, 4.0), (1, 3.0)]));
        assert_eq!(split.pollers_secs, 7.0);
        assert_eq!(split.xgate_other_secs, 0.375);
        assert_eq!(split.client_secs, 6.0);
        assert_eq!(split.ksoftirqd_secs, 0.5);
        assert_eq!(split.napi_secs, 0.0625);
        assert_eq!(split.other_kernel_secs, 0.75);
        assert!((split.other_secs - 1.1).abs() < 1e-12);
        assert_eq!(
            split.other_top,
            vec![
                ("cargo".to_string(), 1.0),
                ("kworker/1:0".to_string(), 0.75),
                ("sshd".to_string(), 0.1)
            ]
        );
        assert!(
            (split.total_secs() - (7.0 + 0.375 + 6.0 + 0.5 + 0.0625 + 0.75 + 1.1)).abs() < 1e-12
        );
        assert_eq!(poller_queue("xgate-q12"), Some(12));
        assert_eq!(poller_queue("xgate-kernel"), None);
    }

    #[test]
    fn workloads_and_setups_are_chosen_by_name() {
        let mut args = ScalingArgs {
            out: PathBuf::from("x"),
            xgate: None,
            reps: 1,
            duration: 1,
            warmup: 0,
            workloads: vec!["churn".into(), "keep-alive".into()],
            setups: vec!["2q".into(), "1q".into()],
            server_core: 1,
            client_core: 0,
            quick: false,
            from_record: None,
        };
        let (setups, workloads) = selection(&args).unwrap();
        assert_eq!(setups, vec![Setup::OneQueue, Setup::TwoQueues]);
        assert_eq!(workloads, vec![Scenario::KeepAlive, Scenario::Churn]);
        args.workloads = vec!["echo-1k".into()];
        assert!(
            selection(&args).is_err(),
            "not one of the scaling workloads"
        );
        args.workloads.clear();
        args.setups.clear();
        let (setups, workloads) = selection(&args).unwrap();
        assert_eq!((setups.len(), workloads.len()), (3, 3));
    }
}
