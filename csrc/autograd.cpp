// selu_ext autograd: the Autograd kernel of every differentiable op, written as
// PyTorch's generated VariableType kernels are (a plain graph Node per op, saved
// variables, forward-mode tangents), so that:
//   * a call costs what a native op's costs: no torch::autograd::Function
//     machinery, no Python frame in the backward pass;
//   * torch.func (grad, vjp, jvp, jacrev, jacfwd, hessian) and forward-mode AD
//     (torch.autograd.forward_ad) work on the operators themselves, as on native ops.
//
// What each forward keeps for backward:
//   selu(save_output=False)   the input, as torch.nn.SELU: its output may be
//                             modified in place afterwards
//   selu(save_output=True)    the output only (the next Linear keeps it anyway);
//   selu_                     modifying the output in place then fails in backward
//   alpha_dropout(_)          the 16-byte rng_state only: backward regenerates the mask
//   selu_alpha_dropout        the output and rng_state
// Every backward op is differentiable again (double backward, hessians).
//
// The in-place ops also get an ADInplaceOrView kernel, so their version counter is
// bumped wherever autograd is skipped (torch.inference_mode on a normal tensor).
#include <ATen/TensorSubclassLikeUtils.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/VariableTypeUtils.h>
#include <torch/csrc/autograd/function.h>
#include <torch/library.h>

#include <memory>
#include <mutex>
#include <type_traits>

#include "host.h"
#include "op_handles.h"
#include "op_list.h"
#include "selu.h"

namespace selu_ext {
namespace {

using torch::autograd::Node;
using torch::autograd::SavedVariable;
using torch::autograd::variable_list;

// ---------------------------------------------------------------------------
// Node plumbing. torch 2.11 holds graph nodes in std::shared_ptr, 2.13 and later in
// c10::intrusive_ptr; Edge::function names whichever this torch uses.

using NodePtr = decltype(torch::autograd::Edge::function);

template <typename T>
NodePtr make_node() {
  if constexpr (std::is_same_v<NodePtr, std::shared_ptr<Node>>) {
    // deleteNode (torch <= 2.12) frees long graphs without deep recursion; found by
    // argument-dependent lookup so that newer torch, which lacks it, never sees it.
    return std::shared_ptr<T>(new T(), [](T* n) { deleteNode(n); });
  } else {
    return c10::make_intrusive<T>();
  }
}

// A node with saved variables that backward releases (retain_graph=False).
struct SavingNode : Node {
  void release_variables() override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (SavedVariable* v : saved()) v->reset_data();
  }
  virtual std::vector<SavedVariable*> saved() = 0;
};

// The forward-mode tangent of `t` (undefined if it has none).
const at::Tensor& tangent(const at::Tensor& t) { return t._fw_grad(/*level=*/0); }

bool has_tangent(const at::Tensor& t) { return t.defined() && tangent(t).defined(); }

// `t` without its tangent, as the generated kernels compute tangents: a formula on
// tangents must not itself carry tangents (it would recurse into itself).
at::Tensor primal(const at::Tensor& t) { return t.defined() ? t._fw_primal(/*level=*/0) : t; }

// Runs the kernel below autograd (out-of-place ops: below ADInplaceOrView too).
template <typename Op, typename... Args>
at::Tensor below(c10::DispatchKeySet ks, const Op& op, Args&&... args) {
  at::AutoDispatchBelowADInplaceOrView guard;
  return op.redispatch(ks & c10::after_autograd_keyset, std::forward<Args>(args)...);
}

// In-place ops go through ADInplaceOrView, which bumps the version counter.
template <typename Op, typename... Args>
void below_inplace(c10::DispatchKeySet ks, const Op& op, Args&&... args) {
  at::AutoDispatchBelowAutograd guard;
  op.redispatch(ks & c10::after_autograd_keyset, std::forward<Args>(args)...);
}

// Whether a node's backward may offer its incoming gradient `grad` as the output
// buffer of its one backward op (host.h's GradBufferOffer), i.e. whether nothing
// but this graph task can see that buffer: no graph is recorded (create_graph=False,
// so no double-backward node saves it), the node's argument holds the only reference
// to the tensor and the tensor the only one to its storage (no view of it, no saved
// or retained copy, no Python object), and it is a plain strided tensor outside any
// dispatch mode. As AccumulateGrad's test before it steals a gradient, plus the
// storage. Only for nodes that read the gradient once.
bool grad_unshared(const at::Tensor& grad) {
  return !at::GradMode::is_enabled() && grad.defined() && grad.use_count() == 1 &&
         grad.has_storage() && grad.storage().use_count() == 1 &&
         grad.layout() == at::kStrided && !grad.is_inference() && !grad.is_conj() &&
         !grad.is_neg() && !at::isTensorSubclassLike(grad);
}

// Makes `node` the grad_fn of `out` with `inputs` as its next edges.
template <typename... Ts>
void attach(const NodePtr& node, const at::Tensor& out, const Ts&... inputs) {
  node->set_next_edges(torch::autograd::collect_next_edges(inputs...));
  torch::autograd::set_history(out, node);
}

// ---------------------------------------------------------------------------
// selu. With s(v) the derivative read from v (x, or the output y):
//   s(x) = scale (x > 0) or scale*alpha*exp(x);  s(y) = scale (y > 0) or y + scale*alpha
// and s'(v) (for double backward and the backward's tangents) is nonzero only where
// v < 0 (at x == 0 the second derivative is 0, as PyTorch's elu_double_backward):
//   d s(y)/dy = 1,  d s(x)/dx = scale*alpha*exp(x) = s(x).

// grad * s'(v) * w: the derivative of selu_backward(grad, v) with respect to v,
// applied to w (a gradient or a tangent of v).
at::Tensor selu_backward_dv(const at::Tensor& grad, const at::Tensor& v, bool is_result,
                            const at::Tensor& w) {
  const at::Tensor negative = v.lt(0).to(v.scalar_type());
  if (is_result) return w.mul(grad).mul(negative);
  return op_selu_backward().call(w.mul(grad), v, false).mul(negative);
}

struct SeluBackwardBackwardNode : SavingNode {
  SavedVariable grad_, v_;
  bool is_result_ = true;

