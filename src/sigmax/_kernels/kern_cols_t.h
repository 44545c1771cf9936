/* kern_cols_t.h: the column kernels of kern_t.h (included from there, once per dtype and variant,
 * with its macros T, VT, TX, ... defined). */
/* ------------------------------------------------------------------------------------------------
 * columns: an (A, C, B) array reduced over C (axis 0 of a matrix, or any non-last axis); the B
 * entries of a C-slice are contiguous, so neighbouring columns are processed as vector lanes.
 * ---------------------------------------------------------------------------------------------- */

/* one column (stride apart), scalar: the rare columns with NaN or infinite entries */
static void TX(col_scalar)(int op, const T *x, ptrdiff_t stride, ptrdiff_t n, T *out, ptrdiff_t ostride,
                           uint8_t *flag) {
    const T inf = (T)__builtin_inf();
    T M = -inf;
    int nan = 0;
    for (ptrdiff_t c = 0; c < n; c++) {
        T v = x[c * stride];
        nan |= v != v;
        M = v > M ? v : M;
    }
    rowstat st = {(double)M, 0.0, 0.0, ROW_FINITE};
    if (nan) {
        st.kind = ROW_NAN;
    } else if (M == inf) {
        st.kind = ROW_POSINF;
        for (ptrdiff_t c = 0; c < n; c++) st.arg += x[c * stride] == inf;
    } else if (M == -inf) {
        st.kind = ROW_EMPTY;
    } else {
        double rest = 0.0, cnt = 0.0;
        for (ptrdiff_t c = 0; c < n; c++) {
            T v = x[c * stride];
            if (v == M) cnt += 1.0;
            else rest += (double)(T)exp((double)(v - M));
        }
        st.arg = rest + (cnt - 1.0);
        st.s = rest + cnt;
    }
    if (flag) *flag = st.kind == ROW_EMPTY || st.kind == ROW_POSINF;
    if (op == OP_LSE) {
        *out = TX(lse_of)(&st);
        return;
    }
    if (op == OP_LSE_PARTS) { /* (m, log1p(arg)) as the row kernels give them */
        out[0] = st.kind == ROW_NAN ? (T)__builtin_nan("") : (T)st.m;
        out[1] = st.kind == ROW_FINITE ? (T)log1p(st.arg) : st.kind == ROW_EMPTY ? (T)0 : (T)__builtin_nan("");
        return;
    }
    for (ptrdiff_t c = 0; c < n; c++) {
        T v = x[c * stride], o;
        switch (st.kind) {
        case ROW_FINITE:
            o = op == OP_SOFTMAX ? (T)exp((double)(v - (T)st.m)) * (T)(1.0 / st.s)
                                 : (v - (T)st.m) - (T)log1p(st.arg);
            break;
        case ROW_POSINF:
            o = v == inf ? (op == OP_SOFTMAX ? (T)1 / (T)st.arg : -(T)log1p(st.arg - 1.0))
                         : (op == OP_SOFTMAX ? (T)0 : -inf);
            break;
        case ROW_EMPTY: o = op == OP_SOFTMAX ? (T)0 : -inf; break;
        default: o = (T)__builtin_nan("");
        }
        out[c * ostride] = o;
    }
}

/* A strip of up to STRIP columns is read row by row (contiguous runs of STRIP entries, not a walk
 * down each column that would touch a new page per step), STRIP_ROWS rows at a time: the running
 * maximum of each column only grows, and when a block of rows raises it the column's sum so far is
 * rescaled by exp(M_old - M_new) (the online log-sum-exp of the row kernels, lane by lane).
 * The rows are taken in chunks of COL_CHUNK, each accumulated apart and merged in order (the same
 * rescaling): chunks of a strip can run on different threads (a few wide columns, as (65536, 10)
 * over axis 0), and the result is the same for any number of threads. softmax / log_softmax read
 * the strip once more for the output. */
#define STRIP (STRIP_VECS * W) /* 8 KiB of each row of the strip: long contiguous runs for the prefetcher */
#define STRIP_ROWS 32

typedef struct {
    VT M[STRIP / W], K[STRIP / W];
    vd R0[STRIP / W], R1[STRIP / W];
    VI nan[STRIP / W];
} TX(colacc);

static void TX(colacc_init)(TX(colacc) *a, ptrdiff_t nv) {
    for (ptrdiff_t v = 0; v < nv; v++) {
        a->M[v] = TX(splat)(-(T)__builtin_inf());
        a->K[v] = TX(splat)((T)0);
        a->R0[v] = a->R1[v] = (vd){0};
        a->nan[v] = (VI){0};
    }
}

