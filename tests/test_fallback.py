"""What a build reports about itself, and the CUDA fallback of a build without CUDA
kernels.

* build_info() has every documented key with a value of the right kind, and the
  CPU kernel variant in use is the best one this CPU supports unless
  SELU_EXT_CPU_CAPABILITY asks for another (checked in fresh processes, since the
  choice is made once per process).
* A build without CUDA kernels (USE_CUDA=0, a CPU-only torch, no nvcc) on a machine
  with a GPU: CUDA tensors still work, through PyTorch's own SELU and the CPU
  dropout kernels, with one warning that says why and how to rebuild; the values
  are right and the dropout masks equal the CPU path's for the same rng_state.
  This needs such a build and a GPU, so it is skipped with the reason otherwise. To
  run it on a GPU machine, build a copy of the sources with
  `USE_CUDA=0 python setup.py build_ext --inplace` and run this file there.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import selu_ext
from conftest import TOL

KEYS = {
    "version": str,
    "torch_version_built": str,
    "torch_version": str,
    "cuda": bool,
    "no_cuda_reason": str,
    "cuda_version": (str, type(None)),
    "cuda_archs": str,
    "cuda_archs_from": str,
    "cpu_capabilities_compiled": str,
    "cpu_capabilities_supported": str,
    "cpu_capability": str,
    "sanitize": (str, type(None)),
    "debug": bool,
    "compiler": str,
    "cxx11_abi": (bool, type(None)),
}
VARIANTS = ["baseline", "avx2", "avx512"]  # narrowest first, as csrc/cpu/dispatch.cpp


def _package_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(selu_ext.__file__)))


def _python(code, **env):
    """Runs code in a fresh interpreter that imports this same selu_ext build."""
    full_env = dict(os.environ)
    full_env.pop("SELU_EXT_CPU_CAPABILITY", None)
    full_env["PYTHONPATH"] = os.pathsep.join(
        [_package_root()] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    full_env.update(env)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_build_info_keys():
    info = selu_ext.build_info()
    for key, kind in KEYS.items():
        assert key in info, key
        assert isinstance(info[key], kind), (key, info[key])
    assert info["version"] == selu_ext.__version__
    assert info["torch_version"] == torch.__version__
    if info["cuda"]:
        assert info["no_cuda_reason"] == ""
        assert info["cuda_version"] and info["cuda_archs"] and info["cuda_archs_from"]
    else:
        assert info["no_cuda_reason"], "a build without CUDA kernels says why"
    compiled = info["cpu_capabilities_compiled"].split(",")
    supported = info["cpu_capabilities_supported"].split(",")
    assert "baseline" in supported and set(supported) <= set(compiled) <= set(VARIANTS)
    assert info["cpu_capability"] in supported


def _best_supported():
    supported = selu_ext.build_info()["cpu_capabilities_supported"].split(",")
    return max(supported, key=VARIANTS.index)


def test_cpu_capability_default_is_best_supported():
    # In a fresh process: this one's tests may have switched variants.
    info = json.loads(_python("import json, selu_ext; print(json.dumps(selu_ext.build_info()))"))
    assert info["cpu_capability"] == _best_supported()


@pytest.mark.parametrize("request_,expected", [
    ("baseline", "baseline"),
    ("no-such-isa", None),  # unknown: keeps the best one (documented in dispatch.cpp)
])
def test_cpu_capability_env_override(request_, expected):
    code = """
        import json, torch, selu_ext
        from selu_ext import _C
        x = torch.linspace(-5, 5, 1001, dtype=torch.float64)
        ref = torch.nn.functional.selu(x)
        torch.testing.assert_close(selu_ext.selu(x), ref)
        print(json.dumps({"info": selu_ext.build_info(), "active": _C.cpu_capability()}))
    """
    out = json.loads(_python(code, SELU_EXT_CPU_CAPABILITY=request_))
    want = expected or _best_supported()
    assert out["info"]["cpu_capability"] == want and out["active"] == want


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
    tol = {str(dt): t[2:] for dt, t in TOL.items()}
    report = json.loads(_python(f"BACKWARD_TOL = {tol!r}\n" + FALLBACK_CHECK))
    warns = report["warnings"]
    assert len(warns) == 1, warns  # once per process, however many calls
    assert "built without" in warns[0] and ("rebuild" in warns[0] or "FORCE_CUDA" in warns[0])
    assert info["no_cuda_reason"] in warns[0]
