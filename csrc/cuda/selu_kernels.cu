// selu_ext CUDA kernels. Read top to bottom: scalar helpers, the element-wise
// kernels (selu forward/backward), the dropout kernels, then the launchers and their
// table (loops).
//
// Includes no torch header but the small PhiloxCudaState definition, so this
// file compiles in seconds per architecture. The same file also compiles as host C++
// behind emulation.h (tests/test_cuda_emulation.py), which is why every launch goes
// through `launch` below and nothing else here may assume nvcc.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <ATen/cuda/PhiloxCudaState.h>

#include <cstdint>
#include <type_traits>

#include "../selu.h"
#include "launch.h"

namespace selu_ext::cuda {
namespace {

// float16 / bfloat16 compute in float, float and double in themselves (opmath).
template <typename T>
struct OpMath {
  using type = T;
};
template <>
struct OpMath<__half> {
  using type = float;
};
template <>
struct OpMath<__nv_bfloat16> {
  using type = float;
};

__device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }

template <typename T>
__device__ __forceinline__ T from_acc(typename OpMath<T>::type v);
template <>
__device__ __forceinline__ __half from_acc<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ float from_acc<float>(float v) { return v; }
template <>
__device__ __forceinline__ double from_acc<double>(double v) { return v; }

// Every kernel launch: kernel<<<blocks, threads, 0, stream>>>(args...) under nvcc, a
// serial loop over the grid under the host emulation. An empty grid is no launch
// (CUDA rejects 0 blocks), so callers may pass n = 0.
template <typename K, typename... A>
void launch(K kernel, int64_t blocks, int threads, cudaStream_t stream, A... args) {
  if (blocks <= 0) return;
#if defined(SELU_EXT_CUDA_EMULATION)
  (void)stream;
  emulation::run_grid(blocks, threads, [&] { kernel(args...); });
#else
  kernel<<<blocks, threads, 0, stream>>>(args...);
#endif
}

constexpr int kThreads = 256;
constexpr int kUnroll = 4;  // 16-byte vectors in flight per thread

template <typename T, int N>
struct alignas(sizeof(T) * N) Vec {
  T v[N];
};

// ---------------------------------------------------------------------------
// Element-wise kernels over a dense buffer of n elements (64-bit indices).
// Each thread loads kUnroll vectors of VEC elements (16 bytes when VEC > 1) before
// computing; the n % VEC tail is done by the first threads of block 0.

// The one exception to selu_math.h's forward, for the float16 / bfloat16 kernels
// here: their results keep 11 / 8 bits, so SELU's negative branch need not carry
// float32's last bit: exp by the SFU (__expf, relative error ~2^-21) where x is below
// -ln2/2 (there expm1 = exp - 1 loses nothing), a Taylor polynomial to x^5 above
// (truncation < 1e-5 relative, 8e-6 at the switch point; far below half a float16
// ULP). About half the instructions of the float32 path, which matters because the
// 2-byte kernels are instruction-bound on Hopper. (The CPU's bfloat16 forward has a
// shortcut of its own, selu_math.h's SeluNegativeBFloat16, which keeps the float path's
// bits after rounding; its other 16-bit kernels take the float path.)
struct SeluNegative16 {
  __device__ __forceinline__ float operator()(float x) const {
    return static_cast<float>(kScaleAlpha) * expm1(x);
  }
  __device__ __forceinline__ float expm1(float x) const {
    float q = 1.0f / 120.0f;
    q = fmaf(q, x, 1.0f / 24.0f);
    q = fmaf(q, x, 1.0f / 6.0f);
    q = fmaf(q, x, 0.5f);
    const float near = fmaf(x * x, q, x);
    const float far = __expf(x) - 1.0f;  // NaN stays NaN here
    return x > -0.34657359f ? near : far;
  }
};

// The negative branch of SELU for storage type T.
template <typename T>
using NegativeFor = std::conditional_t<sizeof(T) == 2, SeluNegative16, SeluNegative>;

// v rounded to storage type T and back (selu_alpha_dropout_elem's `round`); exact,
// the identity, for float and double (their own compute types).
template <typename T>
struct RoundTo {
  static constexpr bool kExact = sizeof(T) > 2;
  template <typename A>
  __device__ __forceinline__ A operator()(A v) const {
    return to_acc(from_acc<T>(v));
  }
};

// Kernel functors: one element of each loop, in the compute type A, over selu_math.h.
template <typename T>
struct SeluKernel {
  template <typename A>
  __device__ __forceinline__ A operator()(A x) const {
    return selu_elem<A, NegativeFor<T>>(x);
  }
};

// From the forward's output; a 16-bit output saturates at scale*alpha rounded to 16
// bits (selu_backward_elem).
template <typename T>
struct SeluBackwardKernel {
  template <typename A>
  __device__ __forceinline__ A operator()(A grad, A y) const {
    return selu_backward_elem(grad, y, output_scale_alpha<A>(sizeof(T)));
  }
};

// From the forward's input: the output recomputed in registers.
template <typename T>
struct SeluBackwardFromInputKernel {
  template <typename A>
  __device__ __forceinline__ A operator()(A grad, A x) const {
    return selu_backward_from_input_elem<NegativeFor<T>>(grad, x);
  }
};

template <typename T, int VEC, typename F>
__global__ void __launch_bounds__(kThreads) unary_kernel(const T* x, T* y, int64_t n, F f) {
  using V = Vec<T, VEC>;
  const int64_t nvec = n / VEC;
  const int64_t base = static_cast<int64_t>(blockIdx.x) * (kThreads * kUnroll) + threadIdx.x;
  V in[kUnroll];
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int64_t iv = base + u * kThreads;
    if (iv < nvec) in[u] = reinterpret_cast<const V*>(x)[iv];
  }
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int64_t iv = base + u * kThreads;
    if (iv < nvec) {
      V out;
#pragma unroll
      for (int k = 0; k < VEC; ++k) out.v[k] = from_acc<T>(f(to_acc(in[u].v[k])));
      reinterpret_cast<V*>(y)[iv] = out;
    }
  }
  if (VEC > 1 && blockIdx.x == 0) {
    const int64_t i = nvec * VEC + threadIdx.x;
    if (i < n) y[i] = from_acc<T>(f(to_acc(x[i])));
  }
}