  std::string name() const override { return "SeluBackwardBackward0"; }
  std::vector<SavedVariable*> saved() override { return {&grad_, &v_}; }

  variable_list apply(variable_list&& gg) override {
    variable_list out(2);
    if (!gg[0].defined()) return out;
    const at::Tensor v = v_.unpack();
    if (task_should_compute_output(0)) out[0] = op_selu_backward().call(gg[0], v, is_result_);
    if (task_should_compute_output(1)) out[1] = selu_backward_dv(grad_.unpack(), v, is_result_, gg[0]);
    return out;
  }
};

struct SeluBackwardNode : SavingNode {
  SavedVariable v_;  // the input, or (is_result_) the output
  bool is_result_ = false;

  std::string name() const override { return is_result_ ? "SeluBackward1" : "SeluBackward0"; }
  std::vector<SavedVariable*> saved() override { return {&v_}; }

  variable_list apply(variable_list&& grads) override {
    variable_list out(1);
    if (grads[0].defined() && task_should_compute_output(0)) {
      // Through the op's own autograd kernel: with create_graph=True this records
      // the double-backward node.
      const at::Tensor v = v_.unpack(getptr());
      const host::GradBufferOffer offer(grads[0], grad_unshared(grads[0]));
      out[0] = op_selu_backward().call(grads[0], v, is_result_);
    }
    return out;
  }
};

at::Tensor autograd_selu(c10::DispatchKeySet ks, const at::Tensor& self, bool save_output) {
  const bool requires_grad = torch::autograd::compute_requires_grad(self);
  at::Tensor out = below(ks, op_selu(), self, save_output);
  if (requires_grad) {
    auto node = make_node<SeluBackwardNode>();
    auto* n = static_cast<SeluBackwardNode*>(node.get());
    attach(node, out, self);
    n->is_result_ = save_output;
    n->v_ = save_output ? SavedVariable(out, /*is_output=*/true) : SavedVariable(self, false);
  }
  if (has_tangent(self)) {
    out._set_fw_grad(op_selu_backward().call(tangent(self), primal(out), true), 0,
                     /*is_inplace_op=*/false);
  }
  return out;
}

void autograd_selu_(c10::DispatchKeySet ks, at::Tensor& self) {
  const bool requires_grad = torch::autograd::compute_requires_grad(self);
  torch::autograd::check_inplace(self, requires_grad);
  NodePtr node;
  if (requires_grad) {
    node = make_node<SeluBackwardNode>();
    node->set_next_edges(torch::autograd::collect_next_edges(self));
  }
  below_inplace(ks, op_selu_(), self);
  if (node) {
    // As PyTorch's selu_: the node reads the output (its input is overwritten).
    auto* n = static_cast<SeluBackwardNode*>(node.get());
    n->is_result_ = true;
    torch::autograd::rebase_history(self, node);
    n->v_ = SavedVariable(self, /*is_output=*/true, self.is_view());
  }
  if (has_tangent(self)) {
    const at::Tensor t = tangent(self);
    t.copy_(op_selu_backward().call(t, primal(self), true));
  }
}

at::Tensor autograd_selu_backward(c10::DispatchKeySet ks, const at::Tensor& grad,
                                  const at::Tensor& v, bool is_result) {
  const bool requires_grad = torch::autograd::compute_requires_grad(grad, v);
  at::Tensor out = below(ks, op_selu_backward(), grad, v, is_result);
  if (requires_grad) {
    auto node = make_node<SeluBackwardBackwardNode>();
    auto* n = static_cast<SeluBackwardBackwardNode*>(node.get());
    attach(node, out, grad, v);
    n->is_result_ = is_result;
    n->grad_ = SavedVariable(grad, false);
    n->v_ = SavedVariable(v, false);
  }
  const bool tg = has_tangent(grad), tv = has_tangent(v);
  if (tg || tv) {
    at::Tensor t;
    const at::Tensor v_p = primal(v);
    if (tg) t = op_selu_backward().call(tangent(grad), v_p, is_result);
    if (tv) {
      const at::Tensor tv_part = selu_backward_dv(primal(grad), v_p, is_result, tangent(v));
      t = t.defined() ? t.add(tv_part) : tv_part;
    }
    out._set_fw_grad(t, 0, false);
  }
  return out;
}

// ---------------------------------------------------------------------------
// alpha_dropout: linear in its input (kept: a*x + b, dropped: a constant), so its
// backward, its double backward and its tangent are all alpha_dropout_backward.

struct DropoutNode : SavingNode {
  SavedVariable rng_;
  double p_ = 0.0;
  std::string name_;

