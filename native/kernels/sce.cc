// SCE's variance selection, sums of squares and merge (see sce.h).
#include "sce.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "cpu_backends.h"
#include "element_io.h"
#include "numerics.h"
#include "sparse_select.h"
#include "sparsify.h"
#include "whole_param.h"

namespace wm {
namespace {

uint64_t wholeAt(const std::vector<double>& p, size_t i, double max) {
  if (i >= p.size()) throw std::invalid_argument("sce parameters too short");
  return wholeParam(p, i, max, "sce");
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

// Elements are handled in chunks: loads with the dtype fixed at compile time into f64 arrays, then
// per-element arithmetic in the same order as the formulas of sce.h (so the same bits).
constexpr size_t kChunk = 512;

void loadRun(const void* src, Dtype type, size_t j0, size_t len, double* out) {
  withDtype(type, [&](auto T) {
    constexpr Dtype D = decltype(T)::value;
    for (size_t j = 0; j < len; ++j) out[j] = loadElem<D>(src, j0 + j);
  });
}

// The f32 variance's |bits| per element (every NaN one value above Inf): mean and variance in model order.
void varianceBits(const double* t, size_t stride, size_t m, size_t len, uint32_t* bits) {
  double mean[kChunk], v[kChunk];
  std::fill(mean, mean + len, 0.0);
  for (size_t k = 0; k < m; ++k) {
    for (size_t j = 0; j < len; ++j) mean[j] += t[k * stride + j];
  }
  for (size_t j = 0; j < len; ++j) mean[j] /= static_cast<double>(m);
  std::fill(v, v + len, 0.0);
  for (size_t k = 0; k < m; ++k) {
    for (size_t j = 0; j < len; ++j) {
      const double d = t[k * stride + j] - mean[j];
      v[j] += d * d;
    }
  }
  for (size_t j = 0; j < len; ++j) {
    const uint32_t b = num::f32Bits(static_cast<float>(v[j] / static_cast<double>(m))) & 0x7FFFFFFFu;
    bits[j] = b > 0x7F800000u ? 0x7FC00000u : b;
  }
}

// Calls f(j0, len, base, t, keep) per chunk of the piece; keep[j] is 1.0 for the selected elements, else 0.0.
template <typename F>
void forChunks(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, uint64_t start, size_t n, F f) {
  const size_t m = p.sources.size();
  thread_local std::vector<double> t;
  t.resize(m * kChunk);
  double base[kChunk], keep[kChunk];
  uint32_t bits[kChunk];
  for (size_t j0 = 0; j0 < n; j0 += kChunk) {
    const size_t len = std::min(kChunk, n - j0);
    const bool all = p.cut == 0 || p.cut >= kRankKeyNone;  // every key lies below kRankKeyNone: all kept, or none
    const bool fresh = !all && p.varianceBits == nullptr && p.keepMap == nullptr;  // the variances computed here, with the loads
    sceTasks(srcs, types, p, j0, len, base, t.data(), kChunk, fresh ? bits : nullptr);
    if (all) {
      std::fill(keep, keep + len, p.cut == 0 ? 1.0 : 0.0);
    } else if (p.keepMap != nullptr) {
      sceKeepOfMap(p.keepMap, p.sumPiece, start + j0, len, keep);
    } else {
      sceKeep(fresh ? bits : p.varianceBits + start + j0, p.indexBits, count, start + j0, p.cut, len, keep);
    }
    f(j0, len, base, t.data(), keep);
  }
}

}  // namespace

SceParams decodeSceParams(const std::vector<double>& p, size_t sourceCount, uint64_t count) {
  // [base, cutHi, cutLo, indexBits, m, m x (source, weight)]: reordered into modelsAt's layout.
  if (p.size() < 5) throw std::invalid_argument("sce parameters too short");
  const size_t end = 5 + 2 * static_cast<size_t>(wholeAt(p, 4, 65536));
  if (p.size() != end && p.size() != end + 2 && p.size() != end + 3) throw std::invalid_argument("sce parameter count does not match the model count");
  std::vector<double> models = {p[0]};
  models.insert(models.end(), p.begin() + 4, p.begin() + static_cast<std::ptrdiff_t>(end));
  SceParams s;
  modelsAt(models, sourceCount, s, true);
  if (s.sources.empty()) throw std::invalid_argument("sce needs at least one model");
  cutAt(p, 1, count, s);
  if (p.size() >= end + 2) {
    s.open = true;
    s.selectTopk = p[end];
    s.sumPiece = wholeAt(p, end + 1, 1099511627776.0);
    if (s.sumPiece == 0) throw std::invalid_argument("sce sums' piece length must be at least 1");
    s.recomputeVariances = p.size() == end + 3 && wholeAt(p, end + 2, 1) == 1;
  }
  return s;
}

SceStat decodeSceHistogram(const std::vector<double>& p, size_t sourceCount, uint64_t count) {
  SceStat s;
  const size_t at = modelsAt(p, sourceCount, s.select, false);
  if (s.select.sources.empty()) throw std::invalid_argument("sce histogram takes [base, m, m sources, indexBits, shift, bits, prefixHi, prefixLo, (first, total)?]");
  s.digit = decodeHistogramDigit(p, at, count);
  s.select.indexBits = s.digit.indexBits;
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
  const HistogramDigit& d = s.digit;
  count = d.keyedCount(count);  // a run: keys as in the whole tensor
  start = d.keyedStart(start);
  const uint64_t mask = (uint64_t{1} << d.bits) - 1;
  const uint32_t up = d.shift + d.bits;
  const size_t m = s.select.sources.size();
  thread_local std::vector<double> t;
  t.resize(m * kChunk);
  double base[kChunk];
  uint32_t bits[kChunk];
  uint64_t zeros = 0;  // in a register: with one task vector every variance is 0, and hist[2^bits]'s adds would wait on each other
  for (size_t j0 = 0; j0 < n; j0 += kChunk) {
    const size_t len = std::min(kChunk, n - j0);
    sceTasks(srcs, types, s.select, j0, len, base, t.data(), kChunk, bits);
    for (size_t j = 0; j < len; ++j) {
      zeros += bits[j] == 0;
      const uint64_t key = sparseRankKey(bits[j], s.select.indexBits, count, start + j0 + j);
      if (up < 64 && (key >> up) != d.prefix) continue;
      ++hist[(key >> d.shift) & mask];
    }
  }
  hist[mask + 1] += zeros;
}

void sceSumSquares(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, uint64_t start, size_t n, double* sums) {
  // Each model's sum adds its elements in element order, as sce.h says, in a register (sums may alias t).
  // A dropped element (t * 0: ±0, or not finite) or a kept one that is not finite adds +0, which leaves the
  // sum's bits as they are (it is finite and >= +0: |t| < 2^129, so t^2 cannot overflow): only the kept
  // elements are added, two models side by side, so that the sums' add latencies overlap.
  const size_t m = p.sources.size();
  forChunks(srcs, types, p, count, start, n, [&](size_t, size_t len, const double*, const double* t, const double* keep) {
    uint16_t kept[kChunk];
    size_t nk = 0;
    for (size_t j = 0; j < len; ++j) {
      uint64_t one;  // keep[j] is 1.0 or 0.0 (t * 1.0 is t): bit 61 is set in 1.0's bits only
      std::memcpy(&one, &keep[j], sizeof one);
      kept[nk] = static_cast<uint16_t>(j);
      nk += one >> 61;
    }
    const auto square = [](double x) { return std::isfinite(x) ? x * x : 0.0; };
    size_t k = 0;
    for (; k + 2 <= m; k += 2) {
      const double *a = t + k * kChunk, *b = a + kChunk;
      double sa = sums[k], sb = sums[k + 1];
      for (size_t i = 0; i < nk; ++i) {
        sa += square(a[kept[i]]);
        sb += square(b[kept[i]]);
      }
      sums[k] = sa;
      sums[k + 1] = sb;
    }
    if (k < m) {
      const double* a = t + k * kChunk;
      double sa = sums[k];
      for (size_t i = 0; i < nk; ++i) sa += square(a[kept[i]]);
      sums[k] = sa;
    }
  });
}

void scalar::sceSumSquaresPieces(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, double* sums, uint8_t* keepMap) {
  const size_t m = p.sources.size();
  const uint64_t piece = p.sumPiece;
  std::vector<double> sum(m);
  std::vector<const void*> at(1 + std::max<size_t>(p.base, *std::max_element(p.sources.begin(), p.sources.end())));
  for (uint64_t start = 0; start < count; start += piece) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(piece, count - start));
    for (size_t s = 0; s < at.size(); ++s) at[s] = static_cast<const uint8_t*>(srcs[s]) + start * dtypeSize(types[s]);
    std::fill(sum.begin(), sum.end(), 0.0);
    sceSumSquares(at.data(), types, p, count, start, n, sum.data());
    for (size_t k = 0; k < m; ++k) sums[k] += sum[k];
  }
  if (keepMap == nullptr) return;
  // In element order: a map byte lies on the bits of an element at or before the first of its 8 (sceKeepMapBit), read by then.
  for (uint64_t start = 0; start < count; start += piece) {
    const uint64_t n = std::min(piece, count - start);
    for (uint64_t o = 0; o < n; o += 8) {
      uint8_t byte = 0;
      for (uint64_t i = start + o; i < start + std::min(n, o + 8); ++i) {
        byte |= static_cast<uint8_t>((sparseRankKey(p.varianceBits[i], p.indexBits, count, i) >= p.cut ? 1u : 0u) << ((i - start) % 8));
      }
      keepMap[sceKeepMapBit(start + o, piece) / 8] = byte;
    }
  }
}

