// Per-element merges whose weight depends on the element itself (mergekit's nearswap and RAM), scalar
// truth in f64 with one rounding to the output dtype. Each follows mergekit's tensor expression term
// by term, so that NaN and Inf come out as mergekit's masks and clamps make them.
//
// nearswap (dest params [base source, model source, t]), a = base, b = model:
//   w = clamp(t / max(|a - b|, 1e-6), 0, 1)   (a NaN difference stays NaN, as torch's clamp keeps it)
//   out = w * b + (1 - w) * a
//
// RAM (dest params [base source, epsilon, then per model: source, lambda][, r, alpha, epsilon: ramplus_tl's open tail]), d_k = x_k - base:
//   m_k = |fl32(d_k)| > fl32(epsilon)          (mergekit compares the f32 task vector with an f32 epsilon)
//   c = sum m_k; u = (c == 1); o = (c > 1)
//   z_k = m_k ? d_k : d_k * 0                  (tv * mask: NaN and Inf times 0 are NaN)
//   out = base + sum_k (z_k * u * lambda_k + z_k * o / max(c, 1))      (k = 0..m-1, f64)
// lambda_k = 1 is `ram`; `ramplus_tl` sets lambda_k = 1 + r * clamp(shared_k / max(unique_k, epsilon), 0, alpha)
// from ramCounts over the whole tensor: shared_k = #{i : m_k and c > 1}, unique_k = #{i : m_k and c == 1}.
//
// Row-wise combinations (mergekit's nuslerp with nuslerp_flatten: false, model_stock with filter_wise:
// true): the tensor's elements fall into groups, each with its own coefficients c_gk. The first
// parameter says how: +L, rows of L contiguous elements (group i / L: mergekit's dim -1); -G, G
// interleaved groups (group i mod G, G = count / shape[0]: the vectors along dim 0, mergekit's
// nuslerp_row_wise). Dest params [+L or -G, base source or -1, m, m sources, then groups x m
// coefficients, group-major]:
//   with a base: out = base + sum_k c_gk * (x_k - base); without: out = sum_k c_gk * x_k   (f64, k in order)
// Their statistics (statParams [+L or -G], sources a and b): per group sum a^2, sum b^2, sum ab,
// sum (b-a)^2 over the finite pairs, summed in element order within a piece.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels.h"

namespace wm {

struct NearswapParams {
  uint32_t base = 0, model = 0;  // indices into the job's sources
  double t = 0;
};

struct RamParams {
  uint32_t base = 0;
  float epsilon = 0;
  std::vector<uint32_t> sources;  // the models' source indices, in the recipe's order
  std::vector<double> lambda;     // one per model
  // ramplus_tl's λ left open for a tensor-local job (native/local_ram.h): r, alpha and the f64 epsilon of
  // lib/recipes/methods/ram.ts's ramPlusLambda; the λ above are placeholders until resolved.
  bool open = false;
  double r = 0, alpha = 0, epsilon64 = 0;
};

// Both throw std::invalid_argument naming what is wrong (a source index out of range, a non-finite number).
struct Groups {
  uint64_t length = 1;       // L (rows) or G (interleaved)
  bool interleaved = false;
  uint64_t of(uint64_t i) const { return interleaved ? i % length : i / length; }
  uint64_t count(uint64_t elements) const { return interleaved ? length : elements / length; }
  // The groups elements start .. start + n - 1 touch are first .. first + span - 1.
  uint64_t first(uint64_t start) const { return interleaved ? 0 : start / length; }
  uint64_t span(uint64_t start, uint64_t n) const { return interleaved ? length : (start + n - 1) / length - start / length + 1; }
};

struct RowLinearParams {
  Groups groups;
  int64_t base = -1;              // a source index, or -1
  std::vector<uint32_t> sources;  // the models' source indices
  const double* w = nullptr;      // rows x sources.size(), inside the dest's params
};

NearswapParams decodeNearswapParams(const std::vector<double>& p, size_t sources);
RamParams decodeRamParams(const std::vector<double>& p, size_t sources);
// `count` is the job's element count (a whole number of rows).
RowLinearParams decodeRowLinearParams(const std::vector<double>& p, size_t sources, uint64_t count);
void checkRowLinearParams(const std::vector<double>& p, size_t sources, uint64_t count);  // decode + every coefficient finite
Groups decodeGroups(const std::vector<double>& p, uint64_t count);  // p[0], checked against the element count

// nearswap: scalar in elementwise.cc, AVX2 in elementwise_avx2.cc (the same bits), picked by dispatch.cc.
void nearswapMerge(const void* const* srcs, const Dtype* types, const NearswapParams& p, size_t n, void* out, Dtype to);
// RAM: scalar in elementwise.cc, AVX2 in elementwise_avx2.cc (the same bits), picked by dispatch.cc.
void ramMerge(const void* const* srcs, const Dtype* types, const RamParams& p, size_t n, void* out, Dtype to);
// Adds to shared[k] and unique[k] (one counter per model) the counts of these n elements.
void ramCounts(const void* const* srcs, const Dtype* types, const RamParams& p, size_t n, uint64_t* shared, uint64_t* unique);
// Elements start .. start + n - 1 of the tensor.
void rowLinearMerge(const void* const* srcs, const Dtype* types, const RowLinearParams& p, uint64_t start, size_t n, void* out, Dtype to);
// Adds into sums[4 * (g - groups.first(start)) + 0..3] the moments of the groups g of elements start .. start + n - 1.
void rowMoments(const void* a, Dtype ta, const void* b, Dtype tb, const Groups& groups, uint64_t start, size_t n, double* sums);

}  // namespace wm
