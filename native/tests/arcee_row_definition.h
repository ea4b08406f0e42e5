// arcee_fusion's row KL by its definition (kernels/arcee_fusion.h), written out as the kernel first computed it (one loop
// of std::exp, one of std::log, serial sums): the truth both arcee self-tests (arcee_selftest.cc, arcee_kl_selftest.cc)
// compare the kernels' KLs with.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "kernels/element_io.h"
#include "kernels/kernels.h"

// KL(softmax(b) + 1e-8 || softmax(a) + 1e-8) of the row of L elements at r0: p_j = softmax(b)_j + 1e-8, the ratio r_j =
// p_j / (softmax(a)_j + 1e-8) (into p and r, L each, unless null), kl = serial sum of RN(p_j * std::log(r_j)) in element order.
inline double arceeRowKlDefinition(const void* a, wm::Dtype ta, const void* b, wm::Dtype tb, size_t r0, size_t L, double* p = nullptr,
                                   double* r = nullptr) {
  std::vector<double> ea(L), eb(L);
  double ma = -INFINITY, mb = -INFINITY;
  for (size_t j = 0; j < L; ++j) {
    ea[j] = wm::loadElementF32(a, ta, r0 + j);
    eb[j] = wm::loadElementF32(b, tb, r0 + j);
    ma = std::max(ma, ea[j]);
    mb = std::max(mb, eb[j]);
  }
  double sa = 0, sb = 0;
  for (size_t j = 0; j < L; ++j) {
    ea[j] = std::exp(ea[j] - ma);
    eb[j] = std::exp(eb[j] - mb);
    sa += ea[j];
    sb += eb[j];
  }
  double kl = 0;
  for (size_t j = 0; j < L; ++j) {
    const double pj = eb[j] / sb + 1e-8;
    const double rj = pj / (ea[j] / sa + 1e-8);
    if (p != nullptr) p[j] = pj;
    if (r != nullptr) r[j] = rj;
    volatile double term = pj * std::log(rj);  // rounded on its own: never fused with the sum
    kl += term;
  }
  return kl;
}
