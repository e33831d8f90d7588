// selu_ext CPU backend: what host.h's ops need from the CPU (the loops of the SIMD
// variant chosen at run time, dispatch.cpp; the work split over at::parallel_for) and
// the registration of the CPU kernels.
#include <ATen/Parallel.h>
#include <ATen/core/Generator.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cstdint>
#include <algorithm>
#include <mutex>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "../host.h"
#include "kernels.h"

namespace selu_ext {
namespace {

// Elements per task: large enough that a task outweighs waking a thread.
constexpr int64_t kGrain = 32768;
constexpr int64_t kGrainBlocks = kGrain / kDropoutBlock;

struct CpuBackend {
  struct Guard {
    explicit Guard(c10::Device) {}
  };

  // The loops of the variant in use (dispatch.cpp) for one dtype.
  static const Loops& loops(at::ScalarType dtype) {
    return cpu::active().loops[static_cast<int>(kernel_dtype(dtype))];
  }

  // f(begin, m) over [0, n) in chunks on at::parallel_for's threads.
  template <typename F>
  static void run(int64_t n, F f) {
    at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) { f(b, e - b); });
  }

  // The same for dropout, split on 256-element block boundaries, where the mask
  // layout (selu.h) repeats, so every chunk starts at a block.
  template <typename F>
  static void run_blocks(int64_t n, F f) {
    const int64_t blocks = (n + kDropoutBlock - 1) / kDropoutBlock;
    at::parallel_for(0, blocks, kGrainBlocks, [&](int64_t b, int64_t e) {
      const int64_t begin = b * kDropoutBlock;
      f(begin, std::min(n, e * kDropoutBlock) - begin);
    });
  }

  // A fresh output of many megabytes costs one page fault per 4 KiB on its first
  // write, and on Linux those faults, not the arithmetic, dominate a 64 MB output
  // (measured: 26 of 33 ms for 16M float32 SELU on a 2-core x86-64 VM). Where
  // transparent huge pages are enabled in "madvise" mode, ask for them on the
  // output's whole 2 MiB pages: one fault per 2 MiB. A hint only; contents and
  // ownership are untouched.
  static void fresh_output(const at::Tensor& out) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    constexpr uintptr_t kHuge = uintptr_t(2) << 20;
    const size_t bytes = out.nbytes();
    if (bytes < 4 * kHuge) return;
    const auto begin = reinterpret_cast<uintptr_t>(out.const_data_ptr());
    const uintptr_t lo = (begin + kHuge - 1) & ~(kHuge - 1);
    const uintptr_t hi = (begin + bytes) & ~(kHuge - 1);
    if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
#else
    (void)out;
#endif
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(selu_ext, CPU, m) { host::register_kernels<CpuBackend>(m); }

// dropout_rng_state has no tensor argument, so the dispatcher cannot route it by
// device: ops.cpp registers it for CompositeExplicitAutograd and calls this for the CPU.
// (seed, offset) for one CPU dropout call: a fresh 64-bit seed drawn from torch's
// default CPU generator (so torch.manual_seed reproduces a run), offset 0.
at::Tensor dropout_rng_state_for_cpu(c10::Device device) {
  SELU_EXT_CHECK(device.is_cpu(), "selu_ext::dropout_rng_state: CPU kernel called for %s",
                 device.str().c_str());
  auto gen = at::get_generator_or_default<at::CPUGeneratorImpl>(std::nullopt,
                                                                at::detail::getDefaultCPUGenerator());
  uint64_t seed;
  {
    std::lock_guard<std::mutex> lock(gen->mutex_);
    seed = gen->random64();
  }
  at::Tensor out = at::empty({2}, at::TensorOptions().dtype(at::kLong));
  out.mutable_data_ptr<int64_t>()[0] = static_cast<int64_t>(seed);
  out.mutable_data_ptr<int64_t>()[1] = 0;
  return out;
}

}  // namespace selu_ext
