"""The F.selu[avx2] peer on the CPU: PyTorch's eager F.selu with its AVX2 kernels.
torch reads ATEN_CPU_CAPABILITY when it is imported, so the peer runs in a subprocess
with ATEN_CPU_CAPABILITY=avx2, through this same harness (``--emit-rows`` prints its
eager rows as JSON lines); its rows are shown next to the others."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import selu_ext

from .candidates import SWEEP_MODES
from .targets import size_str


def run(runner) -> None:
    """Run the subprocess and keep its rows in runner.avx2_rows."""
    cfg = runner.cfg
    # F.selu only: the fused eager peer runs the same F.selu plus a dropout that does
    # not depend on the capability, at several times the cost.
    modes = [m for m in cfg.modes if m in SWEEP_MODES + ("percall", "accuracy")]
    if "selu" not in cfg.ops or not modes:
        return
    if str(runner.meta.get("torch_cpu_capability")).upper() == "AVX2":
        # The peer would time eager F.selu again, on the same kernels.
        runner.say("\nF.selu[avx2]: skipped, torch already uses its AVX2 kernels here")
        runner.meta["avx2_peer"] = {"skipped": "torch CPU capability is already AVX2"}
        return
    env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2")
    root = os.path.dirname(os.path.dirname(os.path.abspath(selu_ext.__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    args = [sys.executable, "-m", "selu_ext.bench", "--device", "cpu", "--ops", "selu",
            "--modes", ",".join(modes), "--dtypes", ",".join(cfg.dtypes),
            "--sizes", ",".join(map(str, cfg.sizes)), "--threads", *map(str, cfg.threads),
            "--no-compile", "--no-avx2-peer", "--emit-rows", "--p", repr(cfg.p),
            "--seed", str(cfg.seed), "--min-time", repr(cfg.min_time), "--max-time",
            repr(cfg.max_time), "--min-samples", str(cfg.min_samples)] + ["--quick"] * cfg.quick
    runner.say("\nF.selu[avx2]: PyTorch's eager F.selu under ATEN_CPU_CAPABILITY=avx2, in a "
               "subprocess (torch reads the variable at import)")
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    except OSError as e:
        runner.say(f"  skipped: could not start the subprocess ({e})")
        return
    rows, cap = runner.avx2_rows, None
    for line in proc.stdout:
        if line.startswith("@meta "):
            cap = json.loads(line[6:]).get("torch_cpu_capability")
            runner.say(f"  subprocess torch CPU capability: {cap}")
        elif line.startswith("@row "):
            r = json.loads(line[5:])
            r["impl"], r["role"] = r["impl"] + "[avx2]", "eager_avx2"
            rows[(r["op"], r["mode"], r["dtype"], r["size"], r["threads"])] = r
            ms = f"{r['median_ms']:.4f} ms" if r.get("median_ms") is not None else (
                f"{r['max_ulp']:.2f} ULP" if r.get("max_ulp") is not None else r["status"])
            runner.say(f"  [avx2] {r['op']} {r['mode']} {r['dtype']} {size_str(r['size'])} "
                       f"{r['threads']}thr {r['impl']}: {ms}")
    rc = proc.wait()
    if rc != 0:
        tail = " | ".join(proc.stderr.read().strip().splitlines()[-3:])
        runner.say(f"  the avx2 subprocess failed (rc={rc}); kept {len(rows)} rows. {tail}")
    if cap is not None and str(cap).upper() != "AVX2":
        runner.say(f"  note: the subprocess ran with torch CPU capability {cap}, not AVX2")
        for r in rows.values():
            r["note"] = (r.get("note") or "") + f" torch capability {cap}"
    runner.meta["avx2_peer"] = {"rc": rc, "torch_cpu_capability": cap, "rows": len(rows),
                                "seconds": round(time.perf_counter() - t0, 1)}
    runner.say(f"  {len(rows)} rows in {time.perf_counter() - t0:.0f} s\n")


def emit(runner, op, mode, dname, size, threads) -> None:
    """Store and print the peer's row of this point, if it measured one."""
    r = runner.avx2_rows.get((op, mode, dname, size, threads))
    if r is not None:
        r = dict(r)
        if r.get("gbps") and runner.copy_gbps.get(threads):
            r["pct_copy_bw"] = 100 * r["gbps"] / runner.copy_gbps[threads]
        runner.emit(r)