/* the maximum of vector v moves to nm: lanes with a finite old maximum below nm rescale their sum,
 * and their old maximum entries join the rest */
ALWAYS_INLINE void TX(colacc_raise)(TX(colacc) *a, ptrdiff_t v, VT nm) {
    const VT one = TX(splat)((T)1), zero = TX(splat)((T)0);
    VI up = (nm > a->M[v]) & (a->M[v] != TX(splat)(-(T)__builtin_inf()));
    if (TX(any)(up)) {
        VT sc = TX(exp_neg)(TX(sel)(up, a->M[v] - nm, zero)); /* (M_old - M_new) <= 0 */
        VT kk = a->K[v];
        vd s0 = {0}, s1 = {0};
        TX(acc)(&s0, &s1, TX(sel)(up, sc, one)); /* the factors, widened */
        vd k0 = {0}, k1 = {0};
        TX(acc)(&k0, &k1, TX(sel)(up, kk, zero));
        a->R0[v] = (a->R0[v] + k0) * s0;
        a->R1[v] = (a->R1[v] + k1) * s1;
        a->K[v] = TX(sel)(up, zero, kk);
    }
    a->M[v] = nm;
}

#define LDV(p, v) ((v) * W + W <= nl ? TX(ld)((p) + (v) * W) : TX(ldp)((p) + (v) * W, nl - (v) * W, (T)0))

/* rows [c0, c1) of a strip into a */
static void TX(colacc_rows)(TX(colacc) *a, const T *x, ptrdiff_t B, ptrdiff_t c0, ptrdiff_t c1, ptrdiff_t nl) {
    const T inf = (T)__builtin_inf();
    const ptrdiff_t nv = (nl + W - 1) / W;
    const VT one = TX(splat)((T)1), zero = TX(splat)((T)0);
    VT bm[STRIP / W];
    for (ptrdiff_t b0 = c0; b0 < c1; b0 += STRIP_ROWS) {
        ptrdiff_t b1 = b0 + STRIP_ROWS < c1 ? b0 + STRIP_ROWS : c1;
        for (ptrdiff_t v = 0; v < nv; v++) bm[v] = TX(splat)(-inf);
        for (ptrdiff_t c = b0; c < b1; c++) {
            const T *xr = x + c * B;
            for (ptrdiff_t v = 0; v < nv; v++) {
                VT q = LDV(xr, v);
                a->nan[v] |= q != q;
                bm[v] = TX(vmax)(bm[v], q);
            }
        }
        for (ptrdiff_t v = 0; v < nv; v++) TX(colacc_raise)(a, v, TX(vmax)(a->M[v], bm[v]));
        for (ptrdiff_t c = b0; c < b1; c++) {
            const T *xr = x + c * B;
            for (ptrdiff_t v = 0; v < nv; v++) {
                VT q = LDV(xr, v);
                VI live = a->M[v] != TX(splat)(-inf); /* columns all -inf so far add nothing (and no NaN) */
                VT e = TX(sel)(live, TX(exp_neg)(q - a->M[v]), zero);
                VT k = (VT)((VI)(q == a->M[v]) & live & (VI)one);
                a->K[v] += k;
                TX(acc)(&a->R0[v], &a->R1[v], e - k);
            }
        }
    }
}

/* b (later rows) merged into a */
static void TX(colacc_merge)(TX(colacc) *a, TX(colacc) *b, ptrdiff_t nv) {
    for (ptrdiff_t v = 0; v < nv; v++) {
        VT nm = TX(vmax)(a->M[v], b->M[v]);
        TX(colacc_raise)(a, v, nm);
        TX(colacc_raise)(b, v, nm);
        a->K[v] += b->K[v];
        a->R0[v] += b->R0[v];
        a->R1[v] += b->R1[v];
        a->nan[v] |= b->nan[v];
    }
}

/* The strip's results from its statistics: special columns (NaN, +inf, all -inf) by the exact
 * scalar path; logsumexp and the (m, L) pairs written; for softmax / log_softmax the per-column
 * maximum mx (NaN: column already written) and factor q (1/s, or log1p(rest + k - 1)). */
