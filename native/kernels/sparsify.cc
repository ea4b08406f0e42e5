// Scalar sparsifying merges, radix-selection histograms and exact L1 sums (see sparsify.h).
#include "sparsify.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "cpu_backends.h"
#include "element_io.h"
#include "numerics.h"
#include "whole_param.h"

namespace wm {
namespace {

inline float load(const void* p, Dtype t, size_t i) { return loadElementF32(p, t, i); }

// `load` with the dtype fixed at compile time: the loops below are instantiated per dtype so that
// no element pays for the dtype test. kMixed keeps the run-time test (sources of several dtypes).
constexpr int kMixed = -1;
template <int T>
inline float loadAs(const void* p, Dtype t, size_t i) {
  return load(p, T == kMixed ? t : static_cast<Dtype>(T), i);
}

// Calls body(std::integral_constant<int, T>) with T the dtype every one of `types` has, or kMixed.
template <typename Body>
void withCommonDtype(const Dtype* types, size_t count, Body body) {
  bool same = true;
  for (size_t k = 1; k < count; ++k) same = same && types[k] == types[0];
  if (!same || count == 0) return body(std::integral_constant<int, kMixed>{});
  switch (types[0]) {
    case Dtype::BF16: return body(std::integral_constant<int, static_cast<int>(Dtype::BF16)>{});
    case Dtype::F16: return body(std::integral_constant<int, static_cast<int>(Dtype::F16)>{});
    case Dtype::F32: return body(std::integral_constant<int, static_cast<int>(Dtype::F32)>{});
    default: return body(std::integral_constant<int, kMixed>{});
  }
}

inline uint32_t absBits(float d) { return num::f32Bits(d) & 0x7FFFFFFFu; }

inline int signOf(double v) { return v > 0 ? 1 : (v < 0 ? -1 : 0); }

uint32_t u32At(const std::vector<double>& p, size_t i) { return static_cast<uint32_t>(wholeParam(p, i, 4294967295.0, "sparse", "a u32")); }

uint64_t u64At(const std::vector<double>& p, size_t i) { return (static_cast<uint64_t>(u32At(p, i)) << 32) | u32At(p, i + 1); }

uint64_t rankAt(const std::vector<double>& p, size_t i) { return wholeParam(p, i, 9007199254740991.0, "sparse", "a rank"); }

}  // namespace

uint32_t sparseIndexBits(uint64_t count) {
  uint32_t b = 0;
  while (count > 1 && ((count - 1) >> b) != 0) ++b;
  return b;
}

SparseParams decodeSparseParams(const std::vector<double>& p, size_t sourceCount) {
  if (p.size() < kSparseHeader) throw std::invalid_argument("sparse parameters too short");
  SparseParams s;
  const uint32_t c = u32At(p, 0);
  if (c > 2) throw std::invalid_argument("unknown consensus method");
  s.consensus = static_cast<Consensus>(c);
  s.normalize = u32At(p, 1) != 0;
  s.lambda = p[2];
  s.indexBits = u32At(p, 3);
  s.baseSource = u32At(p, 4);
  const uint32_t m = u32At(p, 5);
  if (s.indexBits > 32) throw std::invalid_argument("index bits above 32");
  if (s.baseSource >= sourceCount) throw std::invalid_argument("base source out of range");
  const size_t resolved = kSparseHeader + m * kSparsePerModel;
  if (p.size() != resolved && p.size() != resolved + m * kSparseOpenPerModel) throw std::invalid_argument("sparse parameter count does not match the model count");
  for (uint32_t k = 0; k < m; ++k) {
    const size_t o = kSparseHeader + k * kSparsePerModel;
    SparseModel x;
    x.source = u32At(p, o);
    if (x.source >= sourceCount) throw std::invalid_argument("model source out of range");
    x.weight = p[o + 1];
    x.lowKey = u64At(p, o + 2);
    x.highKey = u64At(p, o + 4);
    x.density = p[o + 6];
    if (!(x.density >= 0 && x.density <= 1)) throw std::invalid_argument("density outside [0, 1]");
    x.seedKey = u64At(p, o + 7);
    x.scale = static_cast<float>(p[o + 9]);
    s.models.push_back(x);
  }
  for (size_t o = resolved; o < p.size(); o += kSparseOpenPerModel) {
    SparseOpen x;
    x.select = u32At(p, o) != 0;
    x.lowRank = rankAt(p, o + 1);
    x.highRank = rankAt(p, o + 2);
    x.l1 = u32At(p, o + 3) != 0;
    s.open.push_back(x);
  }
  return s;
}

namespace {

template <int T>
void sparseMergeLoop(const void* const* srcs, const Dtype* types, const SparseParams& p, uint64_t count, uint64_t start,
                     size_t n, void* out, Dtype to) {
  const size_t m = p.models.size();
  const void* base = srcs[p.baseSource];
  const Dtype tb = types[p.baseSource];
  std::vector<double> scratch(2 * m);
  double* vs = scratch.data();
  double* ws = scratch.data() + m;
  for (size_t j = 0; j < n; ++j) {
    const uint64_t i = start + j;
    const float b = loadAs<T>(base, tb, j);
    double sum = 0, wsum = 0;
    int signs = 0;
    for (size_t k = 0; k < m; ++k) {
      const SparseModel& sm = p.models[k];
      const float x = loadAs<T>(srcs[sm.source], types[sm.source], j);
      // The keep rule ranks the f32 task vector; the kept value is the f64 one.
      const uint64_t key = sparseRankKey(absBits(num::subRn(x, b)), p.indexBits, count, i);
      bool keep = key >= sm.lowKey && key < sm.highKey;
      if (sm.keepBits != nullptr) keep = keptBit(sm.keepBits, i);  // the same rule, applied once by the local job
      else if (keep && sm.density > 0 && sm.density < 1) keep = bernoulliKeep(sm.seedKey, i, sm.density);
      const double e = keep ? num::mulRn(num::subRn(static_cast<double>(x), static_cast<double>(b)), static_cast<double>(sm.scale)) : 0.0;
      vs[k] = num::mulRn(sm.weight, e);
      ws[k] = sm.weight;
      sum = k == 0 ? vs[k] : num::addRn(sum, vs[k]);
      wsum = k == 0 ? ws[k] : num::addRn(wsum, ws[k]);
      signs += signOf(vs[k]);
    }
    double mixed, div;
    if (p.consensus == Consensus::None) {
      mixed = sum;
      div = weightSumDivisor(wsum);
    } else {
      const int s = p.consensus == Consensus::Sum ? (sum >= 0 ? 1 : -1) : (signs >= 0 ? 1 : -1);
      mixed = 0;
      div = 0;
      for (size_t k = 0; k < m; ++k) {
        if (signOf(vs[k]) != s) continue;
        mixed = num::addRn(mixed, vs[k]);
        div = num::addRn(div, ws[k]);
      }
      div = agreeingDivisor(div);
    }
    if (p.normalize) mixed = mixed / div;
    storeRoundedOnce(out, to, j, num::addRn(static_cast<double>(b), num::mulRn(mixed, p.lambda)));
  }
}

}  // namespace

// The scalar truth of the merge (dispatch.cc picks it or sparse_avx2.cc's).
void scalar::sparseMerge(const void* const* srcs, const Dtype* types, const SparseParams& p, uint64_t count, uint64_t start,
                         size_t n, void* out, Dtype to) {
  // Only the sources the merge reads decide the instantiation.
  std::vector<Dtype> used{types[p.baseSource]};
  for (const SparseModel& sm : p.models) used.push_back(types[sm.source]);
  withCommonDtype(used.data(), used.size(), [&](auto t) { sparseMergeLoop<decltype(t)::value>(srcs, types, p, count, start, n, out, to); });
}

void radixHistogram(const void* base, Dtype tb, const void* x, Dtype tx, uint32_t indexBits, uint64_t count,
                    uint64_t start, size_t n, uint32_t shift, uint32_t bits, uint64_t prefix, uint64_t* hist) {
  // |d| bits a chunk at a time through the dispatched kernel (SIMD where the CPU has it), then the counts.
  constexpr size_t kChunk = 4096;
  uint32_t a[kChunk];
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  const uint32_t up = shift + bits;
  for (size_t j0 = 0; j0 < n; j0 += kChunk) {
    const size_t m = std::min(kChunk, n - j0);
    absDeltaBits(static_cast<const uint8_t*>(base) + j0 * dtypeSize(tb), tb, static_cast<const uint8_t*>(x) + j0 * dtypeSize(tx), tx, m, a);
    for (size_t j = 0; j < m; ++j) {
      const uint64_t key = sparseRankKey(a[j], indexBits, count, start + j0 + j);
      if (up < 64 && (key >> up) != prefix) continue;
      ++hist[(key >> shift) & mask];
    }
  }
}

void l1Buckets(const void* base, Dtype tb, const void* x, Dtype tx, const SparseModel& keep, uint32_t indexBits,
               uint64_t count, uint64_t start, size_t n, uint64_t* before, uint64_t* after) {
  for (size_t j = 0; j < n; ++j) {
    const uint64_t i = start + j;
    const float d = num::subRn(load(x, tx, j), load(base, tb, j));
    const uint32_t a = absBits(d);
    const uint64_t key = sparseRankKey(a, indexBits, count, i);
    bool kept = key >= keep.lowKey && key < keep.highKey;
    if (kept && keep.density > 0 && keep.density < 1) kept = bernoulliKeep(keep.seedKey, i, keep.density);
    addToL1Buckets(a, kept, before, after);
  }
}

double l1Total(const uint64_t* buckets) {
  double s = 0;
  for (size_t e = kL1Buckets; e-- > 1;) {
    if (buckets[e] != 0) s += std::ldexp(static_cast<double>(buckets[e]), static_cast<int>(e) - 150);
  }
  return s;
}

}  // namespace wm
