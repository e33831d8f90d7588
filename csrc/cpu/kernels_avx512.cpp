// AVX-512 variant (AVX512F/BW/DQ/VL: Skylake-SP and later, Zen 4). Built with a target pragma rather
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
// GCC 12 flags its own _mm512_undefined_*() inside _mm512_mul_epu32 and the
// float16 conversions (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC target("avx2,fma,f16c,bmi,bmi2,lzcnt,popcnt,avx512f,avx512bw,avx512dq,avx512vl")
#define SELU_EXT_ISA_AVX512 1
#define SELU_EXT_ISA avx512
#define SELU_EXT_ISA_NAME "avx512"
#include "vec_kernels.h"
#pragma GCC pop_options
namespace selu_ext::cpu {
const Kernels* kernels_avx512() { return &avx512::kTable; }
}  // namespace selu_ext::cpu
#elif defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,bmi,bmi2,lzcnt,popcnt,avx512f,avx512bw,avx512dq,avx512vl"))), apply_to = function)
#define SELU_EXT_ISA_AVX512 1
#define SELU_EXT_ISA avx512
#define SELU_EXT_ISA_NAME "avx512"
#include "vec_kernels.h"
#pragma clang attribute pop
namespace selu_ext::cpu {
const Kernels* kernels_avx512() { return &avx512::kTable; }
}  // namespace selu_ext::cpu
#else
namespace selu_ext::cpu {
const Kernels* kernels_avx512() { return nullptr; }
}  // namespace selu_ext::cpu
#endif
