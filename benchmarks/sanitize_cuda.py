"""Calls every selu_ext CUDA kernel, for compute-sanitizer (memcheck, racecheck):
every dtype, aligned and misaligned views, lengths around the vector widths and the
dropout block size, empty tensors, forward and backward, in-place and not.

    compute-sanitizer --tool memcheck python benchmarks/sanitize_cuda.py

Checks each result against the CPU kernels too, so a run that the sanitizer
passes also proves the kernels computed the right thing.
"""

import sys

import torch

import selu_ext
from selu_ext import ops

# Around every vector width (2, 4, 8 elements), the 256-element dropout block, and
# the 4 x 256 x VEC elements of one selu block.
LENGTHS = [0, 1, 7, 9, 33, 127, 129, 255, 257, 4097, 65536 + 5]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
TOL = {torch.float32: 1e-5, torch.float64: 1e-12, torch.float16: 2e-3, torch.bfloat16: 2e-2}


def views(n, dtype):
    """The same n values as a contiguous tensor and as misaligned views (storage
    offset 1 and 3 elements: not 16-byte aligned)."""
    base = (torch.rand(n + 8, dtype=torch.float64) * 6 - 3).to(dtype)
    yield "aligned", base[:n].cuda()
    for off in (1, 3):
        yield f"offset{off}", base.cuda()[off:off + n]


def close(a, b, dtype, what):
    a, b = a.cpu().double(), b.cpu().double()
    if not torch.allclose(a, b, rtol=TOL[dtype], atol=TOL[dtype], equal_nan=True):
        raise AssertionError(f"{what}: CUDA and CPU differ by {(a - b).abs().max().item()}")


def main():
    if not torch.cuda.is_available():
        sys.exit("sanitize_cuda.py needs a CUDA GPU")
    info = selu_ext.build_info()
    if not info["cuda"]:
        sys.exit("selu_ext was built without CUDA kernels: " + info["no_cuda_reason"])
    checked = 0
    for dtype in DTYPES:
        for n in LENGTHS:
            for name, x in views(n, dtype):
                what = f"{dtype} n={n} {name}"
                xc = x.cpu()
                y = ops.selu(x)
                close(y, ops.selu(xc), dtype, "selu " + what)
                g = torch.randn_like(x)
                close(ops.selu_backward(g, y), ops.selu_backward(g.cpu(), y.cpu()), dtype,
                      "selu_backward " + what)
                x2 = x.clone()
                ops.selu_(x2)
                close(x2, y, dtype, "selu_ " + what)
                for p in (0.0, 0.3, 1.0):
                    rng = torch.tensor([12345, 8], dtype=torch.int64)
                    rng_dev = rng.cuda()
                    for op in (ops.alpha_dropout, ops.selu_alpha_dropout):
                        z = op(x, p, rng_dev)
                        close(z, op(xc, p, rng), dtype, f"{op.__name__} p={p} " + what)
                    z = ops.selu_alpha_dropout(x, p, rng_dev)
                    close(ops.selu_alpha_dropout_backward(g, z, p, rng_dev),
                          ops.selu_alpha_dropout_backward(g.cpu(), z.cpu(), p, rng),
                          dtype, f"selu_alpha_dropout_backward p={p} " + what)
                    close(ops.alpha_dropout_backward(g, p, rng_dev),
                          ops.alpha_dropout_backward(g.cpu(), p, rng), dtype,
                          f"alpha_dropout_backward p={p} " + what)
                    x3 = x.clone()
                    ops.alpha_dropout_(x3, p, rng_dev)
                    close(x3, ops.alpha_dropout(xc, p, rng), dtype, f"alpha_dropout_ p={p} " + what)
                    assert torch.equal(ops.dropout_keep_mask(rng_dev, n, p).cpu(),
                                       ops.dropout_keep_mask(rng, n, p))
                checked += 1
    # Generator-drawn state, non-dense and channels_last inputs, autograd.
    x = torch.randn(4, 6, 5, 7, device="cuda").contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    for fn in (selu_ext.selu, lambda t: selu_ext.selu_alpha_dropout(t, 0.2, True),
               lambda t: selu_ext.alpha_dropout(t, 0.2, True),
               lambda t: selu_ext.feature_alpha_dropout(t, 0.2, True)):
        fn(x).sum().backward()
        fn(x[:, ::2].detach())
    torch.cuda.synchronize()
    print(f"sanitize_cuda: {checked} (dtype, length, alignment) cases, all kernels, CUDA == CPU")


if __name__ == "__main__":
    main()
