// The portable path: one element at a time through numerics.h. Loops are specialized per dtype so
// that the fallback stays usable on CPUs without AVX2 (and on ARM until a NEON path exists).
#include <algorithm>
#include <cstring>

#include "cpu_backends.h"
#include "element_io.h"
#include "moment_lanes.h"
#include "numerics.h"

namespace wm {
namespace scalar {
namespace {

using num::RoundTo;

// Conversion store: c10's NaN rules (f32 keeps the bits, f16 keeps the sign, bf16 is 0x7FC0).
template <Dtype T>
inline void storeElem(void* p, size_t i, float v) {
  if constexpr (T == Dtype::F32) {
    std::memcpy(static_cast<char*>(p) + i * 4, &v, 4);
  } else {
    const uint16_t h = T == Dtype::BF16 ? num::f32ToBF16(v) : num::f32ToF16(v);
    std::memcpy(static_cast<char*>(p) + i * 2, &h, 2);
  }
}

// Arithmetic results store the canonical NaN of the output dtype.
template <Dtype T>
inline void storeResult(void* p, size_t i, float v) {
  storeElem<T>(p, i, num::canonicalizeNaN(v));
}

}  // namespace

void lerpExact(const void* a, Dtype ta, const void* b, Dtype tb, void* out, Dtype to, size_t n, float w) {
  withDtype(ta, [&](auto A) {
    withDtype(tb, [&](auto B) {
      withDtype(to, [&](auto O) {
        for (size_t i = 0; i < n; ++i) {
          const float x = num::lerpExactF32(loadElem<decltype(A)::value>(a, i), loadElem<decltype(B)::value>(b, i), w);
          storeResult<decltype(O)::value>(out, i, x);
        }
      });
    });
  });
}

void lerpMi(const void* a, const void* b, Dtype t, void* out, Dtype to, size_t n, float w) {
  withDtype(t, [&](auto T) {
    withDtype(to, [&](auto O) {
      const RoundTo r = static_cast<RoundTo>(static_cast<int>(decltype(T)::value));
      for (size_t i = 0; i < n; ++i) {
        const float x = num::lerpMiF32(loadElem<decltype(T)::value>(a, i), loadElem<decltype(T)::value>(b, i), w, r);
        // x is canonical and exactly representable in t: converting it to `to` is a conversion.
        storeElem<decltype(O)::value>(out, i, x);
      }
    });
  });
}

void convert(const void* src, Dtype ts, void* out, Dtype to, size_t n) {
  if (ts == to) {
    std::memcpy(out, src, n * dtypeSize(ts));
    return;
  }
  withDtype(ts, [&](auto S) {
    withDtype(to, [&](auto O) {
      for (size_t i = 0; i < n; ++i) storeElem<decltype(O)::value>(out, i, loadElem<decltype(S)::value>(src, i));
    });
  });
}

void linear(const void* const* srcs, const Dtype* types, const float* w, size_t count, void* out, Dtype to,
            size_t n) {
  constexpr size_t kBlock = 1024;  // the f32 accumulators of one block stay in L1
  float acc[kBlock];
  withDtype(to, [&](auto O) {
    for (size_t start = 0; start < n; start += kBlock) {
      const size_t len = std::min(kBlock, n - start);
      if (count == 0) std::fill(acc, acc + len, 0.0f);
      for (size_t k = 0; k < count; ++k) {
        withDtype(types[k], [&](auto S) {
          const float wk = w[k];
          const void* src = srcs[k];
          if (k == 0) {
            for (size_t j = 0; j < len; ++j) acc[j] = num::mulRn(wk, loadElem<decltype(S)::value>(src, start + j));
          } else {
            for (size_t j = 0; j < len; ++j) acc[j] = num::fmaF32(wk, loadElem<decltype(S)::value>(src, start + j), acc[j]);
          }
        });
      }
      for (size_t j = 0; j < len; ++j) storeResult<decltype(O)::value>(out, start + j, acc[j]);
    }
  });
}

void accumulateMoments(const void* a, Dtype ta, const void* b, Dtype tb, size_t n, Moments& m) {
  constexpr int L = num::kMomentLanes;
  MomentLaneSums s;
  withDtype(ta, [&](auto A) {
    withDtype(tb, [&](auto B) {
      for (size_t i = 0; i < n; ++i) {
        const float fa = loadElem<decltype(A)::value>(a, i), fb = loadElem<decltype(B)::value>(b, i);
        if (!num::isFinite(fa) || !num::isFinite(fb)) {
          ++s.nonFinite;
          continue;
        }
        const double x = fa, y = fb;
        const size_t l = i % L;
        s.aa[l] = num::addRn(s.aa[l], num::mulRn(x, x));
        s.bb[l] = num::addRn(s.bb[l], num::mulRn(y, y));
        s.ab[l] = num::addRn(s.ab[l], num::mulRn(x, y));
        const double d = num::subRn(y, x);
        s.dd[l] = num::addRn(s.dd[l], num::mulRn(d, d));
        s.absA[l] = num::addRn(s.absA[l], std::fabs(x));
        s.absB[l] = num::addRn(s.absB[l], std::fabs(y));
        s.absD[l] = num::addRn(s.absD[l], std::fabs(d));
        s.maxAbs = std::max(s.maxAbs, std::fabs(d));
      }
    });
  });
  addMomentLaneSums(m, s);
}

}  // namespace scalar
}  // namespace wm
