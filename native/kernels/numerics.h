// The scalar truth of weightmix's numerics: every CPU SIMD and CUDA path must produce these bits.
//
// Conversions (match PyTorch's c10 scalar conversions bit for bit):
//   bf16 -> f32  exact: bits << 16 (NaN payloads, signalling or not, are kept).
//   f16  -> f32  exact for every non-NaN; a NaN keeps sign and payload and is quieted
//                (sign | 0x7FC00000 | mant << 13), as c10's fp16_ieee_to_fp32_value and F16C do.
//   f32  -> bf16 round-to-nearest-even on the bits (c10::BFloat16 round_to_nearest_even);
//                any NaN -> 0x7FC0; subnormals round like every other value; overflow -> +-Inf.
//   f32  -> f16  round-to-nearest-even (c10's fp16_ieee_from_fp32_value), computed here with
//                integer operations only so that FTZ/DAZ cannot change it; NaN -> sign | 0x7E00.
//
// Arithmetic results (lerpExact, lerpMi, linear) are NaN-canonicalized: any NaN becomes the
// positive quiet NaN of its dtype (f32 0x7FC00000, f16 0x7E00, bf16 0x7FC0), because the sign
// and payload of a NaN that an FPU produces depends on operand order, which SIMD code may change.
//
// Formulas (w is the f32 coefficient; PyTorch 2.x keeps a Python scalar in f32):
//   lerpExact  x = |w| < 0.5 ? fma(w, b - a, a) : fma(w - 1, b - a, b), all in f32 (torch.lerp's
//              vectorized CPU formula), then one rounding to the output dtype. Endpoints: w == 0
//              (either sign) is convert(a) and w == 1 is convert(b), bit for bit, no arithmetic.
//   lerpMi     in the tensor dtype t, each op in f32 then rounded to t (R):
//              d = R(b - a), p = R(d * w), x = R(a + p); then convert(x, t -> to). Never fused.
//   linear     acc = w0 * x0; acc = fma(wk, xk, acc) for k = 1..count-1 in order; one rounding.
//              count == 0 gives +0.
//   moments    f64; a pair with a non-finite member is only counted. Element i (counted from the
//              start of the call) accumulates into lane i % 8 of each sum, with products and
//              sums as separate roundings (a*a and a*b are exact in f64; (b-a)^2 is rounded);
//              lanes combine as ((p0+p4) + (p2+p6)) + ((p1+p5) + (p3+p7)), added once to m.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define WM_HD __host__ __device__
#else
#define WM_HD
#endif

#include <cmath>

namespace wm {
namespace num {

#if defined(__CUDA_ARCH__)
WM_HD inline uint32_t f32Bits(float f) { return __float_as_uint(f); }
WM_HD inline float f32FromBits(uint32_t u) { return __uint_as_float(u); }
#else
inline uint32_t f32Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float f32FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
#endif

constexpr uint32_t kF32CanonicalNaN = 0x7FC00000u;
constexpr uint16_t kBF16CanonicalNaN = 0x7FC0u;
constexpr uint16_t kF16CanonicalNaN = 0x7E00u;

WM_HD inline bool isNaN(float f) { return (f32Bits(f) & 0x7FFFFFFFu) > 0x7F800000u; }
WM_HD inline bool isFinite(float f) { return (f32Bits(f) & 0x7F800000u) != 0x7F800000u; }

// ---- operations the compiler must not fuse or reassociate -------------------------------------
// The build passes -ffp-contract=off, but GCC's default is "fast" and nvcc fuses by default; the
// empty asm hides the rounded product/sum from the optimizer at no run-time cost.
#if defined(__CUDA_ARCH__)
WM_HD inline float mulRn(float x, float y) { return __fmul_rn(x, y); }
WM_HD inline float addRn(float x, float y) { return __fadd_rn(x, y); }
WM_HD inline float subRn(float x, float y) { return __fsub_rn(x, y); }
WM_HD inline double mulRn(double x, double y) { return __dmul_rn(x, y); }
WM_HD inline double addRn(double x, double y) { return __dadd_rn(x, y); }
WM_HD inline double subRn(double x, double y) { return __dsub_rn(x, y); }
WM_HD inline float fmaF32(float x, float y, float z) { return __fmaf_rn(x, y, z); }
#else
#if defined(__GNUC__) && defined(__x86_64__)
#define WM_OPAQUE(v) __asm__("" : "+x"(v))
#elif defined(__GNUC__) && defined(__aarch64__)
#define WM_OPAQUE(v) __asm__("" : "+w"(v))
#else
#define WM_OPAQUE(v)                          \
  do {                                        \
    volatile auto wm_opaque_tmp_ = (v);       \
    (v) = wm_opaque_tmp_;                     \
  } while (0)
#endif
inline float mulRn(float x, float y) {
  float r = x * y;
  WM_OPAQUE(r);
  return r;
}
inline float addRn(float x, float y) {
  float r = x + y;
  WM_OPAQUE(r);
  return r;
}
inline float subRn(float x, float y) {
  float r = x - y;
  WM_OPAQUE(r);
  return r;
}
inline double mulRn(double x, double y) {
  double r = x * y;
  WM_OPAQUE(r);
  return r;
}
inline double addRn(double x, double y) {
  double r = x + y;
  WM_OPAQUE(r);
  return r;
}
inline double subRn(double x, double y) {
  double r = x - y;
  WM_OPAQUE(r);
  return r;
}
inline float fmaF32(float x, float y, float z) { return std::fma(x, y, z); }
#endif

// ---- conversions ---------------------------------------------------------------------------------

WM_HD inline float bf16ToF32(uint16_t h) { return f32FromBits(static_cast<uint32_t>(h) << 16); }

WM_HD inline uint16_t f32ToBF16(float f) {
  const uint32_t u = f32Bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return kBF16CanonicalNaN;
  const uint32_t roundingBias = 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + roundingBias) >> 16);
}

