// AVX-512 variant with AVX512_BF16 (Cooper Lake, Sapphire Rapids and later, Zen 4): the
// avx512 variant's loops, with bfloat16 rounded by VCVTNEPS2BF16 (vec_kernels.h,
// float_to_bfloat16_v). AVX512_FP16 adds nothing to the conversions: its VCVTPS2PHX
// rounds as AVX512F's VCVTPS2PH, which the avx512 variant already uses for float16.
// Built with a target pragma rather than a -m flag, so the rest of the extension stays
// baseline.
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
#pragma GCC target("avx2,fma,f16c,bmi,bmi2,lzcnt,popcnt,avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")
#define SELU_EXT_ISA_AVX512 1
#define SELU_EXT_ISA_AVX512_BF16 1
#define SELU_EXT_ISA avx512_bf16
#define SELU_EXT_ISA_NAME "avx512_bf16"
#include "vec_kernels.h"
#pragma GCC pop_options
namespace selu_ext::cpu {
const Kernels* kernels_avx512_bf16() { return &avx512_bf16::kTable; }
}  // namespace selu_ext::cpu
#elif defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,bmi,bmi2,lzcnt,popcnt,avx512f,avx512bw,avx512dq,avx512vl,avx512bf16"))), apply_to = function)
#define SELU_EXT_ISA_AVX512 1
#define SELU_EXT_ISA_AVX512_BF16 1
#define SELU_EXT_ISA avx512_bf16
#define SELU_EXT_ISA_NAME "avx512_bf16"
#include "vec_kernels.h"
#pragma clang attribute pop
namespace selu_ext::cpu {
const Kernels* kernels_avx512_bf16() { return &avx512_bf16::kTable; }
}  // namespace selu_ext::cpu
#else
namespace selu_ext::cpu {
const Kernels* kernels_avx512_bf16() { return nullptr; }
}  // namespace selu_ext::cpu
#endif
