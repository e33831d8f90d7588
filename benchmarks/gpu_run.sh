#!/usr/bin/env bash
# The GPU run: build selu_ext in place against this machine's torch, run the whole
# test suite with the CUDA tests required to run, the CUDA sanitizers and the
# benchmark, and write everything to OUTDIR. Needs torch, nvcc, ninja, pytest and
# numpy preinstalled; no network.
#
#   [PACK=DIR] [DEADLINE_S=420] [DRY_RUN=S] benchmarks/gpu_run.sh OUTDIR [STEP ...]
#
# STEP (default: all, in this order: by value, so a short call keeps the first):
#   build     setup.py build_ext --inplace, TORCH_CUDA_ARCH_LIST=9.0 unless set
#   test      the whole suite (every tests/test_*.py), SELU_EXT_REQUIRE_CUDA=1 (a
#             missing GPU fails it), with pytest's --durations
#   sanitize  compute-sanitizer memcheck, then racecheck, over
#             benchmarks/sanitize_cuda.py
#   sweep     python -m selu_ext.bench --device cuda, the sweep's large sizes
#             (2^20-2^28; eager peers, no torch.compile), float32 first: the
#             kernels' GB/s
#   fallback  a second, CPU-only build (USE_CUDA=0) in a temporary copy, and the
#             tests of its CUDA fallback
#   bench     the rest of the default benchmark: the per-call rows, the training
#             step (its torch.compile variants left out: each compile costs tens of
#             seconds), then the sweep's small sizes (2^12, 2^16) with every mode
#   graphs    the sweep with --cuda-graphs (GPU time only, host cost taken out),
#             float32 and bfloat16, up to 2^24 elements: separates the kernels from
#             the per-call host cost that bounds the launched timings there
#   example   benchmarks/snn_example.py
#
# Writes OUTDIR/{env.txt,build.log,tests.log,sanitize-memcheck.log,
# sanitize-racecheck.log,bench_sweep.{txt,json},fallback.log,bench.{txt,json},
# bench_graphs.{txt,json},example/,summary.md}, each as its step goes (Python
# unbuffered, the benchmark's JSON rewritten after each group of rows).
# summary.md has a line per step: its result, its seconds and when it started.
# PACK=DIR: after each step, OUTDIR is also packed into DIR/gpu_run.tar.gz and
# summary.md copied to DIR: two files, within the 8 a device call brings back, and
# a call cut short keeps every finished step. In one device call:
#
#   PACK=$OUT timeout 540 benchmarks/gpu_run.sh /tmp/gpu_run
#
# Time: DEADLINE_S (default 420 s, 7 minutes, from the script's start) bounds the
# run, leaving 2 minutes of margin in a 9-minute call. No step runs past it (each
# runs under `timeout`), the benchmark steps stop measuring in time (--budget,
# keeping their rows), and a step that cannot have its minimum (MIN_S below) is
# skipped and says so: a second call that names the skipped steps runs them.
# Estimates, from the stored H100 run (results/h100, 2026-11-22, torch 2.11, 16
# cores, 1,554 tests), used for the order and the minimums:
#   env        10 s   the rest of the 40 s below
#   build      60 s   56 s there
#   test      270 s   196 s there (test_large 2 s, the rest 181 s on 8 workers);
#                     181 s scaled by the test count to today's 2,192 is 255 s: an
#                     upper bound if the new, mostly drop-in tests are cheaper
#   sanitize   30 s   not timed there: bench.json's start (15:19:52) less
#                     summary.md's (15:13:47) is 365 s, of which build, test and
#                     fallback took 325: 40 s for env.txt and both tools
#   sweep      90 s   at most (--budget): that run's whole sweep, every size in 4
#                     dtypes with the torch.compile peers, took 101 s
#   fallback   75 s   73 s there
#   bench     150 s   at most; 108 s there for the whole default run
#   graphs     90 s   at most; never run
#   example    35 s   33 s there
# At these estimates env, build, test and sanitize take 10+60+270+30 = 370 s and
# leave the sweep 50 s; every second the suite runs under its estimate goes to the
# sweep first, then to the rest.
# DRY_RUN=S: write each command to its log instead of running it and sleep S
# seconds in its place (checks the order, the time limits and the packing).
set -uo pipefail
OUT=${1:?usage: benchmarks/gpu_run.sh OUTDIR [build test sanitize sweep fallback bench graphs example]}
shift
STEPS=${*:-build test sanitize sweep fallback bench graphs example}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
PY=${PYTHON:-python3}
DEADLINE_S=${DEADLINE_S:-420}
DRY_RUN=${DRY_RUN:-}
T0=$(date +%s)
SUMMARY="$OUT/summary.md"
echo "# GPU run $(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$SUMMARY"
echo "command: benchmarks/gpu_run.sh OUTDIR $STEPS (DEADLINE_S=$DEADLINE_S${DRY_RUN:+, DRY_RUN=$DRY_RUN})" >> "$SUMMARY"
note() { echo "- $*" | tee -a "$SUMMARY"; }
elapsed() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( DEADLINE_S - $(elapsed) )); }

