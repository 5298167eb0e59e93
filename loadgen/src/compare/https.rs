//! The HTTPS comparison (issue 16's performance goal): xgate's bypass path and kernel path
//! against nginx with OpenSSL, each terminating TLS on the server's core with the same
//! certificate, side by side in one run on the lab network (each side's core pays for its own
//! network receive, so the server core's time is the server's alone).
//!
//! - **The certificate**: one ECDSA P-256 certificate for [`SERVER_NAME`], made at run time by
//!   the `openssl` command line in the run's work directory (removed at the end); no key is
//!   ever written to the tree.
//! - **xgate**: the gateway comparison's `xgate run` (bypass port 18080, kernel-path port
//!   18081, its poller and kernel-path thread pinned to the server's core) with both ports
//!   `tls = true` and the certificate in `[[tls.certificate]]`, appended to `--xgate-config`'s
//!   text; its TLS defaults otherwise (stateless tickets and a session cache).
//! - **nginx**: the gateway comparison's nginx (one worker pinned to the server's core, access
//!   log off, unlimited keep-alive) with `listen ... ssl` and nginx's documented HTTPS settings
//!   (`super::servers::NginxTls`: shared session cache, session tickets, HTTP/1.1 only).
//! - **The client**: `loadgen run` on the client's core, TLS 1.3 with X25519 (offered alone:
//!   nginx's OpenSSL 3.0 has no X25519MLKEM768, and every server must do the same work), no
//!   verification on the client's core (`--tls-insecure`; the servers still sign).
//!
//! Scenarios ([`Scenario::HTTPS`]): keep-alive `GET /health` and `POST /echo` of 1 KiB (64
//! connections), and a new connection per request (32 at a time) with a full handshake each,
//! or resuming with the tickets of earlier connections. Each runs closed-loop on every target,
//! the repetitions interleaved (the servers' order alternates), and the figure is the server
//! core's CPU time per request (per handshake, for the last two), as in the lab comparison.
//!
//! Then, when `perf` is installed, one more run of each scenario on each target under `perf
//! record -e cpu-clock` on the server's core (software sampling: this VM has no hardware
//! counters), kept apart from the measured runs so that sampling costs them nothing. Its
//! samples are split into the cryptography (OpenSSL's libcrypto; aws-lc, rustls' provider,
//! its `aws_lc`-prefixed symbols and its assembly's own names), the TLS protocol (libssl; rustls), the
//! kernel and the rest: the share of the server core's busy time the cryptography takes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Serialize;

use super::machine::{load_average, MachineInfo};
use super::report::{Measurement, Spread, TopologyRecord};
use super::scenarios::Scenario;
use super::servers::{self, NginxTls, Server, Target, BYPASS_PORT, KERNEL_PORT};
use super::topology::{Network, Topology};
use super::{
    check_interrupted, client_run, command_line, git_commit, install_signal_handlers, measure,
    plan, print_measurement, server_groups, utc_now, wait_output, CompareArgs, CompareError, Plan,
    Run, SummaryFiles, WorkDir,
};

/// The name the certificate is for, sent as SNI by the client.
pub const SERVER_NAME: &str = "xgate.bench";

/// Issue 16's goals: keep-alive HTTPS at most this share of nginx's server-core CPU per
/// request ...
pub const GOAL_CPU_RATIO: f64 = 0.6;
/// ... and at least this multiple of its throughput; handshakes at least nginx's rate.
pub const GOAL_THROUGHPUT_RATIO: f64 = 1.5;
pub const GOAL_HANDSHAKE_RATIO: f64 = 1.0;

/// Whether a run of these scenarios is the HTTPS comparison (every scenario an HTTPS one) or
/// not (none); a mix is refused: the servers are started differently and each comparison
/// writes its own summary.
pub fn is_https_run(scenarios: &[Scenario]) -> Result<bool, String> {
    let https = scenarios.iter().filter(|s| s.is_https()).count();
    match (https, scenarios.len() - https) {
        (0, _) => Ok(false),
        (_, 0) => Ok(true),
        _ => Err(
            "the HTTPS scenarios run on their own (`--scenario https`, or https-* by name): \
             their servers terminate TLS and they write their own summary (https-lab.md)"
                .into(),
        ),
    }
}

