// selu_ext: the math, once.
//
// Constants and scalar functions shared by every kernel: CPU and CUDA, forward and
// backward, plain SELU and AlphaDropout. Nothing here depends on torch, so the CUDA
// translation units that include it compile in seconds.
//
// Numerics follow PyTorch's ATen/native/cuda/ActivationEluKernel.cu: compute in
// "opmath" (float for float16/bfloat16, the type itself for float/double), the
// x <= 0 branch at exactly zero, expm1 on the negative branch.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SELU_HD __host__ __device__ __forceinline__
#else
#define SELU_HD inline
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

SELU_HD float mul_split(float x, float hi, float lo) { return ::fmaf(hi, x, lo * x); }
SELU_HD double mul_split(double x, double hi, double lo) { return ::fma(hi, x, lo * x); }

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

// float expm1 on x <= 0 (or NaN), the domain SELU needs; the scalar form of the
// CPU kernels' vector code (cpu/vec_kernels.h). x = k ln2 + r with |r| <= ln2/2
// (Cody-Waite), expm1(r) = r + r^2 q(r), then expm1(x) = 2^k expm1(r) + (2^k - 1),
// rounded once (t - 1 is exact, t * p exact scaling). Below -30, expm1(x) is -1 to
// the last bit. CUDA's expm1f plus the final product reached 2.01 ULP; this stays
// within the README's figure (benchmarks/results/ulp/).
//
// q is a degree-5 near-minimax fit of (expm1(r) - r) / r^2 on |r| <= 0.34668 with
// q(0) = 1/2 exact, each coefficient rounded to float and the rest refitted
// (benchmarks/fit_expm1.py): relative error of expm1(r) 4.3e-10, under the 5.8e-10
// of the degree-6 Taylor q it replaced, with one FMA less per element.
constexpr float kExpm1Ln2Hi = 0.693359375f;     // ln2 high part: k * it is exact for |k| < 2^12
constexpr float kExpm1Ln2Lo = -2.12194440e-4f;  // ln2 - kExpm1Ln2Hi
constexpr float kExpm1Q5 = 0x1.9e6f38p-13f, kExpm1Q4 = 0x1.6d3a3ap-10f, kExpm1Q3 = 0x1.1112dap-7f,
                kExpm1Q2 = 0x1.5554f8p-5f, kExpm1Q1 = 0x1.555554p-3f, kExpm1Q0 = 0x1.0p-1f;

SELU_HD float expm1_nonpositive(float x) {
  x = x < -30.0f ? -30.0f : x;  // NaN fails the test and stays NaN
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float j = ::fmaf(x, 1.44269504088896341f, shifter);
  const float k = j - shifter;
  float r = ::fmaf(-k, kExpm1Ln2Hi, x);
  r = ::fmaf(-k, kExpm1Ln2Lo, r);
  float q = ::fmaf(kExpm1Q5, r, kExpm1Q4);
  q = ::fmaf(q, r, kExpm1Q3);
  q = ::fmaf(q, r, kExpm1Q2);
  q = ::fmaf(q, r, kExpm1Q1);
  q = ::fmaf(q, r, kExpm1Q0);
  const float p = ::fmaf(r * r, q, r);
  const float t = bits_float((float_bits(j) - 0x4B400000u + 127u) << 23);  // 2^k
  return ::fmaf(t, p, t - 1.0f);
}

SELU_HD double expm1_nonpositive(double x) { return ::expm1(x); }

// selu(x) = scale * x for x > 0, scale * alpha * expm1(x) for x <= 0 (NaN takes the
// second branch and stays NaN; -0 stays -0).
template <typename acc_t>
SELU_HD acc_t selu_forward(acc_t x) {
  using C = SeluConsts<acc_t>;
  if (x > acc_t(0)) return acc_t(kScale) * x;
  if (x == acc_t(0)) return x;
  return mul_split(expm1_nonpositive(x), C::scale_alpha_hi, C::scale_alpha_lo);
}

// d selu / dx written in terms of the output y = selu(x): y + scale * alpha where
// y <= 0, scale elsewhere. Exact because y <= 0 exactly when x <= 0 (scale > 1, so
// scale * x never rounds to 0), and it needs no exp. NaN takes the `scale` branch,
// as in PyTorch's elu_backward (its test is x <= 0 too). scale * alpha here is the
// forward's own -selu(-inf) (the split constant's hi part: the exact product
// correctly rounded), so the gradient of a saturated unit is exactly 0; the absolute
// error elsewhere is about an ULP of scale * alpha, inherent in reading y.
//
// A float16 or bfloat16 output was rounded, so its saturated value is scale*alpha
// rounded to that type: callers reading such outputs pass kScaleAlpha16 as
// `scale_alpha`, which gives saturated units exactly 0 there too (PyTorch's
// gradient from the input underflows to 0 at the same units).
template <typename acc_t>
SELU_HD acc_t selu_backward_from_output(acc_t grad, acc_t y,
                                        acc_t scale_alpha = SeluConsts<acc_t>::scale_alpha_hi) {
  return y <= acc_t(0) ? grad * (y + scale_alpha) : grad * acc_t(kScale);
}

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

