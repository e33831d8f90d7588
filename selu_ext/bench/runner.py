"""The run: its state (config, metadata, rows, copy bandwidth, budget) and its loop over thread counts, ops,
dtypes and sizes; the modes are measured by sweep.py and memory.py, --percall by percall.py, --train by train.py.

The F.selu[avx2] peer is PyTorch's eager F.selu on its AVX2 kernels. torch reads ATEN_CPU_CAPABILITY at import,
so the peer runs this harness in a subprocess with ATEN_CPU_CAPABILITY=avx2 and ``--emit-rows`` (torch's eager
rows only, handed back through its ``--json``)."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Optional, TextIO

import torch

import selu_ext

from . import memory, percall, report, sweep, timing, train
from .candidates import OP_DEFS, SWEEP_MODES, Impl, build_impls

# A run's settings: the flags' values, made by cli.config_from_args, which holds every default
# (``python -m selu_ext.bench --help`` lists them).
Config = argparse.Namespace


@dataclass
class Result:
    meta: dict
    rows: list
    targets: list
    plot_ok: bool = True


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def collect_meta(cfg) -> dict:
    info = selu_ext.build_info()
    try:
        triton_version = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        triton_version = None
    cuda = cfg.device == "cuda"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": cfg.command, "device": cfg.device,
        "device_name": torch.cuda.get_device_name(torch.cuda.current_device()) if cuda else _cpu_name(),
        "torch_version": torch.__version__, "torch_cuda": torch.version.cuda, "triton_version": triton_version,
        "python": platform.python_version(), "platform": platform.platform(), "version": selu_ext.__version__,
        "build_info": info, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "selu_ext_cpu_capability": info.get("cpu_capability"), "threads": list(cfg.threads),
        "cpu_count": os.cpu_count(), "p": cfg.p, "seed": cfg.seed, "ops": list(cfg.ops), "modes": list(cfg.modes),
        "dtypes": list(cfg.dtypes), "sizes": list(cfg.sizes), "percall_sizes": list(cfg.percall_sizes),
        "quick": cfg.quick, "timing": "cuda-graph" if cfg.cuda_graphs else "launched",
        "cache_bytes": timing.cache_bytes(cfg.device), "copy_gbps": {},
    }


class Runner:
    def __init__(self, cfg: Config, out: TextIO, extra_impls: Optional[dict] = None):
        self.cfg, self.out, self.extra_impls = cfg, out, extra_impls or {}
        self.rows: list[dict] = []
        self.meta = collect_meta(cfg)
        self.t_start = time.perf_counter()
        self.avx2_rows: dict = {}
        self.saved_cache: dict = {}

    def say(self, text: str = "", indent: str = "") -> None:
        print(report.wrap(text, indent), file=self.out)
        self.out.flush()

    def emit(self, row: dict, show: bool = True) -> None:
        """Store a row, with its share of the copy bandwidth; the per-call and training-step parts print their own."""
        copy = self.meta["copy_gbps"].get(str(row["threads"])) or next(iter(self.meta["copy_gbps"].values()), None)
        if row.get("gbps") and copy:
            row["pct_copy_bw"] = 100 * row["gbps"] / copy
        self.rows.append(row)
        key = lambda r: (r["op"], r["mode"], r["dtype"], r["size"], r.get("threads"))  # noqa: E731
        report.fill_speedups([r for r in self.rows[-64:] if key(r) == key(row)])
        if show:
            print(report.format_row(row), file=self.out)
        self.out.flush()

    def emit_avx2(self, op, mode, dname, size, threads) -> None:
        """Store and print the F.selu[avx2] row of this point, if the subprocess measured one."""
        r = self.avx2_rows.get((op, mode, dname, size, threads))
        if r is not None:
            self.emit(dict(r))

    @contextlib.contextmanager
    def measuring(self, row: dict):
        """Emit ``row`` after the block; an error in the block becomes its status."""
        try:
            yield row
        except Exception as e:
            row["status"] = "ERROR: " + report.first_line(e)
        self.emit(row)

    def new_row(self, op, mode, dtype, size, threads, impl: Impl, **fields) -> dict:
        return report.new_row(op, mode, dtype, size, self.cfg.device, threads, impl.name, impl.role, **fields)

    def over_budget(self) -> bool:
        if self.cfg.budget and "budget_hit" not in self.meta and time.perf_counter() - self.t_start > self.cfg.budget:
            self.meta["budget_hit"] = True
            self.say(f"\n*** time budget of {self.cfg.budget:.0f} s used up: the remaining rows "
                     "are skipped ***\n")
        return "budget_hit" in self.meta

    def wanted(self, impl: Impl) -> bool:
        """The F.selu[avx2] subprocess times torch's eager rows only."""
        return not self.cfg.emit_rows or impl.role == "eager"

    def impls_for(self, op: str) -> list[Impl]:
        cfg = self.cfg
        # None: try torch.compile; a failure at the first call is the row's status.
        cmode = None if cfg.compile is not False else (
            "compile skipped (--no-compile" + (", --quick on CPU)" if cfg.quick else ")"))
        impls = build_impls(op, cfg.device, cfg.p, compile_mode=cmode, cpu_variants=cfg.cpu_variants)
        impls[-1:-1] = self.extra_impls.get(op, [])
        return [i for i in impls if self.wanted(i)]

    def note_load(self, label: str) -> None:
        """The load average, kept in the run's meta: timings taken while other processes compete for the cores
        are noisier (interleaving keeps the ratios fair)."""
        if hasattr(os, "getloadavg"):
            self.meta.setdefault("loadavg", []).append([label, list(os.getloadavg())])

    def run(self) -> Result:
        report.print_header(self.meta, self.out)
        if self.cfg.device == "cpu" and self.cfg.avx2_peer:
            self.run_avx2_peer()
        try:
            self.measure()
        except KeyboardInterrupt:
            self.say("\ninterrupted: writing what was measured")
            self.meta["interrupted"] = True
        except Exception as e:  # a bug here should not lose the rows measured so far
            import traceback

            traceback.print_exc(file=self.out)
            self.meta["error"] = report.first_line(e)
        c = [ms for _, ms in self.meta.get("expm1_canary_ms", [])]
        if len(c) >= 2 and max(c) > 3 * min(c):
            self.meta["canary_warning"] = (
                f"PyTorch's expm1 ran at different speeds during this run ({min(c):.3f} to {max(c):.3f} ms "
                "for 2^16 float32 elements; see meta.expm1_canary_ms): the eager F.selu rows of different "
                "blocks are not comparable with each other")
            self.say(f"\nWARNING: {self.meta['canary_warning']}")
        self.meta["elapsed_s"] = round(time.perf_counter() - self.t_start, 1)
        self.say(f"done in {self.meta['elapsed_s']:.0f} s")
        tg, written = report.finish(self.cfg, self.meta, self.rows, self.out)
        if "error" in self.meta:
            raise SystemExit(f"selu_ext.bench: stopped by an error ({self.meta['error']}); "
                             "the rows measured before it were written")
        return Result(self.meta, self.rows, tg, written)

    def run_avx2_peer(self) -> None:
        """Run the F.selu[avx2] subprocess and keep its rows in avx2_rows."""
        cfg = self.cfg
        # F.selu only: the fused eager peer runs the same F.selu plus a dropout that does not depend on the
        # capability, at several times the cost.
        modes = [m for m in cfg.modes if m in SWEEP_MODES + ("percall", "accuracy")]
        if "selu" not in cfg.ops or not modes:
            return
        if str(self.meta.get("torch_cpu_capability")).upper() == "AVX2":
            # The peer would time eager F.selu again, on the same kernels.
            self.say("\nF.selu[avx2]: skipped, torch already uses its AVX2 kernels here")
            self.meta["avx2_peer"] = {"skipped": "torch CPU capability is already AVX2"}
            return
        env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2")
        root = os.path.dirname(os.path.dirname(os.path.abspath(selu_ext.__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        args = [sys.executable, "-m", "selu_ext.bench", "--device", "cpu", "--ops", "selu",
                "--modes", ",".join(modes), "--dtypes", ",".join(cfg.dtypes),
                "--sizes", ",".join(map(str, cfg.sizes)), "--threads", *map(str, cfg.threads),
                "--no-compile", "--no-avx2-peer", "--emit-rows", "--p", repr(cfg.p),
                "--seed", str(cfg.seed), "--min-time", repr(cfg.min_time), "--max-time",
                repr(cfg.max_time), "--min-samples", str(cfg.min_samples)] + ["--quick"] * cfg.quick
        self.say("\nF.selu[avx2]: PyTorch's eager F.selu under ATEN_CPU_CAPABILITY=avx2, in a "
                 "subprocess (torch reads the variable at import)")
        t0, rows = time.perf_counter(), self.avx2_rows
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "avx2.json")
            try:
                proc = subprocess.run(args + ["--json", path], capture_output=True, text=True, env=env)
            except OSError as e:
                self.say(f"  skipped: could not start the subprocess ({e})")
                return
            # A subprocess stopped part way has stored the rows of its finished blocks (checkpoint).
            doc = {"meta": {}, "rows": []}
            if os.path.exists(path):
                with open(path) as f:
                    doc = json.load(f)
        cap = doc["meta"].get("torch_cpu_capability")
        self.say(f"  subprocess torch CPU capability: {cap}")
        for r in doc["rows"]:
            r["impl"], r["role"] = r["impl"] + "[avx2]", "eager_avx2"
            rows[(r["op"], r["mode"], r["dtype"], r["size"], r["threads"])] = r
        rc = proc.returncode
        if rc != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            self.say(f"  the avx2 subprocess failed (rc={rc}); kept {len(rows)} rows. {tail}")
        if cap is not None and str(cap).upper() != "AVX2":
            self.say(f"  note: the subprocess ran with torch CPU capability {cap}, not AVX2")
            for r in rows.values():
                r["note"] = (r.get("note") or "") + f" torch capability {cap}"
        self.meta["avx2_peer"] = {"rc": rc, "torch_cpu_capability": cap, "rows": len(rows),
                                  "seconds": round(time.perf_counter() - t0, 1)}
        self.say(f"  {len(rows)} rows in {time.perf_counter() - t0:.0f} s\n")

    def measure_copy_bandwidth(self) -> None:
        """GB/s (bytes read + bytes written per second) of dst.copy_(src) on float32 buffers."""
        cfg, cuda = self.cfg, self.cfg.device == "cuda"
        nbytes = max(4 * self.meta["cache_bytes"], 32 * 2**20 if cfg.quick else 512 * 2**20 if cuda else 128 * 2**20)
        src = torch.randn(nbytes // 4, device=cfg.device)
        dst = torch.empty_like(src)
        min_time = max(cfg.min_time, 0.05)
        for t in cfg.threads[:1] if cuda else cfg.threads:
            tm = timing.time_calls(lambda: dst.copy_(src), cfg.device, threads=t, min_time=min_time,
                                   max_time=max(min_time, 0.2 if cuda else 1.0), min_samples=20 if cuda else 7)
            gbps = self.meta["copy_gbps"][str(t)] = 2 * nbytes / tm.median / 1e9
            self.say(f"copy bandwidth ({t} thread(s)): {gbps:.1f} GB/s  (dst.copy_(src), {nbytes / 2**20:.0f} MiB "
                     f"each, read + write counted, median {tm.median * 1e3:.3f} ms)")

    def canary(self, label: str) -> None:
        """Time PyTorch's own float32 expm1 (2^16 elements, one thread) between blocks. On the AVX-512 machine
        these results were taken on, eager F.selu (whose cost is expm1) ran ~12x faster in some processes after
        some earlier work than in a fresh one, for reasons outside PyTorch's and selu_ext's code."""
        if self.cfg.device != "cpu":
            return
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        x = torch.randn(2**16, generator=torch.Generator().manual_seed(0))
        torch.expm1(x)
        ms = timing.samples(lambda: torch.expm1(x), 1, "cpu", 5).median * 1e3
        torch.set_num_threads(before)
        self.meta.setdefault("expm1_canary_ms", []).append([label, round(ms, 4)])

    def measure(self) -> None:
        cfg = self.cfg
        if not cfg.emit_rows:  # the F.selu[avx2] rows' share of the copy bandwidth is the parent's
            self.measure_copy_bandwidth()
        self.canary("start")
        print("\n" + report.HEADER, file=self.out)
        if "accuracy" in cfg.modes and "selu" in cfg.ops:
            sweep.run_accuracy(self, cfg.threads[0])
        if "memory" in cfg.modes:
            memory.run(self, cfg.threads[0])
        if "percall" in cfg.modes and "selu" in cfg.ops:
            for threads in cfg.threads:
                self.set_threads(threads)
                impls = self.impls_for("selu")
                for dtype, size in itertools.product(cfg.dtypes, cfg.percall_sizes):
                    if not self.over_budget():
                        sweep.run_point(self, "selu", impls, dtype, size, threads, ("percall",))
        if cfg.per_call:
            percall.run(self)
        if cfg.train:
            train.run(self)
        # dtype, then op, then threads: a run cut short by its budget still has every op in the first dtypes
        # (float32 first), and the thread counts of one op and dtype are measured next to each other, in one
        # state of the process (see canary).
        for dtype, op, threads in itertools.product(cfg.dtypes, cfg.ops, cfg.threads):
            if self.over_budget():
                break
            self.set_threads(threads)  # fresh torch.compile per thread count
            impls = self.impls_for(op)
            print(f"\n{OP_DEFS[op].title}, {dtype}, {threads} thread(s)\n{report.HEADER}", file=self.out)
            for size in cfg.sizes:
                if self.over_budget():
                    break
                sweep.run_point(self, op, impls, dtype, size, threads)
            self.canary(f"after {op} {dtype} {threads}thr")
            self.checkpoint()

    def checkpoint(self):  # a run cut short keeps what it measured
        if self.cfg.json:
            report.fill_speedups(self.rows)
            report.write_json(self.cfg.json, self.meta, self.rows, [], {"partial": True})

    def set_threads(self, threads: int) -> None:
        torch.set_num_threads(threads)
        if self.cfg.compile is False:
            return
        from torch import _dynamo
        from torch._functorch import config as functorch_config
        from torch._inductor import config as inductor_config

        # Inductor's C++ kernels take their thread count at code generation: compile afresh for each count.
        _dynamo.reset()
        _dynamo.config.recompile_limit = 64
        if self.cfg.device == "cpu":
            inductor_config.cpp.threads = threads
        # AOTAutograd may donate saved buffers to the backward, which then refuses retain_graph=True; the
        # backward mode re-runs one graph's backward.
        functorch_config.donated_buffer = False


def run(cfg: Config, out: Optional[TextIO] = None, extra_impls: Optional[dict] = None) -> Result:
    """Run the benchmark; ``extra_impls`` ({op: [Impl, ...]}) adds implementations of your own, checked and
    timed next to the others (before selu_ext)."""
    out = out or sys.stdout
    return Runner(cfg, out, extra_impls).run()