# run LOG LIMIT CMD...: CMD's output appended to LOG, stopped after LIMIT seconds
# (rc 124). In the background and waited for, so a TERM to this script is handled
# at once (see the trap) rather than after the command.
run() {
  local log=$1 limit=$2
  shift 2
  echo "+ $*" >> "$log"
  if [ "$limit" -le 0 ]; then
    echo "(not run: no time left)" >> "$log"
    return 124
  fi
  if [ -n "$DRY_RUN" ]; then
    sleep "$DRY_RUN" &
  else
    timeout -k 10 "$limit" "$@" >> "$log" 2>&1 &
  fi
  child=$!
  wait $child
}

pack() {
  [ -n "${PACK:-}" ] || return 0
  mkdir -p "$PACK"
  cp "$SUMMARY" "$PACK/summary.md"
  tar -czf "$PACK/.gpu_run.tar.gz" -C "$(dirname "$OUT")" "$(basename "$OUT")" &&
    mv "$PACK/.gpu_run.tar.gz" "$PACK/gpu_run.tar.gz"
}
step="" child=""
trap '[ -z "$child" ] || kill "$child" 2>/dev/null
      note "stopped by a signal during ${step:-setup} (at +$(elapsed)s)"; pack; exit 143' TERM INT

# Steps that need at least this many seconds; one that cannot have them is skipped.
declare -A MIN_S=([build]=0 [test]=0 [sanitize]=20 [sweep]=45 [fallback]=75 [bench]=60 [graphs]=40 [example]=35)
# The benchmark steps' --budget: what is left less 30 s for the process around the
# measuring (import, copy bandwidth, the tables at the end), at most $1.
budget() {
  local b=$(( $(left) - 30 ))
  echo $(( b < $1 ? b : $1 ))
}

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
note "env: $(elapsed)s"

