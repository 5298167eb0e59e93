#!/usr/bin/env bash
# The deterministic simulation (was the main command before the gateway binary existed).
#
# Runs the sans-IO engine — TCP + HTTP + app, the exact code the AF_XDP poller drives —
# against real TCP clients (smoltcp)
# over a simulated Ethernet link with seeded loss, reordering, duplication, corruption and a
# bottleneck queue, and prints one line per run: requests answered byte-exact, bytes moved,
# frames lost/duplicated/reordered/corrupted, and virtual vs wall time.
#   sudo bash scripts/simulate.sh            # every impairment profile, then a 500-seed sweep
#   SIM_SEEDS=5000 sudo bash scripts/simulate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/setup.sh
cargo build --release --locked -p xgate-core --tests >/dev/null
run() { cargo test --release --locked -q -p xgate-core --test simulation -- --exact "$1" --nocapture 2>&1 \
          | grep -E '^(seed|sweep|simulation failed|  )' ; }
echo "== xgate engine vs smoltcp clients, one run per impairment profile (two seeds each)"
run sim::engine_server::engine_all_profiles
echo
echo "== the same, 48 to 96 connections at once"
run sim::engine_server::engine_crowd
echo
echo "== sweep over ${SIM_SEEDS:-500} seeds, all profiles"
SIM_SEEDS="${SIM_SEEDS:-500}" SIM_THREADS="${SIM_THREADS:-2}" run sim::engine_server::engine_many_seeds | grep -E '^(sweep|simulation failed|  )'
echo
echo "== the sweep with IPv6 clients"
SIM_FAMILY=6 SIM_SEEDS="${SIM_SEEDS:-500}" SIM_THREADS="${SIM_THREADS:-2}" run sim::engine_server::engine_many_seeds | grep -E '^(sweep|simulation failed|  )'
