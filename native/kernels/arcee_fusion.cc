// Arcee Fusion's importance, its order-statistic histograms and the merge (see arcee_fusion.h).
#include "arcee_fusion.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "arcee_fusion_exps.h"
#include "arcee_fusion_rows.h"
#include "arcee_kl.h"
#include "cpu_backends.h"
#include "element_io.h"
#include "numerics.h"
#include "sparsify.h"
#include "whole_param.h"

namespace wm {
namespace {

uint64_t wholeAt(const std::vector<double>& p, size_t i, double max) { return wholeParam(p, i, max, "arcee_fusion"); }

ArceeParams rowsAt(const std::vector<double>& p, size_t sourceCount, uint64_t count) {
  ArceeParams a;
  a.rowLength = wholeAt(p, 0, 9007199254740991.0);
  a.base = static_cast<uint32_t>(wholeAt(p, 1, 4294967295.0));
  a.model = static_cast<uint32_t>(wholeAt(p, 2, 4294967295.0));
  if (a.base >= sourceCount || a.model >= sourceCount) throw std::invalid_argument("a source index is out of range");
  if (a.rowLength == 0 || count % a.rowLength != 0) throw std::invalid_argument("arcee_fusion rows of " + std::to_string(a.rowLength) + " do not tile " + std::to_string(count) + " elements");
  return a;
}

// The row KLs at p[at..]: none (null) or exactly one per row.
const double* rowKlAt(const std::vector<double>& p, size_t at, uint64_t rows) {
  if (p.size() == at) return nullptr;
  if (p.size() - at != rows) throw std::invalid_argument("arcee_fusion row KLs: " + std::to_string(p.size() - at) + " for " + std::to_string(rows) + " rows");
  return p.data() + at;
}

// KL(softmax(b) + eps || softmax(a) + eps) of R rows of L elements, the k-th from element r0[k] with maxes ma[k] and
// mb[k] (arceeRowMax), into kl[0 .. R - 1] (f64; NaN where a value is not finite), each exact or a KL equal in effect
// (arcee_kl.h: the same importances). The exps come from the thread's memos (arcee_fusion_exps.h, one per model), the other
// per-element steps run over the rows as arrays (arcee_fusion_rows.h, arcee_kl.h; exact_exp_log.h: SIMD, equal to std::exp
// and std::log); each row's sums stay serial, in element order (their rounding is the result), the R rows' chains of adds
// interleaved so that one does not wait for another.
template <size_t R>
void rowDivergences(const void* a, Dtype ta, const void* b, Dtype tb, const size_t* r0, const double* ma, const double* mb, uint64_t L,
                    ArceeExpMemo& memoA, ArceeExpMemo& memoB, double* kl) {
  thread_local std::vector<double> xa, xb, ea, eb;
  for (std::vector<double>* v : {&xa, &xb, &ea, &eb}) v->resize(R * L);
  for (size_t k = 0; k < R; ++k) {
    memoA.rowExps(a, ta, r0[k], L, ma[k], ea.data() + k * L, xa.data() + k * L);
    memoB.rowExps(b, tb, r0[k], L, mb[k], eb.data() + k * L, xb.data() + k * L);
  }
  double sa[R] = {}, sb[R] = {};
  for (uint64_t j = 0; j < L; ++j) {
    for (size_t k = 0; k < R; ++k) {
      sa[k] += ea[k * L + j];
      sb[k] += eb[k * L + j];
    }
  }
  double* p = xa.data();
  double* ratio = xb.data();
  for (size_t k = 0; k < R; ++k) arceeRatios(ea.data() + k * L, sa[k], eb.data() + k * L, sb[k], L, p + k * L, ratio + k * L);
  arceeRowKlGroup(R, a, ta, b, tb, r0, L, p, ratio, ea.data(), eb.data(), kl);  // the sum of p log(ratio), or one equal in effect
}

// Row `row` of L elements of v (dtype t), a prefetch per cache line, its first 16 KiB (a longer row: the prefetchers follow it).
void prefetchRow(const void* v, Dtype t, size_t row, uint64_t L) {
  const uint8_t* at = static_cast<const uint8_t*>(v) + row * L * dtypeSize(t);
  for (uint64_t off = 0; off < std::min<uint64_t>(L * dtypeSize(t), 16384); off += 64) __builtin_prefetch(at + off);
}

// Rows whose KLs are computed together (rowDivergences): their serial sums run side by side, so a group of one row waits on
// each add (Qwen3-4B's down_proj, rows of 9,728: one row at 16,384 elements, three at 32,768: user CPU of an arcee_fusion merge
// of a real-width 3-layer pair 5.61 -> 5.30 s), while their four arrays (8 bytes per element each, 1 MiB at most) stay near the
// L2 cache (65,536 elements: no faster).
constexpr size_t kRowGroup = 4;
constexpr uint64_t kGroupElements = 32768;

// A row's order in arceeRowKls: the f32 bits of its maxes (base's high, model's low; m is always an f32 value or
// -Inf; 0 for an f32 source, which takes the direct path), so that rows of equal maxes come together, then its number.
uint64_t maxKey(double ma, double mb, bool memoA, bool memoB) {
  const uint64_t ka = memoA ? num::f32Bits(static_cast<float>(ma)) : 0, kb = memoB ? num::f32Bits(static_cast<float>(mb)) : 0;
  return ka << 32 | kb;
}

// How many times the max changes along the order (the memo's refills): shift 32 for the base's, 0 for the model's.
size_t maxChanges(const std::vector<std::pair<uint64_t, size_t>>& order, size_t rows, unsigned shift) {
  size_t changes = 0;
  for (size_t i = 0; i < rows; ++i) changes += i == 0 || static_cast<uint32_t>(order[i].first >> shift) != static_cast<uint32_t>(order[i - 1].first >> shift);
  return changes;
}

// Each row's KL of the piece (start, n: whole rows): given, or computed first (into klOut unless null); then calls
// row(r0, kl) for the row at piece element r0, in order.
template <typename F>
void forRows(const void* const* srcs, const Dtype* types, const ArceeParams& p, uint64_t start, size_t n, F row, double* klOut = nullptr) {
  const uint64_t L = p.rowLength;
  if (start % L != 0 || n % L != 0) throw std::logic_error("internal: an arcee_fusion piece is not whole rows");
  const double* kl = p.rowKl != nullptr ? p.rowKl + start / L : nullptr;
  if (kl == nullptr) {
    thread_local std::vector<double> piece;
    double* out = klOut != nullptr ? klOut + start / L : (piece.resize(n / L), piece.data());
    arceeRowKls(srcs, types, p, n, out);
    kl = out;
  }
  for (size_t r0 = 0; r0 < n; r0 += L) row(r0, kl[r0 / L]);
}

}  // namespace

void arceeRowKls(const void* const* srcs, const Dtype* types, const ArceeParams& p, size_t n, double* kl) {
  const uint64_t L = p.rowLength;
  const size_t rows = n / L;
  const void* a = srcs[p.base];
  const void* b = srcs[p.model];
  const Dtype ta = types[p.base], tb = types[p.model];
  const bool memoA = arceeExpMemoizable(ta), memoB = arceeExpMemoizable(tb);
  // Rows in the order of their maxes, the base's first (a row's KL does not depend on the order): the base's memo keeps
  // its one table while its max stays, the model's computes each of its maxes' tables once where it has fewer maxes than
  // changes of max (thread-local, 32 bytes per row of the largest piece with the maxes).
  thread_local std::vector<std::pair<uint64_t, size_t>> order;
  thread_local std::vector<double> maxes;  // each row's maxes, computed once (the base's, then the model's): the memos' keys, the direct path's shift
  order.resize(rows);
  maxes.resize(2 * rows);
  double* maxA = maxes.data();
  double* maxB = maxes.data() + rows;
  for (size_t r = 0; r < rows; ++r) {
    maxA[r] = arceeRowMax(a, ta, r * L, L);
    maxB[r] = arceeRowMax(b, tb, r * L, L);
    order[r] = {maxKey(maxA[r], maxB[r], memoA, memoB), r};
  }
  if (memoA || memoB) std::sort(order.begin(), order.end());
  thread_local ArceeExpMemo memoOfA, memoOfB;
  memoOfA.prepare(a, ta, n, maxA, rows, maxChanges(order, rows, 32));
  memoOfB.prepare(b, tb, n, maxB, rows, maxChanges(order, rows, 0));
  const size_t group = std::min<uint64_t>(kRowGroup, std::max<uint64_t>(1, kGroupElements / L));
  size_t r0[kRowGroup];
  double ma[kRowGroup], mb[kRowGroup], out[kRowGroup];
  for (size_t i = 0; i < rows;) {
    const size_t R = std::min(group, rows - i);
    for (size_t k = 0; k < R; ++k) {
      const size_t row = order[i + k].second;
      r0[k] = row * L;
      ma[k] = maxA[row];
      mb[k] = maxB[row];
    }
    // The next group's rows into the cache ahead: they are read in the maxes' order, which the prefetchers cannot follow (arcee_fusion
    // user CPU 8.2 -> 7.65 s on the bench's dense pair).
    for (size_t k = i + R; k < std::min(rows, i + 2 * R); ++k) {
      prefetchRow(a, ta, order[k].second, L);
      prefetchRow(b, tb, order[k].second, L);
    }
    if (R == 4) rowDivergences<4>(a, ta, b, tb, r0, ma, mb, L, memoOfA, memoOfB, out);
    else if (R == 3) rowDivergences<3>(a, ta, b, tb, r0, ma, mb, L, memoOfA, memoOfB, out);
    else if (R == 2) rowDivergences<2>(a, ta, b, tb, r0, ma, mb, L, memoOfA, memoOfB, out);
    else rowDivergences<1>(a, ta, b, tb, r0, ma, mb, L, memoOfA, memoOfB, out);
    for (size_t k = 0; k < R; ++k) kl[order[i + k].second] = out[k];
    i += R;
  }
}

ArceeParams decodeArceeParams(const std::vector<double>& p, size_t sourceCount, uint64_t count) {
  if (p.size() < 3) throw std::invalid_argument("arcee_fusion takes [L, base, model, (threshold, (row KLs)?)?]");
  // [-L, base, model]: open, the keys recomputed per pass (the only form whose row length is negative).
  const bool recompute = p.size() == 3 && p[0] < 0;
  std::vector<double> rows = p;
  if (recompute) rows[0] = -p[0];
  ArceeParams a = rowsAt(rows, sourceCount, count);
  a.recomputeKeys = recompute;
  a.open = p.size() == 3;
  if (a.open) return a;
  a.threshold = static_cast<float>(p[3]);
  a.rowKl = rowKlAt(p, 4, count / a.rowLength);
  return a;
}

ArceeStat decodeArceeHistogram(const std::vector<double>& p, size_t sourceCount, uint64_t count) {
  if (p.size() < 8) throw std::invalid_argument("arcee_fusion histogram takes [L, base, model, shift, bits, prefix x 3, (row KLs)?]");
  ArceeStat s;
  s.rows = rowsAt(p, sourceCount, count);
  s.rows.rowKl = rowKlAt(p, 8, count / s.rows.rowLength);
  s.shift = static_cast<uint32_t>(wholeAt(p, 3, 31));
  s.bits = static_cast<uint32_t>(wholeAt(p, 4, kMaxHistogramBits));
  if (s.bits == 0 || s.shift + s.bits > 32) throw std::invalid_argument("bad histogram digit");
  for (int q = 0; q < 3; ++q) s.prefix[q] = wholeAt(p, 5 + q, 4294967295.0);
  return s;
}


void arceeHistogram(const void* const* srcs, const Dtype* types, const ArceeStat& s, uint64_t start, size_t n, uint64_t* hist, double* rowKl) {
  const uint64_t mask = (uint64_t{1} << s.bits) - 1;
  const uint32_t up = s.shift + s.bits;
  thread_local std::vector<uint32_t> keys;
  keys.resize(s.rows.rowLength);
  forRows(srcs, types, s.rows, start, n, [&](size_t r0, double kl) {
    arceeKeys(srcs[s.rows.base], types[s.rows.base], srcs[s.rows.model], types[s.rows.model], r0, s.rows.rowLength, kl, keys.data());
    for (const uint64_t key : keys) {
      for (int q = 0; q < 3; ++q) {
        if (up < 32 && (key >> up) != s.prefix[q]) continue;
        ++hist[(static_cast<uint64_t>(q) << s.bits) + ((key >> s.shift) & mask)];
      }
    }
  }, rowKl);
}

void arceeRowKeys(const void* const* srcs, const Dtype* types, const ArceeParams& p, uint64_t start, size_t n, uint32_t* keys) {
  if (p.rowKl == nullptr) throw std::logic_error("internal: arcee_fusion keys without their row KLs");
  forRows(srcs, types, p, start, n, [&](size_t r0, double kl) {
    arceeKeys(srcs[p.base], types[p.base], srcs[p.model], types[p.model], r0, p.rowLength, kl, keys + r0);
  });
}

void arceeMerge(const void* const* srcs, const Dtype* types, const ArceeParams& p, uint64_t start, size_t n, void* out, Dtype to) {
  if (p.open) throw std::logic_error("internal: an arcee_fusion merge with its threshold still open");
  forRows(srcs, types, p, start, n, [&](size_t r0, double kl) {
    arceeMergeRow(srcs[p.base], types[p.base], srcs[p.model], types[p.model], r0, p.rowLength, kl, p.threshold, out, to);
  });
}

}  // namespace wm
