// SCE's open statistics resolved from a tensor in memory (local_sce.h).
#include "local_sce.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <utility>

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
    if (p.open && selects(p) && !p.recomputeVariances) bytes += 4 * count;
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

// Variance bits computed and counted this many elements at a time, so that the counting reads them from cache.
constexpr uint64_t kCountBlock = 4096;

// Calls f(start, bits, n) for the blocks of kCountBlock elements in order, until f returns false;
// bitsAt(start, n) gives the bits of elements start .. start + n - 1.
template <typename BitsAt, typename F>
void forBlocks(BitsAt& bitsAt, uint64_t count, F f) {
  for (uint64_t start = 0; start < count; start += kCountBlock) {
    const size_t n = static_cast<size_t>(std::min(kCountBlock, count - start));
    if (!f(start, bitsAt(start, n), n)) return;
  }
}

// mergekit's k = int(count_nonzero(var) * select_topk): lib/recipes/sce-statistics.ts's Math.trunc of the f64 product.
uint64_t topCount(uint64_t count, uint64_t zeros, double selectTopk) {
  return static_cast<uint64_t>(std::trunc(static_cast<double>(count - zeros) * selectTopk));
}

// sceCutOfBits's cut from the high counts of all `count` bits, which bitsAt gives again for the low counts and the index scan.
template <typename BitsAt>
uint64_t cutOfCounts(BitsAt& bitsAt, uint64_t count, double selectTopk, HighCounts& c) {
  uint64_t need = topCount(count, c.zeros, selectTopk);
  if (need == 0) return kRankKeyNone;
  const uint32_t top = static_cast<uint32_t>(binOfRank(c.high.data(), kHigh, need));
  // The top bin's elements (index and bits), collected by the low counts' pass when they are few (at most 1/32 of the
  // tensor: 12 bytes each), so that the index scan reads only them instead of every element's bits again.
  const bool collect = c.high[top] <= count / 32;
  std::vector<uint64_t> topIndex;
  std::vector<uint32_t> topBits;
  if (collect) {
    topIndex.reserve(c.high[top]);
    topBits.reserve(c.high[top]);
  }
  std::vector<uint64_t>& low = c.high;  // the high counts are spent: their memory holds the low ones
  low.assign(kLow, 0);
  forBlocks(bitsAt, count, [&](uint64_t start, const uint32_t* bits, size_t n) {
    const auto one = [&](size_t i) {
      if ((bits[i] >> 16) != top) return;
      ++low[bits[i] & 0xFFFFu];
      if (collect) {
        topIndex.push_back(start + i);
        topBits.push_back(bits[i]);
      }
    };
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {  // sixteen at a time, in vector lanes: most hold none of the top bin
      if (!anyInBin16(bits + i, top)) continue;
      for (size_t k = 0; k < 16; ++k) one(i + k);
    }
    for (; i < n; ++i) one(i);
    return true;
  });
  const uint32_t value = (top << 16) | static_cast<uint32_t>(binOfRank(low.data(), kLow, need));
  const uint32_t indexBits = sparseIndexBits(count);
  // Every element of this variance is kept: its lowest possible key is the cut (the same set).
  if (low[value & 0xFFFFu] == need) return static_cast<uint64_t>(value) << indexBits;
  uint64_t cut = kRankKeyNone;
  if (collect) {
    for (size_t q = 0; q < topIndex.size(); ++q) {
      if (topBits[q] == value && --need == 0) return sparseRankKey(value, indexBits, count, topIndex[q]);
    }
    return cut;
  }
  forBlocks(bitsAt, count, [&](uint64_t start, const uint32_t* bits, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      if (bits[i] == value && --need == 0) {
        cut = sparseRankKey(value, indexBits, count, start + i);
        return false;
      }
    }
    return true;
  });
  return cut;
}

// A dest's variance bits computed a block at a time (the passes ask in element order) from its sources, read by read(start, n) in
// chunks of `chunk` elements (rounded up to a multiple of kCountBlock, so that no block spans two; the sources held whole: one chunk
// of the tensor), each when a pass first asks for a block in it. Into `stored` (the scratch, element-indexed) when the dest keeps
// them, else into a block that the next call overwrites (SceParams::recomputeVariances).
struct ComputedBits {
  using Read = std::function<const void* const*(uint64_t start, uint64_t n)>;
  const SceParams& p;
  const Dtype* types;
  Read read;
  uint64_t count, chunk;
  uint32_t* stored;
  uint64_t first = UINT64_MAX;  // the chunk read last: its first element
  const void* const* srcs = nullptr;
  std::vector<const void*> at;
  uint32_t block[kCountBlock];
  ComputedBits(const SceParams& params, const Dtype* t, Read r, uint64_t c, uint64_t elements, uint32_t* into)
      : p(params), types(t), read(std::move(r)), count(c), chunk(kCountBlock * std::max<uint64_t>(1, (elements + kCountBlock - 1) / kCountBlock)),
        stored(into), at(used(params)) {}
  const uint32_t* operator()(uint64_t start, size_t n) {
    if (start / chunk * chunk != first) {
      first = start / chunk * chunk;
      srcs = read(first, std::min(chunk, count - first));
    }
    for (size_t s = 0; s < at.size(); ++s) at[s] = static_cast<const uint8_t*>(srcs[s]) + (start - first) * dtypeSize(types[s]);
    uint32_t* bits = stored != nullptr ? stored + start : block;
    sceVarianceBits(at.data(), types, p, n, bits);
    return bits;
  }
};

}  // namespace