/// Where the samples of one profiled run went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub target: Target,
    pub scenario: Scenario,
    /// Samples on the server's core, busy (not the idle task) and in all.
    pub samples_busy: f64,
    pub samples: f64,
    /// Shares of the busy samples.
    pub crypto_share: f64,
    pub tls_protocol_share: f64,
    pub kernel_share: f64,
    pub other_share: f64,
    /// The busiest symbols: (share of the busy samples, `comm dso symbol`), at most ten.
    pub top: Vec<(f64, String)>,
    /// The profiled run's throughput (requests/s).
    pub throughput_rps: f64,
}

/// Every figure of one HTTPS comparison.
#[derive(Debug, Clone, Serialize)]
pub struct HttpsRecord {
    pub schema: u32,
    pub started_utc: String,
    pub commit: String,
    pub machine: MachineInfo,
    pub command_line: String,
    pub server_core: usize,
    pub client_core: usize,
    pub reps: u32,
    pub duration_secs: u64,
    pub warmup_secs: u64,
    pub targets: Vec<Target>,
    pub scenarios: Vec<Scenario>,
    /// How the certificate was made.
    pub certificate: String,
    /// What xgate's configuration added, and nginx's TLS lines.
    pub xgate_tls_config: String,
    pub nginx_tls_config: String,
    pub topology: TopologyRecord,
    pub measurements: Vec<Measurement>,
    pub profiles: Vec<Profile>,
    /// Why there are no profiles, if there are none.
    pub profile_note: Option<String>,
}

/// Runs the HTTPS comparison (module doc) and writes `https-lab.md`,
/// `runs/<time>-<commit>-https-lab.{json,md}`.
pub fn compare_https(args: &CompareArgs) -> Result<(HttpsRecord, Vec<PathBuf>), CompareError> {
    install_signal_handlers();
    let plan = plan(args)?;
    if !plan.https {
        return Err(CompareError::Setup(
            "compare_https needs the HTTPS scenarios".into(),
        ));
    }
    let _work = WorkDir(plan.work.clone());
    let commit = git_commit();
    let plan = &Plan {
        duration: plan.lab_duration,
        warmup: plan.lab_warmup,
        ..plan
    };
    let record = run(plan, &commit)?;
    let files = SummaryFiles {
        name: "https-lab",
        started_utc: &record.started_utc,
        commit: &record.commit,
        record: &record,
        markdown: markdown(&record),
        charts: Vec::new(),
    }
    .write(&args.out)?;
    Ok((record, files))
}

