"""benchmarks/RESULTS.md's training-step tables, from stored runs of
``python -m selu_ext.bench --percall --train --json <machine>/train.json``
(called by summarize.py; standard library only). Every number comes from the
stored rows."""

from __future__ import annotations

STEP_IMPLS = ("torch.nn", "selu_ext", "floor")
COMPILED = ("compile(torch.nn)", "compile(selu_ext)", "compile(floor)")
CALL_MODES = (("call_nograd", "no grad"), ("call_inference", "inference_mode"),
              ("call_grad", "with grad"), ("call_fwdbwd", "forward+backward"))
MODEL_TEXT = {"train_mlp": "MLP", "train_convnet": "ConvNet"}


def _ms(r):
    if r is None:
        return "-"
    if r["status"] != "ok" or r.get("median_ms") is None:
        return r["status"].split(":")[0]
    return f"{r['median_ms']:.1f}" if r["median_ms"] >= 10 else f"{r['median_ms']:.2f}"


def _mb(r, key):
    if r is None or r.get(key) is None:
        return "-"
    return f"{r[key] / 1e6:.1f}"


def _ratio(r):
    return "-" if r is None or r.get("vs_floor") is None else f"{r['vs_floor']:.3f}x"


def _first(r):
    """The first step of a compiled model: its compilation (only the first batch
    size measured compiles; dynamic shapes serve the others)."""
    return "-" if r is None or r.get("first_step_s") is None else f"{r['first_step_s']:.1f}"


def _pct(r, key):
    if r is None or r.get(key) is None:
        return "-"
    return f"{r[key]:.0f}%"


def step_table(rows, device):
    """One line per (model, dtype, batch): median step time of each variant, the bytes
    kept for backward (CUDA: peak memory), and selu_ext's shares and step over the floor's."""
    step = [r for r in rows if r["mode"] == "step"]
    if not step:
        return []
    mem_key, mem_name = ("peak_mem", "peak MB") if device == "cuda" else ("saved_bytes", "kept MB")
    compiled = any(r["impl"] in COMPILED and r.get("median_ms") for r in step)
    head = ["model", "dtype", "batch"] + [f"{i} ms" for i in STEP_IMPLS] + \
           ["time saving captured", "selu_ext / floor"] + \
           [f"{i} {mem_name}" for i in STEP_IMPLS] + ["memory saving captured"]
    out = _table(step, head, lambda by: [_ms(by.get(i)) for i in STEP_IMPLS] +
                 [_pct(by.get("selu_ext"), "share_time_pct"), _ratio(by.get("selu_ext"))] +
                 [_mb(by.get(i), mem_key) for i in STEP_IMPLS] +
                 [_pct(by.get("selu_ext"), "share_mem_pct")])
    if compiled:
        out += ["", "With `torch.compile` of each model:", ""]
        out += _table(step, ["model", "dtype", "batch"] + [f"{i} ms" for i in COMPILED] +
                      ["time saving captured", "first step s (compiles at the first batch)"],
                      lambda by: [_ms(by.get(i)) for i in COMPILED] +
                      [_pct(by.get("compile(selu_ext)"), "share_time_pct"),
                       " / ".join(_first(by.get(i)) for i in COMPILED)])
    return out


def _table(step, head, cells):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for op, dtype in dict.fromkeys((r["op"], r["dtype"]) for r in step):
        point = [r for r in step if r["op"] == op and r["dtype"] == dtype]
        for batch in sorted({r["size"] for r in point}):
            by = {r["impl"]: r for r in point if r["size"] == batch}
            out.append("| " + " | ".join([MODEL_TEXT.get(op, op), dtype, str(batch)] + cells(by))
                       + " |")
    return out


def call_table(rows):
    """selu_ext's time per call over torch's, one line per function or module,
    one column per mode, the sizes in each cell."""
    ext = {(r["op"], r["mode"], r["size"]): r for r in rows
           if r["role"] == "ext" and str(r["mode"]).startswith("call_")}
    if not ext:
        return []
    sizes = sorted({k[2] for k in ext})
    out = ["| selu_ext time / torch time | " + " | ".join(m for _, m in CALL_MODES) + " |",
           "|---|" + "---|" * len(CALL_MODES)]
    for op in dict.fromkeys(k[0] for k in ext):
        cells = []
        for mode, _ in CALL_MODES:
            vals = []
            for size in sizes:
                r = ext.get((op, mode, size))
                sp = r.get("speedup_vs_eager") if r else None
                vals.append(f"{1 / sp:.2f}" if sp else "-")
            cells.append(" / ".join(vals))
        peer = next(r["impl"] for r in rows if r["op"] == op and r["role"] == "eager")
        out.append(f"| `{peer}` | " + " | ".join(cells) + " |")
    out += ["", "Each cell: " + " / ".join(str(s) for s in sizes) + " float32 elements; below 1.00 "
            "selu_ext is faster."]
    return out


def _load(meta):
    """The 1-minute load average the run recorded around its parts, against the
    machine's CPU count: other processes' work shows in absolute times more than in
    the interleaved ratios."""
    loads = meta.get("loadavg")
    if not loads:
        return ""
    return (f" Load average (1 min; {meta.get('cpu_count')} CPUs): "
            + ", ".join(f"{label} {values[0]:.1f}" for label, values in loads) + ".")


def train_summary(runs, targets_module):
    out = ["Generated by `python benchmarks/summarize.py` from the stored runs below; do not edit "
           "by hand."]
    if not runs:
        return "\n".join(out + ["", "No stored training-step runs (benchmarks/results/*/train.json)."]) + "\n"
    for doc in runs:
        meta, rows = doc["meta"], doc["rows"]
        threads = sorted({r.get("threads") for r in rows if r["mode"] == "step"} - {None})
        out += ["", f"### {doc['_machine']}: {meta['device_name']} ({meta['device']})", "",
                f"Run {meta['date']}: `{meta['command']}`; torch {meta['torch_version']}, selu_ext "
                f"{meta['version']}, CPU capability torch {meta['torch_cpu_capability']} / selu_ext "
                f"{meta['selu_ext_cpu_capability']}"
                + (f", {', '.join(map(str, threads))} thread(s)" if meta["device"] == "cpu" and threads else "")
                + f". Source: `{doc['_path']}`." + _load(meta)]
        st = step_table(rows, meta["device"])
        if st:
            out += ["", "One optimizer step (forward, loss, backward, optimizer step, zero_grad), median "
                        "of interleaved rounds; floor = SELU and AlphaDropout replaced by `nn.Identity`; "
                        "captured = (torch.nn - selu_ext) / (torch.nn - floor); kept MB = bytes autograd "
                        "keeps for backward beyond the parameters:", ""] + st
        ct = call_table(rows)
        if ct:
            out += ["", "Per call, interleaved with the torch equivalent"
                    + (" (one thread)" if meta["device"] == "cpu" else "") + ":", ""] + ct
        tg = [t for t in (doc.get("targets") or targets_module.evaluate(rows))
              if ".call." in t["target"] or ".train" in t["target"]]
        if tg:
            out += ["", "| result | target | measured | worst row |", "|---|---|---|---|"]
            for t in tg:
                thr = "" if t.get("kind") == "info" else f" ({targets_module.format_threshold(t)})"
                out.append(f"| {t['result']} | {t['text']}{thr} | {targets_module.format_value(t)} | "
                           f"{t.get('where') or t.get('detail') or '-'} |")
    return "\n".join(out) + "\n"
