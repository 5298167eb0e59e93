//! `loadgen compare`: xgate's bypass path against its kernel path and against nginx, measured
//! side by side in one run on this machine, written to `bench-results/`. With the proxy
//! scenarios (`--scenario proxy`), the same as reverse proxies: xgate's two paths, nginx and
//! HAProxy, each forwarding to one origin that runs beside them ([`proxy`]).
//!
//! 1. Builds a client and a server network namespace joined by a veth pair ([`topology`]).
//! 2. Picks the open-loop rate, unless given: a short keep-alive run against each target, and
//!    half the slowest one's throughput, so the rate stays below every target's saturation.
//! 3. For each repetition, for each target (the order alternates between repetitions, so no
//!    target always runs on a warmer or cooler machine): starts the server pinned to the
//!    server's CPU ([`servers`]), and for each scenario ([`scenarios`]) runs a warm-up, then
//!    the measured `loadgen run` in the client namespace pinned to the client's CPU, reading
//!    `/proc/stat` around it ([`machine`]). After the keep-alive and bytes-16k scenarios it
//!    runs wrk the same way, as a cross-check of loadgen's own figure. The proxy comparison
//!    starts its origin once per network, before any target, pinned off the server's core.
//! 4. Writes, for each network, `runs/<time>-<commit>-<network>.json` (every figure) and
//!    `.md`, and the latest summary ([`report`]), `<network>.md` and `charts/<network>-*.svg`
//!    ([`svg`]); the proxy comparison's summary is `proxy-<network>.md` and
//!    `charts/proxy-<network>-*.svg`, so it leaves the gateway comparison's in place.
//!
//! Everything it starts is stopped by PID and the namespaces are deleted, also on error or
//! Ctrl-C.

pub mod attribution;
pub mod flood;
pub mod https;
pub mod lab;
pub mod lab_report;
pub mod machine;
pub mod paths;
pub mod paths_report;
pub mod proxy;
pub mod report;
pub mod scaling;
pub mod scaling_report;
pub mod scenarios;
pub mod servers;
pub mod svg;
pub mod topology;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;

use attribution::{Attribution, SoftirqCounts, ThreadSample};
use machine::{load_average, CpuSample, MachineInfo};
use report::{ClientFigures, Latency, Measurement, RunConfig, RunRecord, WrkCheck};
use scenarios::{Offered, Scenario};
use servers::{Server, Target};
use topology::{Network, Topology};

/// Why a comparison could not run.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{0}")]
    Setup(String),
    #[error("`{command}` failed: {message}")]
    Command { command: String, message: String },
    #[error("{what}: {message}")]
    Server { what: &'static str, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("loadgen against {target} ({scenario}): {message}")]
    Client {
        target: &'static str,
        scenario: &'static str,
        message: String,
    },
    #[error("interrupted")]
    Interrupted,
}