void scalar::sceKeepOfMap(const uint8_t* map, uint64_t piece, uint64_t first, size_t len, double* keep) {
  for (size_t j = 0; j < len; ++j) {
    const uint64_t bit = sceKeepMapBit(first + j, piece);
    keep[j] = (map[bit / 8] >> (bit % 8)) & 1 ? 1.0 : 0.0;
  }
}

uint64_t scalar::sceZeroBits(const uint32_t* bits, size_t n) { return static_cast<uint64_t>(std::count(bits, bits + n, 0u)); }

void scalar::sceVarianceBits(const void* const* srcs, const Dtype* types, const SceParams& p, size_t n, uint32_t* bits) {
  const size_t m = p.sources.size();
  thread_local std::vector<double> t;
  t.resize(m * kChunk);
  double base[kChunk];
  for (size_t j0 = 0; j0 < n; j0 += kChunk) {
    const size_t len = std::min(kChunk, n - j0);
    wm::sceTasks(srcs, types, p, j0, len, base, t.data(), kChunk, bits + j0);  // dispatched: the SIMD loops where the AVX-512 kernel declines
  }
}

std::vector<double> sceWeights(const std::vector<double>& sumSquares, uint64_t count) {
  std::vector<double> means(sumSquares.size());
  double total = 0;
  for (size_t k = 0; k < means.size(); ++k) {
    means[k] = sumSquares[k] / static_cast<double>(count);
    total += means[k];
  }
  for (double& x : means) x = std::fabs(total) < 1e-6 ? 1 / static_cast<double>(means.size()) : x / total;
  return means;
}

