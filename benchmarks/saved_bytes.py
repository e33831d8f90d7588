"""Bytes autograd keeps for backward in one training forward of a self-normalizing
MLP (784 -> 8 x 512 -> 10, batch 256, float32), beyond the parameters: torch.nn,
selu_ext.nn.convert of it, selu_ext.nn.SelfNormalizingMLP, a residual model where
convert must keep torch's semantics, and the floor (SELU and dropout replaced by
nn.Identity). Counts are exact and deterministic (each storage once).

    python benchmarks/saved_bytes.py            # prints the README table
    python benchmarks/saved_bytes.py --write    # also stores benchmarks/results/memory/saved_bytes.md

README's "Where the memory saving applies" shows this table; tests/test_readme.py
regenerates it and compares.
"""

from __future__ import annotations

import os
import sys
import warnings

import torch
from torch import nn

import selu_ext
from selu_ext.bench.memory import saved_bytes

IN, WIDTH, OUT, DEPTH, BATCH, P = 784, 512, 10, 8, 256, 0.05
OUT_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "memory",
                        "saved_bytes.md")


def torch_mlp(dropout: float) -> nn.Sequential:
    layers, width = [], IN
    for _ in range(DEPTH):
        layers += [nn.Linear(width, WIDTH), nn.SELU()]
        if dropout:
            layers.append(nn.AlphaDropout(dropout))
        width = WIDTH
    return nn.Sequential(*layers, nn.Linear(width, OUT))


class Residual(nn.Module):
    """h = selu(fc(x)); h += x: the SELU's output is modified in place."""

    def __init__(self):
        super().__init__()
        self.fc, self.act = nn.Linear(WIDTH, WIDTH), nn.SELU()

    def forward(self, x):
        h = self.act(self.fc(x))
        h += x
        return h


def residual_mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(IN, WIDTH), *[Residual() for _ in range(DEPTH)],
                         nn.Linear(WIDTH, OUT))


def floor(model: nn.Module) -> nn.Module:
    for name, child in model.named_children():
        if isinstance(child, (nn.SELU, nn.AlphaDropout)):
            setattr(model, name, nn.Identity())
        else:
            floor(child)
    return model


def kept(model: nn.Module) -> int:
    model.train()
    x = torch.randn(BATCH, IN)
    params = list(model.parameters())
    return saved_bytes(lambda: model(x), exclude=params)


def table() -> str:
    # convert() warns that these models are not LeCun-initialised: beside the point here.
    warnings.filterwarnings("ignore", category=selu_ext.SelfNormalizationWarning)
    torch.manual_seed(0)
    rows = []
    for dropout in (0.0, P):
        label = f"AlphaDropout {dropout}" if dropout else "no dropout"
        rows.append((f"MLP, {label}: torch.nn", kept(torch_mlp(dropout))))
        rows.append((f"MLP, {label}: selu_ext.nn.convert(torch model)",
                     kept(selu_ext.nn.convert(torch_mlp(dropout)))))
        rows.append((f"MLP, {label}: selu_ext.nn.SelfNormalizingMLP",
                     kept(selu_ext.nn.SelfNormalizingMLP(IN, WIDTH, OUT, DEPTH, dropout=dropout))))
        rows.append((f"MLP, {label}: floor (SELU, dropout -> Identity)",
                     kept(floor(torch_mlp(dropout)))))
    rows.append(("residual (`h += x` after SELU): torch.nn", kept(residual_mlp())))
    rows.append(("residual (`h += x` after SELU): selu_ext.nn.convert",
                 kept(selu_ext.nn.convert(residual_mlp()))))
    lines = ["| model (784 -> 8 x 512 -> 10, batch 256, float32, training) | kept for backward |",
             "| --- | --- |"]
    lines += [f"| {name} | {n / 2**20:.2f} MiB |" for name, n in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    text = table()
    sys.stdout.write(text)
    if "--write" in sys.argv:
        os.makedirs(os.path.dirname(OUT_FILE), exist_ok=True)
        with open(OUT_FILE, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
