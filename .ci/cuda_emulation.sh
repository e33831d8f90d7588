#!/usr/bin/env bash
# CI, after the test suite: the CUDA kernels' memcheck on a machine without a GPU.
#   1. tests/test_cuda_emulation.py again, with the emulated kernels (csrc/cuda/
#      emulation.h) built under ASan + UBSan: an out-of-bounds index, a tail written
#      past n, an overflow in the index arithmetic aborts the run.
#   2. benchmarks/ptxas_report.py: ptxas's resources of every kernel for sm_90 with
#      the build's flags, which fails on any spill.
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
