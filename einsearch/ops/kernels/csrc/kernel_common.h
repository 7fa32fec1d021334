/* What the CPU kernels share: the float type, a vectorisable exp, and the parallel loop.
 *
 * Each kernel source is compiled twice by einsearch/ops/cpu_kernels.py, with -DREAL=float and
 * -DREAL=double, with -fopenmp. */
#ifndef EINSEARCH_KERNEL_COMMON_H
#define EINSEARCH_KERNEL_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef REAL
#define REAL float
#endif

/* exp(x) as 2^k e^r, k = round(x / ln 2), |r| <= ln(2) / 2, with a Taylor polynomial for e^r:
 * written out so that the compiler vectorises it (a call to the libm exp would not be).
 * Relative error about 1e-8 in float (degree 7), 1e-16 in double (degree 13). x is clamped to
 * [-87, 88], where 2^k stays a normal float: exp below -87 comes out as about 1.6e-38, not 0. */
static inline __attribute__((always_inline)) REAL exp_real(REAL x) {
    x = x < (REAL)-87 ? (REAL)-87 : x;
    x = x > (REAL)88 ? (REAL)88 : x;
    REAL k = _Generic(x, float: floorf, default: floor)(x * (REAL)1.4426950408889634 + (REAL)0.5);
    REAL r = (x - k * (REAL)0.693145751953125) - k * (REAL)1.42860682030941723212e-6;
    REAL p;
    if (sizeof(REAL) == sizeof(float)) {
        p = (REAL)(1.0 / 5040);
        p = p * r + (REAL)(1.0 / 720); p = p * r + (REAL)(1.0 / 120); p = p * r + (REAL)(1.0 / 24);
        p = p * r + (REAL)(1.0 / 6); p = p * r + (REAL)0.5; p = p * r + 1; p = p * r + 1;
        int32_t bits = ((int32_t)k + 127) << 23;
        float scale;
        memcpy(&scale, &bits, sizeof scale);
        return p * (REAL)scale;
    }
    p = (REAL)(1.0 / 6227020800.0);
    p = p * r + (REAL)(1.0 / 479001600.0); p = p * r + (REAL)(1.0 / 39916800.0);
    p = p * r + (REAL)(1.0 / 3628800.0); p = p * r + (REAL)(1.0 / 362880.0); p = p * r + (REAL)(1.0 / 40320.0);
    p = p * r + (REAL)(1.0 / 5040.0); p = p * r + (REAL)(1.0 / 720.0); p = p * r + (REAL)(1.0 / 120.0);
    p = p * r + (REAL)(1.0 / 24.0); p = p * r + (REAL)(1.0 / 6.0); p = p * r + (REAL)0.5; p = p * r + 1;
    p = p * r + 1;
    int64_t bits = ((int64_t)(int32_t)k + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * (REAL)scale;
}

/* sigmoid(x) and silu(x) = x sigmoid(x) */
static inline __attribute__((always_inline)) REAL sigmoid_real(REAL x) { return 1 / (1 + exp_real(-x)); }

/* Work split into `parts` pieces: part(args, i, parts) does piece i and returns 0, or nonzero if
 * it failed (out of memory). */
typedef int (*part_fn)(const void *args, int index, int parts);

/* Runs the pieces in parallel and returns 0, or 1 if one failed. OpenMP, not threads of our own:
 * built with -fopenmp, the library needs libgomp.so.1, and where torch has loaded its own
 * libgomp.so.1 the dynamic loader reuses it, so the pieces run on torch's intra-op threads
 * instead of competing with them for the cores (a CPU build of torch spins its idle threads). */
static int run_parts(part_fn fn, const void *args, int parts) {
    int failed = 0;
    parts = parts < 1 ? 1 : parts;
#pragma omp parallel for num_threads(parts) schedule(static, 1) reduction(| : failed)
    for (int i = 0; i < parts; i++) failed |= fn(args, i, parts) != 0;
    return failed;
}

#endif
