// selu_ext CPU kernels: the interface between the torch-facing host code
// (host.h, selu_cpu.cpp) and the SIMD loops (vec_kernels.h), which are compiled once per
// instruction set (kernels_*.cpp) and chosen at run time (dispatch.cpp).
//
// Everything here works on raw, dense buffers; torch never appears, so each
// instruction-set variant is a small, fast-compiling translation unit.
#pragma once

#include <cstdint>

#include "../kernel_args.h"

namespace selu_ext::cpu {

// One instruction-set variant: its name and its loops, a row per DType (kernel_args.h's
// Loops), each entry a loop template of cpu/vec_kernels.h (or scalar_kernels.h)
// instantiated for that dtype. The dropout loops read the tensor index of their first
// element from DropoutLaunch::begin (selu_cpu.cpp splits the work at 256-element
// blocks, but any begin is handled) and the (seed, offset) values of DropoutLaunch::rng.
struct Kernels {
  const char* name;
  Loops loops[kDTypes];
};

// Defined by kernels_baseline.cpp / kernels_avx2.cpp / kernels_avx512.cpp /
// kernels_avx512_bf16.cpp. A variant that this compiler or architecture cannot build
// returns nullptr.
const Kernels* kernels_baseline();
const Kernels* kernels_avx2();
const Kernels* kernels_avx512();
const Kernels* kernels_avx512_bf16();

// The variant in use: the best one this CPU supports, unless SELU_EXT_CPU_CAPABILITY
// (baseline | avx2 | avx512 | avx512_bf16) or set_capability() asks for another.
const Kernels& active();
// Names of the variants compiled into this build / usable on this CPU.
const char* compiled_capabilities();  // e.g. "baseline,avx2,avx512,avx512_bf16"
const char* supported_capabilities();
// Selects a variant by name; returns false (and changes nothing) if it is not
// compiled in or this CPU cannot run it.
bool set_capability(const char* name);

}  // namespace selu_ext::cpu
