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
//   alpha_dropout(_)          the rng_state only (SavedRng): backward regenerates the mask
//   selu_alpha_dropout        the output and rng_state
// Every backward op is differentiable again (double backward, hessians).
//
// Each node declares its state once (state(): its saved tensors, rng_state and the
// values backward reads); from that list come release_variables, what compiled
// autograd needs (compiled_args, apply_with_saved) and the node's Python type with
// PyTorch's _saved_<name> / _raw_saved_<name> accessors (register_node_types).
//
// The in-place ops also get an ADInplaceOrView kernel, so their version counter is
// bumped wherever autograd is skipped (torch.inference_mode on a normal tensor).
#include <ATen/TensorSubclassLikeUtils.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/EmptyTensor.h>
#include <torch/csrc/autograd/VariableTypeUtils.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/python_cpp_function.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/dynamo/compiled_autograd.h>
#include <torch/csrc/utils/pybind.h>
#include <torch/library.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "host.h"
#include "op_handles.h"
#include "selu.h"

namespace selu_ext {
namespace {

using torch::autograd::Node;
using torch::autograd::SavedVariable;
using torch::autograd::variable_list;
using torch::dynamo::autograd::CompiledNodeArgs;
using torch::dynamo::autograd::SwapSavedVariables;

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

// The rng_state (seed, offset) a dropout node regenerates its mask from. Where the
// forward's rng_state is a plain CPU tensor (every eager call, CUDA included) the
// node keeps the two integers, not a saved tensor: the state is not an activation,
// and saved-tensor hooks (which may pack to bfloat16 and back) must not change the
// mask backward draws. A state the host cannot read now (on a device for CUDA
// graphs, a FakeTensor under torch.compile, a functorch wrapper, any tensor under a
// dispatch mode) is saved as a tensor.
struct SavedRng {
  SavedVariable saved_;
  int64_t host_[2] = {0, 0};
  bool on_host_ = false;
  // Compiled autograd's graph input for host_ (collect, before, after).
  mutable at::Tensor lifted_;

  void save(const at::Tensor& rng) {
    on_host_ = rng.device().is_cpu() && !at::isTensorSubclassLike(rng) && rng.has_storage();
    if (!on_host_) {
      saved_ = SavedVariable(rng, /*is_output=*/false);
      return;
    }
    std::memcpy(host_, rng.const_data_ptr<int64_t>(), sizeof host_);  // checked by the op
  }
  at::Tensor unpack() const {
    if (!on_host_) return saved_.unpack();
    if (lifted_.defined()) return lifted_;
    // Not at::empty: a dispatch mode active in backward must not make it a fake tensor.
    at::Tensor t = at::detail::empty_cpu({2}, at::kLong, std::nullopt, std::nullopt,
                                         std::nullopt, std::nullopt);
    std::memcpy(t.mutable_data_ptr<int64_t>(), host_, sizeof host_);
    return t;
  }
  void reset() {
    saved_.reset_data();
    lifted_.reset();
  }
  void collect(CompiledNodeArgs& args) const {
    if (!on_host_) return args.collect(saved_, /*is_output=*/false);
    lifted_ = unpack();
    args.collect(lifted_);
  }
  void before(SwapSavedVariables& s) { on_host_ ? s.before(lifted_) : s.before(saved_); }
  void after(SwapSavedVariables& s) { on_host_ ? s.after(lifted_) : s.after(saved_); }
};

// A node with saved state. `Self` names itself (kName, its Python type's name too)
// and lists its state once, state(node, f): f.saved(name, variable, is_output),
// f.rng(name, rng) and f.value(name, value) for everything backward reads besides
// its gradients (name: PyTorch's _saved_<name> accessor, the op schema's argument).
// The visitors below are what SavingNode does with that list.

struct ReleaseState {  // backward releases the saved tensors (retain_graph=False)
  void saved(const char*, SavedVariable& v, bool) { v.reset_data(); }
  void rng(const char*, SavedRng& r) { r.reset(); }
  template <typename T>
  void value(const char*, T) {}
};

// Compiled autograd (torch._dynamo.compiled_autograd), as PyTorch's generated nodes
// and custom C++ Functions do it. compiled_args: the saved tensors become graph
// inputs, the values part of the cache key. apply_with_saved: the capture records
// the node as one call of its functional form (functional_backward, bound to the
// compiler by name) on the graph's proxies: the state's tensors and values, then
// which gradients to compute.
struct CollectState {
  CompiledNodeArgs& args;
  void saved(const char*, const SavedVariable& v, bool is_output) { args.collect(v, is_output); }
  void rng(const char*, const SavedRng& r) { r.collect(args); }
  template <typename T>
  void value(const char*, T v) { args.collect(v); }
};

struct SwapState {
  SwapSavedVariables& swap;
  bool before;
  void saved(const char*, SavedVariable& v, bool) { before ? swap.before(v) : swap.after(v); }
  void rng(const char*, SavedRng& r) { before ? r.before(swap) : r.after(swap); }
  template <typename T>
  void value(const char*, T) {}
};

struct PackState {
  std::vector<c10::IValue> args;
  void saved(const char*, SavedVariable& v, bool) { args.emplace_back(v.unpack()); }
  void rng(const char*, SavedRng& r) { args.emplace_back(r.unpack()); }
  template <typename T>
  void value(const char*, T v) { args.emplace_back(v); }
};

struct UnpackState {
  const std::vector<c10::IValue>& args;
  size_t i = 0;
  void saved(const char*, SavedVariable& v, bool) { v = SavedVariable(args[i++].toTensor(), false); }
  void rng(const char*, SavedRng& r) { r.save(args[i++].toTensor()); }
  template <typename T>
  void value(const char*, T& v) { v = args[i++].to<T>(); }
};

template <class Self>
struct SavingNode : Node {
  std::string name() const override { return Self::kName; }

