#!/usr/bin/env bash
# One-time (idempotent) set-up of a fresh machine for building and testing xgate.
# Installs only what is missing, so a second run costs a few seconds.
set -euo pipefail

log() { printf '[setup] %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "setup: must run as root (installs packages, mounts bpffs/cgroup2)" >&2
    exit 1
fi

# Debian packages: the BPF toolchain (clang, libelf, zlib, pkg-config) for issue 3's skeletons,
# network tools for the namespace tests, nginx/curl/wrk as comparison peers and real clients
# (nginx answers the comparison's POST /echo with njs: libnginx-mod-http-js; haproxy is the
# proxy comparison's fourth target). iptables: the wire
# fault tests queue packets to their NFQUEUE reorderer with `-j NFQUEUE` (this kernel's nft has
# no `queue` statement). m4: libxdp-sys (under xsk-rs) runs it in its build script to generate
# libxdp's BPF sources; a fresh image lacks it and the build fails with "Failed to execute m4".
# openssl: the TLS tests make their certificates with its command line, and use s_client.
APT_PACKAGES=(clang llvm libelf-dev zlib1g-dev pkg-config linux-libc-dev bpftool iputils-ping iproute2 ethtool nftables
              iptables nginx libnginx-mod-http-js haproxy curl wrk python3 m4 openssl)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The nginx and haproxy packages start a default service; we start our own instances only.
    if command -v systemctl >/dev/null 2>&1; then
        for unit in nginx haproxy; do systemctl disable --now "$unit" >/dev/null 2>&1 || true; done
    fi
fi

# Rust toolchain: the machine's stable rustup toolchain, with the components we lint with.
if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then export PATH="$HOME/.cargo/bin:$PATH"; else
        echo "setup: no cargo on this machine" >&2; exit 1; fi
fi
for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c" >/dev/null 2>&1 || true
done

# cargo-fuzz drives libFuzzer. On a stable toolchain it needs RUSTC_BOOTSTRAP=1 (scripts/fuzz.sh
# sets it) for -Zsanitizer; install the binary from crates.io when missing.
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi

# bpffs and cgroup v2, needed by the gateway (XDP pins, sock_ops on the cgroup).
if ! mountpoint -q /sys/fs/bpf; then
    log "mounting bpffs on /sys/fs/bpf"
    mount -t bpf bpf /sys/fs/bpf
fi
if ! grep -q ' cgroup2 ' /proc/mounts; then
    log "mounting cgroup2 on /sys/fs/cgroup/unified"
    mkdir -p /sys/fs/cgroup/unified
    mount -t cgroup2 none /sys/fs/cgroup/unified
fi
log "ok"