impl CompareError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        CompareError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `loadgen compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Where results go: `runs/<time>-<commit>-<network>.{json,md}`, and the latest summary,
    /// `<network>.md` and `charts/<network>-*.svg`, or with the proxy scenarios
    /// `proxy-<network>.md` and `charts/proxy-<network>-*.svg`.
    #[arg(long, value_name = "DIR", default_value = "bench-results")]
    pub out: PathBuf,
    /// The xgate binary (default: beside this loadgen, else in PATH).
    #[arg(long, value_name = "PATH")]
    pub xgate: Option<PathBuf>,
    /// A configuration file for xgate (`xgate run --config`), e.g. to try poller or TCP
    /// settings; the runner's own flags (interface, ports, cores, netns) override it.
    #[arg(long, value_name = "FILE")]
    pub xgate_config: Option<PathBuf>,
    /// The nginx binary.
    #[arg(long, value_name = "PATH", default_value = "nginx")]
    pub nginx: PathBuf,
    /// The HAProxy binary (the proxy scenarios' fourth target).
    #[arg(long, value_name = "PATH", default_value = "haproxy")]
    pub haproxy: PathBuf,
    /// CPU the proxy scenarios' origin is pinned to (default: the first CPU that is neither
    /// the server's nor the client's, else the client's; never the server's).
    #[arg(long, value_name = "CPU")]
    pub origin_core: Option<usize>,
    /// CPU the servers are pinned to.
    #[arg(long, value_name = "CPU", default_value_t = 1)]
    pub server_core: usize,
    /// CPU the client is pinned to.
    #[arg(long, value_name = "CPU", default_value_t = 0)]
    pub client_core: usize,
    /// Repetitions of every scenario on every target.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub reps: u32,
    /// Seconds each measured run lasts.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// Seconds of warm-up before each measured run (not counted).
    #[arg(long, value_name = "SECS", default_value_t = 2)]
    pub warmup: u64,
    /// Seconds each measured run lasts in the lab (which runs four times as many).
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lab_duration: u64,
    /// Seconds of warm-up before each measured run in the lab.
    #[arg(long, value_name = "SECS", default_value_t = 1)]
    pub lab_warmup: u64,
    /// Open-loop rate in requests/s (default: half the slowest target's keep-alive
    /// throughput, measured first).
    #[arg(long, value_name = "REQ_PER_SEC")]
    pub rate: Option<u64>,
    /// A scenario to run (repeat; default all of the gateway's): keep-alive, churn,
    /// open-loop, echo-1k, bytes-16k; or the proxy scenarios, on their own: proxy-get,
    /// proxy-post-1k, proxy-get-64k, or `proxy` for the three.
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// A target to measure (repeat; default all): xgate-bypass, xgate-kernel, nginx, and
    /// with the proxy scenarios haproxy.
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
    /// A test network to run on (repeat; default both, one after the other): `veth` (each
    /// end's receive runs in the other's transmit: the end-to-end figures) or `lab` (each side
    /// receives in NAPI threads on its own core: the server core's cost per request, at
    /// saturation and at three fixed rates per workload).
    #[arg(long = "network", value_name = "NAME")]
    pub networks: Vec<String>,
    /// The client's GRO on the veth network: `on` (a real client's NIC coalesces what it
    /// receives) or `off`, to show what it does to each path (then only veth runs, unless
    /// the lab is asked for, which is refused: it needs GRO on).
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = ["on", "off"])]
    pub client_gro: String,
    /// Skip the wrk cross-check.
    #[arg(long)]
    pub no_wrk: bool,
    /// A short run to check that everything works (1 repetition of 2 s, 1 s warm-up); its
    /// figures are not worth committing.
    #[arg(long)]
    pub quick: bool,
}

/// Set by SIGINT/SIGTERM; every wait checks it, so cleanup runs through the normal drops.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

pub(crate) fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the
        // function pointer has the signature signal(2) expects.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

pub(crate) fn check_interrupted() -> Result<(), CompareError> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        Err(CompareError::Interrupted)
    } else {
        Ok(())
    }
}

/// What a run needs, resolved from the arguments.
#[derive(Clone)]
pub(crate) struct Plan {
    xgate: PathBuf,
    xgate_config: Option<PathBuf>,
    nginx: PathBuf,
    /// HAProxy, when it is a target.
    haproxy: Option<PathBuf>,
    loadgen: PathBuf,
    wrk: Option<PathBuf>,
    reps: u32,
    duration: u64,
    warmup: u64,
    lab_duration: u64,
    lab_warmup: u64,
    client_gro: bool,
    targets: Vec<Target>,
    scenarios: Vec<Scenario>,
    networks: Vec<Network>,
    server_core: usize,
    client_core: usize,
    /// The proxy comparison's origin's CPU; `None` in the gateway comparison (no origin).
    origin_core: Option<usize>,
    /// The HTTPS comparison ([`https`]): every scenario is an HTTPS one.
    https: bool,
    work: PathBuf,
}

impl Plan {
    /// Whether this is the proxy comparison.
    fn proxy(&self) -> bool {
        self.origin_core.is_some()
    }
}

fn plan(args: &CompareArgs) -> Result<Plan, CompareError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(CompareError::Setup(
            "loadgen compare must run as root (network namespaces, XDP, nginx on a pinned core)"
                .into(),
        ));
    }
    let me =
        std::env::current_exe().map_err(|e| CompareError::io(Path::new("/proc/self/exe"), e))?;
    let xgate = find_xgate(args.xgate.as_deref(), &me)?;
    let nginx = servers::find_program(&args.nginx.to_string_lossy()).ok_or_else(|| {
        CompareError::Setup(format!(
            "nginx not found ({}): install it (scripts/setup.sh does) or pass --nginx",
            args.nginx.display()
        ))
    })?;
    let scenarios: Vec<Scenario> = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        let mut v = Vec::new();
        for name in &args.scenarios {
            let family = Scenario::parse_family(name).ok_or_else(|| {
                CompareError::Setup(format!(
                    "unknown scenario {name:?} (keep-alive, churn, open-loop, echo-1k, bytes-16k; proxy-get, proxy-post-1k, proxy-get-64k, proxy; https-get, https-post-1k, https-full-handshake, https-resumed-handshake, https)"
                ))
            })?;
            for s in family {
                if !v.contains(&s) {
                    v.push(s);
                }
            }
        }
        v.sort();
        v
    };
    let proxy = proxy::is_proxy_run(&scenarios).map_err(CompareError::Setup)?;
    let https = https::is_https_run(&scenarios).map_err(CompareError::Setup)?;
    if https && args.networks.iter().any(|n| n != "lab") {
        return Err(CompareError::Setup(
            "the HTTPS scenarios run in the lab only (--network lab): their figure is the server core's CPU per request".into(),
        ));
    }
    let targets: Vec<Target> = if args.targets.is_empty() && proxy {
        Target::PROXY.to_vec()
    } else if args.targets.is_empty() {
        Target::ALL.to_vec()
    } else {
        let mut v = Vec::new();
        for name in &args.targets {
            let t = Target::parse(name).ok_or_else(|| {
                CompareError::Setup(format!(
                    "unknown target {name:?} (xgate-bypass, xgate-kernel, nginx, haproxy)"
                ))
            })?;
            if t == Target::Haproxy && !proxy {
                return Err(CompareError::Setup(
                    "haproxy is measured as a proxy only: with `--scenario proxy`".into(),
                ));
            }
            if !v.contains(&t) {
                v.push(t);
            }
        }
        v.sort();
        v
    };
    if !proxy && targets.contains(&Target::Nginx) && !Path::new(servers::NJS_MODULE).exists() {
        return Err(CompareError::Setup(format!(
            "{} is missing: nginx answers POST /echo with njs; install libnginx-mod-http-js (scripts/setup.sh does)",
            servers::NJS_MODULE
        )));
    }
    let haproxy = if targets.contains(&Target::Haproxy) {
        Some(
            servers::find_program(&args.haproxy.to_string_lossy()).ok_or_else(|| {
                CompareError::Setup(format!(
                    "haproxy not found ({}): install it (scripts/setup.sh does) or pass --haproxy",
                    args.haproxy.display()
                ))
            })?,
        )
    } else {
        None
    };
    if args.client_gro == "off" && args.networks.iter().any(|n| n == "lab") {
        return Err(CompareError::Setup(
            "--client-gro off: the lab needs the client's GRO (its NAPI comes with it)".into(),
        ));
    }
    let networks: Vec<Network> = if https {
        vec![Network::Lab]
    } else if args.networks.is_empty() && args.client_gro == "off" {
        vec![Network::Veth]
    } else if args.networks.is_empty() {
        Network::ALL.to_vec()
    } else {
        let mut v = Vec::new();
        for name in &args.networks {
            let n = Network::parse(name).ok_or_else(|| {
                CompareError::Setup(format!("unknown network {name:?} (veth, lab)"))
            })?;
            if !v.contains(&n) {
                v.push(n);
            }
        }
        v
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (what, c) in [
        ("--server-core", args.server_core),
        ("--client-core", args.client_core),
    ] {
        if c >= cpus {
            return Err(CompareError::Setup(format!(
                "{what} {c}: this machine has CPUs 0..{}",
                cpus - 1
            )));
        }
    }
    if args.server_core == args.client_core && cpus > 1 {
        return Err(CompareError::Setup(
            "--server-core and --client-core are the same CPU".into(),
        ));
    }
    let origin_core = if proxy {
        Some(
            pick_origin_core(args.origin_core, cpus, (args.server_core, args.client_core))
                .map_err(CompareError::Setup)?,
        )
    } else {
        None
    };
    let (reps, duration, warmup, lab_duration, lab_warmup) = if args.quick {
        (1, 2, 1, 2, 1)
    } else {
        (
            args.reps,
            args.duration,
            args.warmup,
            args.lab_duration,
            args.lab_warmup,
        )
    };
    let work = std::env::temp_dir().join(format!("loadgen-compare-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| CompareError::io(&work, e))?;
    if let Some(c) = &args.xgate_config {
        if !c.is_file() {
            return Err(CompareError::Setup(format!(
                "--xgate-config {}: no such file",
                c.display()
            )));
        }
    }
    Ok(Plan {
        xgate,
        xgate_config: args.xgate_config.clone(),
        nginx,
        haproxy,
        loadgen: me,
        wrk: if args.no_wrk {
            None
        } else {
            servers::find_program("wrk")
        },
        reps,
        duration,
        warmup,
        lab_duration,
        lab_warmup,
        client_gro: args.client_gro == "on",
        targets,
        scenarios,
        networks,
        server_core: args.server_core,
        client_core: args.client_core,
        origin_core,
        https,
        work,
    })
}

/// The xgate binary: the one given, else the one beside `me` (this loadgen), else in PATH.
pub(crate) fn find_xgate(given: Option<&Path>, me: &Path) -> Result<PathBuf, CompareError> {
    match given {
        Some(p) => servers::find_program(&p.to_string_lossy()),
        None => me
            .parent()
            .map(|d| d.join("xgate"))
            .filter(|p| p.is_file())
            .or_else(|| servers::find_program("xgate")),
    }
    .ok_or_else(|| {
        CompareError::Setup(
            "xgate binary not found: build it (`cargo build --release -p dataplane`) or pass --xgate".into(),
        )
    })
}

/// The origin's CPU: the one asked for, or the first that is neither the server's nor the
/// client's, else the client's (2 CPUs); never the server's, whose time per request must be
/// the proxy's alone.
fn pick_origin_core(
    asked: Option<usize>,
    cpus: usize,
    (server, client): (usize, usize),
) -> Result<usize, String> {
    match asked {
        Some(c) if c >= cpus => Err(format!(
            "--origin-core {c}: this machine has CPUs 0..{}",
            cpus - 1
        )),
        Some(c) if c == server && cpus > 1 => Err(format!(
            "--origin-core {c} is the server's CPU: the origin's work would count as the proxy's"
        )),
        Some(c) => Ok(c),
        None => Ok((0..cpus)
            .find(|&c| c != server && c != client)
            .unwrap_or(client)),
    }
}

/// Removes the work directory (nginx's files, logs) at the end.
pub(crate) struct WorkDir(pub(crate) PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether these arguments ask for the HTTPS comparison ([`https::compare_https`]), which
/// writes a summary of its own.
pub fn wants_https(args: &CompareArgs) -> bool {
    args.scenarios
        .iter()
        .filter_map(|n| Scenario::parse_family(n))
        .flatten()
        .any(Scenario::is_https)
}

/// Runs the comparison on each network and writes the results; returns each network's record
/// and the files written for it.
pub fn compare(args: &CompareArgs) -> Result<Vec<(RunRecord, Vec<PathBuf>)>, CompareError> {
    install_signal_handlers();
    let plan = plan(args)?;
    let _work = WorkDir(plan.work.clone());
    // Read now: the tree may change while the run goes on; the binaries were built before.
    let commit = git_commit();
    let mut done = Vec::new();
    for &network in &plan.networks {
        let record = match network {
            Network::Veth => compare_veth(&plan, args.rate, &commit)?,
            Network::Lab => lab::compare_lab(&plan, &commit)?,
        };
        let files = write_results(&args.out, &record)?;
        done.push((record, files));
    }
    Ok(done)
}

/// The record's common part: the machine, the commit and the configuration.
fn record_for(
    plan: &Plan,
    network: Network,
    started: String,
    commit: &str,
    topology: report::TopologyRecord,
    (open_loop_rate, open_loop_rate_from): (u64, String),
) -> RunRecord {
    RunRecord {
        schema: 1,
        started_utc: started,
        commit: commit.to_string(),
        machine: MachineInfo::read(),
        config: RunConfig {
            network,
            reps: plan.reps,
            duration_secs: plan.duration,
            warmup_secs: plan.warmup,
            server_core: plan.server_core,
            client_core: plan.client_core,
            open_loop_rate,
            open_loop_rate_from,
            targets: plan.targets.clone(),
            scenarios: plan.scenarios.clone(),
            xgate: plan.xgate.display().to_string(),
            xgate_config: plan
                .xgate_config
                .as_ref()
                .map(|c| std::fs::read_to_string(c).unwrap_or_default()),
            nginx: plan.nginx.display().to_string(),
            haproxy: plan.haproxy.as_ref().map(|h| h.display().to_string()),
            origin_core: plan.origin_core,
            command_line: command_line(),
            topology: Some(topology),
            lab_rates: Vec::new(),
        },
        measurements: Vec::new(),
        wrk: Vec::new(),
    }
}

/// The end-to-end comparison on the plain veth pair: every scenario closed-loop, the
/// open-loop one at one rate, wrk beside loadgen.
fn compare_veth(plan: &Plan, rate: Option<u64>, commit: &str) -> Result<RunRecord, CompareError> {
    let load_before = load_average();
    let started = utc_now();
    let topo = Topology::with_client_gro(
        Network::Veth,
        (plan.server_core, plan.client_core),
        plan.client_gro,
    )?;
    let topology = topo.record()?;
    eprintln!(
        "loadgen compare (veth): {} target(s) x {} scenario(s) x {} rep(s) of {} s; netns {} / {}",
        plan.targets.len(),
        plan.scenarios.len(),
        plan.reps,
        plan.duration,
        topo.client_ns,
        topo.server_ns
    );

    let origin = start_origin(plan, &topo)?;
    let origin_pid = origin.as_ref().map(Server::pid);
    let (rate, rate_from) = match rate {
        Some(r) => (r.max(1), "given on the command line".to_string()),
        None if plan.scenarios.contains(&Scenario::OpenLoop) => calibrate_rate(plan, &topo)?,
        None => (0, "not used".into()),
    };

    let mut measurements = Vec::new();
    let mut wrk_checks = Vec::new();
    for rep in 0..plan.reps {
        let mut groups = server_groups(&plan.targets);
        if rep % 2 == 1 {
            groups.reverse();
        }
        for group in groups {
            let server = start_group(plan, &topo, group[0])?;
            for &target in &group {
                for &scenario in &plan.scenarios {
                    check_interrupted()?;
                    let run = Run {
                        target,
                        scenario,
                        rep,
                        offered: Offered::open_loop_scenario(scenario, rate),
                        server_pid: server.pid(),
                        origin_pid,
                    };
                    let m = measure(plan, &topo, &run, load_before)?;
                    print_measurement(&m);
                    let loadgen = (m.client.throughput_rps, m.client.client_cpu_us_per_request);
                    measurements.push(m);
                    if let (Some(wrk), Some(path), true) =
                        (&plan.wrk, scenario.wrk_path(), target.is_xgate())
                    {
                        let run = WrkRun {
                            wrk,
                            target,
                            scenario,
                            path,
                            rep,
                        };
                        wrk_checks.push(wrk_check(plan, &topo, &run, loadgen)?);
                    }
                }
            }
            let what = server.what();
            if !server.stop(Duration::from_secs(15)) {
                eprintln!("  {what} did not stop on SIGTERM within 15 s; killed");
            }
        }
    }
    drop(origin);
    drop(topo);

    let mut record = record_for(
        plan,
        Network::Veth,
        started,
        commit,
        topology,
        (rate, rate_from),
    );
    record.measurements = measurements;
    record.wrk = wrk_checks;
    Ok(record)
}

/// One line of progress on stderr.
fn print_measurement(m: &Measurement) {
    let load = match m.offered {
        Some(o) => format!("{} {}/s", o.level.name(), o.rate),
        None => "closed".into(),
    };
    eprintln!(
        "  rep {} {:<18} {:<10} {:<14} {:>9.0} req/s  p99 {:>8.0} µs  server core {:>6.1} µs/req  machine {:>6.1} µs/req  errors {}",
        m.rep,
        m.target.name(),
        m.scenario.name(),
        load,
        m.client.throughput_rps,
        m.client.latency_us.p99,
        m.server_core_us_per_request,
        m.cpu_us_per_request,
        m.client.errors
    );
}

/// Targets served by one process go together: xgate serves both of its paths at once.
pub(crate) fn server_groups(targets: &[Target]) -> Vec<Vec<Target>> {
    let xgate: Vec<Target> = targets.iter().copied().filter(|t| t.is_xgate()).collect();
    let mut groups = Vec::new();
    if !xgate.is_empty() {
        groups.push(xgate);
    }
    for &t in targets {
        if !t.is_xgate() {
            groups.push(vec![t]);
        }
    }
    groups
}

pub(crate) fn start_group(
    plan: &Plan,
    topo: &Topology,
    first: Target,
) -> Result<Server, CompareError> {
    let fresh_dir = |name: &str| -> Result<PathBuf, CompareError> {
        let dir = plan.work.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| CompareError::io(&dir, e))?;
        Ok(dir)
    };
    match first {
        Target::Nginx if plan.proxy() => {
            proxy::start_nginx_proxy(&plan.nginx, topo, plan.server_core, &fresh_dir("nginx")?)
        }
        Target::Nginx => servers::start_nginx(
            &plan.nginx,
            topo,
            plan.server_core,
            &fresh_dir("nginx")?,
            Scenario::byte_sizes(),
        ),
        Target::Haproxy => {
            let haproxy = plan.haproxy.as_deref().ok_or_else(|| {
                CompareError::Setup("haproxy is a target but was not found".into())
            })?;
            proxy::start_haproxy(haproxy, topo, plan.server_core, &fresh_dir("haproxy")?)
        }
        Target::XgateBypass | Target::XgateKernel if plan.proxy() => {
            let user = match &plan.xgate_config {
                Some(c) => Some(std::fs::read_to_string(c).map_err(|e| CompareError::io(c, e))?),
                None => None,
            };
            let config = plan.work.join("xgate-proxy.toml");
            std::fs::write(&config, proxy::xgate_config(user.as_deref()))
                .map_err(|e| CompareError::io(&config, e))?;
            let log = plan.work.join("xgate.log");
            let mut server =
                servers::start_xgate(&plan.xgate, Some(&config), topo, plan.server_core, &log)?;
            for t in [Target::XgateBypass, Target::XgateKernel] {
                proxy::wait_forwarding(&mut server, topo, t, std::slice::from_ref(&log))?;
            }
            Ok(server)
        }
        Target::XgateBypass | Target::XgateKernel => servers::start_xgate(
            &plan.xgate,
            plan.xgate_config.as_deref(),
            topo,
            plan.server_core,
            &plan.work.join("xgate.log"),
        ),
    }
}

/// The proxy comparison's origin ([`proxy`]), pinned to its core; `None` in the gateway
/// comparison.
pub(crate) fn start_origin(plan: &Plan, topo: &Topology) -> Result<Option<Server>, CompareError> {
    let Some(core) = plan.origin_core else {
        return Ok(None);
    };
    let dir = plan.work.join("origin");
    let _ = std::fs::remove_dir_all(&dir);
    proxy::start_origin(&plan.nginx, topo, core, &dir).map(Some)
}

/// Half the slowest target's keep-alive throughput (3 s each), rounded down to a multiple of
/// 500, at least 500.
fn calibrate_rate(plan: &Plan, topo: &Topology) -> Result<(u64, String), CompareError> {
    let mut slowest: Option<(Target, f64)> = None;
    for group in server_groups(&plan.targets) {
        let server = start_group(plan, topo, group[0])?;
        for &t in &group {
            check_interrupted()?;
            let f = client_run(plan, topo, t, Scenario::KeepAlive, None, 3)?.0;
            eprintln!(
                "  calibration: {:<18} {:>9.0} req/s keep-alive",
                t.name(),
                f.throughput_rps
            );
            if slowest.is_none_or(|(_, r)| f.throughput_rps < r) {
                slowest = Some((t, f.throughput_rps));
            }
        }
        server.stop(Duration::from_secs(15));
    }
    let (t, r) = slowest.ok_or_else(|| CompareError::Setup("no target to calibrate".into()))?;
    let rate = (((r / 2.0) as u64) / 500 * 500).max(500);
    Ok((
        rate,
        format!(
            "half the slowest target's keep-alive throughput in a 3 s calibration run ({}: {:.0} req/s)",
            t.name(),
            r
        ),
    ))
}

/// What one measured run is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub target: Target,
    pub scenario: Scenario,
    pub rep: u32,
    /// The open-loop rate, `None` for a closed loop.
    pub offered: Option<Offered>,
    /// The server's process (its descendants, nginx's workers, count as the server too).
    pub server_pid: u32,
    /// The proxy scenarios' origin's process (with its workers), counted apart.
    pub origin_pid: Option<u32>,
}

/// Warm-up, then the measured run with every thread's CPU time, `/proc/stat` and
/// `/proc/softirqs` read around it.
pub(crate) fn measure(
    plan: &Plan,
    topo: &Topology,
    run: &Run,
    load_before: f64,
) -> Result<Measurement, CompareError> {
    let rate = run.offered.map(|o| o.rate);
    if plan.warmup > 0 {
        client_run(plan, topo, run.target, run.scenario, rate, plan.warmup)?;
    }
    let before = CpuSample::read().map_err(|e| CompareError::io(Path::new("/proc/stat"), e))?;
    let softirqs_before = SoftirqCounts::read();
    let threads_before = ThreadSample::read();
    let (client, command) = client_run(plan, topo, run.target, run.scenario, rate, plan.duration)?;
    let threads_after = ThreadSample::read();
    let softirqs = SoftirqCounts::read().since(&softirqs_before);
    let after = CpuSample::read().map_err(|e| CompareError::io(Path::new("/proc/stat"), e))?;
    let mut cpu = before.busy_since(&after);
    cpu.task_cpu_secs = threads_before.total_secs_until(&threads_after);
    let attribution = Attribution::between(
        &threads_before,
        &threads_after,
        (plan.server_core, plan.client_core),
        (
            &threads_after.process_tree(run.server_pid),
            &run.origin_pid
                .map(|p| threads_after.process_tree(p))
                .unwrap_or_default(),
        ),
        softirqs,
    );
    let per_request = |secs: f64| {
        if client.requests > 0 {
            secs * 1e6 / client.requests as f64
        } else {
            f64::NAN
        }
    };
    Ok(Measurement {
        target: run.target,
        scenario: run.scenario,
        rep: run.rep,
        offered: run.offered,
        cpu_us_per_request: per_request(cpu.task_cpu_secs),
        server_core_us_per_request: per_request(attribution.server.total_secs()),
        client,
        cpu,
        attribution: Some(attribution),
        load_average: load_before,
        command,
    })
}

/// One `loadgen run` in the client namespace; its JSON report and the command line.
pub(crate) fn client_run(
    plan: &Plan,
    topo: &Topology,
    target: Target,
    scenario: Scenario,
    rate: Option<u64>,
    secs: u64,
) -> Result<(ClientFigures, String), CompareError> {
    let load = ClientLoad {
        target,
        scenario,
        rate,
        secs,
    };
    client_run_on(&plan.loadgen, topo, &load, &[plan.client_core])
}

/// What one `loadgen run` in the client namespace puts on which target.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientLoad {
    pub target: Target,
    pub scenario: Scenario,
    /// Open-loop requests/s; `None`: closed loop.
    pub rate: Option<u64>,
    pub secs: u64,
}

/// [`client_run`] with `loadgen` (this binary) as one thread per CPU of `cpus`, thread `i`
/// pinned to `cpus[i]`.
pub(crate) fn client_run_on(
    loadgen: &Path,
    topo: &Topology,
    load: &ClientLoad,
    cpus: &[usize],
) -> Result<(ClientFigures, String), CompareError> {
    let &ClientLoad {
        target,
        scenario,
        rate,
        secs,
    } = load;
    let mut args: Vec<String> = vec!["run".into(), "--addr".into(), target.addr()];
    args.extend(scenario.args(rate));
    let cpu_list: Vec<String> = cpus.iter().map(usize::to_string).collect();
    args.extend([
        "--duration".into(),
        format!("{secs}s"),
        "--threads".into(),
        cpus.len().max(1).to_string(),
        "--cpu".into(),
        cpu_list.join(","),
        "--json".into(),
        "-".into(),
    ]);
    let shown = format!(
        "ip netns exec {} loadgen {}",
        topo.client_ns,
        args.join(" ")
    );
    let err = |message: String| CompareError::Client {
        target: target.name(),
        scenario: scenario.name(),
        message,
    };
    let child = topo
        .in_client(&loadgen.to_string_lossy())
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(e.to_string()))?;
    let out = wait_output(child, Duration::from_secs(secs + 60))?;
    if !out.status.success() {
        return Err(err(format!(
            "exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| err(format!("its JSON report: {e}")))?;
    Ok((figures_from_report(&json).map_err(err)?, shown))
}

/// The client's figures from `loadgen run --json` (schema `xgate-loadgen-run/1`, in loadgen's
/// README).
pub fn figures_from_report(v: &serde_json::Value) -> Result<ClientFigures, String> {
    if v["schema"] != crate::report::SCHEMA {
        return Err(format!("unexpected report schema {}", v["schema"]));
    }
    let num = |path: &[&str]| -> Result<f64, String> {
        let mut x = v;
        for p in path {
            x = &x[*p];
        }
        x.as_f64()
            .ok_or_else(|| format!("no number at {} in the report", path.join(".")))
    };
    let errors_by_kind: std::collections::BTreeMap<String, u64> = v["errors"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, n)| Some((k.clone(), n.as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    let curve = v["latency_distribution"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p["percentile"].as_f64()?, p["latency_us"].as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    let lat = |k: &str| num(&["latency_us", k]);
    Ok(ClientFigures {
        requests: num(&["ok"])? as u64,
        client_cpu_us_per_request: num(&["cpu", "per_request_us"]).unwrap_or(f64::NAN),
        errors: num(&["failed"])? as u64,
        errors_by_kind,
        throughput_rps: num(&["throughput_rps"])?,
        duration_secs: num(&["elapsed_s"])?,
        latency_us: Latency {
            p50: lat("p50")?,
            p90: lat("p90")?,
            p99: lat("p99")?,
            p999: lat("p99_9")?,
            p9999: lat("p99_99")?,
            max: lat("max")?,
            mean: lat("mean")?,
        },
        curve,
        tls: v["tls"].as_object().map(|t| report::ClientTls {
            handshakes_full: t["handshakes_full"].as_u64().unwrap_or(0),
            handshakes_resumed: t["handshakes_resumed"].as_u64().unwrap_or(0),
            negotiated: ["version", "cipher_suite", "kx_group"]
                .iter()
                .filter_map(|k| t["negotiated"][*k].as_str())
                .collect::<Vec<_>>()
                .join(" "),
        }),
    })
}

/// Which wrk run [`wrk_check`] makes.
struct WrkRun<'a> {
    wrk: &'a Path,
    target: Target,
    scenario: Scenario,
    path: &'a str,
    rep: u32,
}

/// wrk with the closed-loop scenarios' shape (1 thread, 64 connections), pinned the same way;
/// prints its line of progress.
fn wrk_check(
    plan: &Plan,
    topo: &Topology,
    run: &WrkRun,
    (loadgen_rps, loadgen_cpu): (f64, f64),
) -> Result<WrkCheck, CompareError> {
    let &WrkRun {
        wrk,
        target,
        scenario,
        path,
        rep,
    } = run;
    let url = format!("http://{}{path}", target.addr());
    let secs = format!("{}s", plan.duration);
    let cpu = plan.client_core.to_string();
    let args = [
        "-c",
        &cpu,
        &wrk.to_string_lossy(),
        "-t1",
        "-c64",
        "-d",
        &secs,
        &url,
    ];
    let shown = format!(
        "ip netns exec {} taskset {}",
        topo.client_ns,
        args.join(" ")
    );
    let child = topo
        .in_client("taskset")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CompareError::Command {
            command: shown.clone(),
            message: e.to_string(),
        })?;
    let cpu_before = machine::children_cpu();
    let out = wait_output(child, Duration::from_secs(plan.duration + 60))?;
    let wrk_cpu = machine::children_cpu().saturating_sub(cpu_before);
    let text = String::from_utf8_lossy(&out.stdout);
    let wrk_rps = parse_wrk_rps(&text).ok_or_else(|| CompareError::Command {
        command: shown.clone(),
        message: format!("no Requests/sec in its output: {}", text.trim()),
    })?;
    eprintln!(
        "  rep {rep} {:<18} wrk {:<10} {:>9.0} req/s  (loadgen / wrk {:.2})",
        target.name(),
        scenario.name(),
        wrk_rps,
        loadgen_rps / wrk_rps
    );
    Ok(WrkCheck {
        target,
        scenario,
        rep,
        wrk_rps,
        loadgen_rps,
        ratio: if wrk_rps > 0.0 {
            loadgen_rps / wrk_rps
        } else {
            f64::NAN
        },
        wrk_cpu_us_per_request: parse_wrk_requests(&text)
            .filter(|&n| n > 0)
            .map_or(f64::NAN, |n| wrk_cpu.as_secs_f64() * 1e6 / n as f64),
        loadgen_cpu_us_per_request: loadgen_cpu,
        command: shown,
    })
}

/// `250000 requests in 5.00s, ...` from wrk's output.
pub fn parse_wrk_requests(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
}

/// `Requests/sec:  12345.67` from wrk's output.
pub fn parse_wrk_rps(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits for a child, killing it (by PID) after `timeout` or on Ctrl-C.
pub(crate) fn wait_output(
    mut child: std::process::Child,
    timeout: Duration,
) -> Result<std::process::Output, CompareError> {
    // Read both pipes on threads so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = std::io::Read::read_to_end(s, &mut b);
        }
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = std::io::Read::read_to_end(s, &mut b);
        }
        b
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child
            .try_wait()
            .map_err(|e| CompareError::Setup(e.to_string()))?
        {
            break st;
        }
        if INTERRUPTED.load(Ordering::Relaxed) || start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            if INTERRUPTED.load(Ordering::Relaxed) {
                return Err(CompareError::Interrupted);
            }
            return Err(CompareError::Setup(format!(
                "a client ran past its time limit ({} s) and was killed",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(std::process::Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    })
}

/// Writes [`RunRecord::files`].
fn write_results(out: &Path, record: &RunRecord) -> Result<Vec<PathBuf>, CompareError> {
    for d in [out.join("runs"), out.join("charts")] {
        std::fs::create_dir_all(&d).map_err(|e| CompareError::io(&d, e))?;
    }
    let mut written = Vec::new();
    for (path, text) in record.files(out) {
        std::fs::write(&path, text).map_err(|e| CompareError::io(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

/// What a subcommand with a summary of its own writes (`loadgen paths`, `flood`, `scaling`).
pub(crate) struct SummaryFiles<'a, T: serde::Serialize> {
    /// The summary's name: `<name>.md`, `runs/<time>-<commit>-<name>.*`, `charts/<name>-*`.
    pub name: &'a str,
    /// When the run started (`YYYY-MM-DDTHH:MM:SSZ`) and the commit it measured.
    pub started_utc: &'a str,
    pub commit: &'a str,
    /// Every figure, as JSON.
    pub record: &'a T,
    pub markdown: String,
    /// (chart name, SVG).
    pub charts: Vec<(String, String)>,
}

impl<T: serde::Serialize> SummaryFiles<'_, T> {
    /// Writes `runs/<time>-<commit>-<name>.json` (the record) and `.md`, the latest summary
    /// `<name>.md` and `charts/<name>-<chart>.svg` under `out`; returns the files written.
    pub fn write(self, out: &Path) -> Result<Vec<PathBuf>, CompareError> {
        let dirs = if self.charts.is_empty() {
            vec![out.join("runs")]
        } else {
            vec![out.join("runs"), out.join("charts")]
        };
        for d in dirs {
            std::fs::create_dir_all(&d).map_err(|e| CompareError::io(&d, e))?;
        }
        let stamp = self.started_utc.replace([':', '-'], "");
        let run = format!("{stamp}-{}-{}", self.commit, self.name);
        let mut files = vec![
            (
                out.join("runs").join(format!("{run}.json")),
                serde_json::to_string_pretty(self.record).expect("plain data") + "\n",
            ),
            (
                out.join("runs").join(format!("{run}.md")),
                self.markdown.clone(),
            ),
            (out.join(format!("{}.md", self.name)), self.markdown),
        ];
        for (chart, svg) in self.charts {
            let file = format!("{}-{chart}.svg", self.name);
            files.push((out.join("charts").join(file), svg));
        }
        let mut written = Vec::new();
        for (path, text) in files {
            std::fs::write(&path, text).map_err(|e| CompareError::io(&path, e))?;
            written.push(path);
        }
        Ok(written)
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn utc_now() -> String {
    utc(std::time::SystemTime::now())
}

/// `t` as `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, whole seconds); a clock before 1970 shows 1970.
fn utc(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t.max(std::time::UNIX_EPOCH)).to_string()
}

