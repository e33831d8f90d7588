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
// compiler). Without FMA (baseline x86-64) it is two roundings.
SELU_VI f32v fma_v(f32v a, f32v b, f32v c) {
#if defined(SELU_EXT_ISA_AVX512)
  return (f32v)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(SELU_EXT_ISA_AVX2)
  return (f32v)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
  return a * b + c;
#endif
}

SELU_VI f64v fma_v(f64v a, f64v b, f64v c) {
#if defined(SELU_EXT_ISA_AVX512)
  return (f64v)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
#elif defined(SELU_EXT_ISA_AVX2)
  return (f64v)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#else
  return a * b + c;
#endif
}

// c * x with c = hi + lo (selu.h's SeluConsts), rounded once where FMA exists.
template <typename V, typename S>
SELU_VI V mul_split_v(V x, S hi, S lo) {
  return fma_v(splat<V>(hi), x, x * lo);
}

// ---------------------------------------------------------------------------
// expm1 on x <= 0 (or NaN), the only domain SELU needs.
//
// x = k ln2 + r with |r| <= ln2/2 (Cody-Waite), expm1(r) by its Taylor series,
// then expm1(x) = 2^k expm1(r) + (2^k - 1): with t = 2^k, t - 1 is exact and t * p
// is exact scaling, so the result is rounded once. Inputs below the clamp have
// expm1(x) == -1 to the last bit (float: e^-30 < 2^-43; double: e^-60 < 2^-86).
// NaN fails every comparison, so it passes the clamp and comes out NaN.

SELU_VI f32v expm1_nonpositive(f32v x) {
  const f32v lo = splat<f32v>(-30.0f);
  x = x < lo ? lo : x;
  const f32v shifter = splat<f32v>(12582912.0f);  // 1.5 * 2^23: adding it rounds to integer
  const f32v j = x * 1.44269504088896341f + shifter;
  const f32v k = j - shifter;
  f32v r = x - k * 0.693359375f;  // ln2 high part: k * it is exact for |k| < 2^12
  r = r - k * -2.12194440e-4f;      // ln2 low part
  f32v q = splat<f32v>(1.0f / 40320.0f);
  q = q * r + (1.0f / 5040.0f);
  q = q * r + (1.0f / 720.0f);
  q = q * r + (1.0f / 120.0f);
  q = q * r + (1.0f / 24.0f);
  q = q * r + (1.0f / 6.0f);
  q = q * r + 0.5f;
  const f32v p = fma_v(r * r, q, r);  // expm1(r), truncation below 2e-10 relative
  const u32v t_bits = ((u32v)j - 0x4B400000u + 127u) << 23;  // 2^k
  const f32v t = (f32v)t_bits;
  return fma_v(t, p, t - 1.0f);
}

SELU_VI f64v expm1_nonpositive(f64v x) {
  const f64v lo = splat<f64v>(-60.0);
  x = x < lo ? lo : x;
  const f64v shifter = splat<f64v>(6755399441055744.0);  // 1.5 * 2^52
  const f64v j = x * 1.4426950408889634074 + shifter;
  const f64v k = j - shifter;
  f64v r = x - k * 6.93147180369123816490e-01;  // ln2 high part (fdlibm)
  r = r - k * 1.90821492927058770002e-10;        // ln2 low part
  // Taylor to r^14: truncation below 1e-18 relative on |r| <= ln2/2.
  f64v q = splat<f64v>(1.0 / 87178291200.0);  // 1/14!
  q = q * r + 1.0 / 6227020800.0;               // 1/13!
  q = q * r + 1.0 / 479001600.0;
  q = q * r + 1.0 / 39916800.0;
  q = q * r + 1.0 / 3628800.0;
  q = q * r + 1.0 / 362880.0;
  q = q * r + 1.0 / 40320.0;
  q = q * r + 1.0 / 5040.0;
  q = q * r + 1.0 / 720.0;
  q = q * r + 1.0 / 120.0;
  q = q * r + 1.0 / 24.0;
  q = q * r + 1.0 / 6.0;
  q = q * r + 0.5;
  const f64v p = fma_v(r * r, q, r);
  const u64v t_bits = ((u64v)j - 0x4338000000000000ull + 1023ull) << 52;
  const f64v t = (f64v)t_bits;
  return fma_v(t, p, t - 1.0);
}

