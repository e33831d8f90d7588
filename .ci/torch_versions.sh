#!/usr/bin/env bash
# CI, after the main run (torch 2.14): the whole test suite against the older torch
# releases README supports, so a build break against the torch of the GPU machine
# (2.11) fails here, not in a GPU session. For each release: a fresh venv with that
# torch (PyPI's default, CUDA build) and the packages of README's test command, a
# CPU-only build (USE_CUDA=0) of a copy of this tree, so the main build and its
# build/ folder stay as they are, and the whole suite run in that copy.
#
#   .ci/torch_versions.sh [TORCH_VERSION ...]     (default: 2.11.0 2.12.1)
#
# TORCH_VERSIONS_DIR keeps the venvs and copies there (default: a temporary folder,
# removed at the end). Downloads go through pip's own cache (~/.cache/pip), so a
# machine that ran this before installs without downloading again. A line per
# release (minutes per stage, pytest's summary) as each ends, all of them again at
# the end; fails if any build or test failed.
set -euo pipefail
cd "$(dirname "$0")/.."
versions=(2.11.0 2.12.1)
[ $# = 0 ] || versions=("$@")

if [ -n "${TORCH_VERSIONS_DIR:-}" ]; then
  work=$TORCH_VERSIONS_DIR
  mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi

# The packages of README's test command (Quickstart, command 2), torch's
# requirement replaced by one release: one list of what the suite needs.
mapfile -t packages < <(python3 - <<'PY'
import re
import shlex

text = open("README.md").read()
block = re.search(r"## Quickstart.*?```bash\n(.*?)```", text, re.S).group(1)
lines = [l for l in block.splitlines() if l.strip() and not l.startswith("#")]
install = next(part for part in lines[1].split("&&") if "pip install" in part
               and "-e ." not in part)
words = shlex.split(install)
for word in words[words.index("install") + 1:]:
    if not word.startswith("torch"):
        print(word)
PY
)

minutes() { awk -v s="$1" 'BEGIN { printf "%.1f", s / 60 }'; }
results=()
failed=0
for version in "${versions[@]}"; do
  echo "=== torch $version"
  venv="$work/venv-$version" tree="$work/tree-$version"
  t0=$SECONDS
  python3 -m venv "$venv"
  # --no-compile: no .pyc for the thousands of files torch ships; Python writes
  # those it imports when it imports them.
  "$venv/bin/pip" install -q --no-compile "torch==$version" "${packages[@]}"
  t_install=$((SECONDS - t0))

  t0=$SECONDS
  rm -rf "$tree"
  mkdir -p "$tree"
  # Tracked files and untracked ones git does not ignore: no build output (and no
  # tracked file deleted in this working tree).
  git ls-files -z --cached --others --exclude-standard |
    tar --null -T - --ignore-failed-read -cf - | tar -xf - -C "$tree"
  log="$work/build-$version.log"
  if ! (cd "$tree" && env -u FORCE_CUDA USE_CUDA=0 "$venv/bin/python" setup.py build_ext \
          --inplace >"$log" 2>&1); then
    tail -40 "$log"
    results+=("torch $version: install $(minutes $t_install) min, BUILD FAILED (above)")
    echo "${results[-1]}"
    failed=1
    continue
  fi
  grep -m1 "^selu_ext .* for torch" "$log" || true
  t_build=$((SECONDS - t0))

  t0=$SECONDS
  log="$work/tests-$version.log"
  rc=0
  (cd "$tree" && env -u FORCE_CUDA USE_CUDA=0 "$venv/bin/python" -m pytest -q -p no:cacheprovider \
     2>&1 | tee "$log") || rc=$?
  [ "$rc" = 0 ] || failed=1
  results+=("torch $version: install $(minutes $t_install) min, build $(minutes $t_build) min, \
tests $(minutes $((SECONDS - t0))) min: $(tail -1 "$log")")
  echo "${results[-1]}"
done

echo "=== torch releases"
printf '%s\n' "${results[@]}"
exit "$failed"
