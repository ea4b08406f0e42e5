// DELLA's MAGPRUNE keep rule, merge and L1 statistic (see della.h).
#include "della.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>

#include "cpu_backends.h"
#include "della_rank.h"
#include "element_io.h"
#include "numerics.h"
#include "whole_param.h"

namespace wm {
namespace {

uint64_t wholeAt(const std::vector<double>& p, size_t i, double max, const char* what) { return wholeParam(p, i, max, "della", what); }

double finiteAt(const std::vector<double>& p, size_t i) {
  if (!std::isfinite(p[i])) throw std::invalid_argument("della parameter " + std::to_string(i) + " is not a finite number");
  return p[i];
}

DellaRows rowsAt(const std::vector<double>& p, size_t i, uint64_t count) {
  DellaRows r;
  r.length = wholeAt(p, i, 9007199254740991.0, "a row length");
  r.stride = wholeAt(p, i + 1, 9007199254740991.0, "a row stride");
  if (r.length == 0 || r.length > 0xFFFFFFFFu || r.stride == 0 || r.length > count || r.stride > count / r.length || count % r.block() != 0) {
    throw std::invalid_argument("della rows (" + std::to_string(r.length) + " x stride " + std::to_string(r.stride) + ") do not tile " +
                                std::to_string(count) + " elements");
  }
  return r;
}

void modelAt(const std::vector<double>& p, size_t o, DellaModel& m) {
  m.density = finiteAt(p, o);
  m.epsilon = finiteAt(p, o + 1);
  m.seedKey = (wholeAt(p, o + 2, 4294967295.0, "a u32") << 32) | wholeAt(p, o + 3, 4294967295.0, "a u32");
}

// keep when (u >> 11) < limit: bernoulliKeep's u * 2^-53 < p in integers (u >> 11 < 2^53 is exact in f64, and
// an integer k < y exactly when k < ceil(y)).
uint64_t keepLimit(double p) { return p <= 0 ? 0 : p >= 1 ? uint64_t{1} << 53 : static_cast<uint64_t>(std::ceil(p * 0x1.0p53)); }

// Per thread: a block of rows' |d| bits, draws and ranks (by block index), the keep limit of each rank (for the
// row length, density and epsilon of limitOf), the ranker's tables, L1 sums.
struct DellaScratch {
  DellaRowRanker ranker;
  std::vector<uint32_t> keys, rankOf;
  std::vector<uint64_t> u, limit;
  double limitOf[3] = {-1, 0, 0};  // L, density, epsilon
  DellaLimits limits;              // `limit` with its least and greatest, for the ranker's draw() where monotone
  bool monotone = false;
  uint64_t l1[4][2][kL1Buckets] = {};  // L1 buckets (before, after) in four interleaved sets, zero between calls
};

// The keep limit of each rank of a row of L elements (della.h's p in f64, then keepLimit), recomputed when L or the model's
// density or epsilon change (not per call: a tensor-local job calls once per 64 Ki elements, with L divisions each).
void rankLimits(DellaScratch& sc, uint64_t L, const DellaModel& m) {
  const double of[3] = {static_cast<double>(L), m.density, m.epsilon};
  if (std::memcmp(of, sc.limitOf, sizeof of) == 0) return;
  sc.limit.resize(L);
  for (uint64_t r = 0; r < L; ++r) {
    sc.limit[r] = keepLimit(L == 1 ? m.density : (m.density - m.epsilon) + ((static_cast<double>(r) / static_cast<double>(L - 1)) * 2) * m.epsilon);
  }
  // Monotone by construction (each rounding is; non-increasing where epsilon < 0), checked here: draw() relies on it.
  const uint64_t* limit = sc.limit.data();
  const bool up = std::is_sorted(limit, limit + L), down = std::is_sorted(limit, limit + L, std::greater<uint64_t>());
  sc.monotone = up || down;
  sc.limits.limit = limit;
  sc.limits.low = std::min(limit[0], limit[L - 1]);
  sc.limits.high = std::max(limit[0], limit[L - 1]);
  std::memcpy(sc.limitOf, of, sizeof of);
}

// One row's L1 sums after the ranker's draw(): a bucket's |d| (its key's high 16 bits) times its element count and its kept
// count, then each odd key's low 16 bits (keys[t], keep[t]: the row at stride 1) into its bucket's sums, as l1Mantissa is
// linear in them. The same integers as adding element by element, without a read-modify-write of a bucket per element.
void addRowL1(const DellaRowRanker& rk, const uint32_t* keys, const uint8_t* keep, uint64_t* before, uint64_t* after) {
  for (uint32_t i = 0; i < rk.buckets(); ++i) {
    const uint32_t a = rk.bucket(i) << 16;
    if (a >= 0x7F800000u) break;  // Inf and NaN (the last buckets) have no place in a finite sum
    const uint64_t mant = l1Mantissa(a);
    before[l1Bucket(a)] += (rk.first(i + 1) - rk.first(i)) * mant;
    after[l1Bucket(a)] += rk.kept(i) * mant;
  }
  for (uint32_t k = 0; k < rk.oddCount(); ++k) {  // odd keys are finite (below 0x7F800000)
    const uint32_t t = rk.odd()[k], a = keys[t], low = a & 0xFFFFu;
    before[l1Bucket(a)] += low;
    after[l1Bucket(a)] += keep[t] != 0 ? low : 0;
  }
}

// keep[j] for elements [start, start + n) (whole blocks of rows) of model m's MAGPRUNE mask; with `before`,
// also adds every |d| to the L1 buckets (sparsify.h's addToL1Buckets), from the bits the ranks were taken from.
void keepBlocksWith(DellaScratch& sc, const void* base, Dtype tb, const void* x, Dtype tx, const DellaRows& rows,
                    const DellaModel& m, uint64_t start, size_t n, uint8_t* keep, uint64_t* before, uint64_t* after) {
  if (start % rows.block() != 0 || n % rows.block() != 0) throw std::logic_error("internal: a della piece is not whole rows");
  const bool all = m.density >= 1, none = m.density <= 0;
  if ((all || none) && before == nullptr) {
    std::fill(keep, keep + n, static_cast<uint8_t>(all));
    return;
  }
  const uint64_t L = rows.length, S = rows.stride, B = rows.block();
  sc.keys.resize(B);
  sc.rankOf.resize(B);
  sc.u.resize(B);
  rankLimits(sc, L, m);
  const uint64_t* limit = sc.limit.data();
  const size_t eb = dtypeSize(tb), ex = dtypeSize(tx);
  for (uint64_t b0 = 0; b0 < n; b0 += B) {
    uint32_t* keys = sc.keys.data();
    const DellaKeyFacts facts = dellaKeys(static_cast<const uint8_t*>(base) + b0 * eb, tb, static_cast<const uint8_t*>(x) + b0 * ex, tx, B, keys);
    const bool uniform = facts.uniform();
    if (all || none) {
      std::fill(keep + b0, keep + b0 + B, static_cast<uint8_t>(all));
      // Four sets of buckets in turn: neighbours often share a bucket, and one set's adds would wait on each other.
      for (uint64_t j = 0; before != nullptr && j < B; ++j) addToL1Buckets(keys[j], all, sc.l1[j & 3][0], sc.l1[j & 3][1]);
      continue;
    }
    const uint64_t* u = sc.u.data();
    // A row of a matrix draws in the split's pass, and only its middle draws are kept (the row: the whole block).
    const bool drawing = S == 1 && sc.monotone;
    if (!drawing) dellaUniforms(m.seedKey, start + b0, B, sc.u.data());
    for (uint64_t s = 0; s < S; ++s) {
      if (drawing) {
        sc.ranker.countDrawing(keys, static_cast<uint32_t>(L), m.seedKey, start + b0, sc.limits, keep + b0, sc.u.data(), facts);  // B = L
      } else if (sc.monotone) {
        sc.ranker.count(keys + s, S, static_cast<uint32_t>(L), u + s, sc.limits, keep + b0 + s, uniform);
      } else {
        sc.ranker.count(keys + s, S, static_cast<uint32_t>(L));
      }
      if (sc.ranker.drawing() && sc.ranker.draw(keys + s, S, static_cast<uint32_t>(L), u + s, sc.limits, keep + b0 + s)) {
        // The usual row (bf16 |d|, or mostly so): the draws decided mostly without ranks, and the L1 sums by bucket.
        if (before != nullptr) addRowL1(sc.ranker, keys + s, keep + b0 + s, before, after);
        continue;
      }
      // Ranked by assign() (the ranker counted the row for it), with every element's draw.
      if (drawing) dellaUniforms(m.seedKey, start + b0, B, sc.u.data());
      uint32_t* rankOf = sc.rankOf.data();
      sc.ranker.assign(keys + s, S, static_cast<uint32_t>(L), rankOf + s);
      for (uint64_t j = s; j < B; j += S) keep[b0 + j] = u[j] < limit[rankOf[j]];
      for (uint64_t j = s; before != nullptr && j < B; j += S) addToL1Buckets(keys[j], keep[b0 + j] != 0, sc.l1[j & 3][0], sc.l1[j & 3][1]);
    }
  }
  if (before != nullptr) {
    for (auto& set : sc.l1) {
      for (size_t e = 0; e < kL1Buckets; ++e) {
        before[e] += std::exchange(set[0][e], 0);
        after[e] += std::exchange(set[1][e], 0);
      }
    }
  }
}

void keepBlocks(const void* base, Dtype tb, const void* x, Dtype tx, const DellaRows& rows, const DellaModel& m, uint64_t start, size_t n,
                uint8_t* keep, uint64_t* before, uint64_t* after) {
  thread_local DellaScratch scratch;
  // Opaque to the optimizer: else GCC recomputes the thread_local's address (a __tls_get_addr call) in the loops.
  DellaScratch* sc = &scratch;
  __asm__("" : "+r"(sc));
  keepBlocksWith(*sc, base, tb, x, tx, rows, m, start, n, keep, before, after);
}

// keep[j] = element start + j's bit of a keepBits map (sparsify.h's keptBit), a byte of bits at a time where aligned.
void unpackKeepBits(const uint8_t* bits, uint64_t start, size_t n, uint8_t* keep) {
  size_t j = 0;
  for (; j < n && (start + j) % 8 != 0; ++j) keep[j] = keptBit(bits, start + j);
  for (; j + 8 <= n; j += 8) std::memcpy(keep + j, &kSpreadBits.bytes[bits[(start + j) >> 3]], 8);  // little-endian: byte q first
  for (; j < n; ++j) keep[j] = keptBit(bits, start + j);
}

// out[j] = keep[j] ? x[j] : base[j], element bits copied (one dtype); by a mask, since a random keep
// mispredicts a branch half the time (the branch took 18 % of a della merge's CPU).
template <typename E>
void keepOrBase(const E* x, const E* base, const uint8_t* keep, size_t n, E* out) {
  for (size_t j = 0; j < n; ++j) {
    const E m = static_cast<E>(0 - static_cast<E>(keep[j]));
    out[j] = static_cast<E>((x[j] & m) | (base[j] & static_cast<E>(~m)));
  }
}

// Whether no element of a piece is +-Inf or NaN (its exponent bits all ones), by a branch-free reduction that vectorizes.
template <typename E>
bool allFinite(const E* v, size_t n, E exponent) {
  E all = 0;
  for (size_t j = 0; j < n; ++j) all |= static_cast<E>((v[j] & exponent) == exponent);
  return all == 0;
}

// A tensor-local job's merge where every model's mask is a keepBits map, all sources share the base's dtype and the piece's
// base and every scale are finite: sparseMerge reads the sources and the maps directly, without the kept copies. A dropped element's e_k is
// then 0, as (base - base) * scale is for a finite base and scale (not for +-Inf or NaN: those take dellaMerge's copies).
bool mergeByKeepBits(const void* const* srcs, const Dtype* types, const DellaParams& p, uint64_t count, uint64_t start, size_t n, void* out,
                     Dtype to) {
  const Dtype tb = types[p.baseSource];
  if (tb != Dtype::F32 && tb != Dtype::F16 && tb != Dtype::BF16) return false;
  for (const DellaModel& dm : p.models) {
    // An infinite scale makes a dropped element's (base - base) * scale NaN, too.
    if (dm.keepBits == nullptr || types[dm.source] != tb || !std::isfinite(dm.scale)) return false;
  }
  const void* base = srcs[p.baseSource];
  const bool finite = tb == Dtype::F32   ? allFinite(static_cast<const uint32_t*>(base), n, uint32_t{0x7F800000u})
                      : tb == Dtype::F16 ? allFinite(static_cast<const uint16_t*>(base), n, uint16_t{0x7C00u})
                                         : allFinite(static_cast<const uint16_t*>(base), n, uint16_t{0x7F80u});
  if (!finite) return false;
  SparseParams sp;
  sp.consensus = p.consensus;
  sp.normalize = p.normalize;
  sp.lambda = p.lambda;
  sp.indexBits = sparseIndexBits(count);
  sp.baseSource = p.baseSource;
  for (const DellaModel& dm : p.models) {
    SparseModel sm;  // the mask read from the map; no cuts
    sm.source = dm.source;
    sm.weight = dm.weight;
    sm.scale = dm.scale;
    sm.keepBits = dm.keepBits;
    sp.models.push_back(sm);
  }
  sparseMerge(srcs, types, sp, count, start, n, out, to);
  return true;
}

}  // namespace

namespace scalar {
void dellaUniforms(uint64_t seedKey, uint64_t first, size_t n, uint64_t* u) {
  for (size_t j = 0; j < n; ++j) u[j] = splitmix64(seedKey + (first + j + 1) * kSplitmixGolden) >> 11;
}

DellaKeyFacts dellaKeys(const void* base, Dtype tb, const void* x, Dtype tx, size_t n, uint32_t* keys) {
  scalar::absDeltaBits(base, tb, x, tx, n, keys);
  uint32_t low = 0, least = 0xFFFFFFFFu, greatest = 0;
  for (size_t j = 0; j < n; ++j) {
    keys[j] = keys[j] > 0x7F800000u ? 0x7FC00000u : keys[j];  // every NaN one value above Inf
    low |= keys[j];
    if (keys[j] != 0) least = std::min(least, keys[j]);
    greatest = std::max(greatest, keys[j]);
  }
  DellaKeyFacts facts;
  facts.lowBits = low & 0xFFFFu;
  facts.lowest = least >> 16;
  facts.highest = greatest >> 16;
  return facts;
}
}  // namespace scalar

DellaParams decodeDellaParams(const std::vector<double>& p, size_t sourceCount, uint64_t count) {
  if (p.size() < kDellaHeader) throw std::invalid_argument("della parameters too short");
  DellaParams d;
  const uint64_t c = wholeAt(p, 0, 1, "0 or 1 (consensus)");
  d.consensus = c == 0 ? Consensus::None : Consensus::Sum;
  d.normalize = wholeAt(p, 1, 1, "0 or 1 (normalize)") != 0;
  d.lambda = finiteAt(p, 2);
  d.baseSource = static_cast<uint32_t>(wholeAt(p, 3, 4294967295.0, "a source index"));
  if (d.baseSource >= sourceCount) throw std::invalid_argument("a source index is out of range");
  d.rows = rowsAt(p, 4, count);
  const uint64_t m = wholeAt(p, 6, 65536, "a model count");
  const size_t resolved = kDellaHeader + m * kDellaPerModel;
  if (p.size() != resolved && p.size() != resolved + m * kDellaOpenPerModel) {
    throw std::invalid_argument("della parameter count does not match the model count");
  }
  for (uint64_t k = 0; k < m; ++k) {
    const size_t o = kDellaHeader + k * kDellaPerModel;
    DellaModel x;
    x.source = static_cast<uint32_t>(wholeAt(p, o, 4294967295.0, "a source index"));
    if (x.source >= sourceCount) throw std::invalid_argument("a source index is out of range");
    x.weight = finiteAt(p, o + 1);
    modelAt(p, o + 2, x);
    // The L1 factor is >= 1, and +Inf where the ratio overflows f32 (as mergekit's f32 factor does).
    if (!(p[o + 6] > 0)) throw std::invalid_argument("della parameter " + std::to_string(o + 6) + " is not a positive scale");
    x.scale = static_cast<float>(p[o + 6]);
    if (p.size() != resolved) x.openL1 = wholeAt(p, resolved + k, 1, "0 or 1 (l1 open)") != 0;
    d.models.push_back(x);
  }
  return d;
}

DellaRows decodeDellaStat(const std::vector<double>& p, uint64_t count, DellaModel& m) {
  if (p.size() != 6) throw std::invalid_argument("della L1 takes [L, S, density, epsilon, seedHi, seedLo]");
  const DellaRows rows = rowsAt(p, 0, count);
  modelAt(p, 2, m);
  return rows;
}

void dellaKeep(const void* base, Dtype tb, const void* x, Dtype tx, const DellaRows& rows, const DellaModel& m, uint64_t start, size_t n,
               uint8_t* keep) {
  keepBlocks(base, tb, x, tx, rows, m, start, n, keep, nullptr, nullptr);
}

void dellaMerge(const void* const* srcs, const Dtype* types, const DellaParams& p, uint64_t count, uint64_t start, size_t n, void* out,
                Dtype to) {
  const size_t m = p.models.size();
  const void* base = srcs[p.baseSource];
  const Dtype tb = types[p.baseSource];
  if (mergeByKeepBits(srcs, types, p, count, start, n, out, to)) return;
  // The kept values in one dtype for every source, so that sparseMerge takes its SIMD path: the base's
  // when every model shares it (a kept value is then a byte copy), else f32 (exact for every input dtype).
  bool same = true;
  for (const DellaModel& dm : p.models) same = same && types[dm.source] == tb;
  const Dtype tk = same ? tb : Dtype::F32;
  const size_t es = dtypeSize(tk);
  // Per thread, kept: each model's surviving values (the base's where dropped), then the base as f32 when converted.
  thread_local std::vector<uint8_t> keptBuffer, keepBuffer;
  keptBuffer.resize((m + (same ? 0 : 1)) * n * es);
  keepBuffer.resize(n);
  // Plain pointers in the loops below, opaque to the optimizer: else GCC recomputes a thread_local's address (a __tls_get_addr call) at each use.
  uint8_t* kept = keptBuffer.data();
  uint8_t* keep = keepBuffer.data();
  __asm__("" : "+r"(kept), "+r"(keep));
  std::vector<const void*> s2(m + 1);
  std::vector<Dtype> t2(m + 1, tk);
  SparseParams sp;
  sp.consensus = p.consensus;
  sp.normalize = p.normalize;
  sp.lambda = p.lambda;
  sp.indexBits = sparseIndexBits(count);
  sp.baseSource = 0;
  s2[0] = base;
  if (!same) {
    float* b32 = reinterpret_cast<float*>(kept + m * n * es);
    for (size_t j = 0; j < n; ++j) b32[j] = loadElementF32(base, tb, j);
    s2[0] = b32;
  }
  for (size_t k = 0; k < m; ++k) {
    const DellaModel& dm = p.models[k];
    const void* x = srcs[dm.source];
    const Dtype tx = types[dm.source];
    if (dm.keepBits != nullptr) {
      unpackKeepBits(dm.keepBits, start, n, keep);
    } else {
      dellaKeep(base, tb, x, tx, p.rows, dm, start, n, keep);
    }
    uint8_t* xk = kept + k * n * es;
    if (!same) {
      float* f = reinterpret_cast<float*>(xk);
      for (size_t j = 0; j < n; ++j) f[j] = keep[j] ? loadElementF32(x, tx, j) : loadElementF32(base, tb, j);
    } else if (es == 2) {
      keepOrBase(static_cast<const uint16_t*>(x), static_cast<const uint16_t*>(base), keep, n, reinterpret_cast<uint16_t*>(xk));
    } else {
      keepOrBase(static_cast<const uint32_t*>(x), static_cast<const uint32_t*>(base), keep, n, reinterpret_cast<uint32_t*>(xk));
    }
    s2[k + 1] = xk;
    SparseModel sm;  // every element passes the sparse op's own keep rule (no cuts, no mask)
    sm.source = static_cast<uint32_t>(k + 1);
    sm.weight = dm.weight;
    sm.scale = dm.scale;
    sp.models.push_back(sm);
  }
  sparseMerge(s2.data(), t2.data(), sp, count, start, n, out, to);
}

void dellaL1Buckets(const void* base, Dtype tb, const void* x, Dtype tx, const DellaRows& rows, const DellaModel& m, uint64_t start,
                    size_t n, uint64_t* before, uint64_t* after, uint8_t* keepBits) {
  thread_local std::vector<uint8_t> keep;
  keep.resize(n);
  keepBlocks(base, tb, x, tx, rows, m, start, n, keep.data(), before, after);
  if (keepBits != nullptr) packBits(keep.data(), n, keepBits + start / 8);
}

}  // namespace wm
