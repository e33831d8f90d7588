"""One optimizer step of a self-normalizing network as users run it (``--train``), as torch.nn,
selu_ext.nn.convert of it, the floor (SELU and AlphaDropout as nn.Identity: the most any activation library
could save) and torch.compile of each, timed interleaved; selu_ext's rows carry the share of the attainable
saving captured, (torch - selu_ext) / (torch - floor)."""

from __future__ import annotations

import copy
import time
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

import selu_ext
from selu_ext.init import lecun_normal_

from . import memory, report, timing

MODELS, DTYPES, QUICK_DTYPES = ("mlp", "convnet"), ("float32", "bfloat16"), ("float32",)
BATCHES, QUICK_BATCHES = (64, 256, 1024), (64,)
DESCRIPTION = {"mlp": "MLP 784-8x512-10, AlphaDropout 0.05, SGD(momentum 0.9)",
               "convnet": "tutorial ConvNet on 1x28x28, AlphaDropout 0.25, Adam"}
# impl name -> (role, variant it compiles or None)
VARIANTS = {"torch.nn": ("eager", None), "selu_ext": ("ext", None), "floor": ("floor", None),
            "compile(torch.nn)": ("compile", "torch.nn"), "compile(selu_ext)": ("ext_compile", "selu_ext"),
            "compile(floor)": ("floor_compile", "floor")}
# selu_ext's role -> (torch's role, floor's role) for the shares.
SHARE_PEERS = {"ext": ("eager", "floor"), "ext_compile": ("compile", "floor_compile")}


def build_model(name: str) -> nn.Sequential:
    """The torch.nn model, LeCun-normal weights and zero biases (seeded)."""
    if name == "mlp":
        model = nn.Sequential(*[m for w in [784] + [512] * 7 for m in (nn.Linear(w, 512), nn.SELU(),
                                                                        nn.AlphaDropout(0.05))],
                              nn.Linear(512, 10))
    else:
        model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.SELU(), nn.AlphaDropout(0.25), nn.Flatten(),
                              nn.Linear(32 * 26 * 26, 256), nn.SELU(), nn.Linear(256, 10))
    gen = torch.Generator().manual_seed(0)
    for m in model:
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            lecun_normal_(m.weight, generator=gen)
            nn.init.zeros_(m.bias)
    return model.train()