template <typename T, int VEC, typename F>
__global__ void __launch_bounds__(kThreads)
    binary_kernel(const T* a, const T* b, T* out, int64_t n, F f) {
  using V = Vec<T, VEC>;
  const int64_t nvec = n / VEC;
  const int64_t base = static_cast<int64_t>(blockIdx.x) * (kThreads * kUnroll) + threadIdx.x;
  V va[kUnroll], vb[kUnroll];
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int64_t iv = base + u * kThreads;
    if (iv < nvec) {
      va[u] = reinterpret_cast<const V*>(a)[iv];
      vb[u] = reinterpret_cast<const V*>(b)[iv];
    }
  }
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int64_t iv = base + u * kThreads;
    if (iv < nvec) {
      V o;
#pragma unroll
      for (int k = 0; k < VEC; ++k) o.v[k] = from_acc<T>(f(to_acc(va[u].v[k]), to_acc(vb[u].v[k])));
      reinterpret_cast<V*>(out)[iv] = o;
    }
  }
  if (VEC > 1 && blockIdx.x == 0) {
    const int64_t i = nvec * VEC + threadIdx.x;
    if (i < n) out[i] = from_acc<T>(f(to_acc(a[i]), to_acc(b[i])));
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

int64_t blocks_for(int64_t n, int vec) {
  const int64_t per_block = static_cast<int64_t>(kThreads) * kUnroll * vec;
  return (n + per_block - 1) / per_block;
}

template <typename T, typename F>
void launch_unary(const void* x, void* y, int64_t n, F f, cudaStream_t stream) {
  constexpr int VEC = 16 / sizeof(T);
  const T* xt = static_cast<const T*>(x);
  T* yt = static_cast<T*>(y);
  if (aligned16(x) && aligned16(y)) {
    launch(unary_kernel<T, VEC, F>, blocks_for(n, VEC), kThreads, stream, xt, yt, n, f);
  } else {
    launch(unary_kernel<T, 1, F>, blocks_for(n, 1), kThreads, stream, xt, yt, n, f);
  }
}

template <typename T, typename F>
void launch_binary(const void* a, const void* b, void* out, int64_t n, F f, cudaStream_t stream) {
  constexpr int VEC = 16 / sizeof(T);
  const T* at = static_cast<const T*>(a);
  const T* bt = static_cast<const T*>(b);
  T* ot = static_cast<T*>(out);
  if (aligned16(a) && aligned16(b) && aligned16(out)) {
    launch(binary_kernel<T, VEC, F>, blocks_for(n, VEC), kThreads, stream, at, bt, ot, n, f);
  } else {
    launch(binary_kernel<T, 1, F>, blocks_for(n, 1), kThreads, stream, at, bt, ot, n, f);
  }
}

// ---------------------------------------------------------------------------
// Dropout kernels: one thread per Philox counter group (selu.h): it computes one
// Philox call and handles elements first + 32 j, j < 8, where first is the group's
// first element. A warp's 32 threads cover 32 consecutive elements per j.

__device__ __forceinline__ void read_rng(const RngSource& r, uint64_t* seed, uint64_t* offset) {
  if (r.device_ptr != nullptr) {
    *seed = static_cast<uint64_t>(r.device_ptr[0]);
    *offset = static_cast<uint64_t>(r.device_ptr[1]);
  } else {
    *seed = r.seed;
    *offset = r.offset;
  }
}

// Dropout kernel functors: (input, second input or the first again, keep) -> output,
// in the storage type T. kMaskFromOutput: see SeluAlphaDropoutBackwardKernel.
template <typename A>
struct AlphaDropoutKernel {
  static constexpr bool kMaskFromOutput = false;
  AlphaDropoutParams<A> q;
  template <typename T>
  __device__ __forceinline__ T operator()(T x, T, bool keep) const {
    return from_acc<T>(alpha_dropout_elem(to_acc(x), keep, q));
  }
};

template <typename A>
struct AlphaDropoutBackwardKernel {
  static constexpr bool kMaskFromOutput = false;
  AlphaDropoutParams<A> q;
  template <typename T>
  __device__ __forceinline__ T operator()(T grad, T, bool keep) const {
    return from_acc<T>(alpha_dropout_backward_elem(to_acc(grad), keep, q));
  }
};

template <typename A>
struct SeluAlphaDropoutKernel {
  static constexpr bool kMaskFromOutput = false;
  AlphaDropoutParams<A> q;
  A kept_above;
  template <typename T>
  __device__ __forceinline__ T operator()(T x, T, bool keep) const {
    return from_acc<T>(
        selu_alpha_dropout_elem<NegativeFor<T>>(to_acc(x), keep, q, kept_above, RoundTo<T>{}));
  }
};

// The mask from the output, as the CPU's loop (cpu/vec_kernels.h,
// selu_alpha_dropout_backward_loop_t, which says why it is exact): a z that is not NaN
// is kept exactly when it differs from the dropped value, rounded to T (a kept unit
// stored as that value gets grad * 0 there too). Only a NaN z needs the Philox call.
template <typename A>
struct SeluAlphaDropoutBackwardKernel {
  static constexpr bool kMaskFromOutput = true;
  AlphaDropoutParams<A> q;
  template <typename T>
  __device__ __forceinline__ T operator()(T grad, T z, bool keep) const {
    return from_acc<T>(selu_alpha_dropout_backward_elem(to_acc(grad), to_acc(z), keep, q,
                                                        saturated_z<A>(q, RoundTo<T>{})));
  }
  template <typename T>
  __device__ __forceinline__ bool output_tells(T z) const {
    return !(to_acc(z) != to_acc(z));
  }
  template <typename T>
  __device__ __forceinline__ bool kept_by_output(T z) const {
    return to_acc(z) != to_acc(from_acc<T>(q.dropped));
  }
};

// Whether element j of counter group `group` is kept, given its 16 bits u of the
// group's Philox call and its second input z. A functor with kMaskFromOutput reads it
// from z where z tells, and draws the call afresh for the rare element where it does
// not (a NaN z): u is then unused, the call never made up front, and no thread keeps
// one in registers.
template <typename F, typename T>
__device__ __forceinline__ bool unit_kept(const F& f, T z, uint32_t u, uint64_t seed,
                                          uint64_t offset, uint64_t group, int j) {
  if constexpr (F::kMaskFromOutput) {
    if (f.output_tells(z)) return f.kept_by_output(z);
    u = dropout_half(dropout_random(seed, offset, group), j);
  }
  return dropout_keep(u, f.q.threshold, seed, offset, group, j);
}

// A thread per counter group: its 8 elements 32 j + t of a 256-element block (selu.h),
// in two passes of 4 (low halves, then high halves of the call's words), so that
// only 4 elements' inputs are live at a time, as when a call served 4 elements.
template <typename T, bool kTwoInputs, typename F>
__global__ void __launch_bounds__(kThreads)
    dropout_kernel(const T* in0, const T* in1, T* out, int64_t n, RngSource rng, F f) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t first = (g / kDropoutLanes) * kDropoutBlock + g % kDropoutLanes;
  if (first >= n) return;
  uint64_t seed, offset;
  read_rng(rng, &seed, &offset);
  Philox4 r{};
  if (!F::kMaskFromOutput) r = dropout_random(seed, offset, static_cast<uint64_t>(g));
#pragma unroll
  for (int h = 0; h < 8; h += 4) {
    T a[4], b[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t i = first + kDropoutLanes * (h + j);
      if (i < n) {
        a[j] = in0[i];
        if (kTwoInputs) b[j] = in1[i];
      }
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t i = first + kDropoutLanes * (h + j);
      if (i < n) {
        const T second = kTwoInputs ? b[j] : a[j];
        out[i] = f(a[j], second,
                   unit_kept(f, second, dropout_half(r, h + j), seed, offset, g, h + j));
      }
    }
  }
}

