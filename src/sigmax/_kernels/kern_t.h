/* kern_t.h: the kernels for one floating type T and one instruction-set variant.
 *
 * Included by kern.h with T (float/double), VT (its vector), VI (the mask vector), W (lanes) and
 * TX(name) (the name with type and variant suffixes) defined. The semantics are those of the generic
 * Array-API code in sigmax/activations.py, which stays the reference:
 *
 *   row kind  | softmax       | log_softmax                  | logsumexp | gradient
 *   ----------+---------------+------------------------------+-----------+---------
 *   finite    | e / sum e     | (x - m) - log1p(rest + k-1)  | m + log1p | formula
 *   all -inf  | 0             | -inf                         | -inf      | 0
 *   has +inf  | 1/k on the k  | -log(k) on the +inf entries, | +inf      | 0
 *             | +inf entries  | -inf elsewhere               |           |
 *   has NaN   | NaN           | NaN                          | NaN       | NaN
 *
 * with m the row maximum, k the number of entries equal to m and rest the sum of exp(x - m) over the
 * others: log1p(rest + k - 1) keeps the digits of a tiny rest that log(1 + rest) would round away.
 */

#define BLK ((ptrdiff_t)(16384 / sizeof(T))) /* a block of a row, in L1: max, then exp-sum */

/* ------------------------------------------------------------------------------------------------
 * elementwise: sigmoid, log_sigmoid, softplus (the formulas of activations.py, lane by lane)
 * ---------------------------------------------------------------------------------------------- */

ALWAYS_INLINE VT TX(sigmoid_v)(VT x) {
    VT e = TX(exp_neg)(TX(nabs)(x)); /* exp(-|x|) <= 1: no overflow for either sign */
    VT one = TX(splat)((T)1);
    /* x > 0: 1 / (1 + e^-x); otherwise e^x / (1 + e^x), which keeps tiny results exact */
    return TX(sel)(x > (T)0, one, e) / (one + e);
}

ALWAYS_INLINE VT TX(log_sigmoid_v)(VT x) {
    VT e = TX(exp_neg)(TX(nabs)(x));
    /* min(x, 0) - log1p(exp(-|x|)): both terms <= 0, no cancellation */
    return TX(sel)(x > (T)0, TX(splat)((T)0), x) - TX(log1p01)(e);
}

ALWAYS_INLINE VT TX(softplus_v)(VT x) {
    VT e = TX(exp_neg)(TX(nabs)(x));
    /* max(x, 0) + log1p(exp(-|x|)): both terms >= 0 */
    return TX(sel)(x > (T)0, x, TX(splat)((T)0)) + TX(log1p01)(e);
}

/* nt: stream the stores past the cache (large outputs; only where out is 32-byte aligned) */
#define EW_LOOP(F)                                                                                 \
    do {                                                                                           \
        ptrdiff_t i = 0;                                                                           \
        if (nt && ((uintptr_t)out & 31) == 0)                                                      \
            for (; i + W <= n; i += W) TX(stnt)(out + i, F(TX(ld)(x + i)));                        \
        for (; i + W <= n; i += W) TX(st)(out + i, F(TX(ld)(x + i)));                              \
        if (i < n) TX(stp)(out + i, F(TX(ldp)(x + i, n - i, (T)0)), n - i);                        \
    } while (0)

static void TX(elementwise)(int op, const T *x, T *out, ptrdiff_t n, int nt) {
    switch (op) {
    case EW_SIGMOID: EW_LOOP(TX(sigmoid_v)); break;
    case EW_LOG_SIGMOID: EW_LOOP(TX(log_sigmoid_v)); break;
    case EW_SOFTPLUS: EW_LOOP(TX(softplus_v)); break;
    }
}
#undef EW_LOOP

/* ------------------------------------------------------------------------------------------------
 * binary cross-entropy of logits x and targets y, elementwise (no weights):
 *   loss = c |x| + log1p(exp(-|x|)),  c = 1 - y where x > 0, y elsewhere (c |x| = 0 where c = 0,
 *   also for infinite x: the limit)
 * (sigmax.losses' formula with p_w = 1: both terms >= 0, no cancellation), and its gradient
 *   (sigmoid(x) - y) * scale.
 * op BCE_NONE writes the losses, BCE_SUM returns their sum (float64 accumulation), BCE_GRAD writes
 * the gradient.
 * ---------------------------------------------------------------------------------------------- */

