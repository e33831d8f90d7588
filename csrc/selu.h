// selu_ext: the math, once.
//
// Constants, dropout coefficients, the mask layout and Philox, shared by every
// kernel: CPU and CUDA, forward and backward, plain SELU and AlphaDropout. The
// element-wise formulas are templates over the value type in selu_math.h, which this
// file includes for scalars (CUDA, the scalar CPU loops) and cpu/vec_kernels.h
// includes again for each instruction set's vectors. Nothing here depends on torch,
// so the CUDA translation units that include it compile in seconds.
//
// Numerics follow PyTorch's ATen/native/cuda/ActivationEluKernel.cu: compute in
// "opmath" (float for float16/bfloat16, the type itself for float/double), the
// x <= 0 branch at exactly zero, expm1 on the negative branch.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__CUDACC__)
#define SELU_HD __host__ __device__ __forceinline__
// A rarely taken path, kept out of line so it is not copied into every element;
// inline all the same, so that every .cu file including this header may define it.
#define SELU_HD_COLD __host__ __device__ __noinline__ inline
#elif defined(__GNUC__) || defined(__clang__)
#define SELU_HD inline
#define SELU_HD_COLD inline __attribute__((noinline, cold))
#else
#define SELU_HD inline
#define SELU_HD_COLD inline
#endif