// The same with vector accesses: a thread takes V consecutive groups of one
// 256-element block (V Philox calls), so for each j its V elements are contiguous
// and load as one vector: 16 bytes for float and double, 8 for the 16-bit types,
// whose kernels are instruction-bound: with V = 8 they needed 119 registers and ran
// slower on the H100 than the scalar kernel. Two passes of 4 j, as above.
template <typename T>
constexpr int dropout_vec_width() {
  return sizeof(T) == 2 ? 4 : static_cast<int>(16 / sizeof(T));
}

// Register budget (ptxas -v: benchmarks/results/ptxas/): 3 blocks of 256 threads per
// SM, 80 registers a thread on sm_80/sm_90. The 16-bit kernels are bound by
// instructions (the Philox calls), whose dependent chains want more than 4 warps per
// scheduler to issue every cycle: 3 blocks give 6. The float32 kernels with one input
// spill under 80; they are bound by memory and keep ptxas's own choice (0: no
// minimum; an explicit 1 or 2 makes it take more registers still), 78-87 registers,
// 2 or 3 blocks: at 2, 512 threads x 4 x 16 B = 32 KB of loads in flight per SM, above the
// ~20 KB an H100's bandwidth times its memory latency asks for (3.35 TB/s x ~0.8 us
// / 132 SMs). CI fails on any spill (.ci/cuda_emulation.sh).
template <typename T, bool kTwoInputs>
constexpr int dropout_vec_min_blocks() {
  return sizeof(T) == 4 && !kTwoInputs ? 0 : 3;
}

