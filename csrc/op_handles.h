// selu_ext: the dispatcher handle of each operator that C++ calls, found on first use.
// For code that calls the operators through the dispatcher (the autograd kernels, the
// eager entry points of selu_ext._C), so that every dispatch key (autograd, vmap,
// DTensor, ...) sees an ordinary operator call. Each signature is its schema's
// (ops.cpp) as c10::TypedOperatorHandle takes it.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>

namespace selu_ext {

template <typename Signature>
using OpHandle = c10::TypedOperatorHandle<Signature>;

template <typename Signature>
OpHandle<Signature> find_op(const char* name, const char* overload = "") {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, overload).typed<Signature>();
}

using SeluSig = at::Tensor(const at::Tensor&, bool);
using SeluInplaceSig = void(at::Tensor&);
using SeluBackwardSig = at::Tensor(const at::Tensor&, const at::Tensor&, bool);
using DropoutSig = at::Tensor(const at::Tensor&, double, const at::Tensor&);
using DropoutInplaceSig = void(at::Tensor&, double, const at::Tensor&);
using FusedBackwardSig = at::Tensor(const at::Tensor&, const at::Tensor&, double,
                                    const at::Tensor&);
using SeluBackwardIntoSig = void(const at::Tensor&, const at::Tensor&, bool, at::Tensor&);
using DropoutBackwardIntoSig = void(const at::Tensor&, double, const at::Tensor&, at::Tensor&);
using FusedBackwardIntoSig = void(const at::Tensor&, const at::Tensor&, double,
                                  const at::Tensor&, at::Tensor&);

inline const OpHandle<SeluSig>& op_selu() {
  static const auto h = find_op<SeluSig>("selu_ext::selu");
  return h;
}
inline const OpHandle<SeluInplaceSig>& op_selu_() {
  static const auto h = find_op<SeluInplaceSig>("selu_ext::selu_");
  return h;
}
inline const OpHandle<SeluBackwardSig>& op_selu_backward() {
  static const auto h = find_op<SeluBackwardSig>("selu_ext::selu_backward");
  return h;
}
inline const OpHandle<SeluBackwardIntoSig>& op_selu_backward_grad_input() {
  static const auto h = find_op<SeluBackwardIntoSig>("selu_ext::selu_backward", "grad_input");
  return h;
}
inline const OpHandle<DropoutSig>& op_alpha_dropout() {
  static const auto h = find_op<DropoutSig>("selu_ext::alpha_dropout");
  return h;
}
inline const OpHandle<DropoutInplaceSig>& op_alpha_dropout_() {
  static const auto h = find_op<DropoutInplaceSig>("selu_ext::alpha_dropout_");
  return h;
}
inline const OpHandle<DropoutSig>& op_alpha_dropout_backward() {
  static const auto h = find_op<DropoutSig>("selu_ext::alpha_dropout_backward");
  return h;
}
inline const OpHandle<DropoutBackwardIntoSig>& op_alpha_dropout_backward_grad_input() {
  static const auto h =
      find_op<DropoutBackwardIntoSig>("selu_ext::alpha_dropout_backward", "grad_input");
  return h;
}
inline const OpHandle<DropoutSig>& op_selu_alpha_dropout() {
  static const auto h = find_op<DropoutSig>("selu_ext::selu_alpha_dropout");
  return h;
}
inline const OpHandle<FusedBackwardSig>& op_selu_alpha_dropout_backward() {
  static const auto h = find_op<FusedBackwardSig>("selu_ext::selu_alpha_dropout_backward");
  return h;
}
inline const OpHandle<FusedBackwardIntoSig>& op_selu_alpha_dropout_backward_grad_input() {
  static const auto h =
      find_op<FusedBackwardIntoSig>("selu_ext::selu_alpha_dropout_backward", "grad_input");
  return h;
}

}  // namespace selu_ext
