/* ffi.h: the kernels as XLA FFI handlers, for JAX arrays on the CPU (included once, from _ck.c).
 *
 * JAX calls compiled code inside a jitted program through XLA's FFI: a handler is a C function taking
 * one call frame (its argument and result buffers, already allocated by XLA) and returning NULL or an
 * error. The frame's layout is XLA's stable C ABI (xla/ffi/api/c_api.h, shipped with jaxlib; "we don't
 * plan to break ABI compatibility"); the few structs read here are declared below, field for field as
 * that header has them (version 0.1 of the API is the one these fields appeared in), so that building
 * sigmax needs no jaxlib. sigmax/_losses_jax.py registers the handlers with jax.ffi.register_ffi_target
 * and checks them once against the JAX code before using them.
 *
 * Handlers (every buffer row-major, as jax.ffi.ffi_call passes them by default):
 *   sigmax_ce_fwd(x (..., V) f32|f64, t (...) s32|s64) -> (loss (...), lse (...))
 *       loss = -log_softmax(x)[t] per row (the ce kernel: log1p keeps a confident row's digits),
 *       lse = logsumexp(x) per row (-inf on rows of -inf only, +inf on rows holding +inf, NaN on rows
 *       holding NaN); t should lie in [0, V) (the JAX code passes ignored rows as 0; sigmax checks
 *       concrete targets before the call): a row whose target does not gets NaN, as in the JAX rows.
 *   sigmax_ce_fwd_grad(x, t) -> (loss, lse, grad (..., V))
 *       the same, and grad = softmax(x) - onehot(t) (the loss's gradient; 0 on rows of -inf logits
 *       only or holding +inf, as in the kernels' backward), one exp per entry (ce_grad_rows).
 */

typedef struct sx_ffi_ext {
    size_t struct_size;
    int type; /* XLA_FFI_Extension_Type: 1 = metadata */
    struct sx_ffi_ext *next;
} sx_ffi_ext;

typedef struct {
    size_t struct_size;
    sx_ffi_ext *extension_start;
    int major_version, minor_version;
} sx_ffi_version;

typedef struct {
    size_t struct_size;
    sx_ffi_ext *extension_start;
    const char *message;
    int errc; /* XLA_FFI_Error_Code */
} sx_ffi_error_args;

typedef struct sx_ffi_error sx_ffi_error; /* XLA_FFI_Error: opaque */

typedef struct { /* the head of XLA_FFI_Api: what precedes and includes XLA_FFI_Error_Create */
    size_t struct_size;
    sx_ffi_ext *extension_start;
    sx_ffi_version api_version;
    const void *internal_api;
    sx_ffi_error *(*error_create)(sx_ffi_error_args *);
} sx_ffi_api;

typedef struct {
    size_t struct_size;
    sx_ffi_ext *extension_start;
    int dtype; /* XLA_FFI_DataType */
    void *data;
    int64_t rank;
    int64_t *dims;
} sx_ffi_buffer;

typedef struct {
    size_t struct_size;
    sx_ffi_ext *extension_start;
    int64_t size;
    int *types; /* XLA_FFI_ArgType / XLA_FFI_RetType: 1 = buffer */
    void **items;
} sx_ffi_list; /* XLA_FFI_Args and XLA_FFI_Rets (and the head of XLA_FFI_Attrs) */

typedef struct {
    size_t struct_size;
    sx_ffi_ext *extension_start;
    int64_t size;
    int *types;
    void **names;
    void **attrs;
} sx_ffi_attrs;

typedef struct {
    size_t struct_size;
    sx_ffi_ext *extension_start;
    const sx_ffi_api *api;
    void *ctx;
    int stage; /* XLA_FFI_ExecutionStage: 3 = execute */
    sx_ffi_list args, rets;
    sx_ffi_attrs attrs;
} sx_ffi_frame;

typedef struct {
    size_t struct_size;
    sx_ffi_version api_version;
    uint32_t traits;
} sx_ffi_metadata;

typedef struct {
    sx_ffi_ext base;
    sx_ffi_metadata *metadata;
} sx_ffi_metadata_ext;

enum { SX_PRED = 1, SX_S32 = 4, SX_S64 = 5, SX_U8 = 6, SX_F32 = 11, SX_F64 = 12 };
enum { SX_INVALID_ARGUMENT = 3, SX_RESOURCE_EXHAUSTED = 8, SX_INTERNAL = 13 };

/* the threads the handlers use: set from Python (sigmax._kernels.num_threads) */
static int ffi_threads = 1;

static sx_ffi_error *ffi_error(const sx_ffi_frame *f, int code, const char *msg) {
    sx_ffi_error_args a = {sizeof(sx_ffi_error_args), NULL, msg, code};
    return f->api->error_create(&a);
}

