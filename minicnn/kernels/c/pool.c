/* Max pooling on the CPU: forward with each window's argmax, and its backward.

   A window (oy, ox) reads rows oy*sh - top + a and columns ox*sw - left + b (a < kh, b < kw);
   cells outside the input count as -inf. argmax is the offset a*kw + b of the window's first
   maximum, where a NaN beats any number (as NumPy's argmax). OpenMP splits the (image, channel)
   planes. */
#include <math.h>

#include "vector.h"

/* x (planes, h, w) -> y, argmax (planes, oh, ow). VL windows of one output row at a time, one
   lane each: every kernel offset gathers its VL cells (-inf outside the input) and each lane takes
   the cell where it beats the lane's best so far, with lane-wise masks rather than branches (which
   cell wins depends on the data, and mispredicted branches cost more than the comparisons). */
int max_pool(const REAL *x, REAL *y, unsigned char *argmax, long planes, long h, long w, long kh, long kw, long sh,
             long sw, long top, long left, long oh, long ow) {
#pragma omp parallel for schedule(static) if (planes > 1)
    for (long pl = 0; pl < planes; pl++)
        for (long oy = 0; oy < oh; oy++)
            for (long ox0 = 0; ox0 < ow; ox0 += VL) {
                long lanes = ow - ox0 < VL ? ow - ox0 : VL;
                vec best = broadcast(-INFINITY);
                mask arg = best != best; /* all zero: offset 0 */
                for (long a = 0; a < kh; a++) {
                    long iy = oy * sh - top + a;
                    if (iy < 0 || iy >= h) continue;
                    const REAL *row = x + (pl * h + iy) * w;
                    for (long b = 0; b < kw; b++) {
                        vec v = broadcast(-INFINITY);
                        for (long lane = 0; lane < lanes; lane++) {
                            long ix = (ox0 + lane) * sw - left + b;
                            if (ix >= 0 && ix < w) v[lane] = row[ix];
                        }
                        mask take = (v > best) | ((v != v) & (best == best));
                        best = blend(take, v, best);
                        arg = (take & (int)(a * kw + b)) | (~take & arg);
                    }
                }
                long k = (pl * oh + oy) * ow + ox0;
                for (long lane = 0; lane < lanes; lane++) {
                    y[k + lane] = best[lane];
                    argmax[k + lane] = (unsigned char)arg[lane];
                }
            }
    return 0;
}

/* g, argmax (planes, oh, ow) -> gx (planes, h, w): each window's gradient added at its argmax. */
int max_pool_backward(const REAL *g, const unsigned char *argmax, REAL *gx, long planes, long h, long w, long kw,
                      long sh, long sw, long top, long left, long oh, long ow) {
#pragma omp parallel for schedule(static) if (planes > 1)
    for (long pl = 0; pl < planes; pl++) {
        REAL *dst = gx + pl * h * w;
        memset(dst, 0, h * w * sizeof(REAL));
        for (long oy = 0; oy < oh; oy++)
            for (long ox = 0; ox < ow; ox++) {
                long k = (pl * oh + oy) * ow + ox;
                long iy = oy * sh - top + argmax[k] / kw, ix = ox * sw - left + argmax[k] % kw;
                if (iy >= 0 && iy < h && ix >= 0 && ix < w) dst[iy * w + ix] += g[k];
            }
    }
    return 0;
}
