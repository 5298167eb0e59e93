//! What the machine did, and a description of the machine for the results file.
//!
//! CPU time is measured two ways. [`super::attribution::ThreadSample`] reads the run time of
//! every thread on the machine (servers, kernel threads such as ksoftirqd and NAPI threads)
//! plus the finished client's (through `RUSAGE_CHILDREN`): the kernel keeps these from the
//! scheduler's nanosecond clock, so they are exact, and softirq work (on a plain veth, the
//! receiver's whole stack runs in the sender's system call) is charged to the thread it ran
//! in. It is the figure the comparison reports. [`CpuSample`] reads `/proc/stat`, which samples the timer tick per CPU; on this VM it
//! loses ticks (a CPU's busy + idle jiffies fall well short of the elapsed time when the
//! hypervisor deschedules it), so it is kept only as a per-CPU indication.

use serde::Serialize;

/// Jiffies per CPU at one moment: `(busy, total)`; index 0 is the whole machine, 1.. CPU 0...
/// And the jiffies each CPU spent in softirq (index 0: CPU 0).
#[derive(Debug, Clone, Default)]
pub struct CpuSample(Vec<(u64, u64)>, Vec<u64>);

impl CpuSample {
    pub fn read() -> std::io::Result<Self> {
        let text = std::fs::read_to_string("/proc/stat")?;
        Ok(Self::parse(&text))
    }

    /// The `cpu` and `cpuN` lines: user nice system idle iowait irq softirq steal ...
    /// Busy is everything but idle and iowait.
    pub fn parse(text: &str) -> Self {
        let mut out = Vec::new();
        let mut softirq = Vec::new();
        for line in text.lines() {
            let mut fields = line.split_ascii_whitespace();
            let per_cpu = match fields.next() {
                Some("cpu") => false,
                Some(name) if name.starts_with("cpu") => true,
                _ => continue,
            };
            let v: Vec<u64> = fields.take(8).filter_map(|f| f.parse().ok()).collect();
            if v.len() < 5 {
                continue;
            }
            let total: u64 = v.iter().sum();
            let idle = v[3] + v[4];
            out.push((total - idle, total));
            if per_cpu {
                softirq.push(v.get(6).copied().unwrap_or(0));
            }
        }
        CpuSample(out, softirq)
    }

    /// Busy share of the machine (all CPUs, 0..=1) and of each CPU between `self` and `later`.
    pub fn busy_since(&self, later: &CpuSample) -> CpuBusy {
        let share = |a: (u64, u64), b: (u64, u64)| {
            let total = b.1.saturating_sub(a.1);
            if total == 0 {
                0.0
            } else {
                b.0.saturating_sub(a.0) as f64 / total as f64
            }
        };
        let pairs: Vec<f64> = self
            .0
            .iter()
            .zip(&later.0)
            .map(|(&a, &b)| share(a, b))
            .collect();
        let busy_jiffies = later
            .0
            .first()
            .zip(self.0.first())
            .map_or(0, |(b, a)| b.0.saturating_sub(a.0));
        let hz = clock_ticks() as f64;
        CpuBusy {
            machine: pairs.first().copied().unwrap_or(0.0),
            per_cpu: pairs.get(1..).map(<[f64]>::to_vec).unwrap_or_default(),
            busy_cpu_secs: busy_jiffies as f64 / hz,
            task_cpu_secs: 0.0,
            softirq_secs: later
                .1
                .iter()
                .zip(&self.1)
                .map(|(b, a)| b.saturating_sub(*a) as f64 / hz)
                .collect(),
        }
    }
}

