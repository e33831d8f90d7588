// selu_ext host code shared by the CPU and CUDA backends: argument checks, output
// allocation, layout handling and dropout coefficients, then the call of the
// backend's loop over dense buffers. A backend (cpu/selu_cpu.cpp, cuda/selu_cuda.cpp)
// supplies only its table of loops and how it runs them, so every op behaves the same
// on every device.
//
// Layout rules (the fake kernels in selu_ext/ops.py mirror them exactly):
// * selu / selu_ / selu_backward are element-wise and position-free: a dense
//   tensor in any memory format is processed over its storage, without a copy, and
//   the output keeps the input's strides (empty_like). Other inputs are copied once
//   into the layout empty_like chose.
// * The dropout ops' masks depend on each element's row-major index, so they run on
//   contiguous data; any other layout costs a copy in (and one out), and the output
//   still has the strides empty_like gives.
#pragma once

#include <ATen/MemoryOverlap.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/core/ScalarType.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "check.h"
#include "kernel_args.h"
#include "selu.h"

namespace selu_ext {

inline const char* dtype_name(at::ScalarType t) { return c10::toString(t); }

// The dtypes selu_ext has kernels for (selu_ext.ops.FLOAT_DTYPES in Python).
inline bool is_kernel_dtype(at::ScalarType s) {
  return s == at::kFloat || s == at::kDouble || s == at::kHalf || s == at::kBFloat16;
}

// dropout: the op is one of torch's dropouts, which cast the standard integer and bool
// dtypes to float and fail to cast the result back (RuntimeError); every other dtype
// without a kernel is NotImplementedError, as in torch.
inline void check_tensor(const at::Tensor& t, const char* op, const char* arg,
                         bool dropout = false) {
  SELU_EXT_CHECK(t.defined(), "selu_ext::%s: '%s' is an undefined tensor", op, arg);
  SELU_EXT_CHECK(t.layout() == at::kStrided,
                 "selu_ext::%s: '%s' has layout %s; only dense (strided) tensors are "
                 "supported. Call .to_dense() first.",
                 op, arg, layout_name(t.layout()));
  SELU_EXT_CHECK(!t.is_quantized(),
                 "selu_ext::%s: '%s' is quantized; only float16, bfloat16, float32 and float64 "
                 "tensors are supported. Call .dequantize() first.",
                 op, arg);
  const auto s = t.scalar_type();
  if (C10_LIKELY(is_kernel_dtype(s))) return;
#define SELU_EXT_DTYPE_MESSAGE                                                           \
  "selu_ext::%s: '%s' has dtype %s; expected a floating-point tensor (float16, bfloat16, " \
  "float32 or float64)",                                                                   \
      op, arg, dtype_name(s)
  SELU_EXT_CHECK(!dropout || !c10::isIntegralType(s, /*includeBool=*/true) ||
                     c10::isBarebonesUnsignedType(s),
                 SELU_EXT_DTYPE_MESSAGE);
  SELU_EXT_CHECK_NOT_IMPLEMENTED(false, SELU_EXT_DTYPE_MESSAGE);
#undef SELU_EXT_DTYPE_MESSAGE
}

inline DType kernel_dtype(at::ScalarType s) {
  switch (s) {
    case at::kHalf:
      return DType::kHalf;
    case at::kBFloat16:
      return DType::kBFloat16;
    case at::kFloat:
      return DType::kFloat;
    default:
      return DType::kDouble;
  }
}

inline void check_same(const at::Tensor& a, const at::Tensor& b, const char* op,
                       const char* an, const char* bn) {
  SELU_EXT_CHECK(a.device() == b.device(), "selu_ext::%s: '%s' is on %s but '%s' is on %s", op,
                 an, a.device().str().c_str(), bn, b.device().str().c_str());
  SELU_EXT_CHECK(a.scalar_type() == b.scalar_type(),
                 "selu_ext::%s: '%s' has dtype %s but '%s' has dtype %s", op, an,
                 dtype_name(a.scalar_type()), bn, dtype_name(b.scalar_type()));
  SELU_EXT_CHECK(a.sizes() == b.sizes(), "selu_ext::%s: '%s' has shape %s but '%s' has shape %s",
                 op, an, ShapeText(a.sizes()).c_str(), bn, ShapeText(b.sizes()).c_str());
}

// The dropout probability rule of every C++ entry point (the operators, and
// python_module.cpp's parse_p): 0 <= p <= 1, NaN refused, with PyTorch's RuntimeError
// text; `op` names the operator ("selu_ext::<op>: " before it), nullptr for the
// Python entry points, whose text is torch.nn.functional's own.
inline constexpr const char* kDropoutPRangeMessage =
    "dropout probability has to be between 0 and 1, but got ";
inline void check_p(double p, const char* op) {
  if (C10_LIKELY(p >= 0.0 && p <= 1.0)) return;
  // The shortest text that reads back as p, as Python's repr (%g would print
  // 1 + 2^-52 as "1").
  char text[32];
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(text, sizeof text, "%.*g", digits, p);
    if (std::strtod(text, nullptr) == p || std::isnan(p)) break;
  }
  SELU_EXT_CHECK(false, "%s%s%s%s%s", op ? "selu_ext::" : "", op ? op : "", op ? ": " : "",
                 kDropoutPRangeMessage, text);
}

