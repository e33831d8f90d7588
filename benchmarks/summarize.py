#!/usr/bin/env python3
"""Summarize stored benchmark runs as markdown, for README.md and benchmarks/RESULTS.md.

    python benchmarks/summarize.py                 # into README.md and RESULTS.md between the markers
    python benchmarks/summarize.py --stdout        # print it
    python benchmarks/summarize.py --out FILE.md   # write it to a file

Reads every ``benchmarks/results/<machine>/bench.json`` written by
``python -m selu_ext.bench --json`` (e.g. results/cpu, results/h100) and writes, for
each run: what ran (date, device, versions, command), key rows (float32 at 1M and
16M elements, and 256M on CUDA; per-call time of small tensors; accuracy; memory),
and the targets with PASS/MISS and the measured value. Every number comes from the
stored JSON; nothing is typed by hand. Needs only the standard library.

Each block goes between its markers, ``<!-- NAME:start -->`` and
``<!-- NAME:end -->``, in every --into file that has them (default: README.md and
benchmarks/RESULTS.md): ``bench-headline`` (README's one short table per device),
``bench-summary`` (every run in full) and ``train-summary``. Without any markers
the markdown goes to stdout instead (or to --out). tests/test_readme.py checks that
both files hold what this script generates from the stored runs.

The training-step headline comes from ``benchmarks/results/<machine>/train.json``
(``python -m selu_ext.bench --percall --train --json ...``; benchmarks/cpu_train.sh
makes the stored CPU run) and from any bench.json with training-step rows: step time
and memory of torch.nn, selu_ext and the floor, the share of the attainable saving
selu_ext captures, per-call ratios, and those targets.
"""

from __future__ import annotations

import argparse
import functools
import glob
import importlib.util
import json
import os
import sys

import summarize_train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTO = (os.path.join(ROOT, "README.md"), os.path.join(ROOT, "benchmarks", "RESULTS.md"))
M = 2**20
# README's short table per device: the run, and the size where it measures the
# kernels (one CPU thread at 2^20; on the GPU 2^28, since below 2^26 the GPU
# machine's host, not the kernel, sets the time).
HEADLINE_RUNS = (("cpu", M, 1), ("h100", 256 * M, None))
HEADLINE_ROWS = (("selu", "forward", "`selu` forward"), ("selu", "backward", "`selu` backward"),
                 ("dropout", "fwdbwd", "`alpha_dropout` forward + backward"),
                 ("fused", "fwdbwd", "`selu_alpha_dropout` forward + backward"))


def _ms(v):
    if v is None:
        return "-"
    return f"{v:.4f}" if v < 1 else f"{v:.2f}"


def _x(v):
    return "-" if v is None else f"{v:.2f}x"


def _f(v, fmt):
    return "-" if v is None else format(v, fmt)