namespace selu_ext {

// Klambauer et al. (2017), to the digits PyTorch uses.
constexpr double kAlpha = 1.6732632423543772848170429916717;
constexpr double kScale = 1.0507009873554804934193349852946;
constexpr double kScaleAlpha = kScale * kAlpha;  // 1.7580993408473766, PyTorch's AlphaDropout constant

// scale * alpha split in two, hi + lo, each rounded to the compute type, so
// c * e is computed as fma(hi, e, lo * e): the constant carries twice the working
// precision and the product is rounded once. With it float32 SELU stays within
// 2 ULP of the exact value (expm1's error plus half an ULP). The positive branch
// needs no split: rounding scale to float costs under 0.3 ULP.
template <typename T>
struct SeluConsts;
template <>
struct SeluConsts<float> {
  static constexpr float scale_alpha_hi = 1.7580993175506592f;
  static constexpr float scale_alpha_lo = 2.3296717444054593e-08f;
};
template <>
struct SeluConsts<double> {
  static constexpr double scale_alpha_hi = 1.7580993408473768;
  static constexpr double scale_alpha_lo = 1.41535193800845e-17;
};

// scale * alpha rounded to float16 and to bfloat16 (the same value in both; a test
// reads it back through the kernels).
constexpr float kScaleAlpha16 = 1.7578125f;

SELU_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

SELU_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// The polynomial of the float expm1 (selu_math.h): q, a degree-5 near-minimax fit of
// (expm1(r) - r) / r^2 on |r| <= 0.34668 with q(0) = 1/2 exact, each coefficient
// rounded to float and the rest refitted (benchmarks/fit_expm1.py): relative error
// of expm1(r) 4.3e-10, under the 5.8e-10 of the degree-6 Taylor q it replaced, with
// one FMA less per element.
constexpr float kExpm1Ln2Hi = 0.693359375f;     // ln2 high part: k * it is exact for |k| < 2^12
constexpr float kExpm1Ln2Lo = -2.12194440e-4f;  // ln2 - kExpm1Ln2Hi
constexpr float kExpm1Q5 = 0x1.9e6f38p-13f, kExpm1Q4 = 0x1.6d3a3ap-10f, kExpm1Q3 = 0x1.1112dap-7f,
                kExpm1Q2 = 0x1.5554f8p-5f, kExpm1Q1 = 0x1.555554p-3f, kExpm1Q0 = 0x1.0p-1f;

// scale * alpha as selu_backward_elem reads it from an output of `storage_bytes`
// bytes per element: a float16 or bfloat16 output was rounded, so its saturated
// value is kScaleAlpha16 (see selu_backward_elem).
template <typename S>
constexpr S output_scale_alpha(int storage_bytes) {
  return storage_bytes == 2 ? static_cast<S>(kScaleAlpha16) : SeluConsts<S>::scale_alpha_hi;
}

// ---------------------------------------------------------------------------
// Lanes<V>: what the formulas of selu_math.h need of a value type V beyond its
// operators. The scalar types are here; cpu/vec_kernels.h adds its vector types.
//   S                         the lane type (V itself for scalars)
//   splat(s)                  s in every lane
//   fma(a, b, c)              a * b + c, rounded once where the hardware can
//   fnma(a, b, c)             c - a * b, likewise (its own operation: a NaN `a` keeps
//                             its sign, as in x86's VFNMADD; the scalars' -a flips it)
//   clamp_nonpositive(x, lo)  x clamped to [lo, 0], NaN kept (scalars: callers pass
//                             x <= 0, so only lo is applied)
//   floor_at(x, lo)           x clamped below at lo, NaN kept
//   bits(x), from_bits(u)     the same bits as unsigned integers, and back
//   mul_wide(w, m), hi(p), lo(p)  (Philox words) the 64-bit product of a 32-bit
//                             word and m, and its high and low 32 bits
template <typename V>
struct Lanes;

template <>
struct Lanes<float> {
  using S = float;
  static SELU_HD float splat(float s) { return s; }
  static SELU_HD float fma(float a, float b, float c) { return ::fmaf(a, b, c); }
  static SELU_HD float fnma(float a, float b, float c) { return ::fmaf(-a, b, c); }
  static SELU_HD float clamp_nonpositive(float x, float lo) { return x < lo ? lo : x; }
  static SELU_HD float floor_at(float x, float lo) { return x < lo ? lo : x; }
  static SELU_HD uint32_t bits(float f) { return float_bits(f); }
  static SELU_HD float from_bits(uint32_t u) { return bits_float(u); }
};

template <>
struct Lanes<double> {
  using S = double;
  static SELU_HD double splat(double s) { return s; }
  static SELU_HD double fma(double a, double b, double c) { return ::fma(a, b, c); }
  static SELU_HD double floor_at(double x, double lo) { return x < lo ? lo : x; }
};

template <>
struct Lanes<uint32_t> {
  static SELU_HD uint64_t mul_wide(uint32_t w, uint32_t m) {
    return static_cast<uint64_t>(w) * static_cast<uint64_t>(m);
  }
  static SELU_HD uint32_t hi(uint64_t p) { return static_cast<uint32_t>(p >> 32); }
  static SELU_HD uint32_t lo(uint64_t p) { return static_cast<uint32_t>(p); }
};

// ---------------------------------------------------------------------------
// AlphaDropout.
//
// PyTorch (ATen/native/Dropout.cpp), with a' = scale * alpha:
//   a = 1 / sqrt((a'^2 p + 1)(1 - p)),  kept: a * x + a' a p,  dropped: -a' a (1 - p)
// Dropped units are computed as `dropped + 0 * x`, so NaN and inf propagate exactly
// as in PyTorch's `input * noise + b`. p == 1 gives x * 0, as PyTorch does.
struct DropoutCoeffs {
  double a;        // multiplier of kept units
  double b;        // offset of kept units
  double dropped;  // value of dropped units
};

inline DropoutCoeffs alpha_dropout_coeffs(double p) {
  // p == 1: kept a*x + b and dropped `dropped + 0*x` are both exactly x * 0 (-0.0
  // added to anything leaves it unchanged, signed zeros included), as in PyTorch.
  if (p >= 1.0) return {0.0, -0.0, -0.0};
  const double a = 1.0 / std::sqrt((kScaleAlpha * kScaleAlpha * p + 1.0) * (1.0 - p));
  return {a, kScaleAlpha * a * p, -kScaleAlpha * a * (1.0 - p)};
}

// An element is dropped when its 32-bit random number (dropout_keep below) is below
// this threshold, so the drop probability is threshold / 2^32 (within 2^-33 of p).
// p == 1 gives 0xFFFFFFFF (only the number 0xFFFFFFFF is kept); the coefficients
// above make every unit x * 0 anyway, whatever the mask says.
inline uint32_t drop_threshold(double p) {
  if (!(p > 0.0)) return 0u;
  const double t = std::nearbyint(p * 4294967296.0);
  return t >= 4294967295.0 ? 0xFFFFFFFFu : static_cast<uint32_t>(t);
}

// ---------------------------------------------------------------------------
// Philox4x32-10 (Salmon et al. 2011, Random123), the generator behind PyTorch's CUDA
// dropout. Counter-based: the mask of an element is a pure function of
// (seed, offset, element index), so backward regenerates it instead of storing it,
// and CPU and CUDA produce the same mask for the same (seed, offset).
struct Philox4 {
  uint32_t v[4];
};

// Multipliers and key increments of Philox4x32 (Random123).
constexpr uint32_t kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;

// The element -> random number layout, identical on every backend.
//
// Elements are taken in blocks of 256 (in row-major logical order). Inside a block,
// element 32 * j + t (t < 32, j < 8) reads 16 bits of the Philox call for counter
// group g = 32 * block + t: the low half of word j for j < 4, the high half of word
// j - 4 for j >= 4 (dropout_half). So 32 consecutive elements use 32 consecutive
// counters: a warp reads them coalesced, and a SIMD CPU loop computes them lane by
// lane, neither has to transpose; and one call serves 8 elements, not 4.
//
// Those 16 bits u are the high half of the element's 32-bit random number; its low
// half u' comes from the same place in the call for group g | kTieGroup, a counter
// no element's main call uses. u alone decides u * 2^16 + u' < threshold unless u
// equals the threshold's high half (probability 2^-16), so u' is computed only
// then (dropout_keep): the mask has the exact 2^-32 resolution of a full 32-bit word
// per element at half the Philox calls, the larger part of the dropout kernels'
// instructions on both CPU and GPU.
//
// The counter is (low 64 bits: offset / 4, high 64 bits: g), the convention of
// curand_init(seed, subsequence, offset) used by PyTorch's own CUDA RNG kernels:
// each call reserves 4 offsets from torch's generator, so its counters never meet
// those of any other call on the same generator.
constexpr int64_t kDropoutBlock = 256;
constexpr int64_t kDropoutLanes = 32;
constexpr uint64_t kTieGroup = uint64_t(1) << 63;

// Walks the elements [begin, begin + n) block by block (CPU loops):
// f(block_start, lead, done, count) for each block they touch, with the block's
// first element, where the range starts inside it, how many elements of the range
// came before it and how many of it the range covers.
template <typename F>
inline void for_each_dropout_block(int64_t begin, int64_t n, F f) {
  for (int64_t done = 0; done < n;) {
    const int64_t index = begin + done;
    const int64_t block_start = index - index % kDropoutBlock;
    const int64_t lead = index - block_start;
    const int64_t count =
        (kDropoutBlock - lead) < (n - done) ? (kDropoutBlock - lead) : (n - done);
    f(block_start, lead, done, count);
    done += count;
  }
}

// Everything a dropout kernel needs, in the kernel's compute type. `kept_bound` is
// the kept-unit offset b rounded to the output dtype. The fused forward stores a
// kept z so that z > kept_bound exactly when selu(x) > 0: where rounding a*y + b to
// the dtype lands on the bound for a tiny positive y, it stores the next value up
// (1 ULP, only there). The fused backward then picks the right branch from z alone,
// even in bfloat16, where b swallows |y| up to ~b/256.
template <typename acc_t>
struct AlphaDropoutParams {
  acc_t a, b, dropped;
  // a * scale and a * scale * alpha (selu's own scale * alpha, as in
  // selu_backward_elem): the fused forward's constants (selu_alpha_dropout_elem) and
  // its backward's.
  acc_t a_scale, a_scale_alpha;
  // b - a * scale * alpha, rounded once: the fused forward's kept unit where
  // expm1(x) = -1, the least it stores in the compute type. Its backward's
  // a * (y + scale * alpha) is z minus it, exactly 0 at that unit.
  acc_t kept_floor;
  acc_t kept_bound;
  uint32_t threshold;
};

template <typename acc_t>
inline AlphaDropoutParams<acc_t> make_alpha_dropout_params(double p, acc_t kept_bound) {
  const DropoutCoeffs c = alpha_dropout_coeffs(p);
  // fma(.., 0) is the rounded product, as a plain one is, but one that
  // -ffp-contract=fast cannot fuse into b - a_scale_alpha: kept_floor must round the
  // product first, as the forward's fma does, or it misses the forward's z by an ULP.
  const acc_t a_scale_alpha = acc_t(std::fma(c.a, SeluConsts<double>::scale_alpha_hi, 0.0));
  const acc_t b = acc_t(c.b);
  return {acc_t(c.a),        b,          acc_t(c.dropped),  acc_t(c.a * kScale), a_scale_alpha,
          b - a_scale_alpha, kept_bound, drop_threshold(p)};
}

// The element-wise formulas, for scalars. In a namespace of their own, found through
// the using-directive by unqualified calls but not by argument-dependent lookup, so
// that the copies of cpu/vec_kernels.h do not compete with them.
namespace math {
#define SELU_MATH SELU_HD
#include "selu_math.h"
#undef SELU_MATH
}  // namespace math
using namespace math;

// One Philox4x32-10 call: the counter group `group`'s four 32-bit words.
SELU_HD Philox4 dropout_random(uint64_t seed, uint64_t offset, uint64_t group) {
  const uint64_t ctr_lo = offset / 4;
  uint32_t c0 = static_cast<uint32_t>(ctr_lo), c1 = static_cast<uint32_t>(ctr_lo >> 32);
  uint32_t c2 = static_cast<uint32_t>(group), c3 = static_cast<uint32_t>(group >> 32);
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
#if defined(__CUDACC__)
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    philox_round(c0, c1, c2, c3, k0, k1);
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  return {{c0, c1, c2, c3}};
}

// The 16 bits of element 32 * j + t of a block in its group's call r (layout above).
SELU_HD uint32_t dropout_half(const Philox4& r, int j) {
  return (r.v[j & 3] >> (16 * (j >> 2))) & 0xFFFFu;
}

// u' >= the threshold's low half `lo`, for the element u did not decide.
SELU_HD_COLD bool dropout_tie_keep(uint32_t lo, uint64_t seed, uint64_t offset, uint64_t group,
                                   int j) {
  return dropout_half(dropout_random(seed, offset, group | kTieGroup), j) >= lo;
}

// Whether element 32 * j + t of a block is kept, from its 16 bits u of the call for
// group = 32 * block + t: its 32-bit number u * 2^16 + u' is at least the threshold.
// Only a u equal to the threshold's high half needs u', from the tie call (with a
// low half of 0, such a u is kept whatever u' is).
SELU_HD bool dropout_keep(uint32_t u, uint32_t threshold, uint64_t seed, uint64_t offset,
                          uint64_t group, int j) {
  const uint32_t hi = threshold >> 16, lo = threshold & 0xFFFFu;
  if (u != hi || lo == 0) return u >= hi;
  return dropout_tie_keep(lo, seed, offset, group, j);
}

// The keep flags of the 256 elements of the block whose first group is first_group,
// in element order, one Philox call at a time: `kept` where kept, 0 where dropped
// (the scalar CPU loops, and the vector loops' blocks that hold a tie).
template <typename K>
inline void dropout_keep_block(K* keep, K kept, uint64_t seed, uint64_t offset,
                               uint32_t threshold, uint64_t first_group) {
  for (int t = 0; t < kDropoutLanes; ++t) {
    const uint64_t group = first_group + t;
    const Philox4 r = dropout_random(seed, offset, group);
    for (int j = 0; j < 8; ++j) {
      keep[kDropoutLanes * j + t] =
          dropout_keep(dropout_half(r, j), threshold, seed, offset, group, j) ? kept : K(0);
    }
  }
}

}  // namespace selu_ext
