"""The example of docs/diagnose.md ("Is my network self-normalizing?"): selu_ext.diagnose on a
correct self-normalizing MLP and on a broken one (PyTorch's default init,
nn.Dropout after SELU, raw inputs). Writes the two printed reports:

    python benchmarks/diagnose_example.py --out benchmarks/results/diagnose

tests/test_diagnose.py runs this script and compares its output with the stored
files and with docs/diagnose.md, and checks that the page's code is this script's.
CPU, float32, one thread, fixed seeds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

import torch


def reports():
    # --- docs/diagnose.md example start ---
    import torch
    from torch import nn

    import selu_ext

    g = torch.Generator().manual_seed(0)
    raw = torch.rand(512, 32, generator=g) ** 2 * torch.linspace(1, 20, 32)  # skewed, scales 1..20
    x = (raw - raw.mean(0)) / raw.std(0)                                      # standardized

    # Correct: LeCun-normal weights, SELU, AlphaDropout, standardized inputs.
    torch.manual_seed(0)
    good = selu_ext.nn.SelfNormalizingMLP(32, 64, 10, depth=3, dropout=0.05)
    print(selu_ext.diagnose(good, x))

    # Broken: PyTorch's default init, nn.Dropout after SELU, raw inputs.
    bad = nn.Sequential(nn.Linear(32, 64), nn.SELU(), nn.Dropout(0.1),
                        nn.Linear(64, 64), nn.SELU(), nn.Dropout(0.1),
                        nn.Linear(64, 64), nn.SELU(), nn.Linear(64, 10))
    print(selu_ext.diagnose(bad, raw))
    # --- docs/diagnose.md example end ---


def main(argv=None):
    """Runs the example and returns what it printed: (correct, broken)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder for correct.txt and broken.txt")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the same sums on any machine
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        reports()
    text = printed.getvalue()
    split = text.index("\nselu_ext.diagnose: ") + 1
    correct, broken = text[:split], text[split:]
    sys.stdout.write(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "correct.txt").write_text(correct)
        (args.out / "broken.txt").write_text(broken)
    return correct, broken


if __name__ == "__main__":
    main()
