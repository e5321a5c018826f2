#!/usr/bin/env bash
# Shoal vs Wasmtime on the compute kernels of ../shared/workloads/compute.wat
# (fib(30), sieve(10,000,000), matmul(200)), on this machine, in one go:
#
#   1. Shoal: examples/compute_report.rs (built once, release), JSON lines;
#   2. Wasmtime 48: the peer harness `wasmtime-peer compute`, same format;
#   3. a table joining both on (epoch, kernel): medians, mins and the ratio
#      Shoal median / Wasmtime median (target: <= 1.10 with epoch off).
#
# Both sides time each guest call alone (the clock around the call), 11 reps
# per kernel, one instance per epoch mode. With -n ROUNDS the two runs
# alternate ROUNDS times; the table gives, per kernel, the median over rounds
# of each side's median, and the median over rounds of the ratio of the two
# back-to-back runs of a round. On a shared VM a whole process can land in a
# fast or a slow state (seen here: sieve 15 or 25 ms, matmul 6.3 or 8.8 ms,
# the same binary run twice), hence 5 rounds by default.
#
# Epoch "on" means the checks are compiled in but never fire: Shoal has no
# ticker, and the peer is run with a 5 s tick (--tick-us 5000000) so that it
# does not yield either (its `wt yields` column shows whether a tick landed).
# The peer's default 1 ms tick would add the cost of yielding to tokio, which
# this table is not about.
#
# The machine should be otherwise idle: before each run the script waits
# (up to QUIET_WAIT_S seconds) until less than 0.15 CPU is busy, and prints
# how busy it was.
#
# Usage: benches/compare_wasmtime.sh [-r REPS (11)] [-n ROUNDS (5)]
# Env:   WASMTIME_PEER  the peer binary [/work/target-peer/release/wasmtime-peer;
#                       built with `CARGO_TARGET_DIR=/work/target-peer cargo
#                       build --release` in ../shared/peers/wasmtime-peer if missing]
#        OUT_DIR        where the raw JSON lines are kept [target/compare-wasmtime]
#        QUIET_WAIT_S   longest wait for an idle machine before each run [600; 0: none]
set -euo pipefail

source "$(dirname "$0")/peer_env.sh"
out="${OUT_DIR:-$repo/target/compare-wasmtime}"
reps=11
rounds=5
while [ $# -gt 0 ]; do
  case "$1" in
    -r) reps="$2"; shift 2 ;;
    -n) rounds="$2"; shift 2 ;;
    *) echo "usage: $0 [-r REPS] [-n ROUNDS]" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
: > "$out/shoal.jsonl"
: > "$out/wasmtime.jsonl"

shoal="$(build_shoal --example compute_report)"

# CPUs busy (all processes) over one second, from /proc/stat.
busy_cpus() {
  python3 - <<'EOF'
import os, time
def sample():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    return sum(f), f[3] + f[4]  # all ticks, idle + iowait ticks
t0, i0 = sample()
time.sleep(1)
t1, i1 = sample()
print(f"{(1 - (i1 - i0) / max(t1 - t0, 1)) * os.cpu_count():.2f}")
EOF
}

wait_quiet() {
  local waited=0 b
  while :; do
    b=$(busy_cpus)
    if python3 -c "import sys; sys.exit(0 if $b < 0.15 else 1)" || [ "$waited" -ge "${QUIET_WAIT_S:-600}" ]; then
      break
    fi
    sleep 4
    waited=$((waited + 5))
  done
  echo "  (busy CPUs before the run: $b, waited ${waited}s)" >&2
}

for round in $(seq 1 "$rounds"); do
  echo "round $round/$rounds" >&2
  wait_quiet
  echo "  shoal:    $shoal -r $reps" >&2
  "$shoal" -r "$reps" >> "$out/shoal.jsonl"
  wait_quiet
  echo "  wasmtime: $peer compute -r $reps --epoch true,false --tick-us 5000000" >&2
  "$peer" --workloads-dir "$workloads" compute -r "$reps" --epoch true,false \
    --tick-us 5000000 >> "$out/wasmtime.jsonl"
done

python3 - "$out/shoal.jsonl" "$out/wasmtime.jsonl" <<'EOF'
import json, statistics, sys

def load(path):
    """Per (epoch, kernel), the rows of every round, in order."""
    rows = {}
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            if r.get("workload") == "compute":
                rows.setdefault((r["epoch"], r["kernel"]), []).append(r)
    return rows

def mid(rows, field):
    return statistics.median(r[field] for r in rows)

shoal, wasmtime = load(sys.argv[1]), load(sys.argv[2])
print("ms: median over rounds of each run's median (and of its min); ratio: median over")
print("rounds of Shoal median / Wasmtime median, the two runs of a round back to back")
print(f"{'epoch':<6} {'kernel':<16} {'shoal med (min)':>18} {'wasmtime med (min)':>20} "
      f"{'ratio':>6} {'wt yields':>9}")
worst = 0.0
for epoch in (False, True):
    for kernel in ("fib", "sieve", "matmul"):
        s, w = shoal.get((epoch, kernel)), wasmtime.get((epoch, kernel))
        if not s or not w or len(s) != len(w):
            print(f"{str(epoch).lower():<6} {kernel:<16} missing on one side")
            continue
        for a, b in zip(s, w):
            if a["result"] != b["result"]:
                print(f"  results differ: shoal {a['result']}, wasmtime {b['result']}")
        ratio = statistics.median(a["median_ms"] / b["median_ms"] for a, b in zip(s, w))
        if not epoch:
            worst = max(worst, ratio)
        name = f"{kernel}({s[0]['arg']})"
        yields = max(r.get("epoch_yields_per_call", 0) for r in w)
        print(f"{str(epoch).lower():<6} {name:<16} "
              f"{mid(s, 'median_ms'):>8.2f} ({mid(s, 'min_ms'):>7.2f}) "
              f"{mid(w, 'median_ms'):>10.2f} ({mid(w, 'min_ms'):>7.2f}) "
              f"{ratio:>7.2f} {yields:>9.1f}")
print(f"worst ratio with epoch off: {worst:.2f} (target <= 1.10)")
EOF