fn run(plan: &Plan, commit: &str) -> Result<HttpsRecord, CompareError> {
    let load_before = load_average();
    let started = utc_now();
    let (cert, certificate) = make_certificate(&plan.work)?;
    let xgate_tls = xgate_tls_config(&cert);
    let user = match &plan.xgate_config {
        Some(c) => Some(std::fs::read_to_string(c).map_err(|e| CompareError::io(c, e))?),
        None => None,
    };
    let xgate_config = plan.work.join("xgate-https.toml");
    let text = match &user {
        Some(u) => format!("{u}\n{xgate_tls}"),
        None => xgate_tls.clone(),
    };
    std::fs::write(&xgate_config, text).map_err(|e| CompareError::io(&xgate_config, e))?;
    let topo = Topology::create(Network::Lab, (plan.server_core, plan.client_core))?;
    let topology = topo.record()?;
    eprintln!(
        "loadgen compare (HTTPS, lab): {} target(s) x {} scenario(s) x {} rep(s) of {} s; netns {} / {}",
        plan.targets.len(),
        plan.scenarios.len(),
        plan.reps,
        plan.duration,
        topo.client_ns,
        topo.server_ns
    );
    let start = |first: Target| start_server(plan, &topo, first, &cert, &xgate_config);

    let mut measurements = Vec::new();
    for rep in 0..plan.reps {
        let mut groups = server_groups(&plan.targets);
        if rep % 2 == 1 {
            groups.reverse();
        }
        for group in groups {
            let server = start(group[0])?;
            for &target in &group {
                for &scenario in &plan.scenarios {
                    check_interrupted()?;
                    let run = Run {
                        target,
                        scenario,
                        rep,
                        offered: None,
                        server_pid: server.pid(),
                        origin_pid: None,
                    };
                    let m = measure(plan, &topo, &run, load_before)?;
                    print_measurement(&m);
                    measurements.push(m);
                }
            }
            stop(server);
        }
    }

    let mut profiles = Vec::new();
    let profile_note = match servers::find_program("perf") {
        None => Some("perf is not installed: no attribution of the server core's time".into()),
        Some(perf) => {
            for group in server_groups(&plan.targets) {
                let server = start(group[0])?;
                for &target in &group {
                    for &scenario in &plan.scenarios {
                        check_interrupted()?;
                        let p = profile(plan, &topo, &perf, target, scenario)?;
                        eprintln!(
                            "  profile {:<18} {:<24} crypto {:>5.1}%  TLS {:>5.1}%  kernel {:>5.1}%  of {:.0} busy samples",
                            target.name(),
                            scenario.name(),
                            p.crypto_share * 100.0,
                            p.tls_protocol_share * 100.0,
                            p.kernel_share * 100.0,
                            p.samples_busy
                        );
                        profiles.push(p);
                    }
                }
                stop(server);
            }
            None
        }
    };
    drop(topo);
    Ok(HttpsRecord {
        schema: 1,
        started_utc: started,
        commit: commit.to_string(),
        machine: MachineInfo::read(),
        command_line: command_line(),
        server_core: plan.server_core,
        client_core: plan.client_core,
        reps: plan.reps,
        duration_secs: plan.duration,
        warmup_secs: plan.warmup,
        targets: plan.targets.clone(),
        scenarios: plan.scenarios.clone(),
        certificate,
        xgate_tls_config: xgate_tls,
        nginx_tls_config: nginx_tls_lines(&cert),
        topology,
        measurements,
        profiles,
        profile_note,
    })
}

fn stop(server: Server) {
    let what = server.what();
    if !server.stop(Duration::from_secs(15)) {
        eprintln!("  {what} did not stop on SIGTERM within 15 s; killed");
    }
}

/// The certificate and key files.
struct Cert {
    cert: PathBuf,
    key: PathBuf,
}

