"""``python -m selu_ext.bench``: selu_ext against PyTorch, checked, timed and stored
as rows.

    python -m selu_ext.bench --quick                      # a look, under 30 s on a CPU
    python -m selu_ext.bench --device cuda --json out.json --csv out.csv --plot out.png
    python -m selu_ext.bench --help                       # every flag

Each row is one (op, mode, dtype, size, device, threads, impl) with its status
(ok / WRONG / ERROR / compile unavailable), median and p20/p80 time, GB/s, percent
of the copy bandwidth measured in the same run, speedups against each peer, peak
memory and bytes saved for backward; the run's metadata (versions, build_info,
device, CPU capability, date, command line) goes with them. The targets are
evaluated from the rows; plots and the README summary are drawn from stored rows.

Layout, by concern: cli.py (flags -> runner.Config); runner.py (the run's state and
loop); candidates.py (ops, implementations); sweep.py (one sweep point: inputs, check,
timing); checks.py (correctness against selu_ext.testing's references and
tolerances); accuracy.py, memory.py (those modes); percall.py (--percall), train.py
(--train); timing.py (timers); avx2_peer.py (the F.selu[avx2]
subprocess); machine.py (metadata, copy bandwidth, canary); targets.py (pure Python),
report.py (table, JSON, CSV, plot).

From Python::

    from selu_ext import bench
    bench.main(["--quick", "--json", "out.json"])
    # or with your own implementation next to the others:
    bench.main([...], extra_impls={"selu": [bench.Impl("mine", "custom", my_selu)]})
"""

from .candidates import Impl
from .cli import build_parser, main
from .runner import Config, Result, run

__all__ = ["main", "run", "Config", "Result", "Impl", "build_parser"]