// selu, branch-free. ±0 map to themselves, as in PyTorch.
template <typename V, typename S>
SELU_VI V selu_v(V x) {
  using C = SeluConsts<S>;
  const V zero = V{};
  const V xn = x > zero ? zero : x;
  const V neg = mul_split_v<V, S>(expm1_nonpositive(xn), C::scale_alpha_hi, C::scale_alpha_lo);
  const V y = x > zero ? x * static_cast<S>(kScale) : neg;
  return x == zero ? x : y;
}

template <typename V, typename S>
SELU_VI V selu_backward_v(V grad, V y, S scale_alpha = SeluConsts<S>::scale_alpha_hi) {
  const V zero = V{};
  // As selu_backward_from_output (selu.h): + the forward's -selu(-inf).
  const V d = y <= zero ? y + scale_alpha : splat<V>(static_cast<S>(kScale));
  return grad * d;
}

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

SELU_VI f32v bfloat16_to_float(u16v h) {
  return (f32v)(__builtin_convertvector(h, u32v) << 16);
}

SELU_VI u16v float_to_bfloat16(f32v f) {
  const u32v u = (u32v)f;
  const u32v rounded = (u + (((u >> 16) & 1u) + 0x7FFFu)) >> 16;
  const u32v out = f != f ? splat<u32v>(0x7FC0u) : rounded;
  return __builtin_convertvector(out, u16v);
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

// float16 <-> float by the F16C / AVX-512 conversion instructions where the
// variant has them (IEEE round-to-nearest-even, the same values as the bit
// algorithm above; only NaN payloads may differ), else by the bit algorithm.
SELU_VI f32v half_to_float_v(u16v h) {
#if defined(SELU_EXT_ISA_AVX512)
  return (f32v)_mm512_cvtph_ps((__m256i)h);
#elif defined(SELU_EXT_ISA_AVX2)
  return (f32v)_mm256_cvtph_ps((__m128i)h);
#else
  return half_to_float(h);
#endif
}

SELU_VI u16v float_to_half_v(f32v f) {
#if defined(SELU_EXT_ISA_AVX512)
  return (u16v)_mm512_cvtps_ph((__m512)f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#elif defined(SELU_EXT_ISA_AVX2)
  return (u16v)_mm256_cvtps_ph((__m256)f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
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

template <>
struct Pack<DType::kBFloat16> {
  using V = f32v;
  using S = float;
  using I = i32v;
  static constexpr int kLanes = kL32;
  static constexpr int kBytes = kVB / 2;
  SELU_VI V ld(const void* p) { return bfloat16_to_float(load<u16v>(p)); }
  SELU_VI void st(void* p, V v) { store(p, float_to_bfloat16(v)); }
  SELU_VI V round(V v) { return bfloat16_to_float(float_to_bfloat16(v)); }
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
  for (int64_t i = 0; i < n; i += L) {
    const int64_t off = i / L * P::kBytes;
    if (n - i >= L) {
      P::st(dst + off, f(P::ld(s0 + off), P::ld(s1 + off)));
    } else {
      const size_t bytes = static_cast<size_t>(n - i) * (P::kBytes / L);
      alignas(64) unsigned char b0[64] = {}, b1[64] = {}, bo[64];
      std::memcpy(b0, s0 + off, bytes);
      std::memcpy(b1, s1 + off, bytes);
      P::st(bo, f(P::ld(b0), P::ld(b1)));
      std::memcpy(dst + off, bo, bytes);
    }
  }
}

template <DType D>
void selu_forward_t(const void* x, void* y, int64_t n) {
  using P = Pack<D>;
  unary_loop<D>(x, y, n, [](typename P::V v) { return selu_v<typename P::V, typename P::S>(v); });
}

// `v` is the forward's output (is_result) or its input; from the input the output is
// recomputed in registers, so both read the same bytes.
template <DType D>
void selu_backward_t(const void* grad, const void* v, void* grad_x, int64_t n, bool is_result) {
  using V = typename Pack<D>::V;
  using S = typename Pack<D>::S;
  if (is_result) {
    // A 16-bit output saturates at scale*alpha rounded to 16 bits (selu.h).
    constexpr S sa = (D == DType::kHalf || D == DType::kBFloat16)
                         ? static_cast<S>(kScaleAlpha16)
                         : SeluConsts<S>::scale_alpha_hi;
    binary_loop<D>(grad, v, grad_x, n, [](V g, V y) { return selu_backward_v<V, S>(g, y, sa); });
  } else {
    binary_loop<D>(grad, v, grad_x, n,
                   [](V g, V x) { return selu_backward_v<V, S>(g, selu_v<V, S>(x)); });
  }
}

// ---------------------------------------------------------------------------
// Philox on 8 lanes of 64 bits (each holding a 32-bit word), four vectors at a time:
// the 32 counter groups of one 128-element block.

SELU_VI u64v mul_wide(u64v a, uint32_t m) {
  // 32 x 32 -> 64-bit products; the lanes' upper halves are zero, which the generic
  // 64-bit multiply cannot know, so use the instruction that assumes it.
#if defined(SELU_EXT_ISA_AVX512)
  return (u64v)_mm512_mul_epu32((__m512i)a, _mm512_set1_epi64(m));
#elif defined(SELU_EXT_ISA_AVX2)
  return (u64v)_mm256_mul_epu32((__m256i)a, _mm256_set1_epi64x(m));
#elif defined(SELU_EXT_ISA_SSE2)
  return (u64v)_mm_mul_epu32((__m128i)a, _mm_set1_epi64x(m));
#else
  return a * static_cast<uint64_t>(m);
#endif
}

// Philox state of the 32 counter groups of one 128-element block: kNV vectors of
// kL64 lanes; lane l of vector v is group offset kL64 * v + l.
constexpr int kNV = kDropoutLanes / kL64;

struct Block4 {
  u64v w[4][kNV];  // w[word j][vector v]
};

SELU_VI Block4 philox_block(uint64_t seed, uint64_t offset, uint64_t first_group) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  const uint64_t ctr_lo = offset / 4;
  u64v lane;
  for (int l = 0; l < kL64; ++l) lane[l] = static_cast<uint64_t>(l);
  const u64v mask32 = splat<u64v>(0xFFFFFFFFull);
  u64v c0[kNV], c1[kNV], c2[kNV], c3[kNV];
  for (int v = 0; v < kNV; ++v) {
    const u64v g = lane + (first_group + static_cast<uint64_t>(kL64) * v);
    c0[v] = splat<u64v>(ctr_lo & 0xFFFFFFFFull);
    c1[v] = splat<u64v>(ctr_lo >> 32);
    c2[v] = g & mask32;
    c3[v] = g >> 32;
  }
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    for (int v = 0; v < kNV; ++v) {
      const u64v p0 = mul_wide(c0[v], kM0);
      const u64v p1 = mul_wide(c2[v], kM1);
      const u64v n0 = (p1 >> 32) ^ c1[v] ^ static_cast<uint64_t>(k0);
      const u64v n2 = (p0 >> 32) ^ c3[v] ^ static_cast<uint64_t>(k1);
      c0[v] = n0;
      c1[v] = p1 & mask32;
      c2[v] = n2;
      c3[v] = p0 & mask32;
    }
    k0 += kW0;
    k1 += kW1;
  }
  Block4 out;
  for (int v = 0; v < kNV; ++v) {
    out.w[0][v] = c0[v];
    out.w[1][v] = c1[v];
    out.w[2][v] = c2[v];
    out.w[3][v] = c3[v];
  }
  return out;
}

// Keep flags (-1 kept, 0 dropped) of the 128 elements of one block, in element order.
SELU_VI void keep_block(int32_t* keep, const DropoutArgs& args, uint32_t threshold,
                        int64_t block_start) {
  const uint64_t first_group = static_cast<uint64_t>(block_start / kDropoutBlock) * kDropoutLanes;
  const Block4 r = philox_block(args.rng.seed, args.rng.offset, first_group);
  const u64v thr = splat<u64v>(static_cast<uint64_t>(threshold));
  for (int j = 0; j < 4; ++j) {
    for (int v = 0; v < kNV; ++v) {
      const i64v k = (i64v)(r.w[j][v] >= thr);
      store(keep + 32 * j + kL64 * v, __builtin_convertvector(k, i32h));
    }
  }
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
SELU_VI AlphaDropoutParams<S> params_for(const DropoutArgs& args) {
  return make_alpha_dropout_params<S>(args.p, static_cast<S>(args.kept_bound));
}

// Runs `f(keep, in_packs..., out)` over [begin, begin + n) in 128-element blocks; the
// partial blocks at either end go through padded buffers. NIn inputs, one output.
template <DType D, int NIn, typename F>
SELU_VI void dropout_loop(const void* const* in, void* out, int64_t begin, int64_t n,
                          const DropoutArgs& args, uint32_t threshold, F f) {
  using P = Pack<D>;
  constexpr int L = P::kLanes;
  constexpr int64_t kElemBytes = P::kBytes / L;
  constexpr int64_t B = kDropoutBlock;
  alignas(64) int32_t keep[B];
  int64_t done = 0;
  while (done < n) {
    const int64_t index = begin + done;
    const int64_t block_start = index - index % B;
    const int64_t lead = index - block_start;  // elements of this block before `begin`
    const int64_t count = (B - lead) < (n - done) ? (B - lead) : (n - done);
    keep_block(keep, args, threshold, block_start);
    if (lead == 0 && count == B) {
      const char* src[NIn > 0 ? NIn : 1];
      for (int k = 0; k < NIn; ++k) src[k] = static_cast<const char*>(in[k]) + done * kElemBytes;
      char* dst = static_cast<char*>(out) + done * kElemBytes;
      for (int e = 0; e < B; e += L) {
        f(load_keep<typename P::I>(keep + e), src, dst, e * kElemBytes);
      }
    } else {
      alignas(64) unsigned char bin[NIn > 0 ? NIn : 1][B * 8];
      alignas(64) unsigned char bout[B * 8];
      const char* src[NIn > 0 ? NIn : 1];
      for (int k = 0; k < NIn; ++k) {
        std::memset(bin[k], 0, sizeof(bin[k]));
        std::memcpy(bin[k] + lead * kElemBytes,
                    static_cast<const char*>(in[k]) + done * kElemBytes, count * kElemBytes);
        src[k] = reinterpret_cast<const char*>(bin[k]);
      }
      for (int e = 0; e < B; e += L) {
        f(load_keep<typename P::I>(keep + e), src, reinterpret_cast<char*>(bout), e * kElemBytes);
      }
      std::memcpy(static_cast<char*>(out) + done * kElemBytes, bout + lead * kElemBytes,
                  count * kElemBytes);
    }
    done += count;
  }
}

template <DType D>
void alpha_dropout_forward_t(const void* x, void* z, int64_t begin, int64_t n,
                             const DropoutArgs& args) {
  using P = Pack<D>;
  using V = typename P::V;
  using S = typename P::S;
  const AlphaDropoutParams<S> q = params_for<S>(args);
  const void* in[1] = {x};
  dropout_loop<D, 1>(in, z, begin, n, args, q.threshold,
                     [&](typename P::I keep, const char* const* src, char* dst, int64_t off) {
                       const V v = P::ld(src[0] + off);
                       const V kept = v * q.a + q.b;
                       const V dropped = v * S(0) + q.dropped;
                       P::st(dst + off, keep ? kept : dropped);
                     });
}

template <DType D>
void alpha_dropout_backward_t(const void* grad, void* grad_x, int64_t begin, int64_t n,
                              const DropoutArgs& args) {
  using P = Pack<D>;
  using V = typename P::V;
  using S = typename P::S;
  const AlphaDropoutParams<S> q = params_for<S>(args);
  const void* in[1] = {grad};
  dropout_loop<D, 1>(in, grad_x, begin, n, args, q.threshold,
                     [&](typename P::I keep, const char* const* src, char* dst, int64_t off) {
                       const V g = P::ld(src[0] + off);
                       P::st(dst + off, g * (keep ? splat<V>(q.a) : V{}));
                     });
}

template <DType D>
void selu_alpha_dropout_forward_t(const void* x, void* z, int64_t begin, int64_t n,
                                  const DropoutArgs& args) {
  using P = Pack<D>;
  using V = typename P::V;
  using S = typename P::S;
  const AlphaDropoutParams<S> q = params_for<S>(args);
  // Kept units with selu(x) > 0 must be stored above kept_bound (see selu.h): where
  // rounding a * y + b to the storage type lands on or below it, store the next value up.
  const S above = static_cast<S>(args.kept_above);
  const void* in[1] = {x};
  dropout_loop<D, 1>(in, z, begin, n, args, q.threshold,
                     [&](typename P::I keep, const char* const* src, char* dst, int64_t off) {
                       const V y = selu_v<V, S>(P::ld(src[0] + off));
                       V kept = P::round(y * q.a + q.b);
                       kept = (y > V{}) & (kept <= q.kept_bound) ? splat<V>(above) : kept;
                       const V dropped = y * S(0) + q.dropped;
                       P::st(dst + off, keep ? kept : dropped);
                     });
}

template <DType D>
void selu_alpha_dropout_backward_t(const void* grad, const void* z, void* grad_x, int64_t begin,
                                   int64_t n, const DropoutArgs& args) {
  using P = Pack<D>;
  using V = typename P::V;
  using S = typename P::S;
  const AlphaDropoutParams<S> q = params_for<S>(args);
  const void* in[2] = {grad, z};
  dropout_loop<D, 2>(in, grad_x, begin, n, args, q.threshold,
                     [&](typename P::I keep, const char* const* src, char* dst, int64_t off) {
                       const V g = P::ld(src[0] + off);
                       const V zv = P::ld(src[1] + off);
                       const V d = zv <= q.kept_bound ? zv - q.b + q.a_scale_alpha
                                                      : splat<V>(q.a_scale);
                       P::st(dst + off, g * (keep ? d : V{}));
                     });
}

void keep_mask_k(bool* out, int64_t begin, int64_t n, const DropoutArgs& args) {
  const uint32_t threshold = args.p >= 1.0 ? 0xFFFFFFFFu : drop_threshold(args.p);
  alignas(64) int32_t keep[kDropoutBlock];
  int64_t done = 0;
  while (done < n) {
    const int64_t index = begin + done;
    const int64_t block_start = index - index % kDropoutBlock;
    const int64_t lead = index - block_start;
    const int64_t count =
        (kDropoutBlock - lead) < (n - done) ? (kDropoutBlock - lead) : (n - done);
    keep_block(keep, args, threshold, block_start);
    for (int64_t e = 0; e < count; ++e) out[done + e] = keep[lead + e] != 0;
    done += count;
  }
}

// ---------------------------------------------------------------------------
// dtype dispatch, in one place.

template <template <DType> class K, typename... A>
void by_dtype(DType d, A... a) {
  switch (d) {
    case DType::kHalf:
      K<DType::kHalf>::run(a...);
      break;
    case DType::kBFloat16:
      K<DType::kBFloat16>::run(a...);
      break;
    case DType::kFloat:
      K<DType::kFloat>::run(a...);
      break;
    case DType::kDouble:
      K<DType::kDouble>::run(a...);
      break;
  }
}

#define SELU_EXT_KERNEL_ENTRY(name)                            \
  template <DType D>                                           \
  struct name##_k {                                            \
    template <typename... A>                                   \
    static void run(A... a) {                                  \
      name##_t<D>(a...);                                       \
    }                                                          \
  };

SELU_EXT_KERNEL_ENTRY(selu_forward)
SELU_EXT_KERNEL_ENTRY(selu_backward)
SELU_EXT_KERNEL_ENTRY(alpha_dropout_forward)
SELU_EXT_KERNEL_ENTRY(alpha_dropout_backward)
SELU_EXT_KERNEL_ENTRY(selu_alpha_dropout_forward)
SELU_EXT_KERNEL_ENTRY(selu_alpha_dropout_backward)
#undef SELU_EXT_KERNEL_ENTRY

void selu_forward_e(DType d, const void* x, void* y, int64_t n) {
  by_dtype<selu_forward_k>(d, x, y, n);
}
void selu_backward_e(DType d, const void* g, const void* v, void* gx, int64_t n, bool is_result) {
  by_dtype<selu_backward_k>(d, g, v, gx, n, is_result);
}
void alpha_dropout_forward_e(DType d, const void* x, void* z, int64_t b, int64_t n,
                             const DropoutArgs& a) {
  by_dtype<alpha_dropout_forward_k, const void*, void*, int64_t, int64_t, const DropoutArgs&>(
      d, x, z, b, n, a);
}
void alpha_dropout_backward_e(DType d, const void* g, void* gx, int64_t b, int64_t n,
                              const DropoutArgs& a) {
  by_dtype<alpha_dropout_backward_k, const void*, void*, int64_t, int64_t, const DropoutArgs&>(
      d, g, gx, b, n, a);
}
void selu_alpha_dropout_forward_e(DType d, const void* x, void* z, int64_t b, int64_t n,
                                  const DropoutArgs& a) {
  by_dtype<selu_alpha_dropout_forward_k, const void*, void*, int64_t, int64_t,
           const DropoutArgs&>(d, x, z, b, n, a);
}
void selu_alpha_dropout_backward_e(DType d, const void* g, const void* z, void* gx, int64_t b,
                                   int64_t n, const DropoutArgs& a) {
  by_dtype<selu_alpha_dropout_backward_k, const void*, const void*, void*, int64_t, int64_t,
           const DropoutArgs&>(d, g, z, gx, b, n, a);
}

}  // namespace

extern const Kernels kTable;
const Kernels kTable = {
    SELU_EXT_ISA_NAME,          selu_forward_e,
    selu_backward_e,            alpha_dropout_forward_e,
    alpha_dropout_backward_e,   selu_alpha_dropout_forward_e,
    selu_alpha_dropout_backward_e, keep_mask_k,
};

#undef SELU_VI
}  // namespace selu_ext::cpu::SELU_EXT_ISA
