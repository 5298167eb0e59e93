//! Runs one engine workload a fixed number of times, for an instruction count under
//! cachegrind: deterministic where criterion's wall time on a shared machine is not.
//!
//!   cargo build --release -p xgate-core --example engine_instructions
//!   valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
//!       target/release/examples/engine_instructions keepalive 100000
//!
//! Run it twice with different counts (e.g. 50000 and 100000): the difference in "I refs"
//! divided by the difference in counts is the instructions per step, without the set-up.
//! Workloads: `keepalive`, `churn`, `echo1k`, `bytes16k`, `syn` (the same as
//! `benches/engine.rs`), `keepalive-logged` (keep-alive with the access log on), and `proxied-keepalive`
//! (keep-alive `GET` forwarded to an upstream that answers at once). A step includes the scripted client's own work (building and parsing
//! its frames), the same before and after a change to the engine.

#[path = "../benches/workloads/mod.rs"]
mod workloads;

use workloads::{Bytes16k, Churn, Echo1k, KeepAlive, ProxiedKeepAlive, Syn};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(workload), Some(count)) = (args.next(), args.next()) else {
        eprintln!(
            "usage: engine_instructions keepalive|keepalive-logged|proxied-keepalive|churn|echo1k|bytes16k|syn COUNT"
        );
        std::process::exit(2);
    };
    let count: u64 = count.parse().unwrap_or_else(|_| {
        eprintln!("COUNT must be a whole number, not {count:?}");
        std::process::exit(2);
    });
    match workload.as_str() {
        "keepalive" => {
            let mut w = KeepAlive::new();
            (0..count).for_each(|_| w.step());
            assert_eq!(w.rig.engine.connection_count(), 1);
        }
        "keepalive-logged" => {
            let mut w = KeepAlive::logged(1024);
            let mut handed = 0;
            (0..count).for_each(|_| {
                w.step();
                handed += w.hand_over_if_full();
            });
            // One record per request, none dropped.
            assert_eq!((handed + w.logged_now()) as u64, count);
        }
        "proxied-keepalive" => {
            let mut w = ProxiedKeepAlive::new();
            (0..count).for_each(|_| w.step());
            assert_eq!(w.rig.engine.connection_count(), 1);
            // Every step forwarded, answered by the upstream, on the one pooled connection.
            assert_eq!(w.upstream_requests(), count + 1);
        }
        "churn" => {
            let mut w = Churn::new();
            (0..count).for_each(|_| w.step());
        }
        "echo1k" => {
            let mut w = Echo1k::new();
            (0..count).for_each(|_| w.step());
            assert_eq!(w.rig.engine.connection_count(), 1);
        }
        "bytes16k" => {
            let mut w = Bytes16k::new();
            (0..count).for_each(|_| w.step());
            assert_eq!(w.rig.engine.connection_count(), 1);
        }
        "syn" => {
            let mut w = Syn::new();
            (0..count).for_each(|_| w.step());
            assert_eq!(w.rig.engine.connection_count(), 0);
        }
        other => {
            eprintln!("unknown workload {other:?}: keepalive, churn, echo1k, bytes16k or syn");
            std::process::exit(2);
        }
    }
}
