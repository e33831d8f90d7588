"""Output: the terminal table (one line per row, printed as it is measured), the
run header, the targets section, and the stored forms: JSON (meta + rows +
targets), CSV (one line per row, run metadata repeated in every line) and a plot
drawn from the rows."""

from __future__ import annotations

import csv
import json
import os
import sys
import textwrap
from typing import Optional, TextIO

import torch

import selu_ext

from . import targets as _targets
from .targets import size_str

SPEEDUP_ROLES = ("eager", "module", "eager_avx2", "compile")
ROLE_COLORS = {"eager": "tab:blue", "module": "tab:cyan", "eager_avx2": "tab:purple",
               "compile": "tab:red", "ext": "tab:green", "ext_variant": "tab:olive",
               "custom": "tab:gray"}

ROW_FIELDS = [
    "op", "mode", "dtype", "size", "device", "threads", "impl", "role", "status", "check",
    "median_ms", "p20_ms", "p80_ms", "gbps", "pct_copy_bw",
    *[f"speedup_vs_{r}" for r in SPEEDUP_ROLES],
    "peak_mem", "saved_bytes", "max_err", "max_ulp", "n_buffers", "samples", "calls_per_sample",
    "note", "version", "torch_version",
    "share_time_pct", "share_mem_pct", "first_step_s",  # training-step rows (train.py)
]


def new_row(op: str, mode: str, dtype: str, size: int, device: str, threads, impl: str, role: str,
            **fields) -> dict:
    """A row with every field of ROW_FIELDS, in that order; None where not measured."""
    r = dict.fromkeys(ROW_FIELDS)
    r.update(op=op, mode=mode, dtype=dtype, size=size, device=device, threads=threads, impl=impl,
             role=role, status="ok", check="", note="", version=selu_ext.__version__,
             torch_version=torch.__version__)
    r.update(fields)
    return r


def first_line(e: BaseException) -> str:
    """An exception as one short line for a row's status."""
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0][:200] if msg else ''}"


META_FIELDS = ["device_name", "torch_cpu_capability", "selu_ext_cpu_capability", "date",
               "command", "build_info"]


def _num(v, fmt: str, width: int) -> str:
    if v is None:
        return "-".rjust(width)
    return format(v, fmt).rjust(width)


def _bytes(v) -> str:
    if v is None:
        return "-"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.1f}{unit}"
    return f"{v}B"


# The terminal table fits 120 columns: p20..p80 shows as the spread (p80 - p20) /
# median, and bytes (saved, peak) only on the memory rows, in the note. The JSON and
# CSV keep every field.
HEADER = (f"{'op':<8}{'mode':<9}{'dtype':<9}{'size':>5} {'thr':>3} {'impl':<18}{'status':<8}"
          f"{'median_ms':>9} {'p20-80':>6} {'GB/s':>6} {'%copy':>6} "
          f"{'xeager':>6} {'xmod':>6} {'xavx2':>6} {'xcomp':>6}")
WIDTH = 120


def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_on_hyphens=False)


def short_status(status: str) -> str:
    """ok, WRONG, ERROR, skipped (not run by request), n/a (could not run)."""
    if status in ("ok", "WRONG"):
        return status
    if status.startswith("ERROR"):
        return "ERROR"
    if "skipped" in status:
        return "skipped"
    return "n/a"


def _impl_name(name: str, width: int = 17) -> str:
    return name if len(name) <= width else name[:width - 1] + "~"


