"""Interleaved wall-clock timing of a few candidates that do the same work (torch
against selu_ext, or whole training steps of several models).

Timing one candidate after the other lets a drift of the machine (another
process, clock changes, a cache warming up) land on one side only. Here every
round times one block of each candidate, the order rotating from round to round,
so each candidate sees the same conditions; the median over rounds, with p20/p80,
is reported per candidate. A block is ``calls`` back-to-back calls, synchronized
once at its end on CUDA (what the calling thread waits for, as in a training loop),
and timed with time.perf_counter.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Optional

import torch

from .timing import Timing, sync


def time_interleaved(calls: dict[str, Callable[[], object]], device: str, *,
                     threads: Optional[int], rounds: int, block_s: float,
                     warmup: int = 3, budget_s: Optional[float] = None,
                     max_rounds: Optional[int] = None) -> dict[str, Timing]:
    """Per-call Timing of each named call. ``warmup`` calls of each first (for a
    compiled model, its compilation), then an estimate; then every block has the same number of calls,
    sized from the fastest candidate so that its block takes about ``block_s``.

    With ``budget_s``, as many rounds as fit in that time (at least ``rounds``, at
    most ``max_rounds``) are run instead of exactly ``rounds``."""
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
        per_round = n_calls * sum(est.values())
        n_rounds = max(rounds, min(max_rounds or rounds, int(budget_s / per_round)))
    names = list(calls)
    times: dict[str, list] = {name: [] for name in names}
    clock = time.perf_counter
    for r in range(n_rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            call = calls[name]
            t0 = clock()
            for _ in range(n_calls):
                call()
            sync(device)
            times[name].append((clock() - t0) / n_calls)
    return {name: Timing(times[name], n_calls) for name in names}
