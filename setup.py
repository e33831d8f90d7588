"""Build selu_ext: CPU kernels always, CUDA kernels when torch is a CUDA build and
nvcc is found. Install with `pip install --no-build-isolation -e .` (see README).

Switches (environment variables):
  USE_CUDA=0 / SKIP_CUDA_BUILD=1   build without CUDA kernels (CUDA tensors then
                                   fall back to PyTorch, with a warning)
  FORCE_CUDA=1                     build the CUDA kernels or fail trying
  TORCH_CUDA_ARCH_LIST="9.0;8.0"   architectures; unset with no GPU visible, the
                                   documented default DEFAULT_ARCHS below
  CUDA_HOME                        the toolkit; unset, found from nvcc on PATH,
                                   following symlinks and wrapper scripts
  MAX_JOBS                         parallel compile jobs (default: CPU count)
  SELU_EXT_SANITIZE=address,undefined
                                   build the C++ code with AddressSanitizer and
                                   UndefinedBehaviorSanitizer (see README)
  SELU_EXT_DEBUG=1                 -O0 -g
"""

import json
import os
import re
import shutil
import subprocess
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
VERSION = "0.1.0"

# Hopper (sm_90) included; CUDA 13 supports sm_75 and newer. The last entry also
# embeds PTX, so newer GPUs JIT-compile it.
DEFAULT_ARCHS = "7.5;8.0;8.6;8.9;9.0;10.0;12.0+PTX"


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _env_off(name):
    return os.environ.get(name, "").strip().lower() in ("0", "false", "no", "off")


def _toolkit_root(nvcc):
    """The CUDA toolkit that `nvcc` belongs to, even when the nvcc on PATH is a
    symlink or a wrapper script in another folder (torch would guess that folder's
    parent and fail to link cudart)."""
    real = os.path.realpath(nvcc)
    root = os.path.dirname(os.path.dirname(real))
    if os.path.exists(os.path.join(root, "include", "cuda_runtime.h")):
        return root
    try:  # ask nvcc itself: its dry run prints TOP=<toolkit>
        out = subprocess.run([nvcc, "--dryrun", "-x", "cu", "-c", os.devnull, "-o", os.devnull],
                             capture_output=True, text=True, timeout=60)
        for line in (out.stdout + out.stderr).splitlines():
            m = re.match(r"#\$ TOP=(.*)$", line.strip())
            if m:
                return os.path.realpath(m.group(1))
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def _find_cuda_home():
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return os.environ[var], f"${var}"
    nvcc = shutil.which("nvcc")
    if nvcc:
        root = _toolkit_root(nvcc)
        if root:
            return root, f"nvcc on PATH ({nvcc})"
    if os.path.exists("/usr/local/cuda/bin/nvcc"):
        return "/usr/local/cuda", "/usr/local/cuda"
    return None, None


def _decide_cuda(torch, cuda_home):
    """(build CUDA kernels?, reason when not)."""
    if _env_off("USE_CUDA") or _env_flag("SKIP_CUDA_BUILD"):
        return False, "disabled by USE_CUDA=0 / SKIP_CUDA_BUILD=1"
    if torch.version.cuda is None:
        reason = f"torch {torch.__version__} is a CPU-only build"
    elif cuda_home is None or not os.path.exists(os.path.join(cuda_home, "bin", "nvcc")):
        reason = "no CUDA compiler found (nvcc not on PATH, CUDA_HOME not set)"
    else:
        return True, ""
    if _env_flag("FORCE_CUDA"):
        sys.exit(f"selu_ext: FORCE_CUDA=1 but cannot build CUDA kernels: {reason}")
    return False, reason


def _nvcc_version(cuda_home):
    try:
        out = subprocess.run([os.path.join(cuda_home, "bin", "nvcc"), "--version"],
                             capture_output=True, text=True, timeout=60).stdout
        m = re.search(r"release (\d+\.\d+)", out)
        return m.group(1) if m else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _arch_list(torch):
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"], "$TORCH_CUDA_ARCH_LIST"
    if torch.cuda.is_available():
        caps = sorted({"%d.%d" % torch.cuda.get_device_capability(i)
                       for i in range(torch.cuda.device_count())})
        return ";".join(caps), "visible GPUs"
    os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCHS
    return DEFAULT_ARCHS, "default (no GPU visible)"


def _cusparse_include(cuda_home):
    """ATen's CUDA headers may include cusparse.h, which a minimal toolkit lacks but
    the nvidia-* pip packages that come with torch ship. Absolute path or None."""
    if cuda_home and os.path.exists(os.path.join(cuda_home, "include", "cusparse.h")):
        return None
    for base in sys.path:
        nv = os.path.join(base, "nvidia")
        if not os.path.isdir(nv):
            continue
        for sub in sorted(os.listdir(nv)):
            inc = os.path.join(nv, sub, "include")
            if os.path.exists(os.path.join(inc, "cusparse.h")):
                return inc
    return None


def _write_config(info):
    """build/generated/selu_ext_config.h: what build_info() reports."""
    gen = os.path.join(ROOT, "build", "generated")
    os.makedirs(gen, exist_ok=True)
    text = (
        "// Generated by setup.py; do not edit.\n#pragma once\n"
        f"#define SELU_EXT_BUILD_INFO_JSON {json.dumps(json.dumps(info))}\n"
        f"#define SELU_EXT_NO_CUDA_REASON {json.dumps(info['no_cuda_reason'] or 'none')}\n"
    )
    path = os.path.join(gen, "selu_ext_config.h")
    old = open(path).read() if os.path.exists(path) else None
    if old != text:  # keep the timestamp, and ninja's work, when nothing changed
        with open(path, "w") as f:
            f.write(text)
    return gen


