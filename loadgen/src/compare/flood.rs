//! The SYN-flood comparison (issue 14's goal: "under a SYN flood, memory stays bounded and
//! established clients keep their throughput"): established keep-alive clients download
//! while new clients connect one request at a time, first on a quiet network, then while a
//! flood of SYNs from spoofed sources hits the same port; on xgate's bypass path and its
//! kernel path (Linux's listener with its own SYN cookies) in the same run.
//!
//! The flood is crafted frames on the client's veth end (an `AF_PACKET` socket,
//! [`xgate_testnet::packet::PacketSocket`]), sources spread over `10.232.0.0/16`, which the
//! server's namespace routes back through the client: Linux's reverse-path filter then lets
//! the flood in on the kernel path as it does on the bypass (XDP sees it before any routing),
//! and both paths' SYN-ACKs go to the client's namespace, which drops them (not its
//! addresses, no forwarding). Each flood SYN is a new flow, so neither path's answer can be
//! saved by a table lookup of an earlier one.
//!
//! The flooder shares the client's core with the two client processes, so what the clients
//! lose under the flood is an upper bound of what the server makes them lose; both targets
//! meet the same flood from the same core.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use xgate_testnet::packet::PacketSocket;

use super::report::ClientFigures;
use super::servers::{self, Target};
use super::topology::{Network, Topology, SERVER_IP};
use super::CompareError;

/// `loadgen flood`.
#[derive(Debug, Clone, Args)]
pub struct FloodArgs {
    /// Where results go: `runs/<time>-<commit>-flood.{json,md}` and the latest `flood.md`.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// The xgate binary (default: beside this loadgen, else in PATH).
    #[arg(long)]
    pub xgate: Option<PathBuf>,
    /// Seconds each phase (quiet, flood) measures, after a 1 s warm-up.
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    /// SYNs per second the flood sends.
    #[arg(long, default_value_t = 20_000)]
    pub syn_rate: u32,
    /// Established keep-alive connections downloading.
    #[arg(long, default_value_t = 8)]
    pub connections: u32,
    /// Each download's size in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub size: u64,
    /// Downloads per second over all established connections (open loop, latency from each
    /// request's due time); without it, closed loop: as many as the server answers, so the
    /// flood's cost to a saturated server shows in full.
    #[arg(long)]
    pub rate: Option<u32>,
    /// CPU of xgate's poller (and the server's receive, as in the lab network).
    #[arg(long, default_value_t = 1)]
    pub server_core: usize,
    /// CPU of the clients and the flooder.
    #[arg(long, default_value_t = 0)]
    pub client_core: usize,
}

/// One phase on one target.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Phase {
    pub target: Target,
    pub flood: bool,
    /// The keep-alive clients' downloads.
    pub established: ClientFigures,
    /// New connections, a request each, meanwhile.
    pub new_clients: ClientFigures,
    /// SYNs the flooder sent during the phase (0 when quiet).
    pub syns_sent: u64,
    /// xgate's resident memory: at the phase's start and the most seen during it, in KiB.
    pub rss_start_kib: u64,
    pub rss_max_kib: u64,
    /// The bypass's handshake counters over the phase (series, increase).
    pub bypass_handshakes: Vec<(String, f64)>,
}

/// Everything a run measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FloodRecord {
    pub schema: u32,
    pub started_utc: String,
    pub commit: String,
    pub machine: super::machine::MachineInfo,
    pub command_line: String,
    pub secs: u64,
    pub syn_rate: u32,
    pub connections: u32,
    pub size: u64,
    /// The established clients' offered rate, `None` for a closed loop.
    #[serde(default)]
    pub rate: Option<u32>,
    pub phases: Vec<Phase>,
}

/// Where xgate's admin endpoint listens, inside the server's namespace.
const ADMIN: &str = "127.0.0.1:9189";
/// The flood's sources: a /16 the server routes back through the client.
const FLOOD_NET: &str = "10.232.0.0/16";
/// The bypass's handshake counters a phase keeps.
const HANDSHAKE_METRICS: [&str; 2] = [
    "xgate_bypass_tcp_syn_cache_total",
    "xgate_bypass_tcp_syn_cookies_sent_total",
];

fn xgate_config(size: u64) -> String {
    let limit = size.max(1 << 20);
    format!("[admin]\nlisten = \"{ADMIN}\"\n\n[app]\nmax_bytes_len = {limit}\n")
}