uint64_t sceCutOfBits(const uint32_t* bits, uint64_t count, double selectTopk) {
  // As the planner's radix passes: k from the nonzero count, then the top k keys, by the variance bits'
  // high 16 bits, their low 16 bits, and the index among equal variances (the lower index first).
  HighCounts c;
  c.add(bits, count);
  c.done();
  auto read = [bits](uint64_t start, size_t) { return bits + start; };
  return cutOfCounts(read, count, selectTopk, c);
}

uint64_t sceCutOfStoredBits(const uint32_t* bits, uint64_t count, uint64_t zeros, double selectTopk) {
  const uint64_t need = topCount(count, zeros, selectTopk);
  if (need == 0) return kRankKeyNone;
  uint64_t cut = 0;
  return rankCutsWindowedOfBits(bits, count, &need, 1, &cut) ? cut : sceCutOfBits(bits, count, selectTopk);
}

void resolveLocalSce(std::vector<SceParams>& dests, const void* const* srcs, const Dtype* types, uint64_t count, uint8_t* scratch) {
  for (SceParams& p : dests) {
    if (!p.open) continue;
    // lib/recipes/sce-statistics.ts: select_topk >= 1 keeps all, <= 0 (or NaN) none, else the variance cut.
    p.cut = p.selectTopk >= 1 ? 0 : kRankKeyNone;
    uint8_t* keepMap = nullptr;  // the stored bits' memory, which the sums' pass turns into the keep map
    if (selects(p)) {
      // The bits stored in the scratch for the cut's later passes and the merge, or computed again in each (local_sce.h).
      uint32_t* stored = p.recomputeVariances ? nullptr : reinterpret_cast<uint32_t*>(scratch);
      ComputedBits computed(p, types, [srcs](uint64_t, uint64_t) { return srcs; }, count, count, stored);  // the tensor: one chunk
      if (stored != nullptr) {
        // The zeros counted as the bits are computed, then one window pass over the stored bits (sceCutOfStoredBits).
        uint64_t zeros = 0;
        forBlocks(computed, count, [&](uint64_t, const uint32_t* bits, size_t n) {
          zeros += sceZeroBits(bits, n);
          return true;
        });
        scratch += 4 * count;
        p.varianceBits = stored;
        keepMap = reinterpret_cast<uint8_t*>(stored);
        p.cut = sceCutOfStoredBits(stored, count, zeros, p.selectTopk);
      } else {
        // sceCutOfBits, with its first histogram counted as the bits are computed
        HighCounts c;
        forBlocks(computed, count, [&](uint64_t, const uint32_t* bits, size_t n) {
          c.add(bits, n);
          return true;
        });
        c.done();
        p.cut = cutOfCounts(computed, count, p.selectTopk, c);
      }
    }
    // The sums of squares of the streaming pass: one f64 sum per piece of sumPiece elements (element
    // order), the pieces' sums added in order (its executor's collectStats); none when nothing is selected.
    std::vector<double> sums(p.sources.size(), 0.0);
    // The stored variance bits become the merge's keep map there (1 bit read per element instead of 32).
    if (p.cut != kRankKeyNone) {
      sceSumSquaresPieces(srcs, types, p, count, sums.data(), keepMap);
      if (keepMap != nullptr) {
        p.keepMap = keepMap;
        p.varianceBits = nullptr;
      }
    }
    p.weights = sceWeights(sums, count);
  }
}

bool sceResolvesInChunks(const std::vector<SceParams>& dests) {
  const SceParams* open = nullptr;
  for (const SceParams& p : dests) {
    if (!p.open) continue;
    if (!p.recomputeVariances || (open != nullptr && p.sumPiece != open->sumPiece)) return false;
    open = &p;
  }
  return open != nullptr;
}

void resolveLocalSceInChunks(std::vector<SceParams>& dests, const Dtype* types, uint64_t count, uint64_t chunk,
                             const std::function<const void* const*(uint64_t start, uint64_t n)>& read) {
  for (SceParams& p : dests) {
    if (!p.open) continue;
    // resolveLocalSce's passes (a dest that recomputes its variances selects): the cut from the bits computed chunk by chunk, then
    // each piece's sums by the streaming pass's own step from 0, added in piece order.
    p.cut = p.selectTopk >= 1 ? 0 : kRankKeyNone;
    if (selects(p)) {
      ComputedBits computed(p, types, read, count, chunk, nullptr);
      HighCounts c;
      forBlocks(computed, count, [&](uint64_t, const uint32_t* bits, size_t n) {
        c.add(bits, n);
        return true;
      });
      c.done();
      p.cut = cutOfCounts(computed, count, p.selectTopk, c);
    }
    // Each piece's chains go on from one read to the next (sceSumSquares adds in element order to what it is given).
    std::vector<double> sums(p.sources.size(), 0.0), piece(p.sources.size());
    for (uint64_t first = 0; p.cut != kRankKeyNone && first < count; first += p.sumPiece) {
      const uint64_t end = std::min(count, first + p.sumPiece);
      std::fill(piece.begin(), piece.end(), 0.0);
      for (uint64_t at = first; at < end; at += chunk) {
        const uint64_t n = std::min(chunk, end - at);
        sceSumSquares(read(at, n), types, p, count, at, static_cast<size_t>(n), piece.data());
      }
      for (size_t k = 0; k < sums.size(); ++k) sums[k] += piece[k];
    }
    p.weights = sceWeights(sums, count);
  }
}

}  // namespace wm
