"""Output: the terminal tables, header, targets and answer, every line within WIDTH columns (what does not fit,
build_info and the answer in one line, is in the JSON's meta), and the stored forms: JSON, CSV (run metadata in
every line) and a plot."""

from __future__ import annotations

import csv
import itertools
import json
import os
import sys
import textwrap
from typing import TextIO

import torch

import selu_ext

from . import targets as _targets
from .targets import size_str

WIDTH = 120
SPEEDUP_ROLES = ("eager", "module", "eager_avx2", "compile")
ROW_FIELDS = [
    "op", "mode", "dtype", "size", "device", "threads", "impl", "role", "status", "check", "median_ms", "p20_ms",
    "p80_ms", "gbps", "pct_copy_bw", *[f"speedup_vs_{r}" for r in SPEEDUP_ROLES], "peak_mem", "saved_bytes",
    "max_err", "max_ulp", "n_buffers", "samples", "calls_per_sample", "note", "version", "torch_version",
    "share_time_pct", "share_mem_pct", "first_step_s",  # training-step rows (train.py)
]
META_FIELDS = ["device_name", "torch_cpu_capability", "selu_ext_cpu_capability", "date", "command", "build_info"]


def new_row(op: str, mode: str, dtype: str, size: int, device: str, threads, impl: str, role: str, **fields) -> dict:
    """A row with every field of ROW_FIELDS, in that order; None where not measured."""
    r = dict.fromkeys(ROW_FIELDS)
    r.update(op=op, mode=mode, dtype=dtype, size=size, device=device, threads=threads, impl=impl, role=role,
             status="ok", check="", note="", version=selu_ext.__version__, torch_version=torch.__version__)
    return {**r, **fields}


def first_line(e: BaseException) -> str:
    """An exception as one short line for a row's status."""
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0][:200] if msg else ''}"


def wrap(text: str, indent: str = "") -> str:
    """``text`` in lines of at most WIDTH columns, its leading and trailing newlines kept."""
    body = text.strip("\n")
    head, tail = text[:len(text) - len(text.lstrip("\n"))], text[len(text.rstrip("\n")):]
    return head + textwrap.fill(body, WIDTH, initial_indent=indent, subsequent_indent=indent + "  ",
                                break_on_hyphens=False) + tail


def _num(v, fmt: str, width: int) -> str:
    """``v`` in ``width`` columns, with fewer digits where ``fmt`` gives too many."""
    if v is None:
        return "-".rjust(width)
    s = format(v, fmt)
    return (s if len(s) <= width or not width else f"{v:.0f}" if len(f"{v:.0f}") <= width
            else f"{v:.0e}").rjust(width)


def _bytes(v) -> str:
    if v is None:
        return "-"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.1f}{unit}"
    return f"{v}B"


# p20..p80 shows as the spread (p80 - p20) / median, and bytes only on the memory rows, in the note: so a row
# fits WIDTH. The JSON and CSV keep every field.
HEADER = (f"{'op':<8}{'mode':<9}{'dtype':<9}{'size':>5} {'thr':>3} {'impl':<18}{'status':<8}"
          f"{'median_ms':>9} {'p20-80':>6} {'GB/s':>6} {'%copy':>6} "
          f"{'xeager':>6} {'xmod':>6} {'xavx2':>6} {'xcomp':>6}")


def short_status(status: str) -> str:
    """ok, WRONG, ERROR, skipped (not run by request), n/a (could not run)."""
    if status in ("ok", "WRONG"):
        return status
    return "ERROR" if status.startswith("ERROR") else "skipped" if "skipped" in status else "n/a"


def format_row(r: dict) -> str:
    if r["mode"] == "accuracy":
        timing = f"{'max':>9} {(_num(r.get('max_ulp'), '.1f', 0) + 'ULP'):>6}"
    elif r.get("median_ms") is not None:
        spread = (r["p80_ms"] - r["p20_ms"]) / r["median_ms"] * 100 if r["median_ms"] else None
        timing = f"{r['median_ms']:>9.4f} {(_num(spread, '.0f', 0) + '%'):>6}"
    else:
        timing = f"{'-':>9} {'-':>6}"
    n = r["size"] or 0
    size = size_str(n) if n < 10**5 or not n & (n - 1) else f"{n / 1e6:.1f}M"
    impl = r["impl"] if len(r["impl"]) <= 17 else r["impl"][:16] + "~"
    line = (f"{r['op']:<8}{r['mode']:<9}{r['dtype']:<9}{size:>5} {(r.get('threads') or '-')!s:>3} "
            f"{impl:<18}{short_status(r['status']):<8}{timing} "
            + " ".join(_num(r.get(k), ".1f", 6) for k in ("gbps", "pct_copy_bw")) + " "
            + " ".join(_num(r.get(f"speedup_vs_{k}"), ".2f", 6) for k in SPEEDUP_ROLES))
    note = r.get("note") or ""
    if r["mode"] == "memory":
        note = f"saved {_bytes(r.get('saved_bytes'))}, peak {_bytes(r.get('peak_mem'))}" + (
            "; " + note if note else "")
    if short_status(r["status"]) not in ("ok", "skipped"):
        return _with_lines(line, r["status"] + (f" | {note}" if note else ""))
    return _with_lines(line, note and f"[{note}]")


