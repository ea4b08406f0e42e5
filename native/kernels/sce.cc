// SCE's variance selection, sums of squares and merge (see sce.h).
#include "sce.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "element_io.h"
#include "numerics.h"
#include "sparsify.h"

namespace wm {
namespace {

uint64_t wholeAt(const std::vector<double>& p, size_t i, double max) {
  if (i >= p.size()) throw std::invalid_argument("sce parameters too short");
  const double v = p[i];
  if (!(v >= 0) || v > max || v != std::floor(v)) throw std::invalid_argument("sce parameter " + std::to_string(i) + " is not a whole number in range");
  return static_cast<uint64_t>(v);
}

// [base, m, m sources] from position 0; returns the position after them.
size_t modelsAt(const std::vector<double>& p, size_t sourceCount, SceParams& s, bool weighted) {
  s.base = static_cast<uint32_t>(wholeAt(p, 0, 4294967295.0));
  const uint64_t m = wholeAt(p, 1, 65536);
  if (s.base >= sourceCount) throw std::invalid_argument("a source index is out of range");
  size_t at = 2;
  for (uint64_t k = 0; k < m; ++k) {
    const uint64_t src = wholeAt(p, at++, 4294967295.0);
    if (src >= sourceCount) throw std::invalid_argument("a source index is out of range");
    s.sources.push_back(static_cast<uint32_t>(src));
    if (weighted) {
      if (at >= p.size() || !std::isfinite(p[at])) throw std::invalid_argument("an sce weight is not a finite number");
      s.weights.push_back(p[at++]);
    }
  }
  return at;
}

// The cut and index bits at `at`; the index bits must be the element count's.
void cutAt(const std::vector<double>& p, size_t at, uint64_t count, SceParams& s) {
  s.cut = (wholeAt(p, at, 4294967295.0) << 32) | wholeAt(p, at + 1, 4294967295.0);
  s.indexBits = static_cast<uint32_t>(wholeAt(p, at + 2, 32));  // keys below 2^63, the "none" cut
  if (s.indexBits != sparseIndexBits(count)) throw std::invalid_argument("index bits do not match the element count");
}

inline double taskAt(const void* const* srcs, const Dtype* types, const SceParams& p, size_t k, size_t j) {
  return static_cast<double>(loadElementF32(srcs[p.sources[k]], types[p.sources[k]], j)) - static_cast<double>(loadElementF32(srcs[p.base], types[p.base], j));
}

// The rank key of element i = start + j (sce.h): the f32 variance's bits above the index order.
inline uint64_t varianceKey(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, uint64_t i, size_t j, bool* zero) {
  const size_t m = p.sources.size();
  double mean = 0;
  for (size_t k = 0; k < m; ++k) mean += taskAt(srcs, types, p, k, j);
  mean /= static_cast<double>(m);
  double v = 0;
  for (size_t k = 0; k < m; ++k) {
    const double d = taskAt(srcs, types, p, k, j) - mean;
    v += d * d;
  }
  v /= static_cast<double>(m);
  uint32_t bits = num::f32Bits(static_cast<float>(v)) & 0x7FFFFFFFu;
  if (bits > 0x7F800000u) bits = 0x7FC00000u;
  if (zero) *zero = bits == 0;
  return sparseRankKey(bits, p.indexBits, count, i);
}

}  // namespace

SceParams decodeSceParams(const std::vector<double>& p, size_t sourceCount, uint64_t count) {
  // [base, cutHi, cutLo, indexBits, m, m x (source, weight)]: reordered into modelsAt's layout.
  if (p.size() < 5) throw std::invalid_argument("sce parameters too short");
  std::vector<double> models = {p[0]};
  models.insert(models.end(), p.begin() + 4, p.end());
  SceParams s;
  if (modelsAt(models, sourceCount, s, true) != models.size()) throw std::invalid_argument("sce parameter count does not match the model count");
  if (s.sources.empty()) throw std::invalid_argument("sce needs at least one model");
  cutAt(p, 1, count, s);
  return s;
}

SceStat decodeSceHistogram(const std::vector<double>& p, size_t sourceCount, uint64_t count) {
  SceStat s;
  const size_t at = modelsAt(p, sourceCount, s.select, false);
  if (p.size() != at + 5 || s.select.sources.empty()) throw std::invalid_argument("sce histogram takes [base, m, m sources, indexBits, shift, bits, prefixHi, prefixLo]");
  s.select.indexBits = static_cast<uint32_t>(wholeAt(p, at, 32));
  if (s.select.indexBits != sparseIndexBits(count)) throw std::invalid_argument("index bits do not match the element count");
  s.shift = static_cast<uint32_t>(wholeAt(p, at + 1, 63));
  s.bits = static_cast<uint32_t>(wholeAt(p, at + 2, kMaxHistogramBits));
  if (s.bits == 0 || s.shift + s.bits > 64) throw std::invalid_argument("bad histogram digit");
  s.prefix = (wholeAt(p, at + 3, 4294967295.0) << 32) | wholeAt(p, at + 4, 4294967295.0);
  return s;
}

SceParams decodeSceSumSquares(const std::vector<double>& p, size_t sourceCount, uint64_t count) {
  SceParams s;
  const size_t at = modelsAt(p, sourceCount, s, false);
  if (p.size() != at + 3 || s.sources.empty()) throw std::invalid_argument("sce sums of squares take [base, m, m sources, cutHi, cutLo, indexBits]");
  cutAt(p, at, count, s);
  return s;
}

void sceHistogram(const void* const* srcs, const Dtype* types, const SceStat& s, uint64_t count, uint64_t start, size_t n, uint64_t* hist) {
  const uint64_t mask = (uint64_t{1} << s.bits) - 1;
  const uint32_t up = s.shift + s.bits;
  for (size_t j = 0; j < n; ++j) {
    bool zero = false;
    const uint64_t key = varianceKey(srcs, types, s.select, count, start + j, j, &zero);
    if (zero) ++hist[mask + 1];
    if (up < 64 && (key >> up) != s.prefix) continue;
    ++hist[(key >> s.shift) & mask];
  }
}

void sceSumSquares(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, uint64_t start, size_t n, double* sums) {
  for (size_t j = 0; j < n; ++j) {
    const bool keep = varianceKey(srcs, types, p, count, start + j, j, nullptr) >= p.cut;
    for (size_t k = 0; k < p.sources.size(); ++k) {
      const double t = taskAt(srcs, types, p, k, j) * (keep ? 1.0 : 0.0);
      if (std::isfinite(t)) sums[k] += t * t;
    }
  }
}

void sceMerge(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, uint64_t start, size_t n, void* out, Dtype to) {
  const size_t m = p.sources.size();
  std::vector<double> t(m);
  for (size_t j = 0; j < n; ++j) {
    const bool keep = p.cut == 0 || varianceKey(srcs, types, p, count, start + j, j, nullptr) >= p.cut;
    double s = 0;
    for (size_t k = 0; k < m; ++k) {
      t[k] = taskAt(srcs, types, p, k, j) * (keep ? 1.0 : 0.0);
      s += t[k];
    }
    const double majority = s >= 0 ? 1.0 : -1.0;
    double num = 0, den = 0;
    for (size_t k = 0; k < m; ++k) {
      const double sign = t[k] > 0 ? 1.0 : t[k] < 0 ? -1.0 : 0.0;  // NaN: 0, never the majority
      const double ew = p.weights[k] * (sign == majority ? 1.0 : 0.0);
      num += t[k] * ew;
      den += ew;
    }
    const double b = loadElementF32(srcs[p.base], types[p.base], j);
    storeRoundedOnce(out, to, j, b + num / std::max(den, 1e-6));
  }
}

}  // namespace wm
