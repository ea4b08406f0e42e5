// A constant divisor that a multiply can stand in for (the sparse merges' normalization by a weight sum): x / c and
// x * (1 / c) are the correctly rounded values of the same real number when 1 / c is exact, so they have the same bits
// for every x (subnormal, overflowing, zero, Inf and NaN results alike), and the multiply costs a fraction of the divide.
#pragma once
#include <cmath>

namespace wm {

// Whether 1 / c is exact: c a power of two whose reciprocal is a normal number (|c| = 2^(e - 1), e in [-1021, 1023]).
inline bool hasExactReciprocal(double c) {
  int e = 0;
  const double m = std::frexp(c, &e);
  return std::fabs(m) == 0.5 && e >= -1021 && e <= 1023;
}

}  // namespace wm
