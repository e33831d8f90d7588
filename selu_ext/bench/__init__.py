"""``python -m selu_ext.bench``: selu_ext against PyTorch, checked, timed and stored as
rows (``--help`` for every flag; ``--quick`` for a look). A row is one (op, mode, dtype,
size, device, threads, impl): status, median and p20/p80 time, GB/s, percent of the copy
bandwidth, speedups against each peer, memory; targets, plots and the README summary are
drawn from stored rows. From Python, with your own implementation next to the others::

    from selu_ext import bench
    bench.main(["--quick", "--json", "out.json"],
               extra_impls={"selu": [bench.Impl("mine", "custom", my_selu)]})
"""

from .candidates import Impl
from .cli import build_parser, config_from_args, main
from .runner import Config, Result, run

__all__ = ["main", "run", "Config", "Result", "Impl", "build_parser", "config_from_args"]
