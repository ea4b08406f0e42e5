// expArray / logArray (kernels/exact_exp_log.h) against the plain std::exp / std::log loop, in CPU ns per element
// (this thread's CPU time, the minimum of 5 interleaved rounds), on rows of arcee_fusion's ranges that fit L1/L2:
//   g++ -std=c++17 -O3 -ffp-contract=off -fno-math-errno -Inative native/tests/exact_exp_log_bench.cc native/kernels/*.cc
//       -o /tmp/exact_exp_log_bench && /tmp/exact_exp_log_bench [row_length]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <vector>

#include "kernels/cpu_backends.h"
#include "kernels/exact_exp_log.h"
#include "kernels/kernels.h"

namespace {

double cpuNs() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t L = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 4096;
  const size_t rounds = (size_t(1) << 23) / L + 1;
  std::mt19937_64 g(42);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<double> x(L), ratio(L), out(L);
  for (size_t i = 0; i < L; ++i) {
    x[i] = static_cast<double>(static_cast<float>(-40 * u(g)));  // v - rowmax
    const double p = std::exp(-25 * u(g)) + 1e-8, q = std::exp(-25 * u(g)) + 1e-8;
    ratio[i] = p / q;
  }
  // Path 0: std:: loops; 1: AVX2; 2: AVX-512 (where the CPU has it).
  auto setPath = [](int path) {
    wm::setSimdEnabled(path != 0);
#if defined(WM_HAVE_AVX2_BACKEND)
    wm::avx2::setAvx512Enabled(path == 2);
#endif
  };
  const char* names[] = {"std::", "AVX2", "AVX-512"};
  double best[2][3] = {{1e99, 1e99, 1e99}, {1e99, 1e99, 1e99}};
  size_t fallbacks[2][3] = {};
  volatile double sink = 0;
  for (int t = 0; t < 5; ++t) {
    for (int f = 0; f < 2; ++f) {
      for (int path = 0; path < 3; ++path) {
        setPath(path);
        const double t0 = cpuNs();
        size_t fb = 0;
        for (size_t r = 0; r < rounds; ++r) {
          fb += f == 0 ? wm::expArrayCounting(x.data(), out.data(), L) : wm::logArrayCounting(ratio.data(), out.data(), L);
          sink = sink + out[r % L];
        }
        const double ns = (cpuNs() - t0) / static_cast<double>(rounds * L);
        if (ns < best[f][path]) best[f][path] = ns;
        fallbacks[f][path] = fb;
      }
    }
  }
  std::printf("simd path: %s; row length %zu, CPU ns/element, min of 5 interleaved rounds\n", wm::simdPathName(), L);
  for (int f = 0; f < 2; ++f) {
    for (int path = 0; path < 3; ++path) {
      std::printf("  %s %-8s %.2f ns  (libm on %.2f%% of lanes)\n", f == 0 ? "exp" : "log", names[path], best[f][path],
                  100.0 * static_cast<double>(fallbacks[f][path]) / static_cast<double>(rounds * L));
    }
  }
  return 0;
}
