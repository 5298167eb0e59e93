//! The lab run's summary: the server core's cost per request at saturation and at each rate,
//! the latency at the highest rate every target sustained, where the CPU time went (so the
//! lab's fairness is shown), the issue's performance goals met or not, and the charts.

use std::fmt::Write as _;

use super::report::{Measurement, RunRecord, Spread};
use super::scenarios::{RateLevel, Scenario};
use super::servers::Target;
use super::svg;

/// The runs of one target and workload at one load (`None`: closed loop).
fn runs(
    r: &RunRecord,
    t: Target,
    sc: Scenario,
    level: Option<RateLevel>,
) -> impl Iterator<Item = &Measurement> {
    r.measurements
        .iter()
        .filter(move |m| m.target == t && m.scenario == sc && m.offered.map(|o| o.level) == level)
}

fn spread(
    r: &RunRecord,
    t: Target,
    sc: Scenario,
    level: Option<RateLevel>,
    f: impl Fn(&Measurement) -> f64,
) -> Option<Spread> {
    Spread::of(runs(r, t, sc, level).map(f))
}

fn server_cost(r: &RunRecord, t: Target, sc: Scenario, level: Option<RateLevel>) -> Option<Spread> {
    spread(r, t, sc, level, |m| m.server_core_us_per_request)
}

/// Requests per second one server core would answer at the cost measured at saturation.
fn capacity(r: &RunRecord, t: Target, sc: Scenario) -> Option<Spread> {
    spread(r, t, sc, None, |m| 1e6 / m.server_core_us_per_request)
}

/// Share of an offered rate, in percent, a target must answer (median over the repetitions)
/// to count as sustaining it: an open-loop client sends on schedule, so a target that falls
/// behind answers less than offered and its latency is its queue's growth, not its service.
const SUSTAINED_PCT: f64 = 99.0;

/// What a run answered of the rate it was offered, in percent (NaN for a closed loop).
fn achieved_pct(m: &Measurement) -> f64 {
    m.offered.map_or(f64::NAN, |o| {
        100.0 * m.client.throughput_rps / o.rate as f64
    })
}

/// The highest lab rate every target sustained on `sc` (see [`SUSTAINED_PCT`]). The high
/// level is chosen before the open-loop runs, from the slowest target's closed-loop
/// throughput, so a target whose open-loop capacity is lower may not sustain it.
fn sustained_level(r: &RunRecord, sc: Scenario) -> Option<RateLevel> {
    RateLevel::LAB.into_iter().rev().find(|&level| {
        r.config.targets.iter().all(|&t| {
            spread(r, t, sc, Some(level), achieved_pct).is_some_and(|x| x.median >= SUSTAINED_PCT)
        })
    })
}

/// "mid, 10850/s": a lab level and the rate it offered on `sc`.
fn level_label(r: &RunRecord, sc: Scenario, level: RateLevel) -> String {
    match r.config.lab_rates.iter().find(|x| x.scenario == sc) {
        Some(rate) => format!("{}, {}/s", level.name(), rate.at(level)),
        None => level.name().to_string(),
    }
}

fn errors(r: &RunRecord, t: Target, sc: Scenario, level: Option<RateLevel>) -> u64 {
    runs(r, t, sc, level).map(|m| m.client.errors).sum()
}

pub(crate) fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub(crate) fn cell(v: Option<Spread>) -> String {
    v.map_or("—".into(), |x| {
        format!("{} [{}–{}]", fmt(x.median), fmt(x.min), fmt(x.max))
    })
}

pub(crate) fn ratio(a: Option<Spread>, b: Option<Spread>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b.median > 0.0 => Some(a.median / b.median),
        _ => None,
    }
}

/// A ratio with two decimals, or two significant digits below 0.1 (a collapse must not read
/// as 0.00x).
pub(crate) fn ratio_cell(x: Option<f64>) -> String {
    x.map_or("—".into(), |x| {
        if x > 0.0 && x < 0.1 {
            format!("{x:.2e}x")
        } else {
            format!("{x:.2}x")
        }
    })
}

/// The table header for the targets, plus the bypass's ratios to the other two.
fn head(r: &RunRecord, first: &str) -> String {
    let mut h = format!("| {first} |");
    let mut rule = "| --- |".to_string();
    for t in &r.config.targets {
        h += &format!(" {} |", t.name());
        rule += " ---: |";
    }
    for (a, b) in ratio_pairs(r) {
        h += &format!(" {} / {} |", short(a), short(b));
        rule += " ---: |";
    }
    format!("{h}\n{rule}")
}

