//! The scaling figure's summary: throughput with one and two RX queues, each poller's CPU
//! per request and busy share, the client's share of the machine and what it does to the
//! two-queue figure, the split of the work over the queues, and the projection per added
//! dedicated core, labelled as one, with its assumptions and the two-queue run as its check.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::lab_report::{cell, fmt, ratio, ratio_cell};
use super::report::Spread;
use super::scaling::{PollerRun, ScalingRecord, ScalingRun, Setup};
use super::scenarios::Scenario;
use super::svg;
use super::CompareError;

/// The core counts the projection is shown for.
pub const PROJECTED_CORES: [u32; 5] = [1, 2, 4, 8, 16];

/// `secs` of CPU per request answered, in µs (NaN without requests).
fn per_request(r: &ScalingRun, secs: f64) -> f64 {
    if r.client.requests > 0 {
        secs * 1e6 / r.client.requests as f64
    } else {
        f64::NAN
    }
}

/// The pollers' CPU time (all queues together) per request answered, in µs.
pub fn poller_us_per_request(r: &ScalingRun) -> f64 {
    per_request(r, r.cpu.pollers_secs)
}

/// The client's (loadgen's threads') CPU time per request, in µs.
pub fn client_us_per_request(r: &ScalingRun) -> f64 {
    per_request(r, r.cpu.client_secs)
}

/// Every thread's CPU time on the machine per request, in µs.
pub fn machine_us_per_request(r: &ScalingRun) -> f64 {
    per_request(r, r.cpu.total_secs())
}

/// The machine's CPUs, as the run saw them (its per-CPU busy shares).
fn cpus(r: &ScalingRun) -> f64 {
    r.cpu.busy_per_cpu.len().max(1) as f64
}

/// `secs` as a share of the machine over the run (1.0: every CPU busy throughout).
fn machine_share(r: &ScalingRun, secs: f64) -> f64 {
    if r.elapsed_secs > 0.0 {
        secs / (r.elapsed_secs * cpus(r))
    } else {
        f64::NAN
    }
}

/// The client's share of the machine's CPU time over the run.
pub fn client_share(r: &ScalingRun) -> f64 {
    machine_share(r, r.cpu.client_secs)
}

/// The pollers' share of the machine's CPU time over the run.
pub fn pollers_share(r: &ScalingRun) -> f64 {
    machine_share(r, r.cpu.pollers_secs)
}

/// Every thread's share of the machine: how busy it was, by the scheduler's clocks.
pub fn machine_busy(r: &ScalingRun) -> f64 {
    machine_share(r, r.cpu.total_secs())
}

/// What the machine's CPUs answer at this run's machine CPU per request, all of them busy.
pub fn machine_bound_rps(r: &ScalingRun) -> f64 {
    cpus(r) * 1e6 / machine_us_per_request(r)
}

/// A poller's busy share of its own CPU (its thread's time over the run's).
pub fn poller_busy(r: &ScalingRun, p: &PollerRun) -> f64 {
    if r.elapsed_secs > 0.0 {
        p.cpu_secs / r.elapsed_secs
    } else {
        f64::NAN
    }
}

/// The poller's loop rounds that did work, over all its rounds (`xgate status`).
pub fn loop_busy_ratio(p: &PollerRun) -> f64 {
    let total = p.busy_loops + p.idle_loops;
    if total == 0 {
        f64::NAN
    } else {
        p.busy_loops as f64 / total as f64
    }
}

/// Inter-processor interrupts (all CPUs) per request answered.
pub fn ipis_per_request(r: &ScalingRun) -> f64 {
    if r.client.requests > 0 {
        r.cpu.ipis.iter().sum::<u64>() as f64 / r.client.requests as f64
    } else {
        f64::NAN
    }
}

/// Requests answered per poller loop round that found work (all queues): how much each
/// round's fixed cost (ring checks, the transmit kick) is spread over.
pub fn requests_per_busy_round(r: &ScalingRun) -> f64 {
    let rounds: u64 = r.pollers.iter().map(|p| p.busy_loops).sum();
    if rounds == 0 {
        f64::NAN
    } else {
        r.pollers.iter().map(|p| p.requests).sum::<u64>() as f64 / rounds as f64
    }
}

/// Each value's share of their sum (empty or all zero: NaN each).
pub fn shares(values: &[f64]) -> Vec<f64> {
    let sum: f64 = values.iter().sum();
    values
        .iter()
        .map(|v| if sum > 0.0 { v / sum } else { f64::NAN })
        .collect()
}

/// The runs of one setup and workload.
fn runs(r: &ScalingRecord, setup: Setup, workload: Scenario) -> impl Iterator<Item = &ScalingRun> {
    r.runs
        .iter()
        .filter(move |x| x.setup == setup && x.workload == workload)
}