def _extension(torch, cpp_extension, with_cuda, no_cuda_reason, cuda_home):
    sanitize = os.environ.get("SELU_EXT_SANITIZE", "").strip()
    debug = _env_flag("SELU_EXT_DEBUG")
    opt = ["-O0", "-g"] if debug else ["-O3"]
    archs, archs_from = _arch_list(torch) if with_cuda else ("", "")
    info = {
        "version": VERSION,
        "torch_version_built": torch.__version__,
        "cuda": with_cuda,
        "no_cuda_reason": no_cuda_reason,
        "cuda_version": _nvcc_version(cuda_home) if with_cuda else None,
        "cuda_home": cuda_home if with_cuda else None,
        "cuda_archs": archs,
        "cuda_archs_from": archs_from,
        "sanitize": sanitize or None,
        "debug": debug,
    }
    gen = _write_config(info)

    sources = [
        "csrc/ops.cpp",
        "csrc/python_module.cpp",
        "csrc/autograd.cpp",
        "csrc/cpu/selu_cpu.cpp",
        "csrc/cpu/dispatch.cpp",
        "csrc/cpu/kernels_baseline.cpp",
        "csrc/cpu/kernels_avx2.cpp",
        "csrc/cpu/kernels_avx512.cpp",
    ]
    sources += (["csrc/cuda/selu_cuda.cpp", "csrc/cuda/selu_kernels.cu"] if with_cuda
                else ["csrc/cuda/fallback.cpp"])

    # -fopenmp: at::parallel_for is inline in torch's headers and runs serially
    # unless the extension itself is compiled with OpenMP. The library it links,
    # libgomp.so.1, is the one torch has already loaded (same soname): one thread
    # pool, sized by torch.set_num_threads.
    # The std::string ABI of the torch that will load us, stated rather than left to
    # the compiler's default: a toolchain whose default differs (the GPU machine
    # builds with /opt/gcc) otherwise hands libc10 std::strings it reads as garbage,
    # and every TORCH_CHECK with a formatted message segfaults.
    abi = [f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"]
    cxx = opt + abi + ["-std=c++20", "-ffp-contract=fast", "-fopenmp", "-Wall", "-Wno-psabi",
                       "-Wno-unused-parameter", "-fvisibility=hidden"]
    link = ["-fopenmp"]
    if sanitize:
        flags = [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer",
                 "-fno-sanitize-recover=undefined"]
        cxx += flags
        link += flags
    include_dirs = [os.path.join(ROOT, "csrc"), gen]
    kwargs = dict(name="selu_ext._C", sources=sources, include_dirs=include_dirs,
                  extra_link_args=link)
    if not with_cuda:
        return cpp_extension.CppExtension(extra_compile_args={"cxx": cxx}, **kwargs)
    inc = _cusparse_include(cuda_home)
    if inc:
        include_dirs.append(inc)
    jobs = os.environ.get("MAX_JOBS") or str(os.cpu_count() or 1)
    nvcc = opt + abi + ["-std=c++20", f"--threads={jobs}", "-lineinfo",
                  "--expt-relaxed-constexpr", "-Xcompiler=-fvisibility=hidden"]
    return cpp_extension.CUDAExtension(extra_compile_args={"cxx": cxx, "nvcc": nvcc}, **kwargs)


def main():
    cuda_home, cuda_home_from = _find_cuda_home()
    if cuda_home:
        # torch.utils.cpp_extension reads CUDA_HOME when it is imported.
        os.environ["CUDA_HOME"] = cuda_home
    if "MAX_JOBS" not in os.environ:
        os.environ["MAX_JOBS"] = str(os.cpu_count() or 1)
    import torch
    from torch.utils import cpp_extension

    with_cuda, no_cuda_reason = _decide_cuda(torch, cuda_home)
    print(f"selu_ext: CUDA kernels: {'yes' if with_cuda else 'no (' + no_cuda_reason + ')'}"
          + (f"; CUDA_HOME={cuda_home} (from {cuda_home_from})" if with_cuda else ""), flush=True)
    ext = _extension(torch, cpp_extension, with_cuda, no_cuda_reason, cuda_home)
    _setup(ext, cpp_extension.BuildExtension)


def _setup(ext, build_extension):
    readme = os.path.join(ROOT, "README.md")
    setup(
        name="selu_ext",
        version=VERSION,
        description="Fused SELU, AlphaDropout and self-normalizing-network tools for PyTorch "
                    "(C++/CUDA operators)",
        long_description=open(readme).read() if os.path.exists(readme) else "",
        long_description_content_type="text/markdown",
        packages=find_packages(include=["selu_ext", "selu_ext.*"]),
        ext_modules=[ext],
        cmdclass={"build_ext": build_extension.with_options(use_ninja=True)},
        python_requires=">=3.10",
        install_requires=["torch>=2.11,<2.15", "numpy"],
        extras_require={
            "test": ["pytest", "hypothesis"],
            "plot": ["matplotlib"],
            "examples": ["scikit-learn", "matplotlib"],
        },
        zip_safe=False,
    )


if __name__ == "__main__":
    main()