// An element is dropped when its 32-bit Philox word is below this threshold, so the
// drop probability is threshold / 2^32 (within 2^-33 of p). p == 1 is handled by the
// coefficients above (every unit becomes x * 0), whatever the mask says.
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

SELU_HD uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t product = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  *hi = static_cast<uint32_t>(product >> 32);
  return static_cast<uint32_t>(product);
}

SELU_HD Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                             uint32_t k0, uint32_t k1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
#if defined(__CUDACC__)
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo32(kM0, c0, &hi0);
    const uint32_t lo1 = mulhilo32(kM1, c2, &hi1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += kW0;
    k1 += kW1;
  }
  return {{c0, c1, c2, c3}};
}

// The element -> random word layout, identical on every backend.
//
// Elements are taken in blocks of 128 (in row-major logical order). Inside a block,
// element 32 * j + t (t < 32, j < 4) gets word j of the Philox call for counter
// group g = 32 * block + t. So 32 consecutive elements use 32 consecutive counters:
// a warp reads them coalesced, and a SIMD CPU loop computes them lane by lane,
// neither has to transpose.
//
// The counter is (low 64 bits: offset / 4, high 64 bits: g), the convention of
// curand_init(seed, subsequence, offset) used by PyTorch's own CUDA RNG kernels:
// each call reserves 4 offsets from torch's generator, so its counters never meet
// those of any other call on the same generator.
constexpr int64_t kDropoutBlock = 128;
constexpr int64_t kDropoutLanes = 32;

SELU_HD int64_t dropout_group(int64_t index) {
  return (index / kDropoutBlock) * kDropoutLanes + (index % kDropoutLanes);
}

SELU_HD int dropout_word(int64_t index) {
  return static_cast<int>((index / kDropoutLanes) % 4);
}

SELU_HD Philox4 dropout_random(uint64_t seed, uint64_t offset, uint64_t group) {
  const uint64_t ctr_lo = offset / 4;
  return philox4x32_10(static_cast<uint32_t>(ctr_lo), static_cast<uint32_t>(ctr_lo >> 32),
                       static_cast<uint32_t>(group), static_cast<uint32_t>(group >> 32),
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
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
  acc_t a_scale, a_scale_alpha;  // a * scale, a * scale * alpha (the forward's, as in
                                 // selu_backward_from_output)
  acc_t kept_bound;
  uint32_t threshold;
};

template <typename acc_t>
inline AlphaDropoutParams<acc_t> make_alpha_dropout_params(double p, acc_t kept_bound) {
  const DropoutCoeffs c = alpha_dropout_coeffs(p);
  return {acc_t(c.a), acc_t(c.b), acc_t(c.dropped), acc_t(c.a * kScale), acc_t(c.a * SeluConsts<double>::scale_alpha_hi),
          kept_bound, p >= 1.0 ? 0xFFFFFFFFu : drop_threshold(p)};
}

template <typename acc_t>
SELU_HD acc_t alpha_dropout_forward(acc_t x, bool keep, const AlphaDropoutParams<acc_t>& q) {
  return keep ? q.a * x + q.b : q.dropped + acc_t(0) * x;
}

template <typename acc_t>
SELU_HD acc_t alpha_dropout_backward(acc_t grad, bool keep, const AlphaDropoutParams<acc_t>& q) {
  return grad * (keep ? q.a : acc_t(0));
}

// Backward of selu -> alpha_dropout from the fused output z alone. Where kept,
// z = a * y + b with y = selu(x), so dz/dx = a * scale where y > 0 and
// a * (y + scale * alpha) = z - b + a * scale * alpha where y <= 0: no exp, no x.
template <typename acc_t>
SELU_HD acc_t selu_alpha_dropout_backward(acc_t grad, acc_t z, bool keep,
                                          const AlphaDropoutParams<acc_t>& q) {
  if (!keep) return grad * acc_t(0);
  return z <= q.kept_bound ? grad * (z - q.b + q.a_scale_alpha) : grad * q.a_scale;
}

// Scalar reference of the mask: true when element `index` is kept.
SELU_HD bool dropout_keep(uint64_t seed, uint64_t offset, uint32_t threshold, int64_t index) {
  const Philox4 r = dropout_random(seed, offset, static_cast<uint64_t>(dropout_group(index)));
  return r.v[dropout_word(index)] >= threshold;
}

}  // namespace selu_ext
