/* Portable SIMD for the CPU kernels: GCC/Clang vector extensions, no intrinsics.

   REAL is float or double (set by the build, -DREAL=...). A `vec` holds VL of them in 64 bytes:
   one AVX-512 register, or two AVX2 registers where the machine has no AVX-512; the compiler
   picks the instructions for the -march it was given. Loads and stores go through memcpy, which
   the compiler turns into one unaligned vector move. */
#pragma once

#include <string.h>

#ifndef REAL
#define REAL float
#endif

#define VECTOR_BYTES 64
#define VL ((long)(VECTOR_BYTES / sizeof(REAL)))

typedef REAL vec __attribute__((vector_size(VECTOR_BYTES)));

static inline vec load(const REAL *p) {
    vec v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store(REAL *p, vec v) { memcpy(p, &v, sizeof v); }

/* Every lane s. Written s - 0, which the compiler folds to a plain broadcast; `(vec){0} + s`
   would add zero first (-0 + 0 is +0, so that add is not a no-op). */
static inline vec broadcast(REAL s) { return s - (vec){0}; }

static inline REAL sum_lanes(vec v) {
    REAL s = 0;
    for (long i = 0; i < VL; i++) s += v[i];
    return s;
}

static inline long round_up(long n, long step) { return (n + step - 1) / step * step; }

/* What a lane-wise comparison gives: integers as wide as REAL, all ones where true. */
typedef __typeof__((vec){0} > (vec){0}) mask;

/* a where m is all ones, else b. */
static inline vec blend(mask m, vec a, vec b) { return (vec)((m & (mask)a) | (~m & (mask)b)); }

/* Lane i of the result is lane select[i] of the row a0..a(VL-1) b0..b(VL-1). GCC makes it one
   two-source permutation (vpermi2ps on AVX-512); other compilers get a loop over lanes. */
static inline vec permute(vec a, vec b, mask select) {
#if defined(__GNUC__) && !defined(__clang__)
    return __builtin_shuffle(a, b, select);
#else
    vec out;
    for (long i = 0; i < VL; i++) out[i] = select[i] < VL ? a[select[i]] : b[select[i] - VL];
    return out;
#endif
}

/* The even or odd positions of the row a b: pooling's 2x2 windows read input pairs with these.
   The selections are constants once inlined. */
static inline vec even_lanes(vec a, vec b) {
    mask select;
    for (long i = 0; i < VL; i++) select[i] = 2 * i;
    return permute(a, b, select);
}

static inline vec odd_lanes(vec a, vec b) {
    mask select;
    for (long i = 0; i < VL; i++) select[i] = 2 * i + 1;
    return permute(a, b, select);
}
