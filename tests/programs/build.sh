#!/bin/sh
# Rebuilds the WebAssembly test programs in this directory.
#
# Needs clang with the wasm32 target, wasm-ld, wasi-libc and the wasm32
# compiler-rt builtins. On Debian/Ubuntu:
#
#   apt-get install clang lld wasi-libc libclang-rt-dev-wasm32
#
# (Built here with Debian 12's clang 14.0.6, lld 14 and wasi-libc
# 0.0~git20220510.9886d3d-2.) The
# tests in tests/wasi_programs.rs also build every program natively with the
# system `cc` to compare outputs; that needs nothing beyond a C compiler.
set -eu
cd "$(dirname "$0")"
CC="${WASM_CC:-clang}"
for src in *.c; do
    out="${src%.c}.wasm"
    # --strip-debug drops the DWARF of wasi-libc but keeps the name section,
    # so that trap backtraces show function names.
    "$CC" --target=wasm32-wasi -O2 -Wall -Wextra -Wl,--strip-debug -o "$out" "$src" -lm
    echo "built $out"
done
