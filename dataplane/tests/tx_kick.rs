//! The AF_XDP TX kick made with `sendto` or with io_uring (`XskConfig::tx_kick`), end to end
//! through the bypass path (root only; skips otherwise), and the ignored benchmark that
//! compares them (`bench-results/tx-kick.md`).
//!
//! Topology from tests/common with this file's own prefix `xtk<pid>x<n>`: netns + veth pair
//! (two RX queues), the gateway started in this process with one pinned poller per queue,
//! clients (curl, wrk) in the client netns. Everything created is removed, also on panic; the
//! only processes killed are the ones this file spawned, by their PID.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{is_root, wait_for, Topology, GW_IP};
use dataplane::afxdp::{
    CgroupPlacement, Gateway, GatewayConfig, PollerCounters, PortConfig, TxKick, XskConfig,
    XskQueue,
};

const PORT: u16 = 18091;

/// Root tests of this file share one cgroup of the process: one at a time.
static ROOT_TESTS: Mutex<()> = Mutex::new(());

/// SQPOLL kick of the functional test: an unpinned thread that sleeps after 1 ms idle.
const SQPOLL: TxKick = TxKick::IoUringSqpoll {
    cpu: None,
    idle_ms: 1,
};

fn name(kick: TxKick) -> &'static str {
    match kick {
        TxKick::Sendto => "sendto",
        TxKick::IoUring => "io_uring",
        TxKick::IoUringSqpoll { .. } => "io_uring+sqpoll",
    }
}

/// The gateway on the topology's veth with `kick`, queue q's poller pinned to `cores[q]`,
/// port `PORT` on the bypass. The returned listener keeps the port tagged.
fn start(topo: &mut Topology, kick: TxKick, cores: &[usize]) -> (Gateway, TcpListener) {
    topo.enter_gateway();
    let mut config = GatewayConfig::new(
        topo.gw_if.clone(),
        [PortConfig {
            port: PORT,
            bypass: true,
        }],
    );
    config.cgroup = CgroupPlacement::Join(topo.cgroup.clone());
    config.cores = cores.to_vec();
    config.engine.tcp.time_wait = dataplane::time::Duration::from_secs(2);
    config.xsk.tx_kick = kick;
    let started = Gateway::start(&config);
    assert!(topo.leave_gateway(), "setns back to the test's netns");
    let mut gw = started.unwrap_or_else(|e| panic!("starting the gateway with {kick:?}: {e}"));
    let listener = gw.take_listener(PORT).expect("the port's listener");
    (gw, listener)
}

fn sum(c: &[PollerCounters], f: impl Fn(&PollerCounters) -> u64) -> u64 {
    c.iter().map(f).sum()
}

