#!/usr/bin/env bash
# The GPU run: build selu_ext in place against this machine's torch, run the whole
# test suite with the CUDA tests required to run, the CUDA sanitizers and the
# benchmark, and write everything to OUTDIR. Needs torch, nvcc, ninja, pytest and
# numpy preinstalled; no network.
#
#   benchmarks/gpu_run.sh OUTDIR [STEP ...]
#
# STEP (default: all, in this order):
#   build     setup.py build_ext --inplace, TORCH_CUDA_ARCH_LIST=9.0 unless set
#   test      the whole suite, SELU_EXT_REQUIRE_CUDA=1 (a missing GPU fails it)
#   fallback  a second, CPU-only build (USE_CUDA=0) in a temporary copy, and the
#             tests of its CUDA fallback
#   sanitize  compute-sanitizer memcheck and racecheck over benchmarks/sanitize_cuda.py
#   bench     python -m selu_ext.bench --device cuda: the per-call rows and the
#             training step (its torch.compile variants left out: each compile
#             costs tens of seconds), then the sweep, within the time left
#   graphs    the same with --cuda-graphs (GPU time only, host cost taken out),
#             float32 and bfloat16, up to 2^24 elements: separates the kernels from
#             the per-call host cost that bounds the launched timings there
#   example   benchmarks/snn_example.py
#
# Writes OUTDIR/{env.txt,build.log,tests.log,fallback.log,sanitize.log,bench.txt,
# bench.json,bench_graphs.txt,bench_graphs.json,example/,summary.md};
# summary.md ends with each step's result.
#
# Time: the whole default run must fit one device call of at most 9 minutes, start
# included. DEADLINE_S (default 510 s from the script's start) bounds it: the
# fixed steps took build 56 s, test 196 s, fallback 73 s, example 33 s in the
# stored H100 run (results/h100/summary.md; sanitize was not timed), and the two
# benchmark steps get what is left, each keeping time for the steps after it
# (--budget: the benchmark stops measuring at its budget and keeps its rows, so a
# slow step shortens the sweep, not the run). The bench step runs the per-call rows
# and the training step first, then the sweep, float32 first.
set -uo pipefail
OUT=${1:?usage: benchmarks/gpu_run.sh OUTDIR [build test fallback sanitize bench graphs example]}
shift
STEPS=${*:-build test fallback sanitize bench graphs example}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
PY=${PYTHON:-python3}
DEADLINE_S=${DEADLINE_S:-510}
T0=$(date +%s)
# Seconds a benchmark step may use: what is left of DEADLINE_S, less $1 s for the
# steps after it, and at least $2.
budget() {
  local b=$(( DEADLINE_S - ($(date +%s) - T0) - $1 ))
  echo $(( b < $2 ? $2 : b ))
}
SUMMARY="$OUT/summary.md"
echo "# GPU run $(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$SUMMARY"
echo "command: benchmarks/gpu_run.sh OUTDIR $STEPS" >> "$SUMMARY"
note() { echo "- $*" | tee -a "$SUMMARY"; }

{
  nvidia-smi 2>&1
  $PY -c 'import torch, platform; print("torch", torch.__version__, "cuda", torch.version.cuda, "python", platform.python_version()); print(torch.cuda.get_device_name(0), torch.cuda.get_device_properties(0))'
  nvcc --version | tail -2
  gcc --version | head -1
  # The compiler the build will use (setuptools honours CC/CXX) and the one torch
  # was built with: on the first H100 runs CXX was /opt/gcc/bin/g++, not the
  # system gcc, and formatted error messages crashed (see results/h100/README.md).
  echo "CC=${CC:-} CXX=${CXX:-}"
  ${CXX:-c++} --version | head -1
  $PY -c 'import torch; print(torch.__config__.show())'
} > "$OUT/env.txt" 2>&1