# fresh NAME: OUTDIR/NAME, emptied (a step's logs are its own run's).
fresh() { : > "$OUT/$1"; echo "$OUT/$1"; }
took() { echo "$(( $(date +%s) - t0 ))s, from +${at}s"; }
for step in $STEPS; do
  t0=$(date +%s)
  at=$(elapsed)
  if [ "$(left)" -lt "${MIN_S[$step]:-0}" ]; then
    note "$step: skipped, $(left)s left of DEADLINE_S=$DEADLINE_S, it needs ${MIN_S[$step]}s"
    continue
  fi
  case $step in
    build)
      log=$(fresh build.log)
      run "$log" "$(left)" $PY setup.py build_ext --inplace
      rc=$?
      run "$log" 60 $PY -c 'import json, selu_ext; print(json.dumps(selu_ext.build_info(), indent=1))'
      run "$log" 10 bash -c 'ldd selu_ext/_C*.so'
      note "build: rc=$rc ($(took))"
      [ $rc -eq 0 ] || { pack; exit 1; }
      ;;
    test)
      # The >2^31-element test first and alone (it needs 24 GiB free), then the rest,
      # in parallel where pytest-xdist is installed.
      log=$(fresh tests.log)
      par=""
      $PY -c "import xdist" 2>/dev/null && par="-n 8"
      run "$log" "$(left)" env SELU_EXT_REQUIRE_CUDA=1 $PY -m pytest tests/test_large.py -q \
        -p no:cacheprovider -rfEs
      rc1=$?
      large=$(tail -1 "$log")
      run "$log" "$(left)" env SELU_EXT_REQUIRE_CUDA=1 $PY -m pytest tests -q -p no:cacheprovider \
        -rfEs --durations=40 $par --ignore=tests/test_large.py
      rc2=$?
      # pytest's last line that counts passed or failed tests (--durations' table
      # is not last in every pytest).
      rest=$(grep -E '[0-9]+ (passed|failed)' "$log" | tail -1)
      note "tests: rc=$(( rc1 > rc2 ? rc1 : rc2 )); tests/test_large.py: $large; the rest ($par): ${rest:-no summary line} ($(took))"
      ;;
    sanitize)
      # Each tool's own summary line: racecheck's is not memcheck's ERROR SUMMARY.
      for tool in memcheck racecheck; do
        [ $tool = memcheck ] && line="ERROR SUMMARY" || line="RACECHECK SUMMARY"
        log=$(fresh sanitize-$tool.log)
        t1=$(date +%s)
        run "$log" "$(left)" compute-sanitizer --tool $tool --error-exitcode 3 $PY \
          benchmarks/sanitize_cuda.py
        rc=$?
        found=$(grep -E "$line" "$log" | tail -1)
        note "compute-sanitizer $tool: rc=$rc, ${found:-no $line line} ($(( $(date +%s) - t1 ))s, from +$(( t1 - T0 ))s)"
      done
      ;;
    sweep)
      b=$(budget 90)
      run "$(fresh bench_sweep.txt)" $(( b + 30 )) $PY -m selu_ext.bench --device cuda \
        --ops selu,fused,dropout --modes forward,backward,fwdbwd --sizes 2^20..2^28:2 \
        --no-compile --budget "$b" --json "$OUT/bench_sweep.json"
      note "bench sweep 2^20-2^28 (budget ${b}s): rc=$? ($(took))"
      ;;
    fallback)
      fb=$(mktemp -d)
      log=$(fresh fallback.log)
      cp -r setup.py pyproject.toml README.md csrc selu_ext tests "$fb"/
      rm -f "$fb"/selu_ext/_C*.so
      run "$log" "$(left)" env -C "$fb" USE_CUDA=0 $PY setup.py build_ext --inplace &&
        run "$log" "$(left)" env -C "$fb" SELU_EXT_REQUIRE_CUDA=1 PYTHONPATH="$fb" $PY -m pytest \
          -q -p no:cacheprovider -rfEs tests/test_fallback.py tests/test_build.py \
          -k "fallback or build_info or cpu_capab"
      note "fallback (CPU-only build, CUDA tensors): rc=$?, $(tail -1 "$log") ($(took))"
      rm -rf "$fb"
      ;;
    bench)
      b=$(budget 150)
      run "$(fresh bench.txt)" $(( b + 30 )) $PY -m selu_ext.bench --device cuda --percall --train \
        --no-train-compile --ops selu,fused,dropout --sizes 2^12,2^16 --budget "$b" \
        --json "$OUT/bench.json"
      note "bench per-call, training step, sweep 2^12-2^16 (budget ${b}s): rc=$? ($(took))"
      ;;
    graphs)
      b=$(budget 90)
      run "$(fresh bench_graphs.txt)" $(( b + 30 )) $PY -m selu_ext.bench --device cuda \
        --cuda-graphs --ops selu,fused,dropout --modes forward,backward,fwdbwd --dtypes fp32,bf16 \
        --sizes 2^12,2^16,2^20,2^22,2^24 --budget "$b" --json "$OUT/bench_graphs.json"
      note "bench --cuda-graphs (budget ${b}s): rc=$? ($(took))"
      ;;
    example)
      mkdir -p "$OUT/example"
      run "$(fresh example/log.txt)" "$(left)" $PY benchmarks/snn_example.py --device cuda \
        --out "$OUT/example"
      note "example: rc=$? ($(took))"
      ;;
    *) note "unknown step $step" ;;
  esac
  pack
done
step=""
note "total: $(elapsed)s of DEADLINE_S=$DEADLINE_S"
pack
