// The self-test of the DELLA ranker's mixed rows (kernels/della_rank.h: rows whose |d| are mostly bf16 but not all, as
// where a fine-tuned weight changed sign), against the definition, scalar, AVX2 and AVX-512 (run by kernels_selftest.cc's main).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "kernels/cpu_backends.h"
#include "kernels/della.h"
#include "kernels/della_rank.h"
#include "tests/della_definition.h"
#include "tests/selftest_support.h"

namespace {

// countDrawing and draw() on rows that are not uniform (della_rank.h's mixed rows: odd keys, low 16 bits not zero, among
// bf16 |d|, as where a fine-tuned weight changed sign), against the definition: where draw() takes the row, the keep bytes,
// the odd keys listed and each bucket's element, kept and lower counts (a bucket: the keys of one high half); where it gives
// the row back (too many draws left to whole-row counts), assign()'s ranks. Buckets of a few keys and
// of thousands, odd keys beside the bucket's even ones and tied among themselves, zeros; limits over a narrow and the whole
// range, either way, so that many draws need a whole-row count.
void testMixedRows(Rng& r) {
  wm::DellaRowRanker ranker;
  size_t cases = 0, drawn = 0, givenBack = 0;
  for (uint32_t L : {3u, 40u, 64u, 333u, 2560u, 70000u}) {
    for (uint32_t palette : {3u, 40u, 1000u}) {
      for (uint32_t oddEvery : {200u, 20u, 4u}) {
        for (double e : {0.1, 0.5, -0.5}) {
          std::vector<uint32_t> keys(L);
          for (auto& k : keys) {
            const uint64_t x = r.next();
            const uint32_t h = x % 17 == 0 ? 0 : 0x3000u + static_cast<uint32_t>(x % palette) * 3;
            k = h << 16 | ((x >> 20) % oddEvery == 0 ? 1 + static_cast<uint32_t>(x >> 40) % 3 : 0);
          }
          const uint64_t seedKey = r.next(), first = r.next() >> 20;
          const DefinedRowDraws defined = definedRowDraws(keys, 0.5, e, seedKey, first);
          const wm::DellaLimits lim = defined.limits();
          const std::vector<uint8_t>& want = defined.want;
          const std::vector<uint32_t> rank = definedRanks(keys);
          std::vector<uint32_t> odd;
          for (uint32_t t = 0; t < L; ++t) {
            if ((keys[t] & 0xFFFFu) != 0) odd.push_back(t);
          }
          // Every path, for dellaOddKeys' and the draws' wide steps.
          onEachPath([&](int path) {
            std::vector<uint8_t> got(L, 9);
            std::vector<uint64_t> ug(L, 0);
            ranker.countDrawing(keys.data(), L, seedKey, first, lim, got.data(), ug.data(), definedKeyFacts(keys));
            if (ranker.drawing() && ranker.draw(keys.data(), 1, L, ug.data(), lim, got.data())) {
              bool ok = got == want && ranker.first(ranker.buckets()) == L && ranker.oddCount() == odd.size() &&
                        std::equal(odd.begin(), odd.end(), ranker.odd());
              for (uint32_t i = 0; ok && i < ranker.buckets(); ++i) {
                uint32_t n = 0, kept = 0, below = 0;
                for (uint32_t t = 0; t < L; ++t) {
                  n += keys[t] >> 16 == ranker.bucket(i);
                  kept += keys[t] >> 16 == ranker.bucket(i) && want[t] != 0;
                  below += keys[t] >> 16 < ranker.bucket(i);
                }
                ok = ranker.first(i) == below && ranker.first(i + 1) - ranker.first(i) == n && ranker.kept(i) == kept;
              }
              CHECK(ok, "mixed row L=%u palette %u odd 1/%u epsilon %g path %d: draw() differs from the definition", L, palette, oddEvery, e, path);
              digestBytes(got.data(), L);
              ++drawn;
            } else {
              std::vector<uint32_t> got(L, 0xFFFFFFFFu);
              ranker.assign(keys.data(), 1, L, got.data());
              CHECK(got == rank, "mixed row L=%u palette %u odd 1/%u epsilon %g path %d: given back, assign() differs from the definition", L,
                    palette, oddEvery, e, path);
              ++givenBack;
            }
            ++cases;
          });
        }
      }
    }
  }
  CHECK(drawn > cases / 4 && givenBack > cases / 8, "mixed rows: %zu drawn and %zu given back of %zu", drawn, givenBack, cases);
  std::printf("della mixed rows: %zu cases (%zu drawn, %zu given back to assign()), == the definition\n", cases, drawn, givenBack);
}

}  // namespace

void testDellaMixedRows(uint64_t seed) {
  Rng r(seed ^ 0xD1CED);
  testMixedRows(r);
}
