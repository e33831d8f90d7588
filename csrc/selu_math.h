// selu_ext: the element-wise formulas, each written once, as a template over its
// value type V: a scalar (float, double) or a GCC/Clang vector of them. Operators
// (+ - *, comparisons, and `c ? a : b`, which selects lane by lane on vectors) read
// the same for both; the rest comes from Lanes<V> (selu.h).
//
// No include guard, on purpose. selu.h includes this file inside namespace
// selu_ext::math for scalars (CUDA, the scalar CPU loops); cpu/vec_kernels.h includes it again
// inside each instruction set's namespace, after that set's `#pragma GCC target`:
// a template is compiled for the target in force where it is defined, not where it
// is instantiated, so an AVX2 loop needs its own copy of the templates (a shared one
// would be baseline code and could not inline the AVX2 intrinsics). The includer
// defines SELU_MATH, the functions' specifiers. Include no header from here.

// c * x with c = hi + lo (selu.h's SeluConsts), rounded once where FMA exists.
template <typename V, typename S>
SELU_MATH V mul_split(V x, S hi, S lo) {
  return Lanes<V>::fma(Lanes<V>::splat(hi), x, x * lo);
}

// The float reduction of expm1_nonpositive below: x clamped, then x = k ln2 + r.
// j = k + 1.5 * 2^23, whose low bits are k's two's complement.
template <typename V>
struct Expm1Reduced {
  V j, r;
};

template <typename V>
SELU_MATH Expm1Reduced<V> expm1_reduce(V x) {
  using L = Lanes<V>;
  x = L::clamp_nonpositive(x, -30.0f);
  const V shifter = L::splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const V j = L::fma(x, L::splat(1.44269504088896341f), shifter);
  const V k = j - shifter;
  V r = L::fnma(k, L::splat(kExpm1Ln2Hi), x);
  r = L::fnma(k, L::splat(kExpm1Ln2Lo), r);
  return {j, r};
}

// expm1 on x <= 0 (or NaN), the only domain SELU needs.
//
// float: x = k ln2 + r with |r| <= ln2/2 (Cody-Waite), expm1(r) = r + r^2 q(r) with
// selu.h's minimax q, then expm1(x) = 2^k expm1(r) + (2^k - 1): with t = 2^k, t - 1
// is exact and t * p is exact scaling, so the result is rounded once. CUDA's expm1f
// plus the final product reached 2.01 ULP; this stays within the README's figure
// (benchmarks/results/ulp/). Below the clamp expm1(x) is -1 to the last bit
// (float: e^-30 < 2^-43; double: e^-60 < 2^-86). For vectors the clamp also maps
// x > 0 to 0, so lanes whose result the caller discards stay finite. NaN passes the
// clamps and comes out NaN.
//
// double has two forms, an exception by value type: a scalar (CUDA, the scalar CPU
// loops) calls the C library's / CUDA's expm1, which no vector code can call, so
// vectors evaluate the same reduction with a Taylor polynomial to r^14 (truncation
// below 1e-18 relative on |r| <= ln2/2). Scalar and vector double may therefore
// differ in the last bit.
template <typename V>
SELU_MATH V expm1_nonpositive(V x) {
  using L = Lanes<V>;
  if constexpr (std::is_same_v<V, double>) {
    return ::expm1(x);
  } else if constexpr (std::is_same_v<typename L::S, float>) {
    const auto [j, r] = expm1_reduce(x);
    V q = L::fma(L::splat(kExpm1Q5), r, L::splat(kExpm1Q4));
    q = L::fma(q, r, L::splat(kExpm1Q3));
    q = L::fma(q, r, L::splat(kExpm1Q2));
    q = L::fma(q, r, L::splat(kExpm1Q1));
    q = L::fma(q, r, L::splat(kExpm1Q0));
    const V p = L::fma(r * r, q, r);                                  // expm1(r)
    const V t = L::from_bits((L::bits(j) - (0x4B400000u - 127u)) << 23);  // 2^k
    return L::fma(t, p, t - 1.0f);
  } else {
    x = L::clamp_nonpositive(x, -60.0);
    const V shifter = L::splat(6755399441055744.0);  // 1.5 * 2^52
    const V j = L::fma(x, L::splat(1.4426950408889634074), shifter);
    const V k = j - shifter;
    V r = L::fnma(k, L::splat(6.93147180369123816490e-01), x);  // ln2 high part (fdlibm)
    r = L::fnma(k, L::splat(1.90821492927058770002e-10), r);    // ln2 low part
    V q = L::splat(1.0 / 87178291200.0);                         // 1/14!
    q = L::fma(q, r, L::splat(1.0 / 6227020800.0));             // 1/13!
    q = L::fma(q, r, L::splat(1.0 / 479001600.0));
    q = L::fma(q, r, L::splat(1.0 / 39916800.0));
    q = L::fma(q, r, L::splat(1.0 / 3628800.0));
    q = L::fma(q, r, L::splat(1.0 / 362880.0));
    q = L::fma(q, r, L::splat(1.0 / 40320.0));
    q = L::fma(q, r, L::splat(1.0 / 5040.0));
    q = L::fma(q, r, L::splat(1.0 / 720.0));
    q = L::fma(q, r, L::splat(1.0 / 120.0));
    q = L::fma(q, r, L::splat(1.0 / 24.0));
    q = L::fma(q, r, L::splat(1.0 / 6.0));
    q = L::fma(q, r, L::splat(0.5));
    const V p = L::fma(r * r, q, r);
    const V t = L::from_bits((L::bits(j) - (0x4338000000000000ull - 1023ull)) << 52);
    return L::fma(t, p, t - 1.0);
  }
}

