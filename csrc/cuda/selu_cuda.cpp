// selu_ext CUDA backend: what host.h's ops need from CUDA (device guard, the launchers
// of selu_kernels.cu, current stream, launch check) and the registration of the CUDA
// kernels. Compiled by the host compiler: only the .cu file goes through nvcc.
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <mutex>

#include "../host.h"
#include "launch.h"

namespace selu_ext {

namespace cuda {
cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }
}  // namespace cuda

namespace {

struct CudaBackend {
  using Guard = c10::cuda::OptionalCUDAGuard;

  static const Loops& loops(at::ScalarType dtype) { return cuda::loops(kernel_dtype(dtype)); }

  // One launch covers the whole tensor.
  template <typename F>
  static void run(int64_t n, F f) {
    f(0, n);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  template <typename F>
  static void run_blocks(int64_t n, F f) {
    run(n, f);
  }

  static void fresh_output(const at::Tensor&) {}
};

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
  cuda::launch_write_rng_state(state, out.mutable_data_ptr<int64_t>(), cuda::current_stream());
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

TORCH_LIBRARY_IMPL(selu_ext, CUDA, m) { host::register_kernels<CudaBackend>(m); }

}  // namespace selu_ext
