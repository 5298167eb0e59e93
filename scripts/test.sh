#!/usr/bin/env bash
# The README's test command: every test xgate has, from a fresh machine.
#   sudo bash scripts/test.sh            # all of it (what CI runs)
#   FUZZ_SECS=0 bash scripts/test.sh     # skip the fuzz smoke runs
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=never

step() { printf '\n=== %s ===\n' "$*"; }

step "set-up"
bash scripts/setup.sh

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "unit, property and integration tests (debug: overflow checks on)"
cargo test --workspace --locked

step "deterministic simulation, many seeds (release)"
SIM_SEEDS="${SIM_SEEDS:-1000}" SIM_THREADS="${SIM_THREADS:-2}" cargo test --release --locked -p xgate-core --test simulation
# The sweeps again with IPv6 clients (the suite above runs each IPv6 profile once).
SIM_FAMILY=6 SIM_SEEDS="${SIM_SEEDS_IPV6:-500}" SIM_THREADS="${SIM_THREADS:-2}" cargo test --release --locked -p xgate-core --test simulation many_seeds

step "fuzz smoke runs"
bash scripts/fuzz.sh "${FUZZ_SECS:-30}"

step "benchmarks compile"
cargo bench --workspace --locked --no-run >/dev/null

echo
echo "scripts/test.sh: all steps passed"
