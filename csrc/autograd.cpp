// selu_ext autograd: C++ autograd kernels for every differentiable op, so that
// torch.ops.selu_ext.* and the Python API differentiate without a Python frame in
// the backward pass (small tensors are dominated by per-call overhead).
//
// What each forward keeps for backward:
//   selu, selu_               the output only (the next Linear keeps it anyway)
//   alpha_dropout(_)          the 16-byte rng_state only: backward regenerates the mask
//   selu_alpha_dropout        the output and rng_state
// Every backward op is differentiable again (double backward).
//
// The in-place ops also get an ADInplaceOrView kernel, so their version counter is
// bumped even where autograd is skipped (torch.inference_mode on a normal tensor).
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/zeros_like.h>
#include <ATen/ops/scalar_tensor.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <initializer_list>

#include "host.h"
#include "selu.h"

// Each class is named for the graph node it creates (tensor.grad_fn), as PyTorch
// names its own: SeluBackward is the backward of selu.
namespace selu_ext {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

template <typename Sig>
c10::TypedOperatorHandle<Sig> find_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Sig>();
}

#define SELU_EXT_OP(fn, name, sig)            \
  const c10::TypedOperatorHandle<sig>& fn() { \
    static const auto h = find_op<sig>(name); \
    return h;                                 \
  }

using UnarySig = at::Tensor(const at::Tensor&);
using UnaryInplaceSig = void(at::Tensor&);
using BinarySig = at::Tensor(const at::Tensor&, const at::Tensor&);
using DropoutSig = at::Tensor(const at::Tensor&, double, const at::Tensor&);
using DropoutInplaceSig = void(at::Tensor&, double, const at::Tensor&);
using FusedBackwardSig = at::Tensor(const at::Tensor&, const at::Tensor&, double, const at::Tensor&);
using KeepMaskSig = at::Tensor(const at::Tensor&, c10::SymInt, double);

SELU_EXT_OP(selu_op, "selu_ext::selu", UnarySig)
SELU_EXT_OP(selu_inplace_op, "selu_ext::selu_", UnaryInplaceSig)
SELU_EXT_OP(selu_backward_op, "selu_ext::selu_backward", BinarySig)
SELU_EXT_OP(alpha_dropout_op, "selu_ext::alpha_dropout", DropoutSig)
SELU_EXT_OP(alpha_dropout_inplace_op, "selu_ext::alpha_dropout_", DropoutInplaceSig)
SELU_EXT_OP(alpha_dropout_backward_op, "selu_ext::alpha_dropout_backward", DropoutSig)
SELU_EXT_OP(selu_alpha_dropout_op, "selu_ext::selu_alpha_dropout", DropoutSig)
SELU_EXT_OP(selu_alpha_dropout_backward_op, "selu_ext::selu_alpha_dropout_backward",
            FusedBackwardSig)
SELU_EXT_OP(keep_mask_op, "selu_ext::dropout_keep_mask", KeepMaskSig)
#undef SELU_EXT_OP

// Runs the op's kernel under this autograd kernel (skipping ADInplaceOrView too:
// torch::autograd::Function bumps the version of dirty inputs itself). Every
// forward calls its kernel before touching ctx: torch 2.11 crashed (segfault) when
// a kernel's error unwound through a forward that had already saved tensors.
struct BelowAutograd {
  at::AutoDispatchBelowADInplaceOrView guard;
};

// A first-order backward calls its backward op through that op's own autograd
// Function only when a graph is being built (create_graph=True, double backward);
// otherwise it calls the kernel directly and skips building a node nobody uses.
template <typename Fn, typename Op, typename... Args>
at::Tensor call_backward(const Op& op, Args&&... args) {
  if (at::GradMode::is_enabled()) return Fn::apply(std::forward<Args>(args)...);
  BelowAutograd below;
  return op.call(std::forward<Args>(args)...);
}

// ---------------------------------------------------------------------------
// selu

