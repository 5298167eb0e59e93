#!/usr/bin/env bash
# Packages and mounts xgate's build and root-only tests need on a Debian host.
# Safe to run again. Run as root.
set -euo pipefail

apt_packages=(
  clang          # compiles bpf/xgate.bpf.c (libbpf-cargo's SkeletonBuilder); libclang for bindgen (libxdp-sys)
  llvm           # llvm-strip and friends used around BPF objects
  libelf-dev     # libbpf-sys / libxdp-sys link libelf
  zlib1g-dev     # ... and zlib
  pkg-config
  linux-libc-dev # uapi headers (<linux/bpf.h>, <asm/types.h>) for the BPF program
  bpftool        # inspecting programs, links and pinned maps
  iproute2       # netns + veth test topologies
  ethtool        # offloads off on the client veth in tests
  curl           # test client
  iputils-ping   # ICMP check in tests
  python3        # the tests' kernel-side listener
)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# bpffs for the pinned maps.
if [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" != "bpf_fs" ]; then
  mkdir -p /sys/fs/bpf
  mount -t bpf bpf /sys/fs/bpf
fi

# A cgroup v2 hierarchy for sock_ops (hybrid hosts usually have /sys/fs/cgroup/unified).
if ! grep -q " cgroup2 " /proc/self/mounts; then
  mkdir -p /run/xgate/cgroup2
  mount -t cgroup2 none /run/xgate/cgroup2
fi