// The negative branch of selu: scale * alpha * expm1(x), for x <= 0 (or NaN);
// expm1(x) alone is the fused forward's (selu_alpha_dropout_elem). selu_elem's
// default; CUDA's float16/bfloat16 kernels pass a cheaper one of their own
// (cuda/selu_kernels.cu).
struct SeluNegative {
  template <typename V>
  SELU_MATH V operator()(V x) const {
    using C = SeluConsts<typename Lanes<V>::S>;
    return mul_split(expm1(x), C::scale_alpha_hi, C::scale_alpha_lo);
  }
  template <typename V>
  SELU_MATH V expm1(V x) const {
    return expm1_nonpositive(x);
  }
};

// SeluNegative for results rounded to bfloat16 (the CPU vector kernels' SELU forward),
// cheaper and giving the same bfloat16 for every input: checked over all 2^16 of them
// per variant, with and without FMA (tests/test_cpu_variants.py), where dropping one
// more coefficient already changes one. Four multiplies or FMAs fewer per vector, the
// ports the loop waits on: q to r^3 (expm1(r) to r^5), and the scaling folded into the
// last FMA as st * p + (st - scale * alpha), st = scale * alpha * 2^k formed exactly in
// the exponent bits (k >= -44 after the clamp; for NaN x, st is finite and the NaN
// comes from p, x's own). bfloat16 only: float16 keeps 3 more bits, and q to r^3
// changes 6 of its values (q to r^4 one, without FMA).
struct SeluNegativeBFloat16 {
  template <typename V>
  SELU_MATH V operator()(V x) const {
    using L = Lanes<V>;
    const auto [j, r] = expm1_reduce(x);
    V q = L::fma(L::splat(kExpm1Q3), r, L::splat(kExpm1Q2));
    q = L::fma(q, r, L::splat(kExpm1Q1));
    q = L::fma(q, r, L::splat(kExpm1Q0));
    const V p = L::fma(r * r, q, r);  // expm1(r)
    const V sa = L::splat(SeluConsts<float>::scale_alpha_hi);
    const V st = L::from_bits((L::bits(j) << 23) + L::bits(sa));
    return L::fma(st, p, st - sa);
  }
};