class SeluBackwardBackward : public torch::autograd::Function<SeluBackwardBackward> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad, const at::Tensor& result) {
    at::Tensor out;
    {
      BelowAutograd below;
      out = selu_backward_op().call(grad, result);
    }
    ctx->save_for_backward({grad, result});
    return out;
  }

  // grad_x = grad * s(y), s(y) = scale (y > 0) or y + scale*alpha (y <= 0), so
  // d/dgrad = s(y) and d/dy = grad * [y < 0]: at y == 0 (x == 0) the second
  // derivative is 0, as PyTorch's elu_double_backward gives ((x < 0) there).
  static variable_list backward(AutogradContext* ctx, variable_list gg) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& grad = saved[0];
    const at::Tensor& y = saved[1];
    at::Tensor d_grad, d_y;
    if (!gg[0].defined()) return {d_grad, d_y};
    if (ctx->needs_input_grad(0)) d_grad = SeluBackwardBackward::apply(gg[0], y);
    if (ctx->needs_input_grad(1)) d_y = gg[0].mul(grad).mul(y.lt(0).to(y.scalar_type()));
    return {d_grad, d_y};
  }
};

class SeluBackward : public torch::autograd::Function<SeluBackward> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& self) {
    at::Tensor out;
    {
      BelowAutograd below;
      out = selu_op().call(self);
    }
    ctx->save_for_backward({out});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    return {call_backward<SeluBackwardBackward>(selu_backward_op(), grads[0], saved[0])};
  }
};

class SeluInplaceBackward : public torch::autograd::Function<SeluInplaceBackward> {
 public:
  static at::Tensor forward(AutogradContext* ctx, at::Tensor self) {
    {
      BelowAutograd below;
      selu_inplace_op().call(self);
    }
    ctx->mark_dirty({self});
    ctx->save_for_backward({self});
    return self;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    return {call_backward<SeluBackwardBackward>(selu_backward_op(), grads[0], saved[0])};
  }
};

// Nothing to record (grad mode off, or no input requires grad): run the kernel
// directly, without building a graph node (a measurable cost per call for small
// tensors). The in-place ops still pass through ADInplaceOrView, which bumps their
// version counter.
// A dual tensor (forward-mode AD) also takes the Function path, whose error says
// that forward mode is not supported, instead of silently losing its tangent.
bool records(std::initializer_list<const at::Tensor*> inputs) {
  for (const at::Tensor* t : inputs) {
    if (t->_fw_grad(/*level=*/0).defined()) return true;
  }
  if (!at::GradMode::is_enabled()) return false;
  for (const at::Tensor* t : inputs) {
    if (t->requires_grad()) return true;
  }
  return false;
}

at::Tensor selu_autograd(const at::Tensor& self) {
  if (!records({&self})) {
    BelowAutograd below;
    return selu_op().call(self);
  }
  return SeluBackward::apply(self);
}

void selu_inplace_autograd(at::Tensor& self) {
  if (!records({&self})) {
    at::AutoDispatchBelowAutograd below;
    selu_inplace_op().call(self);
    return;
  }
  SeluInplaceBackward::apply(self);
}

at::Tensor selu_backward_autograd(const at::Tensor& grad, const at::Tensor& result) {
  if (!records({&grad, &result})) {
    BelowAutograd below;
    return selu_backward_op().call(grad, result);
  }
  return SeluBackwardBackward::apply(grad, result);
}

// ---------------------------------------------------------------------------
// alpha_dropout: linear in its input, with a mask that backward regenerates.

class AlphaDropoutBackwardBackward : public torch::autograd::Function<AlphaDropoutBackwardBackward> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad, double p,
                            const at::Tensor& rng_state) {
    at::Tensor out;
    {
      BelowAutograd below;
      out = alpha_dropout_backward_op().call(grad, p, rng_state);
    }
    ctx->saved_data["p"] = p;
    ctx->save_for_backward({rng_state});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list gg) {
    const double p = ctx->saved_data["p"].toDouble();
    const auto rng = ctx->get_saved_variables()[0];
    at::Tensor d_grad;
    if (gg[0].defined() && ctx->needs_input_grad(0)) {
      d_grad = AlphaDropoutBackwardBackward::apply(gg[0], p, rng);
    }
    return {d_grad, at::Tensor(), at::Tensor()};
  }
};

