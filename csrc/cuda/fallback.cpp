// selu_ext without CUDA kernels (torch is a CPU-only build, no nvcc was found, or
// USE_CUDA=0). CUDA tensors still work: SELU falls back to PyTorch's own kernels,
// the dropout ops run on the CPU and are copied back (same masks as the CPU path),
// and a one-time warning says why and how to rebuild.
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/elu_backward.h>
#include <ATen/ops/selu.h>
#include <torch/library.h>

#include "../host.h"
#include "selu_ext_config.h"

namespace selu_ext {
namespace fallback {
namespace {

void warn_fallback() {
  TORCH_WARN_ONCE(
      "selu_ext was built without its CUDA kernels (", SELU_EXT_NO_CUDA_REASON,
      "), so CUDA tensors use PyTorch's own SELU, and selu_ext's dropout ops run on the CPU "
      "and are copied back. To use the fused CUDA kernels, rebuild with a CUDA build of "
      "torch and nvcc on PATH or CUDA_HOME set: FORCE_CUDA=1 pip install --no-build-isolation "
      "-e .  (selu_ext.build_info() shows what was built.)");
}

at::Tensor selu(const at::Tensor& self, bool /*save_output*/) {
  check_tensor(self, "selu", "self");
  warn_fallback();
  return at::selu(self);
}

void selu_(at::Tensor& self) {
  check_tensor(self, "selu_", "self");
  check_inplace(self, "selu_");
  warn_fallback();
  at::selu_(self);
}

at::Tensor selu_backward(const at::Tensor& grad, const at::Tensor& v, bool is_result) {
  const char* arg = is_result ? "result" : "self";
  check_tensor(grad, "selu_backward", "grad_output");
  check_tensor(v, "selu_backward", arg);
  check_same(grad, v, "selu_backward", "grad_output", arg);
  warn_fallback();
  return at::elu_backward(grad, kAlpha, kScale, 1.0, is_result, v);
}

// Runs the CPU kernel of `name` on CPU copies and moves the result back.
template <typename... A>
at::Tensor on_cpu(const char* name, const at::Tensor& like, A... args) {
  warn_fallback();
  return c10::Dispatcher::singleton()
      .findSchemaOrThrow(name, "")
      .typed<at::Tensor(A...)>()
      .call(args...)
      .to(like.device());
}

at::Tensor cpu(const at::Tensor& t) { return t.cpu(); }

// The CPU operators check the arguments (the copies keep dtype and shape).
at::Tensor alpha_dropout(const at::Tensor& self, double p, const at::Tensor& rng) {
  return on_cpu<const at::Tensor&, double, const at::Tensor&>("selu_ext::alpha_dropout", self,
                                                              cpu(self), p, cpu(rng));
}

void alpha_dropout_(at::Tensor& self, double p, const at::Tensor& rng) {
  check_tensor(self, "alpha_dropout_", "self");
  check_inplace(self, "alpha_dropout_");
  self.copy_(alpha_dropout(self, p, rng));
}

at::Tensor alpha_dropout_backward(const at::Tensor& grad, double p, const at::Tensor& rng) {
  return on_cpu<const at::Tensor&, double, const at::Tensor&>("selu_ext::alpha_dropout_backward",
                                                              grad, cpu(grad), p, cpu(rng));
}

at::Tensor selu_alpha_dropout(const at::Tensor& self, double p, const at::Tensor& rng) {
  return on_cpu<const at::Tensor&, double, const at::Tensor&>("selu_ext::selu_alpha_dropout", self,
                                                              cpu(self), p, cpu(rng));
}

at::Tensor selu_alpha_dropout_backward(const at::Tensor& grad, const at::Tensor& result, double p,
                                       const at::Tensor& rng) {
  return on_cpu<const at::Tensor&, const at::Tensor&, double, const at::Tensor&>(
      "selu_ext::selu_alpha_dropout_backward", grad, cpu(grad), cpu(result), p, cpu(rng));
}

// The .grad_input forms: the result, copied in.
void selu_backward_grad_input(const at::Tensor& grad, const at::Tensor& v, bool is_result,
                              at::Tensor& grad_input) {
  check_grad_input(grad_input, grad, "selu_backward", /*contiguous=*/false);
  grad_input.copy_(selu_backward(grad, v, is_result));
}

void alpha_dropout_backward_grad_input(const at::Tensor& grad, double p, const at::Tensor& rng,
                                       at::Tensor& grad_input) {
  check_grad_input(grad_input, grad, "alpha_dropout_backward", /*contiguous=*/true);
  grad_input.copy_(alpha_dropout_backward(grad, p, rng));
}

void selu_alpha_dropout_backward_grad_input(const at::Tensor& grad, const at::Tensor& result,
                                            double p, const at::Tensor& rng,
                                            at::Tensor& grad_input) {
  check_grad_input(grad_input, grad, "selu_alpha_dropout_backward", /*contiguous=*/true);
  grad_input.copy_(selu_alpha_dropout_backward(grad, result, p, rng));
}

at::Tensor dropout_keep_mask(const at::Tensor& rng, int64_t numel, double p) {
  // The schema's numel is a SymInt: a typed call must say so.
  return on_cpu<const at::Tensor&, c10::SymInt, double>("selu_ext::dropout_keep_mask", rng,
                                                        cpu(rng), c10::SymInt(numel), p);
}

}  // namespace
}  // namespace fallback

// A CPU-drawn (seed, offset), placed on the device.
at::Tensor dropout_rng_state_for_cpu(c10::Device device);
at::Tensor dropout_rng_state_for_cuda(c10::Device device) {
  fallback::warn_fallback();
  return dropout_rng_state_for_cpu(c10::Device(c10::kCPU)).to(device);
}

// The fallback ops run on the CPU, so a CPU state is what they read anyway.
at::Tensor dropout_rng_state_for_cuda_eager(c10::Device /*device*/) {
  fallback::warn_fallback();
  return dropout_rng_state_for_cpu(c10::Device(c10::kCPU));
}

TORCH_LIBRARY_IMPL(selu_ext, CUDA, m) {
  m.impl("selu", &fallback::selu);
  m.impl("selu_", &fallback::selu_);
  m.impl("selu_backward", &fallback::selu_backward);
  m.impl("selu_backward.grad_input", &fallback::selu_backward_grad_input);
  m.impl("alpha_dropout", &fallback::alpha_dropout);
  m.impl("alpha_dropout_", &fallback::alpha_dropout_);
  m.impl("alpha_dropout_backward", &fallback::alpha_dropout_backward);
  m.impl("alpha_dropout_backward.grad_input", &fallback::alpha_dropout_backward_grad_input);
  m.impl("selu_alpha_dropout", &fallback::selu_alpha_dropout);
  m.impl("selu_alpha_dropout_backward", &fallback::selu_alpha_dropout_backward);
  m.impl("selu_alpha_dropout_backward.grad_input",
         &fallback::selu_alpha_dropout_backward_grad_input);
  m.impl("dropout_keep_mask", &fallback::dropout_keep_mask);
}

}  // namespace selu_ext
