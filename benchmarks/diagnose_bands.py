"""Measure the bands selu_ext.diagnose uses (the constants in selu_ext/diagnose.py):

1. activations: each SELU's output mean and variance over the batch in correct
   networks (LeCun-normal weights, zero biases, standardized inputs) of several
   widths, and in a 16-layer ConvNet; the activation band must hold all of them
   at the widths it claims.
2. weights: every Linear scaled to variance x fan_in = c; the range of c for which
   every SELU of a 32-layer MLP stays inside the activation band.
3. inputs: inputs with mean m and variance v; where the first SELU of a LeCun MLP
   stays inside the activation band.

    python benchmarks/diagnose_bands.py --out benchmarks/results/diagnose/bands.txt

Deterministic (fixed seeds, float64 statistics); CPU, a minute or two.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from selu_ext.diagnose import (ACTIVATION_MEAN_MAX, ACTIVATION_VAR_BAND, INPUT_MEAN_MAX,
                               INPUT_VAR_BAND, WEIGHT_BAND)

DEPTH = 32
BATCH = 256


def _inside(mean, var):
    return abs(mean) <= ACTIVATION_MEAN_MAX and ACTIVATION_VAR_BAND[0] <= var <= ACTIVATION_VAR_BAND[1]


def _standardized(batch, width, g, kind):
    x = torch.randn(batch, width, generator=g) if kind == "normal" else \
        torch.rand(batch, width, generator=g) ** 2  # skewed features
    return (x - x.mean(0)) / x.std(0)


@torch.no_grad()
def _mlp_stats(x, depth, g, scale=1.0):
    """(mean, variance) of each SELU's output in Linear + SELU blocks with weights of
    variance scale / fan_in and zero biases."""
    out = []
    for _ in range(depth):
        w = torch.randn(x.shape[1], x.shape[1], generator=g) * math.sqrt(scale / x.shape[1])
        x = F.selu(x @ w.t())
        xd = x.double()
        out.append((xd.mean().item(), xd.var(unbiased=False).item()))
    return out


@torch.no_grad()
def _conv_stats(batch, channels, size, depth, g):
    x = torch.randn(batch, channels, size, size, generator=g)
    x = (x - x.mean()) / x.std()
    out = []
    for _ in range(depth):
        w = torch.randn(channels, channels, 3, 3, generator=g) / math.sqrt(channels * 9)
        x = F.selu(F.conv2d(x, w, padding=1))
        xd = x.double()
        out.append((xd.mean().item(), xd.var(unbiased=False).item()))
    return out


def _summary(stats):
    means = [abs(m) for m, _ in stats]
    variances = [v for _, v in stats]
    inside = sum(_inside(m, v) for m, v in stats)
    return max(means), min(variances), max(variances), inside, len(stats)


def activations(lines, seeds):
    lines.append(f"1. Correct networks: every SELU's output (all elements of the batch), "
                 f"{seeds} seeds x 2 input kinds (normal, skewed; standardized per feature)")
    lines.append(f"   MLP: {DEPTH} x (Linear(width, width) + SELU), LeCun-normal, zero bias, batch {BATCH}")
    lines.append("   width  max|mean|  min var  max var  inside band")
    for width in (16, 32, 64, 128, 256, 512):
        stats = []
        for seed in range(seeds):
            g = torch.Generator().manual_seed(seed)
            for kind in ("normal", "skewed"):
                stats += _mlp_stats(_standardized(BATCH, width, g, kind), DEPTH, g)
        mm, vlo, vhi, n_in, n = _summary(stats)
        lines.append(f"   {width:5d}  {mm:9.3f}  {vlo:7.3f}  {vhi:7.3f}  {n_in}/{n}")
    lines.append("   ConvNet: 16 x (Conv2d(C, C, 3, padding=1) + SELU), LeCun-normal, 16x16 "
                 "normal images, batch 64")
    lines.append("   channels  max|mean|  min var  max var  inside band")
    for channels in (16, 32, 64):
        stats = []
        for seed in range(max(seeds // 2, 1)):
            stats += _conv_stats(64, channels, 16, 16, torch.Generator().manual_seed(seed))
        mm, vlo, vhi, n_in, n = _summary(stats)
        lines.append(f"   {channels:8d}  {mm:9.3f}  {vlo:7.3f}  {vhi:7.3f}  {n_in}/{n}")


def weights(lines, seeds):
    width = 256
    lines.append("")
    lines.append(f"2. Weights: every Linear of a {DEPTH}-layer MLP (width {width}, batch {BATCH}, "
                 f"standardized normal input) drawn with variance x fan_in = c, {seeds} seeds")
    lines.append("       c  max|mean|  min var  max var  every SELU inside band")
    for c in [0.33, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.4]:
        stats = []
        for seed in range(seeds):
            g = torch.Generator().manual_seed(seed)
            stats += _mlp_stats(_standardized(BATCH, width, g, "normal"), DEPTH, g, scale=c)
        mm, vlo, vhi, n_in, n = _summary(stats)
        lines.append(f"   {c:5.2f}  {mm:9.3f}  {vlo:7.3f}  {vhi:7.3f}  "
                     f"{'yes' if n_in == n else 'no'} ({n_in}/{n})")
    lines.append("   (c = 0.33 is PyTorch's default Linear init, kaiming_uniform(a=sqrt(5)))")


def inputs(lines, seeds):
    width = 256
    lines.append("")
    lines.append(f"3. Inputs: standardized normal input * sqrt(v) + m into a LeCun MLP (width "
                 f"{width}, batch {BATCH}); the first SELU's output, worst of {seeds} seeds")
    lines.append("   (cell: variance of the first SELU's output, * outside the activation band)")
    means = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
    variances = (0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0)
    lines.append("   v \\ m " + "".join(f"{m:>8g}" for m in means))
    for v in variances:
        cells = []
        for m in means:
            worst_var, inside = None, True
            for seed in range(seeds):
                g = torch.Generator().manual_seed(seed)
                x = _standardized(BATCH, width, g, "normal") * math.sqrt(v) + m
                mean1, var1 = _mlp_stats(x, 1, g)[0]
                inside &= _inside(mean1, var1)
                if worst_var is None or abs(math.log(var1)) > abs(math.log(worst_var)):
                    worst_var = var1
            cells.append(f"{worst_var:.2f}" + ("" if inside else "*"))
        lines.append(f"   {v:5g} " + "".join(f"{c:>8}" for c in cells))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the report here too")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # reproducible sums, whatever the machine
    lines = [f"selu_ext.diagnose bands: activation |mean| <= {ACTIVATION_MEAN_MAX:g}, variance "
             f"[{ACTIVATION_VAR_BAND[0]:g}, {ACTIVATION_VAR_BAND[1]:g}]; weights variance x "
             f"fan_in [{WEIGHT_BAND[0]:g}, {WEIGHT_BAND[1]:g}]; input |mean| <= "
             f"{INPUT_MEAN_MAX:g}, variance [{INPUT_VAR_BAND[0]:g}, {INPUT_VAR_BAND[1]:g}]",
             f"torch {torch.__version__}, CPU float32, 1 thread. Command: python "
             f"benchmarks/diagnose_bands.py" + (f" --out {args.out}" if args.out else "")
             + (f" --seeds {args.seeds}" if args.seeds != 5 else ""), ""]
    activations(lines, args.seeds)
    weights(lines, args.seeds)
    inputs(lines, args.seeds)
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return text


if __name__ == "__main__":
    main()
