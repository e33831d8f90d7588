// selu_ext CUDA kernels: host-side launchers over raw device buffers, called by
// host.h's ops through selu_cuda.cpp's CudaBackend (the torch side: checks, guard,
// allocation). No torch in here.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "../kernel_args.h"

namespace at {
struct PhiloxCudaState;
}

namespace selu_ext::cuda {

// The launchers of one dtype (kernel_args.h's Loops): each enqueues one kernel on
// current_stream() and returns; the caller checks the launch
// (C10_CUDA_KERNEL_LAUNCH_CHECK).
const Loops& loops(DType d);

// The stream the launchers enqueue on: torch's current CUDA stream (selu_cuda.cpp), or
// none under the host emulation (emulation.cpp).
cudaStream_t current_stream();

// Writes (seed, offset) of `state` to out[0], out[1] on the device, reading them at
// run time when the state was taken during CUDA graph capture.
void launch_write_rng_state(const at::PhiloxCudaState& state, int64_t* out, cudaStream_t stream);

}  // namespace selu_ext::cuda