ALWAYS_INLINE VT TX(bce_v)(VT x, VT y) {
    VT na = TX(nabs)(x); /* -|x| */
    VT c = TX(sel)(x > (T)0, (T)1 - y, y);
    /* c |x| is 0 where c = 0, also at |x| = inf (the limit: loss 0 where the sign agrees with the target) */
    return TX(sel)(c != (T)0, c * -na, TX(splat)((T)0)) + TX(log1p01)(TX(exp_neg)(na));
}

static double TX(bce)(int op, const T *x, const T *y, T *out, ptrdiff_t n, double scale) {
    ptrdiff_t i = 0;
    if (op == BCE_SUM) {
        vd s0 = {0}, s1 = {0};
        for (; i + W <= n; i += W) TX(acc)(&s0, &s1, TX(bce_v)(TX(ld)(x + i), TX(ld)(y + i)));
        if (i < n) TX(acc)(&s0, &s1, TX(sel)(TX(lanes)(n - i), TX(bce_v)(TX(ldp)(x + i, n - i, (T)0),
                                                                              TX(ldp)(y + i, n - i, (T)0)),
                                             TX(splat)((T)0)));
        return VN(hsum_vd)(s0 + s1);
    }
    if (op == BCE_NONE) {
        for (; i + W <= n; i += W) TX(st)(out + i, TX(bce_v)(TX(ld)(x + i), TX(ld)(y + i)));
        if (i < n) TX(stp)(out + i, TX(bce_v)(TX(ldp)(x + i, n - i, (T)0), TX(ldp)(y + i, n - i, (T)0)), n - i);
        return 0.0;
    }
    const T sc = (T)scale;
    for (; i + W <= n; i += W) TX(st)(out + i, (TX(sigmoid_v)(TX(ld)(x + i)) - TX(ld)(y + i)) * sc);
    if (i < n)
        TX(stp)(out + i, (TX(sigmoid_v)(TX(ldp)(x + i, n - i, (T)0)) - TX(ldp)(y + i, n - i, (T)0)) * sc, n - i);
    return 0.0;
}

/* ------------------------------------------------------------------------------------------------
 * rows (the reduced axis is the last one, contiguous)
 * ---------------------------------------------------------------------------------------------- */

/* Statistics of one row in one pass over memory: the row is read block by block (each block stays in
 * L1 for its second look); the running maximum M only grows, and when a block raises it the sum so
 * far is rescaled by exp(M_old - M_new) (an online log-sum-exp, once per block, not per element). */
/* The maximum of one block of a row (two vectors per step), and whether the block holds NaN. */
ALWAYS_INLINE T TX(block_max)(const T *xb, ptrdiff_t bn, int *nan) {
    const T inf = (T)__builtin_inf();
    const VT ninf = TX(splat)(-inf);
    VT m0 = ninf, m1 = ninf;
    VI vn = {0};
    ptrdiff_t i = 0;
    for (; i + 2 * W <= bn; i += 2 * W) {
        VT a = TX(ld)(xb + i), b = TX(ld)(xb + i + W);
        vn |= (a != a) | (b != b);
        m0 = TX(vmax)(m0, a);
        m1 = TX(vmax)(m1, b);
    }
    for (; i < bn; i += W) {
        VT a = bn - i >= W ? TX(ld)(xb + i) : TX(ldp)(xb + i, bn - i, -inf);
        vn |= a != a;
        m0 = TX(vmax)(m0, a);
    }
    *nan = TX(any)(vn);
    return TX(hmax)(TX(vmax)(m0, m1));
}

/* One block's share of the online log-sum-exp under a finite maximum M: rest += the sum of exp(x - M)
 * over the entries below M, cnt += the entries equal to M (where e == 1 exactly: they count in k, not in
 * rest, so that log1p(rest + k - 1) keeps a tiny rest). With ob (not NULL) each exp is also written there. */
