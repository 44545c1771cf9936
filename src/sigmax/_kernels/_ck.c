/* sigmax._kernels._ck: fast CPU kernels for the core functions (float32/float64, contiguous).
 *
 * Built at install time by setup.py as an optional extension: without a C compiler sigmax installs
 * and runs the generic Array-API code. Python (sigmax/_kernels/__init__.py) validates every argument
 * (dtype, contiguity, sizes) before calling in here; this module only checks that buffers are big
 * enough. Arrays are passed as buffer-protocol objects (NumPy) or as integer addresses (PyTorch
 * data_ptr()). The GIL is released while computing; work is split over threads with pthreads.
 *
 * The kernels are compiled twice on x86-64 (AVX2+FMA, and the SSE2 baseline) and the best one for
 * the running CPU is chosen at import. No -ffast-math: IEEE infinities, NaN and subnormals hold.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "vec.h"

#define PASTE_(a, b) a##b
#define PASTE(a, b) PASTE_(a, b)
#define PASTE3_(a, b, c) a##b##c
#define PASTE3(a, b, c) PASTE3_(a, b, c)

enum { EW_SIGMOID = 0, EW_LOG_SIGMOID = 1, EW_SOFTPLUS = 2 };
enum { OP_LSE = 0, OP_SOFTMAX = 1, OP_LOG_SOFTMAX = 2, OP_LSE_PARTS = 3 }; /* LSE_PARTS: rows only */
enum { BCE_NONE = 0, BCE_SUM = 1, BCE_GRAD = 2 };
enum { ROW_FINITE = 0, ROW_EMPTY = 1, ROW_POSINF = 2, ROW_NAN = 3 };
#define COL_NT 16 /* or-ed into the op of the column kernels: stream the output past the cache */

typedef struct {
    double m;   /* the row maximum */
    double arg; /* rest + (k - 1): log-sum-exp = m + log1p(arg); k for +inf rows */
    double s;   /* rest + k: the sum of exp(x - m) */
    int kind;   /* ROW_* */
} rowstat;

/* the thread pool (below) as the split column kernels call it */
typedef void (*range_fn)(void *ctx, ptrdiff_t i0, ptrdiff_t i1);
static void parallel(range_fn fn, void *ctx, ptrdiff_t n, int nth, ptrdiff_t grain);

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SIGMAX_AVX2 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define VSUF _avx2
#include "kern.h"
#undef VSUF
#pragma GCC pop_options
#endif

#define VSUF _base
#include "kern.h"
#undef VSUF

