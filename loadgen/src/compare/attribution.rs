//! Who spent the CPU, and on which core: the server core's cost per request, with its parts
//! shown, so a figure says what it counts instead of assuming it.
//!
//! A [`ThreadSample`] reads every thread on the machine: its run time from
//! `/proc/<pid>/task/<tid>/schedstat` (the scheduler's nanosecond clock: exact, where
//! `/proc/stat`'s per-CPU ticks lose time on this VM), the CPUs it may run on, whether it is a
//! kernel thread, and its name. Between two samples, [`Attribution::between`] sorts the time
//! into the server's side (the server's processes, wherever they ran, and the kernel threads
//! bound to the server's core: its NAPI threads, `ksoftirqd`, per-CPU kworkers), the client's
//! side (the same for the client, plus the finished client's own time from
//! `RUSAGE_CHILDREN`), the origin the proxy scenarios forward to (its processes, wherever they
//! ran: a proxy's cost must not include its upstream's), and the rest of the machine.
//!
//! What it cannot see: softirq and interrupt work that runs while a core is idle (this
//! kernel has no `IRQ_TIME_ACCOUNTING`, so such work is charged to whichever task it
//! interrupts, and to nobody when that is the idle task). [`SoftirqCounts`] shows how much
//! network softirq work ran on each core anyway: in the lab, where each side receives in its
//! NAPI thread, it is close to none.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// One thread at one moment.
#[derive(Debug, Clone)]
struct ThreadTime {
    /// The process (thread group) it belongs to.
    tgid: u32,
    /// Nanoseconds on a CPU since it started.
    runtime_ns: u64,
    /// The only CPU it may run on, when its affinity is a single CPU.
    bound_cpu: Option<usize>,
    kernel: bool,
    /// Its name (`comm`), e.g. `napi/lgc123x0s-8` or `ksoftirqd/1`.
    name: String,
    /// The parent process, to find a server's worker processes.
    ppid: u32,
}

/// Every thread on the machine, and what reaped children of this process have used.
#[derive(Debug, Clone, Default)]
pub struct ThreadSample {
    threads: HashMap<u32, ThreadTime>,
    children: std::time::Duration,
}

impl ThreadSample {
    pub fn read() -> Self {
        let mut threads = HashMap::new();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return ThreadSample::default();
        };
        for p in procs.flatten() {
            let Ok(tgid) = p.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(tasks) = std::fs::read_dir(p.path().join("task")) else {
                continue;
            };
            for t in tasks.flatten() {
                let Ok(tid) = t.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let dir = t.path();
                let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
                // A thread that exits between the directory listing and these reads is
                // skipped: its time is lost to both samples alike.
                let (Some(sched), Some(stat), Some(status)) =
                    (read("schedstat"), read("stat"), read("status"))
                else {
                    continue;
                };
                let (Some(runtime_ns), Some(st)) = (schedstat_runtime(&sched), parse_stat(&stat))
                else {
                    continue;
                };
                threads.insert(
                    tid,
                    ThreadTime {
                        tgid,
                        runtime_ns,
                        bound_cpu: status_bound_cpu(&status),
                        kernel: st.flags & PF_KTHREAD != 0,
                        name: st.name,
                        ppid: st.ppid,
                    },
                );
            }
        }
        ThreadSample {
            threads,
            children: super::machine::children_cpu(),
        }
    }

    /// Seconds every thread alive at `later` ran since `self` (threads born in between count
    /// whole), plus children reaped in between.
    pub fn total_secs_until(&self, later: &ThreadSample) -> f64 {
        later
            .threads
            .iter()
            .map(|(tid, t)| self.ran_ns(*tid, t))
            .sum::<u64>() as f64
            / 1e9
            + self.children_secs_until(later)
    }

    /// Every thread alive at `later` that ran since `self`, with how long (threads born in
    /// between count whole), for a caller that sorts the time its own way (the scaling
    /// figure's pollers, by thread name).
    pub fn runs_until(&self, later: &ThreadSample) -> Vec<ThreadRun> {
        later
            .threads
            .iter()
            .filter_map(|(tid, t)| {
                let ns = self.ran_ns(*tid, t);
                (ns > 0).then(|| ThreadRun {
                    tgid: t.tgid,
                    name: t.name.clone(),
                    kernel: t.kernel,
                    bound_cpu: t.bound_cpu,
                    secs: ns as f64 / 1e9,
                })
            })
            .collect()
    }

    /// CPU-seconds of this process's children reaped between `self` and `later` (a client
    /// that ran and exited in between).
    pub fn children_secs_until(&self, later: &ThreadSample) -> f64 {
        later.children.saturating_sub(self.children).as_secs_f64()
    }

    fn ran_ns(&self, tid: u32, later: &ThreadTime) -> u64 {
        match self.threads.get(&tid) {
            // A reused thread id (another process) counts whole.
            Some(before) if before.tgid == later.tgid => {
                later.runtime_ns.saturating_sub(before.runtime_ns)
            }
            _ => later.runtime_ns,
        }
    }

    /// `root` and every process descended from it (nginx's master and its workers), as seen
    /// in this sample.
    pub fn process_tree(&self, root: u32) -> HashSet<u32> {
        let mut tree = HashSet::from([root]);
        loop {
            let before = tree.len();
            for t in self.threads.values() {
                if tree.contains(&t.ppid) && !t.kernel {
                    tree.insert(t.tgid);
                }
            }
            if tree.len() == before {
                return tree;
            }
        }
    }
}