ALWAYS_INLINE void TX(block_rest)(const T *xb, ptrdiff_t bn, T M, T *ob, double *rest, double *cnt) {
    const T inf = (T)__builtin_inf();
    const VT vM = TX(splat)(M), one = TX(splat)((T)1);
    vd r0 = {0}, r1 = {0};
    VT vc = TX(splat)((T)0);
    ptrdiff_t i = 0;
    for (; i + 2 * W <= bn; i += 2 * W) { /* two vectors per step: ILP, one widening */
        PREFETCH(xb + BLK + i);           /* the next block (or row), a line per step */
        VT v = TX(ld)(xb + i), u = TX(ld)(xb + i + W);
        VT e = TX(exp_neg)(v - vM), f = TX(exp_neg)(u - vM); /* x - M <= 0: no overflow */
        if (ob) {
            TX(st)(ob + i, e);
            TX(st)(ob + i + W, f);
        }
        VT k = (VT)((VI)(v == vM) & (VI)one), l = (VT)((VI)(u == vM) & (VI)one);
        vc += k + l;
        TX(acc)(&r0, &r1, (e - k) + (f - l)); /* one rounding in T per pair: rest's terms stay exact-ish */
    }
    for (; i < bn; i += W) {
        VT v = bn - i >= W ? TX(ld)(xb + i) : TX(ldp)(xb + i, bn - i, -inf); /* exp(-inf) = 0 */
        VT e = TX(exp_neg)(v - vM);
        if (ob) {
            if (bn - i >= W)
                TX(st)(ob + i, e);
            else
                TX(stp)(ob + i, e, bn - i);
        }
        VT k = (VT)((VI)(v == vM) & (VI)one);
        vc += k;
        TX(acc)(&r0, &r1, e - k);
    }
    *rest += VN(hsum_vd)(r0 + r1);
    *cnt += TX(hsum)(vc);
}

static void TX(row_stats)(const T *x, ptrdiff_t n, rowstat *st) {
    const T inf = (T)__builtin_inf();
    T M = -inf;
    double rest = 0.0, cnt = 0.0;
    int nan = 0;
    for (ptrdiff_t b0 = 0; b0 < n; b0 += BLK) {
        ptrdiff_t bn = n - b0 < BLK ? n - b0 : BLK;
        const T *xb = x + b0;
        T bm = TX(block_max)(xb, bn, &nan);
        if (nan) break; /* NaN anywhere makes the row NaN: nothing else matters */
        if (bm > M) {
            if (M != -inf && bm != inf) { /* the old maximum entries join the rest, rescaled */
                rest = (rest + cnt) * exp((double)M - (double)bm);
                cnt = 0.0;
            }
            M = bm;
        }
        if (M == inf || M == -inf) continue; /* +inf: only a NaN can still change the row; all -inf so far */
        TX(block_rest)(xb, bn, M, NULL, &rest, &cnt);
    }
    st->m = (double)M;
    st->arg = st->s = 0.0;
    if (nan) {
        st->kind = ROW_NAN;
    } else if (M == inf) {
        double k = 0;
        for (ptrdiff_t i = 0; i < n; i++) k += x[i] == inf;
        st->kind = ROW_POSINF;
        st->arg = k;
    } else if (M == -inf) {
        st->kind = ROW_EMPTY;
    } else {
        st->kind = ROW_FINITE;
        st->arg = rest + (cnt - 1.0); /* exact cnt - 1: log1p keeps a tiny rest */
        st->s = rest + cnt;
    }
}

static inline T TX(lse_of)(const rowstat *st) {
    switch (st->kind) {
    case ROW_FINITE: return (T)(st->m + log1p(st->arg));
    case ROW_EMPTY: return (T)-__builtin_inf();
    case ROW_POSINF: return (T)__builtin_inf();
    default: return (T)__builtin_nan("");
    }
}