/* ------------------------------------------------------------------------------------------------
 * the variant table
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    void (*ew32)(int, const float *, float *, ptrdiff_t, int);
    void (*ew64)(int, const double *, double *, ptrdiff_t, int);
    void (*rows32)(int, const float *, float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, uint8_t *, int);
    void (*rows64)(int, const double *, double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, uint8_t *, int);
    void (*bwd32)(int, const float *, const float *, const float *, const float *, float *, ptrdiff_t, ptrdiff_t,
                  ptrdiff_t, const uint8_t *, const int64_t *);
    void (*bwd64)(int, const double *, const double *, const double *, const double *, double *, ptrdiff_t,
                  ptrdiff_t, ptrdiff_t, const uint8_t *, const int64_t *);
    void (*cols32)(int, const float *, float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, uint8_t *);
    void (*cols64)(int, const double *, double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, uint8_t *);
    double (*bce32)(int, const float *, const float *, float *, ptrdiff_t, double);
    double (*bce64)(int, const double *, const double *, double *, ptrdiff_t, double);
    ptrdiff_t (*ce32)(const float *, const int64_t *, int64_t, float *, float *, float *, ptrdiff_t, ptrdiff_t,
                      ptrdiff_t, uint8_t *);
    ptrdiff_t (*ce64)(const double *, const int64_t *, int64_t, double *, double *, double *, ptrdiff_t, ptrdiff_t,
                      ptrdiff_t, uint8_t *);
    void (*clb32)(const float *, const float *, const float *, float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t);
    void (*clb64)(const double *, const double *, const double *, double *, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                  ptrdiff_t);
    int (*split32)(int, const float *, float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, uint8_t *, int);
    int (*split64)(int, const double *, double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, uint8_t *, int);
    void (*ceg32)(const float *, const int64_t *, float *, float *, float *, const float *, uint8_t *, ptrdiff_t,
                  ptrdiff_t, ptrdiff_t);
    void (*ceg64)(const double *, const int64_t *, double *, double *, double *, const double *, uint8_t *,
                  ptrdiff_t, ptrdiff_t, ptrdiff_t);
} variant;

#define VARIANT(sfx)                                                                                     \
    {#sfx + 1,           PASTE(elementwise_f32, sfx), PASTE(elementwise_f64, sfx), PASTE(rows_f32, sfx),   \
     PASTE(rows_f64, sfx), PASTE(rows_bwd_f32, sfx),  PASTE(rows_bwd_f64, sfx),    PASTE(cols_f32, sfx),   \
     PASTE(cols_f64, sfx), PASTE(bce_f32, sfx),       PASTE(bce_f64, sfx),          PASTE(ce_rows_f32, sfx), \
     PASTE(ce_rows_f64, sfx), PASTE(cols_lse_bwd_f32, sfx), PASTE(cols_lse_bwd_f64, sfx),                \
     PASTE(cols_split_f32, sfx), PASTE(cols_split_f64, sfx), PASTE(ce_grad_rows_f32, sfx),                 \
     PASTE(ce_grad_rows_f64, sfx)}

static const variant v_base = VARIANT(_base);
#ifdef SIGMAX_AVX2
static const variant v_avx2 = VARIANT(_avx2);
#endif
static const variant *K = &v_base;

#include "pool.h"  /* threads: [0, n) in chunks of whole grains, a pool of workers */
#include "cache.h" /* large outputs: huge pages, streaming stores, the output cache */

/* ------------------------------------------------------------------------------------------------
 * arguments
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    void *ptr;
    Py_buffer view;
    int has_view;
} ptrarg;

/* o: an int address, None (NULL, when allowed) or a C-contiguous buffer of at least nbytes */
static int get_ptr(PyObject *o, Py_ssize_t nbytes, int writable, int allow_none, ptrarg *pa) {
    pa->has_view = 0;
    pa->ptr = NULL;
    if (o == Py_None) {
        if (allow_none) return 0;
        PyErr_SetString(PyExc_TypeError, "sigmax._kernels: missing array");
        return -1;
    }
    if (PyLong_Check(o)) {
        pa->ptr = PyLong_AsVoidPtr(o);
        if (pa->ptr == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "sigmax._kernels: null address");
            return -1;
        }
        return 0;
    }
    if (PyObject_GetBuffer(o, &pa->view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0) return -1;
    pa->has_view = 1;
    if (pa->view.len < nbytes) {
        PyBuffer_Release(&pa->view);
        pa->has_view = 0;
        PyErr_SetString(PyExc_ValueError, "sigmax._kernels: buffer smaller than the given shape");
        return -1;
    }
    pa->ptr = pa->view.buf;
    return 0;
}

static void release(ptrarg *pa) {
    if (pa->has_view) PyBuffer_Release(&pa->view);
    pa->has_view = 0;
}

static int itemsize_of(int dt) {
    if (dt == 0) return 4;
    if (dt == 1) return 8;
    PyErr_SetString(PyExc_ValueError, "sigmax._kernels: dtype code must be 0 (float32) or 1 (float64)");
    return 0;
}

