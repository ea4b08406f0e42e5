// Scalar nearswap and RAM merges (see elementwise.h).
#include "elementwise.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "cpu_backends.h"
#include "element_io.h"

namespace wm {
namespace {

uint32_t sourceAt(const std::vector<double>& p, size_t i, size_t sources) {
  const double v = p[i];
  if (!(v >= 0 && v < static_cast<double>(sources)) || v != std::floor(v)) throw std::invalid_argument("a source index is out of range");
  return static_cast<uint32_t>(v);
}

double finiteAt(const std::vector<double>& p, size_t i, const char* what) {
  if (!std::isfinite(p[i])) throw std::invalid_argument(std::string(what) + " is not a finite number");
  return p[i];
}

// RAM's mask and count at element i (the mask from the f32 task vector); d[k] receives the f64 one.
inline unsigned ramMask(const void* const* srcs, const Dtype* types, const RamParams& p, size_t i, float base, double* d, uint8_t* m) {
  unsigned c = 0;
  for (size_t k = 0; k < p.sources.size(); ++k) {
    const float x = static_cast<float>(loadElement(srcs[p.sources[k]], types[p.sources[k]], i));
    d[k] = num::subRn(static_cast<double>(x), static_cast<double>(base));
    m[k] = std::fabs(num::subRn(x, base)) > p.epsilon ? 1 : 0;
    c += m[k];
  }
  return c;
}

}  // namespace

NearswapParams decodeNearswapParams(const std::vector<double>& p, size_t sources) {
  if (p.size() != 3) throw std::invalid_argument("nearswap takes [base, model, t]");
  NearswapParams x;
  x.base = sourceAt(p, 0, sources);
  x.model = sourceAt(p, 1, sources);
  x.t = finiteAt(p, 2, "t");
  return x;
}

RamParams decodeRamParams(const std::vector<double>& p, size_t sources) {
  // An odd length ends in ramplus_tl's open tail [r, alpha, epsilon] (three numbers after the pairs).
  const size_t tail = p.size() % 2 == 1 ? 3 : 0;
  if (p.size() < 4 + tail) throw std::invalid_argument("ram takes [base, epsilon, (source, lambda)... [, r, alpha, epsilon]]");
  RamParams x;
  x.base = sourceAt(p, 0, sources);
  x.epsilon = static_cast<float>(finiteAt(p, 1, "epsilon"));
  if (tail != 0) {
    x.open = true;
    x.r = finiteAt(p, p.size() - 3, "r");
    x.alpha = finiteAt(p, p.size() - 2, "alpha");
    x.epsilon64 = finiteAt(p, p.size() - 1, "epsilon");
  }
  for (size_t i = 2; i < p.size() - tail; i += 2) {
    x.sources.push_back(sourceAt(p, i, sources));
    x.lambda.push_back(finiteAt(p, i + 1, "lambda"));
  }
  return x;
}

RowLinearParams decodeRowLinearParams(const std::vector<double>& p, size_t sources, uint64_t count) {
  if (p.size() < 3) throw std::invalid_argument("row_linear takes [rowLength, base, m, sources..., coefficients...]");
  RowLinearParams x;
  x.groups = decodeGroups(p, count);
  if (p[1] != -1) x.base = sourceAt(p, 1, sources);
  const double m = p[2];
  if (!(m >= 1 && m <= static_cast<double>(sources)) || m != std::floor(m)) throw std::invalid_argument("bad model count");
  const size_t models = static_cast<size_t>(m);
  if (p.size() != 3 + models + x.groups.count(count) * models) throw std::invalid_argument("coefficients do not match the rows");
  for (size_t k = 0; k < models; ++k) x.sources.push_back(sourceAt(p, 3 + k, sources));
  x.w = p.data() + 3 + models;
  return x;
}

void checkRowLinearParams(const std::vector<double>& p, size_t sources, uint64_t count) {
  const RowLinearParams x = decodeRowLinearParams(p, sources, count);
  for (size_t i = 3 + x.sources.size(); i < p.size(); ++i) finiteAt(p, i, "a coefficient");
}

Groups decodeGroups(const std::vector<double>& p, uint64_t count) {
  const double v = p.empty() ? 0 : p[0];
  const double l = std::fabs(v);
  if (!(l >= 1 && l <= 9007199254740991.0) || l != std::floor(l) || count % static_cast<uint64_t>(l) != 0) {
    throw std::invalid_argument("the row length does not divide the element count");
  }
  Groups g;
  g.length = static_cast<uint64_t>(l);
  g.interleaved = v < 0;
  return g;
}

// The scalar truth of nearswap (dispatch.cc picks it or elementwise_avx2.cc's).
void scalar::nearswapMerge(const void* const* srcs, const Dtype* types, const NearswapParams& p, size_t n, void* out, Dtype to) {
  for (size_t i = 0; i < n; ++i) {
    const double a = loadElement(srcs[p.base], types[p.base], i);
    const double b = loadElement(srcs[p.model], types[p.model], i);
    const double diff = std::fabs(num::subRn(a, b));
    double w = p.t / (diff < 1e-6 ? 1e-6 : diff);
    w = w < 0 ? 0 : (w > 1 ? 1 : w);
    storeRoundedOnce(out, to, i, num::addRn(num::mulRn(w, b), num::mulRn(num::subRn(1.0, w), a)));
  }
}

// The scalar truths of RAM (dispatch.cc picks them or elementwise_avx2.cc's).
void scalar::ramMerge(const void* const* srcs, const Dtype* types, const RamParams& p, size_t n, void* out, Dtype to) {
  std::vector<double> d(p.sources.size());
  std::vector<uint8_t> m(p.sources.size());
  for (size_t i = 0; i < n; ++i) {
    const float base = static_cast<float>(loadElement(srcs[p.base], types[p.base], i));
    const unsigned c = ramMask(srcs, types, p, i, base, d.data(), m.data());
    const double u = c == 1 ? 1 : 0, o = c > 1 ? 1 : 0, div = c > 1 ? c : 1;
    double sum = 0;
    for (size_t k = 0; k < d.size(); ++k) {
      const double z = m[k] ? d[k] : num::mulRn(d[k], 0.0);
      sum = num::addRn(sum, num::addRn(num::mulRn(num::mulRn(z, u), p.lambda[k]), num::mulRn(z, o) / div));
    }
    storeRoundedOnce(out, to, i, num::addRn(static_cast<double>(base), sum));
  }
}

void scalar::ramCounts(const void* const* srcs, const Dtype* types, const RamParams& p, size_t n, uint64_t* shared, uint64_t* unique) {
  std::vector<double> d(p.sources.size());
  std::vector<uint8_t> m(p.sources.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned c = ramMask(srcs, types, p, i, static_cast<float>(loadElement(srcs[p.base], types[p.base], i)), d.data(), m.data());
    for (size_t k = 0; k < d.size(); ++k) {
      if (!m[k]) continue;
      if (c == 1) ++unique[k];
      else ++shared[k];
    }
  }
}

void rowLinearMerge(const void* const* srcs, const Dtype* types, const RowLinearParams& p, uint64_t start, size_t n, void* out, Dtype to) {
  const size_t m = p.sources.size();
  for (size_t i = 0; i < n; ++i) {
    const double* c = p.w + p.groups.of(start + i) * m;
    const double base = p.base < 0 ? 0.0 : loadElement(srcs[p.base], types[p.base], i);
    double sum = 0;
    for (size_t k = 0; k < m; ++k) {
      const double x = loadElement(srcs[p.sources[k]], types[p.sources[k]], i);
      sum = num::addRn(sum, num::mulRn(c[k], p.base < 0 ? x : num::subRn(x, base)));
    }
    storeRoundedOnce(out, to, i, p.base < 0 ? sum : num::addRn(base, sum));
  }
}

void rowMoments(const void* a, Dtype ta, const void* b, Dtype tb, const Groups& groups, uint64_t start, size_t n, double* sums) {
  const uint64_t first = groups.first(start);
  for (size_t i = 0; i < n; ++i) {
    const double x = loadElement(a, ta, i), y = loadElement(b, tb, i);
    if (!std::isfinite(x) || !std::isfinite(y)) continue;
    double* s = sums + 4 * (groups.of(start + i) - first);
    const double d = num::subRn(y, x);
    s[0] = num::addRn(s[0], num::mulRn(x, x));
    s[1] = num::addRn(s[1], num::mulRn(y, y));
    s[2] = num::addRn(s[2], num::mulRn(x, y));
    s[3] = num::addRn(s[3], num::mulRn(d, d));
  }
}

}  // namespace wm