fn short(t: Target) -> &'static str {
    match t {
        Target::XgateBypass => "bypass",
        Target::XgateKernel => "kernel",
        Target::Nginx => "nginx",
        Target::Haproxy => "haproxy",
    }
}

fn ratio_pairs(r: &RunRecord) -> Vec<(Target, Target)> {
    let has = |t| r.config.targets.contains(&t);
    let mut v = Vec::new();
    if has(Target::XgateBypass) {
        for other in [Target::XgateKernel, Target::Nginx, Target::Haproxy] {
            if has(other) {
                v.push((Target::XgateBypass, other));
            }
        }
    }
    v
}

/// One row: a cell per target, then the bypass's ratios.
fn row(r: &RunRecord, label: &str, value: impl Fn(Target) -> Option<Spread>) -> String {
    let mut s = format!("| {label} |");
    for &t in &r.config.targets {
        s += &format!(" {} |", cell(value(t)));
    }
    for (a, b) in ratio_pairs(r) {
        s += &format!(" {} |", ratio_cell(ratio(value(a), value(b))));
    }
    s
}

/// The summary of a lab run.
pub fn markdown(r: &RunRecord) -> String {
    let c = &r.config;
    let mut s = String::new();
    let _ = writeln!(s, "# xgate lab comparison — {}\n", r.started_utc);
    let _ = writeln!(
        s,
        "Commit `{}` on {} ({} CPUs, {:.0} GiB, kernel {}{}), load average before the run {:.2}. \
         {} repetition(s) of {} s after {} s of warm-up, targets interleaved; figures are \
         medians with [min–max]. Reproduce: `{}`.\n",
        r.commit,
        r.machine.cpu_model,
        r.machine.cpus,
        r.machine.memory_gib,
        r.machine.kernel,
        r.machine
            .virtualised
            .as_deref()
            .map(|v| format!(", virtualised: {v}"))
            .unwrap_or_default(),
        r.measurements.first().map_or(0.0, |m| m.load_average),
        c.reps,
        c.duration_secs,
        c.warmup_secs,
        c.command_line
    );
    if let Some(t) = &c.topology {
        let _ = writeln!(s, "{}\n", t.summary_line());
    }
    let _ = writeln!(
        s,
        "The server (xgate: its poller and its kernel-path thread; nginx: one worker) is pinned \
         to CPU {}, the client (loadgen, one thread) to CPU {}, and each side's NAPI thread to \
         its own CPU, so the server's core runs the server's receive (XDP and the AF_XDP copy, \
         or the kernel's TCP receive) and transmit and nothing of the client's. **Server core** \
         = the CPU time of the server's processes plus every kernel thread bound to its CPU \
         (its NAPI thread, ksoftirqd, kworkers), from each thread's scheduler clock, divided by \
         the requests answered; the last table shows where every CPU-second of a run went.\n",
        c.server_core, c.client_core
    );
    if let Some(origin) = c.origin_core {
        s += &proxy_note(origin, c.client_core);
    }

    let _ = writeln!(s, "## Server core CPU per request (µs)\n");
    let _ = writeln!(s, "{}", head(r, "workload, load"));
    for &sc in &c.scenarios {
        let _ = writeln!(
            s,
            "{}",
            row(r, &format!("{}, closed loop", sc.name()), |t| {
                server_cost(r, t, sc, None)
            })
        );
        for level in RateLevel::LAB {
            let rate = c
                .lab_rates
                .iter()
                .find(|x| x.scenario == sc)
                .map(|x| x.at(level));
            let label = match rate {
                Some(rate) => format!("{}, {} {rate}/s", sc.name(), level.name()),
                None => format!("{}, {}", sc.name(), level.name()),
            };
            let _ = writeln!(
                s,
                "{}",
                row(r, &label, |t| server_cost(r, t, sc, Some(level)))
            );
        }
    }

    let _ = writeln!(
        s,
        "\n## Saturation (closed loop): throughput, and what one server core answers at the cost \
         measured there\n"
    );
    let _ = writeln!(
        s,
        "Requests/s one server core answers = 10⁶ / server core µs per request at saturation. \
         Where the server's core is not at 100% (its busy share below), the client's core was \
         the bottleneck and the throughput column understates the server.\n"
    );
    let _ = writeln!(s, "{}", head(r, "workload, figure"));
    for &sc in &c.scenarios {
        let _ = writeln!(
            s,
            "{}",
            row(r, &format!("{}: measured requests/s", sc.name()), |t| {
                spread(r, t, sc, None, |m| m.client.throughput_rps)
            })
        );
        let _ = writeln!(
            s,
            "{}",
            row(r, &format!("{}: server core busy %", sc.name()), |t| {
                spread(r, t, sc, None, |m| busy_share(m, true) * 100.0)
            })
        );
        let _ = writeln!(
            s,
            "{}",
            row(r, &format!("{}: client core busy %", sc.name()), |t| {
                spread(r, t, sc, None, |m| busy_share(m, false) * 100.0)
            })
        );
        let _ = writeln!(
            s,
            "{}",
            row(
                r,
                &format!("{}: requests/s per server core", sc.name()),
                |t| capacity(r, t, sc)
            )
        );
    }

    let _ = writeln!(
        s,
        "\n## Latency at the highest rate every target sustained (µs from each request's due \
         time)\n\nPer workload, the highest of the three rates at which every target answered at \
         least {SUSTAINED_PCT}% of what was offered (median over the repetitions; the next table \
         has every figure): above its capacity an open-loop target's latency is its queue's \
         growth over the run, not its service time.\n"
    );
    let _ = writeln!(s, "{}", head(r, "workload, rate, percentile"));
    for &sc in &c.scenarios {
        let Some(level) = sustained_level(r, sc) else {
            let _ = writeln!(
                s,
                "{}",
                row(
                    r,
                    &format!("{}: no rate every target sustained", sc.name()),
                    |_| None
                )
            );
            continue;
        };
        for (name, pick) in PERCENTILES {
            let _ = writeln!(
                s,
                "{}",
                row(
                    r,
                    &format!("{} ({}): {name}", sc.name(), level_label(r, sc, level)),
                    |t| spread(r, t, sc, Some(level), pick)
                )
            );
        }
    }

    let _ = writeln!(s, "\n## Rates offered\n");
    let _ = writeln!(
        s,
        "| workload | low | mid | high | chosen as |\n| --- | ---: | ---: | ---: | --- |"
    );
    for rate in &c.lab_rates {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            rate.scenario.name(),
            rate.at(RateLevel::Low),
            rate.at(RateLevel::Mid),
            rate.at(RateLevel::High),
            rate.from
        );
    }
    let _ = writeln!(
        s,
        "\nAchieved throughput against the offer, median over the repetitions (an open-loop \
         client sends on schedule, so a target that keeps up answers what was offered):\n"
    );
    let _ = writeln!(s, "{}", head(r, "workload, load"));
    for &sc in &c.scenarios {
        for level in RateLevel::LAB {
            let _ = writeln!(
                s,
                "{}",
                row(
                    r,
                    &format!("{}, {}: achieved %", sc.name(), level.name()),
                    |t| { spread(r, t, sc, Some(level), achieved_pct) }
                )
            );
        }
    }

    let _ = writeln!(
        s,
        "\n## Where the CPU went (µs per request, median over the repetitions)\n"
    );
    s += &attribution_table(r, Some(RateLevel::Mid));

    if c.origin_core.is_some() {
        s += &proxy_goals(r);
    } else {
        s += &goals(r);
    }
    s += &r.wrk_section();

    let failed: u64 = r.measurements.iter().map(|m| m.client.errors).sum();
    let _ = writeln!(
        s,
        "\n{failed} failed request(s) in the whole run.{}",
        if failed > 0 {
            " Errors by kind are in the JSON record."
        } else {
            ""
        }
    );
    for &sc in &c.scenarios {
        for &t in &c.targets {
            for level in [
                None,
                Some(RateLevel::Low),
                Some(RateLevel::Mid),
                Some(RateLevel::High),
            ] {
                let e = errors(r, t, sc, level);
                if e > 0 {
                    let _ = writeln!(
                        s,
                        "- {} {} {}: {e} failed",
                        t.name(),
                        sc.name(),
                        level.map_or("closed loop", |l| l.name())
                    );
                }
            }
        }
    }
    s
}

