// Run-time choice of the CPU kernel variant: the widest instruction set both
// compiled in and supported by this CPU (and its OS, which libgcc's cpu checks
// verify through XGETBV), unless SELU_EXT_CPU_CAPABILITY asks for a narrower one.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace selu_ext::cpu {
namespace {

struct Variant {
  const char* name;
  const Kernels* (*get)();
  bool (*cpu_has)();
};

bool always() { return true; }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// F16C and LZCNT straight from CPUID: not every compiler's __builtin_cpu_supports
// names them (clang's older lists do not).
bool has_f16c_lzcnt() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 29))) return false;  // F16C
  if (!__get_cpuid(0x80000001u, &a, &b, &c, &d) || !(c & (1u << 5))) return false;  // LZCNT
  return true;
}

bool has_avx2() {
  // Every feature the avx2 and avx512 variants are compiled for (their #pragma GCC
  // target): a VM's CPU model may expose AVX2 and mask F16C, and the float16
  // conversions would then fault instead of falling back to the baseline variant.
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
         __builtin_cpu_supports("popcnt") && has_f16c_lzcnt();
}

bool has_avx512() {
  return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

// AVX512_BF16 from CPUID leaf 7, subleaf 1 (EAX bit 5), as F16C above: older compilers'
// __builtin_cpu_supports lists lack it.
bool has_avx512_bf16() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return has_avx512() && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
}
#else
// Other architectures and compilers (MSVC included) build the baseline variant only
// (kernels_avx2.cpp / kernels_avx512.cpp return nullptr there), so no CPU check runs.
bool has_avx2() { return false; }
bool has_avx512() { return false; }
bool has_avx512_bf16() { return false; }
#endif

// Narrowest first.
const Variant kVariants[] = {
    {"baseline", kernels_baseline, always},
    {"avx2", kernels_avx2, has_avx2},
    {"avx512", kernels_avx512, has_avx512},
    {"avx512_bf16", kernels_avx512_bf16, has_avx512_bf16},
};

const Kernels* usable(const Variant& v) { return v.get() != nullptr && v.cpu_has() ? v.get() : nullptr; }

const Kernels* pick_default() {
  const Kernels* best = nullptr;
  for (const auto& v : kVariants) {
    if (const Kernels* k = usable(v)) best = k;
  }
  if (const char* env = std::getenv("SELU_EXT_CPU_CAPABILITY")) {
    for (const auto& v : kVariants) {
      if (std::strcmp(env, v.name) == 0 && usable(v)) return usable(v);
    }
    // An unknown or unsupported request keeps the best variant; build_info() shows
    // which one is in use.
  }
  return best;
}

std::atomic<const Kernels*> g_active{nullptr};

std::string join(bool supported_only) {
  std::string out;
  for (const auto& v : kVariants) {
    if (v.get() == nullptr || (supported_only && !v.cpu_has())) continue;
    if (!out.empty()) out += ",";
    out += v.name;
  }
  return out;
}

}  // namespace

const Kernels& active() {
  const Kernels* k = g_active.load(std::memory_order_acquire);
  if (k == nullptr) {
    k = pick_default();
    g_active.store(k, std::memory_order_release);
  }
  return *k;
}

const char* compiled_capabilities() {
  static const std::string s = join(false);
  return s.c_str();
}

const char* supported_capabilities() {
  static const std::string s = join(true);
  return s.c_str();
}

bool set_capability(const char* name) {
  for (const auto& v : kVariants) {
    if (std::strcmp(name, v.name) == 0) {
      if (const Kernels* k = usable(v)) {
        g_active.store(k, std::memory_order_release);
        return true;
      }
      return false;
    }
  }
  return false;
}

}  // namespace selu_ext::cpu