def format_row(r: dict) -> str:
    status = short_status(r["status"])
    if r["mode"] == "accuracy":
        timing = f"{'max':>9} {(_num(r.get('max_ulp'), '.1f', 0) + 'ULP'):>6}"
    elif r.get("median_ms") is not None:
        spread = (r["p80_ms"] - r["p20_ms"]) / r["median_ms"] * 100 if r["median_ms"] else None
        timing = f"{r['median_ms']:>9.4f} {(_num(spread, '.0f', 0) + '%'):>6}"
    else:
        timing = f"{'-':>9} {'-':>6}"
    size = size_str(r["size"]) if (r["size"] or 0) < 10**5 or not r["size"] & (r["size"] - 1) else (
        f"{r['size'] / 1e6:.1f}M")
    line = (f"{r['op']:<8}{r['mode']:<9}{r['dtype']:<9}{size:>5} "
            f"{(r.get('threads') or '-')!s:>3} {_impl_name(r['impl']):<18}{status:<8}{timing} "
            f"{_num(r.get('gbps'), '.1f', 6)} {_num(r.get('pct_copy_bw'), '.1f', 6)} "
            f"{_num(r.get('speedup_vs_eager'), '.2f', 6)} {_num(r.get('speedup_vs_module'), '.2f', 6)} "
            f"{_num(r.get('speedup_vs_eager_avx2'), '.2f', 6)} {_num(r.get('speedup_vs_compile'), '.2f', 6)}")
    note = r.get("note") or ""
    if r["mode"] == "memory":
        note = (f"saved {_bytes(r.get('saved_bytes'))}, peak {_bytes(r.get('peak_mem'))}"
                + ("; " + note if note else ""))
    if short_status(r["status"]) not in ("ok", "skipped"):
        line += "\n" + _wrap(r["status"] + (f" | {note}" if note else ""), "    ")
    elif note:
        line += "\n" + _wrap(f"[{note}]", "    ")
    return line


def print_header(meta: dict, out: TextIO) -> None:
    bi = meta.get("build_info", {})
    print(f"selu_ext benchmark  {meta['date']}", file=out)
    print(f"command: {meta['command']}", file=out)
    print(f"device: {meta['device']} ({meta['device_name']})", file=out)
    print(f"torch {meta['torch_version']} (CUDA {meta.get('torch_cuda') or '-'}, triton "
          f"{meta.get('triton_version') or '-'}), python {meta['python']}, selu_ext {meta['version']}",
          file=out)
    print(f"CPU capability: torch {meta['torch_cpu_capability']}, selu_ext "
          f"{meta['selu_ext_cpu_capability']} (compiled: {bi.get('cpu_capabilities_compiled')}; "
          f"supported: {bi.get('cpu_capabilities_supported')})", file=out)
    print(f"threads: {', '.join(map(str, meta['threads']))} (machine: {meta['cpu_count']} CPUs)", file=out)
    print(f"build_info: {json.dumps(bi, sort_keys=True)}", file=out)
    if meta["device"] == "cuda" and not bi.get("cuda"):
        print(f"WARNING: selu_ext was built without CUDA kernels ({bi.get('no_cuda_reason')}): its "
              "CUDA rows time the CPU fallback", file=out)
    cache = f"{meta['cache_bytes'] / 2**20:.0f} MiB {'L2' if meta['device'] == 'cuda' else 'last-level cache'}"
    if meta.get("rotate", True):
        rot = f"inputs rotate through >= 2x the {cache} (cold cache)"
    else:
        rot = f"inputs reused every call (--no-rotate: warm cache; {cache})"
    if meta.get("timing") == "cuda-graph":
        clock = ("CUDA events around replays of a CUDA graph of the calls: GPU time only, no "
                 "per-call host cost; percall rows are still wall clock")
    elif meta["device"] == "cuda":
        clock = "CUDA events around the calls as launched"
    else:
        clock = "perf_counter over blocks of >= 1 ms"
    print(_wrap(f"dropout p={meta['p']}; {rot}; times are medians per call ({clock}); p20-80 is "
                f"(p80 - p20) / median; GB/s counts each input read once and each output written "
                f"once", "").lstrip(), file=out)
    out.flush()


