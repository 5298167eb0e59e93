#!/usr/bin/env bash
# The README's main command.
# Until the gateway's I/O layer lands (issue 3), the main job runs the sans-IO engine (TCP + HTTP
# + app, the code the AF_XDP poller will drive) against real TCP clients (smoltcp) over a
# simulated link with loss, reordering, duplication and corruption, and prints what happened.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/setup.sh
cargo run --release --locked -p dataplane --example simulate -- "$@"
