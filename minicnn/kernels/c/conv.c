/* Direct stride-1 convolution on the CPU: forward, input gradient and weight gradient, with no
   im2col matrix.

   The full-row layout. Each image's input planes are copied, with their zero padding, into
   planes wp = oW + kW - 1 values wide. Output (oy, ox) then sits at position p = oy*wp + ox of a
   "full row" of oH*wp positions, and kernel tap (ky, kx) reads the padded plane at p + ky*wp + kx:
   the same shift for every output. So one tap is one multiply-add of a contiguous run of the
   plane into a contiguous run of outputs, and the runs vectorize. Positions with ox >= oW are
   computed and thrown away (kW - 1 of every wp).

   Blocking. The forward pass keeps CB output channels x SV vectors of positions (a strip) in
   registers while it walks every input channel and tap, so each loaded input vector feeds CB
   multiply-adds and nothing is stored until the strip is done. The weight gradient keeps CB
   output channels x TB taps in registers and walks the positions.

   Threads: OpenMP splits the batch; the weight gradient gives each thread its own sums and adds
   them up at the end. Every function returns 0, or -1 when memory ran out. */
#include <math.h>
#include <stdlib.h>

#include "vector.h"

#ifndef CB
#define CB 4 /* output channels per register block */
#endif
#ifndef SV
#define SV 2 /* vectors of positions per strip */
#endif
#ifndef TB
#define TB 4 /* kernel taps per register block of the weight gradient */
#endif
#define STRIP (SV * VL)

/* The geometry of one call. Input (n, c, h, w), filters (co, c, kh, kw), output (n, co, oh, ow);
   top/left zeros before the first input row/column. */
typedef struct {
    long n, c, h, w, co, kh, kw, top, left, oh, ow;
    long wp;     /* padded row width, oW + kW - 1 */
    long length; /* full-row positions per image, oH * wp rounded up to a whole strip */
    long plane;  /* one padded input plane, with room for the last strip's furthest tap */
    long blocks; /* output channel blocks, co / CB rounded up */
} Rows;

static Rows rows_of(long n, long c, long h, long w, long co, long kh, long kw, long top, long left, long oh,
                    long ow) {
    Rows r = {n, c, h, w, co, kh, kw, top, left, oh, ow, 0, 0, 0, 0};
    r.wp = ow + kw - 1;
    r.length = round_up(oh * r.wp, STRIP);
    r.plane = round_up(r.length + (kh - 1) * r.wp + kw - 1, VL);
    r.blocks = (co + CB - 1) / CB;
    return r;
}

/* src (channels, h, w) -> dst (channels, plane): padded planes of width wp, zero elsewhere.
   With a mask (same shape as src), an element is copied only where mask > 0: ReLU's backward. */
static void pad_planes(const Rows *r, long channels, const REAL *src, const REAL *mask, REAL *dst) {
    long rows = r->oh + r->kh - 1;
    memset(dst, 0, channels * r->plane * sizeof(REAL));
    for (long ch = 0; ch < channels; ch++)
        for (long y = 0; y < r->h; y++) {
            long py = y + r->top;
            if (py < 0 || py >= rows) continue;
            const REAL *s = src + (ch * r->h + y) * r->w;
            const REAL *m = mask ? mask + (ch * r->h + y) * r->w : NULL;
            REAL *d = dst + ch * r->plane + py * r->wp;
            for (long x = 0; x < r->w; x++) {
                long px = x + r->left;
                if (px >= 0 && px < r->wp) d[px] = (m && !(m[x] > 0)) ? 0 : s[x];
            }
        }
}

/* weight (co, c, kh, kw) -> (blocks, c, kh*kw, CB), zero for the channels past co, so a block's
   CB weights for one tap are adjacent. */
static REAL *pack_filters(const Rows *r, const REAL *weight) {
    long taps = r->kh * r->kw;
    REAL *packed = calloc(r->blocks * r->c * taps * CB, sizeof(REAL));
    if (!packed) return NULL;
    for (long o = 0; o < r->co; o++)
        for (long ci = 0; ci < r->c; ci++)
            for (long t = 0; t < taps; t++)
                packed[(((o / CB) * r->c + ci) * taps + t) * CB + o % CB] = weight[(o * r->c + ci) * taps + t];
    return packed;
}

