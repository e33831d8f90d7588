"""The accuracy mode: selu's float32 forward, in ULP of the float64 reference,
over a sweep of inputs, for PyTorch's F.selu, selu_ext and each of selu_ext's CPU
kernel variants (the README's promise: within selu_ext.testing.MAX_ULP32)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..testing import selu_reference, ulp32
from . import avx2_peer
from .candidates import Impl, build_impls


def accuracy_sweep(device) -> Tensor:
    """float32 inputs for the ULP check: linspace(-100, 100, 1e6), plus +-logspace
    from 1e-30 to 100 so that tiny arguments (where expm1(x) ~ x) are covered."""
    lin = torch.linspace(-100, 100, 1_000_000, dtype=torch.float64)
    log = torch.logspace(-30, 2, 100_000, dtype=torch.float64)
    return torch.cat([lin, log, -log, torch.zeros(1, dtype=torch.float64)]).to(
        device=device, dtype=torch.float32)


def max_ulp_error(y: Tensor, x: Tensor) -> tuple[float, float]:
    """(max error in float32 ULPs of the float64 reference, the x where it is)."""
    ref = selu_reference(x)
    err = (y.to(torch.float64) - ref).abs() / ulp32(ref)
    err = torch.nan_to_num(err, nan=math.inf)
    i = int(torch.argmax(err))
    return float(err[i]), float(x[i])


def run(runner, threads) -> None:
    cfg = runner.cfg
    torch.set_num_threads(threads)
    x = accuracy_sweep(cfg.device)
    impls = [i for i in build_impls("selu", cfg.device, cfg.p, compile_mode="skipped",
                                    cpu_variants=cfg.device == "cpu")
             if i.role in ("eager", "ext") or (i.role == "ext_variant" and "forward" in i.modes)]
    impls += runner.extra_impls.get("selu", [])
    if cfg.device == "cpu" and runner.avx2_rows:
        impls.insert(1, Impl("F.selu[avx2]", "eager_avx2", None))
    for impl in impls:
        if not runner.wanted(impl):
            continue
        if impl.role == "eager_avx2":
            avx2_peer.emit(runner, "selu", "accuracy", "float32", x.numel(), threads)
            continue
        with runner.measuring(runner.new_row("selu", "accuracy", "float32", x.numel(), threads,
                                             impl)) as row:
            with impl.context():
                y = impl.fn(x)
            row["max_ulp"], at = max_ulp_error(y, x)
            row["check"] = "ulp-sweep"
            row["note"] = (f"max at x={at:.7g}; sweep linspace(-100,100,1e6) and "
                           f"+-logspace(-30,2,1e5)")