/// `f` of each repetition of a setup and workload, as a spread.
fn spread(
    r: &ScalingRecord,
    setup: Setup,
    workload: Scenario,
    f: impl Fn(&ScalingRun) -> f64,
) -> Option<Spread> {
    Spread::of(runs(r, setup, workload).map(f))
}

fn throughput(r: &ScalingRecord, setup: Setup, workload: Scenario) -> Option<Spread> {
    spread(r, setup, workload, |x| x.client.throughput_rps)
}

fn pct(x: Option<Spread>) -> String {
    x.map_or("—".into(), |s| format!("{:.0}%", 100.0 * s.median))
}

/// The projection from one queue's cost (module doc): what one more dedicated core would
/// answer, and the two-queue run beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub workload: Scenario,
    /// The poller's CPU µs per request with one queue, its poller alone on its CPU.
    pub cost_us: Spread,
    /// That poller's busy share of its CPU (saturated: close to 1).
    pub busy: Spread,
    pub measured_1q: Option<Spread>,
    pub measured_2q: Option<Spread>,
    /// The pollers' CPU µs per request with two queues.
    pub cost_2q_us: Option<Spread>,
}

impl Projection {
    /// Requests/s one more dedicated core adds: 10⁶ / µs per request.
    pub fn per_core_rps(&self) -> f64 {
        1e6 / self.cost_us.median
    }

    /// Requests/s of `cores` dedicated cores, each serving one queue at the one-queue cost.
    pub fn at(&self, cores: u32) -> f64 {
        f64::from(cores) * self.per_core_rps()
    }

    /// The two-queue throughput measured here over the projection for two dedicated cores.
    pub fn two_queues_of_projection(&self) -> Option<f64> {
        self.measured_2q.map(|m| m.median / self.at(2))
    }

    /// The pollers' CPU per request with two queues over one queue's (1.00: a second queue
    /// costs each request nothing more).
    pub fn two_queue_cost_ratio(&self) -> Option<f64> {
        self.cost_2q_us.map(|c| c.median / self.cost_us.median)
    }
}

/// The projection for `workload`, from its one-queue runs (`None` without them).
pub fn projection(r: &ScalingRecord, workload: Scenario) -> Option<Projection> {
    let cost_us =
        spread(r, Setup::OneQueue, workload, poller_us_per_request).filter(|c| c.median > 0.0)?;
    let busy = spread(r, Setup::OneQueue, workload, |x| {
        x.pollers.iter().map(|p| poller_busy(x, p)).sum()
    })?;
    Some(Projection {
        workload,
        cost_us,
        busy,
        measured_1q: throughput(r, Setup::OneQueue, workload),
        measured_2q: throughput(r, Setup::TwoQueues, workload),
        cost_2q_us: spread(r, Setup::TwoQueues, workload, poller_us_per_request),
    })
}

/// The setups the record ran, in their order.
fn setups(r: &ScalingRecord) -> Vec<Setup> {
    r.layouts.iter().map(|l| l.setup).collect()
}

/// The summary in markdown.
pub fn markdown(r: &ScalingRecord) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(
        s,
        "# xgate scaling: 1 and 2 RX queues — {}\n",
        r.started_utc
    );
    let _ = writeln!(
        s,
        "Commit `{}` on {} ({} CPUs, {:.0} GiB, kernel {}{}), load average before the run \
         {:.2}. {} repetition(s) of {} s after {} s of warm-up, the setups interleaved; \
         figures are medians with [min–max]. Reproduce: `{}`.\n",
        r.commit,
        m.cpu_model,
        m.cpus,
        m.memory_gib,
        m.kernel,
        m.virtualised
            .as_deref()
            .map_or(String::new(), |v| format!(", virtualised: {v}")),
        r.load_average_before,
        r.reps,
        r.duration_secs,
        r.warmup_secs,
        r.command_line
    );
    let _ = writeln!(
        s,
        "xgate serves its bypass port with one RX queue (one poller on one CPU) and with two \
         (one poller per CPU), on compare's plain veth pair built with that many queues on \
         each end; the client's flows spread over its end's TX queues by their hash, and TX \
         queue q feeds the server's RX queue q, poller q's. The client is `loadgen run`, closed \
         loop, one thread per CPU listed, every response checked. Poller CPU is each poller \
         thread's (`xgate-q<N>`) scheduler clock; the client's is its threads'; the machine's \
         every thread's. On a plain veth each end's receive runs inside the other end's \
         transmit: a poller's time includes the client's TCP receive of its responses, and the \
         client's includes the XDP receive and AF_XDP copy of its requests.\n"
    );
    for t in &r.topologies {
        let _ = writeln!(s, "- {}", t.summary_line());
    }
    let _ = writeln!(
        s,
        "\n| setup | RX queues | pollers (queue: CPU) | client threads on CPUs | what it is |\n| --- | ---: | --- | --- | --- |"
    );
    for l in &r.layouts {
        let pollers: Vec<String> = l
            .poller_cpus
            .iter()
            .enumerate()
            .map(|(q, c)| format!("{q}: {c}"))
            .collect();
        let clients: Vec<String> = l.client_cpus.iter().map(usize::to_string).collect();
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} | {} |",
            l.setup.name(),
            l.queues(),
            pollers.join(", "),
            clients.join(", "),
            l.setup.title()
        );
    }
    s += &throughput_table(r);
    s += &client_effect(r);
    s += &cpu_table(r);
    s += &split_table(r);
    s += &projection_section(r);
    let failed: u64 = r.runs.iter().map(|x| x.client.errors).sum();
    let _ = writeln!(
        s,
        "\n{failed} failed request(s) in the whole run (every response checked: status, length, and the bytes of `/bytes`)."
    );
    for x in r.runs.iter().filter(|x| x.client.errors > 0) {
        let kinds: Vec<String> = x
            .client
            .errors_by_kind
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(
            s,
            "- {} {} rep {}: {}",
            x.setup.name(),
            x.workload.name(),
            x.rep,
            kinds.join(", ")
        );
    }
    s
}

