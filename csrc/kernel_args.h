// selu_ext: what every backend's loops take, and the table of them. No torch here, so
// the CUDA and per-instruction-set CPU translation units stay small.
#pragma once

#include <cstdint>

namespace selu_ext {

// The index of a dtype's row in a backend's table (Loops below); host.h's kernel_dtype
// maps torch's dtypes onto it.
enum class DType : int { kHalf = 0, kBFloat16 = 1, kFloat = 2, kDouble = 3 };
inline constexpr int kDTypes = 4;

// Where a dropout kernel finds its (seed, offset): values read on the host, or a
// device pointer to the two int64 values, read by the kernel itself, so a CUDA
// graph replays with the state of each replay.
struct RngSource {
  uint64_t seed = 0;
  uint64_t offset = 0;
  const int64_t* device_ptr = nullptr;
};

// One dropout call. kept_bound is the kept-unit offset b rounded to the tensor's
// dtype, kept_above the next value of that dtype above it (both exact in double; the
// fused forward stores kept units above the bound, see selu.h). begin is the index,
// in the whole tensor, of the buffers' first element, since an element's mask
// depends on it: the CPU runs a tensor in chunks (cpu/selu_cpu.cpp), a CUDA launch
// covers it whole (0).
struct DropoutLaunch {
  double p;
  double kept_bound;
  double kept_above;
  RngSource rng;
  int64_t begin = 0;

  DropoutLaunch from(int64_t first) const {
    DropoutLaunch d = *this;
    d.begin = first;
    return d;
  }
};

// One dtype's loops over dense buffers: each backend has a row per DType (the CPU one
// per instruction set, cpu/kernels.h; CUDA, cuda/launch.h), filled with the loop
// templates' instantiations, and host.h calls them. `y` of selu_backward_loop: the
// forward's output (is_result) or its input. dropout_keep_mask_loop is the same in
// every row (its output is bool).
struct Loops {
  void (*selu_loop)(const void* x, void* y, int64_t n);
  void (*selu_backward_loop)(const void* grad, const void* y, void* grad_x, int64_t n,
                             bool is_result);
  void (*alpha_dropout_loop)(const void* x, void* z, int64_t n, const DropoutLaunch&);
  void (*alpha_dropout_backward_loop)(const void* grad, void* grad_x, int64_t n,
                                      const DropoutLaunch&);
  void (*selu_alpha_dropout_loop)(const void* x, void* z, int64_t n, const DropoutLaunch&);
  void (*selu_alpha_dropout_backward_loop)(const void* grad, const void* z, void* grad_x,
                                           int64_t n, const DropoutLaunch&);
  void (*dropout_keep_mask_loop)(bool* out, int64_t n, const DropoutLaunch&);
};

}  // namespace selu_ext
