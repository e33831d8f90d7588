// selu_ext CPU kernels as plain scalar loops over selu_math.h's formulas: the
// baseline variant for compilers without GCC/Clang vector extensions (MSVC), which
// auto-vectorise what they can. The same formulas and mask layout (one Philox call
// per 8 elements of a 256-element block) as the vector kernels, float16/bfloat16
// rounded by c10's bit-exact conversions: the same masks, and values within the
// tests' tolerances of theirs, though not always to the bit (fmaf rounds once where
// the SSE2 variant rounds twice, double expm1 is the C library's, and the fused
// backward has no vector-style skip of the mask where z == dropped).
//
// Built in place of vec_kernels.h by kernels_baseline.cpp under MSVC, or anywhere
// with SELU_EXT_SCALAR_KERNELS=1 (setup.py), which is how it is tested on Linux.
// Do not include anywhere else: it defines functions with internal linkage.

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>

#include "../selu.h"
#include "kernels.h"

#ifndef SELU_EXT_ISA
#error "define SELU_EXT_ISA before including scalar_kernels.h"
#endif

namespace selu_ext::cpu::SELU_EXT_ISA {
namespace {

// Storage type and opmath type of each DType.
template <DType D>
struct Elem;
template <>
struct Elem<DType::kHalf> {
  using T = c10::Half;
  using A = float;
};
template <>
struct Elem<DType::kBFloat16> {
  using T = c10::BFloat16;
  using A = float;
};
template <>
struct Elem<DType::kFloat> {
  using T = float;
  using A = float;
};
template <>
struct Elem<DType::kDouble> {
  using T = double;
  using A = double;
};

template <DType D>
void selu_loop_t(const void* x, void* y, int64_t n) {
  using T = typename Elem<D>::T;
  using A = typename Elem<D>::A;
  const T* in = static_cast<const T*>(x);
  T* out = static_cast<T*>(y);
  for (int64_t i = 0; i < n; ++i) out[i] = T(selu_elem(A(in[i])));
}

// `v` is the forward's output (is_result) or its input, as in vec_kernels.h; a
// 16-bit output saturates at scale*alpha rounded to 16 bits (selu_backward_elem).
template <DType D>
void selu_backward_loop_t(const void* grad, const void* v_in, void* grad_x, int64_t n,
                          bool is_result) {
  using T = typename Elem<D>::T;
  using A = typename Elem<D>::A;
  const T* g = static_cast<const T*>(grad);
  const T* v = static_cast<const T*>(v_in);
  T* out = static_cast<T*>(grad_x);
  constexpr A sa = output_scale_alpha<A>(sizeof(T));
  for (int64_t i = 0; i < n; ++i) {
    out[i] = is_result ? T(selu_backward_elem(A(g[i]), A(v[i]), sa))
                       : T(selu_backward_from_input_elem(A(g[i]), A(v[i])));
  }
}

// Calls f(i, keep) for i in [0, n), element args.begin + i's keep flag computed a
// 256-element block at a time: 32 Philox calls, call t for elements 32j + t (selu.h).
template <typename F>
void for_each_keep(int64_t n, const DropoutLaunch& args, uint32_t threshold, F f) {
  bool keep[kDropoutBlock];
  for_each_dropout_block(args.begin, n, [&](int64_t block_start, int64_t lead, int64_t done,
                                       int64_t count) {
    const uint64_t first_group = static_cast<uint64_t>(block_start / kDropoutBlock) * kDropoutLanes;
    dropout_keep_block(keep, true, args.rng.seed, args.rng.offset, threshold, first_group);
    for (int64_t e = 0; e < count; ++e) f(done + e, keep[lead + e]);
  });
}

template <typename A>
AlphaDropoutParams<A> params_for(const DropoutLaunch& args) {
  return make_alpha_dropout_params<A>(args.p, static_cast<A>(args.kept_bound));
}

// out[i] = f(in[i], keep, q) for the elements of [args.begin, args.begin + n), computed in
// the compute type A with the call's parameters q.
template <DType D, typename F>
void dropout_map(const void* x, void* y, int64_t n, const DropoutLaunch& args, F f) {
  using T = typename Elem<D>::T;
  using A = typename Elem<D>::A;
  const T* in = static_cast<const T*>(x);
  T* out = static_cast<T*>(y);
  const AlphaDropoutParams<A> q = params_for<A>(args);
  for_each_keep(n, args, q.threshold,
                [&](int64_t i, bool keep) { out[i] = T(f(A(in[i]), keep, q)); });
}

template <DType D>
void alpha_dropout_loop_t(const void* x, void* z, int64_t n, const DropoutLaunch& args) {
  dropout_map<D>(x, z, n, args,
                 [](auto v, bool keep, const auto& q) { return alpha_dropout_elem(v, keep, q); });
}

template <DType D>
void alpha_dropout_backward_loop_t(const void* grad, void* grad_x, int64_t n,
                                   const DropoutLaunch& args) {
  dropout_map<D>(grad, grad_x, n, args, [](auto g, bool keep, const auto& q) {
    return alpha_dropout_backward_elem(g, keep, q);
  });
}

// A value of the compute type A rounded to T and back (selu_alpha_dropout_elem's
// `round`); exact, the identity, where T is A.
template <typename T, typename A>
struct ElemRound {
  static constexpr bool kExact = std::is_same_v<T, A>;
  A operator()(A v) const { return A(T(v)); }
};

template <DType D>
void selu_alpha_dropout_loop_t(const void* x, void* z, int64_t n, const DropoutLaunch& args) {
  using T = typename Elem<D>::T;
  using A = typename Elem<D>::A;
  const A above = static_cast<A>(args.kept_above);
  const ElemRound<T, A> round;
  dropout_map<D>(x, z, n, args, [&](A v, bool keep, const AlphaDropoutParams<A>& q) {
    return selu_alpha_dropout_elem(v, keep, q, above, round);
  });
}

template <DType D>
void selu_alpha_dropout_backward_loop_t(const void* grad, const void* z, void* grad_x,
                                        int64_t n, const DropoutLaunch& args) {
  using T = typename Elem<D>::T;
  using A = typename Elem<D>::A;
  const T* g = static_cast<const T*>(grad);
  const T* zv = static_cast<const T*>(z);
  T* out = static_cast<T*>(grad_x);
  const AlphaDropoutParams<A> q = params_for<A>(args);
  const SaturatedZ<A> saturated = saturated_z<A>(q, ElemRound<T, A>{});
  for_each_keep(n, args, q.threshold, [&](int64_t i, bool keep) {
    out[i] = T(selu_alpha_dropout_backward_elem(A(g[i]), A(zv[i]), keep, q, saturated));
  });
}

void dropout_keep_mask_loop(bool* out, int64_t n, const DropoutLaunch& args) {
  const uint32_t threshold = drop_threshold(args.p);
  for_each_keep(n, args, threshold, [&](int64_t i, bool keep) { out[i] = keep; });
}

}  // namespace

// The variant's table, kTable.
#include "loops_table.h"

}  // namespace selu_ext::cpu::SELU_EXT_ISA
