// CUDA kernels against the CPU scalar truth, bit for bit, on random data with special values
// (lerp exact and mi, linear, convert, and the sparse TIES/DARE/breadcrumbs merge):
//   nvcc -std=c++17 -arch=sm_90 -O3 -fmad=false -Xcompiler -ffp-contract=off -Inative native/tests/cuda_selftest.cu \
//        native/kernels/cuda/cuda.cu native/kernels/cuda/sparse.cu native/kernels/cpu_scalar.cc \
//        native/kernels/cpu_avx2.cc native/kernels/dispatch.cc native/kernels/sparsify.cc -o /tmp/cuda_selftest
//   /tmp/cuda_selftest [seed]
// The flags are the addon's (CMakeLists.txt). -fmad does not matter to the kernels: every rounding in
// numerics.h is an explicit __*_rn intrinsic, and scripts/gpu-check.sh checks that the PTX of
// cuda.cu and sparse.cu is the same with -fmad=true and -fmad=false.
#include <cuda_runtime.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cuda_kernels.h"
#include "kernels/kernels.h"
#include "kernels/sparsify.h"

using wm::Dtype;

static int failures = 0;

static const char* name(Dtype t) { return t == Dtype::F32 ? "F32" : t == Dtype::F16 ? "F16" : "BF16"; }

static void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(2);
  }
}

static uint32_t randomBits(std::mt19937_64& g, Dtype t) {
  static const uint32_t f32[] = {0x00000000, 0x80000000, 0x00000001, 0x007FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000,
                                 0xFFC12345, 0x7F800001, 0x7F7FFFFF, 0x477FF000, 0x33000001, 0x3F808000, 0x7F7F8000};
  static const uint16_t f16[] = {0x0000, 0x8000, 0x0001, 0x03FF, 0x7BFF, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFE01};
  static const uint16_t bf16[] = {0x0000, 0x8000, 0x0001, 0x007F, 0x7F7F, 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0xFFFF};
  const uint64_t k = g() % 100, x = g();
  if (t == Dtype::F32) {
    if (k < 15) return f32[x % 14];
    if (k < 30) return (uint32_t)(x & 0xFFFF0000u) | 0x8000u;
    if (k < 40) return (uint32_t)x;
    return (uint32_t)((x >> 63) << 31) | ((115 + (uint32_t)((x >> 40) % 13)) << 23) | (uint32_t)(x & 0x7FFFFF);
  }
  if (k < 15) return t == Dtype::F16 ? f16[x % 10] : bf16[x % 10];
  if (k < 50) return (uint32_t)(x & 0xFFFF);
  if (t == Dtype::F16) return (uint32_t)(((x >> 63) << 15) | ((3 + (x >> 40) % 14) << 10) | (x & 0x3FF));
  return (uint32_t)(((x >> 63) << 15) | ((115 + (x >> 40) % 13) << 7) | (x & 0x7F));
}

struct DeviceBuffer {
  void* p = nullptr;
  explicit DeviceBuffer(size_t bytes) { check(cudaMalloc(&p, bytes + 64), "cudaMalloc"); }
  ~DeviceBuffer() { cudaFree(p); }
};