def print_targets(tgts: list[dict], out: TextIO) -> None:
    """Every target the run's rows cover; those with no rows at all (sizes, dtypes or
    thread counts the run never measured, e.g. under --quick) are counted, not listed."""
    print("\nTargets (evaluated from the rows above; worst row shown)", file=out)
    unmeasured = 0
    for t in tgts:
        if t["result"] == "n/a" and t.get("detail") == "no rows":
            unmeasured += 1
            continue
        where = f" at {t['where']}" if t.get("where") else ""
        extra = f" ({t['detail']})" if t.get("detail") else ""
        print(_wrap(f"{t['result']:<5} {t['text']}: {_targets.format_value(t)}{where} "
                    f"[{_targets.format_threshold(t)}]{extra}", "  "), file=out)
    n_pass = sum(t["result"] == "PASS" for t in tgts)
    n_miss = sum(t["result"] == "MISS" for t in tgts)
    n_na = sum(t["result"] == "n/a" for t in tgts) - unmeasured
    print(f"  {n_pass} PASS, {n_miss} MISS, {n_na} n/a"
          + (f"; {unmeasured} not measured by this run (sizes, dtypes or threads not selected)"
             if unmeasured else ""), file=out)
    out.flush()


def answer(rows: list[dict], meta: dict) -> str:
    """One line: is selu_ext faster or slower than PyTorch's eager ops, by how much,
    and where it is slower; each kind of row the run has gets a clause: the kernel
    sweep (forward, backward, fwdbwd), the per-call rows (--percall) and the share of
    the attainable step-time saving in the training step (--train)."""
    ext = [r for r in rows if r["role"] == "ext"]
    timed = [r for r in ext if r.get("speedup_vs_eager") is not None
             and r["mode"] in ("forward", "backward", "fwdbwd")]
    calls = [r for r in ext if r.get("speedup_vs_eager") is not None and r["mode"].startswith("call_")]
    steps = [r for r in ext if r["mode"] == "step" and r.get("share_time_pct") is not None]
    if not (timed or calls or steps):
        return "Answer: no selu_ext row was timed against eager PyTorch in this run."
    path = meta.get("torch_cpu_capability") if meta.get("device") == "cpu" else meta.get("device_name")
    where = f"{meta.get('device')} {path}"
    parts = []
    if timed:
        parts.append(_speed_answer(timed, "selu_ext is", "than eager torch", where))
    if calls:
        parts.append(_speed_answer(calls, "per call, selu_ext is", "than torch",
                                   "" if parts else where))
    if steps:
        parts.append(_step_answer(steps, "" if parts else where))
    return "Answer: " + "; ".join(parts) + "."


def _speed_answer(rows: list[dict], subject: str, peer: str, where: str) -> str:
    """The median speedup over eager PyTorch of ``rows``, its range, and the slowest."""
    sp = sorted(r["speedup_vs_eager"] for r in rows)
    median = sp[len(sp) // 2]
    slower = sorted((r for r in rows if r["speedup_vs_eager"] < 1.0), key=lambda r: r["speedup_vs_eager"])
    head = (f"{subject} {median:.2f}x {'faster' if median >= 1.0 else 'slower'} {peer} "
            f"({where + '; ' if where else ''}median of {len(rows)} rows, {sp[0]:.2f}x..{sp[-1]:.2f}x)")
    if not slower:
        return head + ", slower in none"
    w = slower[0]
    return (head + f", slower in {len(slower)}, worst {w['op']} {w['mode']} {w['dtype']} "
            f"{size_str(w['size'])}{' %sthr' % w['threads'] if w.get('threads') else ''} "
            f"{w['speedup_vs_eager']:.2f}x")


def _step_answer(steps: list[dict], where: str) -> str:
    """selu_ext's training-step rows (role ext: eager, not compiled): the median and
    range of the share of (torch.nn - floor) they captured, and the least one."""
    worst = min(steps, key=lambda r: r["share_time_pct"])
    shares = sorted(r["share_time_pct"] for r in steps)
    model = worst["op"][len("train_"):] if worst["op"].startswith("train_") else worst["op"]
    return (f"a training step with selu_ext captured {shares[len(shares) // 2]:.0f}% of the "
            f"attainable time saving (torch.nn -> floor{', ' + where if where else ''}; median of "
            f"{len(steps)} model/batch points, {shares[0]:.0f}%..{shares[-1]:.0f}%, least at "
            f"{model} batch {worst['size']})")


def fill_speedups(rows: list[dict]) -> None:
    """speedup_vs_<role> = median of that role's row / this row's median, within
    the same (op, mode, dtype, size, device, threads)."""
    groups: dict = {}
    for r in rows:
        if r.get("median_ms") and r["status"] == "ok":
            key = (r["op"], r["mode"], r["dtype"], r["size"], r["device"], r.get("threads"))
            groups.setdefault(key, {}).setdefault(r["role"], r)
    for r in rows:
        key = (r["op"], r["mode"], r["dtype"], r["size"], r["device"], r.get("threads"))
        peers = groups.get(key, {})
        for role in SPEEDUP_ROLES:
            p = peers.get(role)
            ok = r.get("median_ms") and r["status"] == "ok" and p is not None and p is not r
            r[f"speedup_vs_{role}"] = p["median_ms"] / r["median_ms"] if ok else None


def write_json(path: str, meta: dict, rows: list[dict], tgts: list[dict], extra: dict) -> None:
    doc = {"schema": 1, "meta": meta, **extra, "rows": rows, "targets": tgts}
    tmp = path + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, default=str)
    os.replace(tmp, path)


