//! The lab comparison: on the [`Network::Lab`] topology, where each side's core pays for its
//! own network receive, what one request costs the server's core, for each target and each
//! workload, at saturation and at three fixed open-loop rates.
//!
//! 1. Saturation: every workload closed-loop on every target (the repetitions interleaved as
//!    in the veth run); the server core's cost per request and the throughput it bounds.
//! 2. Rates: per workload, the highest rate is 80% of the slowest target's median closed-loop
//!    throughput (rounded down to 100 requests/s), meant to be one every target sustains; the
//!    low and middle rates are a tenth and a half of it ([`RateLevel`]). The report shows the
//!    latency at the highest of the three that every target did sustain (answered 99% of).
//! 3. Every workload open-loop at each rate on every target: the server core's cost per
//!    request where no target is saturated, and latency from each request's due time.
//!
//! After each closed-loop keep-alive run, wrk runs the same shape (`-t1 -c64`, pinned the
//! same way) as a cross-check of loadgen's figure.
//!
//! Every run records where its CPU time went ([`super::attribution`]), so the report can show
//! that the server's core carried the server's work and nothing of the client's.

use super::report::{LabRate, Measurement, RunRecord, Spread};
use super::scenarios::{Offered, RateLevel, Scenario};
use super::servers::Target;
use super::topology::{Network, Topology};
use super::{
    check_interrupted, load_average, measure, print_measurement, record_for, server_groups,
    start_group, start_origin, utc_now, wrk_check, CompareError, Plan, Run, WrkRun,
};
use std::time::Duration;

/// Runs the lab comparison; see the module doc.
pub(super) fn compare_lab(plan: &Plan, commit: &str) -> Result<RunRecord, CompareError> {
    let plan = &Plan {
        duration: plan.lab_duration,
        warmup: plan.lab_warmup,
        ..plan.clone()
    };
    let load_before = load_average();
    let started = utc_now();
    let workloads = workloads(&plan.scenarios);
    let topo = Topology::create(Network::Lab, (plan.server_core, plan.client_core))?;
    let topology = topo.record()?;
    eprintln!(
        "loadgen compare (lab): {} target(s) x {} workload(s) x (closed loop + {} rates) x {} rep(s) of {} s; netns {} / {}",
        plan.targets.len(),
        workloads.len(),
        RateLevel::LAB.len(),
        plan.reps,
        plan.duration,
        topo.client_ns,
        topo.server_ns
    );

    let origin = start_origin(plan, &topo)?;
    let origin_pid = origin.as_ref().map(|o| o.pid());
    let mut measurements = Vec::new();
    let mut wrk_checks = Vec::new();
    each_run(plan, &topo, |target, rep, server_pid| {
        for &scenario in &workloads {
            let run = Run {
                target,
                scenario,
                rep,
                offered: None,
                server_pid,
                origin_pid,
            };
            let m = measure(plan, &topo, &run, load_before)?;
            print_measurement(&m);
            let loadgen = (m.client.throughput_rps, m.client.client_cpu_us_per_request);
            measurements.push(m);
            // wrk beside loadgen where both can run the same thing: keep-alive GETs.
            if let (Some(wrk), Scenario::KeepAlive) = (&plan.wrk, scenario) {
                let run = WrkRun {
                    wrk,
                    target,
                    scenario,
                    path: "/health",
                    rep,
                };
                wrk_checks.push(wrk_check(plan, &topo, &run, loadgen)?);
            }
        }
        Ok(())
    })?;

    let rates: Vec<LabRate> = workloads
        .iter()
        .map(|&w| highest_rate(w, &plan.targets, &measurements))
        .collect();
    for r in &rates {
        eprintln!(
            "  rates: {:<10} high {} req/s ({})",
            r.scenario.name(),
            r.high,
            r.from
        );
    }

    each_run(plan, &topo, |target, rep, server_pid| {
        for rate in &rates {
            for level in RateLevel::LAB {
                let run = Run {
                    target,
                    scenario: rate.scenario,
                    rep,
                    offered: Some(Offered {
                        level,
                        rate: rate.at(level),
                    }),
                    server_pid,
                    origin_pid,
                };
                let m = measure(plan, &topo, &run, load_before)?;
                print_measurement(&m);
                measurements.push(m);
            }
        }
        Ok(())
    })?;
    drop(origin);
    drop(topo);

    let mut record = record_for(
        plan,
        Network::Lab,
        started,
        commit,
        topology,
        (0, "the lab offers rates per workload (lab_rates)".into()),
    );
    record.config.scenarios = workloads;
    record.config.lab_rates = rates;
    record.measurements = measurements;
    record.wrk = wrk_checks;
    Ok(record)
}

