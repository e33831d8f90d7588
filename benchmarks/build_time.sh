#!/usr/bin/env bash
# Where the build's time goes: builds a source tree from scratch (USE_CUDA=0, no
# ccache, one compile at a time) and prints, per translation unit, the CPU seconds
# (user + sys) of its compile, then the total. CPU seconds, not wall time, so that
# other work on the machine changes the numbers little; with N cores the build's
# wall time is about max(total / N, largest file).
#
#   benchmarks/build_time.sh [SOURCE_DIR] [PYTHON]
#
# SOURCE_DIR (default: this checkout) is built in place (`setup.py build_ext
# --inplace`); pass an exported older commit to compare, e.g.
#   git archive HEAD~3 | tar -x -C /tmp/before && benchmarks/build_time.sh /tmp/before
# CXX (default g++) is the compiler measured.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "${1:-$here/..}" && pwd)
python=${2:-${PYTHON:-python3}}
log=$(mktemp)
wrapper=$(mktemp)
trap 'rm -f "$log" "$wrapper"' EXIT
# The compiler, wrapped: each compile of a source file appends "user sys file".
cat >"$wrapper" <<EOF
#!/usr/bin/env bash
for a in "\$@"; do case "\$a" in *.cpp|*.cu) file="\$a";; esac; done
if [ -n "\${file:-}" ]; then
  exec /usr/bin/time -a -o "$log" -f "%U %S \${file#$src/}" ${CXX:-g++} "\$@"
fi
exec ${CXX:-g++} "\$@"
EOF
chmod +x "$wrapper"
rm -rf "$src/build/temp-"* "$src/build/temp."*
(cd "$src" && CXX="$wrapper" TORCH_NO_COMPILER_WRAPPER=1 USE_CUDA=0 MAX_JOBS=1 \
  "$python" setup.py build_ext --inplace >"$log.out" 2>&1) || { tail -30 "$log.out"; exit 1; }
echo "build of $src ($(cd "$src" && git rev-parse --short HEAD 2>/dev/null || echo exported))"
flags=$(grep -m1 '^flags' /proc/cpuinfo)
has() { [[ " $flags " == *" $1 "* ]] && echo yes || echo no; }
echo "compiler: $(${CXX:-g++} --version | head -1); CPU: $(grep -m1 'model name' /proc/cpuinfo |
  cut -d: -f2 | xargs) (avx2: $(has avx2), avx512f: $(has avx512f)), $(nproc) cores"
awk '$3 != "" && $3 !~ /probe/ { s = $1 + $2; t += s; printf "%8.1f s  %s\n", s, $3 }
     END { printf "%8.1f s  total CPU\n", t }' "$log"
rm -f "$log.out"