fn curl(topo: &Topology, path: &str, extra: &[&str]) -> Vec<u8> {
    let url = format!("http://{GW_IP}:{PORT}{path}");
    let out = Command::new("ip")
        .args(["netns", "exec", &topo.client_ns, "curl", "-sS", "--fail"])
        .args(["--max-time", "20"])
        .args(extra)
        .arg(&url)
        .output()
        .expect("running curl");
    assert!(
        out.status.success(),
        "curl {url} {extra:?}: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Each kick mode carries bulk transfers byte-exact, every transmitted frame comes back on the
/// completion ring, the pollers end without error, and the next gateway can bind the queues
/// again at once.
#[test]
fn every_tx_kick_mode_carries_the_bypass_path() {
    if !is_root() {
        eprintln!("SKIPPED: needs root (netns, XDP, AF_XDP, cgroups)");
        return;
    }
    let _serial = ROOT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut topo = Topology::create_tagged("xtk", 2);
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cores: Vec<usize> = (0..2).map(|q| q % ncpu).collect();
    let body_file = TempFile(std::env::temp_dir().join(format!("{}.body", topo.prefix)));
    let body: Vec<u8> = (0..1usize << 20).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(&body_file.0, &body).unwrap();
    let expected: Vec<u8> = (0..200_000).map(|i| b'a' + (i % 26) as u8).collect();

    // Each gateway binds the queues the previous one just released: an io_uring that kept the
    // socket alive after the gateway dropped would make this bind fail.
    for kick in [
        TxKick::Sendto,
        TxKick::IoUring,
        SQPOLL,
        TxKick::IoUring,
        TxKick::Sendto,
    ] {
        let (mut gw, listener) = start(&mut topo, kick, &cores);
        assert_eq!(curl(&topo, "/health", &[]), b"ok", "{kick:?}");
        assert!(curl(&topo, "/bytes/200000", &[]) == expected, "{kick:?}");
        let echoed = curl(
            &topo,
            "/echo",
            &[
                "-H",
                "Content-Type: application/octet-stream",
                "--data-binary",
                &format!("@{}", body_file.0.display()),
            ],
        );
        assert!(echoed == body, "{kick:?}: POST /echo 1 MiB differs");
        // Completion reclaim: every frame put on the TX ring comes back to the pool.
        wait_for("TX completions", Duration::from_secs(5), || {
            let c = gw.counters();
            sum(&c, |c| c.tx_completed) == sum(&c, |c| c.tx_frames)
        });
        let c = gw.counters();
        assert!(sum(&c, |c| c.tx_frames) > 700, "{kick:?}: {c:?}");
        assert!(sum(&c, |c| c.tx_kicks) > 0, "{kick:?}: {c:?}");
        drop(listener);
        for exit in gw.shutdown() {
            assert!(!exit.panicked, "{kick:?}");
            assert!(exit.error.is_none(), "{kick:?}: {:?}", exit.error);
            let poller = exit.poller.expect("poller returned");
            assert_eq!(poller.queue().tx_kick(), kick);
            eprintln!(
                "{}: queue {} {:?}, transient kick errors {}",
                name(kick),
                exit.queue,
                poller.counters(),
                poller.queue().tx_kick_transient_errors()
            );
        }
        drop(gw);
    }
    drop(topo);
}

// ---------------------------------------------------------------------------------------------
// Benchmark.

/// What one measured wrk run cost.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    /// wrk's Requests/sec.
    rps: f64,
    /// Requests the engines answered during the run.
    requests: u64,
    /// CPU of the poller threads (schedstat run time), µs per request. A busy poller spins,
    /// so at saturation this is mostly 1 / throughput.
    poller_us: f64,
    /// System (kernel) CPU of the poller threads, µs per request: the kicks (with the
    /// transmit they do inline in copy mode) and the rare poll/bpf calls.
    poller_sys_us: f64,
    /// The same per TX kick.
    sys_per_kick_us: f64,
    /// CPU of wrk (this process's waited-for children), µs per request.
    wrk_us: f64,
    /// Busy CPU of the whole machine (/proc/stat, all but idle and iowait), µs per request.
    machine_us: f64,
    /// Cores busy with anything else than this process and wrk (other tenants of the VM).
    others_cores: f64,
    /// TX kicks per request.
    kicks: f64,
    /// TX frames per kick.
    frames_per_kick: f64,
    /// wrk's latency percentiles, µs.
    p50_us: f64,
    p99_us: f64,
}

fn schedstat_ns(tid: u64) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// (utime, stime) of a thread of this process, in clock ticks.
fn thread_times(tid: u64) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    // Fields after the command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (
        f.get(11).copied().unwrap_or(0),
        f.get(12).copied().unwrap_or(0),
    )
}

/// CPU time (µs) of this process and of its waited-for children (wrk).
fn rusage_us(who: libc::c_int) -> u64 {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF or RUSAGE_CHILDREN with a pointer to a live rusage.
    assert_eq!(unsafe { libc::getrusage(who, &mut ru) }, 0);
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

/// (busy, total) jiffies of the whole machine.
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let cpu: Vec<u64> = stat
        .lines()
        .next()
        .expect("cpu line")
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let total: u64 = cpu.iter().take(8).sum();
    let idle = cpu[3] + cpu[4];
    (total - idle, total)
}

/// One wrk load: connections, path, seconds, and the CPU wrk is pinned to (if any).
#[derive(Debug, Clone)]
struct Load {
    conns: u32,
    path: String,
    secs: u32,
    cpu: Option<usize>,
}

fn wrk(topo: &Topology, load: &Load, secs: u32) -> String {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &topo.client_ns]);
    if let Some(cpu) = load.cpu {
        cmd.args(["taskset", "-c", &cpu.to_string()]);
    }
    let out = cmd
        .args(["wrk", "-t1", "--latency"])
        .arg(format!("-c{}", load.conns))
        .arg(format!("-d{secs}s"))
        .arg(format!("http://{GW_IP}:{PORT}{}", load.path))
        .stderr(Stdio::inherit())
        .output()
        .expect("running wrk");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "wrk: {text}");
    assert!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "wrk saw errors: {text}"
    );
    text
}