template <typename T, bool kTwoInputs, typename F>
__global__ void __launch_bounds__(kThreads, (dropout_vec_min_blocks<T, kTwoInputs>()))
    dropout_vec_kernel(const T* in0, const T* in1, T* out, int64_t n, RngSource rng, F f) {
  constexpr int V = dropout_vec_width<T>();
  constexpr int kPerBlock = kDropoutLanes / V;  // threads per 256-element block
  using Vt = Vec<T, V>;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t block = tid / kPerBlock;
  const int lane = static_cast<int>(tid % kPerBlock) * V;
  const int64_t base = block * kDropoutBlock + lane;
  if (base >= n) return;
  uint64_t seed, offset;
  read_rng(rng, &seed, &offset);
  const uint64_t group = static_cast<uint64_t>(block) * kDropoutLanes + lane;
  Philox4 r[V] = {};
#pragma unroll
  for (int v = 0; v < V; ++v) {
    if (!F::kMaskFromOutput) r[v] = dropout_random(seed, offset, group + v);
  }
#pragma unroll
  for (int h = 0; h < 8; h += 4) {
    Vt a[4], b[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t i = base + kDropoutLanes * (h + j);
      if (i + V <= n) {
        a[j] = *reinterpret_cast<const Vt*>(in0 + i);
        if (kTwoInputs) b[j] = *reinterpret_cast<const Vt*>(in1 + i);
      } else {
#pragma unroll
        for (int v = 0; v < V; ++v) {
          if (i + v < n) {
            a[j].v[v] = in0[i + v];
            if (kTwoInputs) b[j].v[v] = in1[i + v];
          }
        }
      }
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t i = base + kDropoutLanes * (h + j);
      if (i >= n) break;
      Vt o;
#pragma unroll
      for (int v = 0; v < V; ++v) {
        const T second = kTwoInputs ? b[j].v[v] : a[j].v[v];
        o.v[v] = f(a[j].v[v], second,
                   unit_kept(f, second, dropout_half(r[v], h + j), seed, offset, group + v, h + j));
      }
      if (i + V <= n) {
        *reinterpret_cast<Vt*>(out + i) = o;
      } else {
#pragma unroll
        for (int v = 0; v < V; ++v) {
          if (i + v < n) out[i + v] = o.v[v];
        }
      }
    }
  }
}

