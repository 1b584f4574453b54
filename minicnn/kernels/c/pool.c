/* Max pooling on the CPU: forward with each window's argmax, and its backward.

   A window (oy, ox) reads rows oy*sh - top + a and columns ox*sw - left + b (a < kh, b < kw);
   cells outside the input count as -inf. argmax is the offset a*kw + b of the window's first
   maximum, where a NaN beats any number (as NumPy's argmax). OpenMP splits the (image, channel)
   planes. */
#include <math.h>
#include <stdlib.h>

#include "../window.h"
#include "scratch.h"
#include "vector.h"

/* Where a later candidate b replaces the best so far a, lane-wise: b is larger, or b is NaN and a is
   not. Scanning a window's cells in order with this rule keeps its first maximum. */
static inline mask later_wins(vec a, vec b) { return (b > a) | ((b != b) & (a == a)); }

/* The argmax bytes of VL windows, stored from integer lanes. */
typedef unsigned char lane_bytes __attribute__((vector_size(VL)));

static inline void store_offsets(unsigned char *p, mask offsets) {
    lane_bytes b = __builtin_convertvector(offsets, lane_bytes);
    memcpy(p, &b, sizeof b);
}

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

/* 2x2 windows with stride 2 and no padding (LeNet's, VGG's and AlexNet's small-input pooling):
   output row oy reads input rows 2oy and 2oy + 1, whose pairs (2ox, 2ox + 1) one permutation
   splits into even and odd lanes, so VL windows cost two loads per row and three comparisons,
   with no gathered slabs. The left cell is taken before the right, the top row before the
   bottom: the window's first maximum in row-major order, as in the general kernel.

   Vectors may run past a row's end: a load reads on into the next rows (or a zero-padded copy
   at the end of x), and a store may write on into rows of the same plane that are written
   later; only at the end of a plane, which another thread may own, does a store stop exactly. */
static void max_pool_2x2(const REAL *x, REAL *y, unsigned char *argmax, long planes, long h, long w, long oh,
                         long ow) {
    const REAL *x_end = x + planes * h * w;
#pragma omp parallel for schedule(static) if (planes > 1)
    for (long pl = 0; pl < planes; pl++) {
        long plane_end = (pl + 1) * oh * ow;
        for (long oy = 0; oy < oh; oy++)
            for (long ox = 0; ox < ow; ox += VL) {
                long n = ow - ox < VL ? ow - ox : VL, k = (pl * oh + oy) * ow + ox;
                vec best[2];
                mask offset[2];
                for (long a = 0; a < 2; a++) {
                    const REAL *pairs = x + (pl * h + 2 * oy + a) * w + 2 * ox;
                    REAL copy[2 * VL];
                    if (pairs + 2 * VL > x_end) {
                        memset(copy, 0, sizeof copy);
                        memcpy(copy, pairs, 2 * n * sizeof(REAL));
                        pairs = copy;
                    }
                    vec first = load(pairs), second = load(pairs + VL);
                    vec left = even_lanes(first, second), right = odd_lanes(first, second);
                    mask take = later_wins(left, right);
                    best[a] = blend(take, right, left);
                    offset[a] = (take & 1) | (int)(2 * a);
                }
                mask take = later_wins(best[0], best[1]);
                vec out = blend(take, best[1], best[0]);
                mask offsets = (take & offset[1]) | (~take & offset[0]);
                if (k + VL <= plane_end) {
                    store(y + k, out);
                    store_offsets(argmax + k, offsets);
                } else
                    for (long lane = 0; lane < n; lane++) {
                        y[k + lane] = out[lane];
                        argmax[k + lane] = (unsigned char)offsets[lane];
                    }
            }
    }
}

/* x (n, c, h, w) -> y, argmax (n, c, oh, ow) over `window` (dilation 1), plane by plane (n*c of
   them). Per plane, each kernel offset's cells are gathered into a slab laid out like the output;
   then VL windows at a time, one per vector lane, take each slab's cell where it beats the lane's
   best so far, with lane-wise masks rather than branches (which cell wins depends on the data;
   mispredicted branches cost more than the work). The windows of a plane run on across its rows,
   so small outputs (5x5) fill the lanes too. */
int max_pool(const REAL *x, REAL *y, unsigned char *argmax, Window2d window) {
    long planes = (long)window.n * window.c, h = window.h, w = window.w, kh = window.kh, kw = window.kw;
    long sh = window.sh, sw = window.sw, top = window.pad_top, left = window.pad_left, oh = window.oh, ow = window.ow;
    if (kh == 2 && kw == 2 && sh == 2 && sw == 2 && top == 0 && left == 0 && 2 * oh <= h && 2 * ow <= w) {
        max_pool_2x2(x, y, argmax, planes, h, w, oh, ow);
        return 0;
    }
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
                    mask take = later_wins(best, v);
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

/* g, argmax (n, c, oh, ow) -> gx (n, c, h, w): each window's gradient added at its argmax.
   An offset's row and column come from a table, not a division per window. */
int max_pool_backward(const REAL *g, const unsigned char *argmax, REAL *gx, Window2d window) {
    long planes = (long)window.n * window.c, h = window.h, w = window.w, kw = window.kw;
    long sh = window.sh, sw = window.sw, top = window.pad_top, left = window.pad_left, oh = window.oh, ow = window.ow;
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