/* The start of every handler: answers XLA's metadata query (the API version these structs follow),
 * and checks the stage and the counts of buffers. Returns 1 when the handler should go on. */
static int ffi_begin(sx_ffi_frame *f, int nargs, int nrets, sx_ffi_error **err) {
    *err = NULL;
    if (f->extension_start && f->extension_start->type == 1) {
        sx_ffi_metadata *md = ((sx_ffi_metadata_ext *)f->extension_start)->metadata;
        md->api_version.struct_size = sizeof(sx_ffi_version);
        md->api_version.extension_start = NULL;
        md->api_version.major_version = 0;
        md->api_version.minor_version = 1;
        md->traits = 0;
        return 0;
    }
    if (f->stage != 3) return 0; /* only an execute handler is registered */
    if (f->args.size != nargs || f->rets.size != nrets) {
        *err = ffi_error(f, SX_INVALID_ARGUMENT, "sigmax ffi: wrong number of arguments or results");
        return 0;
    }
    for (int i = 0; i < nargs; i++)
        if (f->args.types[i] != 1) {
            *err = ffi_error(f, SX_INVALID_ARGUMENT, "sigmax ffi: an argument is not a buffer");
            return 0;
        }
    for (int i = 0; i < nrets; i++)
        if (f->rets.types[i] != 1) {
            *err = ffi_error(f, SX_INVALID_ARGUMENT, "sigmax ffi: a result is not a buffer");
            return 0;
        }
    return 1;
}

static int64_t ffi_count(const sx_ffi_buffer *b, int64_t skip_last) {
    int64_t n = 1;
    for (int64_t i = 0; i < b->rank - skip_last; i++) n *= b->dims[i];
    return n;
}

/* int64 targets (the kernels' type) from an s32 or s64 buffer; *owned is set when they were copied */
static const int64_t *ffi_targets(const sx_ffi_buffer *t, int64_t n, int *owned) {
    *owned = 0;
    if (t->dtype == SX_S64) return (const int64_t *)t->data;
    int64_t *o = (int64_t *)calloc((size_t)(n > 0 ? n : 1), sizeof(int64_t));
    if (!o) return NULL;
    const int32_t *s = (const int32_t *)t->data;
    for (int64_t i = 0; i < n; i++) o[i] = s[i];
    *owned = 1;
    return o;
}

/* the kernel's lse of a row holding +inf is NaN (m + L with L undefined there): +inf, its limit */
static void fix_lse(int dtype, void *lse, const uint8_t *flags, int64_t N) {
    for (int64_t r = 0; r < N; r++) {
        if (!flags[r]) continue;
        if (dtype == SX_F32) {
            float *l = (float *)lse;
            if (l[r] != l[r]) l[r] = __builtin_inff();
        } else {
            double *l = (double *)lse;
            if (l[r] != l[r]) l[r] = __builtin_inf();
        }
    }
}

static int run_ce(int dt, const void *x, const int64_t *t, int64_t ignore, void *loss, void *lse, ptrdiff_t N,
                  ptrdiff_t V, int nth, uint8_t *flags, ptrdiff_t *counted, double *total);

static sx_ffi_error *ffi_ce_fwd(sx_ffi_frame *f) {
    sx_ffi_error *err;
    if (!ffi_begin(f, 2, 2, &err)) return err;
    sx_ffi_buffer *x = f->args.items[0], *t = f->args.items[1], *loss = f->rets.items[0], *lse = f->rets.items[1];
    if ((x->dtype != SX_F32 && x->dtype != SX_F64) || loss->dtype != x->dtype || lse->dtype != x->dtype ||
        (t->dtype != SX_S32 && t->dtype != SX_S64) || x->rank < 1)
        return ffi_error(f, SX_INVALID_ARGUMENT, "sigmax_ce_fwd: wrong dtypes or rank");
    int64_t V = x->dims[x->rank - 1], N = ffi_count(x, 1);
    if (ffi_count(t, 0) != N || ffi_count(loss, 0) != N || ffi_count(lse, 0) != N || V < 1)
        return ffi_error(f, SX_INVALID_ARGUMENT, "sigmax_ce_fwd: shapes do not match");
    int owned;
    const int64_t *tg = ffi_targets(t, N, &owned);
    if (!tg) return ffi_error(f, SX_RESOURCE_EXHAUSTED, "sigmax_ce_fwd: out of memory");
    uint8_t *flags = malloc((size_t)(N > 0 ? N : 1));
    ptrdiff_t counted = 0;
    double total = 0.0;
    int ok = flags && run_ce(x->dtype == SX_F32 ? 0 : 1, x->data, tg, INT64_MIN, loss->data, lse->data, N, V,
                             ffi_threads, flags, &counted, &total);
    if (ok) fix_lse(x->dtype, lse->data, flags, N);
    free(flags);
    if (owned) free((void *)tg);
    return ok ? NULL : ffi_error(f, SX_RESOURCE_EXHAUSTED, "sigmax_ce_fwd: out of memory");
}