// selu(x) = scale * x for x >= 0, scale * alpha * expm1(x) below (NaN takes the
// second branch and stays NaN; ±0 map to scale * ±0 = ±0, as in PyTorch). A scalar
// evaluates one branch; a vector both, then selects lane by lane.
template <typename V, typename Negative = SeluNegative>
SELU_MATH V selu_elem(V x) {
  return x >= V{} ? x * static_cast<typename Lanes<V>::S>(kScale) : Negative{}(x);
}

// grad * d selu / dx, the derivative written in terms of the output y = selu(x):
// y + scale * alpha where y <= 0, scale elsewhere. Exact because y <= 0 exactly when
// x <= 0 (scale > 1, so scale * x never rounds to 0), and it needs no exp. NaN takes
// the `scale` branch, as in PyTorch's elu_backward (its test is x <= 0 too).
// scale * alpha here is the forward's own -selu(-inf) (the split constant's hi
// part: the exact product correctly rounded), so the gradient of a saturated unit is
// exactly 0; the absolute error elsewhere is about an ULP of scale * alpha, inherent
// in reading y.
//
// A float16 or bfloat16 output was rounded, so its saturated value is scale*alpha
// rounded to that type: callers reading such outputs pass
// output_scale_alpha<S>(2) (kScaleAlpha16) as `scale_alpha`, which gives saturated
// units exactly 0 there too (PyTorch's gradient from the input underflows to 0 at
// the same units).
template <typename V, typename S = typename Lanes<V>::S>
SELU_MATH V selu_backward_elem(V grad, V y, S scale_alpha = SeluConsts<S>::scale_alpha_hi) {
  return grad * (y <= V{} ? y + scale_alpha : Lanes<V>::splat(static_cast<S>(kScale)));
}

// The same from the forward's input x: the output recomputed (in registers, so both
// forms read the same bytes), in the compute type, so scale * alpha is the full one.
template <typename Negative = SeluNegative, typename V>
SELU_MATH V selu_backward_from_input_elem(V grad, V x) {
  return selu_backward_elem(grad, selu_elem<V, Negative>(x));
}

// AlphaDropout of one element (coefficients: selu.h); `keep` is a bool, or a vector
// of lane masks. Dropped units are computed as `dropped + 0 * x`, so NaN and inf
// propagate exactly as in PyTorch's `input * noise + b`.
template <typename V, typename K, typename S>
SELU_MATH V alpha_dropout_elem(V x, K keep, const AlphaDropoutParams<S>& q) {
  return keep ? x * q.a + q.b : x * S(0) + q.dropped;
}

template <typename V, typename K, typename S>
SELU_MATH V alpha_dropout_backward_elem(V grad, K keep, const AlphaDropoutParams<S>& q) {
  return grad * (keep ? Lanes<V>::splat(q.a) : V{});
}

// selu then AlphaDropout, in the compute type; the caller stores the result to the
// output dtype. It is alpha_dropout_elem(selu_elem(x)) with four instructions fewer
// per AVX2 vector (callgrind, benchmarks/cpu_probe; the whole float32 loop with its
// Philox calls: 63.4 per 8 floats at 05dd783), most of them multiplies and blends, the
// ports the kernel waits on:
//   * x > 0 decides both selu's branch and the nudge below (x = +-0 take the second
//     branch: expm1(+-0) = +0 there, so a * y + b = b as from y = +-0);
//   * below 0, a kept unit is (a * scale * alpha) expm1(x) + b, one FMA in place of
//     selu's product and a second FMA: it differs from the composition by rounding
//     only (tests: F64_REORDERED). Above, it is a * (scale x) + b, as the
//     composition: where scale * x overflows, inf as PyTorch's.
//   * `round(v)` is v rounded to the output dtype (and back), `kept_above` the dtype's
//     next value above q.kept_bound: a kept unit with selu(x) > 0 must be stored above
//     kept_bound (see AlphaDropoutParams in selu.h). Where rounding is exact (float,
//     double) that is max(kept, kept_above) on the positive branch alone; the 16-bit
//     types round the selected value first and then test it, unless the caller's store
//     rounds monotonically, which gives the same bits from the max (cpu/vec_kernels.h,
//     StoreRounds).
//   * A dropped unit is `dropped + 0 * y` for y = scale * max(x, -1): NaN where
//     selu(x) is NaN or +inf, as PyTorch's `input * noise + b`.
template <typename Negative = SeluNegative, typename V, typename K, typename S, typename Round>
SELU_MATH V selu_alpha_dropout_elem(V x, K keep, const AlphaDropoutParams<S>& q, S kept_above,
                                    Round round) {
  using L = Lanes<V>;
  const auto positive = x > V{};
  const V y = L::floor_at(x, S(-1)) * static_cast<S>(kScale);  // selu(x) where x > 0
  // The branches as calls, so that a scalar evaluates only its own (vectors, both).
  const auto pos = [&] { return L::fma(y, L::splat(q.a), L::splat(q.b)); };
  const auto neg = [&] {
    return L::fma(L::splat(q.a_scale_alpha), Negative{}.expm1(x), L::splat(q.b));
  };
  V kept;
  if constexpr (Round::kExact) {
    kept = positive ? L::floor_at(pos(), kept_above) : neg();
  } else {
    kept = round(positive ? pos() : neg());
    kept = positive & (kept <= q.kept_bound) ? L::splat(kept_above) : kept;
  }
  return keep ? kept : y * S(0) + q.dropped;
}

