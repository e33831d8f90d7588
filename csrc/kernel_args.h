// selu_ext: the plain-data arguments every backend's loops take. No torch here, so
// the CUDA and per-instruction-set CPU translation units stay small.
#pragma once

#include <cstdint>

namespace selu_ext {

enum class DType : int { kHalf = 0, kBFloat16 = 1, kFloat = 2, kDouble = 3 };

// Where a dropout kernel finds its (seed, offset): values read on the host, or a
// device pointer to the two int64 values, read by the kernel itself, so a CUDA
// graph replays with the state of each replay.
struct RngSource {
  uint64_t seed = 0;
  uint64_t offset = 0;
  const int64_t* device_ptr = nullptr;
};

// One dropout call. kept_bound is the kept-unit offset b rounded to the tensor's
// dtype, kept_above the next value of that dtype above it (both exact in double);
// see selu.h for why the fused kernels need them.
struct DropoutLaunch {
  double p;
  double kept_bound;
  double kept_above;
  RngSource rng;
};

}  // namespace selu_ext
