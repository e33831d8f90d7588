#!/usr/bin/env bash
# The GPU run: build selu_ext in place against this machine's torch, run the whole
# test suite with the CUDA tests required to run, the CUDA sanitizers and the
# benchmark, and write everything to OUTDIR. Needs torch, nvcc, ninja, pytest and
# numpy preinstalled; no network.
#
#   benchmarks/gpu_run.sh OUTDIR [STEP ...]     STEP: build test sanitize bench example
#                                               (default: all, in that order)
#
# Writes OUTDIR/{env.txt,build.log,tests.log,sanitize.log,bench.txt,bench.json,
# example.txt,summary.md}; summary.md ends with each step's result.
set -uo pipefail
OUT=${1:?usage: benchmarks/gpu_run.sh OUTDIR [build test sanitize bench example]}
shift
STEPS=${*:-build test sanitize bench example}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
PY=${PYTHON:-python3}
SUMMARY="$OUT/summary.md"
echo "# GPU run $(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$SUMMARY"
echo "command: benchmarks/gpu_run.sh OUTDIR $STEPS" >> "$SUMMARY"
note() { echo "- $*" | tee -a "$SUMMARY"; }

{
  nvidia-smi 2>&1
  $PY -c 'import torch, platform; print("torch", torch.__version__, "cuda", torch.version.cuda, "python", platform.python_version()); print(torch.cuda.get_device_name(0), torch.cuda.get_device_properties(0))'
  nvcc --version | tail -2
  gcc --version | head -1
} > "$OUT/env.txt" 2>&1

for step in $STEPS; do
  t0=$(date +%s)
  case $step in
    build)
      $PY setup.py build_ext --inplace > "$OUT/build.log" 2>&1
      rc=$?
      $PY -c 'import json, selu_ext; print(json.dumps(selu_ext.build_info(), indent=1))' >> "$OUT/build.log" 2>&1
      note "build: rc=$rc ($(( $(date +%s) - t0 ))s)"
      [ $rc -eq 0 ] || exit 1
      ;;
    test)
      SELU_EXT_REQUIRE_CUDA=1 $PY -m pytest tests -q -p no:cacheprovider -rfEs > "$OUT/tests.log" 2>&1
      rc=$?
      note "tests: rc=$rc, $(grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed)' "$OUT/tests.log" | tail -1) ($(( $(date +%s) - t0 ))s)"
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
      $PY -m selu_ext.bench --device cuda --json "$OUT/bench.json" > "$OUT/bench.txt" 2>&1
      note "bench: rc=$? ($(( $(date +%s) - t0 ))s)"
      ;;
    example)
      $PY benchmarks/snn_example.py --out "$OUT" > "$OUT/example.txt" 2>&1
      note "example: rc=$? ($(( $(date +%s) - t0 ))s)"
      ;;
    *) note "unknown step $step" ;;
  esac
done
