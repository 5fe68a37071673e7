#!/bin/sh
# The embedded profile's two budgets (issue 23), read from a release build:
# the stripped binary at most 3.5 MiB, and idle RSS at most 3 MiB (default
# flags, a data directory, 12 s after start). Idle RSS leans on
# link/startup.order, which goes stale as start-up code moves: over budget
# here, run `make link-order` and measure again. Exits 1 over a budget.
# Usage: sh tests/bench/lean.sh [BINARY]   (default target/release/askgate)
set -eu
bin=${1:-target/release/askgate}
size_budget=3670016
rss_budget_kb=3072
work=$(mktemp -d)
server=
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
strip -o "$work/stripped" "$bin"
size=$(stat -c %s "$work/stripped")
"$bin" serve --bind 127.0.0.1:0 --data-dir "$work/data" --log-level warn >"$work/log" 2>&1 &
server=$!
sleep 12
rss_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$server/status")
threads=$(awk '/^Threads:/ {print $2}' "/proc/$server/status")
status=0
echo "stripped binary: $size bytes (budget $size_budget)"
if [ "$size" -gt "$size_budget" ]; then echo "  OVER BUDGET"; status=1; fi
echo "idle RSS: $rss_kb kB, $threads threads (budget $rss_budget_kb kB)"
if [ "$rss_kb" -gt "$rss_budget_kb" ]; then
    echo "  OVER BUDGET: regenerate link/startup.order (make link-order) and measure again"
    status=1
fi
exit "$status"