/* ------------------------------------------------------------------------------------------------
 * elementwise(op, dt, x, out, n, nthreads)
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    int op, dt, nt;
    const void *x;
    void *out;
} ew_ctx;

static void ew_range(void *p, ptrdiff_t i0, ptrdiff_t i1) {
    ew_ctx *c = (ew_ctx *)p;
    if (c->dt == 0)
        K->ew32(c->op, (const float *)c->x + i0, (float *)c->out + i0, i1 - i0, c->nt);
    else
        K->ew64(c->op, (const double *)c->x + i0, (double *)c->out + i0, i1 - i0, c->nt);
    stream_fence(c->nt);
}

static PyObject *py_elementwise(PyObject *self, PyObject *args) {
    int op, dt, nth;
    PyObject *xo, *oo;
    Py_ssize_t n;
    (void)self;
    if (!PyArg_ParseTuple(args, "iiOOni", &op, &dt, &xo, &oo, &n, &nth)) return NULL;
    int isz = itemsize_of(dt);
    if (!isz) return NULL;
    if (op < 0 || op > 2 || n < 0) {
        PyErr_SetString(PyExc_ValueError, "sigmax._kernels.elementwise: bad op or size");
        return NULL;
    }
    ptrarg x, o;
    if (get_ptr(xo, n * isz, 0, 0, &x) < 0) return NULL;
    if (get_ptr(oo, n * isz, 1, 0, &o) < 0) {
        release(&x);
        return NULL;
    }
    ew_ctx c = {op, dt, stream_output(n * isz), x.ptr, o.ptr};
    if (big_output(n * isz)) advise_huge(o.ptr, n * isz);
    Py_BEGIN_ALLOW_THREADS parallel(ew_range, &c, n, nth, 4096);
    Py_END_ALLOW_THREADS release(&x);
    release(&o);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------------------------
 * rows(op, dt, x, out, N, V, nthreads, flags) and cols(op, dt, x, out, A, C, B, nthreads, flags)
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    int op, dt, nt;
    const void *x;
    void *out;
    ptrdiff_t A, C, B; /* rows: N = A, V = C */
    uint8_t *flags;
} red_ctx;

static void rows_range(void *p, ptrdiff_t r0, ptrdiff_t r1) {
    red_ctx *c = (red_ctx *)p;
    if (c->dt == 0)
        K->rows32(c->op, (const float *)c->x, (float *)c->out, r0, r1, c->C, c->flags, c->nt);
    else
        K->rows64(c->op, (const double *)c->x, (double *)c->out, r0, r1, c->C, c->flags, c->nt);
    stream_fence(c->nt);
}

static void cols_range(void *p, ptrdiff_t j0, ptrdiff_t j1) {
    red_ctx *c = (red_ctx *)p;
    if (c->dt == 0)
        K->cols32(c->op, (const float *)c->x, (float *)c->out, c->A, c->C, c->B, j0, j1, c->flags);
    else
        K->cols64(c->op, (const double *)c->x, (double *)c->out, c->A, c->C, c->B, j0, j1, c->flags);
}

static PyObject *reduce_common(PyObject *args, int columns) {
    int op, dt, nth;
    PyObject *xo, *oo, *fo;
    Py_ssize_t A, C, B = 1;
    if (columns) {
        if (!PyArg_ParseTuple(args, "iiOOnnniO", &op, &dt, &xo, &oo, &A, &C, &B, &nth, &fo)) return NULL;
    } else {
        if (!PyArg_ParseTuple(args, "iiOOnniO", &op, &dt, &xo, &oo, &A, &C, &nth, &fo)) return NULL;
    }
    int isz = itemsize_of(dt);
    if (!isz) return NULL;
    if (op < 0 || op > 3 || A < 0 || C < 1 || B < 1) {
        PyErr_SetString(PyExc_ValueError, "sigmax._kernels: bad op or shape");
        return NULL;
    }
    Py_ssize_t nin = A * C * B, nout = op == OP_LSE ? A * B : op == OP_LSE_PARTS ? 2 * A * B : nin;
    ptrarg x, o, f;
    if (get_ptr(xo, nin * isz, 0, 0, &x) < 0) return NULL;
    if (get_ptr(oo, nout * isz, 1, 0, &o) < 0) {
        release(&x);
        return NULL;
    }
    if (get_ptr(fo, A * B, 1, 1, &f) < 0) {
        release(&x);
        release(&o);
        return NULL;
    }
    red_ctx c = {op, dt, !columns && stream_output(nout * isz), x.ptr, o.ptr, A, C, B, (uint8_t *)f.ptr};
    if (columns && (op == OP_SOFTMAX || op == OP_LOG_SOFTMAX) && stream_output(nout * isz)) c.op |= COL_NT;
    if (big_output(nout * isz)) advise_huge(o.ptr, nout * isz);
    Py_BEGIN_ALLOW_THREADS if (columns) {
        const ptrdiff_t W = dt == 0 ? 8 : 4, LB = STRIP_VECS * W, nb = (B + LB - 1) / LB; /* a strip */
        ptrdiff_t items = A * nb, per = C * LB;
        /* fewer strips than threads, each of several chunks of rows: the chunks in parallel */
        int split = items < nth && C > COL_CHUNK;
        if (split)
            split = dt == 0 ? K->split32(c.op, (const float *)c.x, (float *)c.out, A, C, B, c.flags, nth)
                            : K->split64(c.op, (const double *)c.x, (double *)c.out, A, C, B, c.flags, nth);
        if (!split) parallel(cols_range, &c, items, nth, per >= 65536 ? 1 : (65536 + per - 1) / per);
    }
    else {
        parallel(rows_range, &c, A, nth, C >= 65536 ? 1 : (65536 + C - 1) / C);
    }
    Py_END_ALLOW_THREADS release(&x);
    release(&o);
    release(&f);
    Py_RETURN_NONE;
}

