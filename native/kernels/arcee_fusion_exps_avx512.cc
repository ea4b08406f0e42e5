// The exps memo's row lookup (arcee_fusion_rows.h: arceeLookupRow) with AVX-512 gathers where avx512Enabled(), else
// the scalar truth: the same table entries.
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include "arcee_fusion_rows.h"
#include "avx512_loads.h"

namespace wm {
namespace avx2 {
namespace {

__attribute__((target(WM_AVX512_TARGET))) void lookupRow8(const void* v, size_t r0, size_t L, const double* value, double* e) {
  const uint16_t* row = static_cast<const uint16_t*>(v) + r0;
  size_t j = 0;
  for (; j + 8 <= L; j += 8) {
    const __m256i idx = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + j)));
    _mm512_storeu_pd(e + j, _mm512_i32gather_pd(idx, value, 8));
  }
  scalar::arceeLookupRow(v, r0 + j, L - j, value, e + j);
}

}  // namespace

void arceeLookupRow(const void* v, size_t r0, size_t L, const double* value, double* e) {
  if (!avx512Enabled()) return scalar::arceeLookupRow(v, r0, L, value, e);
  lookupRow8(v, r0, L, value, e);
}

}  // namespace avx2
}  // namespace wm
#endif