/* The outputs of softmax / log_softmax for one row (x read again, from cache for rows up to L2). */
static void TX(row_out)(int op, const T *x, ptrdiff_t n, T *out, const rowstat *st, int nt) {
    const T inf = (T)__builtin_inf();
    ptrdiff_t i = 0;
    nt = nt && ((uintptr_t)out & 31) == 0;
    if (st->kind == ROW_FINITE) {
        const VT vM = TX(splat)((T)st->m);
        if (op == OP_SOFTMAX) {
            const T inv = (T)(1.0 / st->s); /* s >= 1 (the maximum contributes 1) */
            if (nt)
                for (; i + W <= n; i += W) TX(stnt)(out + i, TX(exp_neg)(TX(ld)(x + i) - vM) * inv);
            for (; i + W <= n; i += W) TX(st)(out + i, TX(exp_neg)(TX(ld)(x + i) - vM) * inv);
            if (i < n) TX(stp)(out + i, TX(exp_neg)(TX(ldp)(x + i, n - i, (T)0) - vM) * inv, n - i);
        } else {
            const T L = (T)log1p(st->arg);
            if (nt)
                for (; i + W <= n; i += W) TX(stnt)(out + i, (TX(ld)(x + i) - vM) - L);
            for (; i + W <= n; i += W) TX(st)(out + i, (TX(ld)(x + i) - vM) - L);
            if (i < n) TX(stp)(out + i, (TX(ldp)(x + i, n - i, (T)0) - vM) - L, n - i);
        }
        return;
    }
    if (st->kind == ROW_POSINF) { /* the limit: equal mass on the +inf entries, none elsewhere */
        T k = (T)st->arg;
        T on = op == OP_SOFTMAX ? (T)1 / k : -(T)log1p((double)(k - 1));
        T off = op == OP_SOFTMAX ? (T)0 : -inf;
        for (; i < n; i++) out[i] = x[i] == inf ? on : off;
        return;
    }
    T v = st->kind == ROW_EMPTY ? (op == OP_SOFTMAX ? (T)0 : -inf) : (T)__builtin_nan("");
    for (; i < n; i++) out[i] = v;
}

/* softmax of one row with one exp per entry: per block, the max, then e = exp(x - M) written to out
 * and summed; M only grows, and a block written under an older M is rescaled in the final pass
 * (out *= exp(M_block - M) / s, from cache for rows up to L2). Returns 0 if the row needs the
 * general path (special rows, or too many blocks to remember). */
#define SOFTMAX_MAX_BLOCKS 512
static int TX(row_softmax)(const T *x, ptrdiff_t n, T *out, int nt) {
    const T inf = (T)__builtin_inf();
    T bms[SOFTMAX_MAX_BLOCKS]; /* the M each block was written under (-inf: not written, all -inf) */
    ptrdiff_t nb = (n + BLK - 1) / BLK;
    if (nb > SOFTMAX_MAX_BLOCKS) return 0;
    T M = -inf;
    double s = 0.0;
    for (ptrdiff_t b = 0; b < nb; b++) {
        ptrdiff_t b0 = b * BLK, bn = n - b0 < BLK ? n - b0 : BLK, i = 0;
        const T *xb = x + b0;
        T *ob = out + b0;
        int nan;
        T bm = TX(block_max)(xb, bn, &nan);
        if (nan || bm == inf) return 0; /* NaN or +inf: the general path */
        if (bm > M) {
            if (M != -inf) s *= exp((double)M - (double)bm);
            M = bm;
        }
        bms[b] = M;
        if (M == -inf) continue; /* all -inf so far: written as 0 at the end */
        const VT vM = TX(splat)(M);
        vd r0 = {0}, r1 = {0};
        for (i = 0; i + 2 * W <= bn; i += 2 * W) {
            PREFETCH(xb + BLK + i);
            VT e = TX(exp_neg)(TX(ld)(xb + i) - vM), f = TX(exp_neg)(TX(ld)(xb + i + W) - vM); /* <= 1 */
            TX(st)(ob + i, e);
            TX(st)(ob + i + W, f);
            TX(acc)(&r0, &r1, e + f);
        }
        for (; i < bn; i += W) {
            VT e = TX(exp_neg)((bn - i >= W ? TX(ld)(xb + i) : TX(ldp)(xb + i, bn - i, -inf)) - vM);
            if (bn - i >= W)
                TX(st)(ob + i, e);
            else
                TX(stp)(ob + i, e, bn - i);
            TX(acc)(&r0, &r1, e);
        }
        s += VN(hsum_vd)(r0 + r1);
    }
    if (M == -inf) return 0; /* an all -inf row */
    nt = nt && ((uintptr_t)out & 31) == 0 && (BLK * sizeof(T)) % 32 == 0;
    for (ptrdiff_t b = 0; b < nb; b++) {
        ptrdiff_t b0 = b * BLK, bn = n - b0 < BLK ? n - b0 : BLK, i = 0;
        T *ob = out + b0;
        /* 1/s, times the rescaling of a block written under an older maximum (s >= 1) */
        const T q = bms[b] == -inf ? (T)0 : (T)(exp((double)bms[b] - (double)M) / s);
        if (bms[b] == -inf) {
            for (; i < bn; i++) ob[i] = (T)0;
            continue;
        }
        if (nt)
            for (; i + W <= bn; i += W) TX(stnt)(ob + i, TX(ld)(ob + i) * q);
        for (; i + W <= bn; i += W) TX(st)(ob + i, TX(ld)(ob + i) * q);
        for (; i < bn; i++) ob[i] = ob[i] * q;
    }
    return 1;
}

