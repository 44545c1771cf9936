/* cache.h: huge pages, streaming stores and the cache of large outputs of _ck.c (included once, from there). */
/* ------------------------------------------------------------------------------------------------
 * large outputs: transparent huge pages for fresh buffers (512x fewer page faults than 4 KiB
 * pages: PyTorch's allocator does not ask for them, NumPy's does), and streaming stores
 * ---------------------------------------------------------------------------------------------- */

#define BIG_OUTPUT ((Py_ssize_t)8 << 20) /* fresh buffers this big get huge pages */

static Py_ssize_t stream_threshold = (Py_ssize_t)64 << 20; /* set at import: twice the last-level cache */

static int big_output(Py_ssize_t nbytes) { return nbytes >= BIG_OUTPUT; }

/* streaming stores only for outputs that cannot stay in the last-level cache anyway: below that,
 * normal stores leave the result in cache for whatever reads it next */
static int stream_output(Py_ssize_t nbytes) { return nbytes >= stream_threshold; }

static void init_stream_threshold(void) {
    long l3 = -1;
#ifdef _SC_LEVEL3_CACHE_SIZE
    l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
    if (l3 <= 0) l3 = 32L << 20;
    stream_threshold = 2 * (Py_ssize_t)l3;
    if (stream_threshold < BIG_OUTPUT) stream_threshold = BIG_OUTPUT;
}

static void advise_huge(void *p, Py_ssize_t nbytes) {
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1), b = ((uintptr_t)p + (uintptr_t)nbytes) & ~(huge - 1);
    if (b > a) (void)madvise((void *)a, b - a, MADV_HUGEPAGE); /* a hint: failure changes nothing */
#else
    (void)p;
    (void)nbytes;
#endif
}

static void stream_fence(int nt) {
#if defined(__x86_64__) || defined(__i386__)
    if (nt) _mm_sfence(); /* streaming stores are weakly ordered: publish them before returning */
#else
    (void)nt;
#endif
}

/* ------------------------------------------------------------------------------------------------
 * large outputs, reused: empty(nbytes) -> a writable buffer object for NumPy / PyTorch to wrap.
 * Its memory is 2 MiB-aligned, asks for huge pages, and goes back to a small cache when the array
 * that wraps it dies, so that the next call's result of about the same size needs no fresh pages:
 * a fresh mapping costs page faults and zeroing, up to several times the kernel itself on a
 * half-gigabyte result. The cache holds at most CACHE_SLOTS blocks and cache_limit bytes
 * (set_cache_limit; 0 turns it off); a block is reused for a request of 80% to 100% of its size.
 * ---------------------------------------------------------------------------------------------- */

#define CACHE_SLOTS 4
#define HUGE_2M ((size_t)2 << 20)
static struct {
    void *p;
    size_t cap;
} cache[CACHE_SLOTS];
static int ncache = 0;
static size_t cache_bytes = 0, cache_limit = (size_t)1 << 30;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static void *map_block(size_t cap) {
    void *p = mmap(NULL, cap + HUGE_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    uintptr_t a = ((uintptr_t)p + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1);
    if (a > (uintptr_t)p) munmap(p, a - (uintptr_t)p);                           /* the unaligned head */
    if ((uintptr_t)p + cap + HUGE_2M > a + cap) munmap((void *)(a + cap), (uintptr_t)p + HUGE_2M - a); /* tail */
#ifdef MADV_HUGEPAGE
    (void)madvise((void *)a, cap, MADV_HUGEPAGE);
#endif
    return (void *)a;
}

static void *block_get(size_t n, size_t *cap) {
    size_t need = (n + HUGE_2M - 1) & ~(HUGE_2M - 1);
    pthread_mutex_lock(&cache_lock);
    int best = -1;
    for (int i = 0; i < ncache; i++)
        if (cache[i].cap >= need && need >= cache[i].cap / 5 * 4 && (best < 0 || cache[i].cap < cache[best].cap))
            best = i;
    if (best >= 0) {
        void *p = cache[best].p;
        *cap = cache[best].cap;
        cache_bytes -= cache[best].cap;
        cache[best] = cache[--ncache];
        pthread_mutex_unlock(&cache_lock);
        return p;
    }
    pthread_mutex_unlock(&cache_lock);
    *cap = need;
    return map_block(need);
}

static void block_put(void *p, size_t cap) {
    pthread_mutex_lock(&cache_lock);
    while (ncache > 0 && (ncache == CACHE_SLOTS || cache_bytes + cap > cache_limit)) { /* the oldest out */
        munmap(cache[0].p, cache[0].cap);
        cache_bytes -= cache[0].cap;
        memmove(cache, cache + 1, (size_t)(ncache - 1) * sizeof cache[0]);
        ncache--;
    }
    if (cap <= cache_limit) {
        cache[ncache].p = p;
        cache[ncache].cap = cap;
        ncache++;
        cache_bytes += cap;
        p = NULL;
    }
    pthread_mutex_unlock(&cache_lock);
    if (p) munmap(p, cap);
}

static void cache_after_fork(void) { pthread_mutex_init(&cache_lock, NULL); }

typedef struct {
    PyObject_HEAD void *p;
    size_t cap;
    Py_ssize_t len;
} blockobj;

static void block_dealloc(blockobj *b) {
    if (b->p) block_put(b->p, b->cap);
    Py_TYPE(b)->tp_free((PyObject *)b);
}

static int block_getbuffer(blockobj *b, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)b, b->p, b->len, 0, flags);
}

static PyBufferProcs block_as_buffer = {(getbufferproc)block_getbuffer, NULL};

static PyTypeObject BlockType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sigmax._kernels._ck.Block",
    .tp_basicsize = sizeof(blockobj),
    .tp_dealloc = (destructor)block_dealloc,
    .tp_as_buffer = &block_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "memory for one large result (returns to sigmax's cache when the last array using it dies)",
};

static PyObject *py_empty(PyObject *self, PyObject *args) {
    Py_ssize_t n;
    (void)self;
    if (!PyArg_ParseTuple(args, "n", &n)) return NULL;
    if (n < 1) {
        PyErr_SetString(PyExc_ValueError, "sigmax._kernels.empty: size must be positive");
        return NULL;
    }
    blockobj *b = PyObject_New(blockobj, &BlockType);
    if (!b) return NULL;
    b->p = block_get((size_t)n, &b->cap);
    b->len = n;
    if (!b->p) {
        Py_DECREF(b);
        return PyErr_NoMemory();
    }
    return (PyObject *)b;
}

static PyObject *py_set_cache_limit(PyObject *self, PyObject *args) {
    Py_ssize_t n;
    (void)self;
    if (!PyArg_ParseTuple(args, "n", &n)) return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "sigmax._kernels.set_cache_limit: bytes must be >= 0");
        return NULL;
    }
    pthread_mutex_lock(&cache_lock);
    size_t old = cache_limit;
    cache_limit = (size_t)n;
    while (ncache > 0 && cache_bytes > cache_limit) {
        munmap(cache[ncache - 1].p, cache[ncache - 1].cap);
        cache_bytes -= cache[ncache - 1].cap;
        ncache--;
    }
    pthread_mutex_unlock(&cache_lock);
    return PyLong_FromSize_t(old);
}

static PyObject *py_cache_info(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
    pthread_mutex_lock(&cache_lock);
    PyObject *r = Py_BuildValue("(in)", ncache, (Py_ssize_t)cache_bytes);
    pthread_mutex_unlock(&cache_lock);
    return r;
}