def write_csv(path: str, meta: dict, rows: list[dict]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    m = {k: meta.get(k) for k in META_FIELDS}
    m["build_info"] = json.dumps(meta.get("build_info", {}), sort_keys=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=ROW_FIELDS + META_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**{k: r.get(k) for k in ROW_FIELDS}, **m})


def plot(path: str, rows: list[dict], meta: dict, out: TextIO) -> bool:
    """GB/s against size, one panel per (op, mode) and dtype, one line per
    implementation (the most threads on CPU). False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot needs matplotlib, an optional extra: pip install matplotlib", file=sys.stderr)
        return False
    sweep = [r for r in rows if r["mode"] in ("forward", "backward", "fwdbwd") and r.get("gbps")]
    if not sweep:
        print("--plot: no timed sweep rows to plot", file=out)
        return True
    threads = max((r.get("threads") or 0) for r in sweep)
    sweep = [r for r in sweep if (r.get("threads") or 0) == threads]
    panels = sorted({(r["op"], r["mode"]) for r in sweep},
                    key=lambda k: (("selu", "fused", "dropout").index(k[0]) if k[0] in ("selu", "fused", "dropout") else 9,
                                   ("forward", "backward", "fwdbwd").index(k[1])))
    dtypes = [d for d in ("float32", "bfloat16", "float16", "float64") if any(r["dtype"] == d for r in sweep)]
    fig, axes = plt.subplots(len(panels), len(dtypes), figsize=(4.2 * len(dtypes), 3.2 * len(panels)),
                             squeeze=False, sharex=True)
    for i, (op, mode) in enumerate(panels):
        for j, dt in enumerate(dtypes):
            ax = axes[i][j]
            sel = [r for r in sweep if r["op"] == op and r["mode"] == mode and r["dtype"] == dt]
            for impl in dict.fromkeys(r["impl"] for r in sel):
                pts = sorted((r["size"], r["gbps"]) for r in sel if r["impl"] == impl)
                role = next(r["role"] for r in sel if r["impl"] == impl)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=impl,
                        color=ROLE_COLORS.get(role), ls="--" if role == "module" else "-")
            copy = meta.get("copy_gbps", {}).get(str(threads)) or meta.get("copy_gbps", {}).get(threads)
            if copy:
                ax.axhline(copy, color="gray", ls="--", lw=0.8, label="copy bandwidth")
            ax.set_xscale("log", base=2)
            ax.set_title(f"{op} {mode} {dt}", fontsize=9)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("GB/s")
            if i == len(panels) - 1:
                ax.set_xlabel("elements")
            ax.legend(fontsize=6)
    fig.suptitle(f"selu_ext {meta.get('version')} on {meta.get('device_name')} ({meta.get('device')}, "
                 f"{threads} thread(s)), torch {meta.get('torch_version')}, {meta.get('date')}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    fig.savefig(path, dpi=72)
    plt.close(fig)
    print(f"plot written to {path}", file=out)
    return True