static void TX(colacc_finish)(int op, TX(colacc) *a, const T *x, ptrdiff_t B, ptrdiff_t C, ptrdiff_t nl, T *out,
                              uint8_t *flags, T *mx, T *q) {
    const T inf = (T)__builtin_inf();
    const ptrdiff_t nv = (nl + W - 1) / W;
    double rest[STRIP], cnt[STRIP];
    T kk[STRIP];
    for (ptrdiff_t v = 0; v < nv; v++) {
        TX(st)(mx + v * W, a->M[v]);
        TX(st)(kk + v * W, a->K[v]);
        memcpy(rest + v * W, &a->R0[v], 4 * sizeof(double));
        if (W == 8) memcpy(rest + v * W + 4, &a->R1[v], 4 * sizeof(double));
        T nf[W];
        TX(st)(nf, (VT)a->nan[v]);
        for (ptrdiff_t l = 0; l < W && v * W + l < nl; l++) {
            cnt[v * W + l] = (double)kk[v * W + l];
            T mv = mx[v * W + l];
            if (nf[l] != (T)0 || mv == inf || mv == -inf) { /* the exact scalar path, this column */
                TX(col_scalar)(op, x + v * W + l, B, C, out + (op == OP_LSE_PARTS ? 2 : 1) * (v * W + l), B,
                               flags ? flags + v * W + l : NULL);
                mx[v * W + l] = (T)__builtin_nan(""); /* marks the column as done */
            } else if (flags) {
                flags[v * W + l] = 0;
            }
        }
    }
    if (op == OP_LSE) {
        for (ptrdiff_t l = 0; l < nl; l++)
            if (mx[l] == mx[l]) out[l] = (T)((double)mx[l] + log1p(rest[l] + (cnt[l] - 1.0)));
        return;
    }
    if (op == OP_LSE_PARTS) { /* pairs (m, log1p(rest + k - 1)): the losses' form, as rows() gives */
        for (ptrdiff_t l = 0; l < nl; l++)
            if (mx[l] == mx[l]) {
                out[2 * l] = mx[l];
                out[2 * l + 1] = (T)log1p(rest[l] + (cnt[l] - 1.0));
            }
        return;
    }
    for (ptrdiff_t l = 0; l < nl; l++)
        q[l] = mx[l] != mx[l] ? (T)0
               : op == OP_SOFTMAX ? (T)(1.0 / (rest[l] + cnt[l])) : (T)log1p(rest[l] + (cnt[l] - 1.0));
    for (ptrdiff_t l = nl; l < STRIP; l++) q[l] = (T)0, mx[l] = (T)0;
}

/* softmax / log_softmax output of rows [c0, c1) of a strip */
static void TX(col_out_rows)(int op, const T *x, ptrdiff_t B, ptrdiff_t c0, ptrdiff_t c1, ptrdiff_t nl, T *out,
                             const T *mx, const T *q, int nt) {
    const ptrdiff_t nv = (nl + W - 1) / W;
    for (ptrdiff_t c = c0; c < c1; c++) {
        const T *xr = x + c * B;
        T *orow = out + c * B;
        const int ntr = nt && ((uintptr_t)orow & 31) == 0; /* streaming stores: a large output */
        for (ptrdiff_t v = 0; v < nv; v++) {
            VT a = LDV(xr, v), m = TX(ld)(mx + v * W), qv = TX(ld)(q + v * W);
            VT o = op == OP_SOFTMAX ? TX(exp_neg)(a - m) * qv : (a - m) - qv;
            VI done = m != m; /* special columns: already written */
            T ob[W];
            if (!TX(any)(done) && v * W + W <= nl) {
                if (ntr)
                    TX(stnt)(orow + v * W, o);
                else
                    TX(st)(orow + v * W, o);
                continue;
            }
            TX(st)(ob, o);
            T dn[W];
            TX(st)(dn, (VT)done);
            for (ptrdiff_t l = 0; l < W && v * W + l < nl; l++)
                if (dn[l] == (T)0) orow[v * W + l] = ob[l];
        }
    }
}
#undef LDV

static void TX(col_strip)(int op, const T *x, ptrdiff_t B, ptrdiff_t C, ptrdiff_t nl, T *out, uint8_t *flags,
                          int nt) {
    const ptrdiff_t nv = (nl + W - 1) / W;
    TX(colacc) a, b;
    TX(colacc_init)(&a, nv);
    TX(colacc_rows)(&a, x, B, 0, C < COL_CHUNK ? C : COL_CHUNK, nl);
    for (ptrdiff_t c0 = COL_CHUNK; c0 < C; c0 += COL_CHUNK) {
        TX(colacc_init)(&b, nv);
        TX(colacc_rows)(&b, x, B, c0, c0 + COL_CHUNK < C ? c0 + COL_CHUNK : C, nl);
        TX(colacc_merge)(&a, &b, nv);
    }
    T mx[STRIP], q[STRIP];
    TX(colacc_finish)(op, &a, x, B, C, nl, out, flags, mx, q);
    if (op == OP_SOFTMAX || op == OP_LOG_SOFTMAX) TX(col_out_rows)(op, x, B, 0, C, nl, out, mx, q, nt);
}