inline void check_inplace(const at::Tensor& self, const char* op) {
  SELU_EXT_CHECK(at::has_internal_overlap(self) != at::MemOverlap::Yes,
                 "selu_ext::%s: unsupported operation: more than one element of the written-to "
                 "tensor refers to a single memory location. Please clone() the tensor before "
                 "performing the operation.",
                 op);
}

// True when both are dense with the same element order in memory (strides of
// size-1 dimensions do not matter), so element i of one storage is element i of the
// other.
inline bool same_dense_layout(const at::Tensor& a, const at::Tensor& b) {
  if (!a.is_non_overlapping_and_dense() || !b.is_non_overlapping_and_dense()) return false;
  if (a.sizes() != b.sizes()) return false;
  for (int64_t d = 0; d < a.dim(); ++d) {
    if (a.size(d) > 1 && a.stride(d) != b.stride(d)) return false;
  }
  return true;
}

// `t` with exactly `like`'s layout: itself when it already has it, else a copy.
inline at::Tensor in_layout_of(const at::Tensor& t, const at::Tensor& like) {
  if (same_dense_layout(t, like)) return t;
  at::Tensor r = at::empty_like(like);
  r.copy_(t);
  return r;
}

// A dropout coefficient as a kernel stores it in `dtype` (rounded to the compute
// type, then to `dtype`), or with `up` the next value of `dtype` above that (v >= 0
// only), returned exactly in double.
inline double stored_as(double v, at::ScalarType dtype, bool up = false) {
  switch (dtype) {
    case at::kHalf: {
      c10::Half h(static_cast<float>(v));
      if (up) h.x = static_cast<uint16_t>(h.x + 1);
      return static_cast<double>(static_cast<float>(h));
    }
    case at::kBFloat16: {
      c10::BFloat16 h(static_cast<float>(v));
      if (up) h.x = static_cast<uint16_t>(h.x + 1);
      return static_cast<double>(static_cast<float>(h));
    }
    case at::kFloat: {
      const float f = static_cast<float>(v);
      return static_cast<double>(up ? std::nextafter(f, INFINITY) : f);
    }
    default:
      return up ? std::nextafter(v, INFINITY) : v;
  }
}

// The kept-unit offset b of dropout probability p rounded to `dtype` (`above`:
// false), or the next value of `dtype` above that (`above`: true). The fused kernels
// store kept units of positive selu(x) above the bound; see selu.h. With p == 1 every
// unit is x * 0 and the two coincide.
inline double kept_bound_for(double p, at::ScalarType dtype, bool above = false) {
  return stored_as(alpha_dropout_coeffs(p).b, dtype, above && p < 1.0);  // b >= 0
}

// Before any device guard: a CPU input with a CUDA rng_state reaches the CUDA
// kernel (the dispatcher follows the highest-priority device among the arguments).
inline void check_rng_device(const at::Tensor& rng, const at::Tensor& input, const char* op) {
  SELU_EXT_CHECK(rng.device().is_cpu() || rng.device() == input.device(),
                 "selu_ext::%s: 'rng_state' must be on the CPU or on the input's device (%s), "
                 "but it is on %s",
                 op, input.device().str().c_str(), rng.device().str().c_str());
}