  std::string name() const override { return name_; }
  std::vector<SavedVariable*> saved() override { return {&rng_}; }

  variable_list apply(variable_list&& grads) override {
    variable_list out(1);
    if (grads[0].defined() && task_should_compute_output(0)) {
      const at::Tensor rng = rng_.unpack();
      const host::GradBufferOffer offer(grads[0], grad_unshared(grads[0]));
      out[0] = op_alpha_dropout_backward().call(grads[0], p_, rng);
    }
    return out;
  }
};

NodePtr dropout_node(const char* name, double p, const at::Tensor& rng) {
  auto node = make_node<DropoutNode>();
  auto* n = static_cast<DropoutNode*>(node.get());
  n->name_ = name;
  n->p_ = p;
  n->rng_ = SavedVariable(rng, false);
  return node;
}

at::Tensor autograd_alpha_dropout(c10::DispatchKeySet ks, const at::Tensor& self, double p,
                                  const at::Tensor& rng) {
  const bool requires_grad = torch::autograd::compute_requires_grad(self);
  at::Tensor out = below(ks, op_alpha_dropout(), self, p, rng);
  if (requires_grad) attach(dropout_node("AlphaDropoutBackward0", p, rng), out, self);
  if (has_tangent(self)) {
    out._set_fw_grad(op_alpha_dropout_backward().call(tangent(self), p, primal(rng)), 0, false);
  }
  return out;
}

void autograd_alpha_dropout_(c10::DispatchKeySet ks, at::Tensor& self, double p,
                                    const at::Tensor& rng) {
  const bool requires_grad = torch::autograd::compute_requires_grad(self);
  torch::autograd::check_inplace(self, requires_grad);
  NodePtr node;
  if (requires_grad) {
    node = dropout_node("AlphaDropoutBackward0", p, rng);
    node->set_next_edges(torch::autograd::collect_next_edges(self));
  }
  below_inplace(ks, op_alpha_dropout_(), self, p, rng);
  if (node) torch::autograd::rebase_history(self, node);
  if (has_tangent(self)) {
    const at::Tensor t = tangent(self);
    t.copy_(op_alpha_dropout_backward().call(t, p, primal(rng)));
  }
}

at::Tensor autograd_alpha_dropout_backward(c10::DispatchKeySet ks, const at::Tensor& grad,
                                           double p, const at::Tensor& rng) {
  const bool requires_grad = torch::autograd::compute_requires_grad(grad);
  at::Tensor out = below(ks, op_alpha_dropout_backward(), grad, p, rng);
  if (requires_grad) attach(dropout_node("AlphaDropoutBackwardBackward0", p, rng), out, grad);
  if (has_tangent(grad)) {
    out._set_fw_grad(op_alpha_dropout_backward().call(tangent(grad), p, primal(rng)), 0, false);
  }
  return out;
}

// ---------------------------------------------------------------------------
// selu_alpha_dropout: selu then alpha_dropout in one kernel. Where kept,
// z = a * selu(x) + b, and backward reads only z (see selu.h): grad_x = grad * D(z)
// with D(z) = a*scale (z > bound), z - (b - a*scale*alpha) (kept, z <= bound), 0
// (dropped, or kept but saturated: z is one of the two values of selu_math.h's
// SaturatedZ). D'(z) = keep * [z < bound] * [z not saturated]: z == bound is y == 0
// (x == 0; second derivative 0, as PyTorch) or a negative y too small to move z off
// b; both count as not negative here.

// D'(z) in z's dtype. The keep flags are alpha_dropout_backward's gradient of ones
// (a where kept, 0 where dropped; at p == 1 a is 0, and so is D'): its kernels take a
// host rng_state's (seed, offset) as launch arguments on any device, where
// dropout_keep_mask, whose output lives on rng_state's device, needed
// rng.to(z.device()), a synchronous copy from pageable memory on every call.
at::Tensor fused_negative_mask(const at::Tensor& z, double p, const at::Tensor& rng) {
  at::Tensor keep;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    keep = op_alpha_dropout_backward().call(at::ones_like(z), p, rng).ne(0);
  }
  const at::ScalarType dtype = z.scalar_type();
  // The kernels' q.dropped and q.kept_floor, in their compute type, as z stores them.
  const double kept_floor = dtype == at::kDouble
                                ? make_alpha_dropout_params<double>(p, 0.0).kept_floor
                                : make_alpha_dropout_params<float>(p, 0.0f).kept_floor;
  return keep.logical_and(z.lt(kept_bound_for(p, dtype)))
      .logical_and(z.ne(stored_as(alpha_dropout_coeffs(p).dropped, dtype)))
      .logical_and(z.ne(stored_as(kept_floor, dtype)))
      .to(dtype);
}

