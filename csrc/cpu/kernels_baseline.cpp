// Baseline variant: the architecture's default instruction set (SSE2 on x86-64),
// so one build runs on every CPU of the architecture.
// System headers first: they must not be compiled under the target pragma.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "../selu.h"
#include "kernels.h"

#if defined(__x86_64__)
#define SELU_EXT_ISA_SSE2 1
#elif defined(__aarch64__)
#define SELU_EXT_ISA_NEON 1  // Advanced SIMD is part of every AArch64 CPU
#endif
#define SELU_EXT_ISA baseline
#define SELU_EXT_ISA_NAME "baseline"
// MSVC has no GCC/Clang vector extensions: it gets the scalar loops
// (SELU_EXT_SCALAR_KERNELS=1 builds them on other compilers too, to test them).
#if defined(SELU_EXT_SCALAR_KERNELS) || (defined(_MSC_VER) && !defined(__clang__))
#include "scalar_kernels.h"
#else
#include "vec_kernels.h"
#endif

namespace selu_ext::cpu {
const Kernels* kernels_baseline() { return &baseline::kTable; }
}  // namespace selu_ext::cpu
