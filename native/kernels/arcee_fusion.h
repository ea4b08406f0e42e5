// Arcee Fusion (mergekit's arcee_fusion, merge_methods/arcee_fusion.py), scalar truth.
//
// Rows of the last dimension, L elements (a 1-D tensor is one row), base a and model b, d = b - a (f64):
//   p = softmax(b) + 1e-8, q = softmax(a) + 1e-8 over the row (f64, max subtracted);
//   kl = sum_j p_j * log(p_j / q_j);  importance_i = fl32(|d_i| * kl)   (mergekit's f32 importance)
// Order key of an importance value: its f32 bits mapped to an unsigned order (sign flipped; negatives
// reversed), every NaN one value above +Inf (torch.sort puts NaN last).
// The threshold T = median + 1.5 * IQR (f32 steps) from order statistics the planner finds by radix passes
// over these keys (arceeHistogram; lib/recipes/arcee-fusion-statistics.ts). Merge:
//   out = round(a + d * (importance >= T ? 1 : 0))   in f64, one rounding (NaN * 0 is NaN, as mergekit's products).
// A NaN threshold (NaN among the quartiles: more than a quarter of the importances NaN) keeps nothing,
// as mergekit's comparison with NaN.
// Each row's KL costs two exps and a log per element (the exps of 16-bit rows through a table per row max,
// arcee_fusion_exps.h), so the planner computes it once: the first histogram
// pass returns every row's KL after its counts, and the later passes and the merge take them as their
// params' tail (f64, exact through the plan) instead of computing them again. Below the local budget the
// dest leaves the threshold open ([L, base, model]) and the tensor's worker finds it from the tensor in
// memory (native/local_arcee.h, through arceeRowKeys). The per-element arithmetic lives in arcee_fusion_rows.h.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels.h"
#include "numerics.h"

namespace wm {

struct ArceeParams {
  uint64_t rowLength = 1;
  uint32_t base = 0, model = 0;  // source indices
  float threshold = 0;
  const double* rowKl = nullptr;  // each row's KL (count / L of them, pointing into the params), or null: computed
  bool open = false;              // threshold and row KLs left to the tensor's worker (native/local_arcee.h)
  bool recomputeKeys = false;     // open, its order keys computed again in each pass instead of stored (sources and row KLs alone fit the local pool)
};

// Dest params [L, base, model, threshold, (count / L row KLs)?], or [L, base, model] (open: a tensor-local job's), or
// [-L, base, model] (open, the keys computed again in each pass: a negative row length marks it, as no closed form has three params);
// `count` is the job's element count (whole rows). The result points into p for the row KLs: p must outlive it.
ArceeParams decodeArceeParams(const std::vector<double>& p, size_t sourceCount, uint64_t count);

// statParams [L, base, model, shift, bits, prefix x 3, (count / L row KLs)?]: three radix histograms at once (one per
// quantile, each over the keys whose bits above shift + bits equal its prefix), 3 x 2^bits counts, then,
// where the KLs were not given, the count / L row KLs.
struct ArceeStat {
  ArceeParams rows;
  uint32_t shift = 0, bits = 0;
  uint64_t prefix[3] = {0, 0, 0};
};
ArceeStat decodeArceeHistogram(const std::vector<double>& p, size_t sourceCount, uint64_t count);

inline uint32_t arceeOrderKey(float importance) {
  if (std::isnan(importance)) return 0xFFC00000u;  // above +Inf's 0xFF800000
  const uint32_t bits = num::f32Bits(importance);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// The KLs of the n / L rows at srcs (whole rows) into kl[0 .. n / L), computed in the order of the rows' maxes so that the
// exps' memos (arcee_fusion_exps.h) keep their tables; the same KLs in any order. Each is the exact KL or a KL equal in
// effect: one with the same f32(|d_i| * kl) for every element of its row, the only use of a row's KL (arcee_kl.h).
void arceeRowKls(const void* const* srcs, const Dtype* types, const ArceeParams& p, size_t n, double* kl);
// Elements start .. start + n - 1 (whole rows). rowKl, unless null, receives the KL of each row of the piece
// (indexed by the row's number in the job).
void arceeHistogram(const void* const* srcs, const Dtype* types, const ArceeStat& s, uint64_t start, size_t n, uint64_t* hist,
                    double* rowKl = nullptr);
// Elements start .. start + n - 1 of a tensor in memory (whole rows; srcs at element start): their order keys into
// keys[0 .. n), each row's KL read from p.rowKl (arceeRowKls computed them first).
void arceeRowKeys(const void* const* srcs, const Dtype* types, const ArceeParams& p, uint64_t start, size_t n, uint32_t* keys);
void arceeMerge(const void* const* srcs, const Dtype* types, const ArceeParams& p, uint64_t start, size_t n, void* out, Dtype to);

}  // namespace wm