def _range(r: dict, scale: float, digits: int) -> str:
    """median (p20..p80) times ``scale``, or the short status of a row without times."""
    if r["status"] != "ok" or r.get("median_ms") is None:
        return short_status(r["status"])
    median, p20, p80 = (f"{r[k] * scale:.{digits}f}" for k in ("median_ms", "p20_ms", "p80_ms"))
    return f"{median} ({p20}..{p80})"


def _with_lines(line: str, *texts) -> str:
    return line + "".join("\n" + wrap(t, "    ") for t in texts if t)


STEP_HEADER = (f"{'model':<9}{'dtype':<10}{'batch':>6}  {'variant':<20}{'step ms (p20..p80)':<28}"
               f"{'kept MB':>9}{'peak MB':>9}")
PAIR_HEADER = (f"{'function or module':<24}{'mode':<16}{'size':>6}  {'torch us (p20..p80)':<28}"
               f"{'selu_ext us (p20..p80)':<28}selu_ext/torch")


def format_step(r: dict) -> str:
    """A training-step row (train.py); its note and a status other than ok on lines of their own."""
    mb = lambda v: "-" if v is None else f"{v / 1e6:.1f}"  # noqa: E731
    return _with_lines(f"{r['op'].removeprefix('train_'):<9}{r['dtype']:<10}{r['size']:>6}  {r['impl']:<20}"
                       f"{_range(r, 1, 2):<28}{mb(r.get('saved_bytes')):>9}{mb(r.get('peak_mem')):>9}",
                       r.get("note"), r["status"] if r["status"] != "ok" else None)


def format_pair(rows: list[dict]) -> str:
    """A per-call pair (percall.py), torch row then selu_ext row: both times in microseconds and selu_ext's over
    torch's; a row that is not ok adds its status and note."""
    t, e = rows
    sp = e.get("speedup_vs_eager")
    return _with_lines(f"{e['op']:<24}{e['mode']:<16}{e['size']:>6}  {_range(t, 1e3, 1):<28}{_range(e, 1e3, 1):<28}"
                       f"{(f'{1 / sp:.2f}x' if sp else '-')}",
                       *(f"{r['impl']}: {r['status']}" + (f" | {r['note']}" if r.get("note") else "")
                         for r in rows if r["status"] != "ok"))


def print_header(meta: dict, out: TextIO) -> None:
    bi = meta.get("build_info", {})
    cuda = meta["device"] == "cuda"
    cache = f"{meta['cache_bytes'] / 2**20:.0f} MiB {'L2' if cuda else 'last-level cache'}"
    if meta.get("timing") == "cuda-graph":
        clock = ("CUDA events around replays of a CUDA graph of the calls: GPU time only, no "
                 "per-call host cost; percall rows are still wall clock")
    else:
        clock = "CUDA events around the calls as launched" if cuda else "perf_counter over blocks of >= 1 ms"
    lines = [
        f"selu_ext benchmark  {meta['date']}", f"command: {meta['command']}",
        f"device: {meta['device']} ({meta['device_name']})",
        f"torch {meta['torch_version']} (CUDA {meta.get('torch_cuda') or '-'}, triton "
        f"{meta.get('triton_version') or '-'}), python {meta['python']}, selu_ext {meta['version']}",
        f"CPU capability: torch {meta['torch_cpu_capability']}, selu_ext "
        f"{meta['selu_ext_cpu_capability']} (compiled: {bi.get('cpu_capabilities_compiled')}; "
        f"supported: {bi.get('cpu_capabilities_supported')}); build_info: in the JSON's meta",
        f"threads: {', '.join(map(str, meta['threads']))} (machine: {meta['cpu_count']} CPUs)"]
    if cuda and not bi.get("cuda"):
        lines.append(f"WARNING: selu_ext was built without CUDA kernels ({bi.get('no_cuda_reason')}): "
                     "its CUDA rows time the CPU fallback")
    lines.append(f"dropout p={meta['p']}; inputs rotate through >= 2x the {cache} (cold cache); "
                 f"times are medians per call ({clock}); p20-80 is (p80 - p20) / median; GB/s "
                 "counts each input read once and each output written once")
    for line in lines:
        print(wrap(line), file=out)
    out.flush()


