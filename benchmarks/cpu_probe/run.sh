#!/bin/bash
# The CPU kernels alone, without torch: builds csrc/cpu/kernels_*.cpp with the flags
# setup.py uses and times one variant against memcpy (probe.cpp), then counts
# instructions per 8 elements (load-independent): by single-stepping (count.cpp), for
# every variant this CPU runs, and under callgrind (avx2; valgrind has no AVX-512).
#
#   benchmarks/cpu_probe/run.sh [n=65536] [reps=301] [variant=avx2]
#
# Prints, per dtype (2 float32, 1 bfloat16, 0 float16): the 5th-percentile time of
# each kernel in cycles per 8 elements at the clock below, and the instruction counts.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-/tmp/selu_ext_cpu_probe}
VARIANTS=(baseline avx2 avx512 avx512_bf16)
mkdir -p "$OUT"
objs=()
for v in "${VARIANTS[@]}"; do
  g++ -O3 -std=c++20 -ffp-contract=fast -I"$ROOT/csrc" -c "$ROOT/csrc/cpu/kernels_$v.cpp" -o "$OUT/$v.o" 2>/dev/null
  objs+=("$OUT/$v.o")
done
g++ -O3 -std=c++20 -I"$ROOT/csrc" "$ROOT/benchmarks/cpu_probe/probe.cpp" "${objs[@]}" -o "$OUT/probe"
g++ -O2 "$ROOT/benchmarks/cpu_probe/count.cpp" -o "$OUT/count"
GHZ=$(awk -F: '/cpu MHz/ {printf "%.3f", $2 / 1000; exit}' /proc/cpuinfo)
echo "clock ${GHZ} GHz (from /proc/cpuinfo); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2);" \
  "$(grep -m1 -o 'avx512_bf16' /proc/cpuinfo || echo 'no avx512_bf16')"
GHZ=$GHZ "$OUT/probe" "${1:-65536}" "${2:-301}" "${3:-avx2}" 3
echo "instructions per 8 elements (single-stepped, n=16384, one call each):"
for v in "${VARIANTS[@]}"; do
  # A variant this CPU cannot run stops with SIGILL: its line stays empty.
  (cd "$OUT" && MARK=1 ./count ./probe 16384 1 "$v" 1 2>/dev/null || true) |
    awk -v v="$v" '$2 == "marks" {m = $3; next}
      {line[$1] = line[$1] sprintf("  %s %.1f", $2, ($3 - m) / 2048)}
      END {for (d = 2; d >= 0; --d) if (d in line) printf "  %s dtype %d:%s\n", v, d, line[d]}'
done
if command -v valgrind > /dev/null; then
  echo "instructions per 8 elements (callgrind, n=65536, 10 calls each):"
  for dt in 2 1 0; do
    DT=$dt valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$dt" "$OUT/probe" 65536 10 avx2 1 > /dev/null 2>&1
    printf "  dtype %s:" $dt
    callgrind_annotate --inclusive=yes "$OUT/cg.$dt" 2>/dev/null |
      sed -nE 's/^ *([0-9,]+) .*avx2::\(anonymous namespace\)::([a-z_]+)_t<.*/\1 \2/p' |
      while read -r c name; do
        calls=10; [ "$name" = selu_loop ] && calls=11  # + the warm-up call
        printf "  %s %.1f" "$name" "$(echo "${c//,/} / ($calls * 8192)" | bc -l)"
      done
    echo
  done
fi
