#!/usr/bin/env bash
# Shoal vs Wasmtime 48 on every workload of ../shared/workloads, in one
# session, with the same names, parameters and JSON fields on both sides:
#
#   `shoal stress W --json ...`   against   `wasmtime-peer W ...`
#
# for W in spawn (C=1 and C=256), yield (N=10,000, K=100), preempt
# (N=1,000 and N=10,000, T=5 s), idle (N=10,000) and compute (epoch checks
# on and off), then worker scaling (spawn, yield and preempt on 1 and 2
# workers, both runtimes). Each pair runs back to back, Shoal first, and the
# whole set repeats ROUNDS times; the summary gives, per row, the median
# over rounds of each side and of the per-round ratio, so that a slow or
# fast spell of the shared machine hits both sides of a ratio alike.
#
# Wasmtime runs with its harness defaults (pooling allocator, 1 ms epoch
# tick, tokio multi-thread runtime); Shoal with its defaults (250 µs tick,
# one-tick timeslice, Checked memories except for compute).
#
# Usage: benches/side_by_side.sh [-n ROUNDS (3)]
# Env:   WASMTIME_PEER  the peer binary [/work/target-peer/release/wasmtime-peer;
#                       built in ../shared/peers/wasmtime-peer if missing]
#        OUT_DIR        where the raw JSON lines are kept [target/side-by-side]
set -euo pipefail

source "$(dirname "$0")/peer_env.sh"
out="${OUT_DIR:-$repo/target/side-by-side}"
rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    -n) rounds="$2"; shift 2 ;;
    *) echo "usage: $0 [-n ROUNDS]" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
: > "$out/runs.jsonl"

shoal="$(build_shoal --bin shoal)"

# One pair: a label, then the workload and its arguments (same on both sides).
# Extra Shoal-only / peer-only options go in SHOAL_OPTS / PEER_OPTS.
pair() {
  local label="$1"; shift
  echo "  $label: shoal stress $* ${SHOAL_OPTS:-}" >&2
  "$shoal" stress "$@" ${SHOAL_OPTS:-} --json --no-progress --workloads-dir "$workloads" |
    grep '^{' | sed "s/^{/{\"label\":\"$label\",\"round\":$round,/" >> "$out/runs.jsonl"
  echo "  $label: wasmtime-peer $1 ${*:2} ${PEER_OPTS:-}" >&2
  "$peer" --workloads-dir "$workloads" ${PEER_OPTS:-} "$@" |
    grep '^{' | sed "s/^{/{\"label\":\"$label\",\"round\":$round,/" >> "$out/runs.jsonl"
}

for round in $(seq 1 "$rounds"); do
  echo "round $round/$rounds (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  pair spawn spawn
  pair yield yield
  pair preempt-1k preempt -n 1000 -t 5
  pair preempt-10k preempt -n 10000 -t 5
  pair idle idle -n 10000
  pair compute compute
  for w in 1 2; do
    SHOAL_OPTS="--workers $w" PEER_OPTS="--workers $w" pair "spawn-w$w" spawn
    SHOAL_OPTS="--workers $w" PEER_OPTS="--workers $w" pair "yield-w$w" yield
    SHOAL_OPTS="--workers $w" PEER_OPTS="--workers $w" pair "preempt-w$w" preempt -n 1000 -t 5
  done
done

python3 - "$out/runs.jsonl" <<'EOF'
import json, statistics, sys

runs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]

def key(r):
    # Rows of one workload that must be paired: spawn per concurrency,
    # compute per kernel and epoch mode.
    return (r["label"], r.get("concurrency"), r.get("kernel"), r.get("epoch") if r["workload"] == "compute" else None)

pairs = {}
for r in runs:
    pairs.setdefault(key(r), {}).setdefault(r["round"], {})[r["runtime"]] = r

# (field, better when higher?) per workload.
FIELDS = {
    "spawn": [("instances_per_sec", True), ("lat_p99_us", False)],
    "yield": [("switches_per_sec", True)],
    "preempt": [("counter_cv", False), ("max_gap_ms", False), ("increments_per_sec", True), ("starved_instances", False)],
    "idle": [("bytes_per_parked_instance", False)],
    "compute": [("median_ms", False)],
}

def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"

print(f"{'row':<34} {'field':<26} {'shoal':>14} {'wasmtime':>14} {'shoal/wasmtime':>15}")
for k in sorted(pairs, key=lambda k: [str(x) for x in k]):
    rounds = [p for p in pairs[k].values() if "shoal" in p and "wasmtime" in p]
    if not rounds:
        continue
    workload = rounds[0]["shoal"]["workload"]
    label = k[0] + "".join(f" {x}" for x in k[1:] if x is not None)
    for field, _ in FIELDS.get(workload, []):
        s = [p["shoal"].get(field) for p in rounds]
        w = [p["wasmtime"].get(field) for p in rounds]
        if None in s or None in w:
            continue
        ratios = [a / b for a, b in zip(s, w) if b]
        ratio = statistics.median(ratios) if ratios else None
        print(f"{label:<34} {field:<26} {fmt(statistics.median(s)):>14} "
              f"{fmt(statistics.median(w)):>14} {fmt(ratio):>15}")
print(f"({len(set(r['round'] for r in runs))} rounds; medians over rounds; raw lines in {sys.argv[1]})")
EOF