inline void check_rng_state(const at::Tensor& rng, const char* op) {
  SELU_EXT_CHECK(rng.defined() && rng.layout() == at::kStrided &&
                     rng.scalar_type() == at::kLong && rng.numel() == 2 && rng.is_contiguous(),
                 "selu_ext::%s: 'rng_state' must be a contiguous int64 tensor of 2 elements "
                 "(seed, offset), as returned by torch.ops.selu_ext.dropout_rng_state",
                 op);
}

// Each backward op has a .grad_input form (ops.cpp) that writes into a given buffer, as
// ATen's elu_backward.grad_input: autograd.cpp's nodes pass the incoming gradient
// itself when nothing else can see it. Its checks: grad_input has grad_output's
// shape, dtype and device and a layout the loops can write (dense; the dropout ops:
// contiguous). It may be grad_output itself: every loop reads an element before it
// writes it, at the same index.
inline void check_grad_input(const at::Tensor& grad_input, const at::Tensor& grad_output,
                             const char* op, bool contiguous) {
  check_tensor(grad_input, op, "grad_input");
  check_same(grad_output, grad_input, op, "grad_output", "grad_input");
  SELU_EXT_CHECK(contiguous ? grad_input.is_contiguous() : grad_input.is_non_overlapping_and_dense(),
                 "selu_ext::%s: 'grad_input' must be %s", op,
                 contiguous ? "contiguous" : "dense and non-overlapping");
}

// Where the kernels read (seed, offset): a CPU rng_state (every CPU call, and a
// user-chosen seed on CUDA) is read here; one on the CUDA device is read by the
// kernel, which keeps CUDA graph replays fresh (check_rng_device allows no other).
inline RngSource rng_source(const at::Tensor& rng_state) {
  RngSource r;
  if (rng_state.device().is_cpu()) {
    const int64_t* v = rng_state.const_data_ptr<int64_t>();
    r.seed = static_cast<uint64_t>(v[0]);
    r.offset = static_cast<uint64_t>(v[1]);
  } else {
    r.device_ptr = rng_state.const_data_ptr<int64_t>();
  }
  return r;
}

// Byte pointers to a dense buffer's elements, for the loops' chunks.
inline const char* bytes(const at::Tensor& t) { return static_cast<const char*>(t.const_data_ptr()); }
inline char* mutable_bytes(const at::Tensor& t) { return static_cast<char*>(t.mutable_data_ptr()); }

