/* Portable SIMD types for sigmax's kernels: GCC/Clang vector extensions, 32 bytes wide.
 *
 * On x86-64 the kernels are compiled twice (see _ck.c): once for AVX2+FMA and once for the baseline
 * (SSE2, where GCC splits each 32-byte operation in two); the best one is picked at import time.
 * Other targets (aarch64, ...) get the baseline compilation for their own vector unit.
 */
#ifndef SIGMAX_VEC_H
#define SIGMAX_VEC_H

#include <stdint.h>
#include <string.h>
#include <stddef.h>

typedef float vf __attribute__((vector_size(32)));     /* 8 float32 */
typedef double vd __attribute__((vector_size(32)));    /* 4 float64 */
typedef int32_t vi __attribute__((vector_size(32)));                /* masks and integers of vf */
typedef int64_t vl __attribute__((vector_size(32)));                /* masks and integers of vd */
typedef float vf4 __attribute__((vector_size(16)));                 /* half a vf, for widening */

#define ALWAYS_INLINE static inline __attribute__((always_inline))
/* a read hint for the cache line at p (never faults, even past the end of an array): the row kernels
 * fetch the next block while they compute on this one, so the memory wait overlaps the arithmetic */
#define PREFETCH(p) __builtin_prefetch((const void *)(p), 0, 3)

/* the column kernels (kern_t.h), also read by the thread split in _ck.c: a strip is STRIP_VECS
 * vectors wide, and its rows are accumulated in chunks of COL_CHUNK */
#define STRIP_VECS 256
#define COL_CHUNK 4096

#endif