/// The commit the binaries were built from (with `-dirty` when the tree has changes).
pub(crate) fn git_commit() -> String {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "--short=10", "HEAD"]) {
        Some(c) => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c}-dirty")
            } else {
                c
            }
        }
        None => "unknown".into(),
    }
}

pub(crate) fn command_line() -> String {
    let mut args = std::env::args();
    let _ = args.next();
    std::iter::once("loadgen".to_string())
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_parsed() {
        let out = "Running 5s test @ http://10.0.0.1:80/health\n  1 threads and 64 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     1.20ms  300.00us   5.00ms   90.00%\n  250000 requests in 5.00s, 30.00MB read\nRequests/sec:  49999.87\nTransfer/sec:      6.00MB\n";
        assert_eq!(parse_wrk_rps(out), Some(49999.87));
        assert_eq!(parse_wrk_requests(out), Some(250000));
        assert_eq!(parse_wrk_rps("nothing"), None);
    }

    #[test]
    fn dates_are_civil() {
        let day = |d: u64, s: u64| std::time::UNIX_EPOCH + Duration::from_secs(d * 86_400 + s);
        assert_eq!(utc(day(0, 0)), "1970-01-01T00:00:00Z");
        assert_eq!(utc(day(20_414, 0)), "2025-11-22T00:00:00Z");
        assert_eq!(utc(day(11_016, 0)), "2000-02-29T00:00:00Z");
        assert_eq!(utc(day(20_414, 86_399)), "2025-11-22T23:59:59Z");
        let before = std::time::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(utc(before), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn the_origin_never_runs_on_the_server_s_core() {
        assert_eq!(pick_origin_core(None, 2, (1, 0)), Ok(0));
        assert_eq!(pick_origin_core(None, 4, (1, 0)), Ok(2));
        assert_eq!(pick_origin_core(None, 4, (0, 2)), Ok(1));
        assert_eq!(pick_origin_core(Some(3), 4, (1, 0)), Ok(3));
        assert!(pick_origin_core(Some(1), 4, (1, 0)).is_err());
        assert!(pick_origin_core(Some(4), 4, (1, 0)).is_err());
        // One CPU: everything shares it.
        assert_eq!(pick_origin_core(None, 1, (0, 0)), Ok(0));
    }

    #[test]
    fn each_proxy_has_its_own_server() {
        assert_eq!(
            server_groups(&Target::PROXY),
            vec![
                vec![Target::XgateBypass, Target::XgateKernel],
                vec![Target::Nginx],
                vec![Target::Haproxy]
            ]
        );
    }

    #[test]
    fn xgate_targets_share_a_server_and_nginx_has_its_own() {
        assert_eq!(
            server_groups(&Target::ALL),
            vec![
                vec![Target::XgateBypass, Target::XgateKernel],
                vec![Target::Nginx]
            ]
        );
        assert_eq!(server_groups(&[Target::Nginx]), vec![vec![Target::Nginx]]);
    }
}
