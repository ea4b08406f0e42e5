// Single-thread kernel throughput against memcpy, in bytes moved per second (reads + writes).
//   g++ -std=c++17 -O3 -ffp-contract=off -Inative native/tests/kernels_bench.cc native/kernels/*.cc
//       -o /tmp/kernels_bench && /tmp/kernels_bench [elements_large] [elements_small]
// "large" works out of DRAM; "small" fits L2, like one of the executor's blocks.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/numerics.h"

using wm::Dtype;
using Clock = std::chrono::steady_clock;

// Best-of timings of f and of a memcpy of one bf16 tensor, interleaved so that both see the same
// machine state (this box has noisy neighbours); the ratio is taken between the two bests.
struct Timing {
  double kernel, memcpy;
};

static Timing bestSeconds(const std::function<void()>& f, const std::function<void()>& copy, double budget) {
  f();  // warm up: page faults, caches
  copy();
  Timing best{1e30, 1e30};
  double spent = 0;
  int reps = 0;
  while ((spent < budget || reps < 5) && reps < 2000) {
    auto t0 = Clock::now();
    f();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    t0 = Clock::now();
    copy();
    const double c = std::chrono::duration<double>(Clock::now() - t0).count();
    best.kernel = std::min(best.kernel, s);
    best.memcpy = std::min(best.memcpy, c);
    spent += s + c;
    ++reps;
  }
  return best;
}

struct Row {
  std::string name;
  double bytes;
  Timing t;
};

static void bench(size_t n, const char* label) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 0.03f);
  std::vector<uint16_t> a(n), b(n), o16(n);
  std::vector<float> af(n), bf(n), of(n);
  for (size_t i = 0; i < n; ++i) {
    af[i] = dist(rng);
    bf[i] = af[i] + dist(rng) * 0.1f;
    a[i] = wm::num::f32ToBF16(af[i]);
    b[i] = wm::num::f32ToBF16(bf[i]);
  }
  const double budget = 1.0;
  std::vector<Row> rows;
  const double memBytes = 2.0 * 2 * n;  // memcpy of one bf16 tensor: read + write
  auto copy = [&] { std::memcpy(o16.data(), a.data(), 2 * n); };
  auto add = [&](const std::string& name, double bytes, const std::function<void()>& f) {
    rows.push_back({name, bytes, bestSeconds(f, copy, budget)});
  };
  for (bool simd : {true, false}) {
    wm::setSimdEnabled(simd);
    const std::string path = simd ? "simd" : "scalar";
    add("lerpExact bf16,bf16->bf16 " + path, 6.0 * n, [&] {
                      wm::lerpExact(a.data(), Dtype::BF16, b.data(), Dtype::BF16, o16.data(), Dtype::BF16, n, 0.8f);
                    });
    add("lerpMi bf16->bf16 " + path, 6.0 * n, [&] {
                      wm::lerpMi(a.data(), b.data(), Dtype::BF16, o16.data(), Dtype::BF16, n, 0.8f);
                    });
    add("lerpExact f32,f32->bf16 " + path, 10.0 * n, [&] {
                      wm::lerpExact(af.data(), Dtype::F32, bf.data(), Dtype::F32, o16.data(), Dtype::BF16, n, 0.3f);
                    });
    add("convert bf16->f32 " + path, 6.0 * n, [&] {
                      wm::convert(a.data(), Dtype::BF16, of.data(), Dtype::F32, n);
                    });
    add("convert f32->f16 " + path, 6.0 * n, [&] {
                      wm::convert(af.data(), Dtype::F32, o16.data(), Dtype::F16, n);
                    });
    const void* srcs[3] = {a.data(), b.data(), a.data()};
    const Dtype types[3] = {Dtype::BF16, Dtype::BF16, Dtype::BF16};
    const float w[3] = {0.5f, 0.3f, 0.2f};
    add("linear 3 x bf16->bf16 " + path, 8.0 * n, [&] {
                      wm::linear(srcs, types, w, 3, o16.data(), Dtype::BF16, n);
                    });
    add("moments bf16,bf16 " + path, 4.0 * n, [&] {
                      wm::Moments m;
                      wm::accumulateMoments(a.data(), Dtype::BF16, b.data(), Dtype::BF16, n, m);
                      if (m.nonFinite == 12345) std::puts("");
                    });
  }
  wm::setSimdEnabled(true);
  std::printf("\n%s: n = %zu elements (%.1f MiB per bf16 tensor), 1 thread\n", label, n, 2.0 * n / (1 << 20));
  std::printf("%-34s %10s %14s %10s\n", "kernel", "GB/s", "memcpy GB/s", "vs memcpy");
  for (const Row& r : rows) {
    const double speed = r.bytes / r.t.kernel, copySpeed = memBytes / r.t.memcpy;
    std::printf("%-34s %10.2f %14.2f %9.0f%%\n", r.name.c_str(), speed / 1e9, copySpeed / 1e9, 100.0 * speed / copySpeed);
  }
}

int main(int argc, char** argv) {
  const size_t large = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : (size_t(32) << 20);
  const size_t small = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : (size_t(64) << 10);
  std::printf("SIMD path: %s\n", wm::simdPathName());
  bench(large, "DRAM-sized");
  bench(small, "L2-sized");
  return 0;
}