@functools.lru_cache(maxsize=None)
def _targets_module():
    """selu_ext/bench/targets.py loaded as a file: it is pure Python, so runs can be
    evaluated without importing torch or building selu_ext."""
    path = os.path.join(ROOT, "selu_ext", "bench", "targets.py")
    spec = importlib.util.spec_from_file_location("_selu_ext_bench_targets", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _size(n):
    return _targets_module().size_str(n)


def load_runs(results_dir, name="bench.json"):
    runs = []
    for path in sorted(glob.glob(os.path.join(results_dir, "*", name))):
        with open(path) as f:
            doc = json.load(f)
        doc["_path"] = os.path.relpath(path, ROOT)
        doc["_machine"] = os.path.basename(os.path.dirname(path))
        runs.append(doc)
    return runs


def _index(rows):
    idx = {}
    for r in rows:
        idx[(r["op"], r["mode"], r["dtype"], r["size"], r.get("threads"), r["role"])] = r
    return idx


def key_rows_table(doc):
    meta, rows = doc["meta"], doc["rows"]
    dev = meta["device"]
    idx = _index(rows)
    sizes = [M, 16 * M] + ([256 * M] if dev == "cuda" else [])
    threads = sorted({r.get("threads") for r in rows if r["mode"] in ("forward", "backward", "fwdbwd")},
                     key=lambda t: t or 0)
    has_avx2 = any(r["role"] == "eager_avx2" for r in rows)
    head = ["op", "mode", "size"] + (["threads"] if dev == "cpu" else []) + \
           ["eager ms"] + (["eager[avx2] ms"] if has_avx2 else []) + \
           ["compile ms", "selu_ext ms", "vs eager"] + (["vs avx2"] if has_avx2 else []) + \
           ["vs compile", "selu_ext GB/s", "% of copy"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    n = 0
    for op in ("selu", "fused", "dropout"):
        for mode in ("forward", "backward", "fwdbwd"):
            for size in sizes:
                for t in threads:
                    ext = idx.get((op, mode, "float32", size, t, "ext"))
                    if ext is None:
                        continue
                    eager = idx.get((op, mode, "float32", size, t, "eager"))
                    avx2 = idx.get((op, mode, "float32", size, t, "eager_avx2"))
                    comp = idx.get((op, mode, "float32", size, t, "compile"))

                    def med(r):
                        if r is None:
                            return "-"
                        if r["status"] == "ok":
                            return _ms(r.get("median_ms"))
                        return {"WRONG": "WRONG"}.get(r["status"], "skipped" if "skipped" in r["status"]
                                                      else "ERROR" if r["status"].startswith("ERROR")
                                                      else "n/a")
                    cells = [op, mode, _size(size)] + ([str(t)] if dev == "cpu" else []) + [med(eager)]
                    if has_avx2:
                        cells.append(med(avx2))
                    cells += [med(comp), med(ext), _x(ext.get("speedup_vs_eager"))]
                    if has_avx2:
                        cells.append(_x(ext.get("speedup_vs_eager_avx2")))
                    cells += [_x(ext.get("speedup_vs_compile")), _f(ext.get("gbps"), ".1f"),
                              _f(ext.get("pct_copy_bw"), ".1f")]
                    lines.append("| " + " | ".join(cells) + " |")
                    n += 1
    return lines if n else []


def percall_table(doc):
    rows = [r for r in doc["rows"] if r["mode"] == "percall" and r["dtype"] == "float32"]
    if not rows:
        return []
    idx = _index(rows)
    out = ["| size | threads | F.selu us | nn.SELU us | selu_ext us | selu_ext.nn.SELU us | selu_ext - F.selu |",
           "|---|---|---|---|---|---|---|"]
    for size in sorted({r["size"] for r in rows}):
        for t in sorted({r.get("threads") for r in rows}, key=lambda t: t or 0):
            e = idx.get(("selu", "percall", "float32", size, t, "eager"))
            mo = idx.get(("selu", "percall", "float32", size, t, "module"))
            x = idx.get(("selu", "percall", "float32", size, t, "ext"))
            xn = [r for r in rows if r["impl"] == "selu_ext.nn.SELU" and r["size"] == size and r.get("threads") == t]
            us = lambda r: "-" if not r or r.get("median_ms") is None else f"{r['median_ms'] * 1e3:.1f}"  # noqa: E731
            d = "-"
            if e and x and e.get("median_ms") and x.get("median_ms"):
                d = f"{(x['median_ms'] - e['median_ms']) * 1e3:+.1f} us"
            out.append(f"| {_size(size)} | {t} | {us(e)} | {us(mo)} | {us(x)} | {us(xn[0] if xn else None)} | {d} |")
    return out


def accuracy_memory(doc):
    out = []
    acc = [r for r in doc["rows"] if r["mode"] == "accuracy" and r["status"] == "ok"]
    if acc:
        out.append("float32 forward, max error against float64 (" + acc[0]["note"].split("; ", 1)[-1] + "): " +
                   ", ".join(f"{r['impl']} {r['max_ulp']:.2f} ULP" for r in acc) + ".")
    mem = [r for r in doc["rows"] if r["mode"] == "memory" and r["status"] == "ok"]
    if mem:
        out.append("")
        out.append("Bytes kept for backward beyond what the Linears keep (" +
                   mem[0]["note"].split(":")[0] + "): " +
                   ", ".join(f"{r['impl']} {r['saved_bytes']} B" for r in mem) + ".")
    return out


def targets_table(doc):
    tg = doc.get("targets")
    if not tg:
        tg = _targets_module().evaluate(doc["rows"], doc.get("meta"))
    tmod = _targets_module()
    out = ["| result | target | measured | worst row |", "|---|---|---|---|"]
    for t in tg:
        thr = "" if t.get("kind") == "info" else f" ({tmod.format_threshold(t)})"
        out.append(f"| {t['result']} | {t['text']}{thr} | "
                   f"{tmod.format_value(t)} | {t.get('where') or t.get('detail') or '-'} |")
    n = {k: sum(t["result"] == k for t in tg) for k in ("PASS", "MISS", "n/a")}
    out.append("")
    out.append(f"{n['PASS']} PASS, {n['MISS']} MISS, {n['n/a']} n/a.")
    return out


def headline(runs):
    """README's table per device: float32 time per call of the main ops at one size."""
    by_machine = {doc["_machine"]: doc for doc in runs}
    out = ["Generated by `python benchmarks/summarize.py` from the stored runs named; do not "
           "edit by hand. Every run in full: [benchmarks/RESULTS.md](benchmarks/RESULTS.md)."]
    for machine, size, threads in HEADLINE_RUNS:
        doc = by_machine.get(machine)
        if doc is None:
            continue
        meta = doc["meta"]
        rows = [r for r in doc["rows"] if r["dtype"] == "float32" and r["size"] == size
                and (threads is None or r.get("threads") == threads)]
        idx = {(r["op"], r["mode"], r["role"]): r for r in rows}
        where = f", {threads} thread" if threads else ""
        out += ["", f"**{meta['device_name']}** ({meta['device']}), float32, {_size(size)} elements"
                    f"{where}, median ms per call (run {meta['date'][:10]}, `{doc['_path']}`):", "",
                "| op | eager | torch.compile | selu_ext | vs eager | vs compile |",
                "|---|---|---|---|---|---|"]
        for op, mode, text in HEADLINE_ROWS:
            ext = idx.get((op, mode, "ext"))
            if ext is None:
                continue
            ms = lambda r: _ms(r.get("median_ms")) if r and r["status"] == "ok" else "-"  # noqa: E731
            out.append(f"| {text} | {ms(idx.get((op, mode, 'eager')))} | "
                       f"{ms(idx.get((op, mode, 'compile')))} | {ms(ext)} | "
                       f"{_x(ext.get('speedup_vs_eager'))} | {_x(ext.get('speedup_vs_compile'))} |")
    return "\n".join(out) + "\n"


def blocks(results_dir, only=None):
    """Every generated block by marker name, from the stored runs."""
    runs = load_runs(results_dir)
    # Training-step rows: the stored train.json runs, and any full run that has them.
    train_runs = load_runs(results_dir, "train.json") + [
        r for r in runs if any(row["mode"] == "step" for row in r["rows"])]
    if only:
        runs = [r for r in runs if r["_machine"] in only]
        train_runs = [r for r in train_runs if r["_machine"] in only]
    return {"bench-headline": headline(runs), "bench-summary": summarize(runs),
            "train-summary": summarize_train.train_summary(train_runs, _targets_module())}


def fill(text, generated):
    """``text`` with each ``<!-- NAME:start -->`` ... ``<!-- NAME:end -->`` pair it has
    holding generated[NAME]; and the names filled."""
    filled = []
    for name, md in generated.items():
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        if start in text and end in text and text.index(start) < text.index(end):
            head, rest = text.split(start, 1)
            text = head + start + "\n" + md + end + rest.split(end, 1)[1]
            filled.append(name)
    return text, filled


def summarize(runs):
    out = ["Generated by `python benchmarks/summarize.py` from the stored runs below; do not edit by hand."]
    if not runs:
        out += ["", "No stored runs under benchmarks/results/."]
    for doc in runs:
        meta = doc["meta"]
        bi = meta.get("build_info", {})
        out += ["", f"### {doc['_machine']}: {meta['device_name']} ({meta['device']})", ""]
        copy = ", ".join(f"{v:.1f} GB/s ({k} thread(s))" if meta["device"] == "cpu" else f"{v:.0f} GB/s"
                         for k, v in meta.get("copy_gbps", {}).items())
        out.append(f"Run {meta['date']}: `{meta['command']}`; torch {meta['torch_version']}, "
                   f"selu_ext {meta['version']}, CPU capability torch {meta['torch_cpu_capability']} / "
                   f"selu_ext {meta['selu_ext_cpu_capability']}"
                   + (f", CUDA archs {bi.get('cuda_archs')}" if meta["device"] == "cuda" else "")
                   + f"; copy bandwidth {copy}. Source: `{doc['_path']}`."
                   + (" The run stopped at its time budget; rows after it are missing."
                      if meta.get("budget_hit") else "")
                   + (f" Warning from the run: {meta['canary_warning']}." if meta.get("canary_warning") else ""))
        kr = key_rows_table(doc)
        if kr:
            cache = ("inputs rotating through 2x the last-level cache" if meta.get("rotate", True)
                     else "inputs reused every call (warm cache)")
            out += ["", f"float32, median time per call ({cache}):", ""] + kr
        pc = percall_table(doc)
        if pc:
            out += ["", "Small tensors, forward+backward with autograd, wall clock per call:", ""] + pc
        am = accuracy_memory(doc)
        if am:
            out += [""] + am
        out += ["", "Targets:", ""] + targets_table(doc)
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=os.path.join(ROOT, "benchmarks", "results"),
                    help="folder of <machine>/bench.json runs (default benchmarks/results)")
    ap.add_argument("--into", action="append", metavar="FILE",
                    help="file with summary markers to fill; repeatable "
                         "(default README.md and benchmarks/RESULTS.md)")
    ap.add_argument("--only", action="append", metavar="MACHINE",
                    help="summarize only this run folder (results/MACHINE); repeatable")
    ap.add_argument("--out", help="write the markdown to this file instead")
    ap.add_argument("--stdout", action="store_true", help="print the markdown instead")
    args = ap.parse_args(argv)
    generated = blocks(args.results, args.only)
    md, train_md = generated["bench-summary"], generated["train-summary"]
    if args.out:
        with open(args.out, "w") as f:
            f.write(md + "\n## Training step\n\n" + train_md)
        print(f"summary written to {args.out}", file=sys.stderr)
        return 0
    written = False
    for path in ([] if args.stdout else args.into or INTO):
        if not os.path.exists(path):
            print(f"{os.path.relpath(path)} not found", file=sys.stderr)
            continue
        with open(path) as f:
            text, filled = fill(f.read(), generated)
        if filled:
            with open(path, "w") as f:
                f.write(text)
            print(f"{', '.join(filled)} written into {os.path.relpath(path)}", file=sys.stderr)
            written = True
    if written:
        return 0
    if not args.stdout:
        print("no summary markers found; printing instead", file=sys.stderr)
    sys.stdout.write(md + "\n## Training step\n\n" + train_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
