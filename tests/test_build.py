"""The build: CUDA_HOME found through nvcc wrappers and symlinks; what build_info()
reports (every documented key, with a value of the right kind); the CPU kernel
variant in use is the best one this CPU supports unless SELU_EXT_CPU_CAPABILITY asks
for another (checked in fresh processes, since the choice is made once per
process); in CI, CUDA kernels compiled and linked even without a GPU (none in the
CPU-only builds against older torches, as asked); wheel metadata that pins the torch
it was built against, an import error that names both torches; OpenMP only as
torch's. The CUDA fallback of a build without CUDA kernels is in
test_fallback.py."""

import importlib.util
import json
import os
import pathlib
import stat
import subprocess
import sys
import textwrap

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
    "compiler": str,
    "cxx11_abi": (bool, type(None)),
}
VARIANTS = ["baseline", "avx2", "avx512", "avx512_bf16"]  # narrowest first, as csrc/cpu/dispatch.cpp


def _package_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(selu_ext.__file__)))


def run_python(code, **env):
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
    info = json.loads(run_python("import json, selu_ext; print(json.dumps(selu_ext.build_info()))"))
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
    out = json.loads(run_python(code, SELU_EXT_CPU_CAPABILITY=request_))
    want = expected or _best_supported()
    assert out["info"]["cpu_capability"] == want and out["active"] == want


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="CI only: checks CI's own build")
def test_ci_built_what_it_asked_for():
    # .ci/run's main build asks FORCE_CUDA=1 of the CUDA build of torch: the CUDA
    # kernels must have compiled and linked although CI has no GPU. Its builds
    # against older torches (.ci/torch_versions.sh) ask USE_CUDA=0. A CI build that
    # asks neither fails here, so the main build cannot lose its CUDA check unseen.
    info = selu_ext.build_info()
    if os.environ.get("USE_CUDA") == "0":
        assert os.environ.get("FORCE_CUDA") != "1", "USE_CUDA=0 and FORCE_CUDA=1 contradict"
        assert not info["cuda"] and "USE_CUDA=0" in info["no_cuda_reason"]
        return
    assert os.environ.get("FORCE_CUDA") == "1", "CI builds with FORCE_CUDA=1 or USE_CUDA=0"
    assert torch.version.cuda is not None, "CI must install the CUDA build of torch"
    assert info["cuda"]


_FAILING_LOAD = r'''
import importlib.abc
import sys

import torch

MESSAGE, MISSING, FOUND = sys.argv[1], sys.argv[2] == "missing", sys.argv[3]


class FailToLoad(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "selu_ext._C":
            if MISSING:
                raise ModuleNotFoundError(MESSAGE, name=name)
            raise ImportError(MESSAGE)
        return None


# What a wheel built against another torch meets beside a CPU-only torch (FOUND).
sys.meta_path.insert(0, FailToLoad())
torch.__version__ = FOUND
torch.version.cuda = None
try:
    import selu_ext  # noqa: F401
except ImportError as err:
    print(type(err).__name__, err)
else:
    print("imported")
'''


def _found_torch():
    """A CPU-only torch version other than the one this build was made against."""
    from selu_ext import _built_with

    return "2.12.0+cpu" if _built_with.TORCH_VERSION == "2.13.0+cpu" else "2.13.0+cpu"


def _import_with_failing_library(message, missing=False):
    out = subprocess.run([sys.executable, "-c", _FAILING_LOAD, message,
                          "missing" if missing else "broken", _found_torch()],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_error_names_the_torch_built_against_and_found():
    from selu_ext import _built_with

    raw = "libc10_cuda.so: cannot open shared object file: No such file or directory"
    msg = _import_with_failing_library(raw)
    assert msg.startswith("ImportError selu_ext: its compiled library does not load")
    assert raw in msg  # the linker's own words stay in the message
    assert f"against torch {_built_with.TORCH_VERSION};" in msg
    assert f"the installed torch is {_found_torch()} (a CPU-only build)" in msg
    assert "pip install --no-build-isolation -e ." in msg
    assert f"or install torch {_built_with.TORCH_VERSION}." in msg


def test_import_error_when_the_library_was_never_built():
    msg = _import_with_failing_library("No module named 'selu_ext._C'", missing=True)
    assert msg.startswith("ImportError selu_ext: its compiled library selu_ext._C is not built")
    assert "pip install --no-build-isolation -e ." in msg


def _wheel_requires(tmp_path):
    """The requirements pip writes into a wheel (egg_info is the step that makes
    them), as {extra or "": [requirement, ...]}; USE_CUDA=0 only skips the CUDA
    checks, which do not change them."""
    env = dict(os.environ, USE_CUDA="0")
    out = subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base",
                          str(tmp_path)], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    sections, current = {"": []}, ""
    for line in (tmp_path / "selu_ext.egg-info" / "requires.txt").read_text().splitlines():
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = []
        elif line:
            sections[current].append(line)
    return sections


def test_wheel_metadata_pins_the_torch_it_was_built_against(tmp_path):
    requires = _wheel_requires(tmp_path)[""]
    assert f"torch=={torch.__version__.split('+')[0]}" in requires


def test_wheel_metadata_numpy_only_for_the_tests(tmp_path):
    # The library never imports numpy (test_imports.py runs it without); the tests do.
    requires = _wheel_requires(tmp_path)
    assert not [r for r in requires[""] if r.startswith("numpy")]
    assert "numpy" in requires["test"]


def test_source_distribution_keeps_the_supported_range(monkeypatch):
    setup = _setup_module()
    monkeypatch.setattr(sys, "argv", ["setup.py", "sdist"])
    assert setup._torch_requirement(torch) == "torch>=2.11,<2.15"


def test_openmp_choice_is_stated_and_links_torchs_runtime():
    info = selu_ext.build_info()
    assert isinstance(info["openmp"], bool)
    assert info["cpu_parallel"].startswith(("on", "off", "not needed"))
    assert info["cpu_parallel"].startswith("on") == info["openmp"]
    setup = _setup_module()
    ours = setup._elf_needed(selu_ext._C.__file__)
    if ours is None:
        pytest.skip("readelf cannot read this build")
    torch_lib = pathlib.Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    theirs = setup._omp_runtime(setup._elf_needed(str(torch_lib)))
    runtimes = [n for n in ours if setup._omp_runtime([n])]
    # One thread pool: with OpenMP exactly torch's runtime, without it none at all.
    assert runtimes == ([theirs] if info["openmp"] else [])
