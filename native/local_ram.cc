// ramplus_tl's λ from a tensor in memory (see local_ram.h).
#include "local_ram.h"

#include <cmath>
#include <limits>
#include <stdexcept>

namespace wm {
namespace {

// JavaScript's Math.max of two numbers.
double jsMax(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<double>::quiet_NaN();
  if (a == b) return std::signbit(a) ? b : a;
  return a > b ? a : b;
}

// JavaScript's Math.min of two numbers.
double jsMin(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<double>::quiet_NaN();
  if (a == b) return std::signbit(a) ? a : b;
  return a < b ? a : b;
}

}  // namespace

double ramPlusLambda(double shared, double unique, double r, double alpha, double epsilon) {
  const double rho = shared / jsMax(unique, epsilon);
  return 1 + r * jsMin(alpha, jsMax(0, rho));
}

bool isLocalRam(const std::vector<RamParams>& dests) {
  for (const RamParams& d : dests) {
    if (d.open) return true;
  }
  return false;
}

void resolveLocalRam(std::vector<RamParams>& dests, const void* const* srcs, const Dtype* types, uint64_t count) {
  for (RamParams& d : dests) {
    if (!d.open) continue;
    std::vector<uint64_t> shared(d.sources.size(), 0), unique(d.sources.size(), 0);
    ramCounts(srcs, types, d, count, shared.data(), unique.data());
    for (size_t k = 0; k < d.sources.size(); ++k) {
      d.lambda[k] = ramPlusLambda(static_cast<double>(shared[k]), static_cast<double>(unique[k]), d.r, d.alpha, d.epsilon64);
      if (!std::isfinite(d.lambda[k])) throw std::invalid_argument("lambda is not a finite number");
    }
    d.open = false;
  }
}

}  // namespace wm
