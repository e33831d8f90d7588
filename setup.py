"""Build selu_ext: CPU kernels always, CUDA kernels when torch is a CUDA build and
nvcc is found. Install with `pip install --no-build-isolation -e .` (see README).

Switches (environment variables):
  USE_CUDA=0                       build without CUDA kernels (CUDA tensors then
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
  SELU_EXT_SCALAR_KERNELS=1        the baseline CPU variant as plain scalar loops,
                                   as MSVC builds it (to test that path elsewhere)
"""

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

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
    if _env_off("USE_CUDA"):
        return False, "disabled by USE_CUDA=0"
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


IS_WINDOWS = sys.platform == "win32"


def _cxx():
    """The C++ compiler torch.utils.cpp_extension will call."""
    return os.environ.get("CXX", "cl" if IS_WINDOWS else "c++")


def _compiler_kind(cxx):
    """'gcc', 'clang', 'msvc' or 'unknown', from the macros the compiler predefines
    (its banner does not always say: `c++ --version` names neither gcc nor g++)."""
    if IS_WINDOWS and os.path.basename(cxx).lower().startswith("cl"):
        return "msvc"
    try:
        out = subprocess.run([cxx, "-dM", "-E", "-x", "c++", os.devnull], capture_output=True,
                             text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if "__clang__" in out:
        return "clang"
    return "gcc" if "__GNUC__" in out else "unknown"


def _cpu_variants(kind):
    """The CPU kernel variants csrc/cpu/kernels_*.cpp compile for this target (their
    #if: x86-64 with GCC-compatible compilers gets all three)."""
    machine = platform.machine().lower()
    scalar = kind == "msvc" or _env_flag("SELU_EXT_SCALAR_KERNELS")
    variants = ["baseline (scalar loops)" if scalar else "baseline"]
    if machine in ("x86_64", "amd64") and kind != "msvc":
        variants += ["avx2", "avx512", "avx512_bf16"]
    return variants


def _elf_needed(path):
    """The DT_NEEDED sonames of an ELF file (readelf), or None where that cannot be read."""
    readelf = shutil.which("readelf")
    if readelf is None or not os.path.exists(path):
        return None
    try:
        out = subprocess.run([readelf, "-d", path], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return re.findall(r"\(NEEDED\).*\[(.*)\]", out.stdout) if out.returncode == 0 else None


def _omp_runtime(sonames):
    return next((n for n in sonames or [] if re.match(r"lib(g|i|l)?omp", n)), None)


def _openmp_probe(cxx, flags):
    """The OpenMP runtime a shared library built by `cxx flags` links (its soname), or
    (None, why not)."""
    src = ("#include <omp.h>\n"
           "int selu_ext_probe() {\n  int n = 0;\n#pragma omp parallel reduction(+ : n)\n"
           "  n += omp_get_num_threads();\n  return n;\n}\n")
    with tempfile.TemporaryDirectory() as tmp:
        cpp, lib = os.path.join(tmp, "probe.cpp"), os.path.join(tmp, "probe.so")
        with open(cpp, "w") as f:
            f.write(src)
        try:
            out = subprocess.run([cxx, *flags, "-shared", "-fPIC", cpp, "-o", lib],
                                 capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as e:
            return None, f"{cxx} did not run ({e})"
        if out.returncode != 0:
            first = (out.stderr.strip().splitlines() or ["failed"])[0]
            return None, f"{cxx} {' '.join(flags)} fails: {first[:120]}"
        runtime = _omp_runtime(_elf_needed(lib))
        return (runtime, "") if runtime else (None, "cannot tell which OpenMP runtime it links")


def _openmp(torch, cxx):
    """(compile/link flags, used?, what was chosen and why), for build_info().

    at::parallel_for is inline in torch's headers when torch's ATen parallel backend
    is OpenMP: compiled without OpenMP it runs serially. With OpenMP, the library must
    link the runtime torch has already loaded (same soname), or the process holds two
    thread pools and torch.set_num_threads sizes only one of them."""
    serial = "at::parallel_for runs serially"
    if "ATen parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return [], False, "not needed: torch's native thread pool runs at::parallel_for"
    if IS_WINDOWS:  # MSVC's /openmp links vcomp, not the runtime torch ships
        return [], False, f"off on Windows (MSVC's vcomp is not torch's runtime): {serial}"
    flags = ["-fopenmp"]
    torch_lib = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    theirs = _omp_runtime(_elf_needed(torch_lib))
    ours, why = _openmp_probe(cxx, flags)
    if ours is None:
        return [], False, f"off ({why}): {serial}"
    if theirs != ours:
        return [], False, (f"off ({cxx} links {ours}, torch uses {theirs or 'an unknown runtime'}"
                           f"): {serial}")
    return flags, True, f"on ({ours}, the runtime torch uses)"


def _torch_requirement(torch):
    """install_requires' torch entry. A built extension works only with the torch it
    was compiled against, so everything but a source distribution pins that release
    (without its local label: `pip` then accepts the CPU and CUDA builds of it, and
    selu_ext's import error names a CUDA/CPU mismatch)."""
    if "sdist" in sys.argv[1:]:
        return "torch>=2.11,<2.15"
    return f"torch=={torch.__version__.split('+')[0]}"


def _write_built_with(info, path):
    """selu_ext/_built_with.py: what selu_ext/_load.py names when the library fails to
    load (then build_info() cannot be read from it)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = ("# Generated by setup.py; do not edit.\n"
            f"TORCH_VERSION = {info['torch_version_built']!r}\n"
            f"CUDA = {info['cuda']!r}\n")
    old = open(path).read() if os.path.exists(path) else None
    if old != text:
        with open(path, "w") as f:
            f.write(text)


def _summary(info):
    """The one line the build prints about what it builds."""
    if info["cuda"]:
        cuda = (f"yes (CUDA {info['cuda_version']} in {info['cuda_home']}, from {info['cuda_home_from']}; "
                f"archs {info['cuda_archs']}, from {info['cuda_archs_from']})")
    else:
        cuda = f"no ({info['no_cuda_reason']})"
    return (f"selu_ext {info['version']} for torch {info['torch_version_built']}: "
            f"CUDA kernels {cuda}; CPU kernels {', '.join(info['cpu_variants_built'])}; "
            f"OpenMP {info['cpu_parallel']}; compiler {info['compiler_built']}")


def _say(line):
    """Print where a user sees it: pip hides a build's output without -v, so the
    line also goes to the terminal itself when there is one."""
    print(line, flush=True)
    if sys.stdout.isatty() or IS_WINDOWS:
        return
    try:
        with open("/dev/tty", "w") as tty:
            tty.write(line + "\n")
    except OSError:
        pass


def _write_config(info):
    """build/generated/selu_ext_config.h: what build_info() reports."""
    gen = os.path.join(ROOT, "build", "generated")
    os.makedirs(gen, exist_ok=True)
    info = {k: v for k, v in info.items() if k != "cuda_home_from"}
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
    cxx_path = _cxx()
    kind = _compiler_kind(cxx_path)
    archs, archs_from = _arch_list(torch) if with_cuda else ("", "")
    omp_flags, omp_used, omp_text = _openmp(torch, cxx_path)
    info = {
        "version": VERSION,
        "torch_version_built": torch.__version__,
        "cuda": with_cuda,
        "no_cuda_reason": no_cuda_reason,
        "cuda_version": _nvcc_version(cuda_home) if with_cuda else None,
        "cuda_home": cuda_home if with_cuda else None,
        "cuda_archs": archs,
        "cuda_archs_from": archs_from,
        "cpu_variants_built": _cpu_variants(kind),
        "openmp": omp_used,
        "cpu_parallel": omp_text,
        "compiler_built": f"{cxx_path} ({kind})",
        "sanitize": sanitize or None,
    }
    gen = os.path.join(ROOT, "build", "generated")  # written by BuildExt.run

    sources = [
        "csrc/ops.cpp",
        "csrc/python_module.cpp",
        "csrc/autograd.cpp",
        "csrc/cpu/selu_cpu.cpp",
        "csrc/cpu/dispatch.cpp",
        "csrc/cpu/kernels_baseline.cpp",
        "csrc/cpu/kernels_avx2.cpp",
        "csrc/cpu/kernels_avx512.cpp",
        "csrc/cpu/kernels_avx512_bf16.cpp",
    ]
    sources += (["csrc/cuda/selu_cuda.cpp", "csrc/cuda/selu_kernels.cu"] if with_cuda
                else ["csrc/cuda/fallback.cpp"])

    scalar = ["-DSELU_EXT_SCALAR_KERNELS"] if _env_flag("SELU_EXT_SCALAR_KERNELS") else []
    if kind == "msvc":
        # Untested (no Windows machine here); kept to what MSVC needs: its own
        # flags, and csrc/cpu/kernels_baseline.cpp picks the scalar loops itself.
        cxx = ["/O2"]
        cxx += ["/std:c++20", "/fp:contract", "/DNOMINMAX"] + scalar
        link = []
    else:
        # The std::string ABI of the torch that will load us, stated rather than left
        # to the compiler's default: a toolchain whose default differs would hand
        # libc10 std::strings it misreads (selu_ext/ops.py refuses such a build). Not
        # the cause of the H100 crash on formatted error messages (csrc/check.h: a
        # mismatched build fails to load at all), but a check a foreign toolchain such
        # as that machine's /opt/gcc needs.
        abi = [f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"]
        # -g0 last: Python's own CFLAGS, which setuptools passes first, carry -g, and
        # debug information for torch's headers is most of the host files' compile time.
        opt = ["-O3", "-g0"]
        cxx = opt + abi + scalar + omp_flags + ["-std=c++20", "-ffp-contract=fast", "-Wall",
                                                "-Wno-unused-parameter", "-fvisibility=hidden"]
        cxx += ["-Wno-psabi"] if kind == "gcc" else []
        link = list(omp_flags)
    if sanitize:
        flags = [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer",
                 "-fno-sanitize-recover=undefined"]
        cxx += flags
        link += flags
    include_dirs = [os.path.join(ROOT, "csrc"), gen]
    kwargs = dict(name="selu_ext._C", sources=sources, include_dirs=include_dirs,
                  extra_link_args=link)
    if not with_cuda:
        return cpp_extension.CppExtension(extra_compile_args={"cxx": cxx}, **kwargs), info
    inc = _cusparse_include(cuda_home)
    if inc:
        include_dirs.append(inc)
    jobs = os.environ.get("MAX_JOBS") or str(os.cpu_count() or 1)
    nvcc = ["-O3", "-std=c++20", f"--threads={jobs}", "-lineinfo", "--expt-relaxed-constexpr"]
    if kind != "msvc":
        nvcc += [f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
                 "-Xcompiler=-fvisibility=hidden"]
    return (cpp_extension.CUDAExtension(extra_compile_args={"cxx": cxx, "nvcc": nvcc}, **kwargs),
            info)


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
    ext, info = _extension(torch, cpp_extension, with_cuda, no_cuda_reason, cuda_home)
    info["cuda_home_from"] = cuda_home_from
    _setup(ext, _build_ext_class(cpp_extension.BuildExtension, info),
           _torch_requirement(torch))


def _build_ext_class(base, info):
    class BuildExt(base.with_options(use_ninja=True)):
        """Says what it builds, writes the generated files (only when building, so
        that metadata-only commands change nothing), and keeps its objects in build/
        across builds: an editable install otherwise compiles in a fresh temporary
        folder every time, so every reinstall rebuilt everything."""

        def finalize_options(self):
            super().finalize_options()
            self.build_temp = os.path.join(ROOT, "build", f"temp-{sys.platform}-"
                                           f"{sys.implementation.cache_tag}")

        def run(self):
            _say(_summary(info))
            _write_config(info)
            _write_built_with(info, os.path.join(ROOT, "selu_ext", "_built_with.py"))
            if not self.inplace:  # build_py has already copied the package
                _write_built_with(info, os.path.join(self.build_lib, "selu_ext",
                                                     "_built_with.py"))
            super().run()

    return BuildExt


def _setup(ext, build_ext, torch_requirement):
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
        cmdclass={"build_ext": build_ext},
        python_requires=">=3.10",
        # The library never imports numpy (it reads numpy scalars through torch's C API).
        install_requires=[torch_requirement],
        extras_require={
            "test": ["pytest", "hypothesis", "numpy"],
            "plot": ["matplotlib"],
            "examples": ["scikit-learn", "matplotlib"],
        },
        zip_safe=False,
    )


if __name__ == "__main__":
    main()