def print_targets(tgts: list[dict], out: TextIO) -> None:
    """Every target the run's rows cover; those with no rows at all (sizes, dtypes or thread counts the run
    never measured, e.g. under --quick) are counted, not listed."""
    print("\nTargets (evaluated from the rows above; worst row shown)", file=out)
    unmeasured = 0
    for t in tgts:
        if t["result"] == "n/a" and t.get("detail") == "no rows":
            unmeasured += 1
            continue
        where = f" at {t['where']}" if t.get("where") else ""
        extra = f" ({t['detail']})" if t.get("detail") else ""
        print(wrap(f"{t['result']:<5} {t['text']}: {_targets.format_value(t)}{where} "
                   f"[{_targets.format_threshold(t)}]{extra}", "  "), file=out)
    count = {k: sum(t["result"] == k for t in tgts) for k in ("PASS", "MISS", "n/a")}
    print(f"  {count['PASS']} PASS, {count['MISS']} MISS, {count['n/a'] - unmeasured} n/a"
          + (f"; {unmeasured} not measured by this run (sizes, dtypes or threads not selected)"
             if unmeasured else ""), file=out)
    out.flush()


def _clauses(rows: list[dict], meta: dict) -> list[tuple[str, str]]:
    """(short, full) per kind of row the run has: the kernel sweep (forward, backward, fwdbwd), the per-call
    rows (--percall), the training step's share of the attainable step-time saving (--train)."""
    ext = [r for r in rows if r["role"] == "ext"]
    sped = [r for r in ext if r.get("speedup_vs_eager") is not None]
    timed = [r for r in sped if r["mode"] in ("forward", "backward", "fwdbwd")]
    calls = [r for r in sped if r["mode"].startswith("call_")]
    steps = [r for r in ext if r["mode"] == "step" and r.get("share_time_pct") is not None]
    path = meta.get("torch_cpu_capability") if meta.get("device") == "cpu" else meta.get("device_name")
    where = f"{meta.get('device')} {path}"
    out = []
    for sel, subject, peer in ((timed, "selu_ext is", "than eager torch"),
                               (calls, "per call, selu_ext is", "than torch")):
        if not sel:
            continue
        sp = sorted(r["speedup_vs_eager"] for r in sel)
        median = sp[len(sp) // 2]
        head = f"{median:.2f}x {'faster' if median >= 1.0 else 'slower'}"
        n_slower, w = sum(s < 1.0 for s in sp), min(sel, key=lambda r: r["speedup_vs_eager"])
        tail = f", slower in {n_slower or 'none'}" + (
            f", worst {w['op']} {w['mode']} {w['dtype']} {size_str(w['size'])}"
            f"{' %sthr' % w['threads'] if w.get('threads') else ''} {w['speedup_vs_eager']:.2f}x" if n_slower else "")
        at = where + "; " if not out else ""
        out.append((f"per call {head}" if out else f"{subject} {head} {peer}",
                    f"{subject} {head} {peer} ({at}median of {len(sel)} rows, {sp[0]:.2f}x..{sp[-1]:.2f}x)"
                    + tail))
    if steps:
        worst = min(steps, key=lambda r: r["share_time_pct"])
        shares = sorted(r["share_time_pct"] for r in steps)
        model = worst["op"].removeprefix("train_")
        mid = f"{shares[len(shares) // 2]:.0f}%"
        out.append((f"{mid} of the step-time saving captured",
                    f"a training step with selu_ext captured {mid} of the attainable time saving "
                    f"(torch.nn -> floor{', ' + where if not out else ''}; median of {len(steps)} "
                    f"model/batch points, {shares[0]:.0f}%..{shares[-1]:.0f}%, least at {model} "
                    f"batch {worst['size']})"))
    return out


def answer(rows: list[dict], meta: dict) -> str:
    """One line (the JSON's meta.answer): is selu_ext faster or slower than PyTorch's eager ops, by how much,
    and where it is slower; a clause per kind of row."""
    parts = _clauses(rows, meta)
    if not parts:
        return "Answer: no selu_ext row was timed against eager PyTorch in this run."
    return "Answer: " + "; ".join(full for _, full in parts) + "."


def finish(cfg, meta: dict, rows: list[dict], out: TextIO) -> tuple[list[dict], bool]:
    """A run's or a stored run's end: speedups, targets, meta.answer, the stored forms ``cfg`` asks for, then
    the answer's clauses in full and a last line of at most WIDTH columns. (targets, write's verdict)."""
    fill_speedups(rows)
    tgts = _targets.evaluate(rows, meta)
    print_targets(tgts, out)
    meta["answer"] = answer(rows, meta)
    written = write(cfg, meta, rows, tgts, out)
    parts = _clauses(rows, meta)
    for _, full in parts:
        print(wrap(full, "  "), file=out)
    print("Answer: " + "; ".join(short for short, _ in parts) + "." if parts else meta["answer"], file=out)
    out.flush()
    return tgts, written


def fill_speedups(rows: list[dict]) -> None:
    """speedup_vs_<role>: that role's median over this row's, in one (op, mode, dtype, size, device, threads)."""
    groups: dict = {}
    key = lambda r: (r["op"], r["mode"], r["dtype"], r["size"], r["device"], r.get("threads"))  # noqa: E731
    for r in rows:
        if r.get("median_ms") and r["status"] == "ok":
            groups.setdefault(key(r), {}).setdefault(r["role"], r)
    for r in rows:
        peers = groups.get(key(r), {})
        for role in SPEEDUP_ROLES:
            p = peers.get(role)
            ok = r.get("median_ms") and r["status"] == "ok" and p is not None and p is not r
            r[f"speedup_vs_{role}"] = p["median_ms"] / r["median_ms"] if ok else None


def write_json(path: str, meta: dict, rows: list[dict], tgts: list[dict], extra: dict) -> None:
    tmp = path + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(tmp, "w") as f:
        json.dump({"schema": 1, "meta": meta, **extra, "rows": rows, "targets": tgts}, f, indent=1, default=str)
    os.replace(tmp, path)


def write(cfg, meta: dict, rows: list[dict], tgts: list[dict], out: TextIO) -> bool:
    """The stored forms ``cfg`` (the flags) asks for; False if the plot's matplotlib is missing."""
    if cfg.json:
        write_json(cfg.json, meta, rows, tgts, {})
        print(f"JSON written to {cfg.json}", file=out)
    if cfg.csv:
        os.makedirs(os.path.dirname(os.path.abspath(cfg.csv)), exist_ok=True)
        m = {k: meta.get(k) for k in META_FIELDS}
        m["build_info"] = json.dumps(meta.get("build_info", {}), sort_keys=True)
        with open(cfg.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=ROW_FIELDS + META_FIELDS, extrasaction="ignore")
            w.writeheader()
            w.writerows({**r, **m} for r in rows)
        print(f"CSV written to {cfg.csv}", file=out)
    return plot(cfg.plot, rows, meta, out) if cfg.plot else True


def plot(path: str, rows: list[dict], meta: dict, out: TextIO) -> bool:
    """GB/s against size, a panel per (op, mode) and dtype, a line per implementation (the most threads on CPU).
    False if matplotlib is missing."""
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
    order = {k: i for i, k in enumerate(("selu", "fused", "dropout", "forward", "backward", "fwdbwd"))}
    panels = sorted({(r["op"], r["mode"]) for r in sweep}, key=lambda k: (order.get(k[0], 9), order[k[1]]))
    dtypes = [d for d in ("float32", "bfloat16", "float16", "float64") if any(r["dtype"] == d for r in sweep)]
    fig, axes = plt.subplots(len(panels), len(dtypes), figsize=(4.2 * len(dtypes), 3.2 * len(panels)),
                             squeeze=False, sharex=True)
    colors = {"eager": "tab:blue", "module": "tab:cyan", "eager_avx2": "tab:purple", "compile": "tab:red",
              "ext": "tab:green", "ext_variant": "tab:olive", "custom": "tab:gray"}
    copy = meta.get("copy_gbps", {}).get(str(threads))
    for (i, (op, mode)), (j, dt) in itertools.product(enumerate(panels), enumerate(dtypes)):
        ax = axes[i][j]
        sel = [r for r in sweep if r["op"] == op and r["mode"] == mode and r["dtype"] == dt]
        for impl in dict.fromkeys(r["impl"] for r in sel):
            pts = sorted((r["size"], r["gbps"], r["role"]) for r in sel if r["impl"] == impl)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=impl,
                    color=colors.get(pts[0][2]), ls="--" if pts[0][2] == "module" else "-")
        if copy:
            ax.axhline(copy, color="gray", ls="--", lw=0.8, label="copy bandwidth")
        ax.set_xscale("log", base=2)
        ax.set_title(f"{op} {mode} {dt}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.set_ylabel("GB/s" if j == 0 else "")
        ax.set_xlabel("elements" if i == len(panels) - 1 else "")
        ax.legend(fontsize=6)
    fig.suptitle(f"selu_ext {meta.get('version')} on {meta.get('device_name')} ({meta.get('device')}, "
                 f"{threads} thread(s)), torch {meta.get('torch_version')}, {meta.get('date')}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    fig.savefig(path, dpi=72)
    plt.close(fig)
    print(f"plot written to {path}", file=out)
    return True