void scalar::sceTasks(const void* const* srcs, const Dtype* types, const SceParams& p, size_t j0, size_t len, double* base, double* t, size_t stride,
                      uint32_t* bits) {
  loadRun(srcs[p.base], types[p.base], j0, len, base);
  for (size_t k = 0; k < p.sources.size(); ++k) {
    double* tk = t + k * stride;
    loadRun(srcs[p.sources[k]], types[p.sources[k]], j0, len, tk);
    for (size_t j = 0; j < len; ++j) tk[j] -= base[j];
  }
  if (bits != nullptr) varianceBits(t, stride, p.sources.size(), len, bits);
}

void scalar::sceKeep(const uint32_t* bits, uint32_t indexBits, uint64_t count, uint64_t first, uint64_t cut, size_t len, double* keep) {
  // 1.0 or 0.0 by a mask, not a branch: about half the elements pass a select_topk of 0.5, at random.
  for (size_t j = 0; j < len; ++j) {
    const uint64_t kept = uint64_t{0} - static_cast<uint64_t>(sparseRankKey(bits[j], indexBits, count, first + j) >= cut);
    const uint64_t one = kept & 0x3FF0000000000000ull;  // the bits of 1.0
    std::memcpy(&keep[j], &one, sizeof one);
  }
}

void scalar::sceCombine(const double* base, const double* t, size_t stride, const double* keep, const double* weights, size_t m, size_t len, void* out,
                        size_t at, Dtype to) {
  // Per element the formulas of sce.h in model order, computed a model at a time across the chunk's
  // elements (each element's operations and their order are the same).
  double majority[kChunk], num[kChunk], den[kChunk];
  std::fill(majority, majority + len, 0.0);
  for (size_t k = 0; k < m; ++k) {
    for (size_t j = 0; j < len; ++j) majority[j] += t[k * stride + j] * keep[j];
  }
  for (size_t j = 0; j < len; ++j) majority[j] = majority[j] >= 0 ? 1.0 : -1.0;
  std::fill(num, num + len, 0.0);
  std::fill(den, den + len, 0.0);
  for (size_t k = 0; k < m; ++k) {
    const double w = weights[k];
    for (size_t j = 0; j < len; ++j) {
      const double tk = t[k * stride + j] * keep[j];
      const double sign = tk > 0 ? 1.0 : tk < 0 ? -1.0 : 0.0;  // NaN: 0, never the majority
      const double ew = w * (sign == majority[j] ? 1.0 : 0.0);
      num[j] += tk * ew;
      den[j] += ew;
    }
  }
  withDtype(to, [&](auto T) {
    for (size_t j = 0; j < len; ++j) storeRoundedOnce(out, decltype(T)::value, at + j, base[j] + num[j] / std::max(den[j], 1e-6));
  });
}

