#!/usr/bin/env bash
# Issue 24's rows in one run, one thread: the SELU forward in float32 and bfloat16 at 2^16
# and 2^20 elements against copy, eager F.selu and torch.compile, on the best selu_ext
# CPU variant and every other one this CPU runs (rows selu_ext[avx512], selu_ext[avx2],
# ...; the run's meta names the default), and the MLP training step at batch 256 in
# float32 and bfloat16 with its floor (SELU and AlphaDropout as nn.Identity).
#
#   benchmarks/cpu_bf16.sh [extra flags for python -m selu_ext.bench]
#
# Writes $OUT/{bench.json,bench.txt} (default benchmarks/results/cpu_avx512_bf16). Run it
# on a quiet machine; the run records the load average (meta.loadavg) and the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT:-benchmarks/results/cpu_avx512_bf16}
mkdir -p "$OUT"
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" $PY -m selu_ext.bench --device cpu --threads 1 \
  --ops selu --modes forward --dtypes float32,bfloat16 --sizes 2^16,2^20 --cpu-variants \
  --train --train-models mlp --train-batches 256 --no-train-compile \
  --json "$OUT/bench.json" "$@" | tee "$OUT/bench.txt"
