#!/usr/bin/env bash
# The stored CPU run of the per-call rows and the training step, and the benchmarks/RESULTS.md
# headline generated from it: one command to regenerate both.
#
#   benchmarks/cpu_train.sh [extra flags for python -m selu_ext.bench]
#
# Writes benchmarks/results/cpu_train/{train.json,train.txt} and rewrites the
# tables in benchmarks/RESULTS.md between <!-- train-summary:start --> and <!-- train-summary:end -->.
# Run it on a quiet machine: the run records the load average before and after
# each part (meta.loadavg).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=benchmarks/results/cpu_train
mkdir -p "$OUT"
# A fresh inductor cache: the compiled variants' first step is then the cold
# compilation a user's first run pays, not a cache hit of an earlier run.
export TORCHINDUCTOR_CACHE_DIR=$(mktemp -d)
trap 'rm -rf "$TORCHINDUCTOR_CACHE_DIR"' EXIT
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" $PY -m selu_ext.bench --device cpu --percall --train \
  --threads 1 --json "$OUT/train.json" "$@" | tee "$OUT/train.txt"
$PY benchmarks/summarize.py