// sparseMerge on the device against sparsify.cc: random consensus, normalize, lambda, magnitude cuts,
// DARE densities and rescales, over a window [start, start + n) of a longer tensor, mixed dtypes.
static size_t sparseCases(std::mt19937_64& g) {
  const Dtype all[] = {Dtype::F32, Dtype::F16, Dtype::BF16};
  const size_t lengths[] = {1, 7, 9, 1000, 100003};
  size_t cases = 0;
  for (size_t n : lengths) {
    for (int trial = 0; trial < 24; ++trial) {
      const size_t sources = 2 + g() % 3;  // base + 1..3 models
      const uint64_t start = g() % 3 == 0 ? 0 : g() % 5000, count = start + n + (g() % 2 ? 0 : g() % 7000);
      std::vector<Dtype> types(sources);
      std::vector<std::vector<unsigned char>> host(sources);
      std::vector<DeviceBuffer*> dev;
      std::vector<const void*> hp(sources), dp(sources);
      for (size_t s = 0; s < sources; ++s) {
        types[s] = all[g() % 3];
        host[s].resize(n * 4 + 8);
        for (size_t i = 0; i < n; ++i) {
          const uint32_t x = randomBits(g, types[s]);
          std::memcpy(host[s].data() + i * wm::dtypeSize(types[s]), &x, wm::dtypeSize(types[s]));
        }
        dev.push_back(new DeviceBuffer(host[s].size()));
        check(cudaMemcpy(dev.back()->p, host[s].data(), n * wm::dtypeSize(types[s]), cudaMemcpyHostToDevice), "upload");
        hp[s] = host[s].data();
        dp[s] = dev.back()->p;
      }
      wm::SparseParams p;
      p.consensus = static_cast<wm::Consensus>(g() % 3);
      p.normalize = g() % 2;
      const float lambdas[] = {1.0f, 0.8f, 1.7f};
      p.lambda = lambdas[g() % 3];
      p.indexBits = wm::sparseIndexBits(count);
      p.baseSource = static_cast<uint32_t>(g() % sources);
      for (size_t s = 0; s < sources; ++s) {
        if (s == p.baseSource) continue;
        wm::SparseModel m;
        m.source = static_cast<uint32_t>(s);
        const float weights[] = {0.5f, 1.0f, -0.3f, 0.0f};
        m.weight = weights[g() % 4];
        // Magnitude cuts at the key of a random |d| bit pattern (breadcrumbs keep a band, ties the top).
        const uint64_t cut = (static_cast<uint64_t>(randomBits(g, Dtype::F32) & 0x7FFFFFFFu) << p.indexBits) | (g() % count);
        const int kind = g() % 3;
        m.lowKey = kind == 0 ? 0 : cut;
        m.highKey = kind == 2 ? cut + (uint64_t{1} << (p.indexBits + 20)) : ~uint64_t{0};
        const double densities[] = {1.0, 0.5, 0.3, 0.0};
        m.density = densities[g() % 4];
        m.seedKey = g();
        const float scales[] = {1.0f, 2.0f, 1.0f / 0.3f};
        m.scale = scales[g() % 3];
        p.models.push_back(m);
      }
      for (Dtype to : all) {
        const size_t ob = n * wm::dtypeSize(to);
        std::vector<unsigned char> want(ob), got(ob);
        DeviceBuffer dout(ob);
        wm::sparseMerge(hp.data(), types.data(), p, count, start, n, want.data(), to);
        check((cudaError_t)wm::cuda::sparseMerge(dp.data(), types.data(), sources, p, count, start, n, dout.p, to, nullptr), "sparseMerge");
        check(cudaDeviceSynchronize(), "sparseMerge");
        check(cudaMemcpy(got.data(), dout.p, ob, cudaMemcpyDeviceToHost), "download");
        ++cases;
        if (want != got && ++failures <= 20) {
          size_t i = 0;
          while (i < ob && want[i] == got[i]) ++i;
          std::fprintf(stderr, "FAIL sparseMerge consensus=%d normalize=%d ->%s n=%zu start=%" PRIu64 " count=%" PRIu64 " first difference at byte %zu\n",
                       static_cast<int>(p.consensus), p.normalize ? 1 : 0, name(to), n, start, count, i);
        }
      }
      for (DeviceBuffer* d : dev) delete d;
    }
  }
  return cases;
}