class AlphaDropoutBackward : public torch::autograd::Function<AlphaDropoutBackward> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& self, double p,
                            const at::Tensor& rng_state) {
    at::Tensor out;
    {
      BelowAutograd below;
      out = alpha_dropout_op().call(self, p, rng_state);
    }
    ctx->saved_data["p"] = p;
    ctx->save_for_backward({rng_state});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const double p = ctx->saved_data["p"].toDouble();
    const auto rng = ctx->get_saved_variables()[0];
    return {call_backward<AlphaDropoutBackwardBackward>(alpha_dropout_backward_op(), grads[0], p, rng),
            at::Tensor(), at::Tensor()};
  }
};

class AlphaDropoutInplaceBackward : public torch::autograd::Function<AlphaDropoutInplaceBackward> {
 public:
  static at::Tensor forward(AutogradContext* ctx, at::Tensor self, double p,
                            const at::Tensor& rng_state) {
    {
      BelowAutograd below;
      alpha_dropout_inplace_op().call(self, p, rng_state);
    }
    ctx->saved_data["p"] = p;
    ctx->save_for_backward({rng_state});
    ctx->mark_dirty({self});
    return self;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return AlphaDropoutBackward::backward(ctx, std::move(grads));
  }
};

at::Tensor alpha_dropout_autograd(const at::Tensor& self, double p, const at::Tensor& rng) {
  if (!records({&self})) {
    BelowAutograd below;
    return alpha_dropout_op().call(self, p, rng);
  }
  return AlphaDropoutBackward::apply(self, p, rng);
}

void alpha_dropout_inplace_autograd(at::Tensor& self, double p, const at::Tensor& rng) {
  if (!records({&self})) {
    at::AutoDispatchBelowAutograd below;
    alpha_dropout_inplace_op().call(self, p, rng);
    return;
  }
  AlphaDropoutInplaceBackward::apply(self, p, rng);
}

at::Tensor alpha_dropout_backward_autograd(const at::Tensor& grad, double p,
                                           const at::Tensor& rng) {
  if (!records({&grad})) {
    BelowAutograd below;
    return alpha_dropout_backward_op().call(grad, p, rng);
  }
  return AlphaDropoutBackwardBackward::apply(grad, p, rng);
}

// ---------------------------------------------------------------------------
// selu_alpha_dropout: selu then alpha_dropout in one kernel. Where kept,
// z = a * selu(x) + b, and backward reads only z (see selu.h).

// keep & (selu(x) < 0), recovered from z and the regenerated mask, in z's dtype:
// the derivative of the fused backward with respect to z. z == bound is y == 0
// (x == 0; second derivative 0, as PyTorch) or a negative y too small to move z
// off b; both count as not negative here (the first-order backward, which needs
// y <= 0, uses z <= bound).
at::Tensor fused_negative_mask(const at::Tensor& z, double p, const at::Tensor& rng) {
  at::Tensor keep;
  {
    BelowAutograd below;
    keep = keep_mask_op().call(rng.to(z.device()), z.sym_numel(), p).view_symint(z.sym_sizes());
  }
  const double bound = kept_bound_for(p, z.scalar_type());
  return keep.logical_and(z.lt(bound)).to(z.scalar_type());
}

