"""Where does the float32 SELU forward lose its ~2% to PyTorch at 2^24-2^28 elements
(results/h100: 0.976-0.979x eager, 96.7 % vs 99.1 % of copy at 2^26)? Times
variants of the kernel (benchmarks/probe_geometry.cu: block geometries, CUDA's
expm1f instead of selu_ext's, a plain copy) against F.selu and Tensor.copy_ in one
process, interleaving the candidates sample by sample so that drift on a shared
machine hits all of them alike. A development probe, run by gpu_run.sh (step
`probe`); the benchmark proper is `python -m selu_ext.bench`.

    python benchmarks/probe_geometry.py [--sizes 2^24,2^26,2^28] [--samples 30]

Prints ptxas's register counts, a check of every variant's output, and per size a
table: median microseconds per call (p20..p80), GB/s, % of copy_, and speed
relative to F.selu.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def build(arch: str) -> tuple[ctypes.CDLL, str]:
    out = os.path.join(tempfile.mkdtemp(prefix="selu_probe_"), "probe_geometry.so")
    cmd = ["nvcc", "-std=c++17", "-O3", "-shared", "-Xcompiler", "-fPIC",
           f"-gencode=arch=compute_{arch},code=sm_{arch}", "-Xptxas", "-v",
           os.path.join(HERE, "probe_geometry.cu"), "-o", out]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"nvcc failed:\n{r.stderr}")
    regs, entry = [], "?"
    for line in r.stderr.splitlines():
        if "Compiling entry function" in line:
            entry = line.split("'")[1]
        elif "Used" in line:
            regs.append(f"  {_demangle(entry)}: {line.split(':', 1)[1].strip()}")
    lib = ctypes.CDLL(out)
    lib.probe_count.restype = ctypes.c_int
    lib.probe_name.restype = ctypes.c_char_p
    lib.probe_name.argtypes = [ctypes.c_int]
    lib.probe_launch.restype = ctypes.c_int
    lib.probe_launch.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                 ctypes.c_void_p]
    return lib, "\n".join(regs)


def _demangle(name: str) -> str:
    try:
        r = subprocess.run(["c++filt", name], capture_output=True, text=True)
        out = r.stdout.strip() or name
    except OSError:
        out = name
    return out.replace("(anonymous namespace)::", "")


def parse_size(tok: str) -> int:
    tok = tok.strip()
    if "^" in tok:
        b, e = tok.split("^")
        return int(b) ** int(e)
    return int(tok)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="2^24,2^26,2^28", help="float32 elements (multiples of 4)")
    ap.add_argument("--samples", type=int, default=30, help="timed samples per candidate")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("probe_geometry: needs a CUDA GPU")
    major, minor = torch.cuda.get_device_capability()
    arch = f"{major}{minor}" + ("a" if major == 9 else "")
    lib, regs = build(arch)
    names = [lib.probe_name(i).decode() for i in range(lib.probe_count())]
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, sm_{arch}")
    print("ptxas register use, in kernel-instantiation order:\n" + regs)

    import selu_ext
    stream = torch.cuda.current_stream()
    for n in (parse_size(s) for s in args.sizes.split(",")):
        assert n % 4 == 0
        x = torch.randn(n, device="cuda")
        y = torch.empty_like(x)
        ref = selu_ext.selu(x)
        # Each variant's result first: SELU variants within a few float32 ULP of
        # selu_ext's op, copies bit-equal to x.
        checks = []
        for i, name in enumerate(names):
            y.fill_(float("nan"))
            rc = lib.probe_launch(i, x.data_ptr(), y.data_ptr(), n, stream.cuda_stream)
            torch.cuda.synchronize()
            if rc != 0:
                sys.exit(f"{name}: launch error {rc}")
            want = x if name.startswith("copy") else ref
            diff = (y - want).abs().max().item()
            checks.append(f"  {name}: max |diff| {diff:.3g}")
            if not diff <= 1e-5 * max(1.0, want.abs().max().item()):
                sys.exit("probe_geometry: wrong result\n" + "\n".join(checks))
        cands = {name: (lambda i=i: lib.probe_launch(i, x.data_ptr(), y.data_ptr(), n,
                                                   stream.cuda_stream))
                 for i, name in enumerate(names)}
        cands["F.selu (PyTorch)"] = lambda: F.selu(x)
        cands["selu_ext.selu (the extension)"] = lambda: selu_ext.selu(x)
        cands["Tensor.copy_"] = lambda: y.copy_(x)
        # Launches per sample so that a sample lasts >= ~1 ms.
        reps = max(1, int(1e-3 / (8 * n / 3e12)))
        times = {k: [] for k in cands}
        for _ in range(3):
            for f in cands.values():
                f()
        torch.cuda.synchronize()
        for _ in range(args.samples):
            for k, f in cands.items():
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                for _ in range(reps):
                    f()
                b.record()
                b.synchronize()
                times[k].append(a.elapsed_time(b) * 1e3 / reps)
        med = {k: statistics.median(v) for k, v in times.items()}
        q = {k: statistics.quantiles(v, n=5) for k, v in times.items()}
        print(f"\nfloat32, n = 2^{n.bit_length() - 1} ({n} elements), {reps} launches per "
              f"sample, {args.samples} samples, interleaved")
        print("\n".join(checks))
        print(f"  {'candidate':58s} {'us':>9s} {'p20..p80':>17s} {'GB/s':>7s} {'%copy':>6s} "
              f"{'vs F.selu':>9s}")
        for k in cands:
            gbs = 8 * n / (med[k] * 1e-6) / 1e9
            print(f"  {k:58s} {med[k]:9.1f} {q[k][0]:8.1f}..{q[k][3]:<8.1f} {gbs:7.0f} "
                  f"{100 * med['Tensor.copy_'] / med[k]:6.1f} {med['F.selu (PyTorch)'] / med[k]:9.3f}")
        del x, y, ref
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
