// The moments' 8 lanes (numerics.h's kMomentLanes: lane l sums the elements i with i % 8 == l) and the one epilogue every
// path (cpu_scalar.cc, cpu_avx2.cc, moments_avx512.cc) ends with: each set of lanes combined in combineMomentLanes' order
// and added onto the Moments, so that the paths' sums are the same bits.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels.h"
#include "numerics.h"

namespace wm {

struct MomentLaneSums {
  static constexpr int L = num::kMomentLanes;
  alignas(64) double aa[L] = {}, bb[L] = {}, ab[L] = {}, dd[L] = {}, absA[L] = {}, absB[L] = {}, absD[L] = {};
  double maxAbs = 0;
  uint64_t nonFinite = 0;
};

inline void addMomentLaneSums(Moments& m, const MomentLaneSums& s) {
  m.aa = num::addRn(m.aa, num::combineMomentLanes(s.aa));
  m.bb = num::addRn(m.bb, num::combineMomentLanes(s.bb));
  m.ab = num::addRn(m.ab, num::combineMomentLanes(s.ab));
  m.dd = num::addRn(m.dd, num::combineMomentLanes(s.dd));
  m.absA = num::addRn(m.absA, num::combineMomentLanes(s.absA));
  m.absB = num::addRn(m.absB, num::combineMomentLanes(s.absB));
  m.absD = num::addRn(m.absD, num::combineMomentLanes(s.absD));
  m.maxAbsDiff = std::max(m.maxAbsDiff, s.maxAbs);
  m.nonFinite += s.nonFinite;
}

}  // namespace wm