/* out (CB, length): one block's CB filters (packed (c, taps, CB)) over one image's padded planes. */
static void correlate_block(const Rows *r, const REAL *planes, const REAL *packed, REAL *out) {
    long taps = r->kh * r->kw;
    for (long p = 0; p < r->length; p += STRIP) {
        vec acc[CB][SV];
        for (int j = 0; j < CB; j++)
            for (int s = 0; s < SV; s++) acc[j][s] = broadcast(0);
        for (long ci = 0; ci < r->c; ci++) {
            const REAL *wt = packed + ci * taps * CB;
            for (long ky = 0; ky < r->kh; ky++) {
                const REAL *x = planes + ci * r->plane + ky * r->wp + p;
                for (long kx = 0; kx < r->kw; kx++, wt += CB) {
                    vec xv[SV];
                    for (int s = 0; s < SV; s++) xv[s] = load(x + kx + s * VL);
                    for (int j = 0; j < CB; j++) {
                        vec wv = broadcast(wt[j]);
                        for (int s = 0; s < SV; s++) acc[j][s] += wv * xv[s];
                    }
                }
            }
        }
        for (int j = 0; j < CB; j++)
            for (int s = 0; s < SV; s++) store(out + j * r->length + p + s * VL, acc[j][s]);
    }
}

/* y (n, co, oh, ow) = x (n, c, h, w) cross-correlated with weight (co, c, kh, kw), stride 1,
   plus bias (co,) when given, then ReLU when relu != 0. With a mask (n, c, h, w), x counts only
   where mask > 0 (the input gradient passes the forward output of a fused ReLU here). */
int conv_forward(const REAL *x, const REAL *weight, const REAL *bias, const REAL *mask, REAL *y, long n, long c,
                 long h, long w, long co, long kh, long kw, long top, long left, long oh, long ow, int relu) {
    Rows r = rows_of(n, c, h, w, co, kh, kw, top, left, oh, ow);
    REAL *packed = pack_filters(&r, weight);
    int failed = packed == NULL;
#pragma omp parallel if (n > 1)
    {
        REAL *planes = malloc(c * r.plane * sizeof(REAL));
        REAL *out = malloc(CB * r.length * sizeof(REAL));
        if (!planes || !out) failed = 1;
#pragma omp for schedule(static)
        for (long i = 0; i < n; i++) {
            if (failed) continue;
            pad_planes(&r, c, x + i * c * h * w, mask ? mask + i * c * h * w : NULL, planes);
            for (long b = 0; b < r.blocks; b++) {
                correlate_block(&r, planes, packed + b * c * kh * kw * CB, out);
                for (long j = 0; j < CB && b * CB + j < co; j++) {
                    long o = b * CB + j;
                    REAL shift = bias ? bias[o] : 0;
                    REAL *dst = y + (i * co + o) * oh * ow;
                    for (long oy = 0; oy < oh; oy++)
                        for (long ox = 0; ox < ow; ox++) {
                            REAL v = out[j * r.length + oy * r.wp + ox] + shift;
                            dst[oy * ow + ox] = (relu && v < 0) ? 0 : v;
                        }
                }
            }
        }
        free(planes);
        free(out);
    }
    free(packed);
    return failed ? -1 : 0;
}

/* g (co, oh, ow) of one image -> rows (blocks*CB, length) in the full-row layout, zero at the
   thrown-away positions and in the rows past co; masked where mask <= 0. Adds each channel's
   sum to bias_sums (co,) when given. */
static void gradient_rows(const Rows *r, const REAL *g, const REAL *mask, REAL *rows, REAL *bias_sums) {
    memset(rows, 0, r->blocks * CB * r->length * sizeof(REAL));
    for (long o = 0; o < r->co; o++) {
        REAL total = 0;
        for (long oy = 0; oy < r->oh; oy++) {
            const REAL *s = g + (o * r->oh + oy) * r->ow;
            const REAL *m = mask ? mask + (o * r->oh + oy) * r->ow : NULL;
            REAL *d = rows + o * r->length + oy * r->wp;
            for (long ox = 0; ox < r->ow; ox++) {
                d[ox] = (m && !(m[ox] > 0)) ? 0 : s[ox];
                total += d[ox];
            }
        }
        if (bias_sums) bias_sums[o] += total;
    }
}

