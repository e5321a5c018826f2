# Sourced by the comparison scripts: the Wasmtime peer binary (built if
# missing) and a release build of one Shoal target.
#
#   source benches/peer_env.sh; build_shoal --bin shoal   # or --example NAME
#
# Sets: repo, peer_src, workloads, peer, target_dir; build_shoal prints the
# path of the binary it built. Env: WASMTIME_PEER overrides the peer binary
# [/work/target-peer/release/wasmtime-peer].

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
peer_src="$repo/../shared/peers/wasmtime-peer"
workloads="$repo/../shared/workloads"
peer="${WASMTIME_PEER:-/work/target-peer/release/wasmtime-peer}"

if [ ! -x "$peer" ]; then
  echo "building the Wasmtime peer (first build: ~15 min) ..." >&2
  (cd "$peer_src" && CARGO_TARGET_DIR="$(dirname "$(dirname "$peer")")" cargo build --release)
fi
target_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"

# build_shoal --bin NAME | --example NAME: builds it (release) and prints its path.
build_shoal() {
  echo "building: cargo build --release $*" >&2
  (cd "$repo" && cargo build --quiet --release "$@")
  case "$1" in
    --bin) echo "$target_dir/release/$2" ;;
    --example) echo "$target_dir/release/examples/$2" ;;
  esac
}
