"""Command line of ``python -m selu_ext.bench``; config_from_args holds every default."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import sys
from typing import Optional

from . import percall, train
from .candidates import DTYPES, MODES, OPS
from .targets import size_str

CUDA_SIZES = [2**k for k in (12, 16, 20, 22, 24, 26, 28)]
CPU_SIZES = [2**k for k in range(12, 25, 2)]
QUICK_SIZES = {"cpu": [2**12, 2**20], "cuda": [2**12, 2**20, 2**24]}
PERCALL_SIZES, QUICK_PERCALL_SIZES = [4096, 16384, 65536], [4096]  # the sweep's percall mode
CUDA_BUDGET_S = 390.0
_DTYPE_ALIASES = {"fp32": "float32", "f32": "float32", "float": "float32",
                  "bf16": "bfloat16", "fp16": "float16", "f16": "float16", "half": "float16",
                  "fp64": "float64", "f64": "float64", "double": "float64"}


def parse_size(tok: str) -> int:
    """4096, 64K, 1M, 2^20, 1<<20."""
    t = tok.strip().lower()
    if m := re.fullmatch(r"(\d+)\s*(\^|\*\*|<<)\s*(\d+)", t):
        base, exp = int(m.group(1)), int(m.group(3))
        return base << exp if m.group(2) == "<<" else base**exp
    if m := re.fullmatch(r"(\d+)([kmg]?)", t):
        return int(m.group(1)) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[m.group(2)]
    raise argparse.ArgumentTypeError(f"bad size {tok!r} (use 4096, 64K, 1M, 2^20 or 1<<20)")


def parse_sizes(text: str) -> list[int]:
    """A comma/space separated list of sizes and power-of-two ranges ``2^12..2^24`` (every power) or
    ``2^12..2^24:2`` (every 2nd)."""
    out: list[int] = []
    for tok in re.split(r"[,\s]+", text.strip()):
        if m := re.fullmatch(r"(.+?)\.\.(.+?)(?::(\d+))?", tok):
            lo, hi, step = parse_size(m.group(1)), parse_size(m.group(2)), int(m.group(3) or 1)
            if lo <= 0 or lo & (lo - 1) or hi & (hi - 1):
                raise argparse.ArgumentTypeError(f"range {tok!r}: ends must be powers of two")
            out += [2**k for k in range(lo.bit_length() - 1, hi.bit_length(), step)]
        elif tok:
            out.append(parse_size(tok))
    if not out or any(s <= 0 for s in out):
        raise argparse.ArgumentTypeError(f"bad size list {text!r}")
    return list(dict.fromkeys(out))


def _choices(allowed, aliases=None):
    def parse(text: str) -> list[str]:
        out = []
        for tok in filter(None, re.split(r"[,\s]+", text.strip())):
            tok = (aliases or {}).get(tok.lower(), tok)
            if tok != "all" and tok not in allowed:
                raise argparse.ArgumentTypeError(f"{tok!r} is not one of {', '.join(allowed)}")
            out += list(allowed) if tok == "all" else [tok]
        return list(dict.fromkeys(out))
    return parse


def _sizes(sizes) -> str:
    return ",".join(map(size_str, sizes))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m selu_ext.bench", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Benchmark selu_ext against PyTorch: eager F.selu / nn.SELU, torch.compile and, on the CPU, F.selu\n"
            "with torch's AVX2 kernels (a subprocess with ATEN_CPU_CAPABILITY=avx2); fused SELU+AlphaDropout and\n"
            "AlphaDropout against their F.* forms. Every result is checked against a float64 reference before\n"
            "it is timed (a wrong one is reported WRONG). Prints a table as it goes, then the targets (PASS/MISS)\n"
            "evaluated from the rows.\n\n"
            "A run has three parts: the sweep (--ops, --modes, --dtypes, --sizes), the per-call rows (--percall)\n"
            "and the training step (--train). The default run has all three; --percall and --train run only\n"
            "the parts they name, --ops or --modes add the sweep."),
        epilog="examples:\n  python -m selu_ext.bench --quick\n"
               "  python -m selu_ext.bench --ops selu --modes forward --dtypes fp32 --sizes 2^16..2^24\n"
               "  python -m selu_ext.bench --device cuda --json out/bench.json --csv out/bench.csv\n"
               "  python -m selu_ext.bench --from-json out/bench.json --plot out/bench.png")
    a = p.add_argument
    a("--device", choices=["cpu", "cuda", "auto"], default="auto",
      help="where to run (default: auto = cuda if available, else cpu)")
    a("--ops", type=_choices(OPS), help="ops: selu, fused (SELU then AlphaDropout), dropout (AlphaDropout)")
    a("--modes", type=_choices(MODES),
      help="forward (y = f(x)); backward (only the backward, on a prepared graph); fwdbwd (both); percall "
           "(wall clock per forward+backward call on small tensors); accuracy (float32 max error in ULP of "
           "float64); memory (bytes kept for backward in Linear -> act -> Linear beyond the Linears). GB/s "
           "counts each input read and each output written once; %%copy compares it with dst.copy_(src) "
           "measured in the same run. Default all, as for --ops and --dtypes")
    a("--dtypes", type=_choices(tuple(DTYPES), _DTYPE_ALIASES),
      help="float32, bfloat16, float16, float64 (or fp32, bf16, fp16, fp64)")
    a("--sizes", type=parse_sizes,
      help=f"elements per tensor: a list (4096,64K,1M,2^20,1<<20) and/or power-of-two ranges 2^12..2^24 "
           f"(every power) or 2^12..2^24:2 (every 2nd). Default: CUDA {_sizes(CUDA_SIZES)}; CPU {_sizes(CPU_SIZES)}")
    a("--threads", type=int, nargs="+",
      help="CPU intra-op thread counts, one sweep each (default: 1 and the machine's count)")
    a("--p", type=float, default=0.1, help="dropout probability (default %(default)s)")
    a("--percall", action="store_true",
      help=f"per-call rows: every public function and module against its torch equivalent at "
           f"{_sizes(percall.SIZES)} float32 elements, in the modes {', '.join(percall.MODES)}")
    a("--train", action="store_true",
      help="training step of a 784-8x512-10 SELU MLP and the tutorial's ConvNet: torch.nn, selu_ext.nn.convert, "
           "the floor (SELU and AlphaDropout as nn.Identity), torch.compile of each: step time, bytes kept "
           "for backward and the share of the attainable saving captured")
    a("--train-models", type=_choices(train.MODELS),
      help=f"training-step models: {', '.join(train.MODELS)} (default all; --quick mlp)")
    a("--train-batches", type=parse_sizes,
      help=f"training-step batch sizes (default {','.join(map(str, train.BATCHES))}; --quick "
           f"{','.join(map(str, train.QUICK_BATCHES))})")
    a("--train-dtypes", type=_choices(train.DTYPES),
      help=f"training-step dtypes: {', '.join(train.DTYPES)} (default all; --quick {train.QUICK_DTYPES[0]})")
    a("--no-train-compile", dest="train_compile", action="store_false",
      help="skip the torch.compile variants of the training step only (5-100 s of compilation per model "
           "on a loaded 2-core CPU; each row's first_step_s says how long)")
    a("--quick", action="store_true",
      help=f"a short run (CPU: under 30 s): sizes {_sizes(QUICK_SIZES['cpu'])} (CUDA: "
           f"{_sizes(QUICK_SIZES['cuda'])}), float32 (CUDA: and bfloat16), fewer samples, no "
           "torch.compile on CPU; explicit flags still apply")
    a("--no-compile", action="store_true",
      help="skip the torch.compile peers (--quick on CPU skips them: one compile outlasts the whole quick run)")
    a("--no-avx2-peer", dest="avx2_peer", action="store_false", help="CPU: skip the F.selu[avx2] peer")
    a("--cpu-variants", action="store_true",
      help="CPU: also time selu_ext's other CPU kernels (avx512, avx2, baseline) as rows selu_ext[avx2] ...")
    a("--min-time", type=float, help="seconds of timing per row (default 0.1 on CPU, 0.05 on CUDA; --quick 0.02)")
    a("--max-time", type=float, help="cap on seconds of timing per row (default 2; --quick 0.3)")
    a("--min-samples", type=int, help="fewest timing samples per row (default 7, CUDA 10; --quick 5)")
    a("--cuda-graphs", action="store_true",
      help="CUDA: time replays of a captured CUDA graph of each row's calls: GPU time only, without the "
           "per-call host cost (Python, dispatcher, autograd, launch) an eager user pays")
    a("--budget", type=float,
      help=f"stop measuring after this many seconds, keeping the rows (default {CUDA_BUDGET_S:.0f} on CUDA, "
           "none on CPU; 0 = none)")
    a("--seed", type=int, default=0, help="seed of the input data (default 0)")
    a("--json", metavar="FILE", help="write meta, rows and targets as JSON (rewritten as the run goes)")
    a("--csv", metavar="FILE", help="write the rows as CSV, the run's metadata in every line")
    a("--plot", metavar="FILE.png", help="plot GB/s against size (needs matplotlib)")
    a("--from-json", metavar="FILE",
      help="measure nothing: print a stored run's rows and targets, write --csv / --plot / --json")
    a("--emit-rows", action="store_true",
      help="internal: torch's eager rows only, stored by --json (the F.selu[avx2] subprocess)")
    return p


def config_from_args(ns: argparse.Namespace, argv):
    import torch

    device = ns.device if ns.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("selu_ext.bench: --device cuda, but torch.cuda.is_available() is False")
    quick, cuda = ns.quick, device == "cuda"
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = [torch.get_num_threads()] if cuda else ns.threads or list(dict.fromkeys([1, ncpu]))
    if any(t < 1 for t in threads):
        raise SystemExit("selu_ext.bench: --threads must be positive")
    if ns.cuda_graphs and not cuda:
        raise SystemExit("selu_ext.bench: --cuda-graphs times CUDA graphs; it needs --device cuda (and a GPU)")
    # The parts of the run: all three by default; otherwise those named.
    whole = not (ns.ops or ns.modes or ns.percall or ns.train)
    sweep = whole or bool(ns.ops or ns.modes)
    budget = ns.budget if ns.budget is not None else CUDA_BUDGET_S if cuda else None
    cfg = argparse.Namespace(**vars(ns))
    cfg.__dict__.update(
        device=device, threads=threads,
        ops=(ns.ops or list(OPS)) if sweep else [],
        modes=(ns.modes or list(MODES)) if sweep else [],
        per_call=ns.percall or whole, train=ns.train or whole,
        train_models=ns.train_models or (["mlp"] if quick else list(train.MODELS)),
        dtypes=ns.dtypes or ((["float32", "bfloat16"] if cuda else ["float32"]) if quick else list(DTYPES)),
        sizes=ns.sizes or (QUICK_SIZES[device] if quick else CUDA_SIZES if cuda else CPU_SIZES),
        percall_sizes=QUICK_PERCALL_SIZES if quick else PERCALL_SIZES,
        compile=False if ns.no_compile or (quick and not cuda) else None,
        min_time=ns.min_time if ns.min_time is not None else 0.02 if quick else 0.05 if cuda else 0.1,
        max_time=ns.max_time if ns.max_time is not None else 0.3 if quick else 2.0,
        min_samples=ns.min_samples or (5 if quick else 7),
        budget=budget or None,  # 0: none
        command="python -m selu_ext.bench " + " ".join(shlex.quote(a) for a in argv))
    return cfg


def from_json(ns, out) -> int:
    from . import report

    with open(ns.from_json) as f:
        doc = json.load(f)
    meta, rows = doc["meta"], doc["rows"]
    report.print_header(meta, out)
    for i, r in enumerate(rows):  # each part's rows in its own table's lines
        if r["mode"] == "step":
            print(report.format_step(r), file=out)
        elif r["mode"].startswith("call_"):
            if r["role"] == "ext":  # the pair's torch row comes first
                print(report.format_pair(rows[i - 1:i + 1]), file=out)
        else:
            print(report.format_row(r), file=out)
    return 0 if report.finish(ns, meta, rows, out)[1] else 3


def main(argv: Optional[list] = None, out=None, extra_impls: Optional[dict] = None) -> int:
    """The benchmark from command-line arguments; the exit status: 0, or 3 if only the plot's matplotlib is missing."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    ns = build_parser().parse_args(argv)
    if ns.from_json:
        return from_json(ns, out)
    from .runner import run

    # torch._inductor imports cpp_extension, which warns on a CPU-only machine that no CUDA runtime was found:
    # noise in a CPU run's output.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    res = run(config_from_args(ns, argv), out=out, extra_impls=extra_impls)
    return 0 if res.plot_ok else 3
