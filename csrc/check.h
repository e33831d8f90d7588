// Argument checks whose messages are formatted with snprintf, not c10::str.
//
// TORCH_CHECK builds a message with more than one argument through a
// std::ostringstream instantiated in this library. On the H100 machine (torch 2.11,
// selu_ext compiled by /opt/gcc/bin/g++; benchmarks/results/h100/README.md) every
// such message that inserted a number or a shape crashed the process with a
// segmentation fault, while all-text messages raised cleanly, and the same tests
// pass on the CPU machines. The cause is not confirmed: the leading suspect is that
// toolchain's libstdc++ headers against the libstdc++ loaded at run time. The
// std::string ABI is ruled out (setup.py states torch's; a mismatched build fails to
// load at all). SELU_EXT_CHECK formats in a stack buffer with the C library and hands
// libc10 one const char*, so raising an error runs no stream or locale code of ours
// on any toolchain. Not yet rerun on a GPU.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/Layout.h>
#include <c10/util/ArrayRef.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <string>

namespace selu_ext {

// Messages are cut at this many bytes; every message of this library fits.
inline constexpr size_t kMessageBytes = 1024;

// GCC and clang check the format against the arguments; MSVC has no such attribute.
#if defined(__GNUC__) || defined(__clang__)
#define SELU_EXT_PRINTF_COLD __attribute__((format(printf, 4, 5), noinline, cold))
#else
#define SELU_EXT_PRINTF_COLD __declspec(noinline)
#endif

// kNotImplemented: raise NotImplementedError (c10::NotImplementedError), PyTorch's
// exception for a dtype an op has no kernel for, which `except NotImplementedError`
// handlers catch; otherwise RuntimeError (c10::Error).
template <bool kNotImplemented = false>
[[noreturn]] SELU_EXT_PRINTF_COLD inline void check_failed(
    const char* func, const char* file, unsigned line, const char* fmt, ...) {
  char msg[kMessageBytes];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(msg, sizeof msg, fmt, args);
  va_end(args);
  if constexpr (kNotImplemented) {
    throw c10::NotImplementedError(c10::SourceLocation{func, file, static_cast<uint32_t>(line)},
                                   std::string(msg));
  } else {
    c10::detail::torchCheckFail(func, file, static_cast<uint32_t>(line), msg);
  }
}

// Text for a shape, as c10 prints one ("[2, 3]"), in a fixed buffer.
struct ShapeText {
  char s[256];
  explicit ShapeText(c10::IntArrayRef sizes) {
    size_t n = 0;
    auto put = [&](const char* piece) {
      const int w = std::snprintf(s + n, sizeof s - n, "%s", piece);
      if (w > 0) n = std::min(sizeof s - 1, n + static_cast<size_t>(w));
    };
    s[0] = '\0';
    put("[");
    char num[24];
    for (size_t i = 0; i < sizes.size(); ++i) {
      std::snprintf(num, sizeof num, "%s%lld", i ? ", " : "", static_cast<long long>(sizes[i]));
      put(num);
    }
    put("]");
  }
  const char* c_str() const { return s; }
};

inline const char* layout_name(c10::Layout layout) {
  switch (layout) {
    case c10::kStrided:
      return "Strided";
    case c10::kSparse:
      return "Sparse";
    case c10::kSparseCsr:
      return "SparseCsr";
    case c10::kSparseCsc:
      return "SparseCsc";
    case c10::kSparseBsr:
      return "SparseBsr";
    case c10::kSparseBsc:
      return "SparseBsc";
    case c10::kMkldnn:
      return "Mkldnn";
    case c10::kJagged:
      return "Jagged";
    default:
      return "an unknown layout";
  }
}

}  // namespace selu_ext

// SELU_EXT_CHECK(cond, "printf format", args...): RuntimeError (c10::Error) with
// the formatted message when cond is false. Device names: device.str().c_str().
#define SELU_EXT_CHECK(cond, ...)                                           \
  do {                                                                      \
    if (C10_UNLIKELY(!(cond))) {                                            \
      ::selu_ext::check_failed(__func__, __FILE__, __LINE__, __VA_ARGS__); \
    }                                                                       \
  } while (0)

// SELU_EXT_CHECK_NOT_IMPLEMENTED(cond, "printf format", args...): NotImplementedError.
#define SELU_EXT_CHECK_NOT_IMPLEMENTED(cond, ...)                              \
  do {                                                                         \
    if (C10_UNLIKELY(!(cond))) {                                               \
      ::selu_ext::check_failed<true>(__func__, __FILE__, __LINE__, __VA_ARGS__); \
    }                                                                          \
  } while (0)