/// One thread's CPU time between two samples ([`ThreadSample::runs_until`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadRun {
    /// Its process.
    pub tgid: u32,
    /// Its name (`comm`), e.g. `xgate-q1` or `ksoftirqd/0`.
    pub name: String,
    pub kernel: bool,
    /// The only CPU it may run on, if one.
    pub bound_cpu: Option<usize>,
    pub secs: f64,
}

/// `PF_KTHREAD` in the flags field of `/proc/<pid>/stat` (include/linux/sched.h).
const PF_KTHREAD: u64 = 0x0020_0000;

struct StatFields {
    name: String,
    ppid: u32,
    flags: u64,
}

/// Name, parent and flags from a `stat` line (the name in field 2 may hold spaces and
/// parentheses, so the fields after it are counted from the last ')').
fn parse_stat(line: &str) -> Option<StatFields> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let name = line.get(open + 1..close)?.to_string();
    let mut f = line.get(close + 1..)?.split_ascii_whitespace();
    let _state = f.next()?;
    let ppid = f.next()?.parse().ok()?;
    let flags = f.nth(4)?.parse().ok()?;
    Some(StatFields { name, ppid, flags })
}

/// The first field of `schedstat`: nanoseconds spent on a CPU.
fn schedstat_runtime(text: &str) -> Option<u64> {
    text.split_ascii_whitespace().next()?.parse().ok()
}

/// The CPU of `Cpus_allowed_list:` in `status` when it names exactly one.
fn status_bound_cpu(status: &str) -> Option<usize> {
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
        .trim();
    list.parse().ok()
}

/// CPU-seconds on one side of the measurement, by kind of thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SideCpu {
    /// The side's own processes (server: xgate or nginx; client: loadgen or wrk).
    pub process_secs: f64,
    /// NAPI threads bound to the side's core: its network receive (threaded NAPI).
    pub napi_secs: f64,
    /// `ksoftirqd/<core>`: softirq work deferred to a thread.
    pub ksoftirqd_secs: f64,
    /// Every other kernel thread bound to the side's core (per-CPU kworkers, ...).
    pub other_kernel_secs: f64,
    /// Threads of other processes bound to the side's core (none, on a quiet machine).
    pub other_process_secs: f64,
}

