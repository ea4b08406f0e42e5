// avx2_loads.h's one-rounding store of 4 f64 results (storeResult4, with storeNormalBF16x4's direct bf16 rounding), and
// avx512_loads.h's of 8 (storeResult8, with storeNormalBF16Wide's) where the CPU has AVX-512, against element_io.h's
// storeRoundedOnce, the scalar truth, for bf16, f16 and f32: every rounding edge of bf16 at each exponent from f32's subnormals
// to past its overflow (the representable values, the ties, an f64 ulp either side of them, f32's odd-rounding bit), the range
// limits of the direct path, the special values, and random bit patterns, the lanes mixing them, then grouped.
#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cpu_backends.h"
#include "selftest_support.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include "kernels/avx2_loads.h"
#include "kernels/avx512_loads.h"
#include "kernels/element_io.h"

namespace {

template <Dtype TO>
__attribute__((target("avx2,fma,f16c"))) void storeFour(const double* x, void* out) {
  wm::avx2::storeResult4<TO>(out, 0, _mm256_loadu_pd(x));
}

template <Dtype TO>
__attribute__((target(WM_AVX512_TARGET))) void storeEight(const double* x, void* out) {
  wm::avx2::storeResult8<TO>(out, 0, _mm512_loadu_pd(x));
}

double ofBits(uint64_t b) {
  double x;
  std::memcpy(&x, &b, 8);
  return x;
}

// The f64 values at and around every bf16 rounding edge: exponents of f64 bias 1023 - 160 .. 1023 + 130.
std::vector<double> edgeValues(Rng& r) {
  std::vector<double> v;
  const uint64_t lows[] = {0, 1, (uint64_t{1} << 44) - 1, uint64_t{1} << 44, (uint64_t{1} << 44) + 1, (uint64_t{1} << 45) - 1,
                           (uint64_t{1} << 29) - 1, uint64_t{1} << 29, (uint64_t{1} << 29) + 1, uint64_t{1} << 28};
  const uint64_t tops[] = {0, 1, 2, 0x3F, 0x40, 0x7E, 0x7F};  // bf16's 7 mantissa bits, odd and even
  for (uint64_t e = 1023 - 160; e <= 1023 + 130; ++e) {
    for (uint64_t top : tops) {
      for (uint64_t low : lows) {
        for (uint64_t sign : {uint64_t{0}, uint64_t{1} << 63}) v.push_back(ofBits(sign | e << 52 | top << 45 | low));
      }
      v.push_back(ofBits(e << 52 | top << 45 | (r.next() & ((uint64_t{1} << 45) - 1))));
    }
  }
  // The direct path's limits (2^-126 and the least magnitude that rounds to infinity) and the special values.
  for (uint64_t b : {uint64_t{0x3810000000000000}, uint64_t{0x47EFF00000000000}, uint64_t{0x47EFEFFFFFFFFFFF}, uint64_t{0x47F0000000000000},
                     uint64_t{0x7FF0000000000000}, uint64_t{0x7FF8000000000000}, uint64_t{0x7FF0000000000001}, uint64_t{0x7FFFFFFFFFFFFFFF},
                     uint64_t{0x0000000000000001}, uint64_t{0x000FFFFFFFFFFFFF}, uint64_t{0x0010000000000000}, uint64_t{0x7FEFFFFFFFFFFFFF}}) {
    for (int64_t d : {-1, 0, 1}) {
      v.push_back(ofBits(b + static_cast<uint64_t>(d)));
      v.push_back(ofBits((b + static_cast<uint64_t>(d)) | uint64_t{1} << 63));
    }
  }
  for (int k = 0; k < 200000; ++k) v.push_back(ofBits(r.next()));
  // Random magnitudes of weights, the common case.
  for (int k = 0; k < 200000; ++k) v.push_back(ofBits((r.next() & 0x800FFFFFFFFFFFFFull) | (1023 - 20 + r.next() % 22) << 52));
  // Shuffled, so that every group of 4 lanes mixes the direct path's values with others.
  for (size_t i = v.size() - 1; i > 0; --i) std::swap(v[i], v[r.next() % (i + 1)]);
  return v;
}

// Lanes: 4 (storeResult4) or 8 (storeResult8).
template <Dtype TO, size_t Lanes>
size_t compareStores(const std::vector<double>& v) {
  const size_t es = wm::dtypeSize(TO);
  size_t cases = 0;
  for (size_t i = 0; i + Lanes <= v.size(); i += Lanes) {
    unsigned char simd[32] = {}, truth[32] = {};
    if constexpr (Lanes == 4) {
      storeFour<TO>(v.data() + i, simd);
    } else {
      storeEight<TO>(v.data() + i, simd);
    }
    for (size_t q = 0; q < Lanes; ++q) wm::storeRoundedOnce(truth, TO, q, v[i + q]);
    for (size_t q = 0; q < Lanes; ++q) {
      uint64_t b;
      std::memcpy(&b, &v[i + q], 8);
      CHECK(std::memcmp(simd + q * es, truth + q * es, es) == 0, "storeResult%zu %s of %016" PRIx64 ": SIMD != storeRoundedOnce", Lanes, dtypeName(TO), b);
    }
    cases += Lanes;
  }
  return cases;
}

// Each list of values (the lanes mixing the direct path's values with others, then those grouped) in bf16, f16 and f32.
template <size_t Lanes>
size_t compareEveryDtype(const std::vector<const std::vector<double>*>& lists) {
  size_t cases = 0;
  for (const std::vector<double>* values : lists) {
    cases += compareStores<Dtype::BF16, Lanes>(*values) + compareStores<Dtype::F16, Lanes>(*values) + compareStores<Dtype::F32, Lanes>(*values);
  }
  return cases;
}

}  // namespace
#endif

void testStoreResult(uint64_t seed) {
#if defined(WM_HAVE_AVX2_BACKEND)
  if (!wm::avx2::cpuSupported()) {
    std::printf("store: skipped, this CPU has no AVX2\n");
    return;
  }
  Rng r(seed ^ 0x5707E);
  const std::vector<double> v = edgeValues(r);
  // The values twice: shuffled (a vector mixing the direct path's values with others goes to round-to-odd), then with the direct
  // path's first, so that nearly all of them (every rounding edge among them) take it: with 8 lanes few shuffled vectors lie
  // wholly in its range.
  std::vector<double> grouped = v;
  std::stable_partition(grouped.begin(), grouped.end(), [](double x) {
    uint64_t b;
    std::memcpy(&b, &x, 8);
    return wm::avx2::inDirectBF16Range(b);
  });
  const std::vector<const std::vector<double>*> lists = {&v, &grouped};
  const size_t four = compareEveryDtype<4>(lists);
  if (!wm::avx2::avx512Enabled()) {
    std::printf("store: %zu f64 results rounded once, 4 lanes against the scalar truth (8 lanes skipped: no AVX-512 here)\n", four);
    return;
  }
  const size_t eight = compareEveryDtype<8>(lists);
  std::printf("store: %zu f64 results rounded once in 4 lanes and %zu in 8, SIMD against the scalar truth\n", four, eight);
#else
  (void)seed;
  std::printf("store: skipped, this build has no AVX2 backend\n");
#endif
}
