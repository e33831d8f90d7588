// selu_ext: what the extension offers (operator schemas). docs/architecture.md walks
// an operator through its layers.
//
// Kernels: cpu/selu_cpu.cpp (CPU), cuda/selu_cuda.cpp (CUDA; or cuda/fallback.cpp in
// a build without CUDA kernels), both host.h's ops; autograd.cpp (Autograd,
// ADInplaceOrView). The Python module selu_ext._C, with direct entry points for the
// hot calls: python_module.cpp. Fake (meta) kernels, vmap rules and the Python API:
// selu_ext/.
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cstdio>
#include <string>

#include "check.h"

namespace selu_ext {

// Defined by cpu/selu_cpu.cpp and by cuda/selu_cuda.cpp (or cuda/fallback.cpp).
at::Tensor dropout_rng_state_for_cpu(c10::Device device);
at::Tensor dropout_rng_state_for_cuda(c10::Device device);
at::Tensor dropout_rng_state_for_cuda_eager(c10::Device device);


// dropout_rng_state has no tensor argument for the dispatcher to route on, so one
// composite kernel picks the device's generator.
at::Tensor dropout_rng_state(c10::Device device) {
  if (device.is_cpu()) return dropout_rng_state_for_cpu(device);
  if (device.is_meta()) return at::empty({2}, at::TensorOptions().dtype(at::kLong).device(device));
  if (device.is_cuda()) return dropout_rng_state_for_cuda(device);
  SELU_EXT_CHECK(false,
                 "selu_ext::dropout_rng_state: unsupported device %s; selu_ext supports CPU and "
                 "CUDA tensors",
                 device.str().c_str());
}

// For eager calls (python_module.cpp), where the state need not live on the device:
// on CUDA outside graph capture a CPU tensor, which saves a kernel launch per call
// (the ops read a CPU rng_state on the host). The same (seed, offset) either way.
at::Tensor dropout_rng_state_eager(c10::Device device) {
  if (device.is_cuda()) return dropout_rng_state_for_cuda_eager(device);
  return dropout_rng_state(device);
}

namespace {

// Backends a dense-only extension cannot serve: a clear error instead of the
// dispatcher's "could not run ... with arguments from the ... backend".
void unsupported_backend(const c10::OperatorHandle& op, c10::DispatchKeySet ks,
                         torch::jit::Stack* /*stack*/) {
  const auto key = ks.highestPriorityTypeId();
  const std::string what = c10::toString(key);
  const bool quantized = what.find("Quantized") != std::string::npos;
  char msg[selu_ext::kMessageBytes];
  std::snprintf(msg, sizeof msg,
                "%s: %s tensors are not supported; selu_ext works on dense (strided) float16, "
                "bfloat16, float32 and float64 tensors. %s",
                op.schema().name().c_str(), what.c_str(),
                quantized ? "Call .dequantize() first." : "Call .to_dense() first.");
  TORCH_CHECK_NOT_IMPLEMENTED(false, msg);
}

}  // namespace

TORCH_LIBRARY(selu_ext, m) {
  const std::vector<at::Tag> pt2 = {at::Tag::pt2_compliant_tag};
  // SELU. `result` is the forward's output: backward needs no input and no exp.
  // save_output=False keeps the input for backward, as torch.nn.SELU does, so the
  // output may be modified in place; True keeps only the output (one tensor, which
  // the next Linear keeps anyway) and is for callers that know nobody modifies it.
  m.def("selu(Tensor self, bool save_output=False) -> Tensor", pt2);
  // In-place ops return nothing (the caller has the tensor): torch.compile can
  // functionalize mutations of custom ops, not aliased returns.
  m.def("selu_(Tensor(a!) self) -> ()", pt2);
  // grad_output * selu'(x) from the forward's output (is_result) or input, as
  // aten::elu_backward.
  m.def("selu_backward(Tensor grad_output, Tensor self_or_result, bool is_result=True) -> Tensor",
        pt2);
  // The backward ops' .grad_input forms write into grad_input, which may be grad_output
  // itself, as aten::elu_backward.grad_input: the autograd nodes pass the incoming
  // gradient when nothing else holds it (autograd.cpp, grad_unshared), which saves a
  // cold output buffer. They return nothing, as the in-place ops.
  m.def(
      "selu_backward.grad_input(Tensor grad_output, Tensor self_or_result, bool is_result=True, *, "
      "Tensor(a!) grad_input) -> ()",
      pt2);

  // AlphaDropout. `rng_state` is a 2-element int64 tensor (seed, offset) from
  // dropout_rng_state (or built by the caller): the ops are pure functions of it, so
  // backward regenerates the mask and torch.compile may run them anywhere.
  m.def("dropout_rng_state(Device device) -> Tensor",
        {at::Tag::pt2_compliant_tag, at::Tag::nondeterministic_seeded});
  // The same for `self`'s device: torch.jit.trace records it (it cannot record a
  // Device argument), so a traced module draws a fresh mask on every call.
  m.def("dropout_rng_state.like(Tensor self) -> Tensor",
        {at::Tag::pt2_compliant_tag, at::Tag::nondeterministic_seeded});
  m.def("alpha_dropout(Tensor self, float p, Tensor rng_state) -> Tensor", pt2);
  m.def("alpha_dropout_(Tensor(a!) self, float p, Tensor rng_state) -> ()", pt2);
  m.def("alpha_dropout_backward(Tensor grad_output, float p, Tensor rng_state) -> Tensor", pt2);
  m.def(
      "alpha_dropout_backward.grad_input(Tensor grad_output, float p, Tensor rng_state, *, "
      "Tensor(a!) grad_input) -> ()",
      pt2);
  m.def("selu_alpha_dropout(Tensor self, float p, Tensor rng_state) -> Tensor", pt2);
  m.def(
      "selu_alpha_dropout_backward(Tensor grad_output, Tensor result, float p, Tensor rng_state) "
      "-> Tensor",
      pt2);
  m.def(
      "selu_alpha_dropout_backward.grad_input(Tensor grad_output, Tensor result, float p, "
      "Tensor rng_state, *, Tensor(a!) grad_input) -> ()",
      pt2);
  // The keep mask (bool, flat) that the dropout ops with this rng_state and p apply,
  // element i of the row-major order. For FeatureAlphaDropout and for tests.
  m.def("dropout_keep_mask(Tensor rng_state, SymInt numel, float p) -> Tensor", pt2);
  // FeatureAlphaDropout: whole channels, a mask of N x C from dropout_keep_mask applied
  // with PyTorch's element-wise ops. CompositeImplicitAutograd (python_module.cpp, next
  // to the eager entry point that shares its body): autograd, vmap and the compilers
  // see those ops.
  m.def("feature_alpha_dropout(Tensor self, float p, Tensor rng_state) -> Tensor");
  m.def("feature_alpha_dropout_(Tensor(a!) self, float p, Tensor rng_state) -> ()");
}

TORCH_LIBRARY_IMPL(selu_ext, CompositeExplicitAutograd, m) {
  m.impl("dropout_rng_state", &dropout_rng_state);
  m.impl("dropout_rng_state.like", [](const at::Tensor& self) { return dropout_rng_state(self.device()); });
}

// Every operator with a data tensor (all but dropout_keep_mask, whose tensor is the
// rng_state).
#define SELU_EXT_UNSUPPORTED(key)                                                       \
  TORCH_LIBRARY_IMPL(selu_ext, key, m) {                                                \
    for (const char* name : {"selu", "selu_", "selu_backward", "alpha_dropout",          \
                             "alpha_dropout_", "alpha_dropout_backward",                 \
                             "selu_alpha_dropout", "selu_alpha_dropout_backward"}) {     \
      m.impl(name, torch::CppFunction::makeFromBoxedFunction<&unsupported_backend>()); \
    }                                                                                   \
  }
SELU_EXT_UNSUPPORTED(SparseCPU)
SELU_EXT_UNSUPPORTED(SparseCUDA)
SELU_EXT_UNSUPPORTED(SparseCsrCPU)
SELU_EXT_UNSUPPORTED(SparseCsrCUDA)
SELU_EXT_UNSUPPORTED(QuantizedCPU)
SELU_EXT_UNSUPPORTED(QuantizedCUDA)
SELU_EXT_UNSUPPORTED(MkldnnCPU)
#undef SELU_EXT_UNSUPPORTED

}  // namespace selu_ext
