#!/usr/bin/env bash
# Runs every cargo-fuzz target for N seconds each (default 30; 0 skips).
#   bash scripts/fuzz.sh 30                # the smoke run in the test command
#   bash scripts/fuzz.sh 3600 http         # a long run of one target
# The corpus lives in fuzz/corpus/<target> and is committed; crashes land in fuzz/artifacts and
# each one becomes a regression test (fuzz/regressions + a unit test in the module it hit).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export PATH="$HOME/.cargo/bin:$PATH"
secs="${1:-30}"; shift || true
[ "$secs" -gt 0 ] || { echo "fuzz: skipped"; exit 0; }
# cargo-fuzz needs -Zsanitizer; the machine has only a stable toolchain, whose compiler accepts
# unstable flags with RUSTC_BOOTSTRAP=1. Nothing else in the build depends on this.
export RUSTC_BOOTSTRAP=1
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "fuzz: $t for ${secs}s"
    # -rss_limit_mb bounds memory; -max_len keeps inputs frame-sized or request-sized.
    set +e
    cargo fuzz run --release "$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 2>&1 \
        | grep -E '^(INFO: Running|#[0-9]+ *DONE|Done|stat::number_of_executed_units|SUMMARY|==[0-9]+==ERROR)|panicked'
    status=${PIPESTATUS[0]}
    set -e
    # cargo fuzz exits non-zero when libFuzzer finds a crash, a leak or a timeout.
    [ "$status" -eq 0 ] || { echo "fuzz: $t FOUND A CRASH (see fuzz/artifacts/$t)"; exit 1; }
done
echo "fuzz: all targets clean"