int main(int argc, char** argv) {
  const uint64_t seed = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1;
  std::printf("seed %" PRIu64 "\n", seed);
  std::mt19937_64 g(seed);
  wm::setSimdEnabled(false);  // the scalar path is the truth
  const Dtype all[] = {Dtype::F32, Dtype::F16, Dtype::BF16};
  const float weights[] = {0.0f, 0.2f, 0.45f, 0.5f, 0.8f, 1.0f, 1.3f, -0.2f};
  const size_t lengths[] = {1, 7, 8, 9, 33, 1000, 100003};
  size_t cases = 0;
  for (size_t n : lengths) {
    for (size_t offset : {size_t(0), size_t(1)}) {  // 1: misaligned buffers take the per-element path
      for (Dtype ta : all) {
        for (Dtype tb : all) {
          std::vector<unsigned char> a(n * 4 + 8), b(n * 4 + 8);
          for (size_t i = 0; i < n; ++i) {
            const uint32_t x = randomBits(g, ta), y = randomBits(g, tb);
            std::memcpy(a.data() + i * wm::dtypeSize(ta), &x, wm::dtypeSize(ta));
            std::memcpy(b.data() + i * wm::dtypeSize(tb), &y, wm::dtypeSize(tb));
          }
          DeviceBuffer da(a.size()), db(b.size()), dout(n * 4 + 8);
          char* pa = static_cast<char*>(da.p) + offset * wm::dtypeSize(ta);
          char* pb = static_cast<char*>(db.p) + offset * wm::dtypeSize(tb);
          check(cudaMemcpy(pa, a.data(), n * wm::dtypeSize(ta), cudaMemcpyHostToDevice), "upload a");
          check(cudaMemcpy(pb, b.data(), n * wm::dtypeSize(tb), cudaMemcpyHostToDevice), "upload b");
          for (Dtype to : all) {
            const size_t ob = n * wm::dtypeSize(to);
            std::vector<unsigned char> want(ob), got(ob);
            auto compare = [&](const char* what, float w) {
              check(cudaDeviceSynchronize(), what);
              check(cudaMemcpy(got.data(), static_cast<char*>(dout.p) + offset * wm::dtypeSize(to), ob,
                               cudaMemcpyDeviceToHost), "download");
              ++cases;
              if (want != got && ++failures <= 20) {
                std::fprintf(stderr, "FAIL %s %s,%s->%s n=%zu offset=%zu w=%g\n", what, name(ta), name(tb), name(to),
                             n, offset, w);
              }
            };
            void* po = static_cast<char*>(dout.p) + offset * wm::dtypeSize(to);
            for (float w : weights) {
              wm::lerpExact(a.data(), ta, b.data(), tb, want.data(), to, n, w);
              check((cudaError_t)wm::cuda::lerpExact(pa, ta, pb, tb, po, to, n, w, nullptr), "lerpExact");
              compare("lerpExact", w);
              if (ta == tb) {
                wm::lerpMi(a.data(), b.data(), ta, want.data(), to, n, w);
                check((cudaError_t)wm::cuda::lerpMi(pa, pb, ta, po, to, n, w, nullptr), "lerpMi");
                compare("lerpMi", w);
              }
              const void* hs[3] = {a.data(), b.data(), a.data()};
              const void* ds[3] = {pa, pb, pa};
              const Dtype ts[3] = {ta, tb, ta};
              const float lw[3] = {w, 1.0f - w, 0.25f};
              wm::linear(hs, ts, lw, 3, want.data(), to, n);
              check((cudaError_t)wm::cuda::linear(ds, ts, lw, 3, po, to, n, nullptr), "linear");
              compare("linear", w);
            }
            wm::convert(a.data(), ta, want.data(), to, n);
            check((cudaError_t)wm::cuda::convert(pa, ta, po, to, n, nullptr), "convert");
            compare("convert", 0);
          }
        }
      }
    }
  }
  cases += sparseCases(g);
  std::printf("%zu cases\n", cases);
  if (failures) {
    std::printf("%d FAILURES\n", failures);
    return 1;
  }
  std::printf("all passed\n");
  return 0;
}