/// One SYN from `src`:`sport` to the server's `port`, as a whole Ethernet frame with both
/// checksums, an MSS option and a window like a real client's.
pub fn syn_frame(
    macs: ([u8; 6], [u8; 6]),
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    port: u16,
    isn: u32,
) -> [u8; 58] {
    let mut f = [0u8; 58];
    f[0..6].copy_from_slice(&macs.1);
    f[6..12].copy_from_slice(&macs.0);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&44u16.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = checksum(0, ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let tcp = &mut f[34..58];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&port.to_be_bytes());
    tcp[4..8].copy_from_slice(&isn.to_be_bytes());
    tcp[12] = 6 << 4; // 24 bytes: the header and the MSS option
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    tcp[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]); // MSS 1460
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&src);
    pseudo[4..8].copy_from_slice(&dst);
    pseudo[9] = 6;
    pseudo[10..12].copy_from_slice(&24u16.to_be_bytes());
    let c = checksum(sum(0, &pseudo), tcp);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    f
}

fn sum(mut acc: u32, bytes: &[u8]) -> u32 {
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        acc += u32::from(word);
    }
    acc
}

/// The Internet checksum (RFC 1071) of `bytes`, continuing the partial sum `acc`.
fn checksum(acc: u32, bytes: &[u8]) -> u16 {
    let mut s = sum(acc, bytes);
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An interface's MAC address, from `ip -j link show` in its namespace.
fn mac_of(ns: &str, ifname: &str) -> Result<[u8; 6], CompareError> {
    let out = xgate_testnet::run(&["ip", "-n", ns, "-j", "link", "show", "dev", ifname])?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| CompareError::Setup(format!("ip -j link show {ifname}: {e}")))?;
    let text = v[0]["address"].as_str().unwrap_or_default();
    let mut mac = [0u8; 6];
    let parts: Vec<u8> = text
        .split(':')
        .filter_map(|h| u8::from_str_radix(h, 16).ok())
        .collect();
    if parts.len() != 6 {
        return Err(CompareError::Setup(format!(
            "no MAC address for {ifname} in {ns}: {text:?}"
        )));
    }
    mac.copy_from_slice(&parts);
    Ok(mac)
}