type Pick = fn(&Measurement) -> f64;

const PERCENTILES: [(&str, Pick); 3] = [
    ("p50", |m| m.client.latency_us.p50),
    ("p99", |m| m.client.latency_us.p99),
    ("p99.9", |m| m.client.latency_us.p999),
];

/// The share of the run's wall time the server's (or the client's) side kept its core busy.
fn busy_share(m: &Measurement, server: bool) -> f64 {
    match &m.attribution {
        Some(a) if m.client.duration_secs > 0.0 => {
            let side = if server { &a.server } else { &a.client };
            side.total_secs() / m.client.duration_secs
        }
        _ => f64::NAN,
    }
}

/// Per target and workload at `level` (`None`: closed loop): where each request's CPU time
/// went, by side and kind of thread, and the network softirqs each core ran.
pub fn attribution_table(r: &RunRecord, level: Option<RateLevel>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "At the {} load. Server core = the server's processes + the kernel threads bound to \
         CPU {} (NAPI: its network receive; ksoftirqd; other kernel threads, e.g. kworkers; \
         other processes bound there); client core the same for loadgen and CPU {}; rest = \
         everything else on the machine (unbound kernel threads, this runner), its largest \
         part named. NET_RX: network softirqs run per request on each core (in the lab, the \
         freeing of the side's own buffers handed back by the other core, not receive \
         processing). Softirq (ticks): the server core's time in softirq per request, sampled \
         by the timer tick, which also sees softirq work run while the core was idle, which no \
         thread's clock counts: an upper bound of what the server core column may miss.\n",
        level.map_or("closed-loop", |l| l.name()),
        r.config.server_core,
        r.config.client_core
    );
    let proxy = r.config.origin_core.is_some();
    let _ = writeln!(
        s,
        "| target, workload | server: process | NAPI | ksoftirqd | other kernel | other | **server core** | softirq (ticks) | client: process | NAPI | other | **client core** | rest | rest's largest | NET_RX/req server core | NET_RX/req client core |{}",
        if proxy { " origin |" } else { "" }
    );
    let _ = writeln!(
        s,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |{}",
        if proxy { " ---: |" } else { "" }
    );
    for &sc in &r.config.scenarios {
        for &t in &r.config.targets {
            let ms: Vec<&Measurement> = r
                .measurements
                .iter()
                .filter(|m| {
                    m.target == t
                        && m.scenario == sc
                        && m.attribution.is_some()
                        && m.offered.map(|o| o.level) == level
                })
                .collect();
            if ms.is_empty() {
                continue;
            }
            let med = |f: &dyn Fn(&Measurement) -> f64| {
                Spread::of(ms.iter().map(|m| f(m))).map_or("—".into(), |x| fmt(x.median))
            };
            let per_req = |f: fn(&super::attribution::Attribution) -> f64| {
                move |m: &Measurement| match &m.attribution {
                    Some(a) if m.client.requests > 0 => f(a) * 1e6 / m.client.requests as f64,
                    _ => f64::NAN,
                }
            };
            let softirq = |cpu: usize| {
                move |m: &Measurement| match &m.attribution {
                    Some(a) if m.client.requests > 0 => {
                        a.softirqs.net_rx.get(cpu).copied().unwrap_or(0) as f64
                            / m.client.requests as f64
                    }
                    _ => f64::NAN,
                }
            };
            let server_softirq = |m: &Measurement| {
                let secs = m.cpu.softirq_secs.get(r.config.server_core).copied();
                match secs {
                    Some(secs) if m.client.requests > 0 => secs * 1e6 / m.client.requests as f64,
                    _ => f64::NAN,
                }
            };
            let largest = ms
                .first()
                .and_then(|m| m.attribution.as_ref())
                .and_then(|a| a.rest_top.first())
                .map_or("—".into(), |(name, _)| format!("`{name}`"));
            let mut row = format!(
                "| {}, {} | {} | {} | {} | {} | {} | **{}** | {} | {} | {} | {} | **{}** | {} | {} | {} | {} |",
                t.name(),
                sc.name(),
                med(&per_req(|a| a.server.process_secs)),
                med(&per_req(|a| a.server.napi_secs)),
                med(&per_req(|a| a.server.ksoftirqd_secs)),
                med(&per_req(|a| a.server.other_kernel_secs)),
                med(&per_req(|a| a.server.other_process_secs)),
                med(&per_req(|a| a.server.total_secs())),
                med(&server_softirq),
                med(&per_req(|a| a.client.process_secs)),
                med(&per_req(|a| a.client.napi_secs)),
                med(&per_req(|a| {
                    a.client.ksoftirqd_secs + a.client.other_kernel_secs + a.client.other_process_secs
                })),
                med(&per_req(|a| a.client.total_secs())),
                med(&per_req(|a| a.rest_secs)),
                largest,
                med(&softirq(r.config.server_core)),
                med(&softirq(r.config.client_core)),
            );
            if proxy {
                row += &format!(" {} |", med(&per_req(|a| a.origin_secs)));
            }
            let _ = writeln!(s, "{row}");
        }
    }
    s
}

