#!/usr/bin/env bash
# Memory-safety run: build a copy of selu_ext with AddressSanitizer and
# UndefinedBehaviorSanitizer (setup.py's SELU_EXT_SANITIZE switch; CPU kernels only,
# USE_CUDA=0) in a scratch folder and run the CPU test suite against it.
#
#   benchmarks/asan_tests.sh [PYTEST ARGS ...]
#
# Without arguments it runs the whole test suite (about 2.5 minutes on 2 cores; the
# GPU tests skip, as the build has no CUDA kernels); pass test paths or pytest
# options to run less, e.g. `benchmarks/asan_tests.sh tests/test_fuzz.py`.
#
# Environment:
#   PYTHON          interpreter with torch, pytest, hypothesis (default: .venv/bin/python
#                   when present, else python3)
#   SANITIZE_DIR    where to build (default: a fresh mktemp -d, removed on success)
#   SELU_EXT_SANITIZE   default address,undefined
#   MAX_JOBS        parallel compile jobs (default: nproc)
#
# Python and torch are not instrumented, so libasan is preloaded; leak detection is
# off because CPython and torch keep allocations alive at exit by design. UBSan
# stops at the first report (setup.py also passes -fno-sanitize-recover=undefined).
# Exit status: the build's when it fails, else pytest's; a sanitizer report aborts the
# process and makes pytest's status non-zero.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
PYTHON=$(command -v "$PYTHON")
DIR=${SANITIZE_DIR:-$(mktemp -d /tmp/selu_asan.XXXXXX)}
export SELU_EXT_SANITIZE=${SELU_EXT_SANITIZE:-address,undefined}
export MAX_JOBS=${MAX_JOBS:-$(nproc)}

echo "asan_tests: building selu_ext with -fsanitize=$SELU_EXT_SANITIZE in $DIR"
mkdir -p "$DIR"
# The checkout's files (tests read README.md, .ci/ and benchmarks/ too), without
# its build outputs: git's list of tracked and untracked-but-not-ignored files, or
# the source folders when this is no git checkout. tar keeps modification times,
# so a kept SANITIZE_DIR rebuilds only what changed.
if git -C "$REPO" rev-parse --is-inside-work-tree > /dev/null 2>&1; then
  (cd "$REPO" && git ls-files -co --exclude-standard -z |
    tar --null --ignore-failed-read -T - -cf - 2> /dev/null) | (cd "$DIR" && tar -xf -)
else
  (cd "$REPO" && tar --exclude='*.so' --exclude='__pycache__' --exclude='./build' \
    --exclude='./.venv' -cf - .) | (cd "$DIR" && tar -xf -)
fi

t0=$(date +%s)
(cd "$DIR" && USE_CUDA=0 "$PYTHON" setup.py build_ext --inplace > build.log 2>&1) || {
  echo "asan_tests: build failed; see $DIR/build.log"; tail -30 "$DIR/build.log"; exit 1; }
echo "asan_tests: built in $(( $(date +%s) - t0 ))s"
ldd "$DIR"/selu_ext/_C*.so | grep -q libasan || {
  echo "asan_tests: $DIR/selu_ext/_C*.so is not linked against libasan"; exit 1; }

LIBASAN=$(gcc -print-file-name=libasan.so)
LIBUBSAN=$(gcc -print-file-name=libubsan.so)
[ -e "$LIBASAN" ] || { echo "asan_tests: libasan not found ($LIBASAN)"; exit 1; }
PRELOAD="$LIBASAN"
case $SELU_EXT_SANITIZE in *undefined*) PRELOAD="$PRELOAD:$LIBUBSAN" ;; esac

# allocator_may_return_null=1: an impossible allocation (tests ask for 2**62 bytes
# on purpose) returns NULL, so torch raises as it does without ASan, instead of
# ASan aborting on the request.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:print_stacktrace=1:detect_odr_violation=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# Hypothesis' example database (if a test keeps one) stays in the scratch folder.
export HYPOTHESIS_STORAGE_DIRECTORY="$DIR/.hypothesis"

cd "$DIR"
# The sanitized build must be the one imported: check before running anything.
LD_PRELOAD="$PRELOAD" PYTHONPATH="$DIR" "$PYTHON" -c '
import selu_ext, sys
info = selu_ext.build_info()
assert selu_ext.__file__.startswith(sys.argv[1]), selu_ext.__file__
assert info["sanitize"], info
print("asan_tests: imported", selu_ext.__file__, "sanitize =", info["sanitize"],
      "cpu_capability =", info["cpu_capability"])
' "$DIR"

if [ $# -eq 0 ]; then set -- tests; fi
echo "asan_tests: pytest $*"
t0=$(date +%s)
rc=0
LD_PRELOAD="$PRELOAD" PYTHONPATH="$DIR" "$PYTHON" -m pytest -q -p no:cacheprovider "$@" || rc=$?
echo "asan_tests: pytest exit $rc after $(( $(date +%s) - t0 ))s"
if [ $rc -eq 0 ] && [ -z "${SANITIZE_DIR:-}" ]; then rm -rf "$DIR"; fi
exit $rc
