// selu_ext CPU backend: splits the work over at::parallel_for and runs the SIMD
// variant chosen at run time (dispatch.cpp); registers the CPU kernels.
#include <ATen/Parallel.h>
#include <ATen/core/Generator.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "../host.h"
#include "../op_list.h"
#include "kernels.h"

namespace selu_ext {
namespace {

// Elements per task: large enough that a task outweighs waking a thread.
constexpr int64_t kGrain = 32768;
constexpr int64_t kGrainBlocks = kGrain / kDropoutBlock;

int64_t element_size(DType d) { return d == DType::kDouble ? 8 : d == DType::kFloat ? 4 : 2; }

struct CpuBackend {
  struct Guard {
    explicit Guard(c10::Device) {}
  };

  // The loops read each element before writing it, at the same index, so a backward
  // can write into its incoming gradient (host.h's GradBufferOffer).
  static constexpr bool kReusesGradBuffer = true;

  // A fresh output of many megabytes costs one page fault per 4 KiB on its first
  // write, and on Linux those faults, not the arithmetic, dominate a 64 MB output
  // (measured: 26 of 33 ms for 16M float32 SELU on a 2-core x86-64 VM). Where
  // transparent huge pages are enabled in "madvise" mode, ask for them on the
  // output's whole 2 MiB pages: one fault per 2 MiB. A hint only; contents and
  // ownership are untouched. SELU_EXT_HUGEPAGES=0 turns it off.
  static void fresh_output(const at::Tensor& out) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    static const bool enabled = [] {
      const char* e = std::getenv("SELU_EXT_HUGEPAGES");
      return e == nullptr || std::string(e) != "0";
    }();
    constexpr uintptr_t kHuge = uintptr_t(2) << 20;
    const size_t bytes = out.nbytes();
    if (!enabled || bytes < 4 * kHuge) return;
    const auto begin = reinterpret_cast<uintptr_t>(out.const_data_ptr());
    const uintptr_t lo = (begin + kHuge - 1) & ~(kHuge - 1);
    const uintptr_t hi = (begin + bytes) & ~(kHuge - 1);
    if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
#else
    (void)out;
#endif
  }

  static void selu_loop(DType d, const void* x, void* y, int64_t n) {
    const auto& k = cpu::active();
    const int64_t es = element_size(d);
    at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
      k.selu_loop(d, static_cast<const char*>(x) + b * es, static_cast<char*>(y) + b * es, e - b);
    });
  }

  static void selu_backward_loop(DType d, const void* g, const void* y, void* gx, int64_t n,
                                 bool is_result) {
    const auto& k = cpu::active();
    const int64_t es = element_size(d);
    at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
      k.selu_backward_loop(d, static_cast<const char*>(g) + b * es,
                           static_cast<const char*>(y) + b * es,
                           static_cast<char*>(gx) + b * es, e - b, is_result);
    });
  }

  // Dropout work is split on 256-element block boundaries, where the mask layout
  // (selu.h) repeats, so every task starts at a block.
  template <typename F>
  static void over_blocks(int64_t n, F f) {
    const int64_t blocks = (n + kDropoutBlock - 1) / kDropoutBlock;
    at::parallel_for(0, blocks, kGrainBlocks, [&](int64_t b, int64_t e) {
      const int64_t begin = b * kDropoutBlock;
      const int64_t end = std::min(n, e * kDropoutBlock);
      f(begin, end - begin);
    });
  }

  static void alpha_dropout_loop(DType d, const void* x, void* z, int64_t n,
                                 const DropoutLaunch& launch) {
    const auto& k = cpu::active();
    const auto& a = launch;
    const int64_t es = element_size(d);
    over_blocks(n, [&](int64_t begin, int64_t m) {
      k.alpha_dropout_loop(d, static_cast<const char*>(x) + begin * es,
                           static_cast<char*>(z) + begin * es, begin, m, a);
    });
  }

  static void alpha_dropout_backward_loop(DType d, const void* g, void* gx, int64_t n,
                                          const DropoutLaunch& launch) {
    const auto& k = cpu::active();
    const auto& a = launch;
    const int64_t es = element_size(d);
    over_blocks(n, [&](int64_t begin, int64_t m) {
      k.alpha_dropout_backward_loop(d, static_cast<const char*>(g) + begin * es,
                                    static_cast<char*>(gx) + begin * es, begin, m, a);
    });
  }

  static void selu_alpha_dropout_loop(DType d, const void* x, void* z, int64_t n,
                                      const DropoutLaunch& launch) {
    const auto& k = cpu::active();
    const auto& a = launch;
    const int64_t es = element_size(d);
    over_blocks(n, [&](int64_t begin, int64_t m) {
      k.selu_alpha_dropout_loop(d, static_cast<const char*>(x) + begin * es,
                                static_cast<char*>(z) + begin * es, begin, m, a);
    });
  }

  static void selu_alpha_dropout_backward_loop(DType d, const void* g, const void* z, void* gx,
                                               int64_t n, const DropoutLaunch& launch) {
    const auto& k = cpu::active();
    const auto& a = launch;
    const int64_t es = element_size(d);
    over_blocks(n, [&](int64_t begin, int64_t m) {
      k.selu_alpha_dropout_backward_loop(d, static_cast<const char*>(g) + begin * es,
                                         static_cast<const char*>(z) + begin * es,
                                         static_cast<char*>(gx) + begin * es, begin, m, a);
    });
  }

  static void dropout_keep_mask_loop(bool* out, int64_t n, const DropoutLaunch& launch) {
    const auto& k = cpu::active();
    const auto& a = launch;
    over_blocks(n, [&](int64_t begin, int64_t m) {
      k.dropout_keep_mask_loop(out + begin, begin, m, a);
    });
  }

  static RngSource rng_source(const at::Tensor& rng_state, const at::Tensor& input,
                              const char* op) {
    SELU_EXT_CHECK(rng_state.device().is_cpu(),
                   "selu_ext::%s: 'rng_state' must be on the CPU for a CPU input, but it is on %s",
                   op, rng_state.device().str().c_str());
    (void)input;
    const int64_t* v = rng_state.const_data_ptr<int64_t>();
    RngSource r;
    r.seed = static_cast<uint64_t>(v[0]);
    r.offset = static_cast<uint64_t>(v[1]);
    return r;
  }
};

// (seed, offset) for one CPU dropout call: a fresh 64-bit seed drawn from torch's
// default CPU generator (so torch.manual_seed reproduces a run), offset 0.
at::Tensor dropout_rng_state_cpu(c10::Device device) {
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

}  // namespace

TORCH_LIBRARY_IMPL(selu_ext, CPU, m) {
#define SELU_EXT_IMPL(name, kind, ...) m.impl(#name, &host::name<CpuBackend>);
  SELU_EXT_OPS(SELU_EXT_IMPL)
#undef SELU_EXT_IMPL
}

// dropout_rng_state has no tensor argument, so the dispatcher cannot route it by
// device; it is registered for CompositeExplicitAutograd in ops.cpp and forwards
// here or to the CUDA implementation.
at::Tensor dropout_rng_state_for_cpu(c10::Device device) { return dropout_rng_state_cpu(device); }

}  // namespace selu_ext
