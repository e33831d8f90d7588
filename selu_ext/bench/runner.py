"""The benchmark loop: for each thread count, op, dtype, size and mode, check every
implementation against the float64 reference, then time the ones that passed, and
store one row per (op, mode, dtype, size, device, threads, impl).

    forward   y = f(x)                                x without grad
    backward  torch.autograd.grad(y, x, g, retain_graph=True) on a prepared graph
              (only the backward runs), g dense
    fwdbwd    torch.autograd.grad(f(x), x, g)
    percall   fwdbwd of small tensors (4K-64K), wall clock per call, no rotation
    accuracy  float32 max error in ULP over a sweep (selu)
    memory    bytes kept for backward in Linear -> act -> Linear beyond the Linears

Inputs are standard normal (both SELU branches; the statistics check of the dropout
peers relies on it) and rotate through enough copies to overflow the last-level
cache (2x the L2 on CUDA), so no call finds its input in cache from the previous one.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Optional, TextIO

import torch

import selu_ext

from . import checks, memory, percall, report, targets, timing, train
from .candidates import (DTYPES, MODES, OP_DEFS, SWEEP_MODES, Impl, build_impls,
                         compile_unavailable_reason, keep_mask)

# Rotation copies at most: 4K float32 elements with their gradient are 32 KB, so
# 1024 copies cover a 32 MB CPU cache, 4096 twice a 50 MB L2.
MAX_BUFFERS = {"cpu": 1024, "cuda": 4096}


@dataclass
class Config:
    device: str = "cpu"
    ops: list = field(default_factory=lambda: ["selu", "fused", "dropout"])
    modes: list = field(default_factory=lambda: list(MODES))
    dtypes: list = field(default_factory=lambda: list(DTYPES))
    sizes: list = field(default_factory=list)
    percall_sizes: list = field(default_factory=lambda: [4096, 16384, 65536])
    threads: list = field(default_factory=lambda: [1])
    p: float = 0.1
    compile: Optional[bool] = None  # None: on, except --quick on CPU
    avx2_peer: bool = True
    cpu_variants: bool = False
    impls: Optional[list] = None  # keep only these names or roles
    min_time: float = 0.1
    max_time: float = 2.0
    min_samples: int = 7
    rotate: bool = True  # rotate inputs through >= 2x the last-level cache
    budget: Optional[float] = None  # seconds; rows after it are skipped
    quick: bool = False
    seed: int = 0
    json: Optional[str] = None
    csv: Optional[str] = None
    plot: Optional[str] = None
    cuda_graphs: bool = False  # CUDA: time replays of captured graphs (GPU time only)
    emit_rows: bool = False  # internal: print rows as JSON lines (the avx2 peer subprocess)
    per_call: bool = False  # per-call rows of every function and module (percall.py)
    train: bool = False  # the training-step rows (train.py)
    train_models: list = field(default_factory=lambda: list(train.MODELS))
    train_batches: Optional[list] = None  # None: train.BATCHES (--quick: QUICK_BATCHES)
    train_compile: bool = True  # the torch.compile variants of the training step
    command: str = ""


@dataclass
class Result:
    meta: dict
    rows: list
    targets: list
    plot_ok: bool = True


def _first_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0][:200] if msg else ''}"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect_meta(cfg: Config) -> dict:
    info = selu_ext.build_info()
    try:
        torch_cap = torch.backends.cpu.get_cpu_capability()
    except Exception:  # pragma: no cover - older torch
        torch_cap = "unknown"
    triton_version = None
    try:
        import importlib.metadata as md
        triton_version = md.version("triton")
    except Exception:
        pass
    if cfg.device == "cuda":
        dev_name = torch.cuda.get_device_name(torch.cuda.current_device())
    else:
        dev_name = _cpu_name()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": cfg.command,
        "device": cfg.device,
        "device_name": dev_name,
        "torch_version": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "triton_version": triton_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "version": selu_ext.__version__,
        "build_info": info,
        "torch_cpu_capability": torch_cap,
        "selu_ext_cpu_capability": info.get("cpu_capability"),
        "threads": list(cfg.threads),
        "cpu_count": os.cpu_count(),
        "p": cfg.p,
        "seed": cfg.seed,
        "ops": list(cfg.ops), "modes": list(cfg.modes), "dtypes": list(cfg.dtypes),
        "sizes": list(cfg.sizes), "percall_sizes": list(cfg.percall_sizes),
        "quick": cfg.quick,
        "rotate": cfg.rotate,
        "timing": "cuda-graph" if cfg.cuda_graphs else "launched",
        "cache_bytes": timing.cache_bytes(cfg.device),
        "copy_gbps": {},
    }


class Runner:
    def __init__(self, cfg: Config, out: TextIO, extra_impls: Optional[dict] = None):
        self.cfg = cfg
        self.out = out
        self.extra_impls = extra_impls or {}
        self.rows: list[dict] = []
        self.meta = collect_meta(cfg)
        self.copy_gbps: dict = {}
        self.t_start = time.perf_counter()
        self.budget_hit = False
        self.avx2_rows: dict = {}
        self.saved_cache: dict = {}
        self.graph_stream = None  # --cuda-graphs: the stream rows are measured on

    # -- helpers -------------------------------------------------------------
    def emit(self, row: dict, show: bool = True) -> None:
        """Store a row (``show``: and print it as a line of the table; the per-call and
        training-step parts print their own)."""
        self.rows.append(row)
        report.fill_speedups(self._group(row))
        if self.cfg.emit_rows:
            print("@row " + json.dumps(row, default=str), file=self.out)
        if show:
            print(report.format_row(row), file=self.out)
        self.out.flush()

    def _group(self, row):
        k = (row["op"], row["mode"], row["dtype"], row["size"], row.get("threads"))
        return [r for r in self.rows[-64:] if (r["op"], r["mode"], r["dtype"], r["size"], r.get("threads")) == k]

    def new_row(self, op, mode, dtype, size, threads, impl: Impl) -> dict:
        r = {k: None for k in report.ROW_FIELDS}
        r.update(op=op, mode=mode, dtype=dtype, size=size, device=self.cfg.device, threads=threads,
                 impl=impl.name, role=impl.role, status="ok", check="", note="",
                 version=selu_ext.__version__, torch_version=torch.__version__)
        return r

    def over_budget(self) -> bool:
        if self.cfg.budget is None or self.budget_hit:
            return self.budget_hit
        if time.perf_counter() - self.t_start > self.cfg.budget:
            self.budget_hit = True
            print(f"\n*** time budget of {self.cfg.budget:.0f} s used up: the remaining rows are "
                  "skipped ***\n", file=self.out)
            self.meta["budget_hit"] = True
        return self.budget_hit

    def wanted(self, impl: Impl) -> bool:
        if not self.cfg.impls:
            return True
        return impl.role in self.cfg.impls or impl.name in self.cfg.impls

    def impls_for(self, op: str) -> list[Impl]:
        cfg = self.cfg
        if cfg.compile is False:
            cmode = "compile skipped (--no-compile" + (", --quick on CPU)" if cfg.quick else ")")
        else:
            cmode = compile_unavailable_reason(cfg.device)
            if cmode:
                cmode = "compile unavailable: " + cmode
        impls = build_impls(op, cfg.device, cfg.p, compile_mode=cmode, cpu_variants=cfg.cpu_variants)
        for e in self.extra_impls.get(op, []):
            impls.insert(len(impls) - 1, e)
        if cfg.device == "cpu" and self.avx2_rows:
            impls.insert(1, Impl(impls[0].name + "[avx2]", "eager_avx2", None, modes=tuple(MODES)))
        return [i for i in impls if self.wanted(i)]

    def sync(self):
        timing.sync(self.cfg.device)

    @contextlib.contextmanager
    def timing_stream(self):
        """With --cuda-graphs, a row's whole measurement (autograd graphs built for the
        backward mode included) runs on one non-default stream, the one its calls are
        captured on: autograd runs each backward op on its forward op's stream, and
        capture cannot use the default stream."""
        if not (self.cfg.device == "cuda" and self.cfg.cuda_graphs):
            yield
            return
        if self.graph_stream is None:
            self.graph_stream = torch.cuda.Stream()
        outer = torch.cuda.current_stream()
        self.graph_stream.wait_stream(outer)
        try:
            with torch.cuda.stream(self.graph_stream):
                yield
        finally:
            outer.wait_stream(self.graph_stream)

    def timed(self, call, threads, period=1):
        cfg = self.cfg
        if cfg.device == "cuda" and cfg.cuda_graphs:
            return timing.time_cuda_graph(call, period=period, min_time=cfg.min_time,
                                          max_time=cfg.max_time,
                                          min_samples=max(cfg.min_samples, 10))
        if cfg.device == "cuda":
            return timing.time_cuda(call, min_time=cfg.min_time, max_time=cfg.max_time,
                                    min_samples=max(cfg.min_samples, 10))
        return timing.time_cpu(call, threads=threads, min_time=cfg.min_time, max_time=cfg.max_time,
                               min_samples=cfg.min_samples)

    # -- the run -------------------------------------------------------------
    def run(self) -> Result:
        cfg = self.cfg
        if not cfg.emit_rows:
            report.print_header(self.meta, self.out)
        if cfg.device == "cpu" and cfg.avx2_peer and not cfg.emit_rows:
            self.run_avx2_peer()
        try:
            self.measure_copy_bandwidth()
            self.canary("start")
            print("\n" + report.HEADER, file=self.out)
            if "accuracy" in cfg.modes and "selu" in cfg.ops:
                self.run_accuracy(cfg.threads[0])
            if "memory" in cfg.modes and not cfg.emit_rows:
                self.run_memory(cfg.threads[0])
            if "percall" in cfg.modes and "selu" in cfg.ops:
                for threads in cfg.threads:
                    self.set_threads(threads)
                    self.run_percall(self.impls_for("selu"), threads)
            if cfg.per_call:
                percall.run(self)
            if cfg.train:
                train.run(self)
            # dtype, then op, then threads: a run cut short by its budget still has
            # every op in the first dtypes (float32 first), and the thread counts of
            # one op and dtype are measured next to each other, in the same state of
            # the process (see canary).
            for dtype in cfg.dtypes:
                for op in cfg.ops:
                    for threads in cfg.threads:
                        if self.over_budget():
                            break
                        self.set_threads(threads)  # fresh torch.compile per thread count
                        impls = self.impls_for(op)
                        print(f"\n{OP_DEFS[op].title}, {dtype}, {threads} thread(s)\n{report.HEADER}",
                              file=self.out)
                        for size in cfg.sizes:
                            if self.over_budget():
                                break
                            self.run_sweep_point(op, impls, dtype, size, threads)
                        self.canary(f"after {op} {dtype} {threads}thr")
                        self.checkpoint()
        except KeyboardInterrupt:
            print("\ninterrupted: writing what was measured", file=self.out)
            self.meta["interrupted"] = True
        except Exception as e:  # a bug here should not lose the rows measured so far
            import traceback

            traceback.print_exc(file=self.out)
            self.meta["error"] = _first_line(e)
        self.canary_verdict()
        report.fill_speedups(self.rows)
        tg = targets.evaluate(self.rows, self.meta) if not cfg.emit_rows else []
        if not cfg.emit_rows:
            report.print_targets(tg, self.out)
        self.meta["elapsed_s"] = round(time.perf_counter() - self.t_start, 1)
        res = Result(self.meta, self.rows, tg)
        self.write(res)
        if not cfg.emit_rows:
            print(report.answer(self.rows, self.meta), file=self.out)
            self.out.flush()
        if "error" in self.meta:
            raise SystemExit(f"selu_ext.bench: stopped by an error ({self.meta['error']}); "
                             "the rows measured before it were written")
        return res

    def canary(self, label: str) -> None:
        """Time PyTorch's own float32 expm1 (2^16 elements, one thread) between
        blocks. On the AVX-512 machine these results were taken on, eager F.selu
        (whose cost is expm1) ran ~12x faster in some processes after some earlier
        work than in a fresh one, for reasons outside PyTorch's and selu_ext's code;
        the canary shows whether the eager peers ran in one state throughout."""
        if self.cfg.device != "cpu":
            return
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        x = torch.randn(2**16, generator=torch.Generator().manual_seed(0))
        torch.expm1(x)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            torch.expm1(x)
            times.append(time.perf_counter() - t0)
        torch.set_num_threads(before)
        self.meta.setdefault("expm1_canary_ms", []).append([label, round(timing.quantile(times, 0.5) * 1e3, 4)])

    def canary_verdict(self) -> None:
        c = [ms for _, ms in self.meta.get("expm1_canary_ms", [])]
        if len(c) >= 2 and max(c) > 3 * min(c):
            msg = (f"PyTorch's expm1 ran at different speeds during this run ({min(c):.3f} to "
                   f"{max(c):.3f} ms for 2^16 float32 elements; see meta.expm1_canary_ms): the "
                   "eager F.selu rows of different blocks are not comparable with each other")
            self.meta["canary_warning"] = msg
            print(f"\nWARNING: {msg}", file=self.out)

    def checkpoint(self):
        """Write the JSON so far: a run cut short keeps what it measured."""
        if self.cfg.json:
            report.fill_speedups(self.rows)
            report.write_json(self.cfg.json, self.meta, self.rows, [], {"partial": True})

    def write(self, res: Result) -> None:
        cfg = self.cfg
        if cfg.json:
            report.write_json(cfg.json, res.meta, res.rows, res.targets, {})
            print(f"JSON written to {cfg.json}", file=self.out)
        if cfg.csv:
            report.write_csv(cfg.csv, res.meta, res.rows)
            print(f"CSV written to {cfg.csv}", file=self.out)
        if cfg.plot:
            res.plot_ok = report.plot(cfg.plot, res.rows, res.meta, self.out)
        print(f"done in {res.meta['elapsed_s']:.0f} s", file=self.out)
        self.out.flush()

    def set_threads(self, threads: int) -> None:
        torch.set_num_threads(threads)
        if self.cfg.compile is False:
            return
        # Inductor's C++ kernels take their thread count at code generation: compile
        # afresh for each thread count.
        try:
            from torch import _dynamo

            _dynamo.reset()
            for name in ("recompile_limit", "cache_size_limit"):
                if hasattr(_dynamo.config, name):
                    setattr(_dynamo.config, name, 64)
            if self.cfg.device == "cpu":
                from torch._inductor import config as ic

                ic.cpp.threads = threads
        except Exception:
            pass
        try:
            # AOTAutograd may donate saved buffers to the backward, which then refuses
            # retain_graph=True; the backward mode re-runs one graph's backward.
            from torch._functorch import config as fc

            fc.donated_buffer = False
        except Exception:
            pass

    def measure_copy_bandwidth(self) -> None:
        cfg = self.cfg
        if cfg.emit_rows:
            return
        cache = self.meta["cache_bytes"]
        nbytes = max(4 * cache, 128 * 2**20 if cfg.device == "cpu" else 512 * 2**20)
        if cfg.quick:
            nbytes = max(4 * cache, 32 * 2**20)
        ths = cfg.threads if cfg.device == "cpu" else [cfg.threads[0]]
        for t in ths:
            gbps, tm = timing.copy_bandwidth(cfg.device, threads=t, nbytes=nbytes,
                                             min_time=max(cfg.min_time, 0.05))
            self.copy_gbps[t] = gbps
            self.meta["copy_gbps"][str(t)] = gbps
            print(f"copy bandwidth ({t} thread(s)): {gbps:.1f} GB/s  (dst.copy_(src), "
                  f"{nbytes / 2**20:.0f} MiB each, read + write counted, median {tm.median * 1e3:.3f} ms)",
                  file=self.out)
        self.out.flush()

    # -- sweep ---------------------------------------------------------------
    def make_inputs(self, dtype, size, n_sets):
        dev = self.cfg.device
        gen = torch.Generator(device=dev).manual_seed(self.cfg.seed * 1_000_003 + size)
        gdt = torch.float64 if dtype == torch.float64 else torch.float32
        x = torch.randn(size, generator=gen, device=dev, dtype=gdt).to(dtype)
        g = torch.randn(size, generator=gen, device=dev, dtype=gdt).to(dtype)
        xs = [x] + [x.clone() for _ in range(n_sets - 1)]
        gs = [g] + [g.clone() for _ in range(n_sets - 1)]
        return xs, gs

    def n_sets(self, size, dtype) -> int:
        if not self.cfg.rotate:
            return 1
        per_set = 2 * size * torch.empty((), dtype=dtype).element_size()
        return int(min(MAX_BUFFERS[self.cfg.device], max(1, math.ceil(2 * self.meta["cache_bytes"] / per_set))))

    def run_sweep_point(self, opname, impls, dname, size, threads):
        cfg = self.cfg
        dtype = DTYPES[dname]
        op = OP_DEFS[opname]
        n_sets = self.n_sets(size, dtype)
        try:
            xs, gs = self.make_inputs(dtype, size, n_sets)
        except RuntimeError as e:  # out of memory, say
            for mode in cfg.modes:
                if mode in SWEEP_MODES:
                    for impl in impls:
                        r = self.new_row(opname, mode, dname, size, threads, impl)
                        r["status"] = "ERROR: inputs: " + _first_line(e)
                        self.emit(r)
            return
        known = keep_mask(size, cfg.p, cfg.device) if op.has_dropout else None
        ref = checks.Reference(op, xs[0], gs[0], cfg.p, known)
        for mode in SWEEP_MODES:
            if mode not in cfg.modes:
                continue
            for impl in impls:
                if mode not in impl.modes:
                    continue
                if impl.role == "eager_avx2":
                    self.emit_avx2(opname, mode, dname, size, threads)
                    continue
                row = self.new_row(opname, mode, dname, size, threads, impl)
                row["n_buffers"] = n_sets
                self.measure(row, op, impl, mode, xs, gs, ref, threads)
                self.emit(row)
        del xs, gs, ref
        if cfg.device == "cuda":
            torch.cuda.empty_cache()

    def check(self, ref, y, gx, random) -> checks.Check:
        """checks.check with every CPU thread (the float64 reference is the slow part
        of a row at large sizes); the timing sets its own thread count."""
        if self.cfg.device == "cpu":
            before = torch.get_num_threads()
            torch.set_num_threads(max(self.cfg.threads + [before]))
            try:
                return checks.check(ref, y, gx, random)
            finally:
                torch.set_num_threads(before)
        return checks.check(ref, y, gx, random)

    def measure(self, row, op, impl: Impl, mode, xs, gs, ref, threads) -> None:
        cfg = self.cfg
        if impl.unavailable:
            row["status"] = impl.unavailable
            return
        fkey = (row["dtype"], mode != "forward")
        if fkey in impl.failures:
            row["status"] = impl.failures[fkey]
            return
        n = len(xs)
        state = {"i": 0}

        def rotating(body):
            def call():
                i = state["i"]
                state["i"] = i + 1 if i + 1 < n else 0
                return body(i)
            return call

        fn = impl.fn
        try:
            with impl.context(), self.timing_stream():
                t0 = time.perf_counter()
                if mode == "forward":
                    y = fn(xs[0])
                    self.sync()
                    first = time.perf_counter() - t0
                    chk = self.check(ref, y, None, impl.random)
                    del y
                    call = rotating(lambda i: fn(xs[i]))
                elif mode == "backward":
                    xr = [x.detach().requires_grad_() for x in xs]
                    graphs = [fn(x) for x in xr]
                    gx = torch.autograd.grad(graphs[0], xr[0], gs[0], retain_graph=True)[0]
                    self.sync()
                    first = time.perf_counter() - t0
                    chk = self.check(ref, graphs[0], gx, impl.random)
                    del gx
                    call = rotating(lambda i: torch.autograd.grad(graphs[i], xr[i], gs[i],
                                                                  retain_graph=True))
                else:  # fwdbwd
                    xr = [x.detach().requires_grad_() for x in xs]
                    y = fn(xr[0])
                    gx = torch.autograd.grad(y, xr[0], gs[0])[0]
                    self.sync()
                    first = time.perf_counter() - t0
                    chk = self.check(ref, y, gx, impl.random)
                    del y, gx
                    call = rotating(lambda i: torch.autograd.grad(fn(xr[i]), xr[i], gs[i]))
                row["check"] = chk.kind
                row["max_err"] = chk.max_err
                if impl.compiled and first > 0.5:
                    row["note"] = f"first call {first:.1f} s (compile)"
                if not chk.ok:
                    row["status"] = "WRONG"
                    row["note"] = (row["note"] + "; " if row["note"] else "") + chk.detail
                    return
                self.fill_saved(row, impl, xs[0])
                tm = self.timed(call, threads, period=n)
                self.fill_timing(row, tm, op.passes[mode] * xs[0].numel() * xs[0].element_size(), threads)
                state["i"] = 0
                row["peak_mem"] = memory.peak_memory(call, cfg.device)
        except timing.GraphCaptureError as e:
            row["status"] = "ERROR: " + str(e).splitlines()[0][:200]
        except Exception as e:
            if impl.compiled:
                reason = "compile unavailable: " + _first_line(e)
                impl.failures[fkey] = reason
                row["status"] = reason
            else:
                row["status"] = "ERROR: " + _first_line(e)

    def fill_saved(self, row, impl: Impl, x) -> None:
        key = (impl.name, row["dtype"], row["size"], row["threads"])
        if key not in self.saved_cache:
            try:
                xr = x.detach().requires_grad_()
                self.saved_cache[key] = memory.saved_bytes(lambda: impl.fn(xr))
            except Exception:
                self.saved_cache[key] = None
        row["saved_bytes"] = self.saved_cache[key]

    def fill_timing(self, row, tm: timing.Timing, nbytes: Optional[int], threads) -> None:
        row["median_ms"] = tm.median * 1e3
        row["p20_ms"] = tm.p20 * 1e3
        row["p80_ms"] = tm.p80 * 1e3
        row["samples"] = len(tm.times)
        row["calls_per_sample"] = tm.calls_per_sample
        if nbytes:
            row["gbps"] = nbytes / tm.median / 1e9
            copy = self.copy_gbps.get(threads) or (next(iter(self.copy_gbps.values()))
                                                   if self.copy_gbps else None)
            if copy:
                row["pct_copy_bw"] = 100 * row["gbps"] / copy

    # -- per-call, accuracy, memory -----------------------------------------------
    def run_percall(self, impls, threads) -> None:
        cfg = self.cfg
        op = OP_DEFS["selu"]
        for dname in cfg.dtypes:
            dtype = DTYPES[dname]
            for size in cfg.percall_sizes:
                if self.over_budget():
                    return
                xs, gs = self.make_inputs(dtype, size, 1)
                x = xs[0].detach().requires_grad_()
                g = gs[0]
                ref = checks.Reference(op, xs[0], g, cfg.p, None)
                for impl in impls:
                    if "percall" not in impl.modes:
                        continue
                    if impl.role == "eager_avx2":
                        self.emit_avx2("selu", "percall", dname, size, threads)
                        continue
                    row = self.new_row("selu", "percall", dname, size, threads, impl)
                    row["n_buffers"] = 1
                    if impl.unavailable:
                        row["status"] = impl.unavailable
                        self.emit(row)
                        continue
                    fn = impl.fn
                    try:
                        with impl.context():
                            y = fn(x)
                            gx = torch.autograd.grad(y, x, g)[0]
                            chk = self.check(ref, y, gx, False)
                            row["check"], row["max_err"] = chk.kind, chk.max_err
                            if not chk.ok:
                                row["status"], row["note"] = "WRONG", chk.detail
                            else:
                                tm = timing.time_wall(lambda: torch.autograd.grad(fn(x), x, g),
                                                      cfg.device, threads=threads,
                                                      min_time=cfg.min_time)
                                self.fill_timing(row, tm, None, threads)
                                row["note"] = "wall clock per call, forward+backward with autograd"
                    except Exception as e:
                        row["status"] = "ERROR: " + _first_line(e)
                    self.emit(row)

    def run_accuracy(self, threads) -> None:
        cfg = self.cfg
        torch.set_num_threads(threads)
        x = checks.accuracy_sweep(cfg.device)
        impls = [i for i in build_impls("selu", cfg.device, cfg.p, compile_mode="skipped",
                                        cpu_variants=cfg.device == "cpu")
                 if i.role in ("eager", "ext") or (i.role == "ext_variant" and "forward" in i.modes)]
        impls += self.extra_impls.get("selu", [])
        if cfg.device == "cpu" and self.avx2_rows:
            impls.insert(1, Impl("F.selu[avx2]", "eager_avx2", None))
        for impl in impls:
            if not self.wanted(impl):
                continue
            if impl.role == "eager_avx2":
                self.emit_avx2("selu", "accuracy", "float32", x.numel(), threads)
                continue
            row = self.new_row("selu", "accuracy", "float32", x.numel(), threads, impl)
            try:
                with impl.context():
                    y = impl.fn(x)
                ulp, at = checks.max_ulp_error(y, x)
                row["max_ulp"] = ulp
                row["check"] = "ulp-sweep"
                row["note"] = (f"max at x={at:.7g}; sweep linspace(-100,100,1e6) and "
                               f"+-logspace(-30,2,1e5)")
            except Exception as e:
                row["status"] = "ERROR: " + _first_line(e)
            self.emit(row)

    def run_memory(self, threads) -> None:
        cfg = self.cfg
        batch, width = (64, 256) if cfg.quick else (256, 1024)
        for name, (op, role, factory) in memory.memory_activations(cfg.p).items():
            if op not in cfg.ops:
                continue
            impl = Impl(name, role, None)
            if not self.wanted(impl):
                continue
            row = self.new_row(op, "memory", "float32", batch * width, threads, impl)
            try:
                extra, total = memory.kept_beyond_linear(factory(), batch=batch, width=width,
                                                         device=cfg.device)
                row["saved_bytes"] = extra
                row["check"] = "saved_tensors_hooks"
                row["note"] = (f"Linear({width},{width}) -> act -> Linear, batch {batch}: kept "
                               f"beyond Linear -> Identity -> Linear (total {total} B)")
            except Exception as e:
                row["status"] = "ERROR: " + _first_line(e)
            self.emit(row)

    # -- the avx2 peer ---------------------------------------------------------
    def run_avx2_peer(self) -> None:
        """Eager F.selu with PyTorch's AVX2 kernels: the
        capability is read when torch is imported, so it runs in a subprocess with
        ATEN_CPU_CAPABILITY=avx2, through this same harness."""
        cfg = self.cfg
        # F.selu only: the fused eager peer runs the same F.selu plus a dropout that
        # does not depend on the capability, at several times the cost.
        ops_ = [o for o in cfg.ops if o == "selu"]
        modes = [m for m in cfg.modes if m in SWEEP_MODES + ("percall", "accuracy")]
        if not ops_ or not modes:
            return
        if cfg.impls and not ({"eager_avx2", "F.selu[avx2]"} & set(cfg.impls)):
            return
        if str(self.meta.get("torch_cpu_capability")).upper() == "AVX2":
            # The peer would time eager F.selu again, on the same kernels.
            print("\nF.selu[avx2]: skipped, torch already uses its AVX2 kernels here", file=self.out)
            self.meta["avx2_peer"] = {"skipped": "torch CPU capability is already AVX2"}
            return
        args = [sys.executable, "-m", "selu_ext.bench", "--device", "cpu", "--ops", ",".join(ops_),
                "--modes", ",".join(modes), "--dtypes", ",".join(cfg.dtypes),
                "--sizes", ",".join(map(str, cfg.sizes)),
                "--percall-sizes", ",".join(map(str, cfg.percall_sizes)),
                "--threads", *map(str, cfg.threads), "--impls", "eager", "--no-compile",
                "--no-avx2-peer", "--emit-rows", "--p", repr(cfg.p), "--seed", str(cfg.seed),
                "--min-time", repr(cfg.min_time), "--max-time", repr(cfg.max_time),
                "--min-samples", str(cfg.min_samples)] + ([] if cfg.rotate else ["--no-rotate"])
        env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2")
        root = os.path.dirname(os.path.dirname(os.path.abspath(selu_ext.__file__)))
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        print("\nF.selu[avx2]: PyTorch's eager F.selu under ATEN_CPU_CAPABILITY=avx2, in a "
              "subprocess (torch reads the variable at import)", file=self.out)
        self.out.flush()
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=env)
        except OSError as e:
            print(f"  skipped: could not start the subprocess ({e})", file=self.out)
            return
        cap = None
        for line in proc.stdout:
            if line.startswith("@meta "):
                cap = json.loads(line[6:]).get("torch_cpu_capability")
                print(f"  subprocess torch CPU capability: {cap}", file=self.out)
            elif line.startswith("@row "):
                r = json.loads(line[5:])
                r["impl"] = r["impl"] + "[avx2]"
                r["role"] = "eager_avx2"
                key = (r["op"], r["mode"], r["dtype"], r["size"], r["threads"])
                self.avx2_rows[key] = r
                ms = f"{r['median_ms']:.4f} ms" if r.get("median_ms") is not None else (
                    f"{r['max_ulp']:.2f} ULP" if r.get("max_ulp") is not None else r["status"])
                print(f"  [avx2] {r['op']} {r['mode']} {r['dtype']} {report.size_str(r['size'])} "
                      f"{r['threads']}thr {r['impl']}: {ms}", file=self.out)
                self.out.flush()
        rc = proc.wait()
        err = proc.stderr.read()
        if rc != 0:
            tail = " | ".join(err.strip().splitlines()[-3:])
            print(f"  the avx2 subprocess failed (rc={rc}); kept {len(self.avx2_rows)} rows. {tail}",
                  file=self.out)
        if cap is not None and str(cap).upper() != "AVX2":
            print(f"  note: the subprocess ran with torch CPU capability {cap}, not AVX2", file=self.out)
            for r in self.avx2_rows.values():
                r["note"] = (r.get("note") or "") + f" torch capability {cap}"
        self.meta["avx2_peer"] = {"rc": rc, "torch_cpu_capability": cap, "rows": len(self.avx2_rows),
                                  "seconds": round(time.perf_counter() - t0, 1)}
        print(f"  {len(self.avx2_rows)} rows in {time.perf_counter() - t0:.0f} s\n", file=self.out)
        self.out.flush()

    def emit_avx2(self, op, mode, dname, size, threads) -> None:
        r = self.avx2_rows.get((op, mode, dname, size, threads))
        if r is None:
            return
        r = dict(r)
        if r.get("gbps") and self.copy_gbps.get(threads):
            r["pct_copy_bw"] = 100 * r["gbps"] / self.copy_gbps[threads]
        self.emit(r)


def run(cfg: Config, out: Optional[TextIO] = None, extra_impls: Optional[dict] = None) -> Result:
    """Run the benchmark; ``extra_impls`` ({op: [Impl, ...]}) adds implementations
    of your own, checked and timed next to the others (before selu_ext)."""
    out = out or sys.stdout
    runner = Runner(cfg, out, extra_impls)
    if cfg.emit_rows:
        print("@meta " + json.dumps({"torch_cpu_capability": runner.meta["torch_cpu_capability"]}),
              file=out)
    return runner.run()


def command_line(argv) -> str:
    return "python -m selu_ext.bench " + " ".join(shlex.quote(a) for a in argv)


__all__ = ["Config", "Result", "Runner", "run", "command_line"]