/// CPU use over an interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct CpuBusy {
    /// Busy share of the whole machine (0..=1).
    pub machine: f64,
    /// Busy share of each CPU.
    pub per_cpu: Vec<f64>,
    /// CPU-seconds spent busy, all CPUs together (from `/proc/stat`'s ticks).
    pub busy_cpu_secs: f64,
    /// CPU-seconds used by every thread on the machine and by the finished client
    /// ([`super::attribution::ThreadSample`]): the figure per request is computed from this one.
    #[serde(default)]
    pub task_cpu_secs: f64,
    /// Seconds each CPU spent in softirq, sampled by the timer tick (lossy on this VM, but
    /// it sees softirq work that ran while the CPU was idle, which no thread's clock does).
    #[serde(default)]
    pub softirq_secs: Vec<f64>,
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// User + system time of this process's children that have been waited for.
pub fn children_cpu() -> std::time::Duration {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return std::time::Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        std::time::Duration::from_secs(t.tv_sec as u64)
            + std::time::Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The machine the figures come from.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct MachineInfo {
    pub hostname: String,
    pub kernel: String,
    pub cpu_model: String,
    pub cpus: usize,
    pub memory_gib: f64,
    pub virtualised: Option<String>,
}

impl MachineInfo {
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".into(), |(_, v)| v.trim().to_string());
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let virtualised = cpuinfo
            .lines()
            .any(|l| l.starts_with("flags") && l.contains(" hypervisor"))
            .then(|| {
                std::process::Command::new("systemd-detect-virt")
                    .output()
                    .ok()
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "yes (hypervisor flag)".into())
            });
        MachineInfo {
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap_or_default()
                .trim()
                .to_string(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            cpu_model,
            cpus,
            memory_gib: mem_kib as f64 / (1024.0 * 1024.0),
            virtualised,
        }
    }
}

/// Inter-processor interrupts each CPU received (`/proc/interrupts`: rescheduling and
/// function-call IPIs, `RES` and `CAL`): a thread woken on another CPU costs one, and on a VM
/// each is an exit to the hypervisor.
pub fn ipis_per_cpu() -> Vec<u64> {
    std::fs::read_to_string("/proc/interrupts")
        .map(|t| parse_ipis(&t))
        .unwrap_or_default()
}

/// The `RES` and `CAL` rows of `/proc/interrupts`, summed per CPU.
pub fn parse_ipis(text: &str) -> Vec<u64> {
    let mut sum: Vec<u64> = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        let Some(rest) = line
            .strip_prefix("RES:")
            .or_else(|| line.strip_prefix("CAL:"))
        else {
            continue;
        };
        let counts = rest
            .split_ascii_whitespace()
            .map_while(|v| v.parse::<u64>().ok());
        for (i, n) in counts.enumerate() {
            if sum.len() <= i {
                sum.push(0);
            }
            sum[i] += n;
        }
    }
    sum
}

/// The load average's first figure, to show how busy the machine was around a run.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipis_are_the_rescheduling_and_function_call_rows() {
        let text = "           CPU0       CPU1\n  0:         10          0   IO-APIC   2-edge      timer\nNMI:          0          0   Non-maskable interrupts\nRES:     100     200   Rescheduling interrupts\nCAL:       5       7   Function call interrupts\nTLB:       9       9   TLB shootdowns\n";
        assert_eq!(parse_ipis(text), vec![105, 207]);
        assert!(parse_ipis("").is_empty());
    }

    #[test]
    fn busy_share_counts_everything_but_idle_and_iowait() {
        let a = CpuSample::parse(
            "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 50 0 50 350 50 0 0 0 0 0\ncpu1 50 0 50 350 50 0 0 0 0 0\nintr 1\n",
        );
        let b = CpuSample::parse(
            "cpu  200 0 200 800 100 0 100 0 0 0\ncpu0 150 0 150 350 50 0 100 0 0 0\ncpu1 50 0 50 450 50 0 0 0 0 0\n",
        );
        let busy = a.busy_since(&b);
        assert!((busy.machine - 0.75).abs() < 1e-9, "{busy:?}");
        assert_eq!(busy.per_cpu.len(), 2);
        assert!((busy.per_cpu[0] - 1.0).abs() < 1e-9);
        assert!(busy.per_cpu[1].abs() < 1e-9);
        let hz = clock_ticks() as f64;
        assert_eq!(busy.softirq_secs, vec![100.0 / hz, 0.0]);
    }
}
