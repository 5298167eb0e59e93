//! The path comparison's summary: per bottleneck rate (a path family), each path, client
//! setting, size and direction with the bypass's and the kernel path's median completion
//! time and their ratio; what a client without timestamps or with MTU 1280 pays on each
//! path against one with both; issue 14's goal against the run; the emulator's counters;
//! and a goodput chart per family and direction.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::paths::{ClientSetting, Direction, PathCase, PathsRecord};
use super::report::Spread;
use super::servers::Target;
use super::svg;
use super::CompareError;

/// The client setting every other is compared with: timestamps on, MTU 1500.
const REFERENCE: ClientSetting = ClientSetting {
    timestamps: true,
    mtu: 1500,
};

/// One row's key: where, who, which way, how much.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Key {
    path: PathCase,
    client: ClientSetting,
    direction: Direction,
    size: u64,
}

/// The completion times of `key` on `target`, as a spread.
fn times(r: &PathsRecord, key: Key, target: Target) -> Option<Spread> {
    Spread::of(
        r.transfers
            .iter()
            .filter(|t| {
                t.target == target
                    && t.path == key.path
                    && t.client == key.client
                    && t.direction == key.direction
                    && t.size == key.size
            })
            .filter_map(|t| t.secs),
    )
}

/// Every key of the record, in the order it was run.
fn keys(r: &PathsRecord) -> Vec<Key> {
    let mut out: Vec<Key> = Vec::new();
    for t in &r.transfers {
        let k = Key {
            path: t.path,
            client: t.client,
            direction: t.direction,
            size: t.size,
        };
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

fn size_name(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

fn secs(x: Option<Spread>) -> String {
    x.map_or("—".into(), |s| {
        format!("{:.3} [{:.3}–{:.3}]", s.median, s.min, s.max)
    })
}

/// The median over the repetitions of `key` of bypass / kernel path, each repetition's two
/// transfers taken together: their losses were drawn from the same seed (`paths::loss_seed`),
/// the same packets lost for as long as the two stacks send the same packets, so this compares
/// how they fared on much the same luck, where the ratio of the medians may compare one
/// target's unlucky repetition with the other's lucky one. None when a transfer of the row
/// failed on either target (the ratio of the medians leaves failures out too; the failures
/// are listed at the end of the report).
fn paired(r: &PathsRecord, key: Key) -> Option<f64> {
    let of = |target: Target, rep: u32| {
        r.transfers
            .iter()
            .find(|t| {
                t.target == target
                    && t.rep == rep
                    && t.path == key.path
                    && t.client == key.client
                    && t.direction == key.direction
                    && t.size == key.size
            })
            .and_then(|t| t.secs)
    };
    let reps = r
        .transfers
        .iter()
        .filter(|t| {
            t.target == Target::XgateBypass
                && t.path == key.path
                && t.client == key.client
                && t.direction == key.direction
                && t.size == key.size
        })
        .map(|t| t.rep);
    let ratios: Option<Vec<f64>> = reps
        .map(|rep| {
            let (b, k) = (of(Target::XgateBypass, rep)?, of(Target::XgateKernel, rep)?);
            (k > 0.0).then(|| b / k)
        })
        .collect();
    Spread::of(ratios?).map(|s| s.median)
}

fn ratio(a: Option<Spread>, b: Option<Spread>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b.median > 0.0 => Some(a.median / b.median),
        _ => None,
    }
}

fn ratio_cell(x: Option<f64>) -> String {
    x.map_or("—".into(), |x| format!("{x:.2}x"))
}

/// Goodput in Mbit/s of `size` bytes in the median time.
fn goodput(size: u64, t: Option<Spread>) -> Option<f64> {
    t.filter(|t| t.median > 0.0)
        .map(|t| size as f64 * 8.0 / t.median / 1e6)
}

/// The summary in markdown.
pub fn markdown(r: &PathsRecord) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(s, "# xgate path comparison — {}\n", r.started_utc);
    let _ = writeln!(
        s,
        "Commit `{}` on {} ({} CPUs, {:.0} GiB, kernel {}{}). {} repetition(s) of every \
         transfer on each target{}, the targets alternating. Reproduce: `{}`.\n",
        r.commit,
        m.cpu_model,
        m.cpus,
        m.memory_gib,
        m.kernel,
        m.virtualised
            .as_deref()
            .map_or(String::new(), |v| format!(", virtualised: {v}")),
        r.reps,
        r.lossy_reps
            .filter(|&n| n != r.reps && r.transfers.iter().any(|t| t.path.loss_pct > 0.0))
            .map_or(String::new(), |n| format!(
                " ({n} on paths with random loss, whose times are bimodal)"
            )),
        r.command_line
    );
    let _ = writeln!(
        s,
        "A real Linux client (curl, in its own namespace) downloads `GET /bytes/{{n}}` and \
         uploads `POST /upload` (answered once the body is read) on a new connection each \
         time, through an emulated path: half the RTT each way, a drop-tail bottleneck \
         queue of one bandwidth-delay product (at least 64 KiB), random loss each way, \
         seeded per repetition so that both targets of a repetition meet the same losses \
         packet for packet of their own connections while they send the same packets \
         (`xgate-testnet`'s path emulator, NFQUEUE in a router namespace between client and \
         server: this kernel has no netem). Client settings: `ts`/`nots` = TCP timestamps on/off, then the client's \
         MTU. The figure is curl's `time_total` (handshake, request, every byte), median \
         [min–max] in seconds; the ratio is bypass / kernel path (below 1: the bypass is \
         faster), of the medians as the goal states it; `paired` is the median of each \
         repetition's own ratio (both targets of a repetition drew their losses from one \
         seed: the same packets lost while they send the same packets). {}\n",
        if r.client_cc.is_empty() {
            "Both xgate paths' TCP and the client used the machine's default congestion \
             control, whatever the bypass's own."
                .to_string()
        } else {
            format!(
                "Congestion control: CUBIC on both xgate paths (the bypass's default; xgate \
                 gives its kernel path's listeners the same), {} on the client ({}; it sends \
                 the uploads, alike on both paths).",
                r.client_cc,
                if r.client_cc_chosen == Some(true) {
                    "`--client-cc`"
                } else {
                    "the host's default"
                }
            )
        }
    );
    let all = keys(r);
    s += &summary(r, &all);
    for skipped in &r.skipped {
        let _ = writeln!(s, "- Not run: {skipped}.");
    }
    if !r.skipped.is_empty() {
        let _ = writeln!(s);
    }
    let mut rates: Vec<u64> = all.iter().map(|k| k.path.rate_mbit).collect();
    rates.sort_unstable();
    rates.dedup();
    for rate in &rates {
        let _ = writeln!(s, "## Bottleneck {rate} Mbit/s\n");
        let _ = writeln!(
            s,
            "| RTT, loss | client | direction | size | xgate bypass (s) | xgate kernel path (s) \
             | bypass / kernel | paired | bypass Mbit/s | kernel Mbit/s |\n| --- | --- | --- \
             | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for k in all.iter().filter(|k| k.path.rate_mbit == *rate) {
            let b = times(r, *k, Target::XgateBypass);
            let kp = times(r, *k, Target::XgateKernel);
            let _ = writeln!(
                s,
                "| {} ms, {}% | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                k.path.rtt_ms,
                k.path.loss_pct,
                k.client.name(),
                k.direction.name(),
                size_name(k.size),
                secs(b),
                secs(kp),
                ratio_cell(ratio(b, kp)),
                ratio_cell(paired(r, *k)),
                goodput(k.size, b).map_or("—".into(), |g| format!("{g:.1}")),
                goodput(k.size, kp).map_or("—".into(), |g| format!("{g:.1}")),
            );
        }
        let _ = writeln!(s);
    }

    let _ = writeln!(
        s,
        "## What a client without timestamps or with MTU 1280 pays\n\nEach setting's median \
         completion time against `{}`'s on the same path, size and direction (1.00x: no \
         penalty), on each target; the worst case over every path and size.\n",
        REFERENCE.name()
    );
    let _ = writeln!(
        s,
        "| client | direction | xgate bypass: worst | its median | xgate kernel path: worst | its median |\n| --- | --- | ---: | ---: | ---: | ---: |"
    );
    let mut settings: Vec<ClientSetting> = all.iter().map(|k| k.client).collect();
    settings.dedup();
    settings.sort_by_key(|c| (!c.timestamps, std::cmp::Reverse(c.mtu)));
    settings.dedup();
    for client in settings.iter().filter(|c| **c != REFERENCE) {
        // Only the directions the run had (`--directions`).
        for direction in [Direction::Download, Direction::Upload]
            .into_iter()
            .filter(|d| all.iter().any(|k| k.direction == *d))
        {
            let penalties = |target| {
                let v: Vec<f64> = all
                    .iter()
                    .filter(|k| k.client == *client && k.direction == direction)
                    .filter_map(|k| {
                        ratio(
                            times(r, *k, target),
                            times(
                                r,
                                Key {
                                    client: REFERENCE,
                                    ..*k
                                },
                                target,
                            ),
                        )
                    })
                    .collect();
                Spread::of(v)
            };
            let cell = |x: Option<Spread>, pick: fn(Spread) -> f64| {
                x.map_or("—".into(), |x| format!("{:.2}x", pick(x)))
            };
            let (b, k) = (
                penalties(Target::XgateBypass),
                penalties(Target::XgateKernel),
            );
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                client.name(),
                direction.name(),
                cell(b, |x| x.max),
                cell(b, |x| x.median),
                cell(k, |x| x.max),
                cell(k, |x| x.median),
            );
        }
    }

    s += &goals(r, &all);

    let _ = writeln!(s, "\n## The path emulator's counters, per path\n");
    for e in &r.emulator {
        let tcp: Vec<String> = e
            .bypass_tcp
            .iter()
            .map(|(series, v)| format!("`{series}` {v}"))
            .collect();
        let _ = writeln!(s, "- {}: {}", e.path.name(), e.summary);
        if !tcp.is_empty() {
            let _ = writeln!(s, "  - the bypass's TCP there: {}", tcp.join(", "));
        }
    }
    let failed: Vec<_> = r.transfers.iter().filter(|t| t.secs.is_none()).collect();
    let _ = writeln!(s, "\n{} failed transfer(s).", failed.len());
    for t in failed.iter().take(20) {
        let _ = writeln!(
            s,
            "- {} {} {} {} {} rep {}: {}",
            t.path.name(),
            t.client.name(),
            t.direction.name(),
            size_name(t.size),
            t.target.name(),
            t.rep,
            t.error.as_deref().unwrap_or("")
        );
    }
    s
}

