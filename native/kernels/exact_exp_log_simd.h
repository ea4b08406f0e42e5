// exact_exp_log.h's algorithm once, over a lane type S (exact_exp_log_avx2.cc: 4 lanes, exact_exp_log_avx512.cc: 8).
// Include it last, inside the including file's `#pragma GCC target` region, after every standard header (<cmath> among them).
// S gives: V (f64 lanes), I (i64 lanes), M (lane mask), kLanes, and load/store/set/seti, add/sub, mul (one rounding,
// never fused), fma (a*b+c), fms (a*b-c), fnma (c-a*b), abs, ge/le/lt/eq, andM/notM, maskBits, asI/asV, iadd/isub/
// iand/ior, shl/shr (logical), pairs(base, I offsets, first, second) (base[offset], base[offset + 1] per lane).
#pragma once

namespace wm {
namespace exactexp {

// x = s + e exactly (any magnitudes).
template <class S>
inline void twoSum(typename S::V a, typename S::V b, typename S::V& s, typename S::V& e) {
  s = S::add(a, b);
  const typename S::V bb = S::sub(s, a);
  e = S::add(S::sub(a, S::sub(s, bb)), S::sub(b, bb));
}

// Lanes whose rounded hi is certain: |hi + lo - hi| below (1/2 - margin) ulp(hi), hi not a power of two or zero.
template <class S>
inline typename S::M certain(typename S::V hi, typename S::V lo, double margin) {
  const typename S::V pow2 = S::asV(S::iand(S::asI(hi), S::seti(0x7FF0000000000000ll)));  // 2^exponent(hi)
  const typename S::V limit = S::mul(pow2, S::set((0.5 - margin) * 0x1p-52));                // exact: a power-of-two scaling
  return S::andM(S::lt(S::abs(lo), limit), S::notM(S::eq(S::abs(hi), pow2)));
}

// exp of S::kLanes values into out; returns the lanes that must take std::exp.
template <class S>
inline unsigned expLanes(const double* xp, double* out) {
  using V = typename S::V;
  using I = typename S::I;
  const Tables& t = tables();
  const V x = S::load(xp);
  const typename S::M fast = S::le(S::abs(x), S::set(kExpFastLimit));  // not NaN; other lanes compute garbage, in bounds

  // k = round(x * 128 / ln 2) through the 1.5 * 2^52 shifter: its low bits are k in two's complement.
  const V shifter = S::set(0x1.8p52);
  const V kShifted = S::fma(x, S::set(kInvLn2x128), shifter);
  const V k = S::sub(kShifted, shifter);
  const I ki = S::isub(S::asI(kShifted), S::asI(shifter));
  const I j = S::iand(ki, S::seti(kExpSize - 1));
  const I exponentBits = S::template shl<52 - kExpBits>(S::isub(ki, j));  // floor(k / 128) << 52
  // r = x - k ln 2 / 128 as rHi + rLo: the first product is exact and so is the difference (Sterbenz).
  const V r1 = S::fnma(k, S::set(kLn2x128Hi), x);
  V rHi, rLo;
  twoSum<S>(r1, S::mul(k, S::set(-kLn2x128Lo)), rHi, rLo);
  // exp(r) - 1 = rHi + w, w = rLo (1 + rHi) + rHi^2 (1/2 + rHi/6 + ... + rHi^4/720); the next term is < 2^-71.
  V poly = S::fma(rHi, S::set(1.0 / 720), S::set(1.0 / 120));
  poly = S::fma(rHi, poly, S::set(1.0 / 24));
  poly = S::fma(rHi, poly, S::set(1.0 / 6));
  poly = S::fma(rHi, poly, S::set(0.5));
  const V w = S::add(S::fma(rHi, rLo, rLo), S::mul(S::mul(rHi, rHi), poly));
  // 2^(j/128) (1 + rHi + w) = tHi + tHi rHi + [tHi w + tLo (1 + rHi)], the first two as an exact sum and product.
  V tHi, tLo;
  S::pairs(&t.exp[0][0], S::template shl<1>(j), tHi, tLo);
  const V p = S::mul(tHi, rHi);
  const V pErr = S::fms(tHi, rHi, p);
  const V s = S::add(tHi, p);
  const V sErr = S::add(S::sub(tHi, s), p);  // |tHi| >= |p|: exact
  const V tail = S::add(S::add(sErr, pErr), S::fma(tHi, w, S::fma(tLo, rHi, tLo)));
  const V hi = S::add(s, tail);
  const V lo = S::sub(tail, S::sub(hi, s));
  S::store(out, S::asV(S::iadd(S::asI(hi), exponentBits)));  // the result is normal: scaling by 2^e is exact
  return S::maskBits(S::notM(S::andM(fast, certain<S>(hi, lo, kExpMargin))));
}

// log of S::kLanes values into out; returns the lanes that must take std::log.
template <class S>
inline unsigned logLanes(const double* xp, double* out) {
  using V = typename S::V;
  using I = typename S::I;
  const Tables& t = tables();
  const V x = S::load(xp);
  // Positive, normal, finite (not NaN); other lanes compute garbage, with table indices in bounds all the same.
  const typename S::M fast = S::andM(S::ge(x, S::set(0x1p-1022)), S::le(x, S::set(0x1.fffffffffffffp+1023)));
  // x = 2^e m, m in [0.6875, 1.375); j = which of 512 equal bit-pattern intervals m lies in.
  const I ix = S::asI(x);
  const I tmp = S::isub(ix, S::seti(static_cast<long long>(kLogOffset)));
  const I j = S::iand(S::template shr<52 - kLogBits>(tmp), S::seti(kLogSize - 1));
  const I biasedE = S::template shr<52>(S::iadd(tmp, S::seti(1024ll << 52)));  // e + 1024 in [0, 2047]
  const V e = S::sub(S::asV(S::ior(biasedE, S::asI(S::set(0x1p52)))), S::set(0x1p52 + 1024));
  const V m = S::asV(S::isub(ix, S::iand(tmp, S::seti(static_cast<long long>(0xFFF0000000000000ull)))));
  // log x = e ln 2 - log c + log1p(r), r = m c - 1 exact (|r| < 2^-9 from 2^-10 down to m c's last bit, 2^-62).
  V c, logHi, logLo, unused;
  S::pairs(&t.log[0][0], S::template shl<2>(j), c, logHi);
  S::pairs(&t.log[0][2], S::template shl<2>(j), logLo, unused);
  const V r = S::fma(m, c, S::set(-1.0));
  const V r2 = S::mul(r, r);
  const V r2Err = S::fms(r, r, r2);
  const V h = S::mul(r2, S::set(-0.5));  // -r^2/2 = h + hErr exactly
  const V hErr = S::mul(r2Err, S::set(-0.5));
  // log1p(r) = r - r^2/2 + r^3 (1/3 - r/4 + ... + r^4/7); the next term is below 2^-67 of r.
  V poly = S::fma(r, S::set(1.0 / 7), S::set(-1.0 / 6));
  poly = S::fma(r, poly, S::set(1.0 / 5));
  poly = S::fma(r, poly, S::set(-1.0 / 4));
  poly = S::fma(r, poly, S::set(1.0 / 3));
  const V cubic = S::mul(S::mul(r2, r), poly);
  // The large terms summed exactly (e ln2Hi + logHi is exact; |h| is far below |s2|), the small ones plainly.
  const V s1 = S::add(S::mul(e, S::set(kLn2Hi)), logHi);
  V s2, e2;
  twoSum<S>(s1, r, s2, e2);
  const V s3 = S::add(s2, h);
  const V e3 = S::sub(h, S::sub(s3, s2));
  const V small = S::add(S::add(S::mul(e, S::set(kLn2Lo)), logLo), S::add(hErr, cubic));
  const V tail = S::add(S::add(e2, e3), small);
  const V hi = S::add(s3, tail);
  const V lo = S::sub(tail, S::sub(hi, s3));
  S::store(out, hi);
  return S::maskBits(S::notM(S::andM(fast, certain<S>(hi, lo, kLogMargin))));
}

// Lanes over x[0..n), the lanes they leave redone by libm; returns how many. (Listing those lanes without branching and
// redoing them after each chunk of 256 was slower here: 2.6 against 2.1 ns per exp in 8 lanes.)
template <class S, unsigned (*Lanes)(const double*, double*), double (*Libm)(double)>
inline size_t arrayLoop(const double* x, double* out, size_t n) {
  size_t redone = 0;
  auto redo = [&](unsigned lanes, const double* xs, double* os) {
    for (; lanes; lanes &= lanes - 1) {
      const int l = __builtin_ctz(lanes);
      os[l] = Libm(xs[l]);
      ++redone;
    }
  };
  size_t i = 0;
  for (; i + S::kLanes <= n; i += S::kLanes) redo(Lanes(x + i, out + i), x + i, out + i);
  if (i < n) {  // the last n - i lanes through a padded copy
    const size_t rest = n - i;
    double xs[S::kLanes], os[S::kLanes];
    for (size_t l = 0; l < S::kLanes; ++l) xs[l] = l < rest ? x[i + l] : 1.5;
    redo(Lanes(xs, os) & ((1u << rest) - 1), xs, os);
    for (size_t l = 0; l < rest; ++l) out[i + l] = os[l];
  }
  return redone;
}

inline double libmExp(double x) { return std::exp(x); }
inline double libmLog(double x) { return std::log(x); }

// The two array functions over lane type S, libm redoing the lanes left uncertain.
template <class S>
inline size_t expOver(const double* x, double* out, size_t n) {
  return arrayLoop<S, expLanes<S>, libmExp>(x, out, n);
}
template <class S>
inline size_t logOver(const double* x, double* out, size_t n) {
  return arrayLoop<S, logLanes<S>, libmLog>(x, out, n);
}

}  // namespace exactexp
}  // namespace wm
