"""Command line of ``python -m selu_ext.bench``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from typing import Optional

from .candidates import DTYPES, MODES, OPS, ROLES
from .train import DTYPES as TRAIN_DTYPES
from .train import MODELS as TRAIN_MODELS

CUDA_SIZES = [2**k for k in (12, 16, 20, 22, 24, 26, 28)]
CPU_SIZES = [2**k for k in range(12, 25, 2)]  # 2^12, 2^14, ..., 2^24
QUICK_CPU_SIZES = [2**12, 2**20]
QUICK_CUDA_SIZES = [2**12, 2**20, 2**24]
CUDA_BUDGET_S = 390.0

_DTYPE_ALIASES = {"fp32": "float32", "f32": "float32", "float": "float32",
                  "bf16": "bfloat16", "fp16": "float16", "f16": "float16", "half": "float16",
                  "fp64": "float64", "f64": "float64", "double": "float64"}
_SUFFIX = {"k": 2**10, "m": 2**20, "g": 2**30}


def parse_size(tok: str) -> int:
    """4096, 64K, 1M, 2^20, 1<<20."""
    t = tok.strip().lower()
    m = re.fullmatch(r"(\d+)\s*(?:\^|\*\*)\s*(\d+)", t)
    if m:
        return int(m.group(1)) ** int(m.group(2))
    m = re.fullmatch(r"(\d+)\s*<<\s*(\d+)", t)
    if m:
        return int(m.group(1)) << int(m.group(2))
    m = re.fullmatch(r"(\d+)([kmg])", t)
    if m:
        return int(m.group(1)) * _SUFFIX[m.group(2)]
    if t.isdigit():
        return int(t)
    raise argparse.ArgumentTypeError(f"bad size {tok!r} (use 4096, 64K, 1M, 2^20 or 1<<20)")


def parse_sizes(text: str) -> list[int]:
    """A comma/space separated list of sizes and power-of-two ranges
    ``2^12..2^24`` (every power) or ``2^12..2^24:2`` (every 2nd)."""
    out: list[int] = []
    for tok in re.split(r"[,\s]+", text.strip()):
        if not tok:
            continue
        m = re.fullmatch(r"(.+?)\.\.(.+?)(?::(\d+))?", tok)
        if m:
            lo, hi, step = parse_size(m.group(1)), parse_size(m.group(2)), int(m.group(3) or 1)
            if lo <= 0 or lo & (lo - 1) or hi & (hi - 1):
                raise argparse.ArgumentTypeError(f"range {tok!r}: ends must be powers of two")
            out += [2**k for k in range(lo.bit_length() - 1, hi.bit_length(), step)]
        else:
            out.append(parse_size(tok))
    if not out or any(s <= 0 for s in out):
        raise argparse.ArgumentTypeError(f"bad size list {text!r}")
    return list(dict.fromkeys(out))


def _choices(allowed, aliases=None):
    def parse(text: str) -> list[str]:
        out = []
        for tok in re.split(r"[,\s]+", text.strip()):
            if not tok:
                continue
            tok = (aliases or {}).get(tok.lower(), tok)
            if tok == "all":
                out += list(allowed)
                continue
            if tok not in allowed:
                raise argparse.ArgumentTypeError(f"{tok!r} is not one of {', '.join(allowed)}")
            out.append(tok)
        return list(dict.fromkeys(out))
    return parse


def _csv_list(text: str) -> list[str]:
    return [t for t in re.split(r"[,\s]+", text.strip()) if t]


def machine_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m selu_ext.bench",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Benchmark selu_ext against PyTorch: eager F.selu / nn.SELU, torch.compile, and on\n"
            "the CPU F.selu with PyTorch's AVX2 kernels (a subprocess with\n"
            "ATEN_CPU_CAPABILITY=avx2); SELU+AlphaDropout fused against F.selu+F.alpha_dropout;\n"
            "AlphaDropout against F.alpha_dropout. Every result is checked against a float64\n"
            "reference before it is timed (a wrong one is reported WRONG, not timed). Prints a\n"
            "table as it goes, then the targets (PASS/MISS) evaluated from the rows.\n\n"
            "A run has three parts: the sweep (--ops, --modes, --dtypes, --sizes), the per-call\n"
            "rows (--percall) and the training step (--train). The default run has all three;\n"
            "--percall and --train run only the parts they name, --ops or --modes add the sweep."),
        epilog=(
            "modes: forward (y = f(x)); backward (only the backward, on a prepared graph, via\n"
            "  torch.autograd.grad(..., retain_graph=True)); fwdbwd (both); percall (wall-clock\n"
            "  time per forward+backward call with autograd on 4K-64K elements); accuracy (float32\n"
            "  max error in ULP against float64); memory (bytes kept for backward in\n"
            "  Linear -> act -> Linear beyond the Linears).\n"
            "GB/s counts each input read once and each output written once; %copy compares it\n"
            "with dst.copy_(src) measured in the same run.\n\n"
            "examples:\n"
            "  python -m selu_ext.bench --quick\n"
            "  python -m selu_ext.bench --device cuda --json out/bench.json --csv out/bench.csv\n"
            "  python -m selu_ext.bench --ops selu --modes forward --dtypes fp32 --sizes 2^16..2^24\n"
            "  python -m selu_ext.bench --percall --train --no-compile --json out/step.json\n"
            "  python -m selu_ext.bench --from-json out/bench.json --plot out/bench.png"))
    a = p.add_argument
    a("--device", choices=["cpu", "cuda", "auto"], default="auto",
      help="where to run (default: auto = cuda if available, else cpu)")
    a("--ops", type=_choices(OPS), default=None,
      help="comma-separated ops: selu, fused (SELU then AlphaDropout), dropout (AlphaDropout); "
           "default all")
    a("--modes", type=_choices(MODES), default=None,
      help=f"comma-separated modes: {', '.join(MODES)}; default all")
    a("--dtypes", type=_choices(tuple(DTYPES), _DTYPE_ALIASES), default=None,
      help="comma-separated dtypes: float32, bfloat16, float16, float64 (or fp32, bf16, fp16, "
           "fp64); default all")
    a("--sizes", type=parse_sizes, default=None,
      help="elements per tensor: a list (4096,64K,1M,2^20,1<<20) and/or power-of-two ranges "
           "2^12..2^24 (every power) or 2^12..2^24:2 (every 2nd). Default: CUDA "
           "2^12,2^16,2^20,2^22,2^24,2^26,2^28; CPU 2^12..2^24:2")
    a("--percall-sizes", type=parse_sizes, default=None,
      help="sizes of the percall mode (default 4K,16K,64K)")
    a("--threads", type=int, nargs="+", default=None,
      help="CPU intra-op thread counts, one sweep each (default: 1 and the machine's count); "
           "ignored on CUDA")
    a("--p", type=float, default=0.1, help="dropout probability (default 0.1)")
    a("--percall", action="store_true",
      help="per-call rows: every public function and module (selu, alpha_dropout, "
           "feature_alpha_dropout, selu_alpha_dropout, nn.SELU, nn.AlphaDropout, "
           "nn.FeatureAlphaDropout, nn.SELUAlphaDropout) against its torch equivalent at 16, "
           "4096 and 65536 float32 elements, under no_grad, inference_mode, with grad and "
           "forward+backward, interleaved, one CPU thread (in the default run)")
    a("--train", action="store_true",
      help="training step: forward, backward, optimizer step and zero_grad of a 784-8x512-10 "
           "SELU MLP and the tutorial's ConvNet at batch 64, 256, 1024 in float32 and bfloat16, "
           "for torch.nn, "
           "selu_ext.nn.convert, the floor (SELU and AlphaDropout as nn.Identity) and "
           "torch.compile of each (--no-compile skips those): step time, bytes kept for "
           "backward (CUDA: peak memory) and the share of the attainable saving selu_ext "
           "captures (in the default run)")
    a("--train-models", type=_choices(TRAIN_MODELS), default=None,
      help="training-step models: mlp, convnet (default both; --quick mlp)")
    a("--train-batches", type=parse_sizes, default=None,
      help="training-step batch sizes (default 64,256,1024; --quick 64)")
    a("--train-dtypes", type=_choices(TRAIN_DTYPES), default=None,
      help="training-step dtypes of the parameters and input: float32, bfloat16 (default "
           "both; --quick float32)")
    a("--no-train-compile", dest="train_compile", action="store_false",
      help="skip the torch.compile variants of the training step only (their compilation "
           "took 5-100 s per model on a loaded 2-core CPU, the longest with inductor's "
           "on-disk cache cold; each row's first_step_s says how long)")
    a("--quick", action="store_true",
      help="a short run (CPU: under 30 s): sizes 2^12 and 2^20 (CUDA: and 2^24), float32 "
           "(CUDA: and bfloat16), fewer samples, no torch.compile on CPU; explicit flags still "
           "apply")
    a("--compile", dest="compile", action="store_true", default=None,
      help="include the torch.compile peers (the default, except with --quick on CPU, where one "
           "compile takes longer than the whole quick run)")
    a("--no-compile", dest="compile", action="store_false", help="skip the torch.compile peers")
    a("--no-avx2-peer", dest="avx2_peer", action="store_false",
      help="CPU: skip the F.selu[avx2] peer subprocess")
    a("--cpu-variants", action="store_true",
      help="CPU: also time selu_ext's other CPU kernel variants (avx512, avx2, baseline) as "
           "rows selu_ext[avx2] ... (accuracy rows always cover every variant)")
    a("--impls", type=_csv_list, default=None,
      help=f"keep only these implementations, by name (F.selu, selu_ext, ...) or role "
           f"({', '.join(ROLES)})")
    a("--min-time", type=float, default=None,
      help="seconds of timing per row (default 0.1 on CPU, 0.05 on CUDA; --quick 0.02); slow "
           "calls still get --min-samples samples")
    a("--max-time", type=float, default=None,
      help="cap on seconds of timing per row (default 2; --quick 0.3)")
    a("--min-samples", type=int, default=None,
      help="fewest timing samples per row (default 7 on CPU, 10 on CUDA; --quick 5)")
    a("--no-rotate", dest="rotate", action="store_false",
      help="reuse the same input buffers every call (warm cache) instead of rotating through "
           ">= 2x the last-level cache (L2 on CUDA)")
    a("--cuda-graphs", action="store_true",
      help="CUDA: time replays of a captured CUDA graph of each row's calls instead of the "
           "calls as launched: GPU time only, without the per-call host cost (Python, "
           "dispatcher, autograd, launch), which is what a user of eager mode pays and what "
           "dominates small and mid-size tensors. The header says which timing a run used; "
           "targets are evaluated on either")
    a("--budget", type=float, default=None,
      help=f"stop measuring after this many seconds, keeping what was measured (default: "
           f"{CUDA_BUDGET_S:.0f} on CUDA, none on CPU; 0 = none)")
    a("--seed", type=int, default=0, help="seed of the input data (default 0)")
    a("--json", metavar="FILE", help="write meta, rows and targets as JSON (rewritten as the run "
                                     "goes, so a run cut short keeps its rows)")
    a("--csv", metavar="FILE", help="write the rows as CSV, run metadata repeated in every line")
    a("--plot", metavar="FILE.png",
      help="plot GB/s against size from the rows (needs matplotlib: pip install matplotlib)")
    a("--from-json", metavar="FILE",
      help="measure nothing: load the rows of a stored run, print its table and targets, and "
           "write --csv / --plot / --json from them")
    a("--emit-rows", action="store_true",
      help="internal: print each row as a JSON line (the F.selu[avx2] subprocess uses it)")
    return p


def config_from_args(ns: argparse.Namespace, argv) -> "object":
    import torch

    from .runner import Config, command_line

    device = ns.device if ns.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("selu_ext.bench: --device cuda, but torch.cuda.is_available() is False")
    quick, cuda = ns.quick, device == "cuda"
    if cuda:
        sizes, threads = (QUICK_CUDA_SIZES if quick else CUDA_SIZES), [torch.get_num_threads()]
    else:
        sizes = QUICK_CPU_SIZES if quick else CPU_SIZES
        threads = ns.threads or list(dict.fromkeys([1, machine_threads()]))
    if any(t < 1 for t in threads):
        raise SystemExit("selu_ext.bench: --threads must be positive")
    if ns.cuda_graphs and not cuda:
        raise SystemExit("selu_ext.bench: --cuda-graphs times CUDA graphs; it needs --device cuda "
                         "(and a GPU)")
    if not 0.0 <= ns.p < 1.0:
        raise SystemExit("selu_ext.bench: --p must be in [0, 1)")
    budget = ns.budget if ns.budget is not None else CUDA_BUDGET_S if cuda and not ns.emit_rows else None
    # The parts of the run: all three by default; otherwise those named.
    sweep = bool(ns.ops or ns.modes) or not (ns.percall or ns.train)
    whole = not (ns.ops or ns.modes or ns.percall or ns.train)
    same = ("train_batches", "train_dtypes", "train_compile", "p", "avx2_peer", "cpu_variants", "impls", "rotate",
            "cuda_graphs", "quick", "seed", "json", "csv", "plot", "emit_rows")
    return Config(
        device=device,
        ops=(ns.ops or list(OPS)) if sweep else [],
        modes=(ns.modes or list(MODES)) if sweep else [],
        per_call=ns.percall or whole,
        train=ns.train or whole,
        train_models=ns.train_models or (["mlp"] if quick else list(TRAIN_MODELS)),
        dtypes=ns.dtypes or ((["float32", "bfloat16"] if cuda else ["float32"]) if quick
                             else list(DTYPES)),
        sizes=ns.sizes or sizes,
        percall_sizes=ns.percall_sizes or ([4096] if quick else [4096, 16384, 65536]),
        threads=threads,
        compile=ns.compile if ns.compile is not None else (False if quick and not cuda else None),
        min_time=(ns.min_time if ns.min_time is not None
                  else 0.02 if quick else 0.05 if cuda else 0.1),
        max_time=ns.max_time if ns.max_time is not None else (0.3 if quick else 2.0),
        min_samples=ns.min_samples or (5 if quick else 7),
        budget=budget or None,  # 0: none
        command=command_line(argv),
        **{k: getattr(ns, k) for k in same},
    )


def from_json(ns, out) -> int:
    from . import report, targets

    with open(ns.from_json) as f:
        doc = json.load(f)
    meta, rows = doc["meta"], doc["rows"]
    report.print_header(meta, out)
    for r in rows:
        print(report.format_row(r), file=out)
    report.fill_speedups(rows)
    tg = targets.evaluate(rows, meta)
    report.print_targets(tg, out)
    print(report.answer(rows, meta), file=out)
    if ns.json:
        report.write_json(ns.json, meta, rows, tg, {})
    if ns.csv:
        report.write_csv(ns.csv, meta, rows)
    if ns.plot and not report.plot(ns.plot, rows, meta, out):
        return 3
    return 0


def main(argv: Optional[list] = None, out=None, extra_impls: Optional[dict] = None) -> int:
    """Run the benchmark from command-line arguments; returns the exit status (0;
    3 if only the plot step failed because matplotlib is missing)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    ns = build_parser().parse_args(argv)
    if ns.from_json:
        return from_json(ns, out)
    from .runner import run

    # torch._inductor imports cpp_extension, which warns on a CPU-only machine that
    # no CUDA runtime was found: noise in a CPU run's output.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    cfg = config_from_args(ns, argv)
    res = run(cfg, out=out, extra_impls=extra_impls)
    return 0 if res.plot_ok else 3
