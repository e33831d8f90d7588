"""Minor page faults per timed training step, in the order the benchmark times the
variants (python -m selu_ext.bench --train: torch.nn, selu_ext and floor interleaved,
the order rotating each round), with and without an untimed step of the same
variant before each timed one (time_interleaved's ``lead``). CPU, one thread, the
MLP at batch 256 unless told otherwise:

    python benchmarks/train_faults.py [--batch 256] [--rounds 30]

Prints, per variant and lead, the median and the largest number of faults in a
timed step. A fault is a fresh page the step's allocations touch: a step that
follows a smaller model re-grows the heap glibc trimmed, a cost a training loop
over one model does not pay; the lead removes it from the timing.
"""

from __future__ import annotations

import argparse
import resource
import statistics

import torch

from selu_ext.bench import train


def faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    variants = train.build_variants("mlp", "cpu", False)
    x, y = train.make_input("mlp", args.batch, "cpu")
    steps = {impl: train.make_step(module, opt, x, y) for impl, (_, module, opt) in variants.items()}
    names = list(steps)
    for step in steps.values():
        step()
    for lead in (0, 1):
        counts = {name: [] for name in names}
        for r in range(args.rounds):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                for _ in range(lead):
                    steps[name]()
                before = faults()
                steps[name]()
                counts[name].append(faults() - before)
        print(f"lead {lead}: " + "; ".join(
            f"{name} median {statistics.median(c):.0f}, max {max(c)}" for name, c in counts.items()))


if __name__ == "__main__":
    main()