fn throughput_table(r: &ScalingRecord) -> String {
    let mut s = String::new();
    let setups = setups(r);
    let _ = writeln!(s, "\n## Throughput (requests/s)\n");
    let mut head = "| workload |".to_string();
    let mut rule = "| --- |".to_string();
    for st in &setups {
        head += &format!(" `{}` |", st.name());
        rule += " ---: |";
    }
    head += " `2q` / `1q` | `2q` / `1q-shared` |";
    rule += " ---: | ---: |";
    let _ = writeln!(s, "{head}\n{rule}");
    for &w in &r.workloads {
        let mut row = format!("| {} |", w.title());
        for &st in &setups {
            row += &format!(" {} |", cell(throughput(r, st, w)));
        }
        let two = throughput(r, Setup::TwoQueues, w);
        for base in [Setup::OneQueue, Setup::OneQueueShared] {
            row += &format!(" {} |", ratio_cell(ratio(two, throughput(r, base, w))));
        }
        let _ = writeln!(s, "{row}");
    }
    s
}

/// What bounded a run, from the shares: the machine (every CPU busy, the pollers not), the
/// pollers, or neither.
pub fn bound(machine_busy: f64, busiest_poller: f64) -> &'static str {
    if busiest_poller >= 0.9 && machine_busy >= 0.9 {
        "the poller and the machine alike (the poller at 90% of its CPU or more, and every CPU busy, the client's included)"
    } else if busiest_poller >= 0.9 {
        "the pollers (the busiest at 90% of its CPU or more)"
    } else if machine_busy >= 0.9 {
        "the machine, not the pollers (every CPU was busy, the client's share included, while no poller was)"
    } else {
        "neither (no poller and not the machine at 90%: the closed loop's round trip set the pace)"
    }
}

/// The busiest poller's busy share of its CPU.
pub fn busiest_poller(r: &ScalingRun) -> f64 {
    r.pollers
        .iter()
        .map(|p| poller_busy(r, p))
        .fold(0.0, f64::max)
}

