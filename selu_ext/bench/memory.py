"""Memory: bytes autograd keeps for backward (saved_tensors_hooks, unique storages), peak memory of one call
(CUDA's caching allocator; n/a on CPU), and the memory mode."""

from __future__ import annotations

from typing import Callable, Iterable, Optional

import torch
from torch import nn

import selu_ext

from . import report


def _storage_key(t: torch.Tensor):
    s = t.untyped_storage()
    return (str(t.device), s.data_ptr(), s.nbytes())


def saved_bytes(fn: Callable[[], object], exclude: Iterable[torch.Tensor] = ()) -> int:
    """Bytes of the unique storages autograd saves while ``fn`` runs (a tensor saved twice, or two views of one
    buffer, count once), less those of ``exclude`` (a model's parameters, which are kept anyway)."""
    skip = {_storage_key(t) for t in exclude}
    seen = {}

    def pack(t):
        key = _storage_key(t)
        if key not in skip:
            seen[key] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(seen.values())


def peak_memory(call: Callable[[], object], device: str) -> Optional[int]:
    """Peak allocated bytes above what was allocated before one call (CUDA only)."""
    if device != "cuda":
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = call()
    torch.cuda.synchronize()
    del out
    return int(torch.cuda.max_memory_allocated() - base)


def run(runner, threads) -> None:
    """The memory mode: what each activation keeps for backward in Linear -> act -> Linear beyond what Linear ->
    Identity -> Linear keeps (the next Linear keeps the activation's output anyway)."""
    cfg, p = runner.cfg, runner.cfg.p
    batch, width = (64, 256) if cfg.quick else (256, 1024)
    activations = {  # name -> (op, role, module)
        "nn.SELU": ("selu", "eager", lambda: nn.SELU()),
        "selu_ext.nn.SELU": ("selu", "ext", lambda: selu_ext.nn.SELU()),
        "nn.SELU+nn.AlphaDropout": ("fused", "eager", lambda: nn.Sequential(nn.SELU(), nn.AlphaDropout(p))),
        "selu_ext.nn.SELUAlphaDropout": ("fused", "ext", lambda: selu_ext.nn.SELUAlphaDropout(p)),
        "nn.AlphaDropout": ("dropout", "eager", lambda: nn.AlphaDropout(p)),
        "selu_ext.nn.AlphaDropout": ("dropout", "ext", lambda: selu_ext.nn.AlphaDropout(p)),
    }
    x = torch.randn(batch, width, device=cfg.device)

    def kept(mid):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(width, width), mid, nn.Linear(width, width)).to(cfg.device)
        return saved_bytes(lambda: net.train()(x))

    for name, (op, role, factory) in activations.items():
        if op not in cfg.ops:
            continue
        with runner.measuring(report.new_row(op, "memory", "float32", batch * width, cfg.device, threads, name,
                                             role)) as row:
            total = kept(factory())
            row["saved_bytes"], row["check"] = total - kept(nn.Identity()), "saved_tensors_hooks"
            row["note"] = (f"Linear({width},{width}) -> act -> Linear, batch {batch}: kept beyond Linear -> Identity "
                           f"-> Linear (total {total} B)")
