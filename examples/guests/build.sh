#!/usr/bin/env bash
# Rebuilds every C guest in this directory (X.c -> X.wasm) for wasm32-wasi.
#
# The .wasm files are committed, so neither CI nor `cargo bench` needs a C
# toolchain; run this only after editing a .c file, and commit both.
#
# Toolchain (Debian 12 "bookworm" packages; clang 14, wasi-libc 0.0~git20220510):
#   apt-get install -y clang lld wasi-libc libclang-rt-dev-wasm32 wabt
# - clang + lld:             compiler and wasm-ld
# - wasi-libc:               the C library and crt1; Debian's clang driver finds
#                            them without --sysroot (/usr/lib/wasm32-wasi,
#                            /usr/include/wasm32-wasi). Elsewhere (wasi-sdk, or
#                            another distribution) add --sysroot=<wasi-sysroot>
#                            via CFLAGS_EXTRA.
# - libclang-rt-dev-wasm32:  compiler-rt builtins (libclang_rt.builtins-wasm32.a)
# - wabt (optional):         wasm-validate, used below as a sanity check
#
# Flags: -O2 as the benchmark describes; --strip-debug drops the DWARF that
# wasi-libc's objects carry (it would count as "bytes compiled" without being
# code) but keeps the name section; a 1 MiB stack because the Lisp and Minnow
# interpreters in bigprog recurse deeply (wasm-ld's default is 64 KiB).
set -euo pipefail
cd "$(dirname "$0")"

CC="${CC:-clang}"
# shellcheck disable=SC2206 # CFLAGS_EXTRA is meant to split into words
CFLAGS=(--target=wasm32-wasi -O2 -Wall -Wextra -Werror ${CFLAGS_EXTRA:-})
LDFLAGS=(-Wl,--strip-debug -Wl,-z,stack-size=1048576)

shopt -s nullglob
sources=(*.c)
if [ ${#sources[@]} -eq 0 ]; then
  echo "no .c files in $(pwd)" >&2
  exit 1
fi
for src in "${sources[@]}"; do
  out="${src%.c}.wasm"
  "$CC" "${CFLAGS[@]}" "${LDFLAGS[@]}" "$src" -o "$out" -lm
  if command -v wasm-validate >/dev/null 2>&1; then
    wasm-validate "$out"
  fi
  printf '%-16s %8d bytes  (%s lines of C)\n' "$out" "$(stat -c %s "$out")" "$(wc -l < "$src")"
done