for step in $STEPS; do
  t0=$(date +%s)
  case $step in
    build)
      $PY setup.py build_ext --inplace > "$OUT/build.log" 2>&1
      rc=$?
      $PY -c 'import json, selu_ext; print(json.dumps(selu_ext.build_info(), indent=1))' >> "$OUT/build.log" 2>&1
      ldd selu_ext/_C*.so >> "$OUT/build.log" 2>&1
      note "build: rc=$rc ($(( $(date +%s) - t0 ))s)"
      [ $rc -eq 0 ] || exit 1
      ;;
    test)
      # The >2^31-element test first and alone (it needs 24 GiB free), then the rest,
      # in parallel where pytest-xdist is installed.
      par=""
      $PY -c "import xdist" 2>/dev/null && par="-n 8"
      SELU_EXT_REQUIRE_CUDA=1 $PY -m pytest tests/test_large.py -q -p no:cacheprovider -rfEs > "$OUT/tests.log" 2>&1
      rc1=$?
      large=$(tail -1 "$OUT/tests.log")
      SELU_EXT_REQUIRE_CUDA=1 $PY -m pytest tests -q -p no:cacheprovider -rfEs $par --ignore=tests/test_large.py >> "$OUT/tests.log" 2>&1
      rc2=$?
      note "tests: rc=$(( rc1 > rc2 ? rc1 : rc2 )); tests/test_large.py: $large; the rest ($par): $(tail -1 "$OUT/tests.log") ($(( $(date +%s) - t0 ))s)"
      ;;
    fallback)
      fb=$(mktemp -d)
      cp -r setup.py pyproject.toml README.md csrc selu_ext tests "$fb"/
      rm -f "$fb"/selu_ext/_C*.so
      (cd "$fb" && USE_CUDA=0 $PY setup.py build_ext --inplace > "$OUT/fallback.log" 2>&1 &&
        SELU_EXT_REQUIRE_CUDA=1 PYTHONPATH="$fb" $PY -m pytest -q -p no:cacheprovider -rfEs \
          tests/test_fallback.py tests/test_build.py -k "fallback or build_info or cpu_capab" \
          >> "$OUT/fallback.log" 2>&1)
      rc=$?
      note "fallback (CPU-only build, CUDA tensors): rc=$rc, $(tail -1 "$OUT/fallback.log") ($(( $(date +%s) - t0 ))s)"
      rm -rf "$fb"
      ;;
    sanitize)
      : > "$OUT/sanitize.log"
      for tool in memcheck racecheck; do
        compute-sanitizer --tool $tool --error-exitcode 3 $PY benchmarks/sanitize_cuda.py >> "$OUT/sanitize.log" 2>&1
        rc=$?
        note "compute-sanitizer $tool: rc=$rc, $(grep -E 'ERROR SUMMARY' "$OUT/sanitize.log" | tail -1)"
      done
      ;;
    bench)
      b=$(budget 80 60)
      $PY -m selu_ext.bench --device cuda --no-train-compile --budget "$b" --json "$OUT/bench.json" \
        > "$OUT/bench.txt" 2>&1
      note "bench (budget ${b}s): rc=$? ($(( $(date +%s) - t0 ))s)"
      ;;
    graphs)
      $PY -m selu_ext.bench --device cuda --cuda-graphs --ops selu,fused,dropout \
        --modes forward,backward,fwdbwd --dtypes fp32,bf16 --sizes 2^12,2^16,2^20,2^22,2^24 \
        --budget "$(budget 40 30)" --json "$OUT/bench_graphs.json" > "$OUT/bench_graphs.txt" 2>&1
      note "bench --cuda-graphs: rc=$? ($(( $(date +%s) - t0 ))s)"
      ;;
    example)
      mkdir -p "$OUT/example"
      $PY benchmarks/snn_example.py --device cuda --out "$OUT/example" > "$OUT/example/log.txt" 2>&1
      note "example: rc=$? ($(( $(date +%s) - t0 ))s)"
      ;;
    *) note "unknown step $step" ;;
  esac
done