__global__ void __launch_bounds__(kThreads)
    keep_mask_kernel(bool* out, int64_t n, RngSource rng, uint32_t threshold) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t first = (g / kDropoutLanes) * kDropoutBlock + g % kDropoutLanes;
  if (first >= n) return;
  uint64_t seed, offset;
  read_rng(rng, &seed, &offset);
  const Philox4 r = dropout_random(seed, offset, static_cast<uint64_t>(g));
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int64_t i = first + kDropoutLanes * j;
    if (i < n) {
      out[i] = dropout_keep(dropout_half(r, j), threshold, seed, offset,
                            static_cast<uint64_t>(g), j);
    }
  }
}

__global__ void write_rng_state_kernel(at::PhiloxCudaState state, int64_t* out) {
  if (state.captured_) {
    out[0] = *state.seed_.ptr;
    out[1] = static_cast<int64_t>(static_cast<uint64_t>(*state.offset_.ptr) +
                                  state.offset_intragraph_);
  } else {
    out[0] = static_cast<int64_t>(state.seed_.val);
    out[1] = static_cast<int64_t>(state.offset_.val);
  }
}

int64_t dropout_blocks(int64_t n) {
  const int64_t groups = (n + kDropoutBlock - 1) / kDropoutBlock * kDropoutLanes;
  return (groups + kThreads - 1) / kThreads;
}

template <typename T, bool kTwoInputs, template <typename> class Op>
void launch_dropout(const void* in0, const void* in1, void* out, int64_t n,
                    const DropoutLaunch& d, cudaStream_t stream) {
  using A = typename OpMath<T>::type;
  Op<A> op{make_alpha_dropout_params<A>(d.p, static_cast<A>(d.kept_bound))};
  // Only the fused forward stores kept units above the bound (selu.h).
  if constexpr (std::is_same_v<Op<A>, SeluAlphaDropoutKernel<A>>) {
    op.kept_above = static_cast<A>(d.kept_above);
  }
  const T* a = static_cast<const T*>(in0);
  const T* b = static_cast<const T*>(in1);
  T* o = static_cast<T*>(out);
  if (aligned16(a) && (!kTwoInputs || aligned16(b)) && aligned16(o)) {
    constexpr int V = dropout_vec_width<T>();
    const int64_t threads = (n + kDropoutBlock - 1) / kDropoutBlock * (kDropoutLanes / V);
    const int64_t blocks = (threads + kThreads - 1) / kThreads;
    launch(dropout_vec_kernel<T, kTwoInputs, Op<A>>, blocks, kThreads, stream, a, b, o, n, d.rng,
           op);
  } else {
    launch(dropout_kernel<T, kTwoInputs, Op<A>>, dropout_blocks(n), kThreads, stream, a, b, o, n,
           d.rng, op);
  }
}