/* Rows of at most SMALLV entries (V = 10 classes, ...): the per-row work of the general path (a
 * horizontal max and sum, a log1p call) would cost more than the row itself, so W rows at a time are
 * transposed into a V x W tile and reduced lane by lane. Tiles holding a special row (NaN, +inf, all
 * -inf) and the last rows go through the general path. */
#define SMALLV 32
static void TX(row_general)(int op, const T *xr, ptrdiff_t V, T *out, ptrdiff_t r, uint8_t *flags, int nt) {
    rowstat st;
    if (op == OP_SOFTMAX && TX(row_softmax)(xr, V, out + r * V, nt)) {
        if (flags) flags[r] = 0;
        return;
    }
    TX(row_stats)(xr, V, &st);
    if (flags) flags[r] = st.kind == ROW_EMPTY || st.kind == ROW_POSINF;
    if (op == OP_LSE) {
        out[r] = TX(lse_of)(&st);
    } else if (op == OP_LSE_PARTS) { /* (m, log1p(arg)): losses form L - (x_t - m) without cancellation */
        out[2 * r] = st.kind == ROW_NAN ? (T)__builtin_nan("") : (T)st.m;
        out[2 * r + 1] = st.kind == ROW_FINITE ? (T)log1p(st.arg) : st.kind == ROW_EMPTY ? (T)0 : (T)__builtin_nan("");
    } else {
        TX(row_out)(op, xr, V, out + r * V, &st, nt);
    }
}

static void TX(rows_small)(int op, const T *x, T *out, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t V, uint8_t *flags) {
    /* Every row goes through the tile (a last, partial tile is padded with zero rows), and a special
     * row always through the general path: a row's result never depends on its neighbours, so a
     * batch split into pieces gives bit-identical results. */
    const T inf = (T)__builtin_inf();
    const VT one = TX(splat)((T)1);
    T tile[SMALLV][W];
    for (ptrdiff_t r = r0; r < r1; r += W) {
        const ptrdiff_t nr = r1 - r < W ? r1 - r : W;
        const T *xr = x + r * V;
        for (ptrdiff_t l = 0; l < W; l++)
            for (ptrdiff_t j = 0; j < V; j++) tile[j][l] = l < nr ? xr[l * V + j] : (T)0;
        VT m = TX(splat)(-inf);
        VI nan = {0};
        for (ptrdiff_t j = 0; j < V; j++) {
            VT t = TX(ld)(tile[j]);
            nan |= t != t;
            m = TX(vmax)(m, t);
        }
        T sp[W];
        TX(st)(sp, (VT)(nan | (m == inf) | (m == -inf))); /* NaN bits where the row is special */
        int special[W];
        for (ptrdiff_t l = 0; l < W; l++) special[l] = sp[l] != (T)0;
        vd a0 = {0}, a1 = {0};
        VT cnt = TX(splat)((T)0);
        for (ptrdiff_t j = 0; j < V; j++) {
            VT t = TX(ld)(tile[j]);
            VT e = TX(exp_neg)(t - m);
            VT k = (VT)((VI)(t == m) & (VI)one); /* the maximum entries: e == 1, counted apart */
            cnt += k;
            TX(acc)(&a0, &a1, e - k);
            if (op == OP_SOFTMAX) TX(st)(tile[j], e);
        }
        double rest[W], arg[W], mm[W], L[W];
        T kk[W], mx[W];
        memcpy(rest, &a0, 4 * sizeof(double));
        if (W == 8) memcpy(rest + 4, &a1, 4 * sizeof(double));
        TX(st)(kk, cnt);
        TX(st)(mx, m);
        for (ptrdiff_t l = 0; l < W; l++) {
            arg[l] = special[l] ? 0.0 : rest[l] + ((double)kk[l] - 1.0); /* log-sum-exp = m + log1p(arg) */
            mm[l] = (double)mx[l];
        }
        if (op == OP_SOFTMAX) {
            T q[W];
            for (ptrdiff_t l = 0; l < W; l++) q[l] = (T)(1.0 / (arg[l] + 1.0));
            VT vq = TX(ld)(q);
            for (ptrdiff_t j = 0; j < V; j++) TX(st)(tile[j], TX(ld)(tile[j]) * vq);
        } else {
#if W == 8
            float af[8], lf[8];
            for (int l = 0; l < 8; l++) af[l] = (float)arg[l];
            VN(st_f32)(lf, VN(log1p_f32)(VN(ld_f32)(af))); /* 8 rows' log1p at once */
            for (int l = 0; l < 8; l++) L[l] = lf[l];
#else
            for (ptrdiff_t l = 0; l < W; l++) L[l] = log1p(arg[l]);
#endif
            if (op == OP_LSE || op == OP_LSE_PARTS) {
                for (ptrdiff_t l = 0; l < nr; l++) {
                    if (special[l]) continue;
                    if (flags) flags[r + l] = 0;
                    if (op == OP_LSE) {
                        out[r + l] = (T)(mm[l] + L[l]);
                    } else {
                        out[2 * (r + l)] = (T)mm[l];
                        out[2 * (r + l) + 1] = (T)L[l];
                    }
                }
                for (ptrdiff_t l = 0; l < nr; l++)
                    if (special[l]) TX(row_general)(op, xr + l * V, V, out, r + l, flags, 0);
                continue;
            }
            /* log_softmax: (x - m) - L written row by row from x (no transpose back) */
            for (ptrdiff_t l = 0; l < nr; l++) {
                if (special[l]) {
                    TX(row_general)(op, xr + l * V, V, out, r + l, flags, 0);
                    continue;
                }
                if (flags) flags[r + l] = 0;
                const T *xl = xr + l * V;
                T *ol = out + (r + l) * V;
                const VT vm = TX(splat)(mx[l]), vL = TX(splat)((T)L[l]);
                ptrdiff_t i = 0;
                for (; i + W <= V; i += W) TX(st)(ol + i, (TX(ld)(xl + i) - vm) - vL);
                for (; i < V; i++) ol[i] = (xl[i] - mx[l]) - (T)L[l];
            }
            continue;
        }
        T *orow = out + r * V;
        for (ptrdiff_t l = 0; l < nr; l++) {
            if (special[l]) {
                TX(row_general)(op, xr + l * V, V, out, r + l, flags, 0);
                continue;
            }
            if (flags) flags[r + l] = 0;
            for (ptrdiff_t j = 0; j < V; j++) orow[l * V + j] = tile[j][l];
        }
    }
}

