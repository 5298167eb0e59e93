#!/usr/bin/env bash
# Soak: `xgate run` (release) in a veth topology under `loadgen run --churn` (a new connection
# per request, every answer checked) through the bypass path for SECONDS (default 600). VmRSS
# and the live connection / user_flows counts are sampled every second; it fails if a request
# fails, xgate's memory grows after the warm-up (bound and reasoning: loadgen/tests/soak.rs),
# or anything is left once the load stops. `cargo test` runs the same test for 30 s.
#   sudo bash scripts/soak.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
secs="${1:-600}"
if [ "$(id -u)" != 0 ]; then
    echo "scripts/soak.sh: needs root (netns, XDP, AF_XDP, cgroups)" >&2
    exit 1
fi
bash scripts/setup.sh
cargo build --release --locked -p dataplane --bin xgate
SOAK_SECS="$secs" cargo test --release --locked -p loadgen --test soak -- --nocapture