/// A wrk duration like `412.00us`, `1.20ms`, `2.00s` in µs.
fn wrk_us(s: &str) -> f64 {
    let (num, mult) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else {
        (s, f64::NAN)
    };
    num.parse::<f64>().unwrap_or(f64::NAN) * mult
}

fn parse_wrk(text: &str) -> (f64, f64, f64) {
    let mut rps = f64::NAN;
    let (mut p50, mut p99) = (f64::NAN, f64::NAN);
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["Requests/sec:", v] => rps = v.parse().unwrap_or(f64::NAN),
            ["50%", v] => p50 = wrk_us(v),
            ["99%", v] => p99 = wrk_us(v),
            _ => {}
        }
    }
    (rps, p50, p99)
}

fn measure(topo: &Topology, gw: &Gateway, load: &Load) -> Sample {
    let tids: Vec<u64> = gw.counters().iter().map(|c| c.thread_id).collect();
    assert!(tids.iter().all(|&t| t > 0), "poller thread ids {tids:?}");
    let stime = || tids.iter().map(|&t| thread_times(t).1).sum::<u64>();
    let sched = || tids.iter().map(|&t| schedstat_ns(t)).sum::<u64>();
    let c0 = gw.counters();
    let (sched0, stime0) = (sched(), stime());
    let (self0, children0) = (
        rusage_us(libc::RUSAGE_SELF),
        rusage_us(libc::RUSAGE_CHILDREN),
    );
    let (busy0, total0) = machine_jiffies();
    let t0 = Instant::now();
    let text = wrk(topo, load, load.secs);
    let wall = t0.elapsed().as_secs_f64();
    let (busy1, total1) = machine_jiffies();
    let (self1, children1) = (
        rusage_us(libc::RUSAGE_SELF),
        rusage_us(libc::RUSAGE_CHILDREN),
    );
    let (sched1, stime1) = (sched(), stime());
    assert!(wall < f64::from(load.secs) + 5.0, "wrk ran {wall:.1} s");
    // The engine gauges are published at least every 100 ms while busy.
    std::thread::sleep(Duration::from_millis(300));
    let c1 = gw.counters();
    let (rps, p50_us, p99_us) = parse_wrk(&text);
    let d = |f: fn(&PollerCounters) -> u64| sum(&c1, f) - sum(&c0, f);
    let requests = d(|c| c.http_requests).max(1) as f64;
    let kicks = d(|c| c.tx_kicks);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let machine_busy_us = (busy1 - busy0) as f64 / hz * 1e6;
    let window_us = (total1 - total0).max(1) as f64 / hz / ncpu * 1e6;
    let ours_us = (self1 - self0 + children1 - children0) as f64;
    let poller_sys_us = (stime1 - stime0) as f64 / hz * 1e6;
    Sample {
        rps,
        requests: requests as u64,
        poller_us: (sched1 - sched0) as f64 / 1e3 / requests,
        poller_sys_us: poller_sys_us / requests,
        sys_per_kick_us: poller_sys_us / kicks.max(1) as f64,
        wrk_us: (children1 - children0) as f64 / requests,
        machine_us: machine_busy_us / requests,
        others_cores: ((machine_busy_us - ours_us) / window_us).max(0.0),
        kicks: kicks as f64 / requests,
        frames_per_kick: d(|c| c.tx_frames) as f64 / kicks.max(1) as f64,
        p50_us,
        p99_us,
    }
}

/// (tracepoint, count per request).
type SyscallRows = Vec<(String, f64)>;

/// Syscalls of the poller threads per request (perf tracepoints), over one wrk run.
fn syscalls_per_request(topo: &Topology, gw: &Gateway, load: &Load) -> Option<SyscallRows> {
    let tids: Vec<String> = gw
        .counters()
        .iter()
        .map(|c| c.thread_id.to_string())
        .collect();
    let events = [
        "raw_syscalls:sys_enter",
        "syscalls:sys_enter_sendto",
        "syscalls:sys_enter_io_uring_enter",
        "syscalls:sys_enter_poll",
        "syscalls:sys_enter_bpf",
    ];
    let c0 = gw.counters();
    let out_file = std::env::temp_dir().join(format!("{}.perf", topo.prefix));
    let mut perf = Command::new("perf")
        .args(["stat", "-x", ",", "-o"])
        .arg(&out_file)
        .args(["-e", &events.join(",")])
        .args(["-t", &tids.join(",")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(300));
    let _ = wrk(topo, load, load.secs);
    // perf stat ends on SIGINT and then writes its counts; it is our child, signalled by PID.
    // SAFETY: kill with the PID of a child we spawned and have not reaped yet.
    unsafe { libc::kill(perf.id() as i32, libc::SIGINT) };
    let _ = perf.wait();
    std::thread::sleep(Duration::from_millis(300));
    let c1 = gw.counters();
    let requests = (sum(&c1, |c| c.http_requests) - sum(&c0, |c| c.http_requests)).max(1);
    let text = std::fs::read_to_string(&out_file).ok()?;
    let _ = std::fs::remove_file(&out_file);
    let mut rows = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() > 2 {
            if let Ok(n) = f[0].parse::<f64>() {
                rows.push((f[2].to_string(), n / requests as f64));
            }
        }
    }
    (!rows.is_empty()).then_some(rows)
}