static PyObject *py_rows(PyObject *self, PyObject *args) {
    (void)self;
    return reduce_common(args, 0);
}

static PyObject *py_cols(PyObject *self, PyObject *args) {
    (void)self;
    return reduce_common(args, 1);
}

/* ------------------------------------------------------------------------------------------------
 * rows_bwd(op, dt, a, g, lse, gr, out, N, V, nthreads, flags[, targets])
 * targets (int64, N; op lse only): out[r, targets[r]] -= gr[r], the cross-entropy gradient
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    int op, dt;
    const void *a, *g, *lse, *gr;
    void *out;
    ptrdiff_t V;
    const uint8_t *flags;
    const int64_t *tg;
} bwd_ctx;

static void bwd_range(void *p, ptrdiff_t r0, ptrdiff_t r1) {
    bwd_ctx *c = (bwd_ctx *)p;
    if (c->dt == 0)
        K->bwd32(c->op, (const float *)c->a, (const float *)c->g, (const float *)c->lse, (const float *)c->gr,
                 (float *)c->out, r0, r1, c->V, c->flags, c->tg);
    else
        K->bwd64(c->op, (const double *)c->a, (const double *)c->g, (const double *)c->lse, (const double *)c->gr,
                 (double *)c->out, r0, r1, c->V, c->flags, c->tg);
}

static PyObject *py_rows_bwd(PyObject *self, PyObject *args) {
    int op, dt, nth;
    PyObject *ao, *go, *lo, *gro, *oo, *fo, *to = Py_None;
    Py_ssize_t N, V;
    (void)self;
    if (!PyArg_ParseTuple(args, "iiOOOOOnniO|O", &op, &dt, &ao, &go, &lo, &gro, &oo, &N, &V, &nth, &fo, &to))
        return NULL;
    int isz = itemsize_of(dt);
    if (!isz) return NULL;
    if (op < 0 || op > 2 || N < 0 || V < 1) {
        PyErr_SetString(PyExc_ValueError, "sigmax._kernels.rows_bwd: bad op or shape");
        return NULL;
    }
    int lse = op == OP_LSE;
    if (to != Py_None && op != OP_LSE) {
        PyErr_SetString(PyExc_ValueError, "sigmax._kernels.rows_bwd: targets go with op lse only");
        return NULL;
    }
    ptrarg a, g, l, gr, o, f, t;
    int ok = get_ptr(ao, N * V * isz, 0, 0, &a) == 0;
    if (ok) ok = get_ptr(go, N * V * isz, 0, lse, &g) == 0; else g.has_view = 0;
    if (ok) ok = get_ptr(lo, N * isz, 0, !lse, &l) == 0; else l.has_view = 0;
    if (ok) ok = get_ptr(gro, N * isz, 0, !lse, &gr) == 0; else gr.has_view = 0;
    if (ok) ok = get_ptr(oo, N * V * isz, 1, 0, &o) == 0; else o.has_view = 0;
    if (ok) ok = get_ptr(fo, N, 0, 1, &f) == 0; else f.has_view = 0;
    if (ok) ok = get_ptr(to, N * 8, 0, 1, &t) == 0; else t.has_view = 0;
    if (ok) {
        if (t.ptr) { /* the kernel writes at the targets: they must lie in the row */
            const int64_t *tp = (const int64_t *)t.ptr;
            for (Py_ssize_t r = 0; r < N && ok; r++) ok = tp[r] >= 0 && tp[r] < V;
            if (!ok) PyErr_SetString(PyExc_ValueError, "sigmax._kernels.rows_bwd: target out of range");
        }
    }
    if (ok) {
        bwd_ctx c = {op, dt, a.ptr, g.ptr, l.ptr, gr.ptr, o.ptr, V, (const uint8_t *)f.ptr, (const int64_t *)t.ptr};
        Py_BEGIN_ALLOW_THREADS parallel(bwd_range, &c, N, nth, V >= 65536 ? 1 : (65536 + V - 1) / V);
        Py_END_ALLOW_THREADS
    }
    release(&a);
    release(&g);
    release(&l);
    release(&gr);
    release(&o);
    release(&f);
    release(&t);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------------------------
 * cols_lse_bwd(dt, x, lse, g, out, A, C, B, nthreads): out = g * exp(x - lse) over the middle axis
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    int dt;
    const void *x, *lse, *g;
    void *out;
    ptrdiff_t C, B;
} clb_ctx;