struct SeluAlphaDropoutBackwardBackwardNode : SavingNode {
  SavedVariable grad_, z_, rng_;
  double p_ = 0.0;

  std::string name() const override { return "SeluAlphaDropoutBackwardBackward0"; }
  std::vector<SavedVariable*> saved() override { return {&grad_, &z_, &rng_}; }

  variable_list apply(variable_list&& gg) override {
    variable_list out(2);
    if (!gg[0].defined()) return out;
    const at::Tensor z = z_.unpack();
    const at::Tensor rng = rng_.unpack();
    if (task_should_compute_output(0)) {
      out[0] = op_selu_alpha_dropout_backward().call(gg[0], z, p_, rng);
    }
    if (task_should_compute_output(1)) {
      out[1] = gg[0].mul(grad_.unpack()).mul(fused_negative_mask(z, p_, rng));
    }
    return out;
  }
};

struct SeluAlphaDropoutBackwardNode : SavingNode {
  SavedVariable z_, rng_;
  double p_ = 0.0;

  std::string name() const override { return "SeluAlphaDropoutBackward0"; }
  std::vector<SavedVariable*> saved() override { return {&z_, &rng_}; }

  variable_list apply(variable_list&& grads) override {
    variable_list out(1);
    if (grads[0].defined() && task_should_compute_output(0)) {
      const at::Tensor z = z_.unpack(getptr());
      const at::Tensor rng = rng_.unpack();
      const host::GradBufferOffer offer(grads[0], grad_unshared(grads[0]));
      out[0] = op_selu_alpha_dropout_backward().call(grads[0], z, p_, rng);
    }
    return out;
  }
};

