// selu_ext CUDA kernels: host-side launchers over raw device buffers, called by
// selu_cuda.cpp (which does the torch side: checks, guard, stream, allocation).
// Each launcher enqueues one kernel on `stream` and returns; the caller checks
// the launch (C10_CUDA_KERNEL_LAUNCH_CHECK). No torch in here.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "../kernel_args.h"

namespace at {
struct PhiloxCudaState;
}

namespace selu_ext::cuda {

void launch_selu(DType d, const void* x, void* y, int64_t n, cudaStream_t stream);
void launch_selu_backward(DType d, const void* grad, const void* y, void* grad_x, int64_t n,
                          bool is_result, cudaStream_t stream);
void launch_alpha_dropout(DType d, const void* x, void* z, int64_t n, const DropoutLaunch& args,
                          cudaStream_t stream);
void launch_alpha_dropout_backward(DType d, const void* grad, void* grad_x, int64_t n,
                                   const DropoutLaunch& args, cudaStream_t stream);
void launch_selu_alpha_dropout(DType d, const void* x, void* z, int64_t n,
                               const DropoutLaunch& args, cudaStream_t stream);
void launch_selu_alpha_dropout_backward(DType d, const void* grad, const void* z, void* grad_x,
                                        int64_t n, const DropoutLaunch& args,
                                        cudaStream_t stream);
void launch_dropout_keep_mask(bool* out, int64_t n, const DropoutLaunch& args,
                              cudaStream_t stream);
// Writes (seed, offset) of `state` to out[0], out[1] on the device, reading them at
// run time when the state was taken during CUDA graph capture.
void launch_write_rng_state(const at::PhiloxCudaState& state, int64_t* out, cudaStream_t stream);

}  // namespace selu_ext::cuda
