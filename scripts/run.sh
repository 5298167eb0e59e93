#!/usr/bin/env bash
# The README's main command: the gateway itself, end to end, on a veth pair between two network
# namespaces this script creates (unique names, removed on exit however it exits).
#
#   client netns <p>c: veth <p>c 10.77.0.2/30, checksum/segmentation offloads off
#   gateway netns <p>g: veth <p>g 10.77.0.1/30, two RX queues, `xgate run --netns <p>g`
#     port 8080 on the bypass path (XDP -> AF_XDP -> user-space TCP/HTTP)
#     port 8081 on the kernel path (io_uring on the kernel's listener)
#
# It shows curl answered on both paths (and the counters that say which path answered),
# switches 8080 off and on with `xgate bypass` while a client loop runs (zero failures),
# prints `xgate status`, stops the gateway with SIGTERM by PID and shows nothing left behind.
#
# Then the comparison (`loadgen compare`, about 30 minutes): xgate's bypass path, its kernel
# path and nginx measured side by side on two networks of its own, the veth end-to-end (12
# minutes) and the lab, where each side's core pays for its own receive and the server core's
# cost per request is measured (16 minutes); written to bench-results/ (runs/<time>-<commit>-
# <network>.json and .md, veth.md, lab.md, charts/<network>-*.svg).
#   sudo bash scripts/run.sh                 # demo + full comparison
#   sudo COMPARE=quick bash scripts/run.sh   # demo + a 4-minute comparison (not for committing)
#   sudo COMPARE=none bash scripts/run.sh    # demo only
#   sudo COMPARE=none XGATE=path/to/xgate bash scripts/run.sh   # demo with a built binary
#
# It runs beside other gateways (an operator runs one per NIC): every `xgate` command names
# its interface. However it ends (an error, Ctrl-C, SIGTERM), it ends what it started: the
# client loops run in process groups of their own, killed whole, and the gateway by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/setup.sh
COMPARE=${COMPARE:-full}
if [ -n "${XGATE:-}" ]; then
    X="$XGATE"
    [ "$COMPARE" = none ] || cargo build --release --locked -p loadgen --bin loadgen 2>&1 | tail -n 1
else
    cargo build --release --locked -p dataplane --bin xgate -p loadgen --bin loadgen 2>&1 | tail -n 1
    X="$PWD/target/release/xgate"
fi

P="xr$$"
GW_NS="${P}g" CL_NS="${P}c" GW_IF="${P}g" CL_IF="${P}c"
GW_IP=10.77.0.1 CL_IP=10.77.0.2
BYPASS=8080 KERNEL=8081
WORK=$(mktemp -d "${TMPDIR:-/tmp}/xgate-demo-$P.XXXXXX")
GW_PID="" LOOP_PIDS=()