typedef struct {
    int dt;
    const void *x;
    const int64_t *t;
    void *loss, *lse, *grad;
    const void *ones; /* 1 per row: the backward kernel's scale */
    uint8_t *flags;   /* per row: 1 where the gradient is 0 (written by the first pass, read by the second) */
    ptrdiff_t V;
} fwd_grad_ctx;

static void fwd_grad_range(void *p, ptrdiff_t r0, ptrdiff_t r1) {
    fwd_grad_ctx *c = (fwd_grad_ctx *)p;
    if (c->dt == 0)
        K->ceg32((const float *)c->x, c->t, (float *)c->loss, (float *)c->lse, (float *)c->grad, (const float *)c->ones,
                 c->flags, r0, r1, c->V);
    else
        K->ceg64((const double *)c->x, c->t, (double *)c->loss, (double *)c->lse, (double *)c->grad,
                 (const double *)c->ones, c->flags, r0, r1, c->V);
}

static sx_ffi_error *ffi_ce_fwd_grad(sx_ffi_frame *f) {
    sx_ffi_error *err;
    if (!ffi_begin(f, 2, 3, &err)) return err;
    sx_ffi_buffer *x = f->args.items[0], *t = f->args.items[1];
    sx_ffi_buffer *loss = f->rets.items[0], *lse = f->rets.items[1], *grad = f->rets.items[2];
    if ((x->dtype != SX_F32 && x->dtype != SX_F64) || loss->dtype != x->dtype || lse->dtype != x->dtype ||
        grad->dtype != x->dtype || (t->dtype != SX_S32 && t->dtype != SX_S64) || x->rank < 1)
        return ffi_error(f, SX_INVALID_ARGUMENT, "sigmax_ce_fwd_grad: wrong dtypes or rank");
    int64_t V = x->dims[x->rank - 1], N = ffi_count(x, 1);
    if (ffi_count(t, 0) != N || ffi_count(loss, 0) != N || ffi_count(lse, 0) != N || ffi_count(grad, 0) != N * V ||
        V < 1)
        return ffi_error(f, SX_INVALID_ARGUMENT, "sigmax_ce_fwd_grad: shapes do not match");
    if (N == 0) return NULL;
    int owned;
    const int64_t *tg = ffi_targets(t, N, &owned); /* a target outside [0, V): that row is NaN */
    if (!tg) return ffi_error(f, SX_RESOURCE_EXHAUSTED, "sigmax_ce_fwd_grad: out of memory");
    size_t isz = x->dtype == SX_F32 ? 4 : 8;
    void *ones = malloc((size_t)N * isz);
    uint8_t *flags = malloc((size_t)N);
    if (!ones || !flags) {
        free(ones);
        free(flags);
        if (owned) free((void *)tg);
        return ffi_error(f, SX_RESOURCE_EXHAUSTED, "sigmax_ce_fwd_grad: out of memory");
    }
    for (int64_t r = 0; r < N; r++) {
        if (isz == 4) ((float *)ones)[r] = 1.0f;
        else ((double *)ones)[r] = 1.0;
    }
    Py_ssize_t nbytes = (Py_ssize_t)(N * V) * (Py_ssize_t)isz;
    if (nbytes > ((Py_ssize_t)32 << 20)) advise_huge(grad->data, nbytes); /* XLA maps it afresh: 512x fewer page faults */
    fwd_grad_ctx c = {x->dtype == SX_F32 ? 0 : 1, x->data, tg, loss->data, lse->data, grad->data, ones, flags, V};
    ptrdiff_t grain = V >= 65536 ? 1 : (65536 + V - 1) / V;
    parallel(fwd_grad_range, &c, N, ffi_threads, grain);
    fix_lse(x->dtype, lse->data, flags, N);
    free(ones);
    free(flags);
    if (owned) free((void *)tg);
    return NULL;
}

static PyObject *py_ffi_targets(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    struct { const char *name; void *fn; } hs[] = {{"sigmax_ce_fwd", (void *)ffi_ce_fwd},
                                                   {"sigmax_ce_fwd_grad", (void *)ffi_ce_fwd_grad}};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        PyObject *c = PyCapsule_New(hs[i].fn, NULL, NULL); /* unnamed, as jax.ffi.pycapsule makes them */
        if (!c || PyDict_SetItemString(d, hs[i].name, c) < 0) {
            Py_XDECREF(c);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(c);
    }
    return d;
}

static PyObject *py_ffi_set_threads(PyObject *self, PyObject *args) {
    int n;
    (void)self;
    if (!PyArg_ParseTuple(args, "i", &n)) return NULL;
    ffi_threads = n < 1 ? 1 : n;
    Py_RETURN_NONE;
}