impl SideCpu {
    pub fn total_secs(&self) -> f64 {
        self.process_secs
            + self.napi_secs
            + self.ksoftirqd_secs
            + self.other_kernel_secs
            + self.other_process_secs
    }

    fn add(&mut self, t: &ThreadTime, secs: f64, own_process: bool) {
        let slot = if own_process {
            &mut self.process_secs
        } else if !t.kernel {
            &mut self.other_process_secs
        } else if t.name.starts_with("napi/") {
            &mut self.napi_secs
        } else if t.name.starts_with("ksoftirqd/") {
            &mut self.ksoftirqd_secs
        } else {
            &mut self.other_kernel_secs
        };
        *slot += secs;
    }
}

/// Where a run's CPU time went.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    pub server_core: usize,
    pub client_core: usize,
    /// The server's processes and what is bound to the server's core: the server's cost.
    pub server: SideCpu,
    /// The client's processes (the finished client's time included) and what is bound to
    /// the client's core.
    pub client: SideCpu,
    /// The proxy scenarios' origin ([`super::proxy`]): its processes' time, wherever they
    /// ran (0 in the gateway comparison, which has none).
    #[serde(default)]
    pub origin_secs: f64,
    /// Everything else on the machine (unbound kernel threads, other processes, this
    /// runner).
    pub rest_secs: f64,
    /// The biggest parts of `rest_secs`: (thread name, seconds), at most five.
    #[serde(default)]
    pub rest_top: Vec<(String, f64)>,
    /// Network softirqs raised on each core during the run.
    pub softirqs: SoftirqCounts,
}

impl Attribution {
    /// Sorts the time between two samples. `server_pids` are the server's processes,
    /// `origin_pids` the origin's (empty without one); the client's process is what was
    /// reaped in between (its time comes from `RUSAGE_CHILDREN`: the client has exited by the
    /// second sample).
    pub fn between(
        before: &ThreadSample,
        after: &ThreadSample,
        cores: (usize, usize),
        (server_pids, origin_pids): (&HashSet<u32>, &HashSet<u32>),
        softirqs: SoftirqCounts,
    ) -> Attribution {
        let (server_core, client_core) = cores;
        let mut a = Attribution {
            server_core,
            client_core,
            softirqs,
            ..Attribution::default()
        };
        let mut rest: HashMap<&str, f64> = HashMap::new();
        for (tid, t) in &after.threads {
            let secs = before.ran_ns(*tid, t) as f64 / 1e9;
            if secs == 0.0 {
                continue;
            }
            if server_pids.contains(&t.tgid) {
                a.server.add(t, secs, true);
            } else if origin_pids.contains(&t.tgid) {
                // Before the cores: pinned to the client's core (a 2-CPU machine), it is
                // still not the client.
                a.origin_secs += secs;
            } else if t.bound_cpu == Some(server_core) {
                a.server.add(t, secs, false);
            } else if t.bound_cpu == Some(client_core) {
                a.client.add(t, secs, false);
            } else {
                a.rest_secs += secs;
                *rest.entry(t.name.as_str()).or_default() += secs;
            }
        }
        let mut top: Vec<(String, f64)> = rest.into_iter().map(|(n, s)| (n.into(), s)).collect();
        top.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
        top.truncate(5);
        a.rest_top = top;
        a.client.process_secs += before.children_secs_until(after);
        a
    }
}

/// `NET_RX` and `NET_TX` softirqs per CPU, from `/proc/softirqs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SoftirqCounts {
    pub net_rx: Vec<u64>,
    pub net_tx: Vec<u64>,
}

impl SoftirqCounts {
    pub fn read() -> Self {
        std::fs::read_to_string("/proc/softirqs")
            .map(|t| Self::parse(&t))
            .unwrap_or_default()
    }