/* work items [j0, j1) of an (A, C, B) array: item j is column block j % nb of slice j / nb */
static void TX(cols)(int op, const T *x, T *out, ptrdiff_t A, ptrdiff_t C, ptrdiff_t B, ptrdiff_t j0, ptrdiff_t j1,
                     uint8_t *flags) {
    (void)A;
    const int nt = op & COL_NT; /* streaming stores for the softmax / log_softmax output */
    op &= ~COL_NT;
    /* always the strip kernel: a column's result depends on nothing but the column (not on B) */
    const ptrdiff_t LB = STRIP, nb = (B + LB - 1) / LB;
    for (ptrdiff_t j = j0; j < j1; j++) {
        ptrdiff_t s = j / nb, b0 = (j % nb) * LB, nl = B - b0 < LB ? B - b0 : LB;
        const T *xs = x + s * C * B + b0;
        T *os = op == OP_LSE ? out + s * B + b0 : op == OP_LSE_PARTS ? out + 2 * (s * B + b0) : out + s * C * B + b0;
        TX(col_strip)(op, xs, B, C, nl, os, flags ? flags + s * B + b0 : NULL, nt);
    }
#if defined(__x86_64__) || defined(__i386__)
    if (nt) _mm_sfence(); /* streaming stores are weakly ordered: publish them before returning */
#endif
}

/* Few strips (fewer than threads) over many rows: each strip's chunks of rows run in parallel, are
 * merged in order (the same result as col_strip), and the output pass runs in parallel by rows. */
typedef struct {
    int op;
    const T *x;
    T *out;
    ptrdiff_t B, C, nl;
    TX(colacc) *acc;
    const T *mx, *q;
    int nt;
} TX(splitctx);

static void TX(split_stats)(void *p, ptrdiff_t k0, ptrdiff_t k1) {
    TX(splitctx) *c = (TX(splitctx) *)p;
    const ptrdiff_t nv = (c->nl + W - 1) / W;
    for (ptrdiff_t k = k0; k < k1; k++) {
        ptrdiff_t r0 = k * COL_CHUNK, r1 = r0 + COL_CHUNK < c->C ? r0 + COL_CHUNK : c->C;
        TX(colacc_init)(&c->acc[k], nv);
        TX(colacc_rows)(&c->acc[k], c->x, c->B, r0, r1, c->nl);
    }
}

static void TX(split_out)(void *p, ptrdiff_t r0, ptrdiff_t r1) {
    TX(splitctx) *c = (TX(splitctx) *)p;
    TX(col_out_rows)(c->op, c->x, c->B, r0, r1, c->nl, c->out, c->mx, c->q, c->nt);
#if defined(__x86_64__) || defined(__i386__)
    if (c->nt) _mm_sfence();
#endif
}

/* returns 0 (nothing done) if the scratch cannot be allocated: the caller takes the plain path */
static int TX(cols_split)(int op, const T *x, T *out, ptrdiff_t A, ptrdiff_t C, ptrdiff_t B, uint8_t *flags,
                          int nth) {
    const int nt = op & COL_NT;
    op &= ~COL_NT;
    const ptrdiff_t LB = STRIP, nb = (B + LB - 1) / LB, nch = (C + COL_CHUNK - 1) / COL_CHUNK;
    TX(colacc) *acc = (TX(colacc) *)aligned_alloc(64, (size_t)nch * sizeof(TX(colacc)));
    if (!acc) return 0;
    for (ptrdiff_t j = 0; j < A * nb; j++) {
        ptrdiff_t s = j / nb, b0 = (j % nb) * LB, nl = B - b0 < LB ? B - b0 : LB, nv = (nl + W - 1) / W;
        const T *xs = x + s * C * B + b0;
        T *os = op == OP_LSE ? out + s * B + b0 : op == OP_LSE_PARTS ? out + 2 * (s * B + b0) : out + s * C * B + b0;
        T mx[STRIP], q[STRIP];
        TX(splitctx) c = {op, xs, os, B, C, nl, acc, mx, q, nt};
        parallel(TX(split_stats), &c, nch, nth, 1);
        for (ptrdiff_t k = 1; k < nch; k++) TX(colacc_merge)(&acc[0], &acc[k], nv);
        TX(colacc_finish)(op, &acc[0], xs, B, C, nl, os, flags ? flags + s * B + b0 : NULL, mx, q);
        if (op == OP_SOFTMAX || op == OP_LOG_SOFTMAX)
            parallel(TX(split_out), &c, C, nth, (65536 + nl - 1) / nl);
    }
    free(acc);
    return 1;
}