/// What the proxy comparison's summaries say of the origin and of what is counted.
pub fn proxy_note(origin_core: usize, client_core: usize) -> String {
    let shared = if origin_core == client_core {
        " The origin shares the client's CPU here (no third CPU): the client core's figures \
         leave it out, and at saturation that shared CPU, not the server's, may be the limit, \
         so the requests one server core answers (10⁶ / its µs per request) are the fairer \
         saturation figure."
    } else {
        ""
    };
    format!(
        "**Proxy scenarios** (issue 13): every target forwards each request over keep-alive \
         connections to the same origin (nginx, one worker pinned to CPU {origin_core}, on the \
         server namespace's loopback; `loadgen/src/compare/proxy.rs` has every target's \
         configuration). The origin's processes are counted apart (the origin column of the \
         CPU table), never in the server core, wherever they ran. Loopback delivers a segment \
         in its sender's context, so each proxy's core also carries the origin's TCP receive of \
         each request it forwards, and the origin's core the proxy's receive of each response: \
         the same for every target.{shared}\n\n"
    )
}

/// Issue 12's performance goals against what was measured.
fn goals(r: &RunRecord) -> String {
    let mut s = String::new();
    let c = &r.config;
    let has = |t| c.targets.contains(&t);
    if !has(Target::XgateBypass) {
        return s;
    }
    let _ = writeln!(
        s,
        "\n## The performance goals (issue 12), against this run\n\n| goal | measured | met |\n| --- | --- | --- |"
    );
    let mut line = |goal: String, measured: String, met: Option<bool>| {
        let verdict = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        let _ = writeln!(s, "| {goal} | {measured} | {verdict} |");
    };
    let others: Vec<Target> = [Target::XgateKernel, Target::Nginx]
        .into_iter()
        .filter(|&t| has(t))
        .collect();
    let ratios = |value: &dyn Fn(Target) -> Option<Spread>| -> Vec<(Target, Option<f64>)> {
        others
            .iter()
            .map(|&o| (o, ratio(value(Target::XgateBypass), value(o))))
            .collect()
    };
    let show = |v: &[(Target, Option<f64>)]| {
        v.iter()
            .map(|(t, x)| format!("{} vs {}", ratio_cell(*x), short(*t)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let all = |v: &[(Target, Option<f64>)], ok: fn(f64) -> bool| -> Option<bool> {
        if v.is_empty() || v.iter().any(|(_, x)| x.is_none()) {
            None
        } else {
            Some(v.iter().all(|(_, x)| x.is_some_and(ok)))
        }
    };
    for sc in [Scenario::KeepAlive, Scenario::Echo1k] {
        if !c.scenarios.contains(&sc) {
            continue;
        }
        for level in RateLevel::LAB {
            let v = ratios(&|t| server_cost(r, t, sc, Some(level)));
            line(
                format!(
                    "server core CPU per request ≤ 0.4x, {}, {} rate",
                    sc.name(),
                    level.name()
                ),
                show(&v),
                all(&v, |x| x <= 0.4),
            );
        }
    }
    if c.scenarios.contains(&Scenario::Churn) {
        let v = ratios(&|t| capacity(r, t, Scenario::Churn));
        line(
            "churn: requests per server core ≥ 3x".into(),
            show(&v),
            all(&v, |x| x >= 3.0),
        );
    }
    if c.scenarios.contains(&Scenario::KeepAlive) {
        let v = ratios(&|t| capacity(r, t, Scenario::KeepAlive));
        line(
            "server core saturation (keep-alive requests per server core) ≥ 3x".into(),
            show(&v),
            all(&v, |x| x >= 3.0),
        );
    }
    for sc in [Scenario::KeepAlive, Scenario::Echo1k] {
        if !c.scenarios.contains(&sc) {
            continue;
        }
        let level = sustained_level(r, sc);
        let v =
            ratios(&|t| level.and_then(|l| spread(r, t, sc, Some(l), |m| m.client.latency_us.p99)));
        line(
            format!(
                "p99 at the highest rate all sustained ({}) ≤ 0.5x, {}",
                level.map_or("none".into(), |l| level_label(r, sc, l)),
                sc.name()
            ),
            show(&v),
            all(&v, |x| x <= 0.5),
        );
    }
    if c.scenarios.contains(&Scenario::Bytes16k) && has(Target::XgateKernel) {
        let v: Vec<(Target, Option<f64>)> =
            ratios(&|t| server_cost(r, t, Scenario::Bytes16k, Some(RateLevel::Mid)))
                .into_iter()
                .filter(|(t, _)| *t == Target::XgateKernel)
                .collect();
        line(
            "GET /bytes/16384 server core CPU per request no worse than the kernel path (mid rate)"
                .into(),
            show(&v),
            all(&v, |x| x <= 1.0),
        );
    }
    s
}

/// Issue 13's performance goals (server core CPU per proxied request at most 0.6x nginx's and
/// HAProxy's at a rate all sustain, throughput at least 1.5x, p99 at most 0.5x), for each of
/// xgate's paths against each of them.
fn proxy_goals(r: &RunRecord) -> String {
    let c = &r.config;
    let has = |t| c.targets.contains(&t);
    let others: Vec<Target> = [Target::Nginx, Target::Haproxy]
        .into_iter()
        .filter(|&t| has(t))
        .collect();
    let mut s = String::new();
    if others.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "\n## The performance goals (issue 13), against this run\n\n| goal | measured | met |\n| --- | --- | --- |"
    );
    for subject in [Target::XgateBypass, Target::XgateKernel] {
        if !has(subject) {
            continue;
        }
        let mut line =
            |goal: String, value: &dyn Fn(Target) -> Option<Spread>, ok: fn(f64) -> bool| {
                let v: Vec<(Target, Option<f64>)> = others
                    .iter()
                    .map(|&o| (o, ratio(value(subject), value(o))))
                    .collect();
                let measured = v
                    .iter()
                    .map(|(t, x)| format!("{} vs {}", ratio_cell(*x), short(*t)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let verdict = if v.iter().any(|(_, x)| x.is_none()) {
                    "—"
                } else if v.iter().all(|(_, x)| x.is_some_and(ok)) {
                    "yes"
                } else {
                    "**no**"
                };
                let _ = writeln!(s, "| {}: {goal} | {measured} | {verdict} |", subject.name());
            };
        for &sc in &c.scenarios {
            for level in RateLevel::LAB {
                line(
                    format!(
                        "server core CPU per request ≤ 0.6x, {}, {} rate",
                        sc.name(),
                        level.name()
                    ),
                    &|t| server_cost(r, t, sc, Some(level)),
                    |x| x <= 0.6,
                );
            }
            line(
                format!(
                    "{}: requests per server core at saturation ≥ 1.5x",
                    sc.name()
                ),
                &|t| capacity(r, t, sc),
                |x| x >= 1.5,
            );
            line(
                format!("{}: measured closed-loop throughput ≥ 1.5x", sc.name()),
                &|t| spread(r, t, sc, None, |m| m.client.throughput_rps),
                |x| x >= 1.5,
            );
            let level = sustained_level(r, sc);
            line(
                format!(
                    "{}: p99 at the highest rate all sustained ({}) ≤ 0.5x",
                    sc.name(),
                    level.map_or("none".into(), |l| level_label(r, sc, l))
                ),
                &|t| level.and_then(|l| spread(r, t, sc, Some(l), |m| m.client.latency_us.p99)),
                |x| x <= 0.5,
            );
        }
    }
    s
}

/// The lab's charts: the server core's cost per request at the middle rate, and the requests
/// one server core answers at saturation, one panel per workload.
pub fn charts(r: &RunRecord) -> Vec<(&'static str, String)> {
    let names: Vec<&str> = r.config.targets.iter().map(|t| t.name()).collect();
    let panels = |value: &dyn Fn(Target, Scenario) -> Option<Spread>, unit: &str| {
        r.config
            .scenarios
            .iter()
            .map(|&sc| svg::BarPanel {
                title: sc.name().to_string(),
                unit: unit.to_string(),
                values: r
                    .config
                    .targets
                    .iter()
                    .map(|&t| value(t, sc).map(|x| (x.median, x.min, x.max)))
                    .collect(),
            })
            .collect::<Vec<_>>()
    };
    vec![
        (
            "server-core-cost",
            svg::bars(
                &format!(
                    "Lab: server core CPU per request at the middle rate, median of {} ({})",
                    r.config.reps, r.started_utc
                ),
                &names,
                &panels(
                    &|t, sc| server_cost(r, t, sc, Some(RateLevel::Mid)),
                    "µs per request",
                ),
            ),
        ),
        (
            "server-core-capacity",
            svg::bars(
                &format!(
                    "Lab: requests/s one server core answers at saturation, median of {} ({})",
                    r.config.reps, r.started_utc
                ),
                &names,
                &panels(&|t, sc| capacity(r, t, sc), "requests/s per core"),
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::attribution::{Attribution, SideCpu};
    use crate::compare::report::{ClientFigures, LabRate, RunConfig};
    use crate::compare::scenarios::Offered;
    use crate::compare::topology::Network;

    fn m(
        t: Target,
        sc: Scenario,
        level: Option<RateLevel>,
        server_us: f64,
        p99: f64,
    ) -> Measurement {
        let requests = 10_000;
        let server_secs = server_us * requests as f64 / 1e6;
        Measurement {
            target: t,
            scenario: sc,
            rep: 0,
            offered: level.map(|level| Offered { level, rate: 1000 }),
            client: ClientFigures {
                requests,
                throughput_rps: 1000.0,
                duration_secs: 10.0,
                latency_us: crate::compare::report::Latency {
                    p99,
                    ..Default::default()
                },
                ..ClientFigures::default()
            },
            cpu: Default::default(),
            cpu_us_per_request: server_us * 2.0,
            server_core_us_per_request: server_us,
            attribution: Some(Attribution {
                server_core: 1,
                client_core: 0,
                server: SideCpu {
                    process_secs: server_secs * 0.75,
                    napi_secs: server_secs * 0.25,
                    ..SideCpu::default()
                },
                client: SideCpu {
                    process_secs: 1.0,
                    ..SideCpu::default()
                },
                origin_secs: 0.0,
                rest_secs: 0.01,
                rest_top: vec![("kworker/u8:1".into(), 0.01)],
                softirqs: Default::default(),
            }),
            load_average: 0.0,
            command: String::new(),
        }
    }

    fn record() -> RunRecord {
        let mut measurements = Vec::new();
        for (t, cost, p99) in [
            (Target::XgateBypass, 4.0, 100.0),
            (Target::XgateKernel, 12.0, 300.0),
            (Target::Nginx, 8.0, 150.0),
        ] {
            for level in [
                None,
                Some(RateLevel::Low),
                Some(RateLevel::Mid),
                Some(RateLevel::High),
            ] {
                measurements.push(m(t, Scenario::KeepAlive, level, cost, p99));
            }
        }
        RunRecord {
            schema: 1,
            started_utc: "2026-12-06T00:00:00Z".into(),
            commit: "abc".into(),
            machine: crate::compare::machine::MachineInfo::read(),
            config: RunConfig {
                network: Network::Lab,
                reps: 1,
                duration_secs: 10,
                warmup_secs: 1,
                server_core: 1,
                client_core: 0,
                open_loop_rate: 0,
                open_loop_rate_from: String::new(),
                targets: Target::ALL.to_vec(),
                scenarios: vec![Scenario::KeepAlive],
                xgate: "xgate".into(),
                xgate_config: None,
                nginx: "nginx".into(),
                haproxy: None,
                origin_core: None,
                command_line: "loadgen compare --network lab".into(),
                topology: None,
                lab_rates: vec![LabRate {
                    scenario: Scenario::KeepAlive,
                    high: 10_000,
                    from: "test".into(),
                }],
            },
            measurements,
            wrk: Vec::new(),
        }
    }

    #[test]
    fn the_lab_summary_has_costs_ratios_and_goals() {
        let md = record().markdown();
        for needle in [
            "# xgate lab comparison",
            "| keep-alive, closed loop | 4.00 [4.00–4.00] | 12.0 [12.0–12.0] | 8.00 [8.00–8.00] | 0.33x | 0.50x |",
            "| keep-alive, mid 5000/s |",
            "| keep-alive: requests/s per server core | 250000 [250000–250000] |",
            "| keep-alive: server core busy % | 0.40 [0.40–0.40] |",
            "| keep-alive (high, 10000/s): p99 | 100 [100–100] | 300 [300–300] | 150 [150–150] | 0.33x | 0.67x |",
            "| server core CPU per request ≤ 0.4x, keep-alive, mid rate | 0.33x vs kernel, 0.50x vs nginx | **no** |",
            "| server core saturation (keep-alive requests per server core) ≥ 3x | 3.00x vs kernel, 2.00x vs nginx | **no** |",
            "| xgate bypass, keep-alive | 3.00 | 1.00 | 0.00 | 0.00 | 0.00 | **4.00** | — | 100 |",
            "0 failed request(s)",
        ] {
            assert!(md.contains(needle), "{needle:?} not in:\n{md}");
        }
    }

    #[test]
    fn a_proxy_lab_summary_has_haproxy_the_origin_and_issue_13_s_goals() {
        let mut r = record();
        r.config.targets = Target::PROXY.to_vec();
        r.config.scenarios = vec![Scenario::ProxyGet];
        r.config.origin_core = Some(0);
        r.config.lab_rates[0].scenario = Scenario::ProxyGet;
        r.measurements.clear();
        for (t, cost, p99) in [
            (Target::XgateBypass, 5.0, 100.0),
            (Target::XgateKernel, 9.0, 250.0),
            (Target::Nginx, 10.0, 200.0),
            (Target::Haproxy, 20.0, 400.0),
        ] {
            for level in [
                None,
                Some(RateLevel::Low),
                Some(RateLevel::Mid),
                Some(RateLevel::High),
            ] {
                let mut x = m(t, Scenario::ProxyGet, level, cost, p99);
                if let Some(a) = x.attribution.as_mut() {
                    a.origin_secs = 0.03;
                }
                r.measurements.push(x);
            }
        }
        let md = r.markdown();
        for needle in [
            "| bypass / kernel | bypass / nginx | bypass / haproxy |",
            "| proxy-get, closed loop | 5.00 [5.00–5.00] | 9.00 [9.00–9.00] | 10.0 [10.0–10.0] | 20.0 [20.0–20.0] | 0.56x | 0.50x | 0.25x |",
            "## The performance goals (issue 13)",
            "| xgate bypass: server core CPU per request ≤ 0.6x, proxy-get, mid rate | 0.50x vs nginx, 0.25x vs haproxy | yes |",
            "| xgate kernel path: server core CPU per request ≤ 0.6x, proxy-get, mid rate | 0.90x vs nginx, 0.45x vs haproxy | **no** |",
            "| xgate bypass: proxy-get: requests per server core at saturation ≥ 1.5x | 2.00x vs nginx, 4.00x vs haproxy | yes |",
            "| xgate bypass: proxy-get: p99 at the highest rate all sustained (high, 10000/s) ≤ 0.5x | 0.50x vs nginx, 0.25x vs haproxy | yes |",
            "| xgate kernel path: proxy-get: measured closed-loop throughput ≥ 1.5x | 1.00x vs nginx, 1.00x vs haproxy | **no** |",
            " origin |",
            // 0.03 s over 10 000 requests.
            "| 3.00 |\n",
        ] {
            assert!(md.contains(needle), "{needle:?} not in:\n{md}");
        }
        assert!(!md.contains("issue 12"), "{md}");
    }

    #[test]
    fn latency_is_shown_at_the_highest_rate_every_target_sustained() {
        let mut r = record();
        let p99 = |r: &RunRecord| {
            let md = r.markdown();
            md.lines()
                .find(|l| l.contains("p99 |"))
                .map(str::to_string)
                .unwrap_or_else(|| panic!("no p99 row in:\n{md}"))
        };
        // Every target answers what it was offered: the high rate.
        assert!(p99(&r).starts_with("| keep-alive (high, 10000/s): p99 |"));
        // nginx answers 98% of the high rate: the mid rate every target sustained.
        for x in r.measurements.iter_mut() {
            if x.target == Target::Nginx && x.offered.is_some_and(|o| o.level == RateLevel::High) {
                x.client.throughput_rps = 980.0;
            }
        }
        assert!(
            p99(&r).starts_with("| keep-alive (mid, 5000/s): p99 |"),
            "{}",
            p99(&r)
        );
        assert_eq!(
            sustained_level(&r, Scenario::KeepAlive),
            Some(RateLevel::Mid)
        );
        // At 99% it still sustains it.
        for x in r.measurements.iter_mut() {
            if x.target == Target::Nginx {
                x.client.throughput_rps = 990.0;
            }
        }
        assert_eq!(
            sustained_level(&r, Scenario::KeepAlive),
            Some(RateLevel::High)
        );
        // No rate at all: said so.
        for x in r.measurements.iter_mut() {
            x.client.throughput_rps = 500.0;
        }
        assert_eq!(sustained_level(&r, Scenario::KeepAlive), None);
        assert!(r
            .markdown()
            .contains("| keep-alive: no rate every target sustained |"));
    }

    #[test]
    fn small_ratios_keep_their_digits() {
        assert_eq!(ratio_cell(Some(0.0036)), "3.60e-3x");
        assert_eq!(ratio_cell(Some(0.5)), "0.50x");
        assert_eq!(ratio_cell(None), "—");
    }

    #[test]
    fn the_lab_draws_cost_and_capacity() {
        let charts = charts(&record());
        assert_eq!(charts.len(), 2);
        for (_, svg) in charts {
            assert!(svg.starts_with("<svg") && svg.contains("<rect"));
        }
    }
}