WM_HD inline float f16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1Fu) {
    if (mant == 0) return f32FromBits(sign | 0x7F800000u);
    return f32FromBits(sign | 0x7FC00000u | (mant << 13));  // quieted, payload kept
  }
  if (exp != 0) return f32FromBits(sign | ((exp + 112u) << 23) | (mant << 13));
  if (mant == 0) return f32FromBits(sign);
  // Subnormal: value = mant * 2^-24; normalize so the leading 1 sits at bit 10.
  uint32_t e = 113u;  // biased f32 exponent of 2^-14
  while ((mant & 0x400u) == 0) {
    mant <<= 1;
    --e;
  }
  return f32FromBits(sign | (e << 23) | ((mant & 0x3FFu) << 13));
}

WM_HD inline uint16_t f32ToF16(float f) {
  const uint32_t u = f32Bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t ax = u & 0x7FFFFFFFu;
  if (ax > 0x7F800000u) return sign | kF16CanonicalNaN;
  if (ax >= 0x477FF000u) return sign | 0x7C00u;  // >= 65520 rounds to infinity
  if (ax >= 0x38800000u) {                         // normal f16 (>= 2^-14)
    const uint32_t v = ax - 0x38000000u;           // rebias the exponent: 127 -> 15
    return static_cast<uint16_t>(sign | ((v + 0xFFFu + ((v >> 13) & 1u)) >> 13));
  }
  if (ax <= 0x33000000u) return sign;  // <= 2^-25: half the smallest subnormal or less -> 0
  // Subnormal f16: m = round(|f| * 2^24); a carry to 0x400 is the smallest normal's encoding.
  const uint32_t e = ax >> 23;  // 102..112
  const uint32_t sig = (ax & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126u - e;  // 14..24
  uint32_t m = sig >> shift;
  const uint32_t rem = sig & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (m & 1u))) ++m;
  return static_cast<uint16_t>(sign | m);
}

// Rounds an f32 arithmetic result to `t`'s precision, canonicalizing NaN (R in lerpMi), and
// returns it as f32 (exact, since every f16 and bf16 value is an f32 value).
enum class RoundTo : int { F32 = 0, F16 = 1, BF16 = 2 };  // same numbering as wm::Dtype

WM_HD inline float canonicalizeNaN(float x) { return isNaN(x) ? f32FromBits(kF32CanonicalNaN) : x; }

// f64 -> f32 rounded to odd (truncated toward zero, last bit set when inexact): rounding this f32
// again to bf16 or f16 (16 or 13 fewer bits) is then the correct rounding of the f64 value.
WM_HD inline float f64ToF32Odd(double x) {
  const float r = static_cast<float>(x);
  if (x != x || static_cast<double>(r) == x) return r;
  uint32_t u = f32Bits(r);
  if (fabs(static_cast<double>(r)) > fabs(x)) --u;  // round-to-nearest went away from zero
  return f32FromBits(u | 1u);
}

WM_HD inline float roundTo(float x, RoundTo t) {
  if (isNaN(x)) return f32FromBits(kF32CanonicalNaN);
  if (t == RoundTo::BF16) return bf16ToF32(f32ToBF16(x));
  if (t == RoundTo::F16) return f16ToF32(f32ToF16(x));
  return x;
}

// ---- the formulas --------------------------------------------------------------------------------

// 0: a (w == +-0), 1: b (w == 1), -1: compute. Every backend checks this once per call.
WM_HD inline int lerpEndpoint(float w) { return w == 0.0f ? 0 : (w == 1.0f ? 1 : -1); }

WM_HD inline bool lerpWeightIsSmall(float w) { return (f32Bits(w) & 0x7FFFFFFFu) < 0x3F000000u; }

// torch.lerp in f32 (before the output rounding). The caller handles the endpoints.
WM_HD inline float lerpExactF32(float a, float b, float w) {
  const float diff = subRn(b, a);
  return lerpWeightIsSmall(w) ? fmaF32(w, diff, a) : fmaF32(subRn(w, 1.0f), diff, b);
}

// The paper's script, each op rounded to `t`; returns the t-value as f32.
WM_HD inline float lerpMiF32(float a, float b, float w, RoundTo t) {
  const float d = roundTo(subRn(b, a), t);
  const float p = roundTo(mulRn(d, w), t);
  return roundTo(addRn(a, p), t);
}

// Moments: lanes and their combination order (see the header comment).
constexpr int kMomentLanes = 8;
WM_HD inline double combineMomentLanes(const double* p) {
  return addRn(addRn(addRn(p[0], p[4]), addRn(p[2], p[6])), addRn(addRn(p[1], p[5]), addRn(p[3], p[7])));
}

}  // namespace num
}  // namespace wm