/* rows [r0, r1) of an (N, V) array: logsumexp (out has one entry per row), softmax, log_softmax.
 * flags (optional, one byte per row): 1 where the row's gradient is 0 (all -inf, or +inf entries). */
static void TX(rows)(int op, const T *x, T *out, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t V, uint8_t *flags, int nt) {
    if (V <= SMALLV) {
        TX(rows_small)(op, x, out, r0, r1, V, flags);
        return;
    }
    for (ptrdiff_t r = r0; r < r1; r++) {
        TX(row_general)(op, x + r * V, V, out, r, flags, nt);
    }
}

/* Cross-entropy of rows [r0, r1) with class-index targets tg (int64; ignore_index: loss 0):
 * loss = log1p(rest + k - 1) - (x_t - m) (= -log_softmax(x)[t], x_t - m exact near the maximum),
 * lse = m + log1p(...) for the backward, flags as in rows(); returns the number of counted rows.
 * parts: scratch of 2 (r1 - r0) entries. */
static ptrdiff_t TX(ce_rows)(const T *x, const int64_t *tg, int64_t ignore, T *loss, T *lse, T *parts, ptrdiff_t r0,
                             ptrdiff_t r1, ptrdiff_t V, uint8_t *flags) {
    const T inf = (T)__builtin_inf();
    /* the (m, L) pairs of these rows: row r at parts[2 (r - r0)] */
    TX(rows)(OP_LSE_PARTS, x + r0 * V, parts, 0, r1 - r0, V, flags ? flags + r0 : NULL, 0);
    ptrdiff_t counted = 0;
    for (ptrdiff_t r = r0; r < r1; r++) {
        const T m = parts[2 * (r - r0)], L = parts[2 * (r - r0) + 1];
        lse[r] = m + L;
        if (tg[r] == ignore) {
            loss[r] = (T)0;
            continue;
        }
        counted++;
        if (tg[r] < 0 || tg[r] >= V) { /* callers validate targets; never read outside the row */
            loss[r] = (T)__builtin_nan("");
            continue;
        }
        const T xt = x[r * V + tg[r]];
        if (m == -inf) {
            loss[r] = inf; /* an all -inf row: log_softmax is -inf everywhere */
        } else if (m == inf) { /* +inf entries share the mass: log k on them, inf elsewhere */
            double k = 0;
            for (ptrdiff_t j = 0; j < V; j++) k += x[r * V + j] == inf;
            loss[r] = xt == inf ? (T)log1p(k - 1.0) : inf;
        } else {
            loss[r] = L - (xt - m);
        }
    }
    return counted;
}

