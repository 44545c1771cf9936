/* pool.h: the thread pool of _ck.c (included once, from there). */
/* ------------------------------------------------------------------------------------------------
 * threads: [0, n) in chunks of whole grains, shared by the calling thread and a pool of workers
 * ---------------------------------------------------------------------------------------------- */

#define MAX_THREADS 64

/* A pool of worker threads, started on first use and kept: starting and joining threads costs tens
 * of microseconds per call, which is most of a call on a few-megabyte array. The work is cut into a
 * few chunks per thread that the caller and the workers claim one at a time, so a worker that does
 * not get a core at once (another library's threads spinning there: PyTorch's OpenMP, XLA) only
 * means the caller does more chunks itself; it is never waited for. Workers spin briefly after a
 * region (the next call often follows at once), then sleep on a condition variable. One region at a
 * time uses the pool; a second caller meanwhile (another Python thread: the GIL is released) runs
 * its work on its own thread. After fork() the child has no workers, and the pool starts afresh. */
#define SPIN_ROUNDS 4000
#define CHUNKS_PER_THREAD 4
static pthread_mutex_t pool_busy = PTHREAD_MUTEX_INITIALIZER; /* held by the caller using the pool */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER; /* guards the region below */
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER, pool_done = PTHREAD_COND_INITIALIZER;
static int pool_size = 0;
static struct {
    range_fn fn;
    void *ctx;
    ptrdiff_t n, grain, units, nchunks;
    ptrdiff_t next, done; /* chunks claimed, chunks finished */
    int open;
} R;
static volatile int pool_avail = 0; /* a hint for spinning workers: chunks may be left */

static void chunk_range(ptrdiff_t k, ptrdiff_t *i0, ptrdiff_t *i1) {
    ptrdiff_t u0 = R.units * k / R.nchunks, u1 = R.units * (k + 1) / R.nchunks;
    *i0 = u0 * R.grain < R.n ? u0 * R.grain : R.n;
    *i1 = u1 * R.grain < R.n ? u1 * R.grain : R.n;
}

/* claim and run chunks until none is left; called with pool_lock held, returns with it held */
static void run_chunks(void) {
    while (R.open && R.next < R.nchunks) {
        ptrdiff_t k = R.next++, i0, i1;
        if (R.next >= R.nchunks) __atomic_store_n(&pool_avail, 0, __ATOMIC_RELEASE);
        chunk_range(k, &i0, &i1);
        range_fn fn = R.fn;
        void *ctx = R.ctx;
        pthread_mutex_unlock(&pool_lock);
        fn(ctx, i0, i1);
        pthread_mutex_lock(&pool_lock);
        if (++R.done == R.nchunks) pthread_cond_signal(&pool_done);
    }
}

static void *pool_worker(void *arg) {
    (void)arg;
    pthread_mutex_lock(&pool_lock);
    for (;;) {
        run_chunks();
        /* nothing to do: spin a little without the lock, then sleep */
        pthread_mutex_unlock(&pool_lock);
        for (int spins = 0; spins < SPIN_ROUNDS && !__atomic_load_n(&pool_avail, __ATOMIC_ACQUIRE); spins++) {
#if defined(__x86_64__) || defined(__i386__)
            _mm_pause();
#endif
        }
        pthread_mutex_lock(&pool_lock);
        while (!(R.open && R.next < R.nchunks)) pthread_cond_wait(&pool_wake, &pool_lock);
    }
    return NULL;
}

static void pool_after_fork(void) { /* the child: no workers; locks and the region as new */
    pool_size = 0;
    pool_avail = 0;
    memset(&R, 0, sizeof R);
    pthread_mutex_init(&pool_busy, NULL);
    pthread_mutex_init(&pool_lock, NULL);
    pthread_cond_init(&pool_wake, NULL);
    pthread_cond_init(&pool_done, NULL);
}

/* fn over [0, n) in chunks of whole grains, on the caller and nth - 1 workers; 0 if the pool is
 * busy or has no workers */
static int pool_run(range_fn fn, void *ctx, ptrdiff_t n, int nth, ptrdiff_t grain) {
    static int atfork_set = 0;
    if (pthread_mutex_trylock(&pool_busy) != 0) return 0;
    if (!atfork_set) {
        pthread_atfork(NULL, NULL, pool_after_fork);
        atfork_set = 1;
    }
    while (pool_size < nth - 1) {
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, (size_t)4 << 20); /* the column kernels keep ~150 KiB of state there */
        int rc = pthread_create(&th, &at, pool_worker, NULL);
        pthread_attr_destroy(&at);
        if (rc != 0) break;
        pool_size++;
    }
    if (pool_size == 0) {
        pthread_mutex_unlock(&pool_busy);
        return 0;
    }
    ptrdiff_t units = (n + grain - 1) / grain, nchunks = (ptrdiff_t)nth * CHUNKS_PER_THREAD;
    pthread_mutex_lock(&pool_lock);
    R.fn = fn;
    R.ctx = ctx;
    R.n = n;
    R.grain = grain;
    R.units = units;
    R.nchunks = nchunks < units ? nchunks : units;
    R.next = R.done = 0;
    R.open = 1;
    __atomic_store_n(&pool_avail, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool_wake);
    run_chunks();
    while (R.done < R.nchunks) pthread_cond_wait(&pool_done, &pool_lock); /* chunks workers hold */
    R.open = 0;
    pthread_mutex_unlock(&pool_lock);
    pthread_mutex_unlock(&pool_busy);
    return 1;
}

static void parallel(range_fn fn, void *ctx, ptrdiff_t n, int nth, ptrdiff_t grain) {
    if (grain < 1) grain = 1;
    if (nth > MAX_THREADS) nth = MAX_THREADS;
    if ((ptrdiff_t)nth > (n + grain - 1) / grain) nth = (int)((n + grain - 1) / grain);
    if (nth <= 1 || !pool_run(fn, ctx, n, nth, grain)) fn(ctx, 0, n);
}
