// arcee_fusion's row KLs without the exact log (arcee_fusion.h: kl = serial f64 sum in element order of RN(p_j * log r_j),
// log = std::log, which exact_exp_log.h's logArray equals bit for bit).
//
// A row's KL has one consumer: importance_i = f32(|d_i| * kl) (arceeKeys, arceeMergeRow, the histograms). So any kl' with
// f32(|d_i| * kl') == f32(|d_i| * kl) in every bit for every element i of the row gives the same output bytes: a KL equal
// in effect. arceeRowKlGroup returns such a kl' where it can prove one cheaply, else the exact kl:
//  1. Bounds lo_j <= RN(p_j * log r_j) <= hi_j of every term (arceeKlTerms): where r is near 1, from a short log1p
//     polynomial widened by kArceeLogSteps bit patterns each side (the bound's proof is in arcee_kl.cc); elsewhere the
//     exact term (lo == hi); a row with kArceeFarBlocks blocks far from 1 goes to the exact path at once.
//  2. klLo, klHi: the same serial sums as the reference, in element order, over the lo and hi terms. Round-to-nearest
//     addition is monotone in both operands, so by induction klLo <= kl <= klHi (no error analysis of the sum; the
//     products and adds are each rounded on their own, never fused).
//  3. f32(|d_i| * k) is monotone in k for each element, so if it has the same bits at klLo and klHi for every i
//     (arceeSameImportances) it has them for the true kl as well: the row's KL is klLo. Otherwise (an element whose
//     importance the interval leaves open, a non-finite bound: NaN/Inf inputs) the row is computed exactly, as before.
// The returned KL is the same bits on every path (scalar, AVX2, AVX-512) and depends on the row alone.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "kernels.h"

namespace wm {

constexpr size_t kArceeKlBlock = 8;      // elements decided together: a block with any element outside the fast range takes the exact log
constexpr int64_t kArceeLogSteps = 8;    // bit patterns each side of the polynomial's log (the proof needs >= 5)
constexpr double kArceeNearOne = 0x1p-6;  // |r - 1| up to this: the polynomial's range
constexpr size_t kArceeFarBlocks = 4;     // blocks outside the range that send a row to the exact path
// log1p(x) = x + x^2 Q(x) to x^10 (Taylor): Q's coefficients from x^0 up, (-1)^(k+1) / (k + 2), each rounded to nearest.
constexpr double kArceeLog1pQ[9] = {-1.0 / 2, 1.0 / 3, -1.0 / 4, 1.0 / 5, -1.0 / 6, 1.0 / 7, -1.0 / 8, 1.0 / 9, -1.0 / 10};

#define WM_ARCEE_KL_DECLS                                                                                                     \
  /* Per block of kArceeKlBlock elements from j = 0 (the last one shorter): lo[j] <= RN(p[j] * std::log(r[j])) <= hi[j]; a */ \
  /* block where every p > 0 and |r - 1| <= kArceeNearOne takes the polynomial, any other lo[j] = hi[j] = that product. */  \
  /* Returns false, lo and hi left unfinished, at the row's kArceeFarBlocks-th block outside the range (ratios far from 1: */ \
  /* a model far from its base), for which the exact path costs no more. */                                                \
  bool arceeKlTerms(const double* p, const double* r, size_t n, double* lo, double* hi);

namespace scalar {
WM_ARCEE_KL_DECLS
}
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
namespace avx2 {
WM_ARCEE_KL_DECLS
bool arceeKlTermsAvx512(const double* p, const double* r, size_t n, double* lo, double* hi);  // arcee_kl_avx512.cc, where avx512Enabled()
}
#endif
WM_ARCEE_KL_DECLS  // the SIMD path where kernels.h's dispatcher takes it, else the scalar one
#undef WM_ARCEE_KL_DECLS

// The exact terms lo[j] = hi[j] = RN(p[j] * std::log(r[j])), j < n (logArray: std::log's bits).
void arceeExactTerms(const double* p, const double* r, size_t n, double* lo, double* hi);

// The SIMD loops over a row: block(p, r, lo, hi) per block of kArceeKlBlock, which writes the polynomial's bounds and returns
// true where every element is near 1, else returns false and writes nothing; those blocks' exact terms come after the loop,
// once the row is known to stay bounded (false at its kArceeFarBlocks-th, as the scalar truth, with no log taken). The
// last, short block goes through copies padded with p = r = 1 (near 1, a zero term): the decision stays the real elements'.
template <class Block>
__attribute__((always_inline)) inline bool arceeKlBlocks(const double* p, const double* r, size_t n, double* lo, double* hi, Block block) {
  size_t j = 0, far = 0, farAt[kArceeFarBlocks];
  for (; j + kArceeKlBlock <= n; j += kArceeKlBlock) {
    if (block(p + j, r + j, lo + j, hi + j)) continue;
    if (far + 1 == kArceeFarBlocks) return false;
    farAt[far++] = j;
  }
  if (j < n) {
    double ps[kArceeKlBlock], rs[kArceeKlBlock], los[kArceeKlBlock], his[kArceeKlBlock];
    std::fill(ps, ps + kArceeKlBlock, 1.0);
    std::fill(rs, rs + kArceeKlBlock, 1.0);
    std::copy(p + j, p + n, ps);
    std::copy(r + j, r + n, rs);
    if (block(ps, rs, los, his)) {
      std::copy(los, los + (n - j), lo + j);
      std::copy(his, his + (n - j), hi + j);
    } else {
      if (far + 1 == kArceeFarBlocks) return false;
      arceeExactTerms(p + j, r + j, n - j, lo + j, hi + j);
    }
  }
  for (size_t f = 0; f < far; ++f) arceeExactTerms(p + farAt[f], r + farAt[f], kArceeKlBlock, lo + farAt[f], hi + farAt[f]);
  return true;
}

// The bounds of one row's KL: the serial sums in element order of arceeKlTerms' lo and hi (scratch: L doubles each); false
// where arceeKlTerms sends the row to the exact path.
bool arceeKlBounds(const double* p, const double* r, size_t L, double* lo, double* hi, double& klLo, double& klHi);

// The exact KL of one row: serial sum in element order of RN(p[j] * logArray(r)[j]) (scratch: L doubles).
double arceeExactKl(const double* p, const double* r, size_t L, double* scratch);

// The KLs of R <= 4 rows of L elements (row k from element r0[k] of base a and model b, its p and r arrays at p + k L and
// r + k L), each a KL equal in effect (above) or the exact one, into kl[0 .. R). lo, hi: R L doubles of scratch each.
void arceeRowKlGroup(size_t R, const void* a, Dtype ta, const void* b, Dtype tb, const size_t* r0, uint64_t L, const double* p,
                     const double* r, double* lo, double* hi, double* kl);

// How many rows arceeRowKlGroup computed, how many of them exactly, and how many of those because arceeKlTerms found them far
// from 1 (tests; WEIGHTMIX_ARCEE_KL_STATS=1 prints them to stderr at exit).
struct ArceeKlCounts {
  std::atomic<uint64_t> rows{0}, exact{0}, far{0};
};
ArceeKlCounts& arceeKlCounts();

}  // namespace wm