/* Gradients of rows [r0, r1), from the saved forward results:
 *   softmax:     a = p,  out = p * (g - sum(g * p))
 *   log_softmax: a = y,  out = g - exp(y) * sum(g)
 *   logsumexp:   a = x,  out = gr * exp(x - lse)   (lse and gr: one value per row)
 * rows flagged by the forward pass get 0. */
static void TX(rows_bwd)(int op, const T *a, const T *g, const T *lse, const T *gr, T *out, ptrdiff_t r0,
                         ptrdiff_t r1, ptrdiff_t V, const uint8_t *flags, const int64_t *tg) {
    for (ptrdiff_t r = r0; r < r1; r++) {
        const T *ar = a + r * V;
        T *orow = out + r * V;
        ptrdiff_t i = 0;
        if (flags && flags[r]) {
            memset(orow, 0, (size_t)V * sizeof(T));
            continue;
        }
        if (op == OP_LSE) {
            const VT vl = TX(splat)(lse[r]);
            const T gv = gr[r];
            for (; i + W <= V; i += W) TX(st)(orow + i, TX(exp_neg)(TX(ld)(ar + i) - vl) * gv);
            if (i < V) TX(stp)(orow + i, TX(exp_neg)(TX(ldp)(ar + i, V - i, (T)0) - vl) * gv, V - i);
            if (tg) orow[tg[r]] -= gv; /* cross-entropy: minus the one-hot target (in range: validated) */
            continue;
        }
        const T *gw = g + r * V;
        vd s0 = {0}, s1 = {0};
        for (; i + W <= V; i += W) {
            VT gv = TX(ld)(gw + i);
            TX(acc)(&s0, &s1, op == OP_SOFTMAX ? gv * TX(ld)(ar + i) : gv);
        }
        if (i < V) {
            VT gv = TX(ldp)(gw + i, V - i, (T)0);
            TX(acc)(&s0, &s1, op == OP_SOFTMAX ? gv * TX(ldp)(ar + i, V - i, (T)0) : gv);
        }
        const T s = (T)VN(hsum_vd)(s0 + s1);
        for (i = 0; i + W <= V; i += W) {
            VT av = TX(ld)(ar + i), gv = TX(ld)(gw + i);
            TX(st)(orow + i, op == OP_SOFTMAX ? av * (gv - s) : gv - TX(exp_neg)(av) * s);
        }
        if (i < V) {
            VT av = TX(ldp)(ar + i, V - i, (T)0), gv = TX(ldp)(gw + i, V - i, (T)0);
            TX(stp)(orow + i, op == OP_SOFTMAX ? av * (gv - s) : gv - TX(exp_neg)(av) * s, V - i);
        }
    }
}

/* Cross-entropy and its gradient for rows [r0, r1) with class-index targets tg (in [0, V)), one exp per
 * entry: per block of a row, the max, then e = exp(x - M) written to grad and summed as in row_stats
 * (rest without the maximum entries, their count k apart: the loss log1p(rest + k - 1) - (x_t - M)
 * keeps a confident row's digits); M only grows, and a final pass over the row (from cache for rows up
 * to L2) scales each block by exp(M_block - M) / s and subtracts the target's 1 (as -(s - e_t) / s at
 * a maximum target: no cancellation). Rows that hold NaN or +inf, rows of -inf only and rows of more
 * than SOFTMAX_MAX_BLOCKS blocks take ce_rows and rows_bwd (flags: one byte per row of the whole
 * array, written for those rows). Results: loss, lse (logsumexp), grad = softmax(x) - onehot(t); a row
 * whose target lies outside [0, V) gets NaN throughout. */
