// arcee_fusion's softmax exps through tables of the batch's patterns for 16-bit sources (arcee_fusion_exps.h).
#include "arcee_fusion_exps.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "arcee_fusion_rows.h"
#include "cpu_backends.h"
#include "element_io.h"
#include "exact_exp_log.h"

namespace wm {

namespace {
// f(j, pattern) for the 16-bit patterns of elements start .. start + n - 1 of v, four per 8-byte load (plain loads beat
// AVX-512's gather for the table lookups: 1.0 against 1.4 ns per element on the EPYC this was measured on).
template <typename F>
void forPatterns(const void* v, size_t start, size_t n, F f) {
  const auto* bytes = static_cast<const unsigned char*>(v) + 2 * start;
  size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    uint64_t w;
    std::memcpy(&w, bytes + 2 * j, 8);
    f(j, w & 0xFFFF);
    f(j + 1, (w >> 16) & 0xFFFF);
    f(j + 2, (w >> 32) & 0xFFFF);
    f(j + 3, w >> 48);
  }
  for (; j < n; ++j) {
    uint16_t u;
    std::memcpy(&u, bytes + 2 * j, 2);
    f(j, u);
  }
}

uint64_t bitsOf(double m) {
  uint64_t bits;
  std::memcpy(&bits, &m, 8);
  return bits;
}

// The tables per max of one memo stay within this (above it: one table, refilled).
constexpr size_t kTablesBytes = size_t{16} << 20;

// WEIGHTMIX_ARCEE_KL_STATS=1 (arcee_kl.cc's switch) also prints, at exit, the exps the memos computed against the
// elements they answered, and the elements of the direct path (a diagnostic, off by default).
struct ExpCounts {
  std::atomic<uint64_t> computed{0}, looked{0}, direct{0};
  const bool on = environmentSwitch("WEIGHTMIX_ARCEE_KL_STATS");
  ~ExpCounts() {
    if (!on) return;
    const uint64_t c = computed.load(), l = looked.load();
    std::fprintf(stderr, "arcee_fusion exps: %llu computed for %llu elements from the memos' tables (%.4f per element), %llu elements direct\n",
                 static_cast<unsigned long long>(c), static_cast<unsigned long long>(l), l > 0 ? static_cast<double>(c) / static_cast<double>(l) : 0.0,
                 static_cast<unsigned long long>(direct.load()));
  }
} expCounts;
}  // namespace

void ArceeExpMemo::prepare(const void* v, Dtype t, size_t n, const double* rowMaxes, size_t rows, size_t changes, Mode mode) {
  mode_ = Mode::direct;
  filled_ = false;
  if (!arceeExpMemoizable(t) || mode == Mode::direct) return;
  // The marking is bound by its stores.
  uint8_t* present = present_.data();
  forPatterns(v, 0, n, [present](size_t, uint64_t u) { present[u] = 1; });
  patterns_.clear();
  for (size_t u = 0; u < present_.size(); ++u) {
    if (present[u] != 0) patterns_.push_back(static_cast<uint16_t>(u));
  }
  std::fill(present_.begin(), present_.end(), 0);
  const size_t d = patterns_.size();
  maxes_.resize(rows);
  for (size_t r = 0; r < rows; ++r) maxes_[r] = bitsOf(rowMaxes[r]);
  std::sort(maxes_.begin(), maxes_.end());
  maxes_.erase(std::unique(maxes_.begin(), maxes_.end()), maxes_.end());
  const size_t distinct = maxes_.size();
  if (mode == Mode::cheapest) {
    const bool perMax = distinct < changes && distinct * d * sizeof(double) <= kTablesBytes;
    mode = perMax ? Mode::tablePerMax : Mode::oneTable;
    if ((perMax ? distinct : changes) * d > n / 2) return;
  }
  mode_ = mode;
  // Each pattern's value as the direct path widens it (f32, then f64), once for all the fills.
  widened_.resize(d);
  arg_.resize(d);
  exp_.resize(d);
  for (size_t i = 0; i < d; ++i) widened_[i] = static_cast<double>(loadElementF32(patterns_.data(), t, i));
  if (mode_ != Mode::tablePerMax) return;
  for (size_t i = 0; i < d; ++i) id_[patterns_[i]] = static_cast<uint16_t>(i);
  if (tables_.size() < distinct * d) tables_.resize(distinct * d);  // grown only: no zeroing of what a later batch overwrites
  ready_.assign(distinct, 0);
}

// Every prepared pattern's exp for the max m, of the argument the direct path computes (arceeShiftedRow).
void ArceeExpMemo::exps(double m, double* out) {
  const size_t d = patterns_.size();
  for (size_t i = 0; i < d; ++i) arg_[i] = widened_[i] - m;
  expArray(arg_.data(), out, d);
  computed += d;
  if (expCounts.on) expCounts.computed.fetch_add(d, std::memory_order_relaxed);
}

const double* ArceeExpMemo::tableOf(double m) {
  const uint64_t bits = bitsOf(m);
  if (!filled_ || bits != maxBits_) {
    const auto at = std::lower_bound(maxes_.begin(), maxes_.end(), bits);
    if (at == maxes_.end() || *at != bits) throw std::logic_error("internal: an arcee_fusion row max the exps' memo was not prepared for");
    slot_ = static_cast<size_t>(at - maxes_.begin());
    maxBits_ = bits;
    filled_ = true;
  }
  double* table = tables_.data() + slot_ * patterns_.size();
  if (ready_[slot_] == 0) {
    exps(m, table);
    ready_[slot_] = 1;
  }
  return table;
}

void ArceeExpMemo::rowExps(const void* v, Dtype t, size_t r0, size_t L, double m, double* e, double* x) {
  if (mode_ == Mode::direct) {
    arceeShiftedRow(v, t, r0, L, m, x);
    expArray(x, e, L);
    if (expCounts.on) expCounts.direct.fetch_add(L, std::memory_order_relaxed);
    return;
  }
  looked += L;
  if (expCounts.on) expCounts.looked.fetch_add(L, std::memory_order_relaxed);
  if (mode_ == Mode::tablePerMax) {
    const double* table = tableOf(m);
    const uint16_t* id = id_.data();
    forPatterns(v, r0, L, [table, id, e](size_t j, uint64_t u) { e[j] = table[id[u]]; });
    return;
  }
  const uint64_t bits = bitsOf(m);
  if (!filled_ || bits != maxBits_) {
    exps(m, exp_.data());
    for (size_t i = 0; i < patterns_.size(); ++i) value_[patterns_[i]] = exp_[i];
    filled_ = true;
    maxBits_ = bits;
  }
  const double* value = value_.data();
  forPatterns(v, r0, L, [value, e](size_t j, uint64_t u) { e[j] = value[u]; });
}

}  // namespace wm
