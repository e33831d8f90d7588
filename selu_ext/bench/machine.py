"""What a run says about its machine: the metadata stored with the rows, the copy
bandwidth the GB/s columns are compared with, the load average, and the expm1 canary
that shows whether PyTorch's eager kernels ran at one speed throughout."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import statistics
import time

import torch

import selu_ext

from . import timing


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
        "torch_version": torch.__version__, "torch_cuda": torch.version.cuda,
        "triton_version": triton_version, "python": platform.python_version(),
        "platform": platform.platform(), "version": selu_ext.__version__, "build_info": info,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "selu_ext_cpu_capability": info.get("cpu_capability"),
        "threads": list(cfg.threads), "cpu_count": os.cpu_count(), "p": cfg.p, "seed": cfg.seed,
        "ops": list(cfg.ops), "modes": list(cfg.modes), "dtypes": list(cfg.dtypes),
        "sizes": list(cfg.sizes), "percall_sizes": list(cfg.percall_sizes), "quick": cfg.quick,
        "timing": "cuda-graph" if cfg.cuda_graphs else "launched",
        "cache_bytes": timing.cache_bytes(cfg.device), "copy_gbps": {},
    }


def measure_copy_bandwidth(runner) -> None:
    """GB/s (bytes read + bytes written per second) of dst.copy_(src) on float32 buffers."""
    cfg = runner.cfg
    if cfg.emit_rows:
        return
    cuda = cfg.device == "cuda"
    nbytes = max(4 * runner.meta["cache_bytes"], 32 * 2**20 if cfg.quick else 512 * 2**20 if cuda else 128 * 2**20)
    src = torch.randn(nbytes // 4, device=cfg.device)
    dst = torch.empty_like(src)
    min_time = max(cfg.min_time, 0.05)
    for t in cfg.threads[:1] if cuda else cfg.threads:
        tm = timing.time_calls(lambda: dst.copy_(src), cfg.device, threads=t, min_time=min_time,
                               max_time=max(min_time, 0.2 if cuda else 1.0), min_samples=20 if cuda else 7)
        gbps = runner.copy_gbps[t] = runner.meta["copy_gbps"][str(t)] = 2 * nbytes / tm.median / 1e9
        runner.say(f"copy bandwidth ({t} thread(s)): {gbps:.1f} GB/s  (dst.copy_(src), "
                   f"{nbytes / 2**20:.0f} MiB each, read + write counted, median "
                   f"{tm.median * 1e3:.3f} ms)")


def canary(meta: dict, device: str, label: str) -> None:
    """Time PyTorch's own float32 expm1 (2^16 elements, one thread) between blocks. On
    the AVX-512 machine these results were taken on, eager F.selu (whose cost is
    expm1) ran ~12x faster in some processes after some earlier work than in a fresh
    one, for reasons outside PyTorch's and selu_ext's code."""
    if device != "cpu":
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
    meta.setdefault("expm1_canary_ms", []).append([label, round(statistics.median(times) * 1e3, 4)])


def canary_verdict(meta: dict, out) -> None:
    from .report import wrap

    c = [ms for _, ms in meta.get("expm1_canary_ms", [])]
    if len(c) >= 2 and max(c) > 3 * min(c):
        msg = (f"PyTorch's expm1 ran at different speeds during this run ({min(c):.3f} to "
               f"{max(c):.3f} ms for 2^16 float32 elements; see meta.expm1_canary_ms): the "
               "eager F.selu rows of different blocks are not comparable with each other")
        meta["canary_warning"] = msg
        print(wrap(f"\nWARNING: {msg}"), file=out)


def note_load(meta: dict, label: str) -> None:
    """The load average, kept in the run's meta: timings taken while other processes
    compete for the cores are noisier (interleaving keeps the ratios fair)."""
    if hasattr(os, "getloadavg"):
        meta.setdefault("loadavg", []).append([label, list(os.getloadavg())])
