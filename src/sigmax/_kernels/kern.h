/* kern.h: SIMD primitives (exp, log1p, loads, blends) for one instruction-set variant.
 *
 * Included by _ck.c once per variant with VSUF defined (_avx2, _base); it then includes kern_t.h once
 * per floating type, which holds the kernels themselves. Nothing here uses -ffast-math: infinities,
 * NaN and subnormals follow IEEE rules, and each special case is handled on the line that needs it.
 */

#define VN(name) PASTE(name, VSUF)

/* ------------------------------------------------------------------------------------------------
 * float32 (8 lanes)
 * ---------------------------------------------------------------------------------------------- */

ALWAYS_INLINE vf VN(splat_f32)(float a) { return (vf){a, a, a, a, a, a, a, a}; }
ALWAYS_INLINE vf VN(sel_f32)(vi m, vf a, vf b) { return (vf)((m & (vi)a) | (~m & (vi)b)); }
ALWAYS_INLINE vf VN(ld_f32)(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
ALWAYS_INLINE void VN(st_f32)(float *p, vf v) { memcpy(p, &v, sizeof v); }
/* the first n (< 8) lanes from p, the others `fill` (a neutral value: -inf for max and exp) */
ALWAYS_INLINE vi VN(lanes_f32)(ptrdiff_t n) { /* -1 in the first n lanes */
    const vi idx = {0, 1, 2, 3, 4, 5, 6, 7};
    return idx < (vi){(int)n, (int)n, (int)n, (int)n, (int)n, (int)n, (int)n, (int)n};
}
ALWAYS_INLINE vf VN(ldp_f32)(const float *p, ptrdiff_t n, float fill) {
#ifdef __AVX2__
    vi m = VN(lanes_f32)(n);
    vf v = (vf)_mm256_maskload_ps(p, (__m256i)m); /* touches only the n lanes */
    return VN(sel_f32)(m, v, VN(splat_f32)(fill));
#else
    float buf[8];
    for (int i = 0; i < 8; i++) buf[i] = i < n ? p[i] : fill;
    return VN(ld_f32)(buf);
#endif
}
ALWAYS_INLINE void VN(stp_f32)(float *p, vf v, ptrdiff_t n) {
    /* not vmaskmovps: its store form is microcoded on AMD Zen (tens of cycles), a short row's tail
     * store would cost more than the row */
    float buf[8];
    VN(st_f32)(buf, v);
    for (ptrdiff_t i = 0; i < n; i++) p[i] = buf[i];
}
ALWAYS_INLINE float VN(hmax_f32)(vf v) {
    float m = v[0];
    for (int i = 1; i < 8; i++) m = v[i] > m ? v[i] : m;
    return m;
}
ALWAYS_INLINE int VN(any_f32)(vi m) {
#ifdef __AVX2__
    return _mm256_movemask_ps((__m256)m) != 0;
#else
    int32_t r = 0;
    for (int i = 0; i < 8; i++) r |= m[i];
    return r != 0;
#endif
}
/* widen 8 float32 lanes into two float64 accumulators (sums of float32 terms are kept in float64) */
ALWAYS_INLINE void VN(acc_f32)(vd *a0, vd *a1, vf v) {
    /* halves by shuffles, not through memory: a store and two reloads would put the accumulators on
     * the stack and the loop on the store-forwarding latency */
#ifdef __AVX2__ /* GCC lowers the generic 4-lane conversion two lanes at a time, through memory */
    *a0 += (vd)_mm256_cvtps_pd(_mm256_castps256_ps128((__m256)v));
    *a1 += (vd)_mm256_cvtps_pd(_mm256_extractf128_ps((__m256)v, 1));
#else
    vf4 lo = __builtin_shufflevector(v, v, 0, 1, 2, 3), hi = __builtin_shufflevector(v, v, 4, 5, 6, 7);
    *a0 += __builtin_convertvector(lo, vd);
    *a1 += __builtin_convertvector(hi, vd);
#endif
}
ALWAYS_INLINE double VN(hsum_vd)(vd v) { return (v[0] + v[2]) + (v[1] + v[3]); }
ALWAYS_INLINE double VN(hsum_f32)(vf v) {
    double s = 0;
    for (int i = 0; i < 8; i++) s += v[i];
    return s;
}

ALWAYS_INLINE vf VN(vmax_f32)(vf a, vf b) {
#ifdef __AVX2__
    return _mm256_max_ps(a, b); /* a > b ? a : b */
#else
    return VN(sel_f32)(a > b, a, b);
#endif
}
/* -|x| (the sign bit set): NaN stays NaN */
ALWAYS_INLINE vf VN(nabs_f32)(vf x) { return (vf)((vi)x | (vi)VN(splat_f32)(-0.0f)); }
/* a store that bypasses the cache (large outputs: no read-for-ownership); p must be 32-byte aligned */
ALWAYS_INLINE void VN(stnt_f32)(float *p, vf v) {
#ifdef __AVX2__
    _mm256_stream_ps(p, (__m256)v);
#else
    VN(st_f32)(p, v);
#endif
}

/* exp(z) for z <= 0 (or -inf, or NaN), float32, < 1 ulp (Cephes expf's reduction and polynomial).
 * z = n ln2 + r, |r| <= ln2/2; exp(r) = 1 + r + r^2 P(r); 2^n is applied as 2^n1 * 2^n2 so that
 * results in the subnormal range are rounded once (the first product is exact). exp(0) == 1
 * exactly, exp(-inf) = 0, NaN stays NaN (it survives the max and the arithmetic; the integer
 * part of a NaN only scales a NaN). Every caller has z <= 0: x - max(x), -|x|, log-probabilities. */
ALWAYS_INLINE vf VN(exp_neg_f32)(vf z) {
    vf xc = VN(vmax_f32)(VN(splat_f32)(-104.0f), z); /* below -104 the result rounds to 0; max keeps NaN */
    const float magic = 12582912.0f;                /* 1.5 * 2^23: adding it rounds to an integer */
    vf t = xc * 1.44269504088896341f + magic;
    vf n = t - magic;
    vi ni = (vi)t - (vi)VN(splat_f32)(magic);
    vf r = xc - n * 0.693359375f; /* Cody-Waite: n * ln2_hi is exact */
    r = r - n * -2.12194440e-4f;
    vf p = VN(splat_f32)(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    vf e = p * (r * r) + r + 1.0f;
    /* e is in [0.7, 1.42]; where every lane has z >= -86.5 (n >= -125, so e 2^n is a normal number;
     * false for NaN) 2^n is added to the exponent bits: the same value as the two products below */
    if (!VN(any_f32)(~(z >= -86.5f))) return (vf)((vi)e + (ni << 23));
    vi n1 = ni >> 1, n2 = ni - n1;
    e = e * (vf)((n1 + 127) << 23); /* exact: stays normal */
    return e * (vf)((n2 + 127) << 23); /* the one rounding (into the subnormals) */
}

/* log(1 + u) for u in [0, 1] (or NaN), float32, < 1 ulp: musl's log1pf (1 + u reduced to
 * [sqrt(2)/2, sqrt(2)]: f = u, or f = (1 + u)/2 - 1 with the rounding error c of 1 + u added back)
 * and logf's polynomial in s = f / (2 + f). One division gives both s and c / (1 + u). */
ALWAYS_INLINE vf VN(log1p01_f32)(vf u) {
    vi big = u >= 0.41421356f;                            /* 1 + u >= sqrt(2): k = 1 */
    vf one = VN(splat_f32)(1.0f);
    vf w = u + 1.0f;
    vf f = VN(sel_f32)(big, w * 0.5f - 1.0f, u);          /* exact (Sterbenz) */
    vf c = (vf)(big & (vi)(u - (w - 1.0f)));              /* u - (w - 1): exact rounding error of w */
    vf dk = (vf)(big & (vi)one);
    vf d = 2.0f + f, wb = VN(sel_f32)(big, w, one);
    vf q = one / (d * wb);
    vf s = f * wb * q;                                    /* f / (2 + f) */
    vf cw = c * d * q;                                    /* c / w: a correction below one ulp */
    vf z = s * s, ww = z * z;
    vf t1 = ww * (0.40000972152f + ww * 0.24279078841f);
    vf t2 = z * (0.66666662693f + ww * 0.28498786688f);
    vf R = t2 + t1;
    vf hfsq = 0.5f * f * f;
    return s * (hfsq + R) + (dk * 9.0580006145e-06f + cw) - hfsq + f + dk * 6.9313812256e-01f;
}

/* log(1 + u) for any u >= 0 (or NaN, inf), float32, < 1 ulp: musl's log1pf with the general
 * reduction (any exponent k); used once per row by the small-row kernels. */
ALWAYS_INLINE vf VN(log1p_f32)(vf u) {
    const vf zero = VN(splat_f32)(0.0f);
    vf w = u + 1.0f;
    vi iu = (vi)w + (0x3f800000 - 0x3f3504f3);
    vi k = (iu >> 23) - 0x7f;
    vf fk = VN(sel_f32)(k == 0, u, (vf)((iu & 0x007fffff) + 0x3f3504f3) - 1.0f); /* k == 0: f = u exactly */
    /* rounding error of w = 1 + u, relative to w (musl: 1 - (w - u) for k >= 2, u - (w - 1) for k = 1) */
    vf c = VN(sel_f32)(k >= 2, 1.0f - (w - u), u - (w - 1.0f)) / w;
    c = VN(sel_f32)((k == 0) | (k >= 25), zero, c);
    vf dk = __builtin_convertvector(k, vf);
    vf s = fk / (2.0f + fk);
    vf z = s * s, ww = z * z;
    vf t1 = ww * (0.40000972152f + ww * 0.24279078841f);
    vf t2 = z * (0.66666662693f + ww * 0.28498786688f);
    vf R = t2 + t1;
    vf hfsq = 0.5f * fk * fk;
    vf res = s * (hfsq + R) + (dk * 9.0580006145e-06f + c) - hfsq + fk + dk * 6.9313812256e-01f;
    return VN(sel_f32)((u == __builtin_inff()) | (u != u), u, res); /* inf and NaN pass through */
}

/* ------------------------------------------------------------------------------------------------
 * float64 (4 lanes)
 * ---------------------------------------------------------------------------------------------- */

ALWAYS_INLINE vd VN(splat_f64)(double a) { return (vd){a, a, a, a}; }
ALWAYS_INLINE vd VN(sel_f64)(vl m, vd a, vd b) { return (vd)((m & (vl)a) | (~m & (vl)b)); }
ALWAYS_INLINE vd VN(ld_f64)(const double *p) { vd v; memcpy(&v, p, sizeof v); return v; }
ALWAYS_INLINE void VN(st_f64)(double *p, vd v) { memcpy(p, &v, sizeof v); }
ALWAYS_INLINE vl VN(lanes_f64)(ptrdiff_t n) {
    const vl idx = {0, 1, 2, 3};
    return idx < (vl){n, n, n, n};
}
ALWAYS_INLINE vd VN(ldp_f64)(const double *p, ptrdiff_t n, double fill) {
#ifdef __AVX2__
    vl m = VN(lanes_f64)(n);
    vd v = (vd)_mm256_maskload_pd(p, (__m256i)m);
    return VN(sel_f64)(m, v, VN(splat_f64)(fill));
#else
    double buf[4];
    for (int i = 0; i < 4; i++) buf[i] = i < n ? p[i] : fill;
    return VN(ld_f64)(buf);
#endif
}
ALWAYS_INLINE void VN(stp_f64)(double *p, vd v, ptrdiff_t n) {
    double buf[4]; /* see stp_f32 */
    VN(st_f64)(buf, v);
    for (ptrdiff_t i = 0; i < n; i++) p[i] = buf[i];
}
ALWAYS_INLINE double VN(hmax_f64)(vd v) {
    double m = v[0];
    for (int i = 1; i < 4; i++) m = v[i] > m ? v[i] : m;
    return m;
}
ALWAYS_INLINE int VN(any_f64)(vl m) {
#ifdef __AVX2__
    return _mm256_movemask_pd((__m256d)m) != 0;
#else
    return (m[0] | m[1] | m[2] | m[3]) != 0;
#endif
}
ALWAYS_INLINE void VN(acc_f64)(vd *a0, vd *a1, vd v) { (void)a1; *a0 += v; }
ALWAYS_INLINE double VN(hsum_f64)(vd v) { return (v[0] + v[2]) + (v[1] + v[3]); }

ALWAYS_INLINE vd VN(vmax_f64)(vd a, vd b) {
#ifdef __AVX2__
    return _mm256_max_pd(a, b);
#else
    return VN(sel_f64)(a > b, a, b);
#endif
}
ALWAYS_INLINE vd VN(nabs_f64)(vd x) { return (vd)((vl)x | (vl)VN(splat_f64)(-0.0)); }
ALWAYS_INLINE void VN(stnt_f64)(double *p, vd v) {
#ifdef __AVX2__
    _mm256_stream_pd(p, (__m256d)v);
#else
    VN(st_f64)(p, v);
#endif
}

/* exp(z) for z <= 0 (or -inf, or NaN), float64, < 1 ulp: z = n ln2 + r (fdlibm's two-part ln2),
 * exp(r) = 1 + r + r^2 P(r) with P a degree-10 Chebyshev fit of (e^r - 1 - r)/r^2 on
 * [-ln2/2, ln2/2] (error 1.7e-19), 2^n applied in an exact step and a rounding step as in float32. */
ALWAYS_INLINE vd VN(exp_neg_f64)(vd z) {
    vd xc = VN(vmax_f64)(VN(splat_f64)(-746.0), z);
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    vd t = xc * 1.4426950408889634074 + magic;
    vd n = t - magic;
    vl ni = (vl)t - (vl)VN(splat_f64)(magic);
    vd t1 = n * 0.5 + magic; /* n1 = round(n / 2): AVX2 has no 64-bit arithmetic shift */
    vl n1 = (vl)t1 - (vl)VN(splat_f64)(magic);
    vl n2 = ni - n1;
    vd r = xc - n * 6.93147180369123816490e-01;
    r = r - n * 1.90821492927058770002e-10;
    vd p = VN(splat_f64)(2.0914717341716378e-09);
    p = p * r + 2.5105259538448494e-08;
    p = p * r + 2.755727357010214e-07;
    p = p * r + 2.7557255297969643e-06;
    p = p * r + 2.4801587325605324e-05;
    p = p * r + 0.0001984126987490126;
    p = p * r + 0.001388888888888373;
    p = p * r + 0.008333333333326112;
    p = p * r + 0.04166666666666667;
    p = p * r + 0.1666666666666667;
    p = p * r + 0.5;
    vd e = p * (r * r) + r + 1.0;
    if (!VN(any_f64)(~(z >= -707.0))) return (vd)((vl)e + (ni << 52)); /* n >= -1020: normal (as f32) */
    e = e * (vd)((n1 + 1023) << 52);
    return e * (vd)((n2 + 1023) << 52);
}

/* log(1 + u) for u in [0, 1] (or NaN), float64, < 1 ulp: fdlibm/musl log1p, as log1p01_f32. */
ALWAYS_INLINE vd VN(log1p01_f64)(vd u) {
    vl big = u >= 0.41421356237309503;
    vd one = VN(splat_f64)(1.0);
    vd w = u + 1.0;
    vd f = VN(sel_f64)(big, w * 0.5 - 1.0, u);
    vd c = (vd)(big & (vl)(u - (w - 1.0)));
    vd dk = (vd)(big & (vl)one);
    vd d = 2.0 + f, wb = VN(sel_f64)(big, w, one);
    vd q = one / (d * wb);
    vd s = f * wb * q;
    vd cw = c * d * q;
    vd z = s * s, ww = z * z;
    vd t1 = ww * (3.999999999940941908e-01 + ww * (2.222219843214978396e-01 + ww * 1.531383769920937332e-01));
    vd t2 = z * (6.666666666666735130e-01 + ww * (2.857142874366239149e-01 + ww * (1.818357216161805012e-01 +
                                                                                 ww * 1.479819860511658591e-01)));
    vd R = t2 + t1;
    vd hfsq = 0.5 * f * f;
    return s * (hfsq + R) + (dk * 1.90821492927058770002e-10 + cw) - hfsq + f + dk * 6.93147180369123816490e-01;
}

/* ------------------------------------------------------------------------------------------------
 * the kernels, once per type
 * ---------------------------------------------------------------------------------------------- */

#define T float
#define VT vf
#define VI vi
#define W 8
#define TSUF _f32
#define TX(name) PASTE3(name, _f32, VSUF)
#include "kern_t.h"
#undef T
#undef VT
#undef VI
#undef W
#undef TSUF
#undef TX

#define T double
#define VT vd
#define VI vl
#define W 4
#define TSUF _f64
#define TX(name) PASTE3(name, _f64, VSUF)
#include "kern_t.h"
#undef T
#undef VT
#undef VI
#undef W
#undef TSUF
#undef TX

#undef VN