/// One self-signed ECDSA P-256 certificate for [`SERVER_NAME`], by the openssl command line.
fn make_certificate(work: &Path) -> Result<(Cert, String), CompareError> {
    let cert = Cert {
        cert: work.join("https-cert.pem"),
        key: work.join("https-key.pem"),
    };
    let args = [
        "req",
        "-x509",
        "-nodes",
        "-days",
        "2",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-subj",
        &format!("/CN={SERVER_NAME}"),
        "-addext",
        &format!("subjectAltName=DNS:{SERVER_NAME}"),
    ];
    let shown = format!("openssl {} -keyout KEY -out CERT", args.join(" "));
    let out = Command::new("openssl")
        .args(args)
        .arg("-keyout")
        .arg(&cert.key)
        .arg("-out")
        .arg(&cert.cert)
        .output()
        .map_err(|e| CompareError::Command {
            command: shown.clone(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(CompareError::Command {
            command: shown,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok((cert, shown))
}

/// What xgate's configuration gets: both ports with TLS, the certificate as the default.
fn xgate_tls_config(cert: &Cert) -> String {
    format!(
        r#"
# loadgen compare: the HTTPS scenarios (loadgen/src/compare/https.rs).
[[ports]]
port = {BYPASS_PORT}
bypass = true
tls = true

[[ports]]
port = {KERNEL_PORT}
tls = true

[[tls.certificate]]
cert = "{}"
key = "{}"
server_names = ["{SERVER_NAME}"]
default = true
"#,
        cert.cert.display(),
        cert.key.display()
    )
}

fn nginx_tls_lines(cert: &Cert) -> String {
    servers::nginx_tls_text(&NginxTls {
        cert: cert.cert.clone(),
        key: cert.key.clone(),
    })
}

/// Starts the server of `first`'s group with HTTPS; returns once every target of it answers.
fn start_server(
    plan: &Plan,
    topo: &Topology,
    first: Target,
    cert: &Cert,
    xgate_config: &Path,
) -> Result<Server, CompareError> {
    match first {
        Target::Nginx => {
            let dir = plan.work.join("nginx");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(|e| CompareError::io(&dir, e))?;
            let tls = NginxTls {
                cert: cert.cert.clone(),
                key: cert.key.clone(),
            };
            servers::start_nginx_with(
                &plan.nginx,
                topo,
                plan.server_core,
                &dir,
                Scenario::byte_sizes(),
                Some(&tls),
            )
        }
        Target::XgateBypass | Target::XgateKernel => {
            let log = plan.work.join("xgate.log");
            let mut server = servers::start_xgate(
                &plan.xgate,
                Some(xgate_config),
                topo,
                plan.server_core,
                &log,
            )?;
            for t in [Target::XgateBypass, Target::XgateKernel] {
                let url = format!("https://{}/health", t.addr());
                servers::wait_answering(
                    &mut server,
                    || {
                        let mut c = topo.in_client("curl");
                        c.arg("--insecure");
                        c
                    },
                    &url,
                    std::slice::from_ref(&log),
                )?;
            }
            Ok(server)
        }
        Target::Haproxy => Err(CompareError::Setup("HAProxy is not an HTTPS target".into())),
    }
}

/// One run of `scenario` on `target` (after a second of warm-up) under `perf record` on the
/// server's core; where its samples went.
fn profile(
    plan: &Plan,
    topo: &Topology,
    perf: &Path,
    target: Target,
    scenario: Scenario,
) -> Result<Profile, CompareError> {
    client_run(plan, topo, target, scenario, None, 1)?;
    let data = plan
        .work
        .join(format!("perf-{}-{}.data", target.arg(), scenario.name()));
    let core = plan.server_core.to_string();
    let secs = plan.duration.to_string();
    let record_args = ["record", "-e", "cpu-clock", "-F", "1999", "-C", &core, "-o"];
    let perf_err = |message: String| CompareError::Command {
        command: format!("{} record -C {core}", perf.display()),
        message,
    };
    let recorder = Command::new(perf)
        .args(record_args)
        .arg(&data)
        .args(["--", "sleep", &secs])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| perf_err(e.to_string()))?;
    let client = client_run(plan, topo, target, scenario, None, plan.duration);
    let recorded = wait_output(recorder, Duration::from_secs(plan.duration + 60))?;
    let (figures, _) = client?;
    if !recorded.status.success() {
        return Err(perf_err(
            String::from_utf8_lossy(&recorded.stderr).trim().to_string(),
        ));
    }
    let report = Command::new(perf)
        .arg("report")
        .arg("-i")
        .arg(&data)
        .args([
            "--stdio",
            "--no-children",
            "-q",
            "-n",
            "--percent-limit",
            "0",
            "--sort",
            "comm,dso,sym",
            "-F",
            "sample,comm,dso,sym",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| perf_err(e.to_string()))?;
    let report = wait_output(report, Duration::from_secs(300))?;
    let _ = std::fs::remove_file(&data);
    let mut p = split_samples(&String::from_utf8_lossy(&report.stdout), target, scenario);
    p.throughput_rps = figures.throughput_rps;
    Ok(p)
}

/// What a sample is spent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Idle,
    Crypto,
    TlsProtocol,
    Kernel,
    Other,
}

/// Symbols of cryptography linked into a binary without aws-lc's `aws_lc` prefix: its
/// assembly's local labels and the primitives' own names (seen in xgate's profile:
/// `Lcurve25519_x25519_scalarloop`, `ecp_nistz256_ord_sqr_montx`).
const CRYPTO_SYMBOLS: &[&str] = &[
    "aws_lc",
    "curve25519",
    "x25519",
    "nistz256",
    "p256_",
    "ecdsa",
    "sha256_block",
    "sha512_block",
    "aes_gcm",
    "aesni",
    "gcm_",
    "ghash",
    "chacha20",
    "poly1305",
    "bn_mul_mont",
    "bn_sqr",
];

/// Sorts one `perf report` line's sample (`comm`, `dso`, `[.] symbol` / `[k] symbol`).
fn classify(comm: &str, dso: &str, sym: &str) -> Part {
    if comm == "swapper" {
        Part::Idle
    } else if dso.starts_with("libcrypto")
        || (!dso.starts_with("[kernel") && CRYPTO_SYMBOLS.iter().any(|c| sym.contains(c)))
    {
        Part::Crypto
    } else if dso.starts_with("libssl") || sym.contains("rustls::") {
        Part::TlsProtocol
    } else if dso.starts_with("[kernel") {
        Part::Kernel
    } else {
        Part::Other
    }
}

/// `perf report -n -F sample,comm,dso,sym` lines summed by [`Part`].
fn split_samples(text: &str, target: Target, scenario: Scenario) -> Profile {
    let mut p = Profile {
        target,
        scenario,
        samples_busy: 0.0,
        samples: 0.0,
        crypto_share: f64::NAN,
        tls_protocol_share: f64::NAN,
        kernel_share: f64::NAN,
        other_share: f64::NAN,
        top: Vec::new(),
        throughput_rps: f64::NAN,
    };
    let mut by_part = [0.0f64; 5];
    let mut lines: Vec<(f64, String)> = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(n), Some(comm), Some(dso)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<f64>() else { continue };
        let sym: Vec<&str> = f.filter(|w| *w != "[.]" && *w != "[k]").collect();
        let sym = sym.join(" ");
        let part = classify(comm, dso, &sym);
        by_part[part as usize] += n;
        p.samples += n;
        if part != Part::Idle {
            lines.push((n, format!("{comm} {dso} {sym}")));
        }
    }
    let busy: f64 = by_part[1..].iter().sum();
    p.samples_busy = busy;
    let share = |x: f64| if busy > 0.0 { x / busy } else { f64::NAN };
    p.crypto_share = share(by_part[Part::Crypto as usize]);
    p.tls_protocol_share = share(by_part[Part::TlsProtocol as usize]);
    p.kernel_share = share(by_part[Part::Kernel as usize]);
    p.other_share = share(by_part[Part::Other as usize]);
    lines.sort_by(|a, b| b.0.total_cmp(&a.0));
    p.top = lines
        .into_iter()
        .take(10)
        .map(|(n, what)| (share(n), what))
        .collect();
    p
}

/// The runs of one target and scenario.
fn runs(r: &HttpsRecord, target: Target, scenario: Scenario) -> impl Iterator<Item = &Measurement> {
    r.measurements
        .iter()
        .filter(move |m| m.target == target && m.scenario == scenario)
}

/// Median figures of one target and scenario.
#[derive(Debug, Clone, Copy)]
struct Row {
    rps: Spread,
    server_us: Spread,
    /// Busy share of the server's core and of the client's during the run.
    server_busy: f64,
    client_busy: f64,
    errors: u64,
    full: u64,
    resumed: u64,
}

fn row(r: &HttpsRecord, target: Target, scenario: Scenario) -> Option<Row> {
    let rps = Spread::of(runs(r, target, scenario).map(|m| m.client.throughput_rps))?;
    let server_us = Spread::of(runs(r, target, scenario).map(|m| m.server_core_us_per_request))?;
    let busy = |side: fn(&super::attribution::Attribution) -> f64| {
        Spread::of(runs(r, target, scenario).filter_map(|m| {
            let a = m.attribution.as_ref()?;
            Some(side(a) / m.client.duration_secs)
        }))
        .map_or(f64::NAN, |s| s.median)
    };
    Some(Row {
        rps,
        server_us,
        server_busy: busy(|a| a.server.total_secs()),
        client_busy: busy(|a| a.client.total_secs()),
        errors: runs(r, target, scenario).map(|m| m.client.errors).sum(),
        full: runs(r, target, scenario)
            .filter_map(|m| m.client.tls.as_ref())
            .map(|t| t.handshakes_full)
            .sum(),
        resumed: runs(r, target, scenario)
            .filter_map(|m| m.client.tls.as_ref())
            .map(|t| t.handshakes_resumed)
            .sum(),
    })
}

fn met(ok: bool) -> &'static str {
    if ok {
        "**met**"
    } else {
        "**not met**"
    }
}

/// The summary: the table per scenario, issue 16's goals met or not, where the server core's
/// time went.
pub fn markdown(r: &HttpsRecord) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# HTTPS: xgate (bypass and kernel path, rustls) against nginx (OpenSSL), one server core\n"
    );
    let _ = writeln!(
        s,
        "Run {} at `{}` on {} ({} CPUs, {}); written by `loadgen compare` (`loadgen/src/compare/https.rs`).\n",
        r.started_utc,
        r.commit,
        r.machine.cpu_model,
        r.machine.cpus,
        r.machine.virtualised.as_deref().unwrap_or("bare metal")
    );
    let _ = writeln!(s, "Reproduce (as root, after `cargo build --release -p dataplane -p loadgen`):\n\n```sh\nsudo target/release/{}\n```\n", r.command_line);
    let negotiated = r
        .measurements
        .iter()
        .filter_map(|m| m.client.tls.as_ref())
        .map(|t| t.negotiated.clone())
        .find(|n| !n.is_empty())
        .unwrap_or_else(|| "?".into());
    let _ = writeln!(
        s,
        "Lab network (each veth end receives in threaded NAPI on its own side's core): servers on CPU {}, \
         `loadgen run` on CPU {}. {} repetition(s) of {} s (after {} s of warm-up) per scenario and \
         target, the servers' order alternating. Every target used the same ECDSA P-256 certificate, \
         made at run time (`{}`); the client offered TLS 1.3 and X25519 only and negotiated `{}` \
         with every target; it verifies nothing (`--tls-insecure`), so its core spends nothing on \
         checking signatures (the servers still make them). nginx: one worker pinned to the server \
         core, HTTP/1.1, `ssl_session_cache shared:SSL:10m`, `ssl_session_tickets on`; xgate: its TLS \
         defaults (stateless tickets, a session cache).\n",
        r.server_core, r.client_core, r.reps, r.duration_secs, r.warmup_secs, r.certificate, negotiated
    );
    let _ = writeln!(
        s,
        "**Server core µs** is the server core's CPU time per request (the server's threads and every \
         kernel thread bound to its core), per handshake for the handshake scenarios; **busy** is the \
         share of that core (and of the client's) in use during the run: a server core well below \
         100% while the client's is at 100% means the client, not the server, set the rate.\n"
    );
    let nginx = Target::Nginx;
    for &scenario in &r.scenarios {
        let _ = writeln!(s, "## {} (`{}`)\n", scenario.title(), scenario.name());
        let _ = writeln!(
            s,
            "| target | requests/s (min–max) | server core µs/req (min–max) | server core busy | client core busy | errors | handshakes full / resumed | throughput vs nginx | CPU/req vs nginx |"
        );
        let _ = writeln!(
            s,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        let base = row(r, nginx, scenario);
        for &t in &r.targets {
            let Some(x) = row(r, t, scenario) else {
                continue;
            };
            let (tr, cr) = match (&base, t == nginx) {
                (Some(b), false) => (
                    format!("{:.2}x", x.rps.median / b.rps.median),
                    format!("{:.2}x", x.server_us.median / b.server_us.median),
                ),
                _ => ("—".into(), "—".into()),
            };
            let _ = writeln!(
                s,
                "| {} | {:.0} ({:.0}–{:.0}) | {:.1} ({:.1}–{:.1}) | {:.0}% | {:.0}% | {} | {} / {} | {} | {} |",
                t.name(),
                x.rps.median,
                x.rps.min,
                x.rps.max,
                x.server_us.median,
                x.server_us.min,
                x.server_us.max,
                x.server_busy * 100.0,
                x.client_busy * 100.0,
                x.errors,
                x.full,
                x.resumed,
                tr,
                cr
            );
        }
        let _ = writeln!(s);
    }

    let _ = writeln!(s, "## Issue 16's goals\n");
    for &t in r.targets.iter().filter(|t| t.is_xgate()) {
        for &scenario in &r.scenarios {
            let (Some(x), Some(b)) = (row(r, t, scenario), row(r, nginx, scenario)) else {
                continue;
            };
            let thr = x.rps.median / b.rps.median;
            let cpu = x.server_us.median / b.server_us.median;
            if scenario.is_handshake() {
                let _ = writeln!(
                    s,
                    "- {} `{}`: {:.0} handshakes/s, {:.2}x nginx's (goal ≥ {:.1}x: {}); {:.1} µs of the server core per handshake, {:.2}x nginx's.",
                    t.name(),
                    scenario.name(),
                    x.rps.median,
                    thr,
                    GOAL_HANDSHAKE_RATIO,
                    met(thr >= GOAL_HANDSHAKE_RATIO),
                    x.server_us.median,
                    cpu
                );
            } else {
                let _ = writeln!(
                    s,
                    "- {} `{}`: server core CPU per request {:.2}x nginx's (goal ≤ {:.1}x: {}); throughput {:.2}x (goal ≥ {:.1}x: {}).",
                    t.name(),
                    scenario.name(),
                    cpu,
                    GOAL_CPU_RATIO,
                    met(cpu <= GOAL_CPU_RATIO),
                    thr,
                    GOAL_THROUGHPUT_RATIO,
                    met(thr >= GOAL_THROUGHPUT_RATIO)
                );
            }
        }
    }
    let _ = writeln!(s);

    let _ = writeln!(s, "## Where the server core's time goes\n");
    match &r.profile_note {
        Some(note) => {
            let _ = writeln!(s, "{note}.\n");
        }
        None => {
            let _ = writeln!(
                s,
                "One more run of each scenario on each target under `perf record -e cpu-clock -F 1999 -C {}` \
                 (software sampling: no hardware counters on this VM), apart from the measured runs. Shares \
                 of the server core's busy samples: **crypto** is OpenSSL's libcrypto for nginx and aws-lc \
                 (its `aws_lc`-prefixed symbols and its assembly's, e.g. `Lcurve25519_x25519_scalarloop`) for xgate; **TLS protocol** is libssl, or rustls' own code \
                 where the compiler kept it out of line (xgate is built with LTO, so some of it is inlined \
                 into the gateway's functions and counted under other); **kernel** is TCP/IP, the NAPI \
                 receive and the system calls. **crypto µs** is the crypto share times the server core's \
                 median µs per request of the measured runs.\n",
                r.server_core
            );
            let _ = writeln!(
                s,
                "| scenario | target | crypto | crypto µs/req | TLS protocol | kernel | other | busy samples | profiled req/s |"
            );
            let _ = writeln!(
                s,
                "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
            );
            for p in &r.profiles {
                let us = row(r, p.target, p.scenario).map_or(f64::NAN, |x| x.server_us.median);
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.1}% | {:.1} | {:.1}% | {:.1}% | {:.1}% | {:.0} | {:.0} |",
                    p.scenario.name(),
                    p.target.name(),
                    p.crypto_share * 100.0,
                    p.crypto_share * us,
                    p.tls_protocol_share * 100.0,
                    p.kernel_share * 100.0,
                    p.other_share * 100.0,
                    p.samples_busy,
                    p.throughput_rps
                );
            }
            let _ = writeln!(s, "\nThe busiest symbols of each handshake profile:\n");
            for p in r.profiles.iter().filter(|p| p.scenario.is_handshake()) {
                let top: Vec<String> = p
                    .top
                    .iter()
                    .take(5)
                    .map(|(share, what)| format!("{:.1}% `{what}`", share * 100.0))
                    .collect();
                let _ = writeln!(
                    s,
                    "- {} `{}`: {}",
                    p.target.name(),
                    p.scenario.name(),
                    top.join(", ")
                );
            }
            let _ = writeln!(s);
        }
    }
    let _ = writeln!(
        s,
        "Every figure, with each run's client command and CPU attribution: `runs/{}-{}-https-lab.json`.",
        r.started_utc.replace([':', '-'], ""),
        r.commit
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_and_other_scenarios_do_not_mix() {
        assert_eq!(is_https_run(&Scenario::HTTPS), Ok(true));
        assert_eq!(is_https_run(&Scenario::ALL), Ok(false));
        assert!(is_https_run(&[Scenario::HttpsGet, Scenario::KeepAlive]).is_err());
    }

    #[test]
    fn perf_samples_are_split_into_crypto_protocol_kernel_and_idle() {
        let text = "\
     600  swapper          [kernel.kallsyms]  [k] pv_native_safe_halt
     100  nginx            libcrypto.so.3     [.] ecp_nistz256_ord_sqr_mont
      50  nginx            libssl.so.3        [.] tls_process_client_hello
      50  nginx            [kernel.kallsyms]  [k] tcp_sendmsg
      60  xgate-poller-0   xgate              [.] aws_lc_0_38_0_ecp_nistz256_point_mul
      30  xgate-poller-0   xgate              [.] Lcurve25519_x25519_scalarloop
      10  xgate-poller-0   xgate              [.] ecp_nistz256_ord_sqr_montx
      60  xgate-poller-0   xgate              [.] rustls::server::hs::ExpectClientHello::handle
      40  xgate-poller-0   xgate              [.] xgate_core::tcp::endpoint::Endpoint::handle_frame
";
        let p = split_samples(text, Target::Nginx, Scenario::HttpsFull);
        assert_eq!(p.samples, 1000.0);
        assert_eq!(p.samples_busy, 400.0);
        assert_eq!(p.crypto_share, 0.5);
        assert_eq!(p.tls_protocol_share, 110.0 / 400.0);
        assert_eq!(p.kernel_share, 50.0 / 400.0);
        assert_eq!(p.other_share, 40.0 / 400.0);
        assert_eq!(p.top[0].0, 0.25, "{:?}", p.top);
        assert!(p.top.iter().all(|(_, w)| !w.contains("swapper")));
    }

    #[test]
    fn xgate_serves_both_ports_with_the_certificate() {
        let c = xgate_tls_config(&Cert {
            cert: "/w/c.pem".into(),
            key: "/w/k.pem".into(),
        });
        assert!(c.contains("port = 18080\nbypass = true\ntls = true"), "{c}");
        assert!(c.contains("port = 18081\ntls = true"), "{c}");
        assert!(c.contains("cert = \"/w/c.pem\"\nkey = \"/w/k.pem\""), "{c}");
        assert!(c.contains("server_names = [\"xgate.bench\"]"), "{c}");
    }
}