/// The plain statement the issue asks for: what the client's share does to the two-queue
/// figure, per workload; then what the client's placement does to the poller's cost.
fn client_effect(r: &ScalingRecord) -> String {
    let mut s = String::new();
    if !setups(r).contains(&Setup::TwoQueues) {
        return s;
    }
    let _ = writeln!(
        s,
        "\n## What the client's share does to the 2-queue figure\n\nWith two queues both \
         CPUs carry a poller, and the client (which had a CPU of its own with one queue) runs \
         beside them: whatever it spends, the pollers cannot. The machine's bound is its CPUs \
         over every thread's CPU time per request (client, pollers, kernel threads, the rest).\n"
    );
    for &w in &r.workloads {
        let two = |f: fn(&ScalingRun) -> f64| spread(r, Setup::TwoQueues, w, f);
        let (Some(rps), Some(client), Some(pollers), Some(busy), Some(bound_rps), Some(busiest)) = (
            throughput(r, Setup::TwoQueues, w),
            two(client_share),
            two(pollers_share),
            two(machine_busy),
            two(machine_bound_rps),
            two(busiest_poller),
        ) else {
            continue;
        };
        let one = |f: fn(&ScalingRun) -> f64| spread(r, Setup::OneQueue, w, f);
        let with_one = match (
            throughput(r, Setup::OneQueue, w),
            one(machine_busy),
            one(client_share),
            one(busiest_poller),
        ) {
            (Some(o), Some(b), Some(c), Some(p)) => format!(
                " against {} with 1 (x{:.2}). With 1 queue the machine was {:.0}% busy (the \
                 client {:.0}% of it), its poller {:.0}% of its CPU: bounded by {}",
                fmt(o.median),
                rps.median / o.median,
                100.0 * b.median,
                100.0 * c.median,
                100.0 * p.median,
                bound(b.median, p.median)
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "- **{}**: {} req/s with 2 queues{}. With 2 queues the client took {:.0}% of the \
             machine's CPU time ({} µs per request), the pollers {:.0}% (busiest poller {:.0}% \
             of its CPU), the machine was {:.0}% busy; at {} µs of machine CPU per request its \
             {} CPUs answer at most {} req/s, and the run reached {:.0}% of that: bounded by {}.",
            w.name(),
            fmt(rps.median),
            with_one,
            100.0 * client.median,
            two(client_us_per_request).map_or("—".into(), |c| fmt(c.median)),
            100.0 * pollers.median,
            100.0 * busiest.median,
            100.0 * busy.median,
            two(machine_us_per_request).map_or("—".into(), |c| fmt(c.median)),
            r.machine.cpus,
            fmt(bound_rps.median),
            100.0 * rps.median / bound_rps.median,
            bound(busy.median, busiest.median)
        );
    }
    s += &placement(r);
    s
}

/// What the client's placement does to a request's cost to the poller: `1q` (client on the
/// other CPU) against `1q-shared` (a client thread on the poller's CPU too).
fn placement(r: &ScalingRecord) -> String {
    let mut s = String::new();
    let mut lines = Vec::new();
    let mut batched = Vec::new();
    for &w in &r.workloads {
        let both = |f: fn(&ScalingRun) -> f64| {
            spread(r, Setup::OneQueue, w, f).zip(spread(r, Setup::OneQueueShared, w, f))
        };
        let (Some((apart, shared)), Some((ra, rs)), Some((ia, is))) = (
            both(poller_us_per_request),
            both(requests_per_busy_round),
            both(ipis_per_request),
        ) else {
            continue;
        };
        if rs.median > 1.2 * ra.median {
            batched.push(w.name());
        }
        lines.push(format!(
            "- {}: {} µs with the client on the other CPU, {} with a client thread beside the \
             poller (x{:.2}); requests per busy loop round {:.2} and {:.2}; IPIs per request \
             {:.2} and {:.2}.",
            w.name(),
            fmt(apart.median),
            fmt(shared.median),
            shared.median / apart.median,
            ra.median,
            rs.median,
            ia.median,
            is.median
        ));
    }
    if lines.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "\nWhere the client runs also changes what a request costs the one-queue poller \
         (`1q` against `1q-shared`, the poller on the same CPU in both):\n"
    );
    for l in lines {
        let _ = writeln!(s, "{l}");
    }
    let _ = writeln!(
        s,
        "\nSharing its CPU with a client thread, the poller runs less often and finds more \
         work in each round, which spreads a round's fixed cost (the ring checks and the \
         transmit kick, inside which a plain veth also runs the client's receive) over more \
         requests{}. The IPIs between the CPUs are no guide to it here. The `2q` pollers each \
         see half the load, with a client thread beside each: their cost per request is their \
         own, and the projection below shows the arithmetic on both.",
        if batched.is_empty() {
            String::new()
        } else {
            format!(
                ": the likely part of the difference where the requests per round rise ({}); \
                 where they do not, the cause is not measured here",
                batched.join(", ")
            )
        }
    );
    s
}

