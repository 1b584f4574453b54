/* Max pooling on the CPU: forward with each window's argmax, and its backward.

   A window (oy, ox) reads rows oy*sh - top + a and columns ox*sw - left + b (a < kh, b < kw);
   cells outside the input count as -inf. argmax is the offset a*kw + b of the window's first
   maximum, where a NaN beats any number (as NumPy's argmax). OpenMP splits the (image, channel)
   planes. */
#include <math.h>
#include <stdlib.h>

#include "scratch.h"
#include "vector.h"

/* One plane (h, w) split by column phase: split[(ph * h + iy) * cols + k] = plane[iy][k*sw + ph - left],
   -inf outside the input. Window column ox, kernel column b then reads phase b % sw at k = ox + b / sw,
   so VL neighbouring windows read VL contiguous cells. */
static void split_columns(const REAL *plane, REAL *split, long h, long w, long sw, long left, long cols) {
    for (long ph = 0; ph < sw; ph++) {
        long first = left - ph > 0 ? (left - ph + sw - 1) / sw : 0; /* the k range whose column is inside */
        long last = w - 1 + left - ph < 0 ? 0 : (w - 1 + left - ph) / sw + 1;
        if (last > cols) last = cols;
        if (first > last) first = last;
        for (long iy = 0; iy < h; iy++) {
            REAL *d = split + (ph * h + iy) * cols;
            const REAL *row = plane + iy * w + ph - left;
            for (long k = 0; k < first; k++) d[k] = -INFINITY;
            for (long k = first; k < last; k++) d[k] = row[k * sw];
            for (long k = last; k < cols; k++) d[k] = -INFINITY;
        }
    }
}

/* x (planes, h, w) -> y, argmax (planes, oh, ow). VL windows of one output row at a time, one per
   vector lane: each kernel offset loads its VL cells from the column-split plane, and each lane
   takes the cell where it beats the lane's best so far, with lane-wise masks rather than branches
   (which cell wins depends on the data, and mispredicted branches cost more than the work). */
int max_pool(const REAL *x, REAL *y, unsigned char *argmax, long planes, long h, long w, long kh, long kw, long sh,
             long sw, long top, long left, long oh, long ow) {
    long cols = round_up(ow, VL) + (kw - 1) / sw + 1;
    int failed = 0;
#pragma omp parallel if (planes > 1)
    {
        REAL *split = scratch(0, sw * h * cols * sizeof(REAL));
        if (!split) failed = 1;
#pragma omp for schedule(static)
        for (long pl = 0; pl < planes; pl++) {
            if (failed) continue;
            split_columns(x + pl * h * w, split, h, w, sw, left, cols);
            for (long oy = 0; oy < oh; oy++)
                for (long ox0 = 0; ox0 < ow; ox0 += VL) {
                    vec best = broadcast(-INFINITY);
                    mask arg = best != best; /* all zero: offset 0 */
                    for (long a = 0; a < kh; a++) {
                        long iy = oy * sh - top + a;
                        if (iy < 0 || iy >= h) continue;
                        for (long b = 0; b < kw; b++) {
                            vec v = load(split + ((b % sw) * h + iy) * cols + ox0 + b / sw);
                            mask take = (v > best) | ((v != v) & (best == best));
                            best = blend(take, v, best);
                            arg = (take & (int)(a * kw + b)) | (~take & arg);
                        }
                    }
                    long k = (pl * oh + oy) * ow + ox0;
                    for (long lane = 0; lane < VL && ox0 + lane < ow; lane++) {
                        y[k + lane] = best[lane];
                        argmax[k + lane] = (unsigned char)arg[lane];
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