static void clb_range(void *p, ptrdiff_t j0, ptrdiff_t j1) {
    clb_ctx *c = (clb_ctx *)p;
    if (c->dt == 0)
        K->clb32((const float *)c->x, (const float *)c->lse, (const float *)c->g, (float *)c->out, j0, j1, c->C, c->B);
    else
        K->clb64((const double *)c->x, (const double *)c->lse, (const double *)c->g, (double *)c->out, j0, j1, c->C,
                 c->B);
}

static PyObject *py_cols_lse_bwd(PyObject *self, PyObject *args) {
    int dt, nth;
    PyObject *xo, *lo, *go, *oo;
    Py_ssize_t A, C, B;
    (void)self;
    if (!PyArg_ParseTuple(args, "iOOOOnnni", &dt, &xo, &lo, &go, &oo, &A, &C, &B, &nth)) return NULL;
    int isz = itemsize_of(dt);
    if (!isz) return NULL;
    if (A < 0 || C < 1 || B < 1) {
        PyErr_SetString(PyExc_ValueError, "sigmax._kernels.cols_lse_bwd: bad shape");
        return NULL;
    }
    ptrarg x, l, g, o;
    int ok = get_ptr(xo, A * C * B * isz, 0, 0, &x) == 0;
    if (ok) ok = get_ptr(lo, A * B * isz, 0, 0, &l) == 0; else l.has_view = 0;
    if (ok) ok = get_ptr(go, A * B * isz, 0, 0, &g) == 0; else g.has_view = 0;
    if (ok) ok = get_ptr(oo, A * C * B * isz, 1, 0, &o) == 0; else o.has_view = 0;
    if (ok) {
        clb_ctx c = {dt, x.ptr, l.ptr, g.ptr, o.ptr, C, B};
        if (big_output(A * C * B * isz)) advise_huge(o.ptr, A * C * B * isz);
        Py_BEGIN_ALLOW_THREADS parallel(clb_range, &c, A * C, nth, B >= 65536 ? 1 : (65536 + B - 1) / B);
        Py_END_ALLOW_THREADS
    }
    release(&x);
    release(&l);
    release(&g);
    release(&o);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------------------------
 * bce(op, dt, x, y, out, n, scale, nthreads) -> float (the sum for BCE_SUM, else 0.0)
 * ---------------------------------------------------------------------------------------------- */

#define BCE_PARTS 64
typedef struct {
    int op, dt, nt;
    const void *x, *y;
    void *out;
    double scale;
    ptrdiff_t grain;
    double part[BCE_PARTS]; /* one partial sum per grain-sized chunk: the same total for any thread count */
} bce_ctx;

static void bce_range(void *p, ptrdiff_t i0, ptrdiff_t i1) {
    bce_ctx *c = (bce_ctx *)p;
    for (ptrdiff_t a = i0; a < i1; a += c->grain) {
        ptrdiff_t b = a + c->grain < i1 ? a + c->grain : i1;
        double s;
        if (c->dt == 0)
            s = K->bce32(c->op, (const float *)c->x + a, (const float *)c->y + a,
                         c->out ? (float *)c->out + a : NULL, b - a, c->scale);
        else
            s = K->bce64(c->op, (const double *)c->x + a, (const double *)c->y + a,
                         c->out ? (double *)c->out + a : NULL, b - a, c->scale);
        c->part[a / c->grain] = s;
    }
}

static PyObject *py_bce(PyObject *self, PyObject *args) {
    int op, dt, nth;
    PyObject *xo, *yo, *oo;
    Py_ssize_t n;
    double scale;
    (void)self;
    if (!PyArg_ParseTuple(args, "iiOOOndi", &op, &dt, &xo, &yo, &oo, &n, &scale, &nth)) return NULL;
    int isz = itemsize_of(dt);
    if (!isz) return NULL;
    if (op < 0 || op > 2 || n < 0) {
        PyErr_SetString(PyExc_ValueError, "sigmax._kernels.bce: bad op or size");
        return NULL;
    }
    ptrarg x, y, o;
    int ok = get_ptr(xo, n * isz, 0, 0, &x) == 0;
    if (ok) ok = get_ptr(yo, n * isz, 0, 0, &y) == 0; else y.has_view = 0;
    if (ok) ok = get_ptr(oo, n * isz, 1, op == BCE_SUM, &o) == 0; else o.has_view = 0;
    double total = 0.0;
    if (ok) {
        bce_ctx c;
        c.op = op, c.dt = dt, c.nt = 0, c.x = x.ptr, c.y = y.ptr, c.out = o.ptr, c.scale = scale;
        c.grain = (n + BCE_PARTS - 1) / BCE_PARTS;
        if (c.grain < 4096) c.grain = 4096;
        for (int k = 0; k < BCE_PARTS; k++) c.part[k] = 0.0;
        if (op != BCE_SUM && big_output(n * isz)) advise_huge(o.ptr, n * isz);
        Py_BEGIN_ALLOW_THREADS parallel(bce_range, &c, n, nth, c.grain);
        Py_END_ALLOW_THREADS
        for (int k = 0; k < BCE_PARTS; k++) total += c.part[k];
    }
    release(&x);
    release(&y);
    release(&o);
    if (!ok) return NULL;
    return PyFloat_FromDouble(total);
}

/* ------------------------------------------------------------------------------------------------
 * ce(dt, x, target, ignore_index, loss, lse, N, V, nthreads, flags) -> (rows counted, sum of the losses)
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    int dt;
    const void *x;
    const int64_t *t;
    int64_t ignore;
    void *loss, *lse;
    ptrdiff_t V;
    uint8_t *flags;
    ptrdiff_t counted, grain;
    pthread_mutex_t lock;
    int failed;
    double part[BCE_PARTS]; /* the loss summed per grain-sized chunk: the same total for any thread count */
} ce_ctx;