// The two values z takes at saturated units, in the output dtype: q.dropped and
// q.kept_floor rounded to it by the caller's `round` (selu_alpha_dropout_elem's).
// float16 and bfloat16 round z onto them well before expm1(x) reaches -1; float and
// double store kept_floor where it does. The two are one number in float16 and
// bfloat16 but at rare p (0.11347 in float16, 0.94876 in bfloat16), an ULP apart at
// many p in float and double.
template <typename V>
struct SaturatedZ {
  V dropped, floor;
};

template <typename V, typename S, typename Round>
SELU_MATH SaturatedZ<V> saturated_z(const AlphaDropoutParams<S>& q, Round round) {
  return {round(Lanes<V>::splat(q.dropped)), round(Lanes<V>::splat(q.kept_floor))};
}

// Backward of selu -> alpha_dropout from the fused output z alone. Where kept,
// z = a * y + b with y = selu(x), so dz/dx = a * scale where y > 0 and
// a * (y + scale * alpha) = z - (b - a * scale * alpha) = z - q.kept_floor where
// y <= 0: no exp, no x.
//
// Saturated units get grad * 0, exactly a dropped unit's gradient, in every dtype
// (README). Their true gradient is below z's rounding, but z - kept_floor would
// return that rounding: in bfloat16 about 0.003 * grad, enough to flip the
// gradient's sign at small p. A saturated z is kept_floor or the dropped value, each
// as the output dtype stores it (SaturatedZ), and a kept z equal to either is taken
// as dropped. That rule is also what lets a kernel skip the mask where z is the
// dropped value (cpu/vec_kernels.h).
template <typename V, typename K, typename S>
SELU_MATH V selu_alpha_dropout_backward_elem(V grad, V z, K keep, const AlphaDropoutParams<S>& q,
                                             const SaturatedZ<V>& saturated) {
  const V d = z <= q.kept_bound ? z - q.kept_floor : Lanes<V>::splat(q.a_scale);
  return grad * (keep & (K)(z != saturated.dropped) & (K)(z != saturated.floor) ? d : V{});
}

// One round of Philox4x32 (Salmon et al. 2011, Random123) on the counter words
// c0..c3 with key (k0, k1). W is a 32-bit word, or in the SIMD loops a vector of
// 64-bit lanes holding one in each low half (Lanes<W>::mul_wide reads only those).
template <typename W>
SELU_MATH void philox_round(W& c0, W& c1, W& c2, W& c3, W k0, W k1) {
  using L = Lanes<W>;
  const auto p0 = L::mul_wide(c0, kPhiloxM0);
  const auto p1 = L::mul_wide(c2, kPhiloxM1);
  c0 = L::hi(p1) ^ c1 ^ k0;
  c2 = L::hi(p0) ^ c3 ^ k1;
  c1 = L::lo(p1);
  c3 = L::lo(p0);
}
