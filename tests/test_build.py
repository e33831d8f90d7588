"""The build: CUDA_HOME found through nvcc wrappers and symlinks, and, in CI, CUDA
kernels compiled and linked even without a GPU."""

import importlib.util
import os
import pathlib
import stat

import pytest
import torch

import selu_ext

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _setup_module():
    spec = importlib.util.spec_from_file_location("selu_ext_setup", ROOT / "setup.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # defines helpers only; setup() runs under __main__
    return mod


def _fake_toolkit(tmp_path):
    root = tmp_path / "cuda-99.0"
    (root / "bin").mkdir(parents=True)
    (root / "include").mkdir()
    (root / "include" / "cuda_runtime.h").write_text("")
    real = root / "bin" / "nvcc"
    real.write_text("#!/bin/sh\necho '#$ TOP=%s/bin/..' >&2\n" % root)
    real.chmod(real.stat().st_mode | stat.S_IEXEC)
    return root, real


def test_toolkit_found_through_a_symlink(tmp_path):
    setup = _setup_module()
    root, real = _fake_toolkit(tmp_path)
    link_dir = tmp_path / "usr-local-bin"
    link_dir.mkdir()
    (link_dir / "nvcc").symlink_to(real)
    assert setup._toolkit_root(str(link_dir / "nvcc")) == str(root)


def test_toolkit_found_through_a_wrapper_script(tmp_path):
    # This machine's nvcc is `exec /usr/local/cuda-13.0/bin/nvcc "$@"` in
    # /usr/local/bin: realpath cannot see through it; nvcc's dry run can.
    setup = _setup_module()
    root, real = _fake_toolkit(tmp_path)
    wrapper_dir = tmp_path / "wrapper-bin"
    wrapper_dir.mkdir()
    wrapper = wrapper_dir / "nvcc"
    wrapper.write_text(f'#!/bin/sh\nexec {real} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    assert setup._toolkit_root(str(wrapper)) == os.path.realpath(str(root))


def test_std_string_abi_matches_torch():
    # A mismatch would make every formatted error message crash; ops.py refuses to
    # import such a build, and this states it for the build under test.
    info = selu_ext.build_info()
    if info["cxx11_abi"] is None:
        pytest.skip("not built against libstdc++")
    assert info["cxx11_abi"] == bool(torch._C._GLIBCXX_USE_CXX11_ABI)


def test_build_info_reports_cuda_consistently():
    info = selu_ext.build_info()
    if info["cuda"]:
        assert info["cuda_archs"] and info["cuda_version"] and not info["no_cuda_reason"]
    else:
        assert info["no_cuda_reason"]


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="CI only: checks CI's own build")
def test_ci_compiled_the_cuda_kernels():
    # .ci/run builds with FORCE_CUDA=1 and the CUDA build of torch: the CUDA kernels
    # must have compiled and linked although CI has no GPU.
    assert torch.version.cuda is not None, "CI must install the CUDA build of torch"
    assert selu_ext.build_info()["cuda"]
