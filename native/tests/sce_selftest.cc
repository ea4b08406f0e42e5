// The self-test of SCE's merge (kernels/sce.h): SIMD == scalar bit for bit on random inputs salted with
// special values (run by kernels_selftest.cc's main).
#include <cstdint>
#include <cstdio>
#include <vector>

#include "kernels/sce.h"
#include "kernels/sparse_select.h"
#include "kernels/sparsify.h"
#include "tests/selftest_support.h"

// sceMerge: 1-4 task vectors, every output dtype, sources of mixed dtypes, weights of both signs and
// zero, cuts that keep all, none, or part, and a piece that starts inside the tensor.
void testSce(uint64_t seed) {
  Rng r(seed ^ 0x5CE);
  const Dtype all[] = {Dtype::F32, Dtype::F16, Dtype::BF16};
  size_t cases = 0;
  for (size_t n : {0, 1, 3, 4, 5, 8, 511, 512, 513, 1027}) {
    for (Dtype t : all) {
      std::vector<std::vector<unsigned char>> src;
      Dtype types[5];
      for (int s = 0; s < 5; ++s) {
        types[s] = s == 4 ? (t == Dtype::F32 ? Dtype::BF16 : Dtype::F32) : t;  // the last source of another dtype
        src.push_back(randomTensor(r, types[s], n));
      }
      const void* srcs[5] = {src[0].data(), src[1].data(), src[2].data(), src[3].data(), src[4].data()};
      for (int variant = 0; variant < 8; ++variant) {
        const uint64_t start = variant % 2 == 0 ? 0 : 7, count = n + start;
        wm::SceParams p;
        p.base = 0;
        p.indexBits = wm::sparseIndexBits(count);
        const size_t m = 1 + static_cast<size_t>(variant) % 4;
        for (size_t k = 0; k < m; ++k) {
          p.sources.push_back(static_cast<uint32_t>(variant >= 4 && k == m - 1 ? 4 : k + 1));
          const double w[] = {0.25, -0.5, 0.0, 1.0 / 3, 2.5e-7};
          p.weights.push_back(w[(k + static_cast<size_t>(variant)) % 5]);
        }
        // keep all, none, or the elements whose key reaches a random f32 variance pattern
        const uint64_t cuts[] = {0, wm::kRankKeyNone, (uint64_t{r.next() % 0x7F800000u} << p.indexBits)};
        for (uint64_t cut : cuts) {
          p.cut = cut;
          for (Dtype to : all) {
            std::vector<unsigned char> outS(n * wm::dtypeSize(to) + 3, 0xA5), outV = outS;
            wm::setSimdEnabled(false);
            wm::sceMerge(srcs, types, p, count, start, n, outS.data() + 1, to);
            wm::setSimdEnabled(true);
            wm::sceMerge(srcs, types, p, count, start, n, outV.data() + 1, to);
            digestBytes(outV.data(), outV.size());
            CHECK(outS == outV, "sceMerge %s->%s n=%zu m=%zu variant %d cut %016llx: SIMD != scalar", dtypeName(t), dtypeName(to), n, m, variant,
                  static_cast<unsigned long long>(cut));
            ++cases;
          }
        }
      }
    }
  }
  std::printf("sce: %zu cases\n", cases);
}
