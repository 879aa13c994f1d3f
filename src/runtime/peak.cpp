// The fp32 FMA peak of one core, measured: the reference for "% of peak" in profiles. A
// calibration loop, not an operator kernel: twelve independent FMA chains (enough to cover
// the FMA latency on two pipes) over the widest vectors the CPU has, best of a few short runs.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <mutex>

#include "kiln/kiln.h"

namespace kiln {

namespace {

constexpr int kChains = 12;

// One body for both vector widths; each instantiation is compiled for its own ISA.
#define KILN_FMA_CHAINS(V, SET1, FMADD, LANES)                                   \
  V acc[kChains];                                                                \
  V a = SET1(0.999999f), b = SET1(1e-7f);                                        \
  for (int c = 0; c < kChains; ++c) acc[c] = SET1(float(c));                     \
  for (long i = 0; i < iters; ++i)                                               \
    _Pragma("GCC unroll 12") for (int c = 0; c < kChains; ++c) acc[c] = FMADD(acc[c], a, b); \
  float sum = 0;                                                                 \
  for (int c = 0; c < kChains; ++c) sum += reinterpret_cast<const float*>(&acc[c])[0]; \
  *sink = sum;                                                                   \
  return 2.0 * LANES * kChains * double(iters);

__attribute__((target("avx512f"))) double run512(long iters, volatile float* sink) {
  KILN_FMA_CHAINS(__m512, _mm512_set1_ps, _mm512_fmadd_ps, 16)
}
__attribute__((target("avx2,fma"))) double run256(long iters, volatile float* sink) {
  KILN_FMA_CHAINS(__m256, _mm256_set1_ps, _mm256_fmadd_ps, 8)
}
#undef KILN_FMA_CHAINS

double measure() {
  bool wide = __builtin_cpu_supports("avx512f");
  if (!wide && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return 0;
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    volatile float sink = 0;
    double flops = wide ? run512(400000, &sink) : run256(800000, &sink);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, flops / s / 1e9);
  }
  return best;
}

}  // namespace

double measured_fp32_peak_gflops() {
  static std::once_flag once;
  static double peak = 0;
  std::call_once(once, [] { peak = measure(); });
  return peak;
}

}  // namespace kiln
