#!/usr/bin/env bash
# A client loop for the demo, run inside the client netns: until the file $3 exists (or its
# directory is gone: the demo ended without telling us), open a fresh connection and fetch
# http://$1:$2/health five times on it (curl keeps it alive).
# Prints one line at the end: "requests OK FAILED" (a reset, a timeout or a non-200 answer
# counts as failed; curl's messages go to stderr).
set -u
host=$1 port=$2 stop=$3
url="http://$host:$port/health"
ok=0 failed=0
while [ ! -e "$stop" ] && [ -d "$(dirname "$stop")" ]; do
    # One -o per URL: curl applies each to the next URL only.
    codes=$(curl -sS --max-time 5 -w '%{http_code}\n' -o /dev/null "$url" -o /dev/null "$url" \
        -o /dev/null "$url" -o /dev/null "$url" -o /dev/null "$url") || true
    n=$(printf '%s\n' "$codes" | grep -c '^200$' || true)
    ok=$((ok + n))
    failed=$((failed + 5 - n))
done
echo "requests $ok $failed"