bool scalar::sceMergeInRegisters(const void* const*, const Dtype*, const SceParams&, uint64_t, uint64_t, size_t, void*, Dtype) {
  return false;  // the scalar merge is sceMerge's chunks, the truth the fused merges are compared with
}

void scalar::sceMergeNone(const void* const* srcs, const Dtype* types, const SceParams& p, size_t j0, size_t len, void* out, Dtype to) {
  // Nothing kept: each t * 0 is ±0, so num and den are +0 whatever the weights, and out = base + 0 / 1e-6,
  // the formula with no models, unless some t is not finite (t * 0 is NaN, and so is num): base made NaN there.
  const size_t m = p.sources.size();
  thread_local std::vector<double> t;
  t.resize(m * kChunk);
  double b[kChunk];
  const double zeros[kChunk] = {};
  for (size_t c0 = j0; c0 < j0 + len; c0 += kChunk) {
    const size_t cl = std::min(kChunk, j0 + len - c0);
    scalar::sceTasks(srcs, types, p, c0, cl, b, t.data(), kChunk, nullptr);
    for (size_t k = 0; k < m; ++k) {
      for (size_t j = 0; j < cl; ++j) b[j] = std::isfinite(t[k * kChunk + j]) ? b[j] : std::numeric_limits<double>::quiet_NaN();
    }
    scalar::sceCombine(b, t.data(), kChunk, zeros, p.weights.data(), 0, cl, out, c0, to);
  }
}

void sceMerge(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, uint64_t start, size_t n, void* out, Dtype to) {
  if (p.cut >= kRankKeyNone) {
    sceMergeNone(srcs, types, p, 0, n, out, to);
    return;
  }
  if (sceMergeInRegisters(srcs, types, p, count, start, n, out, to)) return;
  forChunks(srcs, types, p, count, start, n, [&](size_t j0, size_t len, const double* base, const double* t, const double* keep) {
    sceCombine(base, t, kChunk, keep, p.weights.data(), p.sources.size(), len, out, j0, to);
  });
}

}  // namespace wm
