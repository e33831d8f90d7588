// selu_ext CPU kernels: one SIMD implementation, compiled once per instruction set.
//
// Each kernels_<isa>.cpp includes this file after switching the compiler's target
// (e.g. `#pragma GCC target("avx2,fma")`) and defines SELU_EXT_ISA, the namespace
// the code lands in. The code uses GCC/Clang vector extensions on vectors of the
// target's register width (zmm, ymm or xmm), so the same source is right for every
// target and the compiler picks the instructions.
//
// Every element, tail included, goes through the same vector arithmetic (the tail
// through a padded buffer), so a value's result never depends on where it sits in
// the tensor, or on how parallel_for split the work.
//
// Do not include anywhere else: it defines functions with internal linkage.

#include <cstdint>
#include <cstring>
#include <type_traits>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#elif defined(SELU_EXT_ISA_NEON)
#include <arm_neon.h>
#endif

#include "../selu.h"
#include "kernels.h"

#ifndef SELU_EXT_ISA
#error "define SELU_EXT_ISA before including vec_kernels.h"
#endif

namespace selu_ext::cpu::SELU_EXT_ISA {
namespace {

#define SELU_VI static inline __attribute__((always_inline))

// One register of the variant: 64 bytes (AVX-512), 32 (AVX2) or 16 (SSE2 and
// other baselines). Vectors wider than the target's registers would be legal C++,
// but GCC lowers some of their operations (compares, selects) element by element:
// 64-byte vectors ran 12x slower under AVX2 than under AVX-512.
#if defined(SELU_EXT_ISA_AVX512)
constexpr int kVB = 64;
#elif defined(SELU_EXT_ISA_AVX2)
constexpr int kVB = 32;
#else
constexpr int kVB = 16;
#endif
constexpr int kL32 = kVB / 4;  // lanes of 32-bit elements
constexpr int kL64 = kVB / 8;  // lanes of 64-bit elements

typedef float f32v __attribute__((vector_size(kVB)));
typedef int32_t i32v __attribute__((vector_size(kVB)));
typedef uint32_t u32v __attribute__((vector_size(kVB)));
typedef uint16_t u16v __attribute__((vector_size(kVB / 2)));  // kL32 lanes
typedef double f64v __attribute__((vector_size(kVB)));
typedef int64_t i64v __attribute__((vector_size(kVB)));
typedef uint64_t u64v __attribute__((vector_size(kVB)));
typedef int32_t i32h __attribute__((vector_size(kVB / 2)));  // kL64 lanes
typedef int16_t i16w __attribute__((vector_size(kVB)));  // 2 * kL32 lanes

// The scalar is converted to the lane type first: clang refuses an implicit
// vector/scalar conversion that could truncate (0xFFFFFFFFull is unsigned long
// long; a u64v lane is uint64_t, unsigned long on LP64 Linux).
template <typename V, typename S>
SELU_VI V splat(S s) {
  using Lane = std::remove_cvref_t<decltype(V{}[0])>;
  return V{} + static_cast<Lane>(s);
}

template <typename V>
SELU_VI V load(const void* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

template <typename V>
SELU_VI void store(void* p, V v) {
  std::memcpy(p, &v, sizeof(V));
}

// Fused multiply-add, a * b + c rounded once, where the instruction set has it
// (the generic expression would leave the choice of which product to fuse to the
// compiler). Without FMA (baseline x86-64) it is two roundings. AArch64 always has it,
// so its baseline variant computes what the AVX2 one does.
SELU_VI f32v fma_v(f32v a, f32v b, f32v c) {
#if defined(SELU_EXT_ISA_AVX512)
  return (f32v)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(SELU_EXT_ISA_AVX2)
  return (f32v)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#elif defined(SELU_EXT_ISA_NEON)
  return (f32v)vfmaq_f32((float32x4_t)c, (float32x4_t)a, (float32x4_t)b);
#else
  return a * b + c;
#endif
}

SELU_VI f64v fma_v(f64v a, f64v b, f64v c) {
#if defined(SELU_EXT_ISA_AVX512)
  return (f64v)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
#elif defined(SELU_EXT_ISA_AVX2)
  return (f64v)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#elif defined(SELU_EXT_ISA_NEON)
  return (f64v)vfmaq_f64((float64x2_t)c, (float64x2_t)a, (float64x2_t)b);
#else
  return a * b + c;
#endif
}

// c - a * b, rounded once where the instruction set has FMA (as fma_v); the
// instruction, not fma_v(-a, b, c), so a NaN `a` keeps its sign.
SELU_VI f32v fnma_v(f32v a, f32v b, f32v c) {
#if defined(SELU_EXT_ISA_AVX512)
  return (f32v)_mm512_fnmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(SELU_EXT_ISA_AVX2)
  return (f32v)_mm256_fnmadd_ps((__m256)a, (__m256)b, (__m256)c);
#elif defined(SELU_EXT_ISA_NEON)
  return (f32v)vfmsq_f32((float32x4_t)c, (float32x4_t)a, (float32x4_t)b);
#else
  return c - a * b;
#endif
}

SELU_VI f64v fnma_v(f64v a, f64v b, f64v c) {
#if defined(SELU_EXT_ISA_AVX512)
  return (f64v)_mm512_fnmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
#elif defined(SELU_EXT_ISA_AVX2)
  return (f64v)_mm256_fnmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#elif defined(SELU_EXT_ISA_NEON)
  return (f64v)vfmsq_f64((float64x2_t)c, (float64x2_t)a, (float64x2_t)b);
#else
  return c - a * b;
#endif
}

// Lane-wise max / min that return the second operand where either is NaN (the
// x86 MAXPS / MINPS rule), so NaN passes through a clamp. One instruction on x86;
// the generic select elsewhere (NEON's compare + bit-select).
SELU_VI f32v max_v(f32v lo, f32v x) {
#if defined(SELU_EXT_ISA_AVX512)
  return (f32v)_mm512_max_ps((__m512)lo, (__m512)x);
#elif defined(SELU_EXT_ISA_AVX2)
  return (f32v)_mm256_max_ps((__m256)lo, (__m256)x);
#elif defined(SELU_EXT_ISA_SSE2)
  return (f32v)_mm_max_ps((__m128)lo, (__m128)x);
#elif defined(SELU_EXT_ISA_NEON)
  return (f32v)vmaxq_f32((float32x4_t)lo, (float32x4_t)x);  // FMAX: NaN in, NaN out
#else
  return lo > x ? lo : x;
#endif
}

SELU_VI f32v min_v(f32v hi, f32v x) {
#if defined(SELU_EXT_ISA_AVX512)
  return (f32v)_mm512_min_ps((__m512)hi, (__m512)x);
#elif defined(SELU_EXT_ISA_AVX2)
  return (f32v)_mm256_min_ps((__m256)hi, (__m256)x);
#elif defined(SELU_EXT_ISA_SSE2)
  return (f32v)_mm_min_ps((__m128)hi, (__m128)x);
#elif defined(SELU_EXT_ISA_NEON)
  return (f32v)vminq_f32((float32x4_t)hi, (float32x4_t)x);
#else
  return hi < x ? hi : x;
#endif
}

SELU_VI f64v max_v(f64v lo, f64v x) {
#if defined(SELU_EXT_ISA_AVX512)
  return (f64v)_mm512_max_pd((__m512d)lo, (__m512d)x);
#elif defined(SELU_EXT_ISA_AVX2)
  return (f64v)_mm256_max_pd((__m256d)lo, (__m256d)x);
#elif defined(SELU_EXT_ISA_SSE2)
  return (f64v)_mm_max_pd((__m128d)lo, (__m128d)x);
#elif defined(SELU_EXT_ISA_NEON)
  return (f64v)vmaxq_f64((float64x2_t)lo, (float64x2_t)x);
#else
  return lo > x ? lo : x;
#endif
}

SELU_VI f64v min_v(f64v hi, f64v x) {
#if defined(SELU_EXT_ISA_AVX512)
  return (f64v)_mm512_min_pd((__m512d)hi, (__m512d)x);
#elif defined(SELU_EXT_ISA_AVX2)
  return (f64v)_mm256_min_pd((__m256d)hi, (__m256d)x);
#elif defined(SELU_EXT_ISA_SSE2)
  return (f64v)_mm_min_pd((__m128d)hi, (__m128d)x);
#elif defined(SELU_EXT_ISA_NEON)
  return (f64v)vminq_f64((float64x2_t)hi, (float64x2_t)x);
#else
  return hi < x ? hi : x;
#endif
}

// 32 x 32 -> 64-bit products of the 64-bit lanes' low halves (the upper halves are
// ignored).
SELU_VI u64v mul_wide(u64v a, uint32_t m) {
#if defined(SELU_EXT_ISA_AVX512)
  return (u64v)_mm512_mul_epu32((__m512i)a, _mm512_set1_epi64(m));
#elif defined(SELU_EXT_ISA_AVX2)
  return (u64v)_mm256_mul_epu32((__m256i)a, _mm256_set1_epi64x(m));
#elif defined(SELU_EXT_ISA_SSE2)
  return (u64v)_mm_mul_epu32((__m128i)a, _mm_set1_epi64x(m));
#elif defined(SELU_EXT_ISA_NEON)
  // NEON has no 64-bit lane multiply (GCC would go scalar): narrow, then UMULL.
  return (u64v)vmull_u32(vmovn_u64((uint64x2_t)a), vdup_n_u32(m));
#else
  return (a & splat<u64v>(uint64_t{0xFFFFFFFFu})) * static_cast<uint64_t>(m);
#endif
}

// Whether any lane of a lane mask (lanes 0 or all ones, of any width) is set. GCC turns
// the lane-by-lane test into extracts and ORs: about 45 instructions for AVX-512's 16
// lanes, 1.4 per 8 elements of a dropout kernel (benchmarks/cpu_probe).
template <typename M>
SELU_VI bool any_lane(M m) {
  static_assert(sizeof(M) == kVB, "one register");
#if defined(SELU_EXT_ISA_AVX512)
  return _mm512_test_epi32_mask((__m512i)m, (__m512i)m) != 0;
#elif defined(SELU_EXT_ISA_AVX2)
  return !_mm256_testz_si256((__m256i)m, (__m256i)m);
#elif defined(SELU_EXT_ISA_SSE2)
  return _mm_movemask_epi8((__m128i)m) != 0;
#elif defined(SELU_EXT_ISA_NEON)
  return vmaxvq_u32((uint32x4_t)m) != 0;
#else
  const u32v u = (u32v)m;
  uint32_t any = 0;
  for (int l = 0; l < kL32; ++l) any |= u[l];
  return any != 0;
#endif
}

}  // namespace

// Lanes (selu.h) of a float vector type V with lane type Lane and the same-width
// unsigned vector U. Outside the anonymous namespace: it is the base of a Lanes
// specialization, which has linkage.
template <typename V, typename Lane, typename U>
struct FloatLanes {
  using S = Lane;
  SELU_VI V splat(S s) { return SELU_EXT_ISA::splat<V>(s); }
  SELU_VI V fma(V a, V b, V c) { return fma_v(a, b, c); }
  SELU_VI V fnma(V a, V b, V c) { return fnma_v(a, b, c); }
  SELU_VI V clamp_nonpositive(V x, S lo) { return min_v(V{}, max_v(splat(lo), x)); }
  SELU_VI V floor_at(V x, S lo) { return max_v(splat(lo), x); }
  SELU_VI U bits(V x) { return (U)x; }
  SELU_VI V from_bits(U u) { return (V)u; }
};

}  // namespace selu_ext::cpu::SELU_EXT_ISA

// The vector types' Lanes (selu.h), from the primitives above.
namespace selu_ext {
template <>
struct Lanes<cpu::SELU_EXT_ISA::f32v>
    : cpu::SELU_EXT_ISA::FloatLanes<cpu::SELU_EXT_ISA::f32v, float, cpu::SELU_EXT_ISA::u32v> {};

template <>
struct Lanes<cpu::SELU_EXT_ISA::f64v>
    : cpu::SELU_EXT_ISA::FloatLanes<cpu::SELU_EXT_ISA::f64v, double, cpu::SELU_EXT_ISA::u64v> {};

// Philox words: 32-bit words in the low halves of 64-bit lanes (VPMULUDQ's
// 32 x 32 -> 64 layout). The upper halves are never cleared: every use either
// ignores them (the multiply) or reads only the low half (the shift by 32 of a
// product, the final compare).
template <>
struct Lanes<cpu::SELU_EXT_ISA::u64v> {
  using W = cpu::SELU_EXT_ISA::u64v;
  SELU_VI W mul_wide(W w, uint32_t m) { return cpu::SELU_EXT_ISA::mul_wide(w, m); }
  SELU_VI W hi(W p) { return p >> 32; }
  SELU_VI W lo(W p) { return p; }
};
}  // namespace selu_ext

namespace selu_ext::cpu::SELU_EXT_ISA {
namespace {

// The formulas (selu_math.h), compiled for this instruction set. No `static`: the
// functor's operator() is a member; the anonymous namespace gives internal linkage.
#define SELU_MATH inline __attribute__((always_inline))
#include "../selu_math.h"
#undef SELU_MATH

// ---------------------------------------------------------------------------
// float16 / bfloat16 <-> float, bit-exact with c10::Half and c10::BFloat16
// (IEEE round-to-nearest-even; the float16 algorithm is FP16's, as in c10).

SELU_VI f32v half_to_float(u16v h) {
  const u32v w = __builtin_convertvector(h, u32v) << 16;
  const u32v sign = w & 0x80000000u;
  const u32v two_w = w + w;
  const f32v normalized = (f32v)((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
  const f32v denormalized = (f32v)((two_w >> 17) | (126u << 23)) - 0.5f;
  const i32v is_denormal = (i32v)(two_w < (1u << 27));
  const u32v bits = is_denormal ? (u32v)denormalized : (u32v)normalized;
  return (f32v)(sign | bits);
}

SELU_VI u16v float_to_half(f32v f) {
  const u32v w = (u32v)f;
  const f32v abs_f = (f32v)(w & 0x7FFFFFFFu);
  f32v base = (abs_f * 0x1.0p+112f) * 0x1.0p-110f;
  const u32v shl1_w = w + w;
  const u32v sign = w & 0x80000000u;
  u32v bias = shl1_w & 0xFF000000u;
  bias = bias < 0x71000000u ? splat<u32v>(0x71000000u) : bias;
  base = (f32v)((bias >> 1) + 0x07800000u) + base;
  const u32v bits = (u32v)base;
  const u32v nonsign = ((bits >> 13) & 0x00007C00u) + (bits & 0x00000FFFu);
  const u32v out = (sign >> 16) | (shl1_w > 0xFF000000u ? splat<u32v>(0x7E00u) : nonsign);
  return __builtin_convertvector(out, u16v);
}

// Zero-extends kL32 16-bit values to 32-bit lanes, and back (the values fit). GCC
// lowers __builtin_convertvector between these widths to four instructions each way
// under AVX2 (per-half unpacks and inserts); VPMOVZXWD / VPACKUSDW do it in one or two.
SELU_VI u32v load_widen_u16(const void* p) {
#if defined(SELU_EXT_ISA_AVX512)
  return (u32v)_mm512_cvtepu16_epi32(_mm256_loadu_si256(static_cast<const __m256i*>(p)));
#elif defined(SELU_EXT_ISA_AVX2)
  return (u32v)_mm256_cvtepu16_epi32(_mm_loadu_si128(static_cast<const __m128i*>(p)));
#else
  return __builtin_convertvector(load<u16v>(p), u32v);
#endif
}

SELU_VI void store_narrow_u16(void* p, u32v v) {
#if defined(SELU_EXT_ISA_AVX512)
  _mm256_storeu_si256(static_cast<__m256i*>(p), _mm512_cvtepi32_epi16((__m512i)v));
#elif defined(SELU_EXT_ISA_AVX2)
  const __m256i w = (__m256i)v;
  _mm_storeu_si128(static_cast<__m128i*>(p),
                   _mm_packus_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1)));
#else
  store(p, __builtin_convertvector(v, u16v));
#endif
}

SELU_VI f32v bfloat16_to_float(const void* p) { return (f32v)(load_widen_u16(p) << 16); }

// The bfloat16 nearest to f (ties to even, NaN -> 0x7FC0, as c10::BFloat16), in the
// low 16 bits of each lane.
SELU_VI u32v float_to_bfloat16_bits(f32v f) {
  const u32v u = (u32v)f;
  const u32v rounded = (u + (((u >> 16) & 1u) + 0x7FFFu)) >> 16;
  return f != f ? splat<u32v>(0x7FC0u) : rounded;
}

// A "pack": one register of elements of a storage type (one register of opmath
// values: 16-bit types load half a register), computed in its opmath vector type.
template <DType D>
struct Pack;

template <>
struct Pack<DType::kFloat> {
  using V = f32v;
  using S = float;
  using I = i32v;
  static constexpr int kLanes = kL32;
  static constexpr int kBytes = kVB;
  SELU_VI V ld(const void* p) { return load<V>(p); }
  SELU_VI void st(void* p, V v) { store(p, v); }
  SELU_VI V round(V v) { return v; }  // storing then loading changes nothing
};

template <>
struct Pack<DType::kDouble> {
  using V = f64v;
  using S = double;
  using I = i64v;
  static constexpr int kLanes = kL64;
  static constexpr int kBytes = kVB;
  SELU_VI V ld(const void* p) { return load<V>(p); }
  SELU_VI void st(void* p, V v) { store(p, v); }
  SELU_VI V round(V v) { return v; }
};

// float16 <-> float by the F16C / AVX-512 / AArch64 conversion instructions where the
// variant has them (IEEE round-to-nearest-even, the same values as the bit
// algorithm above; only NaN payloads may differ), else by the bit algorithm.
SELU_VI f32v half_to_float_v(u16v h) {
#if defined(SELU_EXT_ISA_AVX512)
  return (f32v)_mm512_cvtph_ps((__m256i)h);
#elif defined(SELU_EXT_ISA_AVX2)
  return (f32v)_mm256_cvtph_ps((__m128i)h);
#elif defined(SELU_EXT_ISA_NEON)
  return (f32v)vcvt_f32_f16(vreinterpret_f16_u16((uint16x4_t)h));
#else
  return half_to_float(h);
#endif
}

SELU_VI u16v float_to_half_v(f32v f) {
#if defined(SELU_EXT_ISA_AVX512)
  return (u16v)_mm512_cvtps_ph((__m512)f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#elif defined(SELU_EXT_ISA_AVX2)
  return (u16v)_mm256_cvtps_ph((__m256)f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#elif defined(SELU_EXT_ISA_NEON)
  return (u16v)vreinterpret_u16_f16(vcvt_f16_f32((float32x4_t)f));
#else
  return float_to_half(f);
#endif
}

template <>
struct Pack<DType::kHalf> {
  using V = f32v;
  using S = float;
  using I = i32v;
  static constexpr int kLanes = kL32;
  static constexpr int kBytes = kVB / 2;
  SELU_VI V ld(const void* p) { return half_to_float_v(load<u16v>(p)); }
  SELU_VI void st(void* p, V v) { store(p, float_to_half_v(v)); }
  SELU_VI V round(V v) { return half_to_float_v(float_to_half_v(v)); }
};

#if defined(SELU_EXT_ISA_AVX512_BF16)
// float_to_bfloat16_bits by AVX512_BF16's VCVTNEPS2BF16, narrowed. The instruction rounds
// to nearest even as c10 does, but flushes float32 denormals to signed zero (c10 rounds
// them to bfloat16 denormals) and keeps a NaN's sign and payload (c10: 0x7FC0). One
// VFPCLASSPS finds both; a vector holding either (a denormal or NaN result: rare) takes
// the bit algorithm, so the bits never depend on the variant.
SELU_VI u16v float_to_bfloat16_v(f32v f) {
  constexpr int kQNaN = 0x01, kDenormal = 0x20, kSNaN = 0x80;  // VFPCLASSPS categories
  if (__builtin_expect(_mm512_fpclass_ps_mask((__m512)f, kQNaN | kDenormal | kSNaN) != 0, 0)) {
    return __builtin_convertvector(float_to_bfloat16_bits(f), u16v);
  }
  return (u16v)_mm512_cvtneps_pbh((__m512)f);
}
#endif

template <>
struct Pack<DType::kBFloat16> {
  using V = f32v;
  using S = float;
  using I = i32v;
  static constexpr int kLanes = kL32;
  static constexpr int kBytes = kVB / 2;
  SELU_VI V ld(const void* p) { return bfloat16_to_float(p); }
#if defined(SELU_EXT_ISA_AVX512_BF16)
  SELU_VI void st(void* p, V v) { store(p, float_to_bfloat16_v(v)); }
  SELU_VI V round(V v) {
    return (f32v)((u32v)_mm512_cvtepu16_epi32((__m256i)float_to_bfloat16_v(v)) << 16);
  }
#else
  SELU_VI void st(void* p, V v) { store_narrow_u16(p, float_to_bfloat16_bits(v)); }
  SELU_VI V round(V v) { return (f32v)(float_to_bfloat16_bits(v) << 16); }
#endif
};

// ---------------------------------------------------------------------------
// Unary and binary element-wise loops over dense buffers.

template <DType D, typename F>
SELU_VI void unary_loop(const void* in, void* out, int64_t n, F f) {
  using P = Pack<D>;
  constexpr int L = P::kLanes;
  const char* src = static_cast<const char*>(in);
  char* dst = static_cast<char*>(out);
  int64_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {  // two packs per trip: independent chains in flight
    const auto a = P::ld(src + i / L * P::kBytes);
    const auto b = P::ld(src + (i / L + 1) * P::kBytes);
    P::st(dst + i / L * P::kBytes, f(a));
    P::st(dst + (i / L + 1) * P::kBytes, f(b));
  }
  for (; i < n; i += L) {
    const int64_t m = n - i < L ? n - i : L;
    const size_t bytes = static_cast<size_t>(m) * (P::kBytes / L);
    alignas(64) unsigned char buf[64] = {};
    std::memcpy(buf, src + i / L * P::kBytes, bytes);
    P::st(buf, f(P::ld(buf)));
    std::memcpy(dst + i / L * P::kBytes, buf, bytes);
  }
}

template <DType D, typename F>
SELU_VI void binary_loop(const void* in0, const void* in1, void* out, int64_t n, F f) {
  using P = Pack<D>;
  constexpr int L = P::kLanes;
  const char* s0 = static_cast<const char*>(in0);
  const char* s1 = static_cast<const char*>(in1);
  char* dst = static_cast<char*>(out);
  int64_t i = 0;
  for (; i + L <= n; i += L) {  // the tail test stays out of the loop
    const int64_t off = i / L * P::kBytes;
    P::st(dst + off, f(P::ld(s0 + off), P::ld(s1 + off)));
  }
  if (i < n) {
    const int64_t off = i / L * P::kBytes;
    const size_t bytes = static_cast<size_t>(n - i) * (P::kBytes / L);
    alignas(64) unsigned char b0[64] = {}, b1[64] = {}, bo[64];
    std::memcpy(b0, s0 + off, bytes);
    std::memcpy(b1, s1 + off, bytes);
    P::st(bo, f(P::ld(b0), P::ld(b1)));
    std::memcpy(dst + off, bo, bytes);
  }
}

template <DType D>
void selu_loop_t(const void* x, void* y, int64_t n) {
  using V = typename Pack<D>::V;
  using Negative =
      std::conditional_t<D == DType::kBFloat16, SeluNegativeBFloat16, SeluNegative>;
  unary_loop<D>(x, y, n, [](V v) { return selu_elem<V, Negative>(v); });
}

// `v` is the forward's output (is_result) or its input; from the input the output is
// recomputed in registers, so both read the same bytes.
template <DType D>
void selu_backward_loop_t(const void* grad, const void* v, void* grad_x, int64_t n,
                          bool is_result) {
  using V = typename Pack<D>::V;
  using S = typename Pack<D>::S;
  if (is_result) {
    constexpr S sa = output_scale_alpha<S>(Pack<D>::kBytes / Pack<D>::kLanes);
    binary_loop<D>(grad, v, grad_x, n, [](V g, V y) { return selu_backward_elem(g, y, sa); });
  } else {
    binary_loop<D>(grad, v, grad_x, n,
                   [](V g, V x) { return selu_backward_from_input_elem(g, x); });
  }
}

// ---------------------------------------------------------------------------
// Philox of one 256-element block: its 32 counter groups, each in a 64-bit lane
// that holds a 32-bit word in its low half (Lanes<u64v> above).

// The low halves of two vectors of 64-bit lanes, in lane order: a's, then b's.
SELU_VI u32v low_halves(u64v a, u64v b) {
#if defined(SELU_EXT_ISA_AVX2)
  // VSHUFPS picks the even 32-bit words per 128-bit half; VPERMQ puts the halves in order.
  const __m256 even = _mm256_shuffle_ps((__m256)a, (__m256)b, _MM_SHUFFLE(2, 0, 2, 0));
  return (u32v)_mm256_permute4x64_epi64((__m256i)even, _MM_SHUFFLE(3, 1, 2, 0));
#elif defined(SELU_EXT_ISA_NEON)
  return (u32v)vuzp1q_u32((uint32x4_t)a, (uint32x4_t)b);
#else
  u32v out;
  for (int l = 0; l < kL64; ++l) {
    out[l] = static_cast<uint32_t>(a[l]);
    out[kL64 + l] = static_cast<uint32_t>(b[l]);
  }
  return out;
#endif
}

// Keep flags (-1 kept, 0 dropped) of the 256 elements of one block, in element order.
//
// The 32 groups run as kNV / 2 independent chunks of two vectors (2 * kL64 groups):
// a chunk's 8 state vectors stay in registers through the 10 rounds (the whole
// block's 32 vectors would not fit in AVX2's 16 and spilled), and out-of-order
// execution overlaps the chunks. Each round is 2 multiplies, 2 shifts and 4 XORs
// per vector: the upper halves of the lanes are never cleared, since every use of a
// word either ignores them (the multiply) or reads only the low half (the shift by
// 32 of a product, the final split into 16-bit halves). A half equal to the
// threshold's high half is a tie (selu.h's dropout_keep, about one block in 256): the
// block is then recomputed by the scalar formula, which draws the tie calls.
constexpr int kNV = kDropoutLanes / kL64;

// The round keys of one call, broadcast once: the XORs read them from L1 instead of
// re-broadcasting two scalars every round of every chunk.
struct PhiloxKeys {
  u64v k0[10], k1[10];
  uint64_t seed, offset;
  uint32_t threshold;
  explicit PhiloxKeys(const DropoutLaunch& args, uint32_t thr)
      : seed(args.rng.seed), offset(args.rng.offset), threshold(thr) {
    uint32_t a = static_cast<uint32_t>(args.rng.seed), b = static_cast<uint32_t>(args.rng.seed >> 32);
    for (int round = 0; round < 10; ++round) {
      k0[round] = splat<u64v>(static_cast<uint64_t>(a));
      k1[round] = splat<u64v>(static_cast<uint64_t>(b));
      a += kPhiloxW0;
      b += kPhiloxW1;
    }
  }
};

// The whole block by the scalar formula (selu.h), ties included; out of line, off
// the vector loop's path.
__attribute__((noinline, cold)) void keep_block_scalar(int32_t* keep, const PhiloxKeys& key,
                                                       uint64_t first_group) {
  dropout_keep_block(keep, int32_t(-1), key.seed, key.offset, key.threshold, first_group);
}

SELU_VI void keep_block(int32_t* keep, const PhiloxKeys& key, int64_t block_start) {
  const uint64_t first_group = static_cast<uint64_t>(block_start / kDropoutBlock) * kDropoutLanes;
  const uint64_t ctr_lo = key.offset / 4;
  u64v lane;
  for (int l = 0; l < kL64; ++l) lane[l] = static_cast<uint64_t>(l);
  // Kept: a half above hi - 1 (both fit an int32, so the signed compare is exact).
  // A half equal to hi is a tie only where the threshold's low half is not 0 (else
  // it is kept): 0x10000 matches no half.
  const uint32_t hi = key.threshold >> 16;
  const i32v above = splat<i32v>(static_cast<int32_t>(hi) - 1);
  const u32v tie_at = splat<u32v>((key.threshold & 0xFFFFu) != 0 ? hi : 0x10000u);
  i32v tie = splat<i32v>(0);
  for (int v0 = 0; v0 < kNV; v0 += 2) {
    u64v c0[2], c1[2], c2[2], c3[2];
    for (int h = 0; h < 2; ++h) {
      const u64v g = lane + (first_group + static_cast<uint64_t>(kL64) * (v0 + h));
      c0[h] = splat<u64v>(ctr_lo);  // low half: the counter's word 0; word 1 below
      c1[h] = splat<u64v>(ctr_lo >> 32);
      c2[h] = g;
      c3[h] = g >> 32;
    }
#pragma GCC unroll 10
    for (int round = 0; round < 10; ++round) {
      for (int h = 0; h < 2; ++h) {
        philox_round(c0[h], c1[h], c2[h], c3[h], key.k0[round], key.k1[round]);
      }
    }
    // Word j of groups kL64 * v0 .. + 2 * kL64 - 1 decides elements 32 j + kL64 * v0 ...
    // (its low halves) and 32 (j + 4) + kL64 * v0 ... (its high halves).
    const u64v* words[4] = {c0, c1, c2, c3};
    for (int j = 0; j < 4; ++j) {
      const u32v r = low_halves(words[j][0], words[j][1]);
      const u32v lo16 = r & 0xFFFFu, hi16 = r >> 16;
      store(keep + 32 * j + kL64 * v0, (i32v)lo16 > above);
      store(keep + 32 * (j + 4) + kL64 * v0, (i32v)hi16 > above);
      tie |= (i32v)(lo16 == tie_at) | (i32v)(hi16 == tie_at);
    }
  }
  if (any_lane(tie)) keep_block_scalar(keep, key, first_group);
}

// Keep flags of one pack, widened to the pack's lane width.
template <typename I>
SELU_VI I load_keep(const int32_t* keep) {
  if constexpr (sizeof(I) / sizeof(I{}[0]) == kL32) {
    return load<i32v>(keep);
  } else {
    return __builtin_convertvector(load<i32h>(keep), i64v);
  }
}

template <typename S>
SELU_VI AlphaDropoutParams<S> params_for(const DropoutLaunch& args) {
  return make_alpha_dropout_params<S>(args.p, static_cast<S>(args.kept_bound));
}

static_assert(kDropoutBlock == 256, "kAllKept below lists one block");
// Every element kept: the mask of a block whose kernel can do without its own (see
// selu_alpha_dropout_backward_loop_t).
alignas(64) constexpr int32_t kAllKept[kDropoutBlock] = {
#define SELU_EXT_K8 -1, -1, -1, -1, -1, -1, -1, -1
#define SELU_EXT_K32 SELU_EXT_K8, SELU_EXT_K8, SELU_EXT_K8, SELU_EXT_K8
    SELU_EXT_K32, SELU_EXT_K32, SELU_EXT_K32, SELU_EXT_K32,
    SELU_EXT_K32, SELU_EXT_K32, SELU_EXT_K32, SELU_EXT_K32
#undef SELU_EXT_K32
#undef SELU_EXT_K8
};

struct AlwaysMask {
  bool operator()(const char* const*) const { return true; }
};

// Runs `f(keep, in_packs..., out)` over [begin, begin + n) in 256-element blocks; the
// partial blocks at either end go through padded buffers. NIn inputs, one output.
// `needs_mask(src)` sees a block's inputs first: where it returns false, f gets every
// element as kept and the block's Philox call is skipped.
template <DType D, int NIn, typename F, typename M = AlwaysMask>
SELU_VI void dropout_loop(const void* const* in, void* out, int64_t begin, int64_t n,
                          const DropoutLaunch& args, uint32_t threshold, F f, M needs_mask = {}) {
  using P = Pack<D>;
  constexpr int L = P::kLanes;
  constexpr int64_t kElemBytes = P::kBytes / L;
  constexpr int64_t B = kDropoutBlock;
  alignas(64) int32_t keep[B];
  const PhiloxKeys key(args, threshold);
  int64_t done = 0;
  while (done < n) {
    const int64_t index = begin + done;
    const int64_t block_start = index - index % B;
    const int64_t lead = index - block_start;  // elements of this block before `begin`
    const int64_t count = (B - lead) < (n - done) ? (B - lead) : (n - done);
    const bool whole = lead == 0 && count == B;
    alignas(64) unsigned char bin[NIn > 0 ? NIn : 1][B * 8];
    alignas(64) unsigned char bout[B * 8];
    const char* src[NIn > 0 ? NIn : 1];
    char* dst = whole ? static_cast<char*>(out) + done * kElemBytes : reinterpret_cast<char*>(bout);
    for (int k = 0; k < NIn; ++k) {
      src[k] = static_cast<const char*>(in[k]) + done * kElemBytes;
      if (!whole) {
        std::memset(bin[k], 0, sizeof(bin[k]));
        std::memcpy(bin[k] + lead * kElemBytes, src[k], count * kElemBytes);
        src[k] = reinterpret_cast<const char*>(bin[k]);
      }
    }
    const int32_t* k = kAllKept;
    if (needs_mask(src)) {
      keep_block(keep, key, block_start);
      k = keep;
    }
#pragma GCC unroll 32
    for (int e = 0; e < B; e += L) f(load_keep<typename P::I>(k + e), src, dst, e * kElemBytes);
    if (!whole) {
      std::memcpy(static_cast<char*>(out) + done * kElemBytes, bout + lead * kElemBytes,
                  count * kElemBytes);
    }
    done += count;
  }
}

template <DType D>
void alpha_dropout_loop_t(const void* x, void* z, int64_t n, const DropoutLaunch& args) {
  using P = Pack<D>;
  using S = typename P::S;
  const AlphaDropoutParams<S> q = params_for<S>(args);
  const void* in[1] = {x};
  dropout_loop<D, 1>(in, z, args.begin, n, args, q.threshold,
                     [&](typename P::I keep, const char* const* src, char* dst, int64_t off) {
                       P::st(dst + off, alpha_dropout_elem(P::ld(src[0] + off), keep, q));
                     });
}

template <DType D>
void alpha_dropout_backward_loop_t(const void* grad, void* grad_x, int64_t n,
                                   const DropoutLaunch& args) {
  using P = Pack<D>;
  using S = typename P::S;
  const AlphaDropoutParams<S> q = params_for<S>(args);
  const void* in[1] = {grad};
  dropout_loop<D, 1>(in, grad_x, args.begin, n, args, q.threshold,
                     [&](typename P::I keep, const char* const* src, char* dst, int64_t off) {
                       P::st(dst + off, alpha_dropout_backward_elem(P::ld(src[0] + off), keep, q));
                     });
}

// selu_alpha_dropout_elem's `round` for every dtype: its max path. Each Pack::st rounds to
// nearest even, a monotone rounding, and kept_above (ka) is a value of the dtype, so the
// stored round(max(v, ka)) = max(round(v), ka): ka exactly where round(v) <= kept_bound
// (ka is the dtype's next value above it), round(v) elsewhere, the bits the 16-bit round,
// test and nudge give (a NaN v passes max_v and is rounded as before). It saves that
// round trip per pack: bfloat16 fused forward 38.1 -> 33.4 instructions per 8 elements
// (avx512_bf16), 42.4 -> 36.8 (avx512), 88.1 -> 73.6 (avx2); float16 on avx2 67.6 -> 64.4
// (benchmarks/cpu_probe).
struct StoreRounds {
  static constexpr bool kExact = true;
};

template <DType D>
void selu_alpha_dropout_loop_t(const void* x, void* z, int64_t n, const DropoutLaunch& args) {
  using P = Pack<D>;
  using V = typename P::V;
  using S = typename P::S;
  const AlphaDropoutParams<S> q = params_for<S>(args);
  const S above = static_cast<S>(args.kept_above);
  const StoreRounds round;
  const void* in[1] = {x};
  dropout_loop<D, 1>(in, z, args.begin, n, args, q.threshold,
                     [&](typename P::I keep, const char* const* src, char* dst, int64_t off) {
                       const V v = P::ld(src[0] + off);
                       P::st(dst + off, selu_alpha_dropout_elem(v, keep, q, above, round));
                     });
}

// The backward needs no mask where z is not NaN: a dropped unit stores exactly the
// constant `dropped` (rounded to the dtype), and a kept unit that stores it is
// saturated, which selu_alpha_dropout_backward_elem (selu_math.h) gives grad * 0,
// exactly what a dropped unit gets. So every unit is taken as kept and the block's
// Philox call, the larger part of this kernel's instructions, is skipped. A NaN z
// (NaN or infinite x) can be kept or dropped with different gradients: its block
// regenerates the mask.
template <DType D>
void selu_alpha_dropout_backward_loop_t(const void* grad, const void* z, void* grad_x,
                                        int64_t n, const DropoutLaunch& args) {
  using P = Pack<D>;
  using V = typename P::V;
  using S = typename P::S;
  using I = typename P::I;
  constexpr int L = P::kLanes;
  const AlphaDropoutParams<S> q = params_for<S>(args);
  const SaturatedZ<V> saturated = saturated_z<V>(q, [](V v) { return P::round(v); });
  const auto nan_in_block = [](const char* const* src) {
    if constexpr (P::kBytes / L == 2) {
      // A 16-bit NaN read from its bits, a whole register of them at a time, without
      // widening: magnitude above the infinity's (0x7F80 bfloat16, 0x7C00 float16).
      constexpr int16_t kInf = D == DType::kBFloat16 ? 0x7F80 : 0x7C00;
      i16w nan{};
#pragma GCC unroll 16
      for (int64_t b = 0; b < kDropoutBlock * 2; b += kVB) {
        nan |= (load<i16w>(src[1] + b) & 0x7FFF) > kInf;
      }
      return any_lane(nan);
    } else {
      I nan{};
#pragma GCC unroll 32
      for (int64_t e = 0; e < kDropoutBlock; e += L) {
        const V zv = P::ld(src[1] + e / L * P::kBytes);
        nan |= (I)(zv != zv);
      }
      return any_lane(nan);
    }
  };
  const void* in[2] = {grad, z};
  dropout_loop<D, 2>(
      in, grad_x, args.begin, n, args, q.threshold,
      [&](I keep, const char* const* src, char* dst, int64_t off) {
        P::st(dst + off, selu_alpha_dropout_backward_elem(P::ld(src[0] + off), P::ld(src[1] + off),
                                                          keep, q, saturated));
      },
      nan_in_block);
}

void dropout_keep_mask_loop(bool* out, int64_t n, const DropoutLaunch& args) {
  const uint32_t threshold = drop_threshold(args.p);
  alignas(64) int32_t keep[kDropoutBlock];
  const PhiloxKeys key(args, threshold);
  for_each_dropout_block(args.begin, n, [&](int64_t block_start, int64_t lead, int64_t done,
                                            int64_t count) {
    keep_block(keep, key, block_start);
    for (int64_t e = 0; e < count; ++e) out[done + e] = keep[lead + e] != 0;
  });
}

}  // namespace

// The variant's table, kTable.
#include "loops_table.h"

#undef SELU_VI
}  // namespace selu_ext::cpu::SELU_EXT_ISA