static void ce_range(void *p, ptrdiff_t r0, ptrdiff_t r1) {
    ce_ctx *c = (ce_ctx *)p;
    ptrdiff_t isz = c->dt == 0 ? 4 : 8, n = 0;
    void *parts = malloc((size_t)(2 * c->grain + 2) * (size_t)isz);
    if (!parts) {
        pthread_mutex_lock(&c->lock);
        c->failed = 1;
        pthread_mutex_unlock(&c->lock);
        return;
    }
    for (ptrdiff_t a = r0; a < r1; a += c->grain) {
        ptrdiff_t b = a + c->grain < r1 ? a + c->grain : r1;
        double s = 0.0;
        if (c->dt == 0) {
            n += K->ce32((const float *)c->x, c->t, c->ignore, (float *)c->loss, (float *)c->lse, (float *)parts, a, b,
                         c->V, c->flags);
            for (ptrdiff_t r = a; r < b; r++) s += ((const float *)c->loss)[r];
        } else {
            n += K->ce64((const double *)c->x, c->t, c->ignore, (double *)c->loss, (double *)c->lse, (double *)parts,
                         a, b, c->V, c->flags);
            for (ptrdiff_t r = a; r < b; r++) s += ((const double *)c->loss)[r];
        }
        c->part[a / c->grain] = s;
    }
    free(parts);
    pthread_mutex_lock(&c->lock);
    c->counted += n;
    pthread_mutex_unlock(&c->lock);
}

