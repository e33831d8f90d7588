#!/usr/bin/env bash
# CI, after the build and test suite: the CPU code also compiles with the compilers
# the build is not made with here, so a portability break fails CI.
#
#   clang++ (x86-64)             every C++ file: the torch-free kernel files compiled
#                                in full, the files that include torch's headers
#                                checked with -fsyntax-only
#   clang++ --target=aarch64     the same, for aarch64 Linux (kernels in full, the
#                                rest against torch's headers, -fsyntax-only)
#   aarch64-linux-gnu-g++        the kernel files in full, for aarch64 Linux
#
# Each kernel file is also compiled as MSVC builds it (SELU_EXT_SCALAR_KERNELS) and
# every file without -fopenmp, as a compiler without OpenMP builds it. Usage:
# .ci/portability.sh [python with torch installed] (default: .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-.venv/bin/python}

packages=(clang g++-aarch64-linux-gnu)
if ! command -v clang++ >/dev/null || ! command -v aarch64-linux-gnu-g++ >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${packages[@]}" >/dev/null
fi

mapfile -t torch_includes < <("$python" - <<'PY'
import os
import sysconfig

import torch

inc = os.path.join(os.path.dirname(torch.__file__), "include")
for p in (inc, os.path.join(inc, "torch", "csrc", "api", "include"),
          sysconfig.get_paths()["include"]):
    print(p)
PY
)
includes=(-Icsrc)
for p in "${torch_includes[@]}"; do includes+=("-I$p"); done
# The generated config header, as setup.py writes it, in a scratch folder.
gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
printf '#pragma once\n#define SELU_EXT_BUILD_INFO_JSON "{}"\n#define SELU_EXT_NO_CUDA_REASON "ci"\n' \
  >"$gen/selu_ext_config.h"
includes+=("-I$gen")
abi=$("$python" -c "import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))")
common=(-std=c++20 -O2 -Wall -Wno-unused-parameter -D_GLIBCXX_USE_CXX11_ABI="$abi"
        -DTORCH_API_INCLUDE_EXTENSION_H -DTORCH_EXTENSION_NAME=_C)

kernels=(csrc/cpu/kernels_baseline.cpp csrc/cpu/kernels_avx2.cpp csrc/cpu/kernels_avx512.cpp
         csrc/cpu/kernels_avx512_bf16.cpp
         csrc/cpu/dispatch.cpp)
hosts=(csrc/ops.cpp csrc/autograd.cpp csrc/cpu/selu_cpu.cpp csrc/cuda/fallback.cpp)

failed=0
check() {  # check <what> <command...>
  local what=$1
  shift
  local start=$SECONDS
  if "$@" >"$gen/log" 2>&1; then
    echo "ok    ${what} ($((SECONDS - start)) s)"
  else
    echo "FAIL  ${what}"
    # The errors, not the warnings that may come before them.
    grep -E -A4 'error' "$gen/log" >"$gen/errors" || cp "$gen/log" "$gen/errors"
    head -40 "$gen/errors" | sed 's/^/      /'
    failed=1
  fi
}

check "c++ -c kernels_baseline.cpp as MSVC builds it (scalar loops)" \
  c++ "${common[@]}" "${includes[@]}" -DSELU_EXT_SCALAR_KERNELS \
  -c csrc/cpu/kernels_baseline.cpp -o "$gen/k.o"
for cxx in "clang++" "clang++ --target=aarch64-linux-gnu" "aarch64-linux-gnu-g++"; do
  read -r -a cc <<<"$cxx"
  for f in "${kernels[@]}"; do
    check "$cxx -c $f" "${cc[@]}" "${common[@]}" "${includes[@]}" -c "$f" -o "$gen/k.o"
  done
  check "$cxx -c kernels_baseline.cpp as MSVC builds it (scalar loops)" \
    "${cc[@]}" "${common[@]}" "${includes[@]}" -DSELU_EXT_SCALAR_KERNELS \
    -c csrc/cpu/kernels_baseline.cpp -o "$gen/k.o"
  [ "$cxx" = "aarch64-linux-gnu-g++" ] && continue  # its syntax is GCC's, which the build checks
  for f in "${hosts[@]}"; do
    check "$cxx -fsyntax-only $f" "${cc[@]}" "${common[@]}" "${includes[@]}" -fsyntax-only "$f"
  done
done

if [ "$failed" != 0 ]; then
  echo "portability: a compile failed (above)"
  exit 1
fi
echo "portability: every compile passed"
