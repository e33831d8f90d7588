// Variants of selu_ext's float32 SELU forward kernel for benchmarks/probe_geometry.py:
// the same element-wise body under different block geometries (threads per block,
// 16-byte vectors in flight per thread, one-shot grid or grid-stride), with
// selu_ext's expm1, CUDA's expm1f, or no arithmetic at all (a copy). A development
// probe, not part of the extension: it answers whether the float32 forward's gap to
// PyTorch at 2^24-2^28 elements (results/h100: 0.976-0.979x eager) comes from the
// launch geometry or from the arithmetic. Built by the probe with nvcc; C ABI.
#include <cuda_runtime.h>

#include <cstdint>

#include "../csrc/selu.h"

namespace {

using selu_ext::kScale;

struct SeluOurs {  // selu_ext's float32 path (csrc/selu.h)
  __device__ __forceinline__ float operator()(float x) const { return selu_ext::selu_forward(x); }
};

struct SeluLibdevice {  // CUDA's expm1f and a plain product (PyTorch's formula)
  __device__ __forceinline__ float operator()(float x) const {
    return x > 0.0f ? static_cast<float>(kScale) * x
                    : static_cast<float>(selu_ext::kScaleAlpha) * expm1f(x);
  }
};

struct Identity {
  __device__ __forceinline__ float operator()(float x) const { return x; }
};

struct alignas(16) F4 {
  float v[4];
};

// THREADS * UNROLL vectors from `base` (thread-strided): all loads first, then the
// stores, as selu_kernels.cu's unary_kernel does.
template <int THREADS, int UNROLL, typename F>
__device__ __forceinline__ void chunk(const float* x, float* y, int64_t nvec, int64_t base, F f) {
  F4 in[UNROLL];
#pragma unroll
  for (int u = 0; u < UNROLL; ++u) {
    const int64_t iv = base + u * THREADS;
    if (iv < nvec) in[u] = reinterpret_cast<const F4*>(x)[iv];
  }
#pragma unroll
  for (int u = 0; u < UNROLL; ++u) {
    const int64_t iv = base + u * THREADS;
    if (iv < nvec) {
      F4 o;
#pragma unroll
      for (int k = 0; k < 4; ++k) o.v[k] = f(in[u].v[k]);
      reinterpret_cast<F4*>(y)[iv] = o;
    }
  }
}

// One-shot grid: block b handles one chunk, as the shipped kernel does.
template <int THREADS, int UNROLL, typename F>
__global__ void __launch_bounds__(THREADS) oneshot(const float* x, float* y, int64_t n, F f) {
  const int64_t base = static_cast<int64_t>(blockIdx.x) * (THREADS * UNROLL) + threadIdx.x;
  chunk<THREADS, UNROLL>(x, y, n / 4, base, f);
}

// Grid-stride: as many blocks as fit on the GPU at once, each looping over chunks.
template <int THREADS, int UNROLL, typename F>
__global__ void __launch_bounds__(THREADS) strided(const float* x, float* y, int64_t n, F f) {
  const int64_t nvec = n / 4;
  const int64_t step = static_cast<int64_t>(THREADS) * UNROLL;
  for (int64_t start = static_cast<int64_t>(blockIdx.x) * step; start < nvec;
       start += static_cast<int64_t>(gridDim.x) * step) {
    chunk<THREADS, UNROLL>(x, y, nvec, start + threadIdx.x, f);
  }
}

template <int THREADS, int UNROLL, typename F>
int launch_oneshot(const float* x, float* y, int64_t n, cudaStream_t s) {
  const int64_t per_block = static_cast<int64_t>(THREADS) * UNROLL * 4;
  const int64_t blocks = (n + per_block - 1) / per_block;
  oneshot<THREADS, UNROLL, F><<<blocks, THREADS, 0, s>>>(x, y, n, F{});
  return static_cast<int>(cudaGetLastError());
}

template <int THREADS, int UNROLL, typename F>
int launch_strided(const float* x, float* y, int64_t n, cudaStream_t s) {
  static int blocks = 0;
  if (blocks == 0) {
    int dev = 0, sms = 0, per_sm = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, strided<THREADS, UNROLL, F>, THREADS, 0);
    blocks = sms * (per_sm > 0 ? per_sm : 1);
  }
  strided<THREADS, UNROLL, F><<<blocks, THREADS, 0, s>>>(x, y, n, F{});
  return static_cast<int>(cudaGetLastError());
}

using Launch = int (*)(const float*, float*, int64_t, cudaStream_t);

struct Variant {
  const char* name;
  Launch launch;
};

const Variant kVariants[] = {
    {"selu_ext: 256 thr x 4 vec, one-shot (the shipped kernel)", launch_oneshot<256, 4, SeluOurs>},
    {"selu_ext: 256 thr x 2 vec, one-shot", launch_oneshot<256, 2, SeluOurs>},
    {"selu_ext: 256 thr x 1 vec, one-shot", launch_oneshot<256, 1, SeluOurs>},
    {"selu_ext: 128 thr x 1 vec, one-shot (PyTorch's shape)", launch_oneshot<128, 1, SeluOurs>},
    {"selu_ext: 128 thr x 4 vec, one-shot", launch_oneshot<128, 4, SeluOurs>},
    {"selu_ext: 256 thr x 4 vec, grid-stride", launch_strided<256, 4, SeluOurs>},
    {"selu_ext: 256 thr x 1 vec, grid-stride", launch_strided<256, 1, SeluOurs>},
    {"expm1f: 256 thr x 4 vec, one-shot", launch_oneshot<256, 4, SeluLibdevice>},
    {"expm1f: 128 thr x 1 vec, one-shot", launch_oneshot<128, 1, SeluLibdevice>},
    {"copy: 256 thr x 4 vec, one-shot", launch_oneshot<256, 4, Identity>},
    {"copy: 128 thr x 1 vec, one-shot", launch_oneshot<128, 1, Identity>},
    {"copy: 256 thr x 4 vec, grid-stride", launch_strided<256, 4, Identity>},
};

}  // namespace

extern "C" {

int probe_count() { return static_cast<int>(sizeof(kVariants) / sizeof(kVariants[0])); }

const char* probe_name(int i) { return kVariants[i].name; }

// x and y: 16-byte-aligned device buffers of n floats, n a multiple of 4.
int probe_launch(int i, const void* x, void* y, int64_t n, void* stream) {
  return kVariants[i].launch(static_cast<const float*>(x), static_cast<float*>(y), n,
                             static_cast<cudaStream_t>(stream));
}

}