/* the ce kernel over threads: 0 when out of memory (a thread's scratch) */
static int run_ce(int dt, const void *x, const int64_t *t, int64_t ignore, void *loss, void *lse, ptrdiff_t N,
                  ptrdiff_t V, int nth, uint8_t *flags, ptrdiff_t *counted, double *total) {
    ce_ctx c;
    c.counted = 0;
    c.failed = 0;
    c.dt = dt, c.x = x, c.t = t, c.ignore = ignore, c.loss = loss;
    c.lse = lse, c.V = V, c.flags = flags;
    c.grain = (N + BCE_PARTS - 1) / BCE_PARTS;
    ptrdiff_t g = V >= 65536 ? 1 : (65536 + V - 1) / V; /* rows worth a thread */
    if (c.grain < g) c.grain = g;
    if (c.grain < 1) c.grain = 1;
    for (int k = 0; k < BCE_PARTS; k++) c.part[k] = 0.0;
    pthread_mutex_init(&c.lock, NULL);
    parallel(ce_range, &c, N, nth, c.grain);
    pthread_mutex_destroy(&c.lock);
    *total = 0.0;
    for (int k = 0; k < BCE_PARTS; k++) *total += c.part[k];
    *counted = c.counted;
    return !c.failed;
}

static PyObject *py_ce(PyObject *self, PyObject *args) {
    int dt, nth;
    PyObject *xo, *to, *lo, *so, *fo;
    long long ignore;
    Py_ssize_t N, V;
    (void)self;
    if (!PyArg_ParseTuple(args, "iOOLOOnniO", &dt, &xo, &to, &ignore, &lo, &so, &N, &V, &nth, &fo)) return NULL;
    int isz = itemsize_of(dt);
    if (!isz) return NULL;
    if (N < 0 || V < 1) {
        PyErr_SetString(PyExc_ValueError, "sigmax._kernels.ce: bad shape");
        return NULL;
    }
    ptrarg x, t, l, s, f;
    int ok = get_ptr(xo, N * V * isz, 0, 0, &x) == 0;
    if (ok) ok = get_ptr(to, N * 8, 0, 0, &t) == 0; else t.has_view = 0;
    if (ok) ok = get_ptr(lo, N * isz, 1, 0, &l) == 0; else l.has_view = 0;
    if (ok) ok = get_ptr(so, N * isz, 1, 0, &s) == 0; else s.has_view = 0;
    if (ok) ok = get_ptr(fo, N, 1, 0, &f) == 0; else f.has_view = 0;
    ptrdiff_t counted = 0;
    double total = 0.0;
    int failed = 0;
    if (ok) {
        Py_BEGIN_ALLOW_THREADS failed = !run_ce(dt, x.ptr, (const int64_t *)t.ptr, (int64_t)ignore, l.ptr, s.ptr, N, V,
                                                nth, (uint8_t *)f.ptr, &counted, &total);
        Py_END_ALLOW_THREADS
    }
    release(&x);
    release(&t);
    release(&l);
    release(&s);
    release(&f);
    if (!ok) return NULL;
    if (failed) return PyErr_NoMemory();
    return Py_BuildValue("nd", (Py_ssize_t)counted, total);
}

#include "ffi.h" /* the kernels as XLA FFI handlers (JAX on the CPU) */