fn cpu_table(r: &ScalingRecord) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n## CPU per request, and who had the machine\n\nµs of CPU per request answered; \
         shares of the machine's CPU time (all CPUs) over the run. Poller busy = its thread's \
         CPU time over the run's (per queue); loop busy = its loop rounds that found work \
         (`xgate status`); req/busy round = requests answered per such round. Machine bound = CPUs x 10⁶ / machine µs per request. Softirq \
         (ticks) = the CPUs' softirq time per request sampled by the timer tick, already in the \
         threads' figures where it interrupted one (an upper bound of what they miss). IPIs \
         = rescheduling and function-call interrupts between CPUs per request. Other = every other thread on the machine, its largest named.\n"
    );
    let _ = writeln!(
        s,
        "| workload | setup | req/s | poller µs/req | poller busy | loop busy | req/busy round | client µs/req | client share | pollers share | machine µs/req | machine busy | machine bound req/s | softirq (ticks) µs/req | IPIs/req | other µs/req | other's largest |\n| --- | --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for &w in &r.workloads {
        for st in setups(r) {
            let Some(rps) = throughput(r, st, w) else {
                continue;
            };
            let per_queue = |f: &dyn Fn(&ScalingRun, &PollerRun) -> f64| -> String {
                let queues = runs(r, st, w).map(|x| x.pollers.len()).max().unwrap_or(0);
                (0..queues)
                    .map(|q| {
                        let v =
                            spread(r, st, w, |x| x.pollers.get(q).map_or(f64::NAN, |p| f(x, p)));
                        pct(v)
                    })
                    .collect::<Vec<_>>()
                    .join(" / ")
            };
            let other = |x: &ScalingRun| {
                per_request(
                    x,
                    x.cpu.other_secs + x.cpu.other_kernel_secs + x.cpu.xgate_other_secs,
                )
            };
            let softirq = |x: &ScalingRun| per_request(x, x.cpu.softirq_tick_secs.iter().sum());
            let largest = runs(r, st, w)
                .next()
                .and_then(|x| x.cpu.other_top.first())
                .map_or("—".into(), |(n, _)| format!("`{n}`"));
            let _ = writeln!(
                s,
                "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                w.name(),
                st.name(),
                fmt(rps.median),
                cell(spread(r, st, w, poller_us_per_request)),
                per_queue(&poller_busy),
                per_queue(&|_, p| loop_busy_ratio(p)),
                spread(r, st, w, requests_per_busy_round)
                    .map_or("—".into(), |b| format!("{:.2}", b.median)),
                cell(spread(r, st, w, client_us_per_request)),
                pct(spread(r, st, w, client_share)),
                pct(spread(r, st, w, pollers_share)),
                cell(spread(r, st, w, machine_us_per_request)),
                pct(spread(r, st, w, machine_busy)),
                spread(r, st, w, machine_bound_rps).map_or("—".into(), |b| fmt(b.median)),
                spread(r, st, w, softirq).map_or("—".into(), |b| fmt(b.median)),
                spread(r, st, w, ipis_per_request).map_or("—".into(), |b| format!("{:.2}", b.median)),
                spread(r, st, w, other).map_or("—".into(), |b| fmt(b.median)),
                largest
            );
        }
    }
    s
}

/// The per-queue split of the two-queue runs: connections, requests and poller CPU.
fn split_table(r: &ScalingRecord) -> String {
    let mut s = String::new();
    if !setups(r).contains(&Setup::TwoQueues) {
        return s;
    }
    let _ = writeln!(
        s,
        "\n## The split over the two queues (`2q`)\n\nEach queue's share of the connections \
         its poller established, of the requests it answered (`xgate status --json`, \
         `pollers`) and of the pollers' CPU time, and each poller's CPU per request it \
         answered; the client's flows are spread by the veth's per-flow TX queue hash.\n\n\
         | workload | connections q0 / q1 | requests q0 / q1 | poller CPU q0 / q1 | µs/req q0 / q1 | requests seen by the pollers / by the client |\n\
         | --- | --- | --- | --- | --- | ---: |"
    );
    for &w in &r.workloads {
        if runs(r, Setup::TwoQueues, w).next().is_none() {
            continue;
        }
        let share = |f: fn(&PollerRun) -> f64| -> String {
            (0..2)
                .map(|q| {
                    pct(spread(r, Setup::TwoQueues, w, |x| {
                        let v: Vec<f64> = x.pollers.iter().map(f).collect();
                        shares(&v).get(q).copied().unwrap_or(f64::NAN)
                    }))
                })
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let cost = (0..2)
            .map(|q| {
                spread(r, Setup::TwoQueues, w, |x| {
                    x.pollers
                        .get(q)
                        .filter(|p| p.requests > 0)
                        .map_or(f64::NAN, |p| p.cpu_secs * 1e6 / p.requests as f64)
                })
                .map_or("—".into(), |c| fmt(c.median))
            })
            .collect::<Vec<_>>()
            .join(" / ");
        let seen = spread(r, Setup::TwoQueues, w, |x| {
            let n: u64 = x.pollers.iter().map(|p| p.requests).sum();
            n as f64 / x.client.requests.max(1) as f64
        });
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            w.name(),
            share(|p| p.established as f64),
            share(|p| p.requests as f64),
            share(|p| p.cpu_secs),
            cost,
            seen.map_or("—".into(), |x| format!("{:.3}", x.median))
        );
    }
    s
}

