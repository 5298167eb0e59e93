//! Which CPU each RX queue's poller runs on when the operator names none (`[bypass] cores`).
//!
//! A poller busy-polls its queue for `idle_spin_us` after work and owns its engine's memory,
//! so it wants a CPU of its own, near the NIC: one CPU per queue, from the CPUs this process
//! may run on (its affinity, which a cpuset cgroup or `taskset` narrows), those of the NIC's
//! NUMA node first (`/sys/class/net/<if>/device/local_cpulist`; a virtual interface has
//! none), in ascending order, skipping the kernel path's CPU when it is pinned and there are
//! CPUs enough. With fewer CPUs than queues, pollers share CPUs round robin (and the choice
//! says so). The interrupt CPUs of the queues are not read: their names in
//! `/proc/interrupts` are the driver's own, and an operator who tunes IRQ affinity names the
//! poller cores too.

use std::fmt;
use std::io;

/// The CPUs a choice is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSet {
    /// CPUs the process may run on, ascending.
    pub allowed: Vec<usize>,
    /// CPUs local to the NIC (its NUMA node), ascending; empty when unknown.
    pub local: Vec<usize>,
}

impl CpuSet {
    /// The process's allowed CPUs (`Cpus_allowed_list` of `/proc/self/status`) and the CPUs
    /// local to `ifname`'s device, if it has one.
    pub fn of_interface(ifname: &str) -> io::Result<CpuSet> {
        let status = std::fs::read_to_string("/proc/self/status")?;
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .and_then(|list| parse_cpu_list(list.trim()))
            .ok_or_else(|| io::Error::other("no Cpus_allowed_list in /proc/self/status"))?;
        let local =
            std::fs::read_to_string(format!("/sys/class/net/{ifname}/device/local_cpulist"))
                .ok()
                .and_then(|list| parse_cpu_list(list.trim()))
                .unwrap_or_default();
        Ok(CpuSet { allowed, local })
    }
}

/// One CPU per queue, and how they were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreChoice {
    /// CPU of queue q at index q.
    pub cores: Vec<usize>,
    /// Taken from the NIC's NUMA node.
    pub numa_local: bool,
    /// Fewer CPUs than queues: some pollers share one.
    pub shared: bool,
}

impl fmt::Display for CoreChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (q, core) in self.cores.iter().enumerate() {
            let sep = if q == 0 { "" } else { ", " };
            write!(f, "{sep}queue {q} on CPU {core}")?;
        }
        write!(
            f,
            " ({}{})",
            if self.numa_local {
                "the NIC's NUMA node"
            } else {
                "the process's CPUs"
            },
            if self.shared {
                "; fewer CPUs than queues, so pollers share CPUs"
            } else {
                ", one per queue"
            }
        )
    }
}

/// The choice described in the module documentation; `None` when no CPU is allowed at all.
pub fn choose(queues: u32, cpus: &CpuSet, avoid: Option<usize>) -> Option<CoreChoice> {
    let local: Vec<usize> = cpus
        .local
        .iter()
        .copied()
        .filter(|c| cpus.allowed.contains(c))
        .collect();
    let numa_local = local.len() >= queues as usize;
    let mut candidates = if numa_local {
        local
    } else {
        cpus.allowed.clone()
    };
    if candidates.is_empty() {
        return None;
    }
    if let Some(avoid) = avoid {
        if candidates.len() > queues as usize {
            candidates.retain(|&c| c != avoid);
        }
    }
    let shared = candidates.len() < queues as usize;
    let cores = (0..queues as usize)
        .map(|q| candidates[q % candidates.len()])
        .collect();
    Some(CoreChoice {
        cores,
        numa_local,
        shared,
    })
}

/// A kernel CPU list (`0-3,8,10-11`), ascending and without repeats; `None` when malformed.
pub fn parse_cpu_list(text: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    if text.is_empty() {
        return Some(cpus);
    }
    for part in text.split(',') {
        let (lo, hi): (usize, usize) = match part.split_once('-') {
            Some((lo, hi)) => (lo.parse().ok()?, hi.parse().ok()?),
            None => {
                let c = part.parse().ok()?;
                (c, c)
            }
        };
        if lo > hi || hi >= 1 << 16 {
            return None;
        }
        cpus.extend(lo..=hi);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Some(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(allowed: &[usize], local: &[usize]) -> CpuSet {
        CpuSet {
            allowed: allowed.to_vec(),
            local: local.to_vec(),
        }
    }

    #[test]
    fn cpu_lists_parse_as_the_kernel_writes_them() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("5"), Some(vec![5]));
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("a"), None);
        assert_eq!(parse_cpu_list("0-70000"), None);
    }

    #[test]
    fn one_cpu_per_queue_from_the_nics_node_first() {
        let c = choose(2, &set(&[0, 1, 2, 3, 4, 5, 6, 7], &[4, 5, 6, 7]), None).unwrap();
        assert_eq!(c.cores, vec![4, 5]);
        assert!(c.numa_local && !c.shared);
        // A node with too few allowed CPUs for the queues: the process's CPUs instead.
        let c = choose(3, &set(&[0, 1, 2, 3], &[2, 3]), None).unwrap();
        assert_eq!(c.cores, vec![0, 1, 2]);
        assert!(!c.numa_local);
        // The node's CPUs the process may not use are not candidates.
        let c = choose(2, &set(&[0, 1, 2], &[1, 2, 3]), None).unwrap();
        assert_eq!(c.cores, vec![1, 2]);
    }

    #[test]
    fn the_kernel_paths_cpu_is_skipped_when_there_are_enough() {
        let c = choose(2, &set(&[0, 1, 2], &[]), Some(0)).unwrap();
        assert_eq!(c.cores, vec![1, 2]);
        let c = choose(2, &set(&[0, 1], &[]), Some(0)).unwrap();
        assert_eq!(
            c.cores,
            vec![0, 1],
            "not enough CPUs to leave one to the kernel path"
        );
    }

    #[test]
    fn more_queues_than_cpus_share_round_robin_and_say_so() {
        let c = choose(4, &set(&[2, 3], &[]), None).unwrap();
        assert_eq!(c.cores, vec![2, 3, 2, 3]);
        assert!(c.shared);
        assert_eq!(
            c.to_string(),
            "queue 0 on CPU 2, queue 1 on CPU 3, queue 2 on CPU 2, queue 3 on CPU 3 \
             (the process's CPUs; fewer CPUs than queues, so pollers share CPUs)"
        );
        assert_eq!(choose(1, &set(&[], &[]), None), None);
    }

    #[test]
    fn this_process_has_cpus() {
        let cpus = CpuSet::of_interface("lo").unwrap();
        assert!(!cpus.allowed.is_empty());
        assert!(cpus.local.is_empty(), "lo has no device");
    }
}