at::Tensor autograd_selu_alpha_dropout(c10::DispatchKeySet ks, const at::Tensor& self, double p,
                                       const at::Tensor& rng) {
  const bool requires_grad = torch::autograd::compute_requires_grad(self);
  at::Tensor out = below(ks, op_selu_alpha_dropout(), self, p, rng);
  if (requires_grad) {
    auto node = make_node<SeluAlphaDropoutBackwardNode>();
    auto* n = static_cast<SeluAlphaDropoutBackwardNode*>(node.get());
    attach(node, out, self);
    n->p_ = p;
    n->z_ = SavedVariable(out, /*is_output=*/true);
    n->rng_ = SavedVariable(rng, false);
  }
  if (has_tangent(self)) {
    out._set_fw_grad(
        op_selu_alpha_dropout_backward().call(tangent(self), primal(out), p, primal(rng)), 0,
        false);
  }
  return out;
}

at::Tensor autograd_selu_alpha_dropout_backward(c10::DispatchKeySet ks, const at::Tensor& grad,
                                                const at::Tensor& z, double p,
                                                const at::Tensor& rng) {
  const bool requires_grad = torch::autograd::compute_requires_grad(grad, z);
  at::Tensor out = below(ks, op_selu_alpha_dropout_backward(), grad, z, p, rng);
  if (requires_grad) {
    auto node = make_node<SeluAlphaDropoutBackwardBackwardNode>();
    auto* n = static_cast<SeluAlphaDropoutBackwardBackwardNode*>(node.get());
    attach(node, out, grad, z);
    n->p_ = p;
    n->grad_ = SavedVariable(grad, false);
    n->z_ = SavedVariable(z, false);
    n->rng_ = SavedVariable(rng, false);
  }
  const bool tg = has_tangent(grad), tz = has_tangent(z);
  if (tg || tz) {
    at::Tensor t;
    const at::Tensor z_p = primal(z), rng_p = primal(rng);
    if (tg) t = op_selu_alpha_dropout_backward().call(tangent(grad), z_p, p, rng_p);
    if (tz) {
      const at::Tensor tz_part =
          tangent(z).mul(primal(grad)).mul(fused_negative_mask(z_p, p, rng_p));
      t = t.defined() ? t.add(tz_part) : tz_part;
    }
    out._set_fw_grad(t, 0, false);
  }
  return out;
}

// ---------------------------------------------------------------------------
// ADInplaceOrView: version counter bumps for the in-place ops.

void inplace_view_selu_(c10::DispatchKeySet ks, at::Tensor& self) {
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    op_selu_().redispatch(ks & c10::after_ADInplaceOrView_keyset, self);
  }
  torch::autograd::increment_version(self);
}

void inplace_view_alpha_dropout_(c10::DispatchKeySet ks, at::Tensor& self, double p,
                                const at::Tensor& rng) {
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    op_alpha_dropout_().redispatch(ks & c10::after_ADInplaceOrView_keyset, self, p, rng);
  }
  torch::autograd::increment_version(self);
}

}  // namespace

TORCH_LIBRARY_IMPL(selu_ext, Autograd, m) {
#define SELU_EXT_IMPL(name, kind, ...)                                                     \
  SELU_EXT_IF_AUTOGRAD(kind, m.impl(#name, torch::dispatch(c10::DispatchKey::Autograd,      \
                                                          &autograd_##name));)
  SELU_EXT_OPS(SELU_EXT_IMPL)
#undef SELU_EXT_IMPL
}

TORCH_LIBRARY_IMPL(selu_ext, ADInplaceOrView, m) {
#define SELU_EXT_IMPL(name, kind, ...)                                                     \
  SELU_EXT_IF_INPLACE(kind, m.impl(#name, torch::dispatch(c10::DispatchKey::ADInplaceOrView, \
                                                         &inplace_view_##name));)
  SELU_EXT_OPS(SELU_EXT_IMPL)
#undef SELU_EXT_IMPL
}

}  // namespace selu_ext