fn projection_section(r: &ScalingRecord) -> String {
    let mut s = String::new();
    let projections: Vec<Projection> = r
        .workloads
        .iter()
        .filter_map(|&w| projection(r, w))
        .collect();
    let _ = writeln!(
        s,
        "\n## Projection per added dedicated core (a projection, not a measurement)\n"
    );
    if projections.is_empty() {
        let _ = writeln!(s, "Needs the `1q` setup, which this run left out.");
        return s;
    }
    let _ = writeln!(
        s,
        "**This is arithmetic, not a measurement.** The per-queue cost is the `1q` poller's CPU \
         per request, its poller alone on its CPU and the client on the other; one more core \
         with one more queue adds 10⁶ / that many requests/s, and N cores answer N times it. \
         The last columns are what this machine can check: the `2q` throughput measured here \
         against the projection for 2 cores; the `2q` pollers' CPU per request against \
         `1q`'s (1.00x: a second queue, and a client thread beside each poller, change \
         nothing in a request's cost); and the same arithmetic on the `2q` cost, the other end \
         of the range where the two differ (see above: the client's placement changes it).\n"
    );
    let mut head =
        "| workload | per-queue cost, µs/req (`1q`) | that poller busy | req/s per added core |"
            .to_string();
    let mut rule = "| --- | ---: | ---: | ---: |".to_string();
    for n in PROJECTED_CORES {
        head += &format!(" {n} core{} |", if n == 1 { "" } else { "s" });
        rule += " ---: |";
    }
    head += " measured `1q` | measured `2q` | `2q` / projection for 2 | `2q` / `1q` poller µs/req | req/s per added core at the `2q` cost |";
    rule += " ---: | ---: | ---: | ---: | ---: |";
    let _ = writeln!(s, "{head}\n{rule}");
    for p in &projections {
        let mut row = format!(
            "| {} | {} | {:.0}% | {} |",
            p.workload.name(),
            cell(Some(p.cost_us)),
            100.0 * p.busy.median,
            fmt(p.per_core_rps())
        );
        for n in PROJECTED_CORES {
            row += &format!(" {} |", fmt(p.at(n)));
        }
        row += &format!(
            " {} | {} | {} | {} | {} |",
            p.measured_1q.map_or("—".into(), |m| fmt(m.median)),
            p.measured_2q.map_or("—".into(), |m| fmt(m.median)),
            p.two_queues_of_projection()
                .map_or("—".into(), |x| format!("{:.0}%", 100.0 * x)),
            ratio_cell(p.two_queue_cost_ratio()),
            p.cost_2q_us
                .filter(|c| c.median > 0.0)
                .map_or("—".into(), |c| fmt(1e6 / c.median))
        );
        let _ = writeln!(s, "{row}");
    }
    let _ = writeln!(
        s,
        "\nWhat the projection assumes, none of which this machine can show:\n\n\
         - **RSS spreads flows evenly** over the queues, as the veth's per-flow hash did here \
           (the split above); a skewed spread caps the figure at the busiest queue's core.\n\
         - **Nothing shared on the hot path** but the `user_flows` BPF map, updated once per \
           new connection and once per close (churn pays it on every request, keep-alive \
           almost never); each poller has its own engine, UMEM, rings and connections, and a \
           path MTU error for another queue's flow (rare) is relayed to that queue's poller.\n\
         - **Each queue's core is dedicated** to its poller (and to its queue's interrupt and \
           NAPI work), and the **clients and the NIC are not the bottleneck**: they are other \
           machines and a NIC with the line rate for it (bytes-16k at the per-core figure is \
           about {:.1} Gbit/s of body per core).\n\
         - **Copy-mode veth, not a zero-copy NIC**: here the poller's time includes the \
           client's TCP receive of its responses (veth runs it inside the poller's transmit) \
           and leaves out the XDP receive and the AF_XDP copy of its requests (run in the \
           client's send). On a NIC the queue's core pays its own receive (XDP, and the copy \
           in copy mode; a zero-copy driver saves the copy and the skb) and nothing of the \
           client's. The lab (`lab.md`: each side's receive on its own core, one queue) \
           measures that cost; this projection does not correct for either.\n\
         - **The cost at saturation**: a poller at a lower load spends more per request \
           (smaller batches), and with N queues each poller sees 1/N of the load; cache, \
           memory bandwidth, SMT siblings and NUMA are not modelled. Linear is the ceiling.",
        projections
            .iter()
            .find(|p| p.workload == Scenario::Bytes16k)
            .map_or(f64::NAN, |p| p.per_core_rps() * 16384.0 * 8.0 / 1e9)
    );
    s
}

