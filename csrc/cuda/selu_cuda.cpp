// selu_ext CUDA backend: device guard, current stream and launch check around the
// launchers of selu_kernels.cu; registers the CUDA kernels. Compiled by the host
// compiler: only the .cu file goes through nvcc.
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <mutex>

#include "../host.h"
#include "../op_list.h"
#include "launch.h"

namespace selu_ext {
namespace {

cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

struct CudaBackend {
  using Guard = c10::cuda::OptionalCUDAGuard;

  static void fresh_output(const at::Tensor&) {}

  // Each thread reads its elements before writing them, at the same indices, so a
  // backward can write into its incoming gradient (host.h's GradBufferOffer), as on
  // the CPU (tests/test_cuda_emulation.py, test_in_place).
  static constexpr bool kReusesGradBuffer = true;

  static void selu_loop(DType d, const void* x, void* y, int64_t n) {
    cuda::launch_selu(d, x, y, n, stream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  static void selu_backward_loop(DType d, const void* g, const void* y, void* gx, int64_t n,
                                 bool is_result) {
    cuda::launch_selu_backward(d, g, y, gx, n, is_result, stream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  static void alpha_dropout_loop(DType d, const void* x, void* z, int64_t n,
                                 const DropoutLaunch& a) {
    cuda::launch_alpha_dropout(d, x, z, n, a, stream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  static void alpha_dropout_backward_loop(DType d, const void* g, void* gx, int64_t n,
                                          const DropoutLaunch& a) {
    cuda::launch_alpha_dropout_backward(d, g, gx, n, a, stream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  static void selu_alpha_dropout_loop(DType d, const void* x, void* z, int64_t n,
                                      const DropoutLaunch& a) {
    cuda::launch_selu_alpha_dropout(d, x, z, n, a, stream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  static void selu_alpha_dropout_backward_loop(DType d, const void* g, const void* z, void* gx,
                                               int64_t n, const DropoutLaunch& a) {
    cuda::launch_selu_alpha_dropout_backward(d, g, z, gx, n, a, stream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  static void dropout_keep_mask_loop(bool* out, int64_t n, const DropoutLaunch& a) {
    cuda::launch_dropout_keep_mask(out, n, a, stream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

  // A CPU rng_state is read here (a fixed, user-chosen seed); one on the input's
  // device is read by the kernel, which keeps CUDA graph replays fresh.
  static RngSource rng_source(const at::Tensor& rng_state, const at::Tensor& input,
                              const char* op) {
    RngSource r;
    if (rng_state.device().is_cpu()) {
      const int64_t* v = rng_state.const_data_ptr<int64_t>();
      r.seed = static_cast<uint64_t>(v[0]);
      r.offset = static_cast<uint64_t>(v[1]);
      return r;
    }
    SELU_EXT_CHECK(rng_state.device() == input.device(),
                   "selu_ext::%s: 'rng_state' must be on the CPU or on the input's device (%s), "
                   "but it is on %s",
                   op, input.device().str().c_str(), rng_state.device().str().c_str());
    r.device_ptr = rng_state.const_data_ptr<int64_t>();
    return r;
  }
};

}  // namespace

namespace {

// (seed, offset) for one CUDA dropout call, from torch's CUDA generator for the
// device: 4 offsets reserved, as one curand Philox call per thread would. Written
// into a device tensor by a kernel, so under CUDA graph capture each replay reads
// that replay's state; when no graph is being captured and `on_host` is allowed,
// the values are known on the host and go into a CPU tensor, without a launch.
at::Tensor draw_rng_state(c10::Device device, bool on_host) {
  const c10::DeviceIndex index = device.has_index() ? device.index() : c10::cuda::current_device();
  c10::cuda::CUDAGuard guard(index);
  auto* gen = at::get_generator_or_default<at::CUDAGeneratorImpl>(
      std::nullopt, at::cuda::detail::getDefaultCUDAGenerator(index));
  at::PhiloxCudaState state;
  {
    std::lock_guard<std::mutex> lock(gen->mutex_);
    state = gen->philox_cuda_state(4);
  }
  if (on_host && !state.captured_) {
    at::Tensor out = at::empty({2}, at::TensorOptions().dtype(at::kLong));
    out.mutable_data_ptr<int64_t>()[0] = static_cast<int64_t>(state.seed_.val);
    out.mutable_data_ptr<int64_t>()[1] = static_cast<int64_t>(state.offset_.val);
    return out;
  }
  at::Tensor out = at::empty({2}, at::TensorOptions().dtype(at::kLong).device(at::kCUDA, index));
  cuda::launch_write_rng_state(state, out.mutable_data_ptr<int64_t>(), stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

// The operator's: always on the device (its fake kernel says so).
at::Tensor dropout_rng_state_for_cuda(c10::Device device) { return draw_rng_state(device, false); }

// Eager calls (python_module.cpp): the ops read a CPU rng_state on the host.
at::Tensor dropout_rng_state_for_cuda_eager(c10::Device device) {
  return draw_rng_state(device, true);
}

TORCH_LIBRARY_IMPL(selu_ext, CUDA, m) {
#define SELU_EXT_IMPL(name, kind, ...) m.impl(#name, &host::name<CudaBackend>);
  SELU_EXT_OPS(SELU_EXT_IMPL)
#undef SELU_EXT_IMPL
}

}  // namespace selu_ext