    pub fn parse(text: &str) -> Self {
        let row = |name: &str| -> Vec<u64> {
            text.lines()
                .find_map(|l| l.trim_start().strip_prefix(name))
                .map(|rest| {
                    rest.split_ascii_whitespace()
                        .filter_map(|v| v.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        SoftirqCounts {
            net_rx: row("NET_RX:"),
            net_tx: row("NET_TX:"),
        }
    }

    /// How many of each ran on each core since `before`.
    pub fn since(&self, before: &SoftirqCounts) -> SoftirqCounts {
        let diff = |a: &[u64], b: &[u64]| -> Vec<u64> {
            a.iter()
                .zip(b.iter().chain(std::iter::repeat(&0)))
                .map(|(x, y)| x.saturating_sub(*y))
                .collect()
        };
        SoftirqCounts {
            net_rx: diff(&self.net_rx, &before.net_rx),
            net_tx: diff(&self.net_tx, &before.net_tx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_past_odd_names() {
        let line = "42 (a b) (c)) S 7 42 42 0 -1 2097216 100 0 0 0 17 5 0 0 20 0 1 0 100 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.name, "a b) (c)");
        assert_eq!(s.ppid, 7);
        assert_eq!(s.flags & PF_KTHREAD, PF_KTHREAD);
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn a_single_cpu_affinity_is_a_bound_cpu() {
        assert_eq!(
            status_bound_cpu("Name:\tx\nCpus_allowed_list:\t1\n"),
            Some(1)
        );
        assert_eq!(status_bound_cpu("Cpus_allowed_list:\t0-1\n"), None);
        assert_eq!(status_bound_cpu("Cpus_allowed_list:\t0,3\n"), None);
        assert_eq!(status_bound_cpu("Name:\tx\n"), None);
        assert_eq!(schedstat_runtime("123456 789 10\n"), Some(123456));
    }

    fn thread(tgid: u32, ns: u64, cpu: Option<usize>, kernel: bool, name: &str) -> ThreadTime {
        ThreadTime {
            tgid,
            runtime_ns: ns,
            bound_cpu: cpu,
            kernel,
            name: name.into(),
            ppid: if kernel { 2 } else { 1 },
        }
    }

    #[test]
    fn time_is_sorted_by_side_and_kind() {
        let mut before = ThreadSample::default();
        let mut after = ThreadSample::default();
        // (tid, tgid, before ns, after ns, bound cpu, kernel, name)
        let rows = [
            (10, 10, 0, 3_000_000_000, Some(1), false, "xgate-poller"),
            (11, 10, 0, 1_000_000_000, None, false, "xgate"),
            (
                20,
                20,
                1_000_000_000,
                1_500_000_000,
                Some(1),
                true,
                "napi/lgcs-8",
            ),
            (21, 21, 0, 250_000_000, Some(1), true, "ksoftirqd/1"),
            (22, 22, 0, 125_000_000, Some(1), true, "kworker/1:0"),
            (30, 30, 0, 2_000_000_000, Some(0), true, "napi/lgcc-9"),
            (40, 40, 0, 700_000_000, None, false, "sshd"),
            (41, 41, 0, 100_000_000, Some(1), false, "stray"),
            (50, 50, 0, 300_000_000, Some(0), false, "nginx"),
        ];
        for (tid, tgid, a, b, cpu, k, name) in rows {
            before.threads.insert(tid, thread(tgid, a, cpu, k, name));
            after.threads.insert(tid, thread(tgid, b, cpu, k, name));
        }
        after.children = std::time::Duration::from_secs(4);
        let a = Attribution::between(
            &before,
            &after,
            (1, 0),
            (&HashSet::from([10]), &HashSet::from([50])),
            SoftirqCounts::default(),
        );
        assert_eq!(a.server.process_secs, 4.0);
        assert_eq!(a.server.napi_secs, 0.5);
        assert_eq!(a.server.ksoftirqd_secs, 0.25);
        assert_eq!(a.server.other_kernel_secs, 0.125);
        assert_eq!(a.server.other_process_secs, 0.1);
        assert_eq!(a.client.napi_secs, 2.0);
        assert_eq!(a.client.process_secs, 4.0);
        // The origin, though bound to the client's core, is neither client nor rest.
        assert_eq!(a.client.other_process_secs, 0.0);
        assert_eq!(a.origin_secs, 0.3);
        assert_eq!(a.rest_secs, 0.7);
        assert_eq!(a.rest_top, vec![("sshd".to_string(), 0.7)]);
        assert!((before.total_secs_until(&after) - 11.975).abs() < 1e-9);
    }

    #[test]
    fn thread_runs_name_each_thread_that_ran() {
        let mut before = ThreadSample::default();
        let mut after = ThreadSample::default();
        before
            .threads
            .insert(7, thread(7, 1_000, Some(0), false, "xgate-q0"));
        after
            .threads
            .insert(7, thread(7, 501_000, Some(0), false, "xgate-q0"));
        before
            .threads
            .insert(8, thread(7, 50, Some(1), false, "xgate-q1"));
        after
            .threads
            .insert(8, thread(7, 50, Some(1), false, "xgate-q1"));
        after
            .threads
            .insert(9, thread(9, 2_000, None, true, "ksoftirqd/0"));
        after.children = std::time::Duration::from_millis(3);
        let mut runs = before.runs_until(&after);
        runs.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            runs.len(),
            2,
            "a thread that did not run is left out: {runs:?}"
        );
        assert_eq!(runs[0].name, "ksoftirqd/0");
        assert!(runs[0].kernel && (runs[0].secs - 2e-6).abs() < 1e-15);
        assert_eq!((runs[1].tgid, runs[1].bound_cpu), (7, Some(0)));
        assert!((runs[1].secs - 5e-4).abs() < 1e-12);
        assert!((before.children_secs_until(&after) - 0.003).abs() < 1e-12);
    }

    #[test]
    fn a_reused_thread_id_counts_whole() {
        let mut before = ThreadSample::default();
        let mut after = ThreadSample::default();
        before.threads.insert(5, thread(5, 900, None, false, "old"));
        after.threads.insert(5, thread(6, 100, None, false, "new"));
        assert!((before.total_secs_until(&after) - 100e-9).abs() < 1e-15);
    }

    #[test]
    fn a_process_tree_holds_the_workers() {
        let mut s = ThreadSample::default();
        let mut master = thread(100, 0, None, false, "nginx");
        master.ppid = 1;
        let mut worker = thread(101, 0, Some(1), false, "nginx");
        worker.ppid = 100;
        let mut other = thread(102, 0, None, false, "bash");
        other.ppid = 1;
        s.threads.insert(100, master);
        s.threads.insert(101, worker);
        s.threads.insert(102, other);
        assert_eq!(s.process_tree(100), HashSet::from([100, 101]));
    }

    #[test]
    fn softirqs_are_counted_per_cpu() {
        let a = SoftirqCounts::parse(
            "                    CPU0       CPU1\n          HI:          1          0\n      NET_TX:         10         20\n      NET_RX:        100        200\n",
        );
        let b = SoftirqCounts::parse(
            "                    CPU0       CPU1\n      NET_TX:         11         20\n      NET_RX:        150        205\n",
        );
        let d = b.since(&a);
        assert_eq!(d.net_rx, vec![50, 5]);
        assert_eq!(d.net_tx, vec![1, 0]);
    }

    #[test]
    fn this_process_is_seen() {
        let a = ThreadSample::read();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(200) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let b = ThreadSample::read();
        let me = HashSet::from([std::process::id()]);
        let none = HashSet::new();
        let attr = Attribution::between(&a, &b, (1, 0), (&me, &none), SoftirqCounts::default());
        assert!(attr.server.process_secs > 0.1, "{attr:?}");
        assert!(a.total_secs_until(&b) >= attr.server.process_secs);
    }
}
