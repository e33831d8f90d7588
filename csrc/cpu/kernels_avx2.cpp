// AVX2 + FMA variant (Haswell and later, Zen). Built with a target pragma rather
// than a -m flag, so the rest of the extension stays baseline.
// System headers first: they must not be compiled under the target pragma.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "../selu.h"
#include "kernels.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,bmi,bmi2,lzcnt,popcnt")
#define SELU_EXT_ISA_AVX2 1
#define SELU_EXT_ISA avx2
#define SELU_EXT_ISA_NAME "avx2"
#include "vec_kernels.h"
#pragma GCC pop_options
namespace selu_ext::cpu {
const Kernels* kernels_avx2() { return &avx2::kTable; }
}  // namespace selu_ext::cpu
#elif defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,bmi,bmi2,lzcnt,popcnt"))), apply_to = function)
#define SELU_EXT_ISA_AVX2 1
#define SELU_EXT_ISA avx2
#define SELU_EXT_ISA_NAME "avx2"
#include "vec_kernels.h"
#pragma clang attribute pop
namespace selu_ext::cpu {
const Kernels* kernels_avx2() { return &avx2::kTable; }
}  // namespace selu_ext::cpu
#else
namespace selu_ext::cpu {
const Kernels* kernels_avx2() { return nullptr; }
}  // namespace selu_ext::cpu
#endif
