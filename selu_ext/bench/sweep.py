"""The sweep, one point (op, dtype, size, threads) at a time: inputs, the float64
reference, then per implementation and mode its check and, if it passed, its timing.

    forward   y = f(x), x without grad
    backward  torch.autograd.grad(y, x, g, retain_graph=True) on a prepared graph
    fwdbwd    torch.autograd.grad(f(x), x, g); percall: the same on small tensors, wall clock
    accuracy  selu's float32 forward in ULP of the float64 reference

Inputs are standard normal (the dropout statistics check relies on it) and rotate
through enough copies to overflow the last-level cache (2x the L2 on CUDA).
"""

from __future__ import annotations

import contextlib
import math
import time

import torch

from ..testing import selu_reference, ulp32
from . import checks, memory, timing
from .candidates import DTYPES, OP_DEFS, SWEEP_MODES, Impl, build_impls, keep_mask
from .report import first_line

# Rotation copies at most: 4K float32 elements with their gradient are 32 KB, so 1024 copies cover a 32 MB CPU
# cache, 4096 twice a 50 MB L2.
MAX_BUFFERS = {"cpu": 1024, "cuda": 4096}

_graph_stream = []  # --cuda-graphs: the one stream rows are measured on


def make_inputs(runner, dtype, shape, n_sets):
    """``n_sets`` copies of an input and an incoming gradient, seeded by --seed and size."""
    dev = runner.cfg.device
    gen = torch.Generator(device=dev).manual_seed(runner.cfg.seed * 1_000_003 + math.prod(shape))
    gdt = torch.float64 if dtype == torch.float64 else torch.float32
    x = torch.randn(shape, generator=gen, device=dev, dtype=gdt).to(dtype)
    g = torch.randn(shape, generator=gen, device=dev, dtype=gdt).to(dtype)
    return [x] + [x.clone() for _ in range(n_sets - 1)], [g] + [g.clone() for _ in range(n_sets - 1)]


def run_point(runner, opname, impls, dname, size, threads, modes=SWEEP_MODES) -> None:
    """Every implementation in every mode of ``modes`` the run has; the percall mode on one buffer, the others
    rotating through the cache."""
    cfg = runner.cfg
    dtype, op = DTYPES[dname], OP_DEFS[opname]
    per_set = 2 * size * torch.empty((), dtype=dtype).element_size()
    n = 1 if "percall" in modes else int(min(MAX_BUFFERS[cfg.device],
                                             max(1, math.ceil(2 * runner.meta["cache_bytes"] / per_set))))
    modes = [m for m in modes if m in cfg.modes]
    try:
        xs, gs = make_inputs(runner, dtype, (size,), n)
    except RuntimeError as e:  # out of memory, say
        for mode, impl in ((m, i) for m in modes for i in impls):
            runner.emit(runner.new_row(opname, mode, dname, size, threads, impl,
                                       status="ERROR: inputs: " + first_line(e)))
        return
    known = keep_mask(size, cfg.p, cfg.device) if op.has_dropout else None
    ref = checks.Reference(op, xs[0], gs[0], cfg.p, known)
    for mode in modes:
        runner.emit_avx2(opname, mode, dname, size, threads)
        for impl in impls:
            if mode in impl.modes:
                row = runner.new_row(opname, mode, dname, size, threads, impl, n_buffers=n)
                measure(runner, row, op, impl, mode, xs, gs, ref, threads)
                runner.emit(row)
    del xs, gs, ref
    if cfg.device == "cuda":
        torch.cuda.empty_cache()


@contextlib.contextmanager
def timing_stream(cfg):
    """With --cuda-graphs, a row's whole measurement runs on the one non-default stream its calls are captured
    on: autograd runs each backward op on its forward op's stream (the graphs of the backward mode are built
    here too), and capture cannot use the default stream."""
    if not cfg.cuda_graphs:
        yield
        return
    if not _graph_stream:
        _graph_stream.append(torch.cuda.Stream())
    stream, outer = _graph_stream[0], torch.cuda.current_stream()
    stream.wait_stream(outer)
    try:
        with torch.cuda.stream(stream):
            yield
    finally:
        outer.wait_stream(stream)


def timed(cfg, call, threads, mode, period=1) -> timing.Timing:
    if mode == "percall":  # wall clock, what the calling thread waits for
        return timing.time_interleaved({"": call}, cfg.device, threads=threads, rounds=15, block_s=2e-3,
                                       warmup=20, budget_s=cfg.min_time, max_rounds=200)[""]
    kw = dict(min_time=cfg.min_time, max_time=cfg.max_time,
              min_samples=max(cfg.min_samples, 10) if cfg.device == "cuda" else cfg.min_samples)
    if cfg.cuda_graphs:
        return timing.time_cuda_graph(call, period=period, **kw)
    return timing.time_calls(call, cfg.device, threads=threads, **kw)