fn median_spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (med, v[0], v[n - 1])
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn kick_named(m: &str) -> TxKick {
    match m {
        "sendto" => TxKick::Sendto,
        "io_uring" => TxKick::IoUring,
        "sqpoll" => TxKick::IoUringSqpoll {
            cpu: std::env::var("XTK_SQPOLL_CPU")
                .ok()
                .and_then(|c| c.parse().ok()),
            idle_ms: env_or("XTK_SQPOLL_IDLE_MS", 1),
        },
        other => panic!("XTK_MODES: unknown mode {other}"),
    }
}

/// Interleaved A/B(/C) rounds: each round starts a fresh gateway per mode (the order rotates
/// from round to round), warms up for 1 s, then measures one wrk run; then one perf-counted
/// run per mode for the syscalls. Knobs: XTK_QUEUES (2: pollers on cores 0 and 1, wrk
/// unpinned; 1: the poller on core 1, wrk on core 0), XTK_WRK_CPU, XTK_ROUNDS (6), XTK_SECS
/// (5), XTK_MODES (`sendto,io_uring`; `sqpoll` too, with XTK_SQPOLL_CPU and
/// XTK_SQPOLL_IDLE_MS), XTK_LOADS (`16:/health,1:/health,16:/bytes/16384`).
#[test]
#[ignore = "figures: cargo test --release -p dataplane --test tx_kick -- --ignored --nocapture tx_kick_figures"]
fn tx_kick_figures() {
    if !is_root() || Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("SKIPPED: needs root and wrk");
        return;
    }
    let _serial = ROOT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let queues: u32 = env_or("XTK_QUEUES", 2);
    let rounds: usize = env_or("XTK_ROUNDS", 6);
    let secs: u32 = env_or("XTK_SECS", 5);
    let (cores, default_wrk_cpu): (Vec<usize>, Option<usize>) = if queues == 1 {
        (vec![1 % ncpu], Some(0))
    } else {
        ((0..queues as usize).map(|q| q % ncpu).collect(), None)
    };
    let wrk_cpu = match std::env::var("XTK_WRK_CPU") {
        Ok(v) => v.parse().ok(),
        Err(_) => default_wrk_cpu,
    };
    let mode_names = env_or("XTK_MODES", "sendto,io_uring".to_string());
    let modes: Vec<TxKick> = mode_names.split(',').map(kick_named).collect();
    let loads: Vec<Load> = env_or(
        "XTK_LOADS",
        "16:/health,1:/health,16:/bytes/16384".to_string(),
    )
    .split(',')
    .map(|l| {
        let (c, p) = l.split_once(':').expect("XTK_LOADS: conns:path");
        Load {
            conns: c.parse().expect("connections"),
            path: p.to_string(),
            secs,
            cpu: wrk_cpu,
        }
    })
    .collect();

    let mut topo = Topology::create_tagged("xtk", queues);
    let mut bound = None;
    let mut stop = |gw: Gateway, listener: TcpListener| {
        drop(listener);
        let mut gw = gw;
        for exit in gw.shutdown() {
            assert!(exit.error.is_none() && !exit.panicked, "{exit:?}");
            if let Some(p) = exit.poller {
                bound.get_or_insert(p.queue().bound());
            }
        }
    };
    let mut results: Vec<(usize, usize, Sample)> = Vec::new(); // (load, mode, sample)
    for (li, load) in loads.iter().enumerate() {
        for round in 0..rounds {
            for k in 0..modes.len() {
                let mi = (k + round) % modes.len();
                let (gw, listener) = start(&mut topo, modes[mi], &cores);
                let _ = wrk(&topo, load, 1); // warm-up
                let s = measure(&topo, &gw, load);
                eprintln!(
                    "  -c{} {} round {round} {:>15}: {:>8.0} req/s ({} served), poller {:.2} \
                     µs/req (sys {:.2}, {:.2} per kick), wrk {:.2} µs/req, machine {:.2} \
                     µs/req, others {:.2} cores, {:.3} kicks/req, {:.1} frames/kick, p50 {:.0} \
                     µs, p99 {:.0} µs",
                    load.conns,
                    load.path,
                    name(modes[mi]),
                    s.rps,
                    s.requests,
                    s.poller_us,
                    s.poller_sys_us,
                    s.sys_per_kick_us,
                    s.wrk_us,
                    s.machine_us,
                    s.others_cores,
                    s.kicks,
                    s.frames_per_kick,
                    s.p50_us,
                    s.p99_us
                );
                results.push((li, mi, s));
                stop(gw, listener);
            }
        }
    }

    // Syscalls per request: a separate, perf-counted run per mode (tracing slows syscalls).
    let mut syscalls: Vec<(usize, usize, SyscallRows)> = Vec::new();
    for (li, load) in loads.iter().enumerate() {
        for (mi, &kick) in modes.iter().enumerate() {
            let (gw, listener) = start(&mut topo, kick, &cores);
            let _ = wrk(&topo, load, 1);
            match syscalls_per_request(&topo, &gw, load) {
                Some(rows) => syscalls.push((li, mi, rows)),
                None => eprintln!("perf stat unavailable: no syscall counts"),
            }
            stop(gw, listener);
        }
    }
    drop(topo);

    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "\nkernel {}, {ncpu} CPUs, veth with {queues} queue(s), socket {bound:?}, pollers on \
         cores {cores:?}, wrk -t1 on CPU {wrk_cpu:?}; modes {mode_names}",
        kernel.trim()
    );
    println!(
        "{rounds} rounds x {secs} s per mode and load, interleaved; medians [min-max]; µs/req \
         are CPU time per request\n"
    );
    println!(
        "| load | kick | req/s | poller µs/req | poller sys µs/req | sys µs/kick | wrk µs/req \
         | machine µs/req | other load (cores) | kicks/req | frames/kick | p50 µs | p99 µs |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let of = |li: usize, mi: usize| -> Vec<Sample> {
        results
            .iter()
            .filter(|(l, m, _)| *l == li && *m == mi)
            .map(|(_, _, s)| *s)
            .collect()
    };
    let cell = |v: &[Sample], f: fn(&Sample) -> f64, prec: usize| {
        let (m, lo, hi) = median_spread(v.iter().map(f).collect());
        format!("{m:.prec$} [{lo:.prec$}-{hi:.prec$}]")
    };
    for (li, load) in loads.iter().enumerate() {
        for (mi, &kick) in modes.iter().enumerate() {
            let v = of(li, mi);
            println!(
                "| -c{} {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                load.conns,
                load.path,
                name(kick),
                cell(&v, |s| s.rps, 0),
                cell(&v, |s| s.poller_us, 2),
                cell(&v, |s| s.poller_sys_us, 2),
                cell(&v, |s| s.sys_per_kick_us, 2),
                cell(&v, |s| s.wrk_us, 2),
                cell(&v, |s| s.machine_us, 2),
                cell(&v, |s| s.others_cores, 2),
                cell(&v, |s| s.kicks, 3),
                cell(&v, |s| s.frames_per_kick, 1),
                cell(&v, |s| s.p50_us, 0),
                cell(&v, |s| s.p99_us, 0),
            );
        }
    }
    // Paired: each mode against the first one measured in the same round (next to it in time,
    // so a slow-moving load from other tenants weighs on both).
    println!(
        "\nPaired per round, {} = 1: median [min-max] of the ratio\n",
        name(modes[0])
    );
    println!("| load | kick | req/s | poller sys µs/kick | machine µs/req | p99 |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (li, load) in loads.iter().enumerate() {
        let base = of(li, 0);
        for (mi, &kick) in modes.iter().enumerate().skip(1) {
            let v = of(li, mi);
            let ratio = |f: fn(&Sample) -> f64| {
                let r: Vec<f64> = v.iter().zip(&base).map(|(b, a)| f(b) / f(a)).collect();
                let (m, lo, hi) = median_spread(r);
                format!("{m:.3} [{lo:.3}-{hi:.3}]")
            };
            println!(
                "| -c{} {} | {} | {} | {} | {} | {} |",
                load.conns,
                load.path,
                name(kick),
                ratio(|s| s.rps),
                ratio(|s| s.sys_per_kick_us),
                ratio(|s| s.machine_us),
                ratio(|s| s.p99_us),
            );
        }
    }
    println!("\nPoller-thread syscalls per request (perf stat -t, one run per mode and load):\n");
    for (li, mi, rows) in &syscalls {
        let load = &loads[*li];
        let cells: Vec<String> = rows.iter().map(|(e, n)| format!("{e} {n:.3}")).collect();
        println!(
            "- -c{} {}, {}: {}",
            load.conns,
            load.path,
            name(modes[*mi]),
            cells.join(", ")
        );
    }
}