/// The charts: throughput per workload and setup, with the projection for two dedicated
/// cores beside the measured two-queue figure; and the pollers' CPU per request.
pub fn charts(r: &ScalingRecord) -> Vec<(String, String)> {
    let setups = setups(r);
    // Short names: the legend gives each 170 px (the summary's table says what each is).
    let mut names: Vec<String> = setups.iter().map(|s| s.name().to_string()).collect();
    names.push("projection, 2 cores".into());
    let series: Vec<&str> = names.iter().map(String::as_str).collect();
    let whisker = |x: Option<Spread>| x.map(|s| (s.median, s.min, s.max));
    let throughput_panels: Vec<svg::BarPanel> = r
        .workloads
        .iter()
        .map(|&w| {
            let mut values: Vec<Option<(f64, f64, f64)>> = setups
                .iter()
                .map(|&st| whisker(throughput(r, st, w)))
                .collect();
            // The projection's whisker: the same arithmetic on the cost's max and min.
            values.push(
                projection(r, w).map(|p| (p.at(2), 2e6 / p.cost_us.max, 2e6 / p.cost_us.min)),
            );
            svg::BarPanel {
                title: w.name().into(),
                unit: "requests/s".into(),
                values,
            }
        })
        .collect();
    let cost_panels: Vec<svg::BarPanel> = r
        .workloads
        .iter()
        .map(|&w| svg::BarPanel {
            title: w.name().into(),
            unit: "poller µs/request".into(),
            values: setups
                .iter()
                .map(|&st| whisker(spread(r, st, w, poller_us_per_request)))
                .collect(),
        })
        .collect();
    vec![
        (
            "throughput".into(),
            svg::bars(
                "Bypass, 1 and 2 RX queues on 2 CPUs: requests/s (median, min–max)",
                &series,
                &throughput_panels,
            ),
        ),
        (
            "poller-cpu".into(),
            svg::bars(
                "Pollers' CPU per request (all queues), µs (median, min–max)",
                &series[..setups.len()],
                &cost_panels,
            ),
        ),
    ]
}

/// Writes the record, its summary (`runs/` and the latest `scaling.md`) and the charts.
pub fn write(r: &ScalingRecord, out: &Path) -> Result<Vec<PathBuf>, CompareError> {
    super::SummaryFiles {
        name: "scaling",
        started_utc: &r.started_utc,
        commit: &r.commit,
        record: r,
        markdown: markdown(r),
        charts: charts(r),
    }
    .write(out)
}

#[cfg(test)]
mod tests {
    use super::super::machine::MachineInfo;
    use super::super::report::ClientFigures;
    use super::super::scaling::{CpuSplit, Layout};
    use super::*;

    /// A run: `rps` for 10 s, `poller_secs` per queue, `client_secs`, 2 CPUs.
    fn run(
        setup: Setup,
        workload: Scenario,
        rep: u32,
        rps: f64,
        poller_secs: &[f64],
        client_secs: f64,
    ) -> ScalingRun {
        let requests = (rps * 10.0) as u64;
        let n = poller_secs.len() as u64;
        ScalingRun {
            setup,
            workload,
            rep,
            client: ClientFigures {
                requests,
                throughput_rps: rps,
                duration_secs: 10.0,
                ..ClientFigures::default()
            },
            elapsed_secs: 10.0,
            pollers: poller_secs
                .iter()
                .enumerate()
                .map(|(q, &secs)| PollerRun {
                    queue: q as u32,
                    cpu: Some(q),
                    cpu_secs: secs,
                    requests: requests / n,
                    established: 64 / n,
                    busy_loops: 3,
                    idle_loops: 1,
                })
                .collect(),
            cpu: CpuSplit {
                client_secs,
                pollers_secs: poller_secs.iter().sum(),
                other_secs: 0.5,
                busy_per_cpu: vec![1.0, 1.0],
                softirq_tick_secs: vec![0.1, 0.1],
                ipis: vec![requests, 0],
                ..CpuSplit::default()
            },
            command: String::new(),
        }
    }

    fn record() -> ScalingRecord {
        let mut runs = Vec::new();
        for rep in 0..3 {
            let d = f64::from(rep) * 1000.0;
            // One queue: 100k req/s, its poller 9.6 s of 10 (9.6 µs/request at 1M requests).
            runs.push(run(
                Setup::OneQueue,
                Scenario::KeepAlive,
                rep,
                100_000.0 + d,
                &[9.6],
                9.9,
            ));
            runs.push(run(
                Setup::OneQueueShared,
                Scenario::KeepAlive,
                rep,
                104_000.0 + d,
                &[8.0],
                11.0,
            ));
            // Two queues: 120k req/s; pollers 12 s in all (10 µs/request at 1.2M requests).
            runs.push(run(
                Setup::TwoQueues,
                Scenario::KeepAlive,
                rep,
                120_000.0 + d,
                &[6.0, 6.0],
                7.5,
            ));
        }
        ScalingRecord {
            schema: 1,
            started_utc: "2026-12-08T00:00:00Z".into(),
            commit: "abc".into(),
            machine: MachineInfo::read(),
            command_line: "loadgen scaling".into(),
            reps: 3,
            duration_secs: 10,
            warmup_secs: 2,
            load_average_before: 0.5,
            layouts: Setup::ALL
                .iter()
                .map(|s| s.layout((1, 0)))
                .collect::<Vec<Layout>>(),
            workloads: vec![Scenario::KeepAlive],
            topologies: Vec::new(),
            runs,
        }
    }

