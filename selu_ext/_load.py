"""Loads selu_ext's compiled library, and says what to do when it does not load.

An extension works only with the torch it was compiled against. Imported beside
another torch (a CPU-only one, another release), the library fails with a linker
message such as ``libc10_cuda.so: cannot open shared object file``, which names
neither selu_ext nor the fix. This module re-raises it as an ImportError that names
the torch the build expected, the torch found, and how to rebuild.
"""

from __future__ import annotations

import importlib

import torch  # noqa: F401  (its libraries must be loaded before ours)

_REBUILD = ("rebuild selu_ext against the installed torch: from its source folder, "
            "`pip install --no-build-isolation -e .` (or `pip wheel --no-build-isolation .` "
            "for a wheel)")


def _built_with():
    """(torch version, CUDA kernels?) the build recorded, or (None, None)."""
    try:
        from . import _built_with as b
    except ImportError:
        return None, None
    return b.TORCH_VERSION, b.CUDA


def explain(err: ImportError) -> str:
    """The message for an ImportError raised while loading selu_ext._C."""
    if isinstance(err, ModuleNotFoundError) and err.name == "selu_ext._C":
        return ("selu_ext: its compiled library selu_ext._C is not built. Build it "
                "with `pip install --no-build-isolation -e .` from the source folder (see "
                "README, 'Install', and docs/building.md).")
    built, cuda = _built_with()
    running = torch.__version__
    lines = [f"selu_ext: its compiled library does not load ({err})."]
    if built is None:
        lines.append(f"The installed torch is {running}; the torch this build was "
                     "compiled against is not recorded.")
    else:
        kernels = "with CUDA kernels" if cuda else "without CUDA kernels"
        lines.append(f"It was built {kernels} against torch {built}; the installed torch is "
                     f"{running}{'' if torch.version.cuda else ' (a CPU-only build)'}.")
        if built == running:
            lines.append("The versions match, so another library it needs is missing.")
    lines.append(f"To fix it, {_REBUILD}"
                 + (f", or install torch {built}." if built and built != running else "."))
    return " ".join(lines)


def load():
    """Imports selu_ext._C (which registers the operators) and returns it."""
    try:
        return importlib.import_module("selu_ext._C")
    except ImportError as err:
        raise ImportError(explain(err)) from err
