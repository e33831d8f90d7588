#!/usr/bin/env bash
# CI, after the test suite: the CUDA kernels' memcheck on a machine without a GPU.
#   1. tests/test_cuda_emulation.py again, with the emulated kernels (csrc/cuda/
#      emulation.h) built under ASan + UBSan: an out-of-bounds index, a tail written
#      past n, an overflow in the index arithmetic aborts the run.
#   2. benchmarks/ptxas_report.py: ptxas's resources of every kernel for sm_90 with
#      the build's flags, which fails on any spill.
#   3. selu.h compiled by nvcc into two translation units of one program (links).
# Usage: .ci/cuda_emulation.sh [python with torch and the built selu_ext]
# (default: .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-.venv/bin/python}

# Python and torch are not instrumented, so the sanitizers' runtimes are preloaded
# (as in benchmarks/asan_tests.sh); leak detection is off, CPython keeps allocations.
# --capture=sys: a sanitizer's report goes to file descriptor 2 just before it aborts
# the process, which pytest's default capture would swallow.
preload="$(g++ -print-file-name=libasan.so):$(g++ -print-file-name=libubsan.so)"
echo "+ SELU_EXT_EMULATION_SANITIZE=address,undefined pytest tests/test_cuda_emulation.py"
SELU_EXT_EMULATION_SANITIZE=address,undefined LD_PRELOAD="$preload" \
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:print_stacktrace=1:detect_odr_violation=0 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  "$python" -m pytest tests/test_cuda_emulation.py -q -p no:cacheprovider --capture=sys

echo "+ benchmarks/ptxas_report.py --check"
"$python" benchmarks/ptxas_report.py --check

# selu.h's out-of-line helper (dropout_tie_keep) is inline for nvcc too: two .cu files
# that include selu.h link into one program.
echo "+ nvcc: selu.h in two translation units"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for i in 1 2; do
  printf '#include "selu.h"\nbool f%s(unsigned long long s) { return selu_ext::dropout_tie_keep(5, s, 0, 0, 1); }\n' \
    "$i" > "$tmp/t$i.cu"
  nvcc -std=c++20 -Icsrc -gencode=arch=compute_90,code=sm_90 -c "$tmp/t$i.cu" -o "$tmp/t$i.o"
done
printf 'bool f1(unsigned long long);\nbool f2(unsigned long long);\nint main() { return f1(1) + f2(2) > 2; }\n' \
  > "$tmp/main.cpp"
nvcc "$tmp/main.cpp" "$tmp/t1.o" "$tmp/t2.o" -o "$tmp/main"
