/* Max pooling on the CPU: forward with each window's argmax, and its backward.

   A window (oy, ox) reads rows oy*sh - top + a and columns ox*sw - left + b (a < kh, b < kw);
   cells outside the input count as -inf. argmax is the offset a*kw + b of the window's first
   maximum, where a NaN beats any number (as NumPy's argmax). OpenMP splits the (image, channel)
   planes. */
#include <math.h>
#include <stdlib.h>

#include "scratch.h"
#include "vector.h"

/* slabs (kh*kw, stride): for each kernel offset (a, b), the cell it reads in every window of one
   plane, window (oy, ox) at oy*ow + ox; -inf outside the input. */
static void gather_offsets(const REAL *plane, REAL *slabs, long stride, long h, long w, long kh, long kw, long sh,
                           long sw, long top, long left, long oh, long ow) {
    for (long a = 0; a < kh; a++)
        for (long b = 0; b < kw; b++) {
            REAL *slab = slabs + (a * kw + b) * stride;
            for (long oy = 0; oy < oh; oy++) {
                long iy = oy * sh - top + a;
                REAL *d = slab + oy * ow;
                if (iy < 0 || iy >= h) {
                    for (long ox = 0; ox < ow; ox++) d[ox] = -INFINITY;
                    continue;
                }
                const REAL *row = plane + iy * w + b - left;
                long first = left - b > 0 ? (left - b + sw - 1) / sw : 0; /* the columns inside the input */
                long last = w - 1 + left - b < 0 ? 0 : (w - 1 + left - b) / sw + 1;
                if (last > ow) last = ow;
                if (first > last) first = last;
                for (long ox = 0; ox < first; ox++) d[ox] = -INFINITY;
                for (long ox = first; ox < last; ox++) d[ox] = row[ox * sw];
                for (long ox = last; ox < ow; ox++) d[ox] = -INFINITY;
            }
        }
}

/* x (planes, h, w) -> y, argmax (planes, oh, ow). Per plane, each kernel offset's cells are
   gathered into a slab laid out like the output; then VL windows at a time, one per vector lane,
   take each slab's cell where it beats the lane's best so far, with lane-wise masks rather than
   branches (which cell wins depends on the data; mispredicted branches cost more than the work).
   The windows of a plane run on across its rows, so small outputs (5x5) fill the lanes too. */
int max_pool(const REAL *x, REAL *y, unsigned char *argmax, long planes, long h, long w, long kh, long kw, long sh,
             long sw, long top, long left, long oh, long ow) {
    long windows = oh * ow, stride = round_up(windows, VL);
    int failed = 0;
#pragma omp parallel if (planes > 1)
    {
        REAL *slabs = scratch(0, kh * kw * stride * sizeof(REAL));
        if (!slabs) failed = 1;
#pragma omp for schedule(static)
        for (long pl = 0; pl < planes; pl++) {
            if (failed) continue;
            gather_offsets(x + pl * h * w, slabs, stride, h, w, kh, kw, sh, sw, top, left, oh, ow);
            for (long q0 = 0; q0 < windows; q0 += VL) {
                vec best = broadcast(-INFINITY);
                mask arg = best != best; /* all zero: offset 0 */
                for (long k = 0; k < kh * kw; k++) {
                    vec v = load(slabs + k * stride + q0);
                    mask take = (v > best) | ((v != v) & (best == best));
                    best = blend(take, v, best);
                    arg = (take & (int)k) | (~take & arg);
                }
                long k = pl * windows + q0;
                if (q0 + VL <= windows) {
                    store(y + k, best);
                    for (long lane = 0; lane < VL; lane++) argmax[k + lane] = (unsigned char)arg[lane];
                } else {
                    for (long lane = 0; q0 + lane < windows; lane++) {
                        y[k + lane] = best[lane];
                        argmax[k + lane] = (unsigned char)arg[lane];
                    }
                }
            }
        }
    }
    return failed ? -1 : 0;
}

/* g, argmax (planes, oh, ow) -> gx (planes, h, w): each window's gradient added at its argmax.
   An offset's row and column come from a table, not a division per window. */
int max_pool_backward(const REAL *g, const unsigned char *argmax, REAL *gx, long planes, long h, long w, long kw,
                      long sh, long sw, long top, long left, long oh, long ow) {
    long row_of[256], column_of[256];
    for (long k = 0; k < 256; k++) {
        row_of[k] = k / kw;
        column_of[k] = k % kw;
    }
#pragma omp parallel for schedule(static) if (planes > 1)
    for (long pl = 0; pl < planes; pl++) {
        REAL *dst = gx + pl * h * w;
        memset(dst, 0, h * w * sizeof(REAL));
        for (long oy = 0; oy < oh; oy++)
            for (long ox = 0; ox < ow; ox++) {
                long k = (pl * oh + oy) * ow + ox;
                long iy = oy * sh - top + row_of[argmax[k]], ix = ox * sw - left + column_of[argmax[k]];
                if (iy >= 0 && iy < h && ix >= 0 && ix < w) dst[iy * w + ix] += g[k];
            }
    }
    return 0;
}
