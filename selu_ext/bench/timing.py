"""Timers, each returning a Timing (seconds per call, a sample each: median, p20, p80). CUDA: events around
blocks of calls, read after one final synchronize (the host runs ahead, as in a model); CPU: perf_counter around
blocks of >= 1 ms; small calls: wall clock, interleaved with their peers."""

from __future__ import annotations

import contextlib
import glob
import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch


@dataclass
class Timing:
    times: list  # seconds per call, one entry per sample
    calls_per_sample: int = 1

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def fields(self) -> dict:
        """The row fields of this timing (percentiles interpolated as numpy's default)."""
        p20, _, _, p80 = statistics.quantiles(self.times, n=5, method="inclusive")
        return {"median_ms": self.median * 1e3, "p20_ms": p20 * 1e3, "p80_ms": p80 * 1e3,
                "samples": len(self.times), "calls_per_sample": self.calls_per_sample}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _n_samples(est: float, min_time: float, max_time: float, min_samples: int, max_samples: int) -> int:
    """Enough samples of ``est`` seconds for ``min_time``, at most ``max_time`` (but never fewer than 3)."""
    n = int(min(max_samples, max(min_samples, min_time / est)))
    return max(min(n, int(max_time / est)), 3)


def samples(block: Callable[[], object], calls: int, device: str, n: int = 1) -> Timing:
    """Per-call times of ``n`` runs of ``block`` (``calls`` calls each); CUDA events are read after the last."""
    if device != "cuda":
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            block()
            times.append((time.perf_counter() - t0) / calls)
        return Timing(times, calls)
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
    for s, e in events:
        s.record()
        block()
        e.record()
    torch.cuda.synchronize()
    return Timing([s.elapsed_time(e) / 1e3 / calls for s, e in events], calls)


def _repeat(call: Callable[[], object], n: int) -> Callable[[], None]:
    def block():
        for _ in range(n):
            call()
    return block


def time_calls(call: Callable[[], object], device: str, *, threads: Optional[int] = None, min_time: float,
               max_time: float, min_samples: int = 7, warmup: int = 3) -> Timing:
    """Median per-call time of ``call`` (which rotates its own inputs), over blocks of back-to-back calls of >=
    1 ms on the CPU (timer overhead < 0.1%), >= 0.1 ms on CUDA (event resolution is ~0.5 us). Not
    torch.utils.benchmark's blocked_autorange: its 10-20 ms blocks leave a call of a few ms one or two samples
    and no spread."""
    if threads:
        torch.set_num_threads(threads)
    est = samples(call, 1, device).median
    if est < 0.02:  # the check already ran it once: a slow call needs no more warm-up
        _repeat(call, warmup)()
        est = samples(_repeat(call, 3), 3, device).median
    est = max(est, 1e-7)
    calls = max(1, min(1000, math.ceil((1e-4 if device == "cuda" else 1e-3) / est)))
    n = _n_samples(est * calls, min_time, max_time, min_samples, 200 if device == "cuda" else 1000)
    return samples(_repeat(call, calls), calls, device, n)


class GraphCaptureError(RuntimeError):
    """A candidate's calls could not be captured into a CUDA graph: the row says so, not a failure of the call."""


def time_cuda_graph(call: Callable[[], object], *, period: int, min_time: float, max_time: float,
                    min_samples: int = 10, warmup: int = 3, max_calls: int = 512) -> Timing:
    """Median per-call GPU time of ``call`` without the host: replays of a CUDA graph of a whole number of
    rotations through the ``period`` input buffers. Warm-up (lazy init, compilation, autotuning: never during
    capture) and capture run on the caller's stream when it is not the default one (sweep.timing_stream says
    why), else on a side stream."""
    period = max(1, int(period))
    caller = torch.cuda.current_stream()
    stream = caller if caller != torch.cuda.default_stream() else torch.cuda.Stream()
    stream.wait_stream(caller)
    with torch.cuda.stream(stream):
        _repeat(call, max(warmup, period))()
    torch.cuda.synchronize()

    def capture(n_calls: int) -> "torch.cuda.CUDAGraph":
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, stream=stream):
                _repeat(call, n_calls)()
        except Exception as e:
            raise GraphCaptureError(f"CUDA graph capture failed: {type(e).__name__}: {e}") from e
        return graph

    # One rotation to estimate a call, then enough rotations that a replay takes >= ~0.2 ms (event resolution is
    # ~0.5 us).
    graph = capture(period)
    graph.replay()
    est = max(samples(_repeat(graph.replay, 3), 3 * period, "cuda").median, 1e-8)
    n_calls = max(1, min(max_calls // period, math.ceil(2e-4 / (est * period)))) * period
    if n_calls != period:
        del graph
        graph = capture(n_calls)
    graph.replay()
    n = _n_samples(est * n_calls, min_time, max_time, min_samples, 200)
    return samples(graph.replay, n_calls, "cuda", n)


def cache_bytes(device: str) -> int:
    """The cache that rotating inputs should overflow: the GPU's L2, the CPU's last-level cache (sysfs), with
    fallbacks of 50 MB / 32 MB."""
    if device == "cuda":
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        return int(getattr(props, "L2_cache_size", 0) or 50 * 2**20)
    best = 0
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        with contextlib.suppress(OSError, ValueError), open(path) as f:
            s = f.read().strip()
            best = max(best, int(s.rstrip("KMG")) * {"K": 2**10, "M": 2**20, "G": 2**30}.get(s[-1:], 1))
    return best or 32 * 2**20


def time_interleaved(calls: dict[str, Callable[[], object]], device: str, *, threads: Optional[int], rounds: int,
                     block_s: float, warmup: int = 3, budget_s: Optional[float] = None,
                     max_rounds: Optional[int] = None, lead: int = 0) -> dict[str, Timing]:
    """Per-call Timing of each named call, candidates doing the same work, interleaved so that a drift of the
    machine does not land on one side only: each round times a block of each (the order rotating), a block being
    the same number of calls for all, sized so the fastest's takes ``block_s``, synchronized at its end. With
    ``budget_s``, as many rounds as fit (``rounds`` .. ``max_rounds``). ``lead`` untimed calls precede each
    block, so a timed training step follows one of its own: else it pays for re-growing the heap glibc trimmed
    after the previous model (benchmarks/train_faults.py counts the page faults)."""
    if device == "cpu" and threads:
        torch.set_num_threads(threads)
    est = {}
    for name, call in calls.items():
        _repeat(call, warmup)()
        sync(device)
        # A first estimate from calls worth ~1 ms (one call of a slow candidate).
        n, t0 = 0, time.perf_counter()
        while n < 1000 and (n == 0 or time.perf_counter() - t0 < 1e-3):
            call()
            n += 1
        sync(device)
        est[name] = max((time.perf_counter() - t0) / n, 1e-7)
    n_calls = max(1, math.ceil(block_s / min(est.values())))
    n_rounds = rounds
    if budget_s is not None:
        n_rounds = max(rounds, min(max_rounds or rounds, int(budget_s / ((n_calls + lead) * sum(est.values())))))
    names = list(calls)
    times: dict[str, list] = {name: [] for name in names}
    for r in range(n_rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            if lead:
                _repeat(calls[name], lead)()
                sync(device)
            t0 = time.perf_counter()
            _repeat(calls[name], n_calls)()
            sync(device)
            times[name].append((time.perf_counter() - t0) / n_calls)
    return {name: Timing(times[name], n_calls) for name in names}