/// The lab's workloads among the scenarios asked for (the open-loop scenario is keep-alive at
/// a rate, which the lab's rates cover): keep-alive when only it was asked.
fn workloads(asked: &[Scenario]) -> Vec<Scenario> {
    let w: Vec<Scenario> = Scenario::WORKLOADS
        .into_iter()
        .chain(Scenario::PROXY)
        .filter(|s| asked.contains(s))
        .collect();
    if w.is_empty() {
        vec![Scenario::KeepAlive]
    } else {
        w
    }
}

/// For each repetition, each server (the order alternating between repetitions), each of its
/// targets: `body(target, rep, server_pid)`.
fn each_run(
    plan: &Plan,
    topo: &Topology,
    mut body: impl FnMut(Target, u32, u32) -> Result<(), CompareError>,
) -> Result<(), CompareError> {
    for rep in 0..plan.reps {
        let mut groups = server_groups(&plan.targets);
        if rep % 2 == 1 {
            groups.reverse();
        }
        for group in groups {
            let server = start_group(plan, topo, group[0])?;
            for &target in &group {
                check_interrupted()?;
                body(target, rep, server.pid())?;
            }
            let what = server.what();
            if !server.stop(Duration::from_secs(15)) {
                eprintln!("  {what} did not stop on SIGTERM within 15 s; killed");
            }
        }
    }
    Ok(())
}

/// 80% of the slowest target's median closed-loop throughput on `scenario`, rounded down to
/// 100 requests/s, at least 100.
fn highest_rate(scenario: Scenario, targets: &[Target], closed: &[Measurement]) -> LabRate {
    let slowest = targets
        .iter()
        .filter_map(|&t| {
            Spread::of(
                closed
                    .iter()
                    .filter(|m| m.target == t && m.scenario == scenario && m.offered.is_none())
                    .map(|m| m.client.throughput_rps),
            )
            .map(|s| (t, s.median))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1));
    match slowest {
        Some((t, rps)) => LabRate {
            scenario,
            high: ((rps * 0.8) as u64 / 100 * 100).max(100),
            from: format!(
                "80% of the slowest target's median closed-loop throughput ({}: {:.0} requests/s)",
                t.name(),
                rps
            ),
        },
        None => LabRate {
            scenario,
            high: 100,
            from: "no closed-loop run to start from".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::report::ClientFigures;

    fn closed(target: Target, scenario: Scenario, rps: f64) -> Measurement {
        Measurement {
            target,
            scenario,
            rep: 0,
            offered: None,
            client: ClientFigures {
                throughput_rps: rps,
                ..ClientFigures::default()
            },
            cpu: Default::default(),
            cpu_us_per_request: 0.0,
            server_core_us_per_request: 0.0,
            attribution: None,
            load_average: 0.0,
            command: String::new(),
        }
    }

    #[test]
    fn the_highest_rate_is_set_by_the_slowest_target() {
        let runs = [
            closed(Target::XgateBypass, Scenario::Churn, 30_000.0),
            closed(Target::XgateKernel, Scenario::Churn, 12_345.0),
            closed(Target::Nginx, Scenario::Churn, 20_000.0),
            closed(Target::XgateKernel, Scenario::KeepAlive, 1_000.0),
        ];
        let r = highest_rate(Scenario::Churn, &Target::ALL, &runs);
        assert_eq!(r.high, 9_800);
        assert!(r.from.contains("xgate kernel path"), "{}", r.from);
        assert_eq!(r.at(RateLevel::Mid), 4_900);
        assert_eq!(r.at(RateLevel::Low), 980);
        let none = highest_rate(Scenario::Echo1k, &Target::ALL, &runs);
        assert_eq!(none.high, 100);
    }

    #[test]
    fn the_lab_runs_the_workloads_asked_for() {
        assert_eq!(workloads(&Scenario::ALL), Scenario::WORKLOADS.to_vec());
        assert_eq!(workloads(&[Scenario::OpenLoop]), vec![Scenario::KeepAlive]);
        assert_eq!(workloads(&Scenario::PROXY), Scenario::PROXY.to_vec());
        assert_eq!(
            workloads(&[Scenario::Bytes16k, Scenario::Churn]),
            vec![Scenario::Churn, Scenario::Bytes16k]
        );
    }
}
