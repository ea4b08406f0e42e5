// SCE's open statistics resolved from a tensor in memory (local_sce.h).
#include "local_sce.h"

#include <algorithm>
#include <cmath>

#include "kernels/sparse_select.h"
#include "kernels/sparsify.h"

namespace wm {
namespace {

bool selects(const SceParams& p) { return p.selectTopk > 0 && p.selectTopk < 1; }

// The number of sources up to the last one the dest reads.
size_t used(const SceParams& p) { return 1 + std::max<size_t>(p.base, *std::max_element(p.sources.begin(), p.sources.end())); }

}  // namespace

bool isLocalSce(const std::vector<SceParams>& dests) {
  return std::any_of(dests.begin(), dests.end(), [](const SceParams& p) { return p.open; });
}

uint64_t localSceScratchBytes(const std::vector<SceParams>& dests, uint64_t count) {
  uint64_t bytes = 0;
  for (const SceParams& p : dests) {
    if (p.open && selects(p)) bytes += 4 * count;
  }
  return bytes;
}

namespace {

// The cut's first histogram: the variance bits' high 16 bits (bits <= 0x7FC00000: bits >> 16 < 2^15), and the zeros.
constexpr size_t kHigh = size_t{1} << 15, kLow = size_t{1} << 16;
struct HighCounts {
  std::vector<uint64_t>& high = counters();  // kept per thread: no 0.75 MB allocation per tensor
  uint64_t zeros = 0;
  HighCounts() { high.assign(kHigh, 0); }
  static std::vector<uint64_t>& counters() {
    thread_local std::vector<uint64_t> v;
    return v;
  }
  // A zero is counted in high[0] once the counting ends (done()): a run of zeros (one task vector, or equal ones)
  // would otherwise wait on its own increments of one counter; eight zeros in a row are counted at once.
  void add(const uint32_t* bits, uint64_t n) {
    const auto one = [&](uint32_t b) {
      if (b == 0) {
        ++zeros;
      } else {
        ++high[b >> 16];
      }
    };
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint32_t any = 0;
      for (uint64_t k = 0; k < 8; ++k) any |= bits[i + k];
      if (any == 0) {
        zeros += 8;
        continue;
      }
      for (uint64_t k = 0; k < 8; ++k) one(bits[i + k]);
    }
    for (; i < n; ++i) one(bits[i]);
  }
  void done() { high[0] += zeros; }
};

// sceCutOfBits's cut from the high counts of all `count` bits.
uint64_t cutOfCounts(const uint32_t* bits, uint64_t count, double selectTopk, HighCounts& c) {
  // mergekit's k = int(count_nonzero(var) * select_topk): lib/recipes/sce-statistics.ts's Math.trunc of the f64 product.
  uint64_t need = static_cast<uint64_t>(std::trunc(static_cast<double>(count - c.zeros) * selectTopk));
  if (need == 0) return kRankKeyNone;
  const uint32_t top = static_cast<uint32_t>(binOfRank(c.high.data(), kHigh, need));
  std::vector<uint64_t>& low = c.high;  // the high counts are spent: their memory holds the low ones
  low.assign(kLow, 0);
  for (uint64_t i = 0; i < count; ++i) {
    if ((bits[i] >> 16) == top) ++low[bits[i] & 0xFFFFu];
  }
  const uint32_t value = (top << 16) | static_cast<uint32_t>(binOfRank(low.data(), kLow, need));
  const uint32_t indexBits = sparseIndexBits(count);
  // Every element of this variance is kept: its lowest possible key is the cut (the same set).
  if (low[value & 0xFFFFu] == need) return static_cast<uint64_t>(value) << indexBits;
  for (uint64_t i = 0;; ++i) {
    if (bits[i] == value && --need == 0) return sparseRankKey(value, indexBits, count, i);
  }
}

// Variance bits computed and counted this many elements at a time, so that the counting reads them from cache.
constexpr uint64_t kCountBlock = 4096;

}  // namespace

uint64_t sceCutOfBits(const uint32_t* bits, uint64_t count, double selectTopk) {
  // As the planner's radix passes: k from the nonzero count, then the top k keys, by the variance bits'
  // high 16 bits, their low 16 bits, and the index among equal variances (the lower index first).
  HighCounts c;
  c.add(bits, count);
  c.done();
  return cutOfCounts(bits, count, selectTopk, c);
}

void resolveLocalSce(std::vector<SceParams>& dests, const void* const* srcs, const Dtype* types, uint64_t count, uint8_t* scratch) {
  for (SceParams& p : dests) {
    if (!p.open) continue;
    // lib/recipes/sce-statistics.ts: select_topk >= 1 keeps all, <= 0 (or NaN) none, else the variance cut.
    p.cut = p.selectTopk >= 1 ? 0 : kRankKeyNone;
    if (selects(p)) {
      auto* bits = reinterpret_cast<uint32_t*>(scratch);
      scratch += 4 * count;
      // sceCutOfBits, with its first histogram counted as the bits are computed
      HighCounts c;
      std::vector<const void*> at(used(p));
      for (uint64_t start = 0; start < count; start += kCountBlock) {
        const size_t n = static_cast<size_t>(std::min(kCountBlock, count - start));
        for (size_t s = 0; s < at.size(); ++s) at[s] = static_cast<const uint8_t*>(srcs[s]) + start * dtypeSize(types[s]);
        sceVarianceBits(at.data(), types, p, n, bits + start);
        c.add(bits + start, n);
      }
      c.done();
      p.varianceBits = bits;
      p.cut = cutOfCounts(bits, count, p.selectTopk, c);
    }
    // The sums of squares of the streaming pass: one f64 sum per piece of sumPiece elements (element
    // order), the pieces' sums added in order (its executor's collectStats); none when nothing is selected.
    std::vector<double> sums(p.sources.size(), 0.0), piece(p.sources.size());
    if (p.cut != kRankKeyNone) {
      std::vector<const void*> at(used(p));  // the sources at the piece's first element, as the streaming pass's kernel gets them
      for (uint64_t start = 0; start < count; start += p.sumPiece) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(p.sumPiece, count - start));
        for (size_t s = 0; s < at.size(); ++s) at[s] = static_cast<const uint8_t*>(srcs[s]) + start * dtypeSize(types[s]);
        std::fill(piece.begin(), piece.end(), 0.0);
        sceSumSquares(at.data(), types, p, count, start, n, piece.data());
        for (size_t k = 0; k < sums.size(); ++k) sums[k] += piece[k];
      }
    }
    p.weights = sceWeights(sums, count);
  }
}

}  // namespace wm
