// selu_ext CPU kernels: the interface between the torch-facing host code
// (selu_cpu.cpp) and the SIMD loops (vec_kernels.h), which are compiled once per
// instruction set (kernels_*.cpp) and chosen at run time (dispatch.cpp).
//
// Everything here works on raw, dense buffers; torch never appears, so each
// instruction-set variant is a small, fast-compiling translation unit.
#pragma once

#include <cstdint>

#include "../kernel_args.h"

namespace selu_ext::cpu {

// One instruction-set variant. Dropout kernels take the logical index of their first
// element (`begin`) because the mask of an element depends on its index; selu_cpu.cpp
// splits the work at 256-element blocks, so it is a multiple of 256 there, but any
// `begin` is handled. CPU dropout kernels read the (seed, offset) values of
// DropoutLaunch::rng.
struct Kernels {
  const char* name;
  void (*selu_loop)(DType, const void* x, void* y, int64_t n);
  // y: the forward's output (is_result) or input.
  void (*selu_backward_loop)(DType, const void* grad, const void* y, void* grad_x, int64_t n,
                             bool is_result);
  void (*alpha_dropout_loop)(DType, const void* x, void* z, int64_t begin, int64_t n,
                             const DropoutLaunch&);
  void (*alpha_dropout_backward_loop)(DType, const void* grad, void* grad_x, int64_t begin,
                                      int64_t n, const DropoutLaunch&);
  void (*selu_alpha_dropout_loop)(DType, const void* x, void* z, int64_t begin, int64_t n,
                                  const DropoutLaunch&);
  void (*selu_alpha_dropout_backward_loop)(DType, const void* grad, const void* z, void* grad_x,
                                           int64_t begin, int64_t n, const DropoutLaunch&);
  void (*dropout_keep_mask_loop)(bool* out, int64_t begin, int64_t n, const DropoutLaunch&);
};

// Defines the variant's table, kTable, in the variant's namespace from its functions
// <loop>_e (cpu/vec_kernels.h or cpu/scalar_kernels.h).
#define SELU_EXT_KERNEL_TABLE                                                        \
  extern const Kernels kTable;                                                       \
  const Kernels kTable = {                                                           \
      .name = SELU_EXT_ISA_NAME,                                                     \
      .selu_loop = selu_loop_e,                                                      \
      .selu_backward_loop = selu_backward_loop_e,                                    \
      .alpha_dropout_loop = alpha_dropout_loop_e,                                    \
      .alpha_dropout_backward_loop = alpha_dropout_backward_loop_e,                  \
      .selu_alpha_dropout_loop = selu_alpha_dropout_loop_e,                          \
      .selu_alpha_dropout_backward_loop = selu_alpha_dropout_backward_loop_e,        \
      .dropout_keep_mask_loop = dropout_keep_mask_loop_e,                            \
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
