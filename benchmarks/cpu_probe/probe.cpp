// selu_ext's CPU kernels timed alone (no torch, no threads): each kernel of the
// chosen variant against memcpy of the same bytes, per dtype, as the 5th
// percentile (MEDIAN=1: the median) of `reps` calls, in us and in cycles per 8
// elements at $GHZ. Built and run by run.sh; DT=<dtype number> runs one dtype.
// MARK=1: no timing; each kernel is called once between two SIGSTOPs for count.cpp,
// after a label "<dtype> <kernel> " on stdout ("marks": the empty span).
#include <chrono>
#include <csignal>
#include <functional>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <algorithm>
#include <random>
#include "cpu/kernels.h"

using namespace selu_ext;
using namespace selu_ext::cpu;
static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
template <class F> double med(F f, int reps) {
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) { double a = now(); f(); t.push_back(now() - a); }
  std::sort(t.begin(), t.end()); return getenv("MEDIAN") ? t[t.size() / 2] : t[t.size() / 20];
}
int main(int argc, char** argv) {
  int64_t n = argc > 1 ? atoll(argv[1]) : 65536;
  int reps = argc > 2 ? atoi(argv[2]) : 201;
  const char* which = argc > 3 ? argv[3] : "avx2";
  const Kernels* kp = nullptr;
  for (const Kernels* c : {kernels_baseline(), kernels_avx2(), kernels_avx512(), kernels_avx512_bf16()})
    if (c != nullptr && std::strcmp(c->name, which) == 0) kp = c;
  if (kp == nullptr) { std::fprintf(stderr, "no variant %s\n", which); return 2; }
  const Kernels& k = *kp;
  std::vector<float> x(n), y(n), g(n), z(n);
  std::mt19937 rng(1); std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& v : x) v = nd(rng);
  for (auto& v : g) v = nd(rng);
  DropoutLaunch dl{0.1, 0.0, 0.0, {123, 0, nullptr}};
  // kept_bound: b rounded to float, as the host code computes it for float32
  { double p = 0.1; double sa = 1.7580993408473766; double a = 1.0/std::sqrt((sa*sa*p+1)*(1-p)); dl.kept_bound = (float)(sa*a*p); dl.kept_above = std::nextafter((float)dl.kept_bound, 1.f); }
  const double ghz = getenv("GHZ") ? atof(getenv("GHZ")) : 2.445;
  for (int round = 0; round < (argc > 4 ? atoi(argv[4]) : 3); ++round) {
  for (DType d : {DType::kFloat, DType::kBFloat16, DType::kHalf}) {
    if (getenv("DT") && atoi(getenv("DT")) != (int)d) continue;
    int64_t es = d == DType::kFloat ? 4 : 2;
    // 16-bit inputs: the upper halves of the floats (bfloat16; as float16 bits, a mix of magnitudes)
    std::vector<uint16_t> xh(n), gh(n), zh(n), yh(n);
    if (es == 2) { for (int64_t i = 0; i < n; ++i) { uint32_t u; std::memcpy(&u, &x[i], 4); xh[i] = u >> 16; std::memcpy(&u, &g[i], 4); gh[i] = u >> 16; } }
    const void* X = es == 4 ? (void*)x.data() : (void*)xh.data();
    const void* G = es == 4 ? (void*)g.data() : (void*)gh.data();
    void* Y = es == 4 ? (void*)y.data() : (void*)yh.data();
    void* Z = es == 4 ? (void*)z.data() : (void*)zh.data();
    const Loops& l = k.loops[(int)d];
    l.selu_loop(X, Y, n);
    if (getenv("MARK")) {
      const std::pair<const char*, std::function<void()>> calls[] = {
          {"marks", [] {}},
          {"selu_loop", [&] { l.selu_loop(X, Y, n); }},
          {"selu_backward_loop", [&] { l.selu_backward_loop(G, Y, Z, n, true); }},
          {"alpha_dropout_loop", [&] { l.alpha_dropout_loop(X, Z, n, dl); }},
          {"alpha_dropout_backward_loop", [&] { l.alpha_dropout_backward_loop(G, Z, n, dl); }},
          {"selu_alpha_dropout_loop", [&] { l.selu_alpha_dropout_loop(X, Z, n, dl); }},
          {"selu_alpha_dropout_backward_loop",
           [&] { l.selu_alpha_dropout_backward_loop(G, Z, Y, n, dl); }}};
      for (const auto& [name, call] : calls) {
        std::printf("%d %s ", (int)d, name);
        std::fflush(stdout);
        raise(SIGSTOP);
        call();
        raise(SIGSTOP);
      }
      continue;
    }
    double tc = 0, tf = 0, tb = 0, tdf = 0, tdb = 0, tsf = 0, tsb = 0;
    tc = med([&] { std::memcpy(Y, X, n * es); }, reps);
    tf = med([&] { l.selu_loop(X, Y, n); }, reps);
    tc = std::min(tc, med([&] { std::memcpy(Z, X, n * es); }, reps));
    tb = med([&] { l.selu_backward_loop(G, Y, Z, n, true); }, reps);
    tdf = med([&] { l.alpha_dropout_loop(X, Z, n, dl); }, reps);
    tdb = med([&] { l.alpha_dropout_backward_loop(G, Z, n, dl); }, reps);
    tsf = med([&] { l.selu_alpha_dropout_loop(X, Z, n, dl); }, reps);
    tsb = med([&] { l.selu_alpha_dropout_backward_loop(G, Z, Y, n, dl); }, reps);
    auto cyc = [&](double t) { return t * ghz * 1e9 / (n / 8.0); };
    std::printf("%s n=%lld dtype=%d  cycles/8: copy %.1fus %.2f | selu fwd %.1fus %.2f (%.0f%% of copy) | bwd %.1fus %.2f | alpha_dropout fwd %.2f bwd %.2f | fused fwd %.2f bwd %.2f\n",
      k.name, (long long)n, (int)d, tc*1e6, cyc(tc), tf*1e6, cyc(tf), 100*tc/tf, tb*1e6, cyc(tb), cyc(tdf), cyc(tdb), cyc(tsf), cyc(tsb));
  }
  }
}
