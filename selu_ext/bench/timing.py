"""Timers. Every timer returns a Timing: per-call times in seconds (one per sample),
summarized as the median with the 20th and 80th percentiles.

CUDA: CUDA events around blocks of back-to-back calls, all events read after one
final synchronize (the CPU runs ahead, so launch latency hides wherever the GPU is
the bottleneck, as in a real model); with --cuda-graphs, events around replays of
a captured graph of calls instead (GPU time only, no host cost). CPU: time.perf_counter around blocks of
back-to-back calls of >= 1 ms, with the thread count set (see time_cpu for why not
blocked_autorange). Per-call time of small tensors: wall clock over many calls
(the CPU-bound regime, where per-call overhead is what a user pays), alone or
interleaved with its peers (time_interleaved).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch


def quantile(values, q: float) -> float:
    """Linear-interpolation quantile (numpy's default) without numpy."""
    v = sorted(values)
    if not v:
        return math.nan
    pos = (len(v) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


@dataclass
class Timing:
    times: list  # seconds per call, one entry per sample
    calls_per_sample: int = 1

    @property
    def median(self) -> float:
        return quantile(self.times, 0.5)

    @property
    def p20(self) -> float:
        return quantile(self.times, 0.2)

    @property
    def p80(self) -> float:
        return quantile(self.times, 0.8)

    def fields(self) -> dict:
        """The row fields of this timing."""
        return {"median_ms": self.median * 1e3, "p20_ms": self.p20 * 1e3, "p80_ms": self.p80 * 1e3,
                "samples": len(self.times), "calls_per_sample": self.calls_per_sample}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_cuda(call: Callable[[], object], *, min_time: float, max_time: float,
              min_samples: int = 10, max_samples: int = 200, warmup: int = 3) -> Timing:
    """Median per-call GPU time of ``call`` (which rotates its own inputs)."""
    for _ in range(warmup):
        call()
    torch.cuda.synchronize()
    # Estimate one call, then size the samples: each sample at least ~0.1 ms of
    # work (event resolution is ~0.5 us), as many samples as min_time allows.
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    n_est = 3
    start.record()
    for _ in range(n_est):
        call()
    end.record()
    end.synchronize()
    est = max(start.elapsed_time(end) / 1e3 / n_est, 1e-7)
    per_sample = max(1, min(1000, int(math.ceil(1e-4 / est))))
    samples = int(min(max_samples, max(min_samples, min_time / (est * per_sample))))
    samples = max(min(samples, int(max_time / (est * per_sample))), 3)
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(samples)]
    for s, e in events:
        s.record()
        for _ in range(per_sample):
            call()
        e.record()
    torch.cuda.synchronize()
    return Timing([s.elapsed_time(e) / 1e3 / per_sample for s, e in events], per_sample)


class GraphCaptureError(RuntimeError):
    """A candidate's calls could not be captured into a CUDA graph (the row says so;
    it is not a failure of the candidate itself)."""


def time_cuda_graph(call: Callable[[], object], *, period: int, min_time: float,
                    max_time: float, min_samples: int = 10, max_samples: int = 200,
                    warmup: int = 3, max_calls: int = 512) -> Timing:
    """Median per-call GPU time of ``call`` with the host taken out: a batch of calls
    is captured once into a CUDA graph, and CUDA events time replays of it. What is
    left is the kernels themselves and the gaps between them inside the GPU, so
    comparing it with time_cuda separates a kernel's speed from per-call host cost.

    ``period`` is the number of input buffers ``call`` rotates through: a graph holds
    a whole number of rotations, so every replay touches the same buffers in the
    same order as the launched calls do.

    Capture cannot run on the default stream, and autograd runs each backward op on
    the stream its forward op ran on: the warm-up and the capture run on the
    caller's current stream when that is not the default one (a caller timing
    backward passes of autograd graphs it built beforehand builds them on such a
    stream, as the runner does), else on a new side stream. Warm-up runs before
    capture because lazy initialisation, compilation and autotuning must not happen
    during it.
    """
    period = max(1, int(period))
    caller = torch.cuda.current_stream()
    stream = caller if caller != torch.cuda.default_stream() else torch.cuda.Stream()
    stream.wait_stream(caller)
    with torch.cuda.stream(stream):
        for _ in range(max(warmup, period)):
            call()
    torch.cuda.synchronize()

    def capture(n_calls: int) -> "torch.cuda.CUDAGraph":
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, stream=stream):
                for _ in range(n_calls):
                    call()
        except Exception as e:
            raise GraphCaptureError(f"CUDA graph capture failed: {type(e).__name__}: {e}") from e
        return graph

    def replay_time(graph, n_calls: int, reps: int) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        graph.replay()
        start.record()
        for _ in range(reps):
            graph.replay()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / (reps * n_calls)

    # One rotation first, to estimate a call; then a graph of enough rotations that a
    # replay takes >= ~0.2 ms (event resolution is ~0.5 us).
    graph = capture(period)
    est = max(replay_time(graph, period, 3), 1e-8)
    rotations = max(1, min(max_calls // period, int(math.ceil(2e-4 / (est * period)))))
    n_calls = rotations * period
    if n_calls != period:
        del graph
        graph = capture(n_calls)
    per_replay = est * n_calls
    samples = int(min(max_samples, max(min_samples, min_time / per_replay)))
    samples = max(min(samples, int(max_time / per_replay)), 3)
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(samples)]
    graph.replay()
    for s, e in events:
        s.record()
        graph.replay()
        e.record()
    torch.cuda.synchronize()
    times = [s.elapsed_time(e) / 1e3 / n_calls for s, e in events]
    del graph
    return Timing(times, n_calls)


def time_cpu(call: Callable[[], object], *, threads: int, min_time: float, max_time: float,
             min_samples: int = 7, warmup: int = 2) -> Timing:
    """Median per-call wall time on the CPU with ``threads`` intra-op threads: blocks
    of back-to-back calls of >= 1 ms each (timer overhead < 0.1%), at least
    ``min_samples`` blocks and ``min_time`` seconds, at most ``max_time`` (but
    never fewer than 3 blocks).

    Not torch.utils.benchmark's blocked_autorange: its block-size rule (timer
    overhead <= 1e-4 of a block) makes blocks of 10-20 ms, so a call of a few ms
    gets one or two samples and no spread. Both time with time.perf_counter.
    """
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    call()
    est = time.perf_counter() - t0
    if est < 0.02:  # the check already ran it once: one warm-up call is enough for slow calls
        t0 = time.perf_counter()
        for _ in range(warmup):
            call()
        est = (time.perf_counter() - t0) / warmup
    est = max(est, 1e-8)
    per_block = max(1, int(math.ceil(1e-3 / est)))
    block = est * per_block
    samples = max(min_samples, int(min_time / block))
    samples = max(3, min(samples, int(max_time / block), 1000))
    times = []
    clock = time.perf_counter
    for _ in range(samples):
        t0 = clock()
        for _ in range(per_block):
            call()
        times.append((clock() - t0) / per_block)
    return Timing(times, per_block)


def time_wall(call: Callable[[], object], device: str, *, threads: int, min_time: float,
              calls_per_sample: int = 0, min_samples: int = 15) -> Timing:
    """Per-call wall-clock time over blocks of back-to-back calls, synchronized at
    the end of each block (for CUDA: what the calling thread waits for)."""
    if device == "cpu":
        torch.set_num_threads(threads)
    for _ in range(20):
        call()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(20):
        call()
    sync(device)
    est = max((time.perf_counter() - t0) / 20, 1e-7)
    if not calls_per_sample:
        calls_per_sample = max(10, min(2000, int(2e-3 / est)))
    samples = max(min_samples, int(min_time / (est * calls_per_sample)))
    samples = min(samples, 200)
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        for _ in range(calls_per_sample):
            call()
        sync(device)
        times.append((time.perf_counter() - t0) / calls_per_sample)
    return Timing(times, calls_per_sample)


def cache_bytes(device: str) -> int:
    """The cache that rotating inputs should overflow: the GPU's L2, the CPU's
    last-level cache (sysfs), with fallbacks of 50 MB / 32 MB."""
    if device == "cuda":
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        return int(getattr(props, "L2_cache_size", 0) or 50 * 2**20)
    best = 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for idx in os.listdir(base):
            try:
                with open(os.path.join(base, idx, "size")) as f:
                    s = f.read().strip()
                mult = {"K": 2**10, "M": 2**20, "G": 2**30}.get(s[-1:], 1)
                best = max(best, int(s.rstrip("KMG")) * mult)
            except (OSError, ValueError):
                continue
    except OSError:
        pass
    return best or 32 * 2**20


def copy_bandwidth(device: str, *, threads: int, nbytes: int, min_time: float) -> tuple[float, Timing]:
    """Device copy bandwidth in GB/s (bytes read + bytes written per second) of
    ``dst.copy_(src)`` on float32 buffers of ``nbytes`` each."""
    n = max(nbytes // 4, 1024)
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    call = lambda: dst.copy_(src)  # noqa: E731
    if device == "cuda":
        t = time_cuda(call, min_time=min_time, max_time=max(min_time, 0.2), min_samples=20)
    else:
        t = time_cpu(call, threads=threads, min_time=min_time, max_time=max(min_time, 1.0))
    return 2 * n * 4 / t.median / 1e9, t


def time_interleaved(calls: dict[str, Callable[[], object]], device: str, *,
                     threads: Optional[int], rounds: int, block_s: float,
                     warmup: int = 3, budget_s: Optional[float] = None,
                     max_rounds: Optional[int] = None, lead: int = 0) -> dict[str, Timing]:
    """Per-call Timing of each named call, timed interleaved: a few candidates that
    do the same work (torch against selu_ext, or training steps of several models).
    Timing one after the other lets a drift of the machine (another process, clock
    changes, a cache warming up) land on one side only; here every round times one
    block of each, the order rotating from round to round. A block is the same
    number of back-to-back calls for every candidate, sized from the fastest so that
    its block takes about ``block_s``, synchronized once at its end on CUDA (what
    the calling thread waits for, as in a training loop). ``warmup`` calls of each
    first (for a compiled model, its compilation), then an estimate.

    With ``budget_s``, as many rounds as fit in that time (at least ``rounds``, at
    most ``max_rounds``) are run instead of exactly ``rounds``.

    ``lead`` untimed calls of the candidate come before each of its blocks, so that a
    timed call follows a call of the same candidate, as in a loop over it. Without
    them a block of one slow call (a training step) pays for what the previous
    candidate left behind: a model that needs more memory than the one timed before
    it re-grows the heap that glibc trimmed when that one freed its tensors, page
    fault by page fault, which a loop over one model does not pay
    (benchmarks/train_faults.py counts them)."""
    if device == "cpu" and threads:
        torch.set_num_threads(threads)
    est = {}
    for name, call in calls.items():
        for _ in range(warmup):
            call()
        sync(device)
        # A first estimate from calls worth ~1 ms (one call of a slow candidate).
        n, t0 = 0, time.perf_counter()
        while n < 1000 and (n == 0 or time.perf_counter() - t0 < 1e-3):
            call()
            n += 1
        sync(device)
        est[name] = max((time.perf_counter() - t0) / n, 1e-7)
    n_calls = max(1, int(math.ceil(block_s / min(est.values()))))
    n_rounds = rounds
    if budget_s is not None:
        per_round = (n_calls + lead) * sum(est.values())
        n_rounds = max(rounds, min(max_rounds or rounds, int(budget_s / per_round)))
    names = list(calls)
    times: dict[str, list] = {name: [] for name in names}
    clock = time.perf_counter
    for r in range(n_rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            call = calls[name]
            if lead:
                for _ in range(lead):
                    call()
                sync(device)
            t0 = clock()
            for _ in range(n_calls):
                call()
            sync(device)
            times[name].append((clock() - t0) / n_calls)
    return {name: Timing(times[name], n_calls) for name in names}