def _first_call(runner, fn, mode, xs, gs):
    """Run ``mode`` once (the call that is checked): (y, input gradient, seconds, the timed call that rotates
    through the inputs, its rotation state)."""
    state = {"i": 0}

    def rotating(body):
        def call():
            i = state["i"]
            state["i"] = i + 1 if i + 1 < len(xs) else 0
            return body(i)
        return call

    t0 = time.perf_counter()
    if mode == "forward":
        y, gx = fn(xs[0]), None
        call = rotating(lambda i: fn(xs[i]))
    elif mode == "backward":
        xr = [x.detach().requires_grad_() for x in xs]
        graphs = [fn(x) for x in xr]
        y = graphs[0]
        gx = torch.autograd.grad(y, xr[0], gs[0], retain_graph=True)[0]
        call = rotating(lambda i: torch.autograd.grad(graphs[i], xr[i], gs[i], retain_graph=True))
    else:  # fwdbwd, percall
        xr = [x.detach().requires_grad_() for x in xs]
        y = fn(xr[0])
        gx = torch.autograd.grad(y, xr[0], gs[0])[0]
        call = rotating(lambda i: torch.autograd.grad(fn(xr[i]), xr[i], gs[i]))
    timing.sync(runner.cfg.device)
    return y, gx, time.perf_counter() - t0, call, state


def measure(runner, row, op, impl: Impl, mode, xs, gs, ref, threads) -> None:
    cfg = runner.cfg
    fkey = (row["dtype"], mode != "forward")
    if impl.unavailable or fkey in impl.failures:
        row["status"] = impl.unavailable or impl.failures[fkey]
        return
    try:
        with impl.context(), timing_stream(cfg):
            y, gx, first, call, state = _first_call(runner, impl.fn, mode, xs, gs)
            # With every CPU thread: the float64 reference is the slow part of a row at large sizes.
            before = torch.get_num_threads()
            torch.set_num_threads(max(cfg.threads + [before]) if cfg.device == "cpu" else before)
            try:
                chk = checks.check(ref, y, gx, impl.random)
            finally:
                torch.set_num_threads(before)
            del y, gx
            row["check"], row["max_err"] = chk.kind, chk.max_err
            if impl.role == "compile" and first > 0.5:
                row["note"] = f"first call {first:.1f} s (compile)"
            if not chk.ok:
                row["status"] = "WRONG"
                row["note"] = (row["note"] + "; " if row["note"] else "") + chk.detail
                return
            if mode == "percall":
                row.update(timed(cfg, call, threads, mode).fields(),
                           note="wall clock per call, forward+backward with autograd")
                return
            key = (impl.name, row["dtype"], row["size"], row["threads"])
            if key not in runner.saved_cache:
                xr, runner.saved_cache[key] = xs[0].detach().requires_grad_(), None
                with contextlib.suppress(Exception):
                    runner.saved_cache[key] = memory.saved_bytes(lambda: impl.fn(xr))
            row["saved_bytes"] = runner.saved_cache[key]
            tm = timed(cfg, call, threads, mode, period=len(xs))
            nbytes = op.passes[mode] * xs[0].numel() * xs[0].element_size()
            row.update(tm.fields(), gbps=nbytes / tm.median / 1e9)
            state["i"] = 0
            row["peak_mem"] = memory.peak_memory(call, cfg.device)
    except timing.GraphCaptureError as e:
        row["status"] = "ERROR: " + str(e).splitlines()[0][:200]
    except Exception as e:
        if impl.role != "compile":
            row["status"] = "ERROR: " + first_line(e)
            return
        impl.failures[fkey] = row["status"] = "compile unavailable: " + first_line(e)


def run_accuracy(runner, threads) -> None:
    """selu's float32 forward over linspace(-100, 100, 1e6) and +-logspace(-30, 2, 1e5) (tiny arguments, where
    expm1(x) ~ x), in ULP of the float64 reference, for F.selu, selu_ext and each of selu_ext's CPU kernel
    variants."""
    cfg = runner.cfg
    torch.set_num_threads(threads)
    log = torch.logspace(-30, 2, 100_000, dtype=torch.float64)
    x = torch.cat([torch.linspace(-100, 100, 1_000_000, dtype=torch.float64), log, -log,
                   torch.zeros(1, dtype=torch.float64)]).to(device=cfg.device, dtype=torch.float32)
    ref = selu_reference(x)
    impls = [i for i in build_impls("selu", cfg.device, cfg.p, compile_mode="skipped",
                                    cpu_variants=cfg.device == "cpu")
             if i.role in ("eager", "ext") or (i.role == "ext_variant" and "forward" in i.modes)]
    runner.emit_avx2("selu", "accuracy", "float32", x.numel(), threads)
    for impl in impls + runner.extra_impls.get("selu", []):
        if not runner.wanted(impl):
            continue
        with runner.measuring(runner.new_row("selu", "accuracy", "float32", x.numel(), threads, impl)) as row:
            with impl.context():
                y = impl.fn(x)
            err = ((y.to(torch.float64) - ref).abs() / ulp32(ref)).nan_to_num(nan=math.inf)
            i = int(torch.argmax(err))
            row["max_ulp"], row["check"] = float(err[i]), "ulp-sweep"
            row["note"] = (f"max at x={float(x[i]):.7g}; sweep linspace(-100,100,1e6) and "
                           f"+-logspace(-30,2,1e5)")
