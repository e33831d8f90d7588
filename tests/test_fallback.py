"""The CUDA fallback of a build without CUDA kernels (USE_CUDA=0, a CPU-only torch,
no nvcc) on a machine with a GPU: CUDA tensors still work, through PyTorch's own SELU
and the CPU dropout kernels, with one warning that says why and how to rebuild; the
values are right and the dropout masks equal the CPU path's for the same rng_state.
This needs such a build and a GPU, so it is skipped with the reason otherwise. To
run it on a GPU machine, build a copy of the sources with
`USE_CUDA=0 python setup.py build_ext --inplace` and run this file there.
"""

import json

import pytest
import torch

import selu_ext
from conftest import TOL
from test_build import run_python


FALLBACK_CHECK = r"""
import json, warnings
import torch
import selu_ext

OPS = torch.ops.selu_ext
report = {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    g = torch.Generator().manual_seed(0)
    xc = (torch.randn(4099, 3, generator=g, dtype=torch.float64) * 3)
    for dtype in (torch.float64, torch.float32, torch.bfloat16, torch.float16):
        xcpu = xc.to(dtype)
        x = xcpu.cuda()
        torch.testing.assert_close(selu_ext.selu(x).cpu(), torch.nn.functional.selu(xcpu))
        xi = x.clone()
        selu_ext.selu(xi, inplace=True)
        torch.testing.assert_close(xi.cpu(), torch.nn.functional.selu(xcpu))
        xr = x.clone().requires_grad_()
        selu_ext.selu(xr).sum().backward()
        xr_cpu = xcpu.clone().requires_grad_()
        torch.nn.functional.selu(xr_cpu).sum().backward()
        # selu_ext differentiates from the rounded output, torch's CPU SELU from the
        # input: conftest.TOL's backward tolerances cover the difference.
        rtol, atol = BACKWARD_TOL[str(dtype)]
        torch.testing.assert_close(xr.grad.cpu(), xr_cpu.grad, rtol=rtol, atol=atol)
        for rng in (torch.tensor([77, 4]), torch.tensor([77, 4]).cuda()):
            rc = rng.cpu()
            for name, cuda_out, cpu_out in [
                ("alpha_dropout", OPS.alpha_dropout(x, 0.3, rng), OPS.alpha_dropout(xcpu, 0.3, rc)),
                ("selu_alpha_dropout", OPS.selu_alpha_dropout(x, 0.3, rng),
                 OPS.selu_alpha_dropout(xcpu, 0.3, rc)),
                ("alpha_dropout_backward", OPS.alpha_dropout_backward(x, 0.3, rng),
                 OPS.alpha_dropout_backward(xcpu, 0.3, rc)),
                ("dropout_keep_mask", OPS.dropout_keep_mask(rng, x.numel(), 0.3),
                 OPS.dropout_keep_mask(rc, x.numel(), 0.3)),
            ]:
                # dropout_keep_mask's output lives on rng_state's device (its only
                # tensor argument); the other ops' on the input's.
                want = rng.device.type if name == "dropout_keep_mask" else "cuda"
                assert cuda_out.device.type == want, name
                assert torch.equal(cuda_out.cpu(), cpu_out), (name, dtype)
            z = OPS.selu_alpha_dropout(x, 0.3, rng)
            assert torch.equal(OPS.selu_alpha_dropout_backward(x, z, 0.3, rng).cpu(),
                               OPS.selu_alpha_dropout_backward(xcpu, z.cpu(), 0.3, rc))
            xi = x.clone()
            OPS.alpha_dropout_(xi, 0.3, rng)
            assert torch.equal(xi.cpu(), OPS.alpha_dropout(xcpu, 0.3, rc))
    # The functional API with torch's generator, and the modules, on CUDA.
    state = OPS.dropout_rng_state(torch.device("cuda"))
    assert state.device.type == "cuda" and state.dtype == torch.int64 and state.numel() == 2
    x = xc.float().cuda().requires_grad_()
    y = selu_ext.nn.SelfNormalizingMLP(3, 8, 2, depth=2, dropout=0.1).cuda().train()(x)
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    out = selu_ext.alpha_dropout(x.detach(), 0.5, True, seed=9)
    assert torch.equal(out.cpu(), selu_ext.alpha_dropout(x.detach().cpu(), 0.5, True, seed=9))
report["warnings"] = [str(w.message) for w in caught if "selu_ext" in str(w.message)]
print(json.dumps(report))
"""


@pytest.mark.cuda
def test_cuda_fallback_without_cuda_kernels():
    info = selu_ext.build_info()
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible: the fallback serves CUDA tensors")
    if info["cuda"]:
        pytest.skip("this build has CUDA kernels (build_info()['cuda'] is True); the fallback "
                    "needs a USE_CUDA=0 build (see this file's docstring)")
    assert info["no_cuda_reason"], "a build without CUDA kernels says why"
    tol = {str(dt): t[2:] for dt, t in TOL.items()}
    report = json.loads(run_python(f"BACKWARD_TOL = {tol!r}\n" + FALLBACK_CHECK))
    warns = report["warnings"]
    assert len(warns) == 1, warns  # once per process, however many calls
    assert "built without" in warns[0] and ("rebuild" in warns[0] or "FORCE_CUDA" in warns[0])
    assert info["no_cuda_reason"] in warns[0]
