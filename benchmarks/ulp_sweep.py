"""Exhaustive float32 accuracy of selu_ext's CPU kernels: every float32 in [-30, 0]
(about 1.1e9 values; below -30 the result is -scale*alpha to the last bit), against
SELU in float64, per CPU kernel variant. Prints the largest error in ULP of the
float32 result and where it occurs, and a histogram in half-ULP bins.

    python benchmarks/ulp_sweep.py [baseline avx2 avx512]

Takes a few minutes per variant on one core (the float64 reference dominates).
"""

import sys

import numpy as np
import torch

import selu_ext
from selu_ext import _C, ops

# The reference here is libm's float64 expm1 (numpy's), not selu_ext.testing's:
# torch's float64 expm1 is a vectorized polynomial within 1 ULP of float64, which
# moves one of the 2^32 inputs across the 0.5-ULP bin boundary of the histogram.
LAM_ALPHA = selu_ext.SCALE * selu_ext.ALPHA


def sweep(variant):
    _C.set_cpu_capability(variant)
    start, stop = 0x80000000, 0xC1F00000  # -0.0 .. -30.0
    worst_err, worst_x = 0.0, None
    hist = np.zeros(8, dtype=np.int64)
    for lo in range(start, stop, 1 << 24):
        bits = np.arange(lo, min(lo + (1 << 24), stop), dtype=np.uint32)
        x = bits.view(np.float32)
        y = ops.selu(torch.from_numpy(x)).numpy().astype(np.float64)
        ref = LAM_ALPHA * np.expm1(x.astype(np.float64))
        ulp = np.spacing(np.abs(ref.astype(np.float32))).astype(np.float64)
        err = np.abs(y - ref) / ulp
        i = int(err.argmax())
        if err[i] > worst_err:
            worst_err, worst_x = float(err[i]), float(x[i])
        hist += np.bincount(np.minimum((err * 2).astype(np.int64), 7), minlength=8)
    return worst_err, worst_x, hist


def main():
    variants = sys.argv[1:] or selu_ext.build_info()["cpu_capabilities_supported"].split(",")
    torch.set_num_threads(1)
    for v in variants:
        err, x, hist = sweep(v)
        print(f"{v}: max {err:.3f} ULP at x = {x!r}; values per half-ULP bin "
              f"[0,0.5), [0.5,1), ...: {hist.tolist()}", flush=True)


if __name__ == "__main__":
    main()