  void release_variables() override {
    ReleaseState release;
    std::lock_guard<std::mutex> lock(mutex_);
    Self::state(self(), release);
  }

  void compiled_args(CompiledNodeArgs& args) const override {
    CollectState collect{args};
    args.collect(name());
    Self::state(static_cast<const Self&>(*this), collect);
  }
  variable_list apply_with_saved(const variable_list& grads, SwapSavedVariables& swap) override {
    SwapState to_proxies{swap, true}, back{swap, false};
    Self::state(self(), to_proxies);
    PackState pack;
    Self::state(self(), pack);
    for (size_t i = 0; i < num_outputs(); ++i) pack.args.emplace_back(task_should_compute_output(i));
    std::vector<at::TypePtr> schema;
    for (const c10::IValue& v : pack.args) {
      schema.push_back(v.isTensor() ? at::TensorType::get() : v.type());
    }
    const auto& compiler = torch::dynamo::autograd::getPyCompilerInterface();
    const std::string fn = compiler->bind_function(swap.get_py_compiler(), Self::kName,
                                                   functional_backward, std::move(schema),
                                                   /*is_custom_function=*/true,
                                                   /*is_traceable=*/true);
    variable_list out = compiler->call_function(
        swap.get_py_compiler(), "apply_functional", fn, grads, pack.args,
        torch::dynamo::autograd::IValuePacker<std::vector<std::optional<torch::autograd::InputMetadata>>>::pack(
            torch::dynamo::autograd::get_input_metadata(next_edges())));
    Self::state(self(), back);
    return out;
  }

 protected:
  // Whether backward computes gradient i: the graph task decides, except in the
  // functional form, which has no graph task and is told.
  bool should_compute(size_t i) const {
    return functional_ ? functional_needs_[i] : task_should_compute_output(i);
  }

 private:
  Self& self() { return static_cast<Self&>(*this); }

