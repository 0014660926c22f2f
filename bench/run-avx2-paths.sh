#!/bin/sh
# Forced avx2 / avx-vnni paths over AUTO (bench/avx2_paths_ratio.c) on the
# issue's shapes, 4 planes, act_bits 8, 1 thread; each library directory
# given (default build/lib) runs each shape in turn, so two builds
# (before, after) interleave shape by shape.
# usage: bench/run-avx2-paths.sh [ROUNDS] [LIBDIR...]
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-9}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- build/lib
bin=$(mktemp /tmp/avx2_paths_ratio.XXXXXX)
trap 'rm -f "$bin"' EXIT
cc -O2 -std=c11 -D_POSIX_C_SOURCE=199309L -Iinclude bench/avx2_paths_ratio.c -o "$bin" \
    -Lbuild/lib -lbitplane
lscpu | grep 'Model name'
uptime
for shape in "4096 4096 8 0" "4096 4096 32 0" "1024 1024 360 0" "4096 4096 32 -1" "4096 4096 1 0"; do
    for lib in "$@"; do
        printf '%s: ' "$lib"
        # shellcheck disable=SC2086
        LD_LIBRARY_PATH="$lib" "$bin" $shape "$rounds"
    done
done
uptime
