"""The float32 expm1 polynomial of selu.h (kExpm1Q5..kExpm1Q0): q(r) with
expm1(r) ~ r + r^2 q(r) on |r| <= ln2/2 (plus rounding slack), degree 5, fitted for
the relative error of expm1(r) by iteratively reweighted least squares (Lawson's
algorithm, which converges to the minimax fit) on Chebyshev nodes. q(0) = 1/2 is
kept exact; then each coefficient, lowest degree first, is rounded to float and the
higher ones refitted, so the rounding costs little (4.3e-10 instead of 2.2e-9 when
all are rounded at once).

    python benchmarks/fit_expm1.py     # needs mpmath (a dependency of torch)
"""
import numpy as np, mpmath
mpmath.mp.dps = 30
R = 0.34668
m = 3000  # Chebyshev nodes
r = R * np.cos(np.pi * (np.arange(m) + 0.5) / m)
r = r[np.abs(r) > 1e-6]
e = np.array([float(mpmath.expm1(mpmath.mpf(v))) for v in r])
target = (e - r) / r**2
w0 = np.abs(r**2 / e)
deg = 5
A = np.vander(r, deg + 1, increasing=True)
fixed = {}
def solve(fixed):
    free = [i for i in range(deg + 1) if i not in fixed]
    t = target - sum(A[:, i] * fixed[i] for i in fixed)
    w = np.ones_like(r)
    for it in range(300):
        W = np.sqrt(w) * w0
        c, *_ = np.linalg.lstsq(A[:, free] * W[:, None], t * W, rcond=None)
        err = np.abs((A[:, free] @ c - t) * w0)
        w = w * err; w /= w.sum()
    full = np.zeros(deg + 1)
    for i, v in fixed.items(): full[i] = v
    for i, v in zip(free, c): full[i] = v
    return full, err.max()
fixed[0] = 0.5
for i in range(1, deg + 1):
    full, err = solve(fixed)
    fixed[i] = float(np.float32(full[i]))
c = np.array([fixed[i] for i in range(deg + 1)])
err = np.abs((A @ c - target) * w0).max()
print(f"max relative error of expm1(r): {err:.3g} ({err / 2**-24:.4f} ULP)")
print("q5..q0:", ", ".join(float.hex(float(v)) for v in c[::-1]))