    #[test]
    fn per_request_figures_and_shares() {
        let r = run(
            Setup::TwoQueues,
            Scenario::KeepAlive,
            0,
            100_000.0,
            &[3.0, 5.0],
            6.0,
        );
        // 1M requests: 8 s of pollers is 8 µs each, 6 s of client 6 µs, 14.5 s of machine.
        assert!((poller_us_per_request(&r) - 8.0).abs() < 1e-9);
        assert!((client_us_per_request(&r) - 6.0).abs() < 1e-9);
        assert!((machine_us_per_request(&r) - 14.5).abs() < 1e-9);
        // 2 CPUs for 10 s: 20 CPU-seconds.
        assert!((client_share(&r) - 0.3).abs() < 1e-9);
        assert!((pollers_share(&r) - 0.4).abs() < 1e-9);
        assert!((machine_busy(&r) - 0.725).abs() < 1e-9);
        assert!((machine_bound_rps(&r) - 2e6 / 14.5).abs() < 1e-6);
        assert!((poller_busy(&r, &r.pollers[1]) - 0.5).abs() < 1e-9);
        assert!((loop_busy_ratio(&r.pollers[0]) - 0.75).abs() < 1e-9);
        // 1M requests over 2 x 3 busy rounds.
        assert!((requests_per_busy_round(&r) - 1e6 / 6.0).abs() < 1e-6);
        assert_eq!(shares(&[1.0, 3.0]), vec![0.25, 0.75]);
        assert!(shares(&[0.0, 0.0]).iter().all(|x| x.is_nan()));
        let mut none = r.clone();
        none.client.requests = 0;
        assert!(poller_us_per_request(&none).is_nan());
    }

    #[test]
    fn the_projection_is_per_core_arithmetic_on_the_one_queue_cost() {
        let r = record();
        let p = projection(&r, Scenario::KeepAlive).unwrap();
        // Each `1q` rep costs 9.6 s of poller over 10 x rps requests: the median rep (101k
        // req/s) gives 9.50 µs.
        let cost = 9.6e6 / 1_010_000.0;
        assert!((p.cost_us.median - cost).abs() < 1e-9, "{p:?}");
        assert!((p.per_core_rps() - 1e6 / cost).abs() < 1e-6);
        assert!((p.at(4) - 4e6 / cost).abs() < 1e-6);
        assert!((p.busy.median - 0.96).abs() < 1e-9);
        assert_eq!(p.measured_2q.unwrap().median, 121_000.0);
        let of = p.two_queues_of_projection().unwrap();
        assert!((of - 121_000.0 / (2e6 / cost)).abs() < 1e-9);
        let cost_2q = 12e6 / 1_210_000.0;
        assert!((p.two_queue_cost_ratio().unwrap() - cost_2q / cost).abs() < 1e-9);
        assert!(projection(&r, Scenario::Churn).is_none());
    }

    #[test]
    fn what_bounds_a_run() {
        assert!(bound(0.99, 0.6).starts_with("the machine"));
        assert!(bound(0.8, 0.95).starts_with("the pollers"));
        assert!(bound(0.99, 0.95).starts_with("the poller and the machine"));
        assert!(bound(0.5, 0.4).starts_with("neither"));
    }

    #[test]
    fn the_summary_says_what_it_measured_and_what_it_projects() {
        let md = markdown(&record());
        for needle in [
            "| `2q` | 2 | 0: 0, 1: 1 | 0, 1 | 2 queues, client on both CPUs |",
            "| keep-alive GET /health, 64 conns | 101000 [100000–102000] | 105000 [104000–106000] | 121000 [120000–122000] | 1.20x | 1.15x |",
            "## What the client's share does to the 2-queue figure",
            "the run reached 100% of that: bounded by the machine, not the pollers",
            "With 1 queue the machine was 100% busy (the client 50% of it), its poller 96% of its CPU: bounded by the poller and the machine alike",
            "- keep-alive: 9.50 µs with the client on the other CPU, 7.62 with a client thread beside the poller (x0.80); requests per busy loop round 336666.67 and 350000.00; IPIs per request 1.00 and 1.00.",
            "| keep-alive | 50% / 50% | 50% / 50% | 50% / 50% |",
            "(a projection, not a measurement)",
            "**This is arithmetic, not a measurement.**",
            "| keep-alive | 9.50 [9.41–9.60] | 96% | 105208 |",
            "**RSS spreads flows evenly**",
            "| 1.04x | 100833 |",
            "0 failed request(s)",
        ] {
            assert!(md.contains(needle), "{needle:?} not in:\n{md}");
        }
    }

    #[test]
    fn charts_show_the_projection_beside_the_measurements() {
        let charts = charts(&record());
        let names: Vec<&str> = charts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["throughput", "poller-cpu"]);
        assert!(charts[0].1.contains("projection, 2 cores"));
        assert!(
            charts[0].1.contains("210.4k"),
            "2 x 105208: {}",
            charts[0].1
        );
        assert!(!charts[1].1.contains("projection"));
    }
}