class SeluAlphaDropoutBackwardBackward : public torch::autograd::Function<SeluAlphaDropoutBackwardBackward> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad, const at::Tensor& result,
                            double p, const at::Tensor& rng_state) {
    at::Tensor out;
    {
      BelowAutograd below;
      out = selu_alpha_dropout_backward_op().call(grad, result, p, rng_state);
    }
    ctx->saved_data["p"] = p;
    ctx->save_for_backward({grad, result, rng_state});
    return out;
  }

  // grad_x = grad * D(z) with D(z) = a*scale (z > bound), z - b + a*scale*alpha
  // (kept, z <= bound), 0 (dropped): d/dgrad = D(z), d/dz = grad * keep * [z <= bound].
  static variable_list backward(AutogradContext* ctx, variable_list gg) {
    const double p = ctx->saved_data["p"].toDouble();
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& grad = saved[0];
    const at::Tensor& z = saved[1];
    const at::Tensor& rng = saved[2];
    at::Tensor d_grad, d_z;
    if (gg[0].defined()) {
      if (ctx->needs_input_grad(0)) d_grad = SeluAlphaDropoutBackwardBackward::apply(gg[0], z, p, rng);
      if (ctx->needs_input_grad(1)) d_z = gg[0].mul(grad).mul(fused_negative_mask(z, p, rng));
    }
    return {d_grad, d_z, at::Tensor(), at::Tensor()};
  }
};

class SeluAlphaDropoutBackward : public torch::autograd::Function<SeluAlphaDropoutBackward> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& self, double p,
                            const at::Tensor& rng_state) {
    at::Tensor out;
    {
      BelowAutograd below;
      out = selu_alpha_dropout_op().call(self, p, rng_state);
    }
    ctx->saved_data["p"] = p;
    ctx->save_for_backward({out, rng_state});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const double p = ctx->saved_data["p"].toDouble();
    const auto saved = ctx->get_saved_variables();
    return {call_backward<SeluAlphaDropoutBackwardBackward>(selu_alpha_dropout_backward_op(),
                                                            grads[0], saved[0], p, saved[1]),
            at::Tensor(), at::Tensor()};
  }
};

at::Tensor selu_alpha_dropout_autograd(const at::Tensor& self, double p, const at::Tensor& rng) {
  if (!records({&self})) {
    BelowAutograd below;
    return selu_alpha_dropout_op().call(self, p, rng);
  }
  return SeluAlphaDropoutBackward::apply(self, p, rng);
}

at::Tensor selu_alpha_dropout_backward_autograd(const at::Tensor& grad, const at::Tensor& result,
                                                double p, const at::Tensor& rng) {
  if (!records({&grad, &result})) {
    BelowAutograd below;
    return selu_alpha_dropout_backward_op().call(grad, result, p, rng);
  }
  return SeluAlphaDropoutBackwardBackward::apply(grad, result, p, rng);
}

// ---------------------------------------------------------------------------
// ADInplaceOrView: version counter bumps for the in-place ops where autograd is off.

void selu_inplace_view(c10::DispatchKeySet ks, at::Tensor& self) {
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    selu_inplace_op().redispatch(ks & c10::after_ADInplaceOrView_keyset, self);
  }
  self.unsafeGetTensorImpl()->bump_version();
}

void alpha_dropout_inplace_view(c10::DispatchKeySet ks, at::Tensor& self, double p,
                                const at::Tensor& rng) {
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    alpha_dropout_inplace_op().redispatch(ks & c10::after_ADInplaceOrView_keyset, self, p, rng);
  }
  self.unsafeGetTensorImpl()->bump_version();
}

}  // namespace

TORCH_LIBRARY_IMPL(selu_ext, Autograd, m) {
  m.impl("selu", &selu_autograd);
  m.impl("selu_", &selu_inplace_autograd);
  m.impl("selu_backward", &selu_backward_autograd);
  m.impl("alpha_dropout", &alpha_dropout_autograd);
  m.impl("alpha_dropout_", &alpha_dropout_inplace_autograd);
  m.impl("alpha_dropout_backward", &alpha_dropout_backward_autograd);
  m.impl("selu_alpha_dropout", &selu_alpha_dropout_autograd);
  m.impl("selu_alpha_dropout_backward", &selu_alpha_dropout_backward_autograd);
}

TORCH_LIBRARY_IMPL(selu_ext, ADInplaceOrView, m) {
  m.impl("selu_", torch::dispatch(c10::DispatchKey::ADInplaceOrView, &selu_inplace_view));
  m.impl("alpha_dropout_",
         torch::dispatch(c10::DispatchKey::ADInplaceOrView, &alpha_dropout_inplace_view));
}

}  // namespace selu_ext
