"""A digest of every CPU output selu_ext computes, to show that a refactor changed no bit.

    PYTHONPATH=<tree> python benchmarks/output_digest.py > digest.json   # once per tree
    python benchmarks/output_digest.py --compare before.json after.json

For every CPU kernel variant this machine can run, every kernel dtype, p in
{0.05, 0.5, 0.99, 1}, it runs each operator (forward, in-place, backward, fused, mask),
the functional forms and the autograd paths (nn.SELU, AlphaDropout, the fused
SELUAlphaDropout, feature_alpha_dropout) on special values, odd sizes, offsets and
non-contiguous views, and prints one SHA-256 per case. Inputs and rng states are fixed,
so two builds agree case by case exactly when their outputs are bitwise equal.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys

import torch

DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
PS = (0.05, 0.5, 0.99, 1.0)


def digest(*tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().contiguous().cpu()
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:20]


def inputs(dtype) -> dict:
    g = torch.Generator().manual_seed(1234)
    special = torch.tensor([0.0, -0.0, 1.0, -1.0, float("inf"), -float("inf"), float("nan"), 1e-40,
                            -1e-40, -5e-8, 5e-8, -17.0, -20.0, -88.0, -100.0, -1e4, 65504.0,
                            -0.33049, -0.31828, 3e38, -3e38], dtype=torch.float64)
    big = torch.randn(4099, generator=g, dtype=torch.float64) * 3
    grid = torch.linspace(-20, 5, 2053, dtype=torch.float64)
    mat = torch.randn(37, 67, generator=g, dtype=torch.float64) * 2
    out = {
        "special": special.to(dtype),
        "randn4099": big.to(dtype),
        "grid": grid.to(dtype),
        "offset1": big.to(dtype)[1:],
        "transposed": mat.to(dtype).t(),
        "mat": mat.to(dtype),
    }
    return out


def run_cases(rows: dict) -> None:
    import selu_ext  # noqa: F401  (loads the operators)
    ops = torch.ops.selu_ext
    F = selu_ext.functional
    rng = torch.tensor([0x1234_5678_9ABC, 7], dtype=torch.long)
    for dtype in DTYPES:
        d = str(dtype).split(".")[1]
        for name, x in inputs(dtype).items():
            g = torch.linspace(-2, 2, x.numel(), dtype=torch.float64).reshape(x.shape).to(dtype)
            key = f"{d}/{name}"
            y = ops.selu(x)
            rows[f"{key}/selu"] = digest(y)
            t = x.clone()
            ops.selu_(t)
            rows[f"{key}/selu_"] = digest(t)
            rows[f"{key}/selu_backward_input"] = digest(ops.selu_backward(g, x, False))
            rows[f"{key}/selu_backward_result"] = digest(ops.selu_backward(g, y, True))
            xr = x.detach().clone().requires_grad_(True)
            out = selu_ext.nn.SELU()(xr)
            out.backward(g)
            rows[f"{key}/nn.SELU"] = digest(out, xr.grad)
            for p in PS:
                k = f"{key}/p{p}"
                z = ops.alpha_dropout(x, p, rng)
                rows[f"{k}/alpha_dropout"] = digest(z)
                t = x.clone()
                ops.alpha_dropout_(t, p, rng)
                rows[f"{k}/alpha_dropout_"] = digest(t)
                rows[f"{k}/alpha_dropout_backward"] = digest(ops.alpha_dropout_backward(g, p, rng))
                zf = ops.selu_alpha_dropout(x, p, rng)
                rows[f"{k}/selu_alpha_dropout"] = digest(zf)
                rows[f"{k}/selu_alpha_dropout_backward"] = digest(
                    ops.selu_alpha_dropout_backward(g, zf, p, rng))
                rows[f"{k}/dropout_keep_mask"] = digest(ops.dropout_keep_mask(rng, x.numel(), p))
                for fname, fn in (("alpha_dropout", F.alpha_dropout),
                                  ("selu_alpha_dropout", F.selu_alpha_dropout),
                                  ("feature_alpha_dropout", F.feature_alpha_dropout)):
                    if fname == "feature_alpha_dropout" and x.dim() < 2:
                        continue
                    xr = x.detach().clone().requires_grad_(True)
                    out = fn(xr, p, True, seed=99)
                    out.backward(g)
                    rows[f"{k}/F.{fname}"] = digest(out, xr.grad)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    a = ap.parse_args()
    if a.compare:
        before, after = (json.load(open(f)) for f in a.compare)
        common = sorted(set(before) & set(after))
        diff = [k for k in common if before[k] != after[k]]
        print(f"{len(common)} cases in both, {len(diff)} differ; "
              f"only before: {len(set(before) - set(after))}, only after: {len(set(after) - set(before))}")
        for k in diff[:40]:
            print("  differs:", k)
        sys.exit(1 if diff or set(before) != set(after) else 0)
    import selu_ext
    rows: dict = {}
    torch.set_num_threads(1)
    for variant in json.loads(selu_ext._C.build_info())["cpu_capabilities_supported"].split(","):
        selu_ext._C.set_cpu_capability(variant)  # raises if not usable
        sub: dict = {}
        run_cases(sub)
        rows.update({f"{variant}/{k}": v for k, v in sub.items()})
    json.dump(rows, sys.stdout, indent=0, sort_keys=True)


if __name__ == "__main__":
    main()