/* sums (blocks*CB, c, taps, VL) += the lane-wise products of one image's gradient rows with its
   padded planes at each tap; the lanes are added up once, at the end of the batch. */
static void accumulate_weight_grad(const Rows *r, const REAL *planes, const REAL *rows, REAL *sums) {
    long taps = r->kh * r->kw;
    for (long b = 0; b < r->blocks; b++)
        for (long ci = 0; ci < r->c; ci++)
            for (long t0 = 0; t0 < taps; t0 += TB) {
                const REAL *x[TB];
                for (int t = 0; t < TB; t++) {
                    long tap = t0 + t < taps ? t0 + t : t0; /* past the last tap: a repeat, not kept */
                    x[t] = planes + ci * r->plane + (tap / r->kw) * r->wp + tap % r->kw;
                }
                const REAL *gr = rows + b * CB * r->length;
                vec acc[CB][TB];
                for (int j = 0; j < CB; j++)
                    for (int t = 0; t < TB; t++) acc[j][t] = broadcast(0);
                for (long p = 0; p < r->length; p += VL) {
                    vec gv[CB];
                    for (int j = 0; j < CB; j++) gv[j] = load(gr + j * r->length + p);
                    for (int t = 0; t < TB; t++) {
                        vec xv = load(x[t] + p);
                        for (int j = 0; j < CB; j++) acc[j][t] += gv[j] * xv;
                    }
                }
                for (int j = 0; j < CB; j++)
                    for (int t = 0; t < TB && t0 + t < taps; t++) {
                        REAL *s = sums + (((b * CB + j) * r->c + ci) * taps + t0 + t) * VL;
                        store(s, load(s) + acc[j][t]);
                    }
            }
}

/* gw (co, c, kh, kw) = sum over images and positions of g x the input under each tap, for the
   stride-1 convolution of x (n, c, h, w) that gave g (n, co, oh, ow); gb (co,) = g's channel
   sums when given. With a mask (n, co, oh, ow), g counts only where mask > 0 (a fused ReLU). */
int conv_weight_grad(const REAL *x, const REAL *g, const REAL *mask, REAL *gw, REAL *gb, long n, long c, long h,
                     long w, long co, long kh, long kw, long top, long left, long oh, long ow) {
    Rows r = rows_of(n, c, h, w, co, kh, kw, top, left, oh, ow);
    long taps = kh * kw, per_image = co * oh * ow;
    int failed = 0;
    memset(gw, 0, co * c * taps * sizeof(REAL));
    if (gb) memset(gb, 0, co * sizeof(REAL));
#pragma omp parallel if (n > 1)
    {
        REAL *planes = malloc(c * r.plane * sizeof(REAL));
        REAL *rows = malloc(r.blocks * CB * r.length * sizeof(REAL));
        REAL *sums = calloc(r.blocks * CB * c * taps * VL, sizeof(REAL));
        REAL *bias_sums = calloc(co, sizeof(REAL));
        if (!planes || !rows || !sums || !bias_sums) failed = 1;
#pragma omp for schedule(static)
        for (long i = 0; i < n; i++) {
            if (failed) continue;
            pad_planes(&r, c, x + i * c * h * w, NULL, planes);
            gradient_rows(&r, g + i * per_image, mask ? mask + i * per_image : NULL, rows, bias_sums);
            accumulate_weight_grad(&r, planes, rows, sums);
        }
        if (!failed) {
#pragma omp critical
            {
                for (long k = 0; k < co * c * taps; k++) gw[k] += sum_lanes(load(sums + k * VL));
                if (gb)
                    for (long o = 0; o < co; o++) gb[o] += bias_sums[o];
            }
        }
        free(planes);
        free(rows);
        free(sums);
        free(bias_sums);
    }
    return failed ? -1 : 0;
}