static PyObject *py_variant(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
    return PyUnicode_FromString(K->name);
}

/* set_variant("base"|"avx2"): for tests that compare the instruction-set variants */
static PyObject *py_set_variant(PyObject *self, PyObject *args) {
    const char *name;
    (void)self;
    if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
    if (strcmp(name, "base") == 0) {
        K = &v_base;
        Py_RETURN_NONE;
    }
#ifdef SIGMAX_AVX2
    if (strcmp(name, "avx2") == 0) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            K = &v_avx2;
            Py_RETURN_NONE;
        }
    }
#endif
    PyErr_Format(PyExc_ValueError, "sigmax._kernels: variant %s is not available on this machine", name);
    return NULL;
}

static PyMethodDef methods[] = {
    {"elementwise", py_elementwise, METH_VARARGS, "elementwise(op, dt, x, out, n, nthreads)"},
    {"rows", py_rows, METH_VARARGS, "rows(op, dt, x, out, N, V, nthreads, flags)"},
    {"cols", py_cols, METH_VARARGS, "cols(op, dt, x, out, A, C, B, nthreads, flags)"},
    {"rows_bwd", py_rows_bwd, METH_VARARGS, "rows_bwd(op, dt, a, g, lse, gr, out, N, V, nthreads, flags[, targets])"},
    {"cols_lse_bwd", py_cols_lse_bwd, METH_VARARGS, "cols_lse_bwd(dt, x, lse, g, out, A, C, B, nthreads)"},
    {"bce", py_bce, METH_VARARGS, "bce(op, dt, x, y, out, n, scale, nthreads) -> sum"},
    {"ce", py_ce, METH_VARARGS, "ce(dt, x, target, ignore_index, loss, lse, N, V, nthreads, flags) -> (counted, sum)"},
    {"ffi_targets", py_ffi_targets, METH_NOARGS, "{name: PyCapsule}: the XLA FFI handlers, for jax.ffi.register_ffi_target"},
    {"ffi_set_threads", py_ffi_set_threads, METH_VARARGS, "ffi_set_threads(n): the threads the FFI handlers use"},
    {"empty", py_empty, METH_VARARGS, "empty(nbytes) -> a writable buffer for one large result (cached memory)"},
    {"set_cache_limit", py_set_cache_limit, METH_VARARGS, "set_cache_limit(nbytes) -> the old limit (0: no cache)"},
    {"cache_info", py_cache_info, METH_NOARGS, "(blocks, bytes) held by the cache"},
    {"variant", py_variant, METH_NOARGS, "the instruction-set variant in use"},
    {"set_variant", py_set_variant, METH_VARARGS, "choose the instruction-set variant (tests)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_ck", "sigmax's fast CPU kernels", -1, methods,
                                       NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__ck(void) {
    init_stream_threshold();
#ifdef SIGMAX_AVX2
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) K = &v_avx2;
#endif
    if (PyType_Ready(&BlockType) < 0) return NULL;
    pthread_atfork(NULL, NULL, cache_after_fork);
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    /* the op codes, exported so that Python never writes them again as numbers */
    static const struct { const char *name; int value; } consts[] = {
        {"EW_SIGMOID", EW_SIGMOID}, {"EW_LOG_SIGMOID", EW_LOG_SIGMOID}, {"EW_SOFTPLUS", EW_SOFTPLUS},
        {"OP_LSE", OP_LSE}, {"OP_SOFTMAX", OP_SOFTMAX}, {"OP_LOG_SOFTMAX", OP_LOG_SOFTMAX},
        {"OP_LSE_PARTS", OP_LSE_PARTS}, {"BCE_NONE", BCE_NONE}, {"BCE_SUM", BCE_SUM}, {"BCE_GRAD", BCE_GRAD},
        {"ROW_FINITE", ROW_FINITE}, {"ROW_EMPTY", ROW_EMPTY}, {"ROW_POSINF", ROW_POSINF}, {"ROW_NAN", ROW_NAN},
        {"COL_NT", COL_NT}};
    for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++) {
        if (PyModule_AddIntConstant(m, consts[i].name, consts[i].value) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}
