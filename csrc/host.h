// selu_ext host code shared by the CPU and CUDA backends: argument checks, output
// allocation, layout handling and dropout coefficients. A backend (cpu/selu_cpu.cpp,
// cuda/selu_cuda.cpp) supplies only the loops over dense buffers, so every op
// behaves the same on every device.
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

#include <atomic>
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

inline void check_p(double p, const char* op) {
  if (C10_LIKELY(p >= 0.0 && p <= 1.0)) return;
  // The shortest text that reads back as p, as Python's repr (%g would print
  // 1 + 2^-52 as "1").
  char text[32];
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(text, sizeof text, "%.*g", digits, p);
    if (std::strtod(text, nullptr) == p || std::isnan(p)) break;
  }
  SELU_EXT_CHECK(false, "selu_ext::%s: dropout probability has to be between 0 and 1, but got %s",
                 op, text);
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

// ---------------------------------------------------------------------------
// The ops, written once against a backend B that provides:
//   B::Guard(device)                     sets the current device for the scope
//   B::selu_loop(DType, x, y, n)         and the other loops of cpu/kernels.h (op_list.h)
//   B::rng_source(rng_state, input)      where the kernel reads (seed, offset)
//   B::fresh_output(tensor)              called on each output before it is written
//   B::kReusesGradBuffer                 whether a backward op may take an offered
//                                        gradient buffer (GradBufferOffer below)
namespace host {

// The buffer of an incoming gradient, offered by an autograd node's backward
// (autograd.cpp) as the output of the one backward op it calls, when the graph task
// holds the only reference to it: the same condition under which PyTorch's
// AccumulateGrad steals a gradient instead of copying it. Writing the result there
// instead of into a fresh tensor saves a cold output buffer (measured on the MLP of
// the training benchmark: the fused backward 125-147 us -> 77-95 us per 256 x 512
// layer). The offer is per thread and lasts for the node's call; a host function takes
// it only for the tensor it was offered, as its grad_output, when that tensor and
// the output's layout are contiguous (take_offered_grad).
// `offer` false: no offer (the scope is inert).
class GradBufferOffer {
 public:
  GradBufferOffer(const at::Tensor& grad, bool offer) : prev_(slot()) {
    if (offer) slot() = grad.unsafeGetTensorImpl();
  }
  ~GradBufferOffer() { slot() = prev_; }
  GradBufferOffer(const GradBufferOffer&) = delete;
  GradBufferOffer& operator=(const GradBufferOffer&) = delete;

  static bool offered(const at::Tensor& grad) {
    return slot() != nullptr && slot() == grad.unsafeGetTensorImpl();
  }

  // How many backward ops wrote into an offered gradient in this process, for the
  // tests (selu_ext._C._grad_buffers_taken): nothing else shows whether it happened.
  static int64_t taken() { return counter().load(std::memory_order_relaxed); }
  static void count_taken() { counter().fetch_add(1, std::memory_order_relaxed); }