/// Sends SYNs at `rate` per second from spoofed sources until `stop`; returns how many.
fn flood(
    socket: &PacketSocket,
    macs: ([u8; 6], [u8; 6]),
    port: u16,
    rate: u32,
    stop: &AtomicBool,
) -> u64 {
    const BATCH: u64 = 32;
    let dst: [u8; 4] = SERVER_IP
        .parse::<std::net::Ipv4Addr>()
        .expect("constant")
        .octets();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut x = 0x2545_f491u32;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..BATCH {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let src = [10, 232, (x >> 8) as u8, (x as u8).max(1)];
            let sport = 1024 + (x >> 16) as u16 % 60_000;
            let frame = syn_frame(macs, src, dst, sport, port, x.rotate_left(11));
            if socket.send(&frame).is_ok() {
                sent += 1;
            }
        }
        // Keep to the rate: sleep until the time the next batch is due.
        let due = Duration::from_secs_f64(sent as f64 / f64::from(rate.max(1)));
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    sent
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The bypass's handshake counters now.
fn handshake_counters(topo: &Topology) -> Vec<(String, f64)> {
    super::paths::scrape_metrics(topo, ADMIN, &HANDSHAKE_METRICS)
}

/// Runs the comparison and writes its files.
pub fn run(args: &FloodArgs) -> Result<(FloodRecord, Vec<PathBuf>), CompareError> {
    if !xgate_testnet::is_root() {
        return Err(CompareError::Setup(
            "loadgen flood needs root (namespaces, XDP, AF_PACKET)".into(),
        ));
    }
    if args.secs == 0 || args.syn_rate == 0 || args.connections == 0 || args.size == 0 {
        return Err(CompareError::Setup(
            "--secs, --syn-rate, --connections and --size must be at least 1".into(),
        ));
    }
    let me =
        std::env::current_exe().map_err(|e| CompareError::io(Path::new("/proc/self/exe"), e))?;
    let xgate = super::find_xgate(args.xgate.as_deref(), &me)?;
    let work = std::env::temp_dir().join(format!("xgate-flood-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| CompareError::io(&work, e))?;
    let config = work.join("xgate.toml");
    std::fs::write(&config, xgate_config(args.size)).map_err(|e| CompareError::io(&config, e))?;

    let topo = Topology::create(Network::Lab, (args.server_core, args.client_core))?;
    xgate_testnet::run(&[
        "ip",
        "-n",
        &topo.server_ns,
        "route",
        "add",
        FLOOD_NET,
        "via",
        super::topology::CLIENT_IP,
    ])?;
    let macs = (
        mac_of(&topo.client_ns, &topo.client_if)?,
        mac_of(&topo.server_ns, &topo.server_if)?,
    );
    let socket = PacketSocket::open(&topo.client_ns, &topo.client_if)
        .map_err(|e| CompareError::Setup(format!("AF_PACKET socket in the client: {e}")))?;
    let log = work.join("xgate.log");
    let server = servers::start_xgate(&xgate, Some(&config), &topo, args.server_core, &log)?;
    let mut record = FloodRecord {
        schema: 1,
        started_utc: super::utc_now(),
        commit: super::git_commit(),
        machine: super::machine::MachineInfo::read(),
        command_line: std::env::args().collect::<Vec<_>>().join(" "),
        secs: args.secs,
        syn_rate: args.syn_rate,
        connections: args.connections,
        size: args.size,
        rate: args.rate,
        phases: Vec::new(),
    };
    let result = (|| {
        for target in [Target::XgateBypass, Target::XgateKernel] {
            for flooding in [false, true] {
                eprintln!(
                    "flood: {} {}",
                    target.name(),
                    if flooding {
                        "under a SYN flood"
                    } else {
                        "quiet"
                    }
                );
                let phase = run_phase(args, &me, &topo, &socket, macs, &server, target, flooding)?;
                record.phases.push(phase);
            }
        }
        Ok::<_, CompareError>(())
    })();
    server.stop(Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&work);
    result?;
    let written = write(&record, &args.out)?;
    Ok((record, written))
}

/// One phase: both client processes over `args.secs`, the flood beside them when
/// `flooding`, xgate's memory sampled throughout.
#[allow(clippy::too_many_arguments)]
fn run_phase(
    args: &FloodArgs,
    loadgen: &Path,
    topo: &Topology,
    socket: &PacketSocket,
    macs: ([u8; 6], [u8; 6]),
    server: &servers::Server,
    target: Target,
    flooding: bool,
) -> Result<Phase, CompareError> {
    let client = |extra: &[String]| {
        let mut a: Vec<String> = vec![
            "run".into(),
            "--addr".into(),
            target.addr(),
            "--duration".into(),
            format!("{}s", args.secs),
            "--warmup".into(),
            "1s".into(),
            "--threads".into(),
            "1".into(),
            "--cpu".into(),
            args.client_core.to_string(),
            "--no-progress".into(),
            "--json".into(),
            "-".into(),
        ];
        a.extend_from_slice(extra);
        topo.in_client(&loadgen.to_string_lossy())
            .args(&a)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    };
    let err = |what: &str, message: String| {
        CompareError::Setup(format!(
            "{what} client on {} ({}): {message}",
            target.name(),
            if flooding { "flood" } else { "quiet" }
        ))
    };
    let before = handshake_counters(topo);
    let rss_start_kib = rss_kib(server.pid()).unwrap_or(0);
    let stop = AtomicBool::new(false);
    let (syns_sent, outputs, rss_max_kib) = std::thread::scope(|sc| {
        let flooder = flooding.then(|| {
            // The socket is bound to the client's interface: any thread may send on it.
            sc.spawn(|| flood(socket, macs, target.port(), args.syn_rate, &stop))
        });
        let mut downloads = vec![
            "--path".into(),
            format!("/bytes/{}", args.size),
            "--connections".into(),
            args.connections.to_string(),
            "--expect-body-size".into(),
            args.size.to_string(),
        ];
        if let Some(rate) = args.rate {
            downloads.extend(["--rate".into(), rate.to_string()]);
        }
        let established = client(&downloads);
        let fresh = client(&[
            "--path".into(),
            "/bytes/1024".into(),
            "--churn".into(),
            "--connections".into(),
            "2".into(),
            "--timeout".into(),
            "3s".into(),
        ]);
        let waiters = [established, fresh].map(|c| {
            sc.spawn(move || {
                let child = c.map_err(|e| e.to_string())?;
                super::wait_output(child, Duration::from_secs(args.secs + 60))
                    .map_err(|e| e.to_string())
            })
        });
        let mut rss_max = rss_start_kib;
        while waiters.iter().any(|w| !w.is_finished()) {
            rss_max = rss_max.max(rss_kib(server.pid()).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
        let sent = flooder.map_or(0, |f| f.join().unwrap_or(0));
        let outputs = waiters.map(|w| w.join().unwrap_or_else(|_| Err("panicked".into())));
        (sent, outputs, rss_max)
    });
    let [established, new_clients] = outputs;
    let figures = |what: &str, out: Result<std::process::Output, String>| {
        let out = out.map_err(|e| err(what, e))?;
        if !out.status.success() {
            return Err(err(
                what,
                format!(
                    "exited with {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| err(what, format!("its JSON report: {e}")))?;
        super::figures_from_report(&json).map_err(|e| err(what, e))
    };
    let established = figures("established", established)?;
    let new_clients = figures("new", new_clients)?;
    let bypass_handshakes = super::paths::counter_deltas(&before, &handshake_counters(topo));
    Ok(Phase {
        target,
        flood: flooding,
        established,
        new_clients,
        syns_sent,
        rss_start_kib,
        rss_max_kib,
        bypass_handshakes,
    })
}

/// The quiet and the flood phase of `target`.
fn pair(r: &FloodRecord, target: Target) -> Option<(&Phase, &Phase)> {
    let find = |flood| {
        r.phases
            .iter()
            .find(|p| p.target == target && p.flood == flood)
    };
    Some((find(false)?, find(true)?))
}

/// MB/s of `size`-byte downloads at `rps`.
fn mbytes(rps: f64, size: u64) -> f64 {
    rps * size as f64 / 1e6
}

/// The summary in markdown.
pub fn markdown(r: &FloodRecord) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(s, "# xgate under a SYN flood — {}\n", r.started_utc);
    let _ = writeln!(
        s,
        "Commit `{}` on {} ({} CPUs, {:.0} GiB, kernel {}). Reproduce: `{}`.\n\n\
         {} keep-alive connections download {} bytes each request ({}) while two clients \
         open a new connection per request (1 KiB), {} s after a 1 s warm-up: first quiet, then \
         while {} SYNs/s from spoofed sources (a new flow each) hit the same port, on the \
         lab network. The flooder shares the clients' core, so what the clients lose is an \
         upper bound of what the server costs them. Memory: xgate's resident set (the \
         kernel path's SYN state is kernel memory, not in it).\n",
        r.commit,
        m.cpu_model,
        m.cpus,
        m.memory_gib,
        m.kernel,
        r.command_line,
        r.connections,
        r.size,
        r.rate.map_or(
            "closed loop: as many as the server answers".to_string(),
            |x| { format!("open loop: {x} downloads/s offered") }
        ),
        r.secs,
        r.syn_rate
    );
    let _ = writeln!(
        s,
        "| target | phase | SYNs sent | established MB/s | established p99 (ms) | new clients req/s | new p99 (ms) | failed (est. / new) | xgate RSS start → max (MiB) |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for p in &r.phases {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1} | {:.1} | {:.0} | {:.1} | {} / {} | {:.1} → {:.1} |",
            p.target.name(),
            if p.flood { "flood" } else { "quiet" },
            p.syns_sent,
            mbytes(p.established.throughput_rps, r.size),
            p.established.latency_us.p99 / 1000.0,
            p.new_clients.throughput_rps,
            p.new_clients.latency_us.p99 / 1000.0,
            p.established.errors,
            p.new_clients.errors,
            p.rss_start_kib as f64 / 1024.0,
            p.rss_max_kib as f64 / 1024.0,
        );
    }
    for p in r
        .phases
        .iter()
        .filter(|p| !p.bypass_handshakes.is_empty() && p.target == Target::XgateBypass)
    {
        let c: Vec<String> = p
            .bypass_handshakes
            .iter()
            .filter(|(_, v)| *v > 0.0)
            .map(|(series, v)| format!("`{series}` {v}"))
            .collect();
        let _ = writeln!(
            s,
            "\n- The bypass's handshakes, {}: {}",
            if p.flood { "under the flood" } else { "quiet" },
            c.join(", ")
        );
    }
    let _ = writeln!(
        s,
        "\n## The goal (issue 14), against this run\n\n| goal | measured | met |\n| --- | --- | --- |"
    );
    let verdict = |ok: bool| if ok { "yes" } else { "**no**" };
    for target in [Target::XgateBypass, Target::XgateKernel] {
        let Some((quiet, flood)) = pair(r, target) else {
            continue;
        };
        let kept = flood.established.throughput_rps / quiet.established.throughput_rps;
        let _ = writeln!(
            s,
            "| {}: established clients keep their throughput under the flood (within 5%) | {:.2}x of quiet | {} |",
            target.name(),
            kept,
            verdict(kept >= 0.95 && flood.established.errors == 0)
        );
        let _ = writeln!(
            s,
            "| {}: new clients served throughout | {} of {} failed | {} |",
            target.name(),
            flood.new_clients.errors,
            flood.new_clients.errors + flood.new_clients.requests,
            verdict(flood.new_clients.errors == 0 && flood.new_clients.requests > 0)
        );
        if target == Target::XgateBypass {
            let grew = flood
                .rss_max_kib
                .saturating_sub(quiet.rss_max_kib.max(flood.rss_start_kib));
            let _ = writeln!(
                s,
                "| bypass: memory bounded under the flood (RSS growth within 4 MiB: the SYN cache's bound is under 1 MiB) | +{:.1} MiB | {} |",
                grew as f64 / 1024.0,
                verdict(grew <= 4096)
            );
        }
    }
    s
}

/// Writes the record and its summary (`runs/` and the latest `flood.md`).
pub fn write(r: &FloodRecord, out: &Path) -> Result<Vec<PathBuf>, CompareError> {
    super::SummaryFiles {
        name: "flood",
        started_utc: &r.started_utc,
        commit: &r.commit,
        record: r,
        markdown: markdown(r),
        charts: Vec::new(),
    }
    .write(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syn_frame_has_valid_checksums_and_the_flags_of_a_syn() {
        let f = syn_frame(
            ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]),
            [10, 232, 1, 2],
            [10, 231, 0, 1],
            4000,
            8080,
            7,
        );
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 2], "to the server's MAC");
        assert_eq!(checksum(0, &f[14..34]), 0, "IPv4 header checksum");
        let mut pseudo = [0u8; 12];
        pseudo[0..4].copy_from_slice(&f[26..30]);
        pseudo[4..8].copy_from_slice(&f[30..34]);
        pseudo[9] = 6;
        pseudo[11] = 24;
        assert_eq!(checksum(sum(0, &pseudo), &f[34..58]), 0, "TCP checksum");
        assert_eq!(f[34 + 13], 0x02, "SYN alone");
        assert_eq!(u16::from_be_bytes([f[36], f[37]]), 8080);
    }

    fn phase(target: Target, flood: bool, rps: f64, new_failed: u64, rss: u64) -> Phase {
        Phase {
            target,
            flood,
            established: ClientFigures {
                requests: 100,
                throughput_rps: rps,
                ..Default::default()
            },
            new_clients: ClientFigures {
                requests: 50,
                errors: new_failed,
                throughput_rps: 5.0,
                ..Default::default()
            },
            syns_sent: if flood { 200_000 } else { 0 },
            rss_start_kib: 20_000,
            rss_max_kib: rss,
            bypass_handshakes: vec![("xgate_bypass_tcp_syn_cookies_sent_total".into(), 150.0)],
        }
    }

    #[test]
    fn the_goal_lines_compare_each_target_s_flood_with_its_quiet_phase() {
        let r = FloodRecord {
            schema: 1,
            started_utc: "2026-12-06T00:00:00Z".into(),
            commit: "abc".into(),
            machine: super::super::machine::MachineInfo::read(),
            command_line: "loadgen flood".into(),
            secs: 10,
            syn_rate: 20_000,
            connections: 8,
            size: 1 << 20,
            rate: None,
            phases: vec![
                phase(Target::XgateBypass, false, 100.0, 0, 21_000),
                phase(Target::XgateBypass, true, 97.0, 0, 22_000),
                phase(Target::XgateKernel, false, 100.0, 0, 21_000),
                phase(Target::XgateKernel, true, 80.0, 3, 21_000),
            ],
        };
        let md = markdown(&r);
        for needle in [
            "| xgate bypass | flood | 200000 | 101.7 |",
            "| xgate bypass: established clients keep their throughput under the flood (within 5%) | 0.97x of quiet | yes |",
            "| xgate kernel path: established clients keep their throughput under the flood (within 5%) | 0.80x of quiet | **no** |",
            "| xgate kernel path: new clients served throughout | 3 of 53 failed | **no** |",
            "| +1.0 MiB | yes |",
            "`xgate_bypass_tcp_syn_cookies_sent_total` 150",
        ] {
            assert!(md.contains(needle), "{needle:?} not in:\n{md}");
        }
    }
}