static void TX(ce_grad_rows)(const T *x, const int64_t *tg, T *loss, T *lse, T *grad, const T *ones,
                             uint8_t *flags, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t V) {
    const T inf = (T)__builtin_inf();
    ptrdiff_t nb = (V + BLK - 1) / BLK;
    T bms[SOFTMAX_MAX_BLOCKS];
    for (ptrdiff_t r = r0; r < r1; r++) {
        const T *xr = x + r * V;
        T *out = grad + r * V;
        if (tg[r] < 0 || tg[r] >= V) { /* a target outside the row (unchecked, traced): NaN, as the JAX rows */
            const T nan = (T)__builtin_nan("");
            loss[r] = lse[r] = nan;
            for (ptrdiff_t i = 0; i < V; i++) out[i] = nan;
            flags[r] = 0;
            continue;
        }
        T M = -inf;
        double rest = 0.0, cnt = 0.0;
        int general = nb > SOFTMAX_MAX_BLOCKS;
        for (ptrdiff_t b = 0; b < nb && !general; b++) {
            ptrdiff_t b0 = b * BLK, bn = V - b0 < BLK ? V - b0 : BLK;
            const T *xb = xr + b0;
            int nan;
            T bm = TX(block_max)(xb, bn, &nan);
            if (nan || bm == inf) { /* NaN or +inf: the general path */
                general = 1;
                break;
            }
            if (bm > M) {
                if (M != -inf) { /* the old maximum entries join the rest, rescaled */
                    rest = (rest + cnt) * exp((double)M - (double)bm);
                    cnt = 0.0;
                }
                M = bm;
            }
            bms[b] = M;
            if (M == -inf) continue; /* all -inf so far: written as 0 at the end */
            TX(block_rest)(xb, bn, M, out + b0, &rest, &cnt); /* e written to the gradient row, rescaled below */
        }
        if (general || M == -inf) {
            TX(ce_rows)(x, tg, INT64_MIN, loss, lse, (T *)bms, r, r + 1, V, flags);
            TX(rows_bwd)(OP_LSE, x, NULL, lse, ones, grad, r, r + 1, V, flags, tg);
            continue;
        }
        flags[r] = 0;
        const double s = rest + cnt, arg = rest + (cnt - 1.0); /* s - 1, exactly: cnt >= 1 */
        const T L = (T)log1p(arg), xt = xr[tg[r]];
        lse[r] = M + L;
        loss[r] = L - (xt - M);
        for (ptrdiff_t b = 0; b < nb; b++) {
            ptrdiff_t b0 = b * BLK, bn = V - b0 < BLK ? V - b0 : BLK, i = 0;
            T *ob = out + b0;
            if (bms[b] == -inf) {
                for (; i < bn; i++) ob[i] = (T)0;
                continue;
            }
            const T q = (T)(exp((double)bms[b] - (double)M) / s); /* 1/s, and the rescaling of an older M */
            for (; i + W <= bn; i += W) TX(st)(ob + i, TX(ld)(ob + i) * q);
            for (; i < bn; i++) ob[i] = ob[i] * q;
        }
        /* the target's p - 1: at a maximum target -(s - 1) / s = -arg / s, without cancellation */
        out[tg[r]] = xt == M ? (T)(-arg / s) : out[tg[r]] - (T)1;
    }
}

/* Gradient of logsumexp over the middle axis of an (A, C, B) array, rows j in [j0, j1) of the
 * (A C, B) view: out[a, c, :] = g[a, :] * exp(x[a, c, :] - lse[a, :]) (x - lse <= 0 in finite
 * columns; callers zero the columns flagged by the forward pass). */
static void TX(cols_lse_bwd)(const T *x, const T *lse, const T *g, T *out, ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t C,
                             ptrdiff_t B) {
    for (ptrdiff_t j = j0; j < j1; j++) {
        const T *xr = x + j * B, *lr = lse + (j / C) * B, *gr = g + (j / C) * B;
        T *orow = out + j * B;
        ptrdiff_t i = 0;
        for (; i + W <= B; i += W)
            TX(st)(orow + i, TX(exp_neg)(TX(ld)(xr + i) - TX(ld)(lr + i)) * TX(ld)(gr + i));
        if (i < B)
            TX(stp)(orow + i, TX(exp_neg)(TX(ldp)(xr + i, B - i, (T)0) - TX(ldp)(lr + i, B - i, (T)0)) *
                                  TX(ldp)(gr + i, B - i, (T)0), B - i);
    }
}

#include "kern_cols_t.h" /* columns: an (A, C, B) array reduced over C */

#undef BLK
#undef STRIP
#undef STRIP_ROWS