  static variable_list functional_backward(const variable_list& grads,
                                           const std::vector<c10::IValue>& args) {
    auto node = make_node<Self>();
    auto& n = static_cast<Self&>(*node);
    UnpackState unpack{args};
    Self::state(n, unpack);
    n.functional_ = true;
    for (size_t i = 0; i < 2 && unpack.i < args.size(); ++i) {
      n.functional_needs_[i] = args[unpack.i++].toBool();
    }
    return n.apply(variable_list(grads));
  }

  bool functional_ = false;
  bool functional_needs_[2] = {false, false};  // no node computes more than 2 gradients
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

// Whether nothing but this graph task can see the buffer of a node's incoming
// gradient `grad`, so that its one backward op may write its result there: no graph
// is recorded (create_graph=False, so no double-backward node saves it), the node's
// argument holds the only reference to the tensor (besides its Python object where
// Python holds that object no more, as after a hook that only read it) and the tensor
// the only one to its storage (no view of it, no saved or retained copy), and it is a
// plain strided tensor outside any dispatch mode. AccumulateGrad's test before it
// steals a gradient (is_tensor_stealable), plus the storage. Only for nodes that read
// the gradient once.
bool grad_unshared(const at::Tensor& grad) {
  return !at::GradMode::is_enabled() && grad.defined() &&
         torch::autograd::impl::is_tensor_stealable(grad) &&
         grad.has_storage() && grad.storage().use_count() == 1 &&
         grad.layout() == at::kStrided && !grad.is_inference() && !grad.is_conj() &&
         !grad.is_neg() && !at::isTensorSubclassLike(grad);
}

// Whether a node passes its incoming gradient as grad_input to the .grad_input form
// of its backward op (ops.cpp), which writes the result there instead of into a fresh
// tensor: a cold output buffer saved (measured on the MLP of the training benchmark:
// the fused backward 125-147 us -> 77-95 us per 256 x 512 layer). Where grad_unshared,
// and the gradient and `like`, whose layout the op's output takes, are contiguous.
// The form runs below autograd, so the gradient must carry no tangent either.
bool into_incoming_grad(const at::Tensor& grad, const at::Tensor& like) {
  return grad_unshared(grad) && grad.is_contiguous() && like.is_contiguous() &&
         !tangent(grad).defined();
}

// A .grad_input form, below autograd: it records nothing and computes no tangent.
template <typename Op, typename... Args>
void call_below_autograd(const Op& op, Args&&... args) {
  at::AutoDispatchBelowADInplaceOrView guard;
  op.call(std::forward<Args>(args)...);
}

// Makes `node` the grad_fn of `out` with `inputs` as its next edges.
template <typename... Ts>
void attach(const NodePtr& node, const at::Tensor& out, const Ts&... inputs) {
  node->set_next_edges(torch::autograd::collect_next_edges(inputs...));
  torch::autograd::set_history(out, node);
}

// torch.autograd.graph.node_creation_hook (torch 2.14; its header tells whether
// this torch has it) sees each node once it is complete, edges and saved state, as
// it sees PyTorch's own.
void created(const NodePtr& node) {
#if __has_include(<torch/csrc/autograd/node_creation_hook.h>)
  if (node) torch::autograd::fire_node_creation_hooks(node);
#endif
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

struct SeluBackwardBackwardNode : SavingNode<SeluBackwardBackwardNode> {
  static constexpr const char* kName = "SeluBackwardBackward0";
  SavedVariable grad_, v_;
  bool is_result_ = true;

  template <class N, class F>
  static void state(N& n, F& f) {
    f.saved("grad_output", n.grad_, false);
    f.saved("self_or_result", n.v_, false);
    f.value("is_result", n.is_result_);
  }

  variable_list apply(variable_list&& gg) override {
    variable_list out(2);
    if (!gg[0].defined()) return out;
    const at::Tensor v = v_.unpack();
    if (should_compute(0)) out[0] = op_selu_backward().call(gg[0], v, is_result_);
    if (should_compute(1)) out[1] = selu_backward_dv(grad_.unpack(), v, is_result_, gg[0]);
    return out;
  }
};

// SeluBackward0 keeps the input, SeluBackward1 the output (selu_, save_output=True),
// as PyTorch's EluBackward0 and EluBackward1.
template <bool IsResult>
struct SeluBackwardNode : SavingNode<SeluBackwardNode<IsResult>> {
  static constexpr const char* kName = IsResult ? "SeluBackward1" : "SeluBackward0";
  SavedVariable v_;

  template <class N, class F>
  static void state(N& n, F& f) {
    f.saved(IsResult ? "result" : "self", n.v_, /*is_output=*/IsResult);
  }

  variable_list apply(variable_list&& grads) override {
    variable_list out(1);
    if (grads[0].defined() && this->should_compute(0)) {
      // Through the op's own autograd kernel: with create_graph=True this records
      // the double-backward node.
      const at::Tensor v = v_.unpack(this->getptr());
      if (into_incoming_grad(grads[0], v)) {
        call_below_autograd(op_selu_backward_grad_input(), grads[0], v, IsResult, grads[0]);
        out[0] = std::move(grads[0]);
      } else {
        out[0] = op_selu_backward().call(grads[0], v, IsResult);
      }
    }
    return out;
  }
};
using SeluBackward0 = SeluBackwardNode<false>;
using SeluBackward1 = SeluBackwardNode<true>;

// As the generated kernels, an output is saved after its tangent is set: the saved
// variable keeps the tangent it has then, which forward-over-reverse AD reads.
at::Tensor autograd_selu(c10::DispatchKeySet ks, const at::Tensor& self, bool save_output) {
  const bool requires_grad = torch::autograd::compute_requires_grad(self);
  at::Tensor out = below(ks, op_selu(), self, save_output);
  NodePtr node;
  if (requires_grad) {
    node = save_output ? make_node<SeluBackward1>() : make_node<SeluBackward0>();
    attach(node, out, self);
  }
  if (has_tangent(self)) {
    out._set_fw_grad(op_selu_backward().call(tangent(self), primal(out), true), 0,
                     /*is_inplace_op=*/false);
  }
  if (node && save_output) {
    static_cast<SeluBackward1*>(node.get())->v_ = SavedVariable(out, /*is_output=*/true);
  } else if (node) {
    static_cast<SeluBackward0*>(node.get())->v_ = SavedVariable(self, false);
  }
  created(node);
  return out;
}

void autograd_selu_(c10::DispatchKeySet ks, at::Tensor& self) {
  const bool requires_grad = torch::autograd::compute_requires_grad(self);
  torch::autograd::check_inplace(self, requires_grad);
  NodePtr node;
  if (requires_grad) {
    // As PyTorch's selu_: the node reads the output (its input is overwritten).
    node = make_node<SeluBackward1>();
    node->set_next_edges(torch::autograd::collect_next_edges(self));
  }
  below_inplace(ks, op_selu_(), self);
  if (node) torch::autograd::rebase_history(self, node);
  if (has_tangent(self)) {
    const at::Tensor t = tangent(self);
    // Under grad mode (reverse over forward) the formula's node saves its gradient
    // argument, so it gets a copy: copy_ overwrites t. As the generated kernels.
    t.copy_(op_selu_backward().call(at::GradMode::is_enabled() ? t.clone() : t, primal(self),
                                    true));
  }
  if (node) {
    static_cast<SeluBackward1*>(node.get())->v_ =
        SavedVariable(self, /*is_output=*/true, self.is_view());
    created(node);
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
    created(node);
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

// AlphaDropoutBackward0 (alpha_dropout, alpha_dropout_) and, for its backward op,
// AlphaDropoutBackwardBackward0: the same node under two names.
template <bool OfBackward>
struct DropoutNode : SavingNode<DropoutNode<OfBackward>> {
  static constexpr const char* kName =
      OfBackward ? "AlphaDropoutBackwardBackward0" : "AlphaDropoutBackward0";
  SavedRng rng_;
  double p_ = 0.0;

  template <class N, class F>
  static void state(N& n, F& f) {
    f.value("p", n.p_);
    f.rng("rng_state", n.rng_);
  }

  variable_list apply(variable_list&& grads) override {
    variable_list out(1);
    if (grads[0].defined() && this->should_compute(0)) {
      const at::Tensor rng = rng_.unpack();
      if (into_incoming_grad(grads[0], grads[0])) {
        call_below_autograd(op_alpha_dropout_backward_grad_input(), grads[0], p_, rng, grads[0]);
        out[0] = std::move(grads[0]);
      } else {
        out[0] = op_alpha_dropout_backward().call(grads[0], p_, rng);
      }
    }
    return out;
  }
};

template <bool OfBackward>
NodePtr dropout_node(double p, const at::Tensor& rng) {
  auto node = make_node<DropoutNode<OfBackward>>();
  auto* n = static_cast<DropoutNode<OfBackward>*>(node.get());
  n->p_ = p;
  n->rng_.save(rng);
  return node;
}

at::Tensor autograd_alpha_dropout(c10::DispatchKeySet ks, const at::Tensor& self, double p,
                                  const at::Tensor& rng) {
  const bool requires_grad = torch::autograd::compute_requires_grad(self);
  at::Tensor out = below(ks, op_alpha_dropout(), self, p, rng);
  if (requires_grad) {
    const NodePtr node = dropout_node<false>(p, rng);
    attach(node, out, self);
    created(node);
  }
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
    node = dropout_node<false>(p, rng);
    node->set_next_edges(torch::autograd::collect_next_edges(self));
  }
  below_inplace(ks, op_alpha_dropout_(), self, p, rng);
  if (node) {
    torch::autograd::rebase_history(self, node);
    created(node);
  }
  if (has_tangent(self)) {
    const at::Tensor t = tangent(self);
    t.copy_(op_alpha_dropout_backward().call(t, p, primal(rng)));
  }
}

at::Tensor autograd_alpha_dropout_backward(c10::DispatchKeySet ks, const at::Tensor& grad,
                                           double p, const at::Tensor& rng) {
  const bool requires_grad = torch::autograd::compute_requires_grad(grad);
  at::Tensor out = below(ks, op_alpha_dropout_backward(), grad, p, rng);
  if (requires_grad) {
    const NodePtr node = dropout_node<true>(p, rng);
    attach(node, out, grad);
    created(node);
  }
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

struct SeluAlphaDropoutBackwardBackwardNode : SavingNode<SeluAlphaDropoutBackwardBackwardNode> {
  static constexpr const char* kName = "SeluAlphaDropoutBackwardBackward0";
  SavedVariable grad_, z_;
  SavedRng rng_;
  double p_ = 0.0;

  template <class N, class F>
  static void state(N& n, F& f) {
    f.saved("grad_output", n.grad_, false);
    f.saved("result", n.z_, false);
    f.value("p", n.p_);
    f.rng("rng_state", n.rng_);
  }

  variable_list apply(variable_list&& gg) override {
    variable_list out(2);
    if (!gg[0].defined()) return out;
    const at::Tensor z = z_.unpack();
    const at::Tensor rng = rng_.unpack();
    if (should_compute(0)) {
      out[0] = op_selu_alpha_dropout_backward().call(gg[0], z, p_, rng);
    }
    if (should_compute(1)) {
      out[1] = gg[0].mul(grad_.unpack()).mul(fused_negative_mask(z, p_, rng));
    }
    return out;
  }
};

struct SeluAlphaDropoutBackwardNode : SavingNode<SeluAlphaDropoutBackwardNode> {
  static constexpr const char* kName = "SeluAlphaDropoutBackward0";
  SavedVariable z_;
  SavedRng rng_;
  double p_ = 0.0;

  template <class N, class F>
  static void state(N& n, F& f) {
    f.saved("result", n.z_, /*is_output=*/true);
    f.value("p", n.p_);
    f.rng("rng_state", n.rng_);
  }

  variable_list apply(variable_list&& grads) override {
    variable_list out(1);
    if (grads[0].defined() && should_compute(0)) {
      const at::Tensor z = z_.unpack(getptr());
      const at::Tensor rng = rng_.unpack();
      if (into_incoming_grad(grads[0], z)) {
        call_below_autograd(op_selu_alpha_dropout_backward_grad_input(), grads[0], z, p_, rng,
                            grads[0]);
        out[0] = std::move(grads[0]);
      } else {
        out[0] = op_selu_alpha_dropout_backward().call(grads[0], z, p_, rng);
      }
    }
    return out;
  }
};

at::Tensor autograd_selu_alpha_dropout(c10::DispatchKeySet ks, const at::Tensor& self, double p,
                                       const at::Tensor& rng) {
  const bool requires_grad = torch::autograd::compute_requires_grad(self);
  at::Tensor out = below(ks, op_selu_alpha_dropout(), self, p, rng);
  NodePtr node;
  if (requires_grad) {
    node = make_node<SeluAlphaDropoutBackwardNode>();
    attach(node, out, self);
  }
  if (has_tangent(self)) {
    out._set_fw_grad(
        op_selu_alpha_dropout_backward().call(tangent(self), primal(out), p, primal(rng)), 0,
        false);
  }
  if (node) {  // after the tangent, as autograd_selu's output
    auto* n = static_cast<SeluAlphaDropoutBackwardNode*>(node.get());
    n->p_ = p;
    n->z_ = SavedVariable(out, /*is_output=*/true);
    n->rng_.save(rng);
    created(node);
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
    n->rng_.save(rng);
    created(node);
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

// ---------------------------------------------------------------------------
// Python types of the nodes, as PyTorch gives its generated nodes
// (torch/csrc/autograd/generated/python_functions.cpp): y.grad_fn is a
// SeluBackward0 object, not a generic CppFunction, an instance of
// torch.autograd.graph.Node, with an accessor per entry of its state():
// _saved_<name> (the tensor or value) and, for a saved tensor, _raw_saved_<name>
// (its torch._C._autograd.SavedTensor). Built once at import; a node gets its Python
// object only when Python asks for it, as PyTorch's.

// An accessor's closure: the entry's index in state(), times 2, plus 1 for _raw_.
struct GetState {
  const NodePtr& owner;
  size_t want;
  bool raw;
  size_t i = 0;
  PyObject* out = nullptr;

  void saved(const char*, SavedVariable& v, bool) {
    if (i++ != want) return;
    out = raw ? pybind11::cast(v, pybind11::return_value_policy::reference).release().ptr()
              : THPVariable_Wrap(v.unpack(owner));
  }
  void rng(const char*, SavedRng& r) {
    if (i++ == want) out = THPVariable_Wrap(r.unpack());
  }
  void value(const char*, bool v) {
    if (i++ == want) out = PyBool_FromLong(v);
  }
  void value(const char*, double v) {
    if (i++ == want) out = PyFloat_FromDouble(v);
  }
};

struct ListState {
  std::vector<std::pair<std::string, uintptr_t>> accessors;  // (name, closure)
  uintptr_t i = 0;

  void add(const char* name, bool tensor) {
    accessors.emplace_back(std::string("_saved_") + name, 2 * i);
    if (tensor) accessors.emplace_back(std::string("_raw_saved_") + name, 2 * i + 1);
    ++i;
  }
  void saved(const char* name, SavedVariable&, bool) { add(name, true); }
  void rng(const char* name, SavedRng&) { add(name, false); }
  template <typename T>
  void value(const char* name, T) {
    add(name, false);
  }
};

template <class N>
PyObject* get_state(PyObject* self, void* closure) {
  HANDLE_TH_ERRORS
  const auto& owner = reinterpret_cast<torch::autograd::THPCppFunction*>(self)->cdata;
  const auto c = reinterpret_cast<uintptr_t>(closure);
  GetState get{owner, c / 2, (c & 1) != 0};
  N::state(static_cast<N&>(*owner), get);
  return get.out;
  END_HANDLE_TH_ERRORS
}

// THP_FUNCTION_DEFAULT_PROPERTIES names these unqualified.
using torch::autograd::THPCppFunction_input_metadata;
using torch::autograd::THPCppFunction_metadata;
using torch::autograd::THPCppFunction_next_functions;
using torch::autograd::THPCppFunction_requires_grad;

template <class N>
bool register_node_type(PyObject* graph_node) {
  static PyTypeObject type;
  static ListState names;  // the accessors' names live as long as the type
  static std::vector<PyGetSetDef> getset = {THP_FUNCTION_DEFAULT_PROPERTIES};
  N::state(static_cast<N&>(*make_node<N>()), names);
  for (const auto& [name, closure] : names.accessors) {
    getset.push_back({name.c_str(), get_state<N>, nullptr, nullptr,
                      reinterpret_cast<void*>(closure)});
  }
  getset.push_back({nullptr});
  torch::autograd::_initFunctionPyTypeObject(type, N::kName, getset.data(), nullptr);
  torch::autograd::registerCppFunction(typeid(N), &type);
  // torch.autograd.graph.Node recognizes PyTorch's own types by module; others register.
  PyObject* ok = PyObject_CallMethod(graph_node, "register", "O", &type);
  Py_XDECREF(ok);
  return ok != nullptr;
}

}  // namespace

bool register_node_types() {
  PyObject* graph = PyImport_ImportModule("torch.autograd.graph");
  if (graph == nullptr) return false;
  PyObject* graph_node = PyObject_GetAttrString(graph, "Node");
  Py_DECREF(graph);
  if (graph_node == nullptr) return false;
  bool ok = false;
  try {
    ok = register_node_type<SeluBackward0>(graph_node) &&
         register_node_type<SeluBackward1>(graph_node) &&
         register_node_type<SeluBackwardBackwardNode>(graph_node) &&
         register_node_type<DropoutNode<false>>(graph_node) &&
         register_node_type<DropoutNode<true>>(graph_node) &&
         register_node_type<SeluAlphaDropoutBackwardNode>(graph_node) &&
         register_node_type<SeluAlphaDropoutBackwardBackwardNode>(graph_node);
  } catch (const std::exception& e) {  // _initFunctionPyTypeObject throws on failure
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  Py_DECREF(graph_node);
  return ok;
}

TORCH_LIBRARY_IMPL(selu_ext, Autograd, m) {
  m.impl("selu", torch::dispatch(c10::DispatchKey::Autograd, &autograd_selu));
  m.impl("selu_", torch::dispatch(c10::DispatchKey::Autograd, &autograd_selu_));
  m.impl("selu_backward", torch::dispatch(c10::DispatchKey::Autograd, &autograd_selu_backward));
  m.impl("alpha_dropout", torch::dispatch(c10::DispatchKey::Autograd, &autograd_alpha_dropout));
  m.impl("alpha_dropout_", torch::dispatch(c10::DispatchKey::Autograd, &autograd_alpha_dropout_));
  m.impl("alpha_dropout_backward",
         torch::dispatch(c10::DispatchKey::Autograd, &autograd_alpha_dropout_backward));
  m.impl("selu_alpha_dropout",
         torch::dispatch(c10::DispatchKey::Autograd, &autograd_selu_alpha_dropout));
  m.impl("selu_alpha_dropout_backward",
         torch::dispatch(c10::DispatchKey::Autograd, &autograd_selu_alpha_dropout_backward));
}

TORCH_LIBRARY_IMPL(selu_ext, ADInplaceOrView, m) {
  m.impl("selu_", torch::dispatch(c10::DispatchKey::ADInplaceOrView, &inplace_view_selu_));
  m.impl("alpha_dropout_",
         torch::dispatch(c10::DispatchKey::ADInplaceOrView, &inplace_view_alpha_dropout_));
}

}  // namespace selu_ext