/// The kick alone: an AF_XDP socket (copy mode, no poller, no steering) on the topology's
/// veth, kicked in a tight loop with an empty TX ring (the system call and the kernel's
/// dispatch to `xsk_sendmsg`, which finds nothing to send) and with one 64-byte frame queued
/// before each kick (plus building, transmitting and dropping one skb: the frame has an
/// experimental EtherType nobody receives). Interleaved rounds; ns per kick.
/// Knobs: XTK_ROUNDS (10), XTK_KICKS (200000), XTK_MODES (`sendto,io_uring`).
#[test]
#[ignore = "figures: cargo test --release -p dataplane --test tx_kick -- --ignored --nocapture tx_kick_cost"]
fn tx_kick_cost() {
    if !is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let _serial = ROOT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let rounds: usize = env_or("XTK_ROUNDS", 10);
    let kicks: u32 = env_or("XTK_KICKS", 200_000);
    let mode_names = env_or("XTK_MODES", "sendto,io_uring".to_string());
    let modes: Vec<TxKick> = mode_names.split(',').map(kick_named).collect();
    let mut topo = Topology::create_tagged("xtk", 1);
    let mut frame = [0u8; 64];
    frame[..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());

    // (with a frame, mode) -> ns per kick, one per round.
    let mut ns: Vec<((bool, usize), f64)> = Vec::new();
    for round in 0..rounds {
        for with_frame in [false, true] {
            for k in 0..modes.len() {
                let mi = (k + round) % modes.len();
                let mut config = XskConfig::new(topo.gw_if.clone());
                config.tx_kick = modes[mi];
                // The kernel releases a closed socket's hold on the queue asynchronously:
                // binding right after the previous round's socket closed can find it busy.
                let deadline = Instant::now() + Duration::from_secs(3);
                let mut q = loop {
                    topo.enter_gateway();
                    let bound = XskQueue::bind(&config, 0);
                    assert!(topo.leave_gateway());
                    match bound {
                        Ok(q) => break q,
                        Err(e) if Instant::now() < deadline => {
                            eprintln!("    bind: {e}; again");
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(e) => panic!("binding the AF_XDP socket: {e}"),
                    }
                };
                assert!(!q.bound().zero_copy, "veth is copy mode");
                // Warm-up.
                for _ in 0..1000 {
                    q.kick_tx().expect("kick");
                }
                let t = Instant::now();
                for _ in 0..kicks {
                    if with_frame {
                        assert!(q.send(&frame), "TX ring or pool exhausted");
                    }
                    q.kick_tx().expect("kick");
                    q.reclaim();
                }
                let per = t.elapsed().as_nanos() as f64 / f64::from(kicks);
                assert!(q.tx_unsent() <= 32, "{} frames left unsent", q.tx_unsent());
                eprintln!(
                    "  round {round} {} {:>15}: {per:.0} ns per kick, {} transient errors",
                    if with_frame { "1 frame " } else { "no frame" },
                    name(modes[mi]),
                    q.tx_kick_transient_errors()
                );
                ns.push(((with_frame, mi), per));
            }
        }
    }
    drop(topo);
    println!("\n{rounds} rounds x {kicks} kicks, interleaved; ns per kick, median [min-max]\n");
    println!("| TX ring before each kick | kick | ns per kick |");
    println!("| --- | --- | --- |");
    for with_frame in [false, true] {
        for (mi, &kick) in modes.iter().enumerate() {
            let v: Vec<f64> = ns
                .iter()
                .filter(|(key, _)| *key == (with_frame, mi))
                .map(|(_, n)| *n)
                .collect();
            let (m, lo, hi) = median_spread(v);
            println!(
                "| {} | {} | {m:.0} [{lo:.0}-{hi:.0}] |",
                if with_frame {
                    "one 64-byte frame"
                } else {
                    "empty"
                },
                name(kick)
            );
        }
    }
}