def floor(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every SELU and AlphaDropout replaced by nn.Identity."""
    model = copy.deepcopy(model)
    for name, child in list(model.named_children()):
        setattr(model, name, nn.Identity() if isinstance(child, (nn.SELU, nn.AlphaDropout)) else floor(child))
    return model


def make_input(name: str, batch: int, device: str, dtype: torch.dtype = torch.float32):
    gen = torch.Generator().manual_seed(batch)
    x = torch.randn((batch, 784) if name == "mlp" else (batch, 1, 28, 28), generator=gen)
    return x.to(device, dtype), torch.randint(0, 10, (batch,), generator=gen).to(device)


def build_variants(name: str, device: str, compile_: bool, dtype: torch.dtype = torch.float32) -> dict:
    """impl name -> (role, module, optimizer); each variant has its own copy of the same initial weights, in
    ``dtype``."""
    base = build_model(name)
    modules = {"torch.nn": base, "selu_ext": selu_ext.nn.convert(base), "floor": floor(base)}
    out = {}
    for impl, (role, source) in VARIANTS.items():
        if source is not None and not compile_:
            continue
        module = copy.deepcopy(modules[source or impl]).to(device, dtype)
        opt = (torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9) if name == "mlp"
               else torch.optim.Adam(module.parameters(), lr=1e-3))
        # dynamic: one compilation serves every batch size.
        out[impl] = (role, torch.compile(module, dynamic=True) if source else module, opt)
    return out


def make_step(model: nn.Module, opt: torch.optim.Optimizer, x, y):
    def step():
        F.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def share(torch_value: Optional[float], ext_value: Optional[float], floor_value: Optional[float]) -> Optional[float]:
    """Percent of the attainable saving (torch - floor) that selu_ext captures (torch - selu_ext); None when a
    value is missing or the floor saves nothing."""
    if None in (torch_value, ext_value, floor_value) or torch_value <= floor_value:
        return None
    return 100.0 * (torch_value - ext_value) / (torch_value - floor_value)


def eval_check(variants: dict, x) -> str:
    """'' if selu_ext's model gives torch.nn's outputs in eval mode (same weights, so it must), else why not."""
    ref, ext = variants["torch.nn"][1], variants["selu_ext"][1]
    try:
        with torch.no_grad():
            a, b = ref.eval()(x), ext.eval()(x)
        return "" if torch.allclose(a, b, rtol=1e-4, atol=1e-5) else \
            f"eval-mode outputs differ from torch.nn's (max {float((a - b).abs().max()):.3g})"
    finally:
        ref.train(), ext.train()


def fill_shares(rows: list[dict], device: str) -> None:
    """share_time_pct, share_mem_pct and vs_floor on selu_ext's rows, and a note saying so."""
    by_role = {r["role"]: r for r in rows if r["status"] == "ok"}
    mem = "peak_mem" if device == "cuda" else "saved_bytes"
    pct = lambda v: "-" if v is None else f"{v:.1f}%"  # noqa: E731
    for role, (torch_role, floor_role) in SHARE_PEERS.items():
        r, t, f = by_role.get(role), by_role.get(torch_role), by_role.get(floor_role)
        if None in (r, t, f):
            continue
        r["share_time_pct"] = share(t["median_ms"], r["median_ms"], f["median_ms"])
        r["share_mem_pct"] = share(t.get(mem), r.get(mem), f.get(mem))
        r["vs_floor"] = r["median_ms"] / f["median_ms"] if r.get("median_ms") and f.get("median_ms") else None
        r["note"] = (r["note"] + "; " if r["note"] else "") + (
            f"captures {pct(r['share_time_pct'])} of the attainable time saving and "
            f"{pct(r['share_mem_pct'])} of the memory saving ({t['impl']} -> {f['impl']}); "
            + ("-" if r["vs_floor"] is None else f"{r['vs_floor']:.3f}x") + " the floor's step")


def measure_point(runner, name: str, variants: dict, batch: int, threads: int,
                  wrong: str = "", dtype: str = "float32") -> list[dict]:
    """The rows of one (model, dtype, batch); ``wrong``: why selu_ext's variants are not timed (eval_check's
    verdict)."""
    cfg = runner.cfg
    x, y = make_input(name, batch, cfg.device, getattr(torch, dtype))
    rows, steps = [], {}
    for impl, (role, module, opt) in variants.items():
        r = report.new_row(f"train_{name}", "step", dtype, batch, cfg.device, threads, impl, role,
                           check="finite-loss")
        rows.append(r)
        if wrong and role in SHARE_PEERS:
            r.update(status="WRONG", check="eval-vs-torch.nn", note=wrong)
            continue
        step = make_step(module, opt, x, y)
        try:
            t0 = time.perf_counter()
            step()
            timing.sync(cfg.device)
            # a compiled model: its compilation; 3 significant digits, so a fast eager step is not 0
            r["first_step_s"] = float(f"{time.perf_counter() - t0:.3g}")
            with torch.no_grad():
                loss = float(F.cross_entropy(module(x), y))
            if loss != loss or abs(loss) == float("inf"):
                r["status"] = f"WRONG: loss {loss}"
                continue
            try:  # saved_tensors_hooks around a compiled model may not be supported
                r["saved_bytes"] = memory.saved_bytes(lambda: F.cross_entropy(module(x), y),
                                                      exclude=module.parameters())
            except Exception as e:
                r["note"] = f"saved bytes not measured: {type(e).__name__}"
            else:
                r["peak_mem"] = memory.peak_memory(step, cfg.device)
            steps[impl] = step
        except Exception as e:
            r["status"] = "ERROR: " + report.first_line(e)
    try:  # a step that ran once and then failed: none is timed
        tms = timing.time_interleaved(steps, cfg.device, threads=threads, rounds=3 if cfg.quick else 7, block_s=2e-3,
                                      warmup=1, budget_s=1.0 if cfg.quick else 10.0,
                                      max_rounds=5 if cfg.quick else 40, lead=1) if steps else {}
    except Exception as e:
        tms = {}
        for r in rows:
            if r["impl"] in steps:
                r["status"] = "ERROR: timing: " + report.first_line(e)
    for r in rows:
        if (tm := tms.get(r["impl"])) is not None:
            r.update(tm.fields())
            if r["role"].endswith("compile") and r["first_step_s"] > 3 * tm.median:
                r["note"] = "; ".join(filter(None, [f"first step {r['first_step_s']:.1f} s (compile)", r["note"]]))
    fill_shares(rows, cfg.device)
    return rows


def run(runner) -> None:
    """Each model's variants in each dtype at each batch size, on the first of --threads (one by default)."""
    cfg = runner.cfg
    threads = cfg.threads[0]
    compile_ = cfg.compile is not False and cfg.train_compile
    runner.set_threads(threads)
    runner.note_load("train start")
    for name in cfg.train_models:
        runner.say(f"\nTraining step: {DESCRIPTION[name]}, {threads} thread(s), variants interleaved; "
                   "kept = bytes autograd keeps for backward beyond the parameters")
        print(report.STEP_HEADER, file=runner.out)
        # In float32, where torch.nn's and selu_ext's outputs agree to 1e-4: the other dtypes' models hold the
        # same weights, rounded.
        wrong = eval_check(build_variants(name, cfg.device, False), make_input(name, 8, cfg.device)[0])
        for dtype in cfg.train_dtypes or (QUICK_DTYPES if cfg.quick else DTYPES):
            variants = build_variants(name, cfg.device, compile_, getattr(torch, dtype))
            for batch in cfg.train_batches or (QUICK_BATCHES if cfg.quick else BATCHES):
                if runner.over_budget():
                    return
                for r in measure_point(runner, name, variants, batch, threads, wrong, dtype):
                    runner.emit(r, show=False)
                    print(report.format_step(r), file=runner.out)
                runner.checkpoint()
    runner.note_load("train end")