// ---------------------------------------------------------------------------
// The ops, written once against a backend B that provides:
//   B::Guard(device)        sets the current device for the scope
//   B::loops(dtype)         its Loops for a dtype (kernel_args.h): the backend's one
//                           dtype dispatch
//   B::run(n, f)            f(begin, m) over chunks of [0, n) (CPU: on at::parallel_for's
//                           threads; CUDA: once, f(0, n), then the launch check)
//   B::run_blocks(n, f)     the same for dropout: chunks start at 256-element blocks
//   B::fresh_output(out)    called on each output before it is written
namespace host {

// save_output only tells autograd what to keep (csrc/autograd.cpp); the kernel ignores it.
template <typename B>
at::Tensor selu(const at::Tensor& self, bool /*save_output*/ = false) {
  check_tensor(self, "selu", "self");
  typename B::Guard guard(self.device());
  at::Tensor out = at::empty_like(self);
  if (self.numel() == 0) return out;
  B::fresh_output(out);
  const at::Tensor src = in_layout_of(self, out);
  const Loops& k = B::loops(self.scalar_type());
  const int64_t es = self.element_size();
  const char* x = bytes(src);
  char* y = mutable_bytes(out);
  B::run(self.numel(), [&](int64_t b, int64_t m) { k.selu_loop(x + b * es, y + b * es, m); });
  return out;
}

template <typename B>
void selu_(at::Tensor& self) {
  check_tensor(self, "selu_", "self");
  check_inplace(self, "selu_");
  typename B::Guard guard(self.device());
  if (self.numel() == 0) return;
  if (self.is_non_overlapping_and_dense()) {
    // Each loop reads an element before it writes it, at the same index.
    const Loops& k = B::loops(self.scalar_type());
    const int64_t es = self.element_size();
    char* y = mutable_bytes(self);
    B::run(self.numel(), [&](int64_t b, int64_t m) { k.selu_loop(y + b * es, y + b * es, m); });
  } else {
    self.copy_(selu<B>(self));
  }
}

inline void check_selu_backward(const at::Tensor& grad_output, const at::Tensor& self_or_result,
                                bool is_result) {
  const char* arg = is_result ? "result" : "self";
  check_tensor(grad_output, "selu_backward", "grad_output");
  check_tensor(self_or_result, "selu_backward", arg);
  check_same(grad_output, self_or_result, "selu_backward", "grad_output", arg);
}

// grad_output * selu'(x), from the forward's output (is_result) or its input x, into
// the dense `out`.
template <typename B>
void selu_backward_into(const at::Tensor& grad_output, const at::Tensor& self_or_result,
                        bool is_result, const at::Tensor& out) {
  if (out.numel() == 0) return;
  const at::Tensor v = in_layout_of(self_or_result, out);
  const at::Tensor g = in_layout_of(grad_output, out);
  const Loops& k = B::loops(v.scalar_type());
  const int64_t es = v.element_size();
  const char *gp = bytes(g), *vp = bytes(v);
  char* o = mutable_bytes(out);
  B::run(v.numel(), [&](int64_t b, int64_t m) {
    k.selu_backward_loop(gp + b * es, vp + b * es, o + b * es, m, is_result);
  });
}

// As PyTorch's elu_backward(..., is_result, self_or_result).
template <typename B>
at::Tensor selu_backward(const at::Tensor& grad_output, const at::Tensor& self_or_result,
                         bool is_result) {
  check_selu_backward(grad_output, self_or_result, is_result);
  typename B::Guard guard(self_or_result.device());
  at::Tensor out = at::empty_like(self_or_result);
  if (out.numel() != 0) B::fresh_output(out);
  selu_backward_into<B>(grad_output, self_or_result, is_result, out);
  return out;
}

template <typename B>
void selu_backward_grad_input(const at::Tensor& grad_output, const at::Tensor& self_or_result,
                              bool is_result, at::Tensor& grad_input) {
  check_selu_backward(grad_output, self_or_result, is_result);
  check_grad_input(grad_input, grad_output, "selu_backward", /*contiguous=*/false);
  typename B::Guard guard(self_or_result.device());
  selu_backward_into<B>(grad_output, self_or_result, is_result, grad_input);
}

// Dropout ops: run `launch(out)` into a contiguous buffer and return the result in
// empty_like(like)'s layout.
template <typename B, typename F>
at::Tensor run_contiguous(const at::Tensor& like, F launch) {
  at::Tensor out = at::empty_like(like);
  if (like.numel() == 0) return out;
  if (out.is_contiguous()) {
    B::fresh_output(out);
    launch(out);
  } else {
    at::Tensor tmp = at::empty(like.sizes(), like.options());
    launch(tmp);
    out.copy_(tmp);
  }
  return out;
}

// The checks of a dropout op's rng_state and p, in that order, and its launch
// arguments; `like` is the tensor whose device and dtype the op runs in. Before the
// device guard: nothing here touches the device.
inline DropoutLaunch dropout_launch(const at::Tensor& like, double p, const at::Tensor& rng_state,
                                    const char* op) {
  check_rng_state(rng_state, op);
  check_rng_device(rng_state, like, op);
  check_p(p, op);
  return {p, kept_bound_for(p, like.scalar_type()), kept_bound_for(p, like.scalar_type(), true),
          rng_source(rng_state)};
}

// One dropout loop over n elements: `loop(chunk's inputs..., chunk's output, m, d)` for
// each of B's chunks, the buffers' elements from the chunk's first on.
template <typename B, typename Loop, typename... In>
void run_dropout(Loop loop, int64_t n, int64_t es, const DropoutLaunch& d, char* out,
                 const In*... in) {
  B::run_blocks(n, [&](int64_t b, int64_t m) {
    loop(static_cast<const void*>(in + b * es)..., out + b * es, m, d.from(b));
  });
}

template <typename B>
at::Tensor alpha_dropout(const at::Tensor& self, double p, const at::Tensor& rng_state) {
  check_tensor(self, "alpha_dropout", "self", /*dropout=*/true);
  const DropoutLaunch d = dropout_launch(self, p, rng_state, "alpha_dropout");
  typename B::Guard guard(self.device());
  const at::Tensor x = self.contiguous();
  const Loops& k = B::loops(self.scalar_type());
  return run_contiguous<B>(self, [&](at::Tensor& out) {
    run_dropout<B>(k.alpha_dropout_loop, x.numel(), x.element_size(), d, mutable_bytes(out),
                   bytes(x));
  });
}

template <typename B>
void alpha_dropout_(at::Tensor& self, double p, const at::Tensor& rng_state) {
  check_tensor(self, "alpha_dropout_", "self", /*dropout=*/true);
  check_inplace(self, "alpha_dropout_");
  const DropoutLaunch d = dropout_launch(self, p, rng_state, "alpha_dropout_");
  typename B::Guard guard(self.device());
  if (self.numel() == 0) return;
  if (self.is_contiguous()) {
    run_dropout<B>(B::loops(self.scalar_type()).alpha_dropout_loop, self.numel(),
                   self.element_size(), d, mutable_bytes(self), bytes(self));
  } else {
    self.copy_(alpha_dropout<B>(self, p, rng_state));
  }
}

inline DropoutLaunch check_alpha_dropout_backward(const at::Tensor& grad_output, double p,
                                                  const at::Tensor& rng_state) {
  check_tensor(grad_output, "alpha_dropout_backward", "grad_output");
  return dropout_launch(grad_output, p, rng_state, "alpha_dropout_backward");
}

// Into the contiguous `out`.
template <typename B>
void alpha_dropout_backward_into(const at::Tensor& grad_output, const DropoutLaunch& d,
                                 const at::Tensor& out) {
  if (out.numel() == 0) return;
  const at::Tensor g = grad_output.contiguous();
  run_dropout<B>(B::loops(g.scalar_type()).alpha_dropout_backward_loop, g.numel(),
                 g.element_size(), d, mutable_bytes(out), bytes(g));
}

template <typename B>
at::Tensor alpha_dropout_backward(const at::Tensor& grad_output, double p,
                                  const at::Tensor& rng_state) {
  const DropoutLaunch d = check_alpha_dropout_backward(grad_output, p, rng_state);
  typename B::Guard guard(grad_output.device());
  return run_contiguous<B>(grad_output, [&](at::Tensor& out) {
    alpha_dropout_backward_into<B>(grad_output, d, out);
  });
}

template <typename B>
void alpha_dropout_backward_grad_input(const at::Tensor& grad_output, double p,
                                       const at::Tensor& rng_state, at::Tensor& grad_input) {
  const DropoutLaunch d = check_alpha_dropout_backward(grad_output, p, rng_state);
  typename B::Guard guard(grad_output.device());
  check_grad_input(grad_input, grad_output, "alpha_dropout_backward", /*contiguous=*/true);
  alpha_dropout_backward_into<B>(grad_output, d, grad_input);
}

template <typename B>
at::Tensor selu_alpha_dropout(const at::Tensor& self, double p, const at::Tensor& rng_state) {
  check_tensor(self, "selu_alpha_dropout", "self");
  const DropoutLaunch d = dropout_launch(self, p, rng_state, "selu_alpha_dropout");
  typename B::Guard guard(self.device());
  const at::Tensor x = self.contiguous();
  const Loops& k = B::loops(self.scalar_type());
  return run_contiguous<B>(self, [&](at::Tensor& out) {
    run_dropout<B>(k.selu_alpha_dropout_loop, x.numel(), x.element_size(), d, mutable_bytes(out),
                   bytes(x));
  });
}

inline DropoutLaunch check_selu_alpha_dropout_backward(const at::Tensor& grad_output,
                                                       const at::Tensor& result, double p,
                                                       const at::Tensor& rng_state) {
  const char* op = "selu_alpha_dropout_backward";
  check_tensor(grad_output, op, "grad_output");
  check_tensor(result, op, "result");
  check_same(grad_output, result, op, "grad_output", "result");
  return dropout_launch(result, p, rng_state, op);
}

// Into the contiguous `out`.
template <typename B>
void selu_alpha_dropout_backward_into(const at::Tensor& grad_output, const at::Tensor& result,
                                      const DropoutLaunch& d, const at::Tensor& out) {
  if (out.numel() == 0) return;
  const at::Tensor g = grad_output.contiguous();
  const at::Tensor z = result.contiguous();
  run_dropout<B>(B::loops(z.scalar_type()).selu_alpha_dropout_backward_loop, z.numel(),
                 z.element_size(), d, mutable_bytes(out), bytes(g), bytes(z));
}

template <typename B>
at::Tensor selu_alpha_dropout_backward(const at::Tensor& grad_output, const at::Tensor& result,
                                       double p, const at::Tensor& rng_state) {
  const DropoutLaunch d = check_selu_alpha_dropout_backward(grad_output, result, p, rng_state);
  typename B::Guard guard(result.device());
  return run_contiguous<B>(result, [&](at::Tensor& out) {
    selu_alpha_dropout_backward_into<B>(grad_output, result, d, out);
  });
}

template <typename B>
void selu_alpha_dropout_backward_grad_input(const at::Tensor& grad_output,
                                            const at::Tensor& result, double p,
                                            const at::Tensor& rng_state, at::Tensor& grad_input) {
  const DropoutLaunch d = check_selu_alpha_dropout_backward(grad_output, result, p, rng_state);
  typename B::Guard guard(result.device());
  check_grad_input(grad_input, grad_output, "selu_alpha_dropout_backward", /*contiguous=*/true);
  selu_alpha_dropout_backward_into<B>(grad_output, result, d, grad_input);
}

template <typename B>
at::Tensor dropout_keep_mask(const at::Tensor& rng_state, int64_t numel, double p) {
  check_rng_state(rng_state, "dropout_keep_mask");
  check_p(p, "dropout_keep_mask");
  SELU_EXT_CHECK(numel >= 0, "selu_ext::dropout_keep_mask: numel must be non-negative, got %lld",
                 static_cast<long long>(numel));
  typename B::Guard guard(rng_state.device());
  at::Tensor out = at::empty({numel}, rng_state.options().dtype(at::kBool));
  if (numel == 0) return out;
  const DropoutLaunch d{p, 0.0, 0.0, rng_source(rng_state)};
  // The mask's loop is the same in every dtype's row.
  bool* o = out.mutable_data_ptr<bool>();
  const Loops& k = B::loops(at::kFloat);
  B::run_blocks(numel, [&](int64_t b, int64_t m) { k.dropout_keep_mask_loop(o + b, m, d.from(b)); });
  return out;
}

// The registration of B's kernels: TORCH_LIBRARY_IMPL(selu_ext, CPU or CUDA, m) in
// cpu/selu_cpu.cpp and cuda/selu_cuda.cpp calls it.
template <typename B>
void register_kernels(torch::Library& m) {
  m.impl("selu", &selu<B>);
  m.impl("selu_", &selu_<B>);
  m.impl("selu_backward", &selu_backward<B>);
  m.impl("selu_backward.grad_input", &selu_backward_grad_input<B>);
  m.impl("alpha_dropout", &alpha_dropout<B>);
  m.impl("alpha_dropout_", &alpha_dropout_<B>);
  m.impl("alpha_dropout_backward", &alpha_dropout_backward<B>);
  m.impl("alpha_dropout_backward.grad_input", &alpha_dropout_backward_grad_input<B>);
  m.impl("selu_alpha_dropout", &selu_alpha_dropout<B>);
  m.impl("selu_alpha_dropout_backward", &selu_alpha_dropout_backward<B>);
  m.impl("selu_alpha_dropout_backward.grad_input", &selu_alpha_dropout_backward_grad_input<B>);
  m.impl("dropout_keep_mask", &dropout_keep_mask<B>);
}

}  // namespace host
}  // namespace selu_ext