/// The bypass / kernel path ratios of every key, with the key.
fn ratios(r: &PathsRecord, all: &[Key]) -> Vec<(Key, f64)> {
    all.iter()
        .filter_map(|k| {
            ratio(
                times(r, *k, Target::XgateBypass),
                times(r, *k, Target::XgateKernel),
            )
            .map(|x| (*k, x))
        })
        .collect()
}

/// One line per bottleneck rate, size and direction over every RTT, loss and client setting:
/// the median and worst bypass / kernel path ratio and how many rows are within 5% (the
/// README's table).
fn summary(r: &PathsRecord, all: &[Key]) -> String {
    let mut s = String::new();
    let ratios = ratios(r, all);
    let _ = writeln!(
        s,
        "## Summary\n\nBypass / kernel path median completion time, over every RTT, loss and \
         client setting of the bottleneck (1.00x: as fast; below: faster).\n\n\
         | bottleneck | size | direction | median ratio | best | worst | rows within 5% |\n\
         | ---: | ---: | --- | ---: | ---: | ---: | ---: |"
    );
    let mut groups: Vec<(u64, u64, Direction)> = Vec::new();
    for k in all {
        let g = (k.path.rate_mbit, k.size, k.direction);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    groups.sort_by_key(|&(rate, size, d)| (rate, size, d == Direction::Upload));
    for (rate, size, direction) in groups {
        let v: Vec<f64> = ratios
            .iter()
            .filter(|(k, _)| k.path.rate_mbit == rate && k.size == size && k.direction == direction)
            .map(|(_, x)| *x)
            .collect();
        let within = v.iter().filter(|x| **x <= 1.05).count();
        let Some(spread) = Spread::of(v.iter().copied()) else {
            continue;
        };
        let _ = writeln!(
            s,
            "| {rate} Mbit/s | {} | {} | {:.2}x | {:.2}x | {:.2}x | {within} of {} |",
            size_name(size),
            direction.name(),
            spread.median,
            spread.min,
            spread.max,
            v.len()
        );
    }
    let _ = writeln!(s);
    s
}

/// Issue 14's goal: on every path and client setting the bypass's median completion time
/// within 5% of the kernel path's or better, never worse by more than 10% at any size, and
/// no penalty for a client without timestamps or with MTU 1280.
fn goals(r: &PathsRecord, all: &[Key]) -> String {
    let mut s = String::new();
    let ratios = ratios(r, all);
    let _ = writeln!(
        s,
        "\n## The goal (issue 14), against this run\n\n| goal | measured | met |\n| --- | --- | --- |"
    );
    let verdict = |ok: bool| if ok { "yes" } else { "**no**" };
    let within5 = ratios.iter().filter(|(_, x)| *x <= 1.05).count();
    let worst = ratios.iter().map(|(_, x)| *x).fold(f64::NAN, f64::max);
    let worst_at =
        ratios
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(String::new(), |(k, _)| {
                format!(
                    " ({}, {}, {} {})",
                    k.path.name(),
                    k.client.name(),
                    size_name(k.size),
                    k.direction.name()
                )
            });
    let _ = writeln!(
        s,
        "| bypass median completion time within 5% of the kernel path's or better | {within5} of {} rows | {} |",
        ratios.len(),
        verdict(!ratios.is_empty() && within5 == ratios.len())
    );
    let _ = writeln!(
        s,
        "| never worse than the kernel path by more than 10% | worst {}{worst_at} | {} |",
        ratio_cell(worst.is_finite().then_some(worst)),
        verdict(worst.is_finite() && worst <= 1.10)
    );
    // The bypass's penalty for a setting, beyond what the same setting costs the kernel path
    // (a smaller MTU costs every stack some goodput: the goal is no penalty of the bypass's
    // own making), within the same 5%.
    let mut worst_extra = f64::NAN;
    for k in all.iter().filter(|k| k.client != REFERENCE) {
        let reference = Key {
            client: REFERENCE,
            ..*k
        };
        let own = ratio(
            times(r, *k, Target::XgateBypass),
            times(r, reference, Target::XgateBypass),
        );
        let kernel = ratio(
            times(r, *k, Target::XgateKernel),
            times(r, reference, Target::XgateKernel),
        );
        if let (Some(own), Some(kernel)) = (own, kernel) {
            worst_extra = worst_extra.max(own / kernel.max(1.0));
        }
    }
    let _ = writeln!(
        s,
        "| no penalty for a client without timestamps or with MTU 1280 (its bypass time against `{}`'s, beyond what the kernel path's own ratio shows), within 5% | worst {} | {} |",
        REFERENCE.name(),
        ratio_cell(worst_extra.is_finite().then_some(worst_extra)),
        verdict(worst_extra.is_finite() && worst_extra <= 1.05)
    );
    // Not the goal's measure, but what separates a stack's doing from the repetitions' luck.
    let paired: Vec<(Key, f64)> = all
        .iter()
        .filter_map(|k| paired(r, *k).map(|x| (*k, x)))
        .collect();
    if !paired.is_empty() {
        let within = paired.iter().filter(|(_, x)| *x <= 1.05).count();
        let (wk, wx) = paired
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .copied()
            .unwrap_or((all[0], f64::NAN));
        let _ = writeln!(
            s,
            "\nPaired, each repetition's bypass time against the kernel path's of the same \
             repetition (losses from the same seed): {within} of {} rows within 5%, the worst \
             {:.2}x ({}, {}, {} {}).",
            paired.len(),
            wx,
            wk.path.name(),
            wk.client.name(),
            size_name(wk.size),
            wk.direction.name()
        );
    }
    s
}

/// Goodput charts: one per bottleneck rate and direction, a panel per path (RTT, loss), a
/// bar per client setting and target, at the largest size measured at that rate.
pub fn charts(r: &PathsRecord) -> Vec<(String, String)> {
    let all = keys(r);
    let mut settings: Vec<ClientSetting> = Vec::new();
    for k in &all {
        if !settings.contains(&k.client) {
            settings.push(k.client);
        }
    }
    let names: Vec<String> = settings
        .iter()
        .flat_map(|c| {
            [
                format!("bypass {}", c.name()),
                format!("kernel {}", c.name()),
            ]
        })
        .collect();
    let series: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut rates: Vec<u64> = all.iter().map(|k| k.path.rate_mbit).collect();
    rates.sort_unstable();
    rates.dedup();
    let mut out = Vec::new();
    for rate in rates {
        // The largest size run at this rate (`--max-line-secs` may leave the largest out).
        let Some(size) = all
            .iter()
            .filter(|k| k.path.rate_mbit == rate)
            .map(|k| k.size)
            .max()
        else {
            continue;
        };
        // Only the directions the run had (`--directions`): an empty chart would replace
        // the last run's.
        for direction in [Direction::Download, Direction::Upload]
            .into_iter()
            .filter(|d| all.iter().any(|k| k.direction == *d))
        {
            let mut paths: Vec<PathCase> = Vec::new();
            for k in all.iter().filter(|k| k.path.rate_mbit == rate) {
                if !paths.contains(&k.path) {
                    paths.push(k.path);
                }
            }
            let panels: Vec<svg::BarPanel> = paths
                .iter()
                .map(|p| svg::BarPanel {
                    title: format!("{} ms, {}%", p.rtt_ms, p.loss_pct),
                    unit: "Mbit/s".into(),
                    values: settings
                        .iter()
                        .flat_map(|c| [(c, Target::XgateBypass), (c, Target::XgateKernel)])
                        .map(|(c, t)| {
                            let k = Key {
                                path: *p,
                                client: *c,
                                direction,
                                size,
                            };
                            times(r, k, t).map(|x| {
                                let g = |secs: f64| size as f64 * 8.0 / secs / 1e6;
                                (g(x.median), g(x.max), g(x.min))
                            })
                        })
                        .collect(),
                })
                .collect();
            let title = format!(
                "{} of {} at {rate} Mbit/s: goodput (median, min–max)",
                direction.name(),
                size_name(size)
            );
            out.push((
                format!("{rate}mbit-{}", direction.name()),
                svg::bars(&title, &series, &panels),
            ));
        }
    }
    out
}

/// Writes the record, its summary (`runs/` and the latest `paths.md`) and the charts.
pub fn write(r: &PathsRecord, out: &Path) -> Result<Vec<PathBuf>, CompareError> {
    super::SummaryFiles {
        name: "paths",
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
    use super::super::paths::Transfer;
    use super::*;

    fn record() -> PathsRecord {
        let path = PathCase {
            rtt_ms: 20,
            loss_pct: 1.0,
            rate_mbit: 100,
        };
        let mut transfers = Vec::new();
        for (client, bypass, kernel) in [
            (REFERENCE, 1.0, 1.0),
            (
                ClientSetting {
                    timestamps: false,
                    mtu: 1500,
                },
                2.0,
                1.0,
            ),
        ] {
            for (target, secs) in [(Target::XgateBypass, bypass), (Target::XgateKernel, kernel)] {
                for rep in 0..3 {
                    transfers.push(Transfer {
                        path,
                        client,
                        direction: Direction::Download,
                        size: 1 << 20,
                        target,
                        rep,
                        secs: Some(secs + f64::from(rep) * 0.01),
                        error: None,
                    });
                }
            }
        }
        transfers.push(Transfer {
            path,
            client: REFERENCE,
            direction: Direction::Upload,
            size: 1 << 20,
            target: Target::XgateBypass,
            rep: 0,
            secs: None,
            error: Some("curl said \"000 0 0\"".into()),
        });
        PathsRecord {
            client_cc: "cubic".into(),
            client_cc_chosen: Some(true),
            schema: 1,
            started_utc: "2026-12-06T00:00:00Z".into(),
            commit: "abc".into(),
            machine: super::super::machine::MachineInfo::read(),
            command_line: "loadgen paths".into(),
            reps: 3,
            lossy_reps: Some(3),
            transfers,
            emulator: vec![super::super::paths::EmulatorNote {
                path,
                summary: "up: 1 packets".into(),
                bypass_tcp: vec![("x_total{kind=\"fast\"}".into(), 4.0)],
            }],
            skipped: vec!["33554432 bytes at 10 Mbit/s: 27 s at line rate".into()],
        }
    }

    #[test]
    fn the_summary_has_ratios_penalties_goals_and_failures() {
        let md = markdown(&record());
        for needle in [
            "## Bottleneck 100 Mbit/s",
            "| 20 ms, 1% | ts-1500 | download | 1 MiB | 1.010 [1.000–1.020] | 1.010 [1.000–1.020] | 1.00x | 1.00x | 8.3 | 8.3 |",
            "| 20 ms, 1% | nots-1500 | download | 1 MiB | 2.010 [2.000–2.020] | 1.010 [1.000–1.020] | 1.99x | 1.99x |",
            "Paired, each repetition's bypass time against the kernel path's of the same repetition (losses from the same seed): 1 of 2 rows within 5%, the worst 1.99x (RTT 20 ms, loss 1%, 100 Mbit/s, nots-1500, 1 MiB download).",
            "| nots-1500 | download | 1.99x | 1.99x | 1.00x | 1.00x |",
            "| bypass median completion time within 5% of the kernel path's or better | 1 of 2 rows | **no** |",
            "| never worse than the kernel path by more than 10% | worst 1.99x (RTT 20 ms, loss 1%, 100 Mbit/s, nots-1500, 1 MiB download) | **no** |",
            "within 5% | worst 1.99x | **no** |",
            "- RTT 20 ms, loss 1%, 100 Mbit/s: up: 1 packets",
            "  - the bypass's TCP there: `x_total{kind=\"fast\"}` 4",
            "1 failed transfer(s).",
            "| 100 Mbit/s | 1 MiB | download | 1.50x | 1.00x | 1.99x | 1 of 2 |",
            "- Not run: 33554432 bytes at 10 Mbit/s: 27 s at line rate.",
        ] {
            assert!(md.contains(needle), "{needle:?} not in:\n{md}");
        }
    }

    #[test]
    fn the_paired_ratio_takes_each_repetition_with_its_own_luck() {
        // The bypass met a timeout in repetition 2, the kernel path in 1 and 2: the medians
        // compare the bypass's lucky middle with the kernel path's unlucky one (0.33x); each
        // repetition against its twin says the stacks did alike (1.00x).
        let mut r = record();
        let key = |t: &Transfer| t.client == REFERENCE && t.direction == Direction::Download;
        for t in r.transfers.iter_mut().filter(|t| key(t)) {
            let timeout = match t.target {
                Target::XgateBypass => t.rep == 2,
                _ => t.rep >= 1,
            };
            t.secs = Some(if timeout { 3.0 } else { 1.0 });
        }
        r.lossy_reps = Some(9);
        let md = markdown(&r);
        for needle in [
            "| 20 ms, 1% | ts-1500 | download | 1 MiB | 1.000 [1.000–3.000] | 3.000 [1.000–3.000] | 0.33x | 1.00x |",
            "3 repetition(s) of every transfer on each target (9 on paths with random loss, whose times are bimodal)",
        ] {
            assert!(md.contains(needle), "{needle:?} not in:\n{md}");
        }
    }

    #[test]
    fn a_row_with_a_failed_transfer_has_no_paired_ratio() {
        let mut r = record();
        let nots = |t: &Transfer| !t.client.timestamps && t.target == Target::XgateKernel;
        if let Some(t) = r.transfers.iter_mut().find(|t| nots(t) && t.rep == 1) {
            t.secs = None;
            t.error = Some("timed out".into());
        }
        let md = markdown(&r);
        let needle = "| 20 ms, 1% | nots-1500 | download | 1 MiB | 2.010 [2.000–2.020] | 1.010 [1.000–1.020] | 1.99x | — |";
        assert!(md.contains(needle), "{needle:?} not in:\n{md}");
        assert!(md.contains("2 failed transfer(s)."), "{md}");
    }

    #[test]
    fn a_chart_per_rate_and_direction() {
        let charts = charts(&record());
        let names: Vec<&str> = charts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["100mbit-download", "100mbit-upload"]);
        assert!(charts[0].1.contains("<svg"));
    }

    #[test]
    fn a_run_of_one_direction_charts_and_tables_that_direction_only() {
        let mut r = record();
        r.transfers.retain(|t| t.direction == Direction::Download);
        let charts = charts(&r);
        let names: Vec<&str> = charts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["100mbit-download"], "no empty upload chart");
        let md = markdown(&r);
        assert!(md.contains("| nots-1500 | download |"), "{md}");
        assert!(!md.contains("| nots-1500 | upload |"), "{md}");
    }

    #[test]
    fn the_clients_congestion_control_says_who_chose_it() {
        let mut r = record();
        assert!(
            markdown(&r).contains("cubic on the client (`--client-cc`;"),
            "{}",
            markdown(&r)
        );
        r.client_cc = "bbr".into();
        r.client_cc_chosen = None;
        assert!(markdown(&r).contains("bbr on the client (the host's default;"));
    }

    #[test]
    fn each_rate_is_charted_at_the_largest_size_it_ran() {
        let mut r = record();
        let slow = PathCase {
            rtt_ms: 20,
            loss_pct: 0.0,
            rate_mbit: 10,
        };
        for target in [Target::XgateBypass, Target::XgateKernel] {
            r.transfers.push(Transfer {
                path: slow,
                client: REFERENCE,
                direction: Direction::Download,
                size: 64 << 10,
                target,
                rep: 0,
                secs: Some(0.1),
                error: None,
            });
        }
        let charts = charts(&r);
        let slow_chart = &charts
            .iter()
            .find(|(n, _)| n == "10mbit-download")
            .unwrap()
            .1;
        assert!(
            slow_chart.contains("download of 64 KiB at 10 Mbit/s"),
            "{slow_chart}"
        );
        assert!(
            slow_chart.contains("5.2"),
            "64 KiB in 0.1 s is 5.2 Mbit/s: {slow_chart}"
        );
        let fast_chart = &charts
            .iter()
            .find(|(n, _)| n == "100mbit-download")
            .unwrap()
            .1;
        assert!(
            fast_chart.contains("download of 1 MiB at 100 Mbit/s"),
            "{fast_chart}"
        );
    }

    #[test]
    fn sizes_are_named_in_binary_units() {
        assert_eq!(size_name(65536), "64 KiB");
        assert_eq!(size_name(32 << 20), "32 MiB");
        assert_eq!(size_name(1000), "1000 B");
    }
}