 private:
  static std::atomic<int64_t>& counter() {
    static std::atomic<int64_t> n{0};
    return n;
  }
  static c10::TensorImpl*& slot() {
    static thread_local c10::TensorImpl* impl = nullptr;
    return impl;
  }
  c10::TensorImpl* prev_;
};

// grad_output itself where it was offered and can be the output for `like`: both
// contiguous (the callers have checked that they share sizes, dtype and device:
// check_same, or `like` is grad_output); else an undefined tensor.
template <typename B>
at::Tensor take_offered_grad(const at::Tensor& grad_output, const at::Tensor& like) {
  if (!B::kReusesGradBuffer || !GradBufferOffer::offered(grad_output) ||
      !grad_output.is_contiguous() || !like.is_contiguous()) {
    return {};
  }
  GradBufferOffer::count_taken();
  return grad_output;
}

// save_output only tells autograd what to keep (csrc/autograd.cpp); the kernel ignores it.
template <typename B>
at::Tensor selu(const at::Tensor& self, bool /*save_output*/ = false) {
  check_tensor(self, "selu", "self");
  typename B::Guard guard(self.device());
  at::Tensor out = at::empty_like(self);
  if (self.numel() == 0) return out;
  B::fresh_output(out);
  const at::Tensor src = in_layout_of(self, out);
  B::selu_loop(kernel_dtype(self.scalar_type()), src.const_data_ptr(), out.mutable_data_ptr(),
                  self.numel());
  return out;
}

template <typename B>
void selu_(at::Tensor& self) {
  check_tensor(self, "selu_", "self");
  check_inplace(self, "selu_");
  typename B::Guard guard(self.device());
  if (self.numel() == 0) return;
  if (self.is_non_overlapping_and_dense()) {
    B::selu_loop(kernel_dtype(self.scalar_type()), self.const_data_ptr(),
                    self.mutable_data_ptr(), self.numel());
  } else {
    self.copy_(selu<B>(self));
  }
}

// grad_output * selu'(x), from the forward's output (is_result) or its input x, as
// PyTorch's elu_backward(..., is_result, self_or_result).
template <typename B>
at::Tensor selu_backward(const at::Tensor& grad_output, const at::Tensor& self_or_result,
                         bool is_result) {
  const char* arg = is_result ? "result" : "self";
  check_tensor(grad_output, "selu_backward", "grad_output");
  check_tensor(self_or_result, "selu_backward", arg);
  check_same(grad_output, self_or_result, "selu_backward", "grad_output", arg);
  typename B::Guard guard(self_or_result.device());
  at::Tensor out = take_offered_grad<B>(grad_output, self_or_result);
  const bool fresh = !out.defined();
  if (fresh) out = at::empty_like(self_or_result);
  if (self_or_result.numel() == 0) return out;
  if (fresh) B::fresh_output(out);
  const at::Tensor v = in_layout_of(self_or_result, out);
  const at::Tensor g = in_layout_of(grad_output, out);
  B::selu_backward_loop(kernel_dtype(v.scalar_type()), g.const_data_ptr(), v.const_data_ptr(),
                   out.mutable_data_ptr(), v.numel(), is_result);
  return out;
}

// Dropout ops: run `launch(inputs..., out)` on contiguous buffers and return the
// result in empty_like(like)'s layout; into `offered` instead where defined (a
// take_offered_grad result, contiguous).
template <typename B, typename F>
at::Tensor run_contiguous(const at::Tensor& like, F launch, at::Tensor offered = {}) {
  if (offered.defined()) {
    if (like.numel() != 0) launch(offered);
    return offered;
  }
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

template <typename B>
DropoutLaunch dropout_launch(const at::Tensor& like, double p, const at::Tensor& rng_state,
                             const char* op) {
  check_p(p, op);
  check_rng_state(rng_state, op);
  return {p, kept_bound_for(p, like.scalar_type()), kept_bound_for(p, like.scalar_type(), true),
          B::rng_source(rng_state, like, op)};
}

template <typename B>
at::Tensor alpha_dropout(const at::Tensor& self, double p, const at::Tensor& rng_state) {
  check_tensor(self, "alpha_dropout", "self", /*dropout=*/true);
  check_rng_state(rng_state, "alpha_dropout");
  check_rng_device(rng_state, self, "alpha_dropout");
  typename B::Guard guard(self.device());
  const DropoutLaunch d = dropout_launch<B>(self, p, rng_state, "alpha_dropout");
  const at::Tensor x = self.contiguous();
  return run_contiguous<B>(self, [&](at::Tensor& out) {
    B::alpha_dropout_loop(kernel_dtype(self.scalar_type()), x.const_data_ptr(),
                             out.mutable_data_ptr(), self.numel(), d);
  });
}

template <typename B>
void alpha_dropout_(at::Tensor& self, double p, const at::Tensor& rng_state) {
  check_tensor(self, "alpha_dropout_", "self", /*dropout=*/true);
  check_inplace(self, "alpha_dropout_");
  check_rng_state(rng_state, "alpha_dropout_");
  check_rng_device(rng_state, self, "alpha_dropout_");
  typename B::Guard guard(self.device());
  const DropoutLaunch d = dropout_launch<B>(self, p, rng_state, "alpha_dropout_");
  if (self.numel() == 0) return;
  if (self.is_contiguous()) {
    B::alpha_dropout_loop(kernel_dtype(self.scalar_type()), self.const_data_ptr(),
                             self.mutable_data_ptr(), self.numel(), d);
  } else {
    self.copy_(alpha_dropout<B>(self, p, rng_state));
  }
}

template <typename B>
at::Tensor alpha_dropout_backward(const at::Tensor& grad_output, double p,
                                  const at::Tensor& rng_state) {
  check_tensor(grad_output, "alpha_dropout_backward", "grad_output");
  check_rng_state(rng_state, "alpha_dropout_backward");
  check_rng_device(rng_state, grad_output, "alpha_dropout_backward");
  typename B::Guard guard(grad_output.device());
  const DropoutLaunch d = dropout_launch<B>(grad_output, p, rng_state, "alpha_dropout_backward");
  const at::Tensor g = grad_output.contiguous();
  return run_contiguous<B>(
      grad_output,
      [&](at::Tensor& out) {
        B::alpha_dropout_backward_loop(kernel_dtype(g.scalar_type()), g.const_data_ptr(),
                                       out.mutable_data_ptr(), g.numel(), d);
      },
      take_offered_grad<B>(grad_output, grad_output));
}

template <typename B>
at::Tensor selu_alpha_dropout(const at::Tensor& self, double p, const at::Tensor& rng_state) {
  check_tensor(self, "selu_alpha_dropout", "self");
  check_rng_state(rng_state, "selu_alpha_dropout");
  check_rng_device(rng_state, self, "selu_alpha_dropout");
  typename B::Guard guard(self.device());
  const DropoutLaunch d = dropout_launch<B>(self, p, rng_state, "selu_alpha_dropout");
  const at::Tensor x = self.contiguous();
  return run_contiguous<B>(self, [&](at::Tensor& out) {
    B::selu_alpha_dropout_loop(kernel_dtype(self.scalar_type()), x.const_data_ptr(),
                                  out.mutable_data_ptr(), self.numel(), d);
  });
}

template <typename B>
at::Tensor selu_alpha_dropout_backward(const at::Tensor& grad_output, const at::Tensor& result,
                                       double p, const at::Tensor& rng_state) {
  const char* op = "selu_alpha_dropout_backward";
  check_tensor(grad_output, op, "grad_output");
  check_tensor(result, op, "result");
  check_same(grad_output, result, op, "grad_output", "result");
  check_rng_state(rng_state, op);
  check_rng_device(rng_state, result, op);
  typename B::Guard guard(result.device());
  const DropoutLaunch d = dropout_launch<B>(result, p, rng_state, op);
  const at::Tensor g = grad_output.contiguous();
  const at::Tensor z = result.contiguous();
  return run_contiguous<B>(
      result,
      [&](at::Tensor& out) {
        B::selu_alpha_dropout_backward_loop(kernel_dtype(z.scalar_type()), g.const_data_ptr(),
                                            z.const_data_ptr(), out.mutable_data_ptr(),
                                            z.numel(), d);
      },
      take_offered_grad<B>(grad_output, result));
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
  const DropoutLaunch d{p, 0.0, 0.0, B::rng_source(rng_state, out, "dropout_keep_mask")};
  B::dropout_keep_mask_loop(out.mutable_data_ptr<bool>(), numel, d);
  return out;
}

}  // namespace host
}  // namespace selu_ext