cleanup() {
    set +e
    # Each loop leads a process group of its own (setsid): killing the group ends the loop
    # and the curl it is waiting for, whatever `ip netns exec` did in between.
    for pid in "${LOOP_PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
        kill -TERM "$GW_PID"; wait "$GW_PID" 2>/dev/null
    fi
    ip netns del "$CL_NS" 2>/dev/null
    ip netns del "$GW_NS" 2>/dev/null
    rm -f "/run/xgate/$GW_IF.lock"   # the (empty) lock file of our unique interface
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*"; }
cl() { ip netns exec "$CL_NS" "$@"; }
show() { printf '$ %s\n' "$*"; "$@"; }
# Which path took new connections on $BYPASS: SYNs steered to user space, kernel connections.
paths() {
    sleep 0.6
    "$X" status --iface "$GW_IF" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
p = [p for p in d["ports"] if p["port"] == int(sys.argv[1])][0]
print("  port %d: state %s; bypass path: %d connections, %d requests; kernel path: %d connections, %d requests"
      % (p["port"], p["state"], p["bypass"]["connections_total"], p["bypass"]["requests"],
         p["kernel"]["connections_total"], p["kernel"]["requests"]))
' "$BYPASS"
}

step "topology: netns $CL_NS (client) <-veth-> netns $GW_NS (gateway)"
ip netns add "$GW_NS"
ip netns add "$CL_NS"
ip -n "$GW_NS" link add "$GW_IF" numrxqueues 2 numtxqueues 2 type veth \
    peer name "$CL_IF" numrxqueues 2 numtxqueues 2 netns "$CL_NS"
ip -n "$GW_NS" addr add "$GW_IP/30" dev "$GW_IF"
ip -n "$CL_NS" addr add "$CL_IP/30" dev "$CL_IF"
for ns in "$GW_NS" "$CL_NS"; do ip -n "$ns" link set lo up; done
ip -n "$GW_NS" link set "$GW_IF" up
ip -n "$CL_NS" link set "$CL_IF" up
# AF_XDP must see whole, checksummed frames from the client.
cl ethtool -K "$CL_IF" tx off tso off gso off >/dev/null
echo "veth $CL_IF $CL_IP  <->  veth $GW_IF $GW_IP"

step "start the gateway: bypass on $BYPASS, kernel path on $KERNEL"
printf '$ %s\n' "xgate run --iface $GW_IF --netns $GW_NS --port $BYPASS --port $KERNEL --bypass $BYPASS &"
"$X" run --iface "$GW_IF" --netns "$GW_NS" --port "$BYPASS" --port "$KERNEL" --bypass "$BYPASS" \
    >"$WORK/gateway.log" 2>&1 &
GW_PID=$!
for _ in $(seq 100); do
    grep -q 'xgate: ready' "$WORK/gateway.log" && break
    kill -0 "$GW_PID" 2>/dev/null || { cat "$WORK/gateway.log"; echo "gateway did not start" >&2; exit 1; }
    sleep 0.1
done
grep -q 'xgate: ready' "$WORK/gateway.log" || { cat "$WORK/gateway.log"; exit 1; }
sed 's/^/  /' "$WORK/gateway.log"

step "curl on both paths"
show cl curl -sS --max-time 5 -w ' (HTTP %{http_code})\n' "http://$GW_IP:$BYPASS/health"
show cl curl -sS --max-time 5 -w ' (HTTP %{http_code})\n' "http://$GW_IP:$KERNEL/health"
show cl sh -c "curl -sS --max-time 5 http://$GW_IP:$BYPASS/bytes/100000 | sha256sum"
python3 -c "import sys; print(''.join(chr(97 + i % 26) for i in range(100000)), end='')" | sha256sum \
    | sed 's/-$/(expected)/'
sleep 0.6   # the gateway's own counters are refreshed twice a second
"$X" status --iface "$GW_IF"
echo "(8080: segments REDIRECTED to AF_XDP, answered by the bypass path; 8081: PASSED to the kernel)"

step "switch $BYPASS off and on twice while clients run (keep-alive and fresh connections)"
for i in 1 2; do
    # setsid execs in place (the background child is no group leader), and so do `ip netns
    # exec` and bash: $! is the loop itself, leader of its own process group.
    setsid ip netns exec "$CL_NS" bash scripts/demo/client_loop.sh "$GW_IP" "$BYPASS" "$WORK/stop" \
        >"$WORK/loop$i" 2>"$WORK/loop$i.err" &
    LOOP_PIDS+=($!)
done
sleep 1
paths
for _ in 1 2; do
    show "$X" bypass off "$BYPASS" --iface "$GW_IF" --drain-secs 2
    sleep 1
    paths
    show "$X" bypass on "$BYPASS" --iface "$GW_IF"
    sleep 1
    paths
done
touch "$WORK/stop"
for pid in "${LOOP_PIDS[@]}"; do wait "$pid"; done
LOOP_PIDS=()
ok=0 failed=0
for i in 1 2; do
    read -r _ o f <"$WORK/loop$i"
    ok=$((ok + o)); failed=$((failed + f))
done
echo "client loops: $ok requests answered, $failed failed"
cat "$WORK"/loop*.err | sort | uniq -c | sed 's/^/  curl: /'
sleep 0.6

step "status"
show "$X" status --iface "$GW_IF"

step "stop the gateway: SIGTERM to pid $GW_PID"
show kill -TERM "$GW_PID"
wait "$GW_PID" && rc=0 || rc=$?
GW_PID=""
sed -n '/signal/,$p' "$WORK/gateway.log" | sed 's/^/  /'
echo "exit status $rc"

step "nothing left behind"
echo "pins under /sys/fs/bpf/xgate/$GW_IF: $(ls "/sys/fs/bpf/xgate/$GW_IF" 2>/dev/null | wc -l)"
echo "XDP on $GW_IF: $(ip -n "$GW_NS" -d link show "$GW_IF" | grep -c 'prog/xdp' || true)"
echo "state file: $(ls "/run/xgate/$GW_IF.json" 2>/dev/null || echo none)"
echo "gateway cgroup: $(ls -d /sys/fs/cgroup/*/xgate-"$GW_IF" /sys/fs/cgroup/xgate-"$GW_IF" 2>/dev/null || echo none)"
show "$X" status --iface "$GW_IF" || true
cleanup
trap - EXIT
echo "network namespaces left by this run: $(ip netns list | grep -c "^$P" || true)"
if [ "$failed" -ne 0 ] || [ "$rc" -ne 0 ]; then exit 1; fi

case "$COMPARE" in
    none) exit 0 ;;
    quick) step "comparison (quick): bypass vs kernel path vs nginx"
           show "$PWD/target/release/loadgen" compare --quick --out "$WORK/bench-results"
           rm -rf "$WORK" ;;
    *) step "comparison: bypass vs kernel path vs nginx, veth and lab (about 30 minutes)"
       show "$PWD/target/release/loadgen" compare --out bench-results ;;
esac