// The launchers, one per Loops entry (kernel_args.h), each on the current stream.

template <typename T>
void launch_selu(const void* x, void* y, int64_t n) {
  launch_unary<T>(x, y, n, SeluKernel<T>{}, current_stream());
}

template <typename T>
void launch_selu_backward(const void* grad, const void* y, void* grad_x, int64_t n,
                          bool is_result) {
  if (is_result) {
    launch_binary<T>(grad, y, grad_x, n, SeluBackwardKernel<T>{}, current_stream());
  } else {
    launch_binary<T>(grad, y, grad_x, n, SeluBackwardFromInputKernel<T>{}, current_stream());
  }
}

template <typename T>
void launch_alpha_dropout(const void* x, void* z, int64_t n, const DropoutLaunch& args) {
  launch_dropout<T, false, AlphaDropoutKernel>(x, nullptr, z, n, args, current_stream());
}

template <typename T>
void launch_alpha_dropout_backward(const void* grad, void* grad_x, int64_t n,
                                   const DropoutLaunch& args) {
  launch_dropout<T, false, AlphaDropoutBackwardKernel>(grad, nullptr, grad_x, n, args,
                                                       current_stream());
}

template <typename T>
void launch_selu_alpha_dropout(const void* x, void* z, int64_t n, const DropoutLaunch& args) {
  launch_dropout<T, false, SeluAlphaDropoutKernel>(x, nullptr, z, n, args, current_stream());
}

template <typename T>
void launch_selu_alpha_dropout_backward(const void* grad, const void* z, void* grad_x, int64_t n,
                                        const DropoutLaunch& args) {
  launch_dropout<T, true, SeluAlphaDropoutBackwardKernel>(grad, z, grad_x, n, args,
                                                          current_stream());
}

void launch_dropout_keep_mask(bool* out, int64_t n, const DropoutLaunch& args) {
  launch(keep_mask_kernel, dropout_blocks(n), kThreads, current_stream(), out, n, args.rng,
         drop_threshold(args.p));
}

template <typename T>
constexpr Loops loops_for() {
  return {
      .selu_loop = launch_selu<T>,
      .selu_backward_loop = launch_selu_backward<T>,
      .alpha_dropout_loop = launch_alpha_dropout<T>,
      .alpha_dropout_backward_loop = launch_alpha_dropout_backward<T>,
      .selu_alpha_dropout_loop = launch_selu_alpha_dropout<T>,
      .selu_alpha_dropout_backward_loop = launch_selu_alpha_dropout_backward<T>,
      .dropout_keep_mask_loop = launch_dropout_keep_mask,
  };
}

// Rows in DType order.
static_assert(static_cast<int>(DType::kHalf) == 0 && static_cast<int>(DType::kBFloat16) == 1 &&
              static_cast<int>(DType::kFloat) == 2 && static_cast<int>(DType::kDouble) == 3);
const Loops kLoops[kDTypes] = {loops_for<__half>(), loops_for<__nv_bfloat16>(),
                               loops_for<float>(), loops_for<double>()};

}  // namespace

const Loops& loops(DType d) { return kLoops[static_cast<int>(d)]; }

void launch_write_rng_state(const at::PhiloxCudaState& state, int64_t* out, cudaStream_t stream) {
  launch(write_rng_state_kernel, 1, 1, stream, state, out);
}

}  // namespace selu_ext::cuda
