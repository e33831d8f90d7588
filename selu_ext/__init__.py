"""selu_ext: fused SELU and AlphaDropout for PyTorch, as C++/CUDA operators.

    import selu_ext
    y = selu_ext.selu(x)                     # torch.nn.functional.selu, fused
    layer = selu_ext.nn.SELU()               # torch.nn.SELU drop-in
    selu_ext.init.lecun_normal_(linear.weight)
    print(selu_ext.diagnose(model, x))       # is the network self-normalizing?

See README.md for the API and the benchmark (``python -m selu_ext.bench``),
docs/building.md for the build switches.
"""

from __future__ import annotations

import importlib as _importlib
import json as _json
import sys as _sys
import types as _types

from . import _load

_load.load()  # the operators first; a clear error if the library does not load
from . import ops  # noqa: E402,F401
from . import functional, init, nn  # noqa: E402,F401
from ._C import build_info as _build_info_json  # noqa: E402
from .functional import (  # noqa: E402
    ALPHA,
    SCALE,
    AlphaDropoutFunction,
    SELUAlphaDropoutFunction,
    SELUFunction,
    alpha_dropout,
    alpha_dropout_coefficients,
    archive_kernels,
    feature_alpha_dropout,
    selu,
    selu_alpha_dropout,
)

__version__ = "0.1.0"

__all__ = functional.__all__ + [
    "build_info",
    "diagnose",
    "SelfNormalizationWarning",
    "functional",
    "init",
    "nn",
    "ops",
]


# selu_ext.diagnose, the largest module, is loaded on first use, not on `import selu_ext`
# (PEP 562): these names come from it.
_FROM_DIAGNOSE = ("diagnose", "SelfNormalizationWarning")


def __getattr__(name: str):
    if name not in _FROM_DIAGNOSE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _importlib.import_module(f"{__name__}.diagnose")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_FROM_DIAGNOSE))


class _Package(_types.ModuleType):
    """selu_ext's module type. Loading the submodule selu_ext.diagnose (from anywhere:
    ``from selu_ext.diagnose import ...``, convert()) makes the import system bind it
    as the package's attribute ``diagnose``, in place of the function of that name:
    the function stays."""

    def __setattr__(self, name: str, value) -> None:
        if name == "diagnose" and isinstance(value, _types.ModuleType):
            value = value.diagnose
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


def build_info() -> dict:
    """What this build of selu_ext contains and uses.

    Keys: ``version``; ``torch_version_built`` / ``torch_version`` (built against /
    running with); ``cuda`` (CUDA kernels compiled in), ``no_cuda_reason``,
    ``cuda_version``, ``cuda_archs`` and where they came from; the CPU kernel
    variants ``cpu_capabilities_compiled`` / ``cpu_capabilities_supported`` (by this
    CPU) / ``cpu_capability`` (in use; ``SELU_EXT_CPU_CAPABILITY`` overrides);
    ``cpu_variants_built`` (what setup.py compiled for this platform); ``openmp``
    (compiled with OpenMP) and ``cpu_parallel`` (how at::parallel_for runs, and why);
    the ``sanitize`` build switch; ``compiler`` and ``compiler_built``
    (the compiler setup.py called); ``cxx11_abi`` (the std::string ABI it was
    compiled with, which must be torch's).
    """
    import torch

    info = _json.loads(_build_info_json())
    info["torch_version"] = torch.__version__
    return info
