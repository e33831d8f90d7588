// selu_ext: what selu_kernels.cu needs from CUDA to compile as host C++ (g++ or clang),
// so that its kernels run on a machine without a GPU: tests/test_cuda_emulation.py
// builds csrc/cuda/emulation.cpp (this header, then the .cu itself) and checks every
// launcher against the CPU kernels, with and without ASan + UBSan. Never part of the
// extension; nvcc never sees this file.
//
// The CUDA toolkit's own headers supply the types (cuda_runtime.h: uint3, dim3,
// cudaStream_t) and the 16-bit conversions (cuda_fp16.h, cuda_bf16.h, which have
// host implementations, bit-exact with the device's). In host compilation they leave
// __global__, __device__ and __host__ empty; this header adds the rest:
//   * threadIdx, blockIdx, blockDim, gridDim: globals set by the launch's grid loop
//     (selu_kernels.cu's `launch`): one thread at a time, block after block, which is
//     a valid schedule because no kernel shares memory or synchronises;
//   * __launch_bounds__: nothing (a register budget has no host meaning);
//   * __expf: NOT bit-exact. On the device it is the SFU's ex2.approx of x * log2(e),
//     with a relative error near 2^-21 that no host function reproduces; here it is
//     exp2f(x * log2(e)) rounded once per step. The float16/bfloat16 kernels' own
//     negative branch (SeluNegative16) is the only user.
//   * expm1(double), from the C library here, from libdevice on the device: both
//     within 1 ULP, not always the same ULP.
// The test compares those two paths to the CPU with a stated tolerance
// (EMULATION_ULPS and EXPM1_ABS in tests/test_cuda_emulation.py), all else bitwise;
// fmaf/fma and the 16-bit conversions (cuda_fp16.h's host code) are exact twins.
// Floating-point contraction: nvcc fuses a * b + c into one FMA by default
// (--fmad=true); the build of the emulation passes -ffp-contract=fast and an ISA with
// FMA so that the host compiler fuses the same expressions (the test's build flags).
#pragma once

#if defined(__CUDACC__)
#error "csrc/cuda/emulation.h is for host compilers: nvcc compiles selu_kernels.cu as it is"
#endif

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#define SELU_EXT_CUDA_EMULATION 1
#define __launch_bounds__(...)

inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

inline float __expf(float x) { return ::exp2f(x * 1.44269504088896341f); }

namespace selu_ext::cuda::emulation {

// How many launches CUDA would have refused (cudaErrorInvalidConfiguration: an empty
// grid or block, more than 2^31 - 1 blocks or 1024 threads); run instead of nothing.
inline int64_t invalid_launches = 0;

// Runs kernel() for every thread of a (blocks x threads) grid, in order.
template <typename K>
void run_grid(int64_t blocks, int threads, K kernel) {
  if (blocks < 1 || blocks > INT32_MAX || threads < 1 || threads > 1024) {
    ++invalid_launches;
    return;
  }
  gridDim = dim3(static_cast<unsigned>(blocks), 1, 1);
  blockDim = dim3(static_cast<unsigned>(threads), 1, 1);
  for (int64_t b = 0; b < blocks; ++b) {
    for (int t = 0; t < threads; ++t) {
      blockIdx = make_uint3(static_cast<unsigned>(b), 0, 0);
      threadIdx = make_uint3(static_cast<unsigned>(t), 0, 0);
      kernel();
    }
  }
}

}  // namespace selu_ext::cuda::emulation
