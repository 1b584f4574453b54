/* Direct stride-1 convolution on the CPU: forward, input gradient and weight gradient, with no
   im2col matrix.

   The full-row layout. Each image's input planes are copied, with their zero padding, into
   planes wp values wide. Output (oy, ox) then sits at position p = oy*wp + ox of a "full row"
   of oH*wp positions, and kernel tap (ky, kx) reads the padded plane at p + ky*wp + kx: the same
   shift for every output. So one tap is one multiply-add of a contiguous run of the plane into a
   contiguous run of outputs, and the runs vectorize. Positions with ox >= oW are computed and
   thrown away. At stride 1 neighbouring rows share their padding: a row is W + max(left, right)
   wide (not W + left + right = oW + kW - 1), and a tap that runs past a row's end reads the next
   row's left zeros, which stand for this row's right ones; fewer positions are thrown away.
   A strip of outputs skips the kernel rows that read only padding rows.

   Blocking. The forward pass keeps cb output channels x sv vectors of positions (a strip) in
   registers while it walks every input channel and tap, so each loaded input vector feeds cb
   multiply-adds and nothing is stored until the strip is done. The weight gradient keeps
   6 or 4 output channels x 4 taps in registers and walks the positions.

   Lanes over channels. Where the output channels fill whole vectors, the lanes hold channels
   instead: each tap loads the weights of a vector of channels and multiplies them by a tile of
   input values, nothing is thrown away, and a stride is only a step in the input: the strided
   layers of ResNet take this way.

   Threads: OpenMP splits the batch; the weight gradient gives each thread its own sums and adds
   them up at the end. Every function returns 0, -1 when memory ran out, or UNSUPPORTED for a
   stride where the lanes hold positions (the caller checks first). */
#include <math.h>
#include <stdlib.h>

#include "../window.h"
#include "scratch.h"
#include "threads.h"

#include "vector.h"

#define MAX_CB 8 /* most output channels per register block */
#define MAX_SV 4 /* most vectors of positions per strip */
#define TB 4     /* kernel taps per register block of the weight gradient (lanes over positions) */
#define TILE 8    /* output columns per register block when the lanes hold channels */
#define CV 2      /* vectors of output channels per register block when the lanes hold channels */
#define UNSUPPORTED (-2)

/* The layout of one call, made from its Window2d (as longs) by rows_of. Input (n, c, h, w),
   filters (co, c, kh, kw), output (n, co, oh, ow); top/left zeros before the first input
   row/column; stride (sh, sw), 1 except where the lanes hold channels; cb output channels per
   register block. The window's dilation is 1 here (the caller checks). */
typedef struct {
    long n, c, h, w, co, kh, kw, top, left, oh, ow, sh, sw, cb;
    long wp;     /* padded row width: (oW - 1) * sw + kW, or W + max(left, right) at stride 1 */
    long rows;   /* padded rows, (oH - 1) * sh + kH */
    long length; /* full-row positions per image, oH * wp rounded up to a whole strip */
    long plane;  /* one padded input plane, with room for the furthest read of the last strip or tile */
    long blocks; /* output channel blocks, co / cb rounded up */
} Rows;

static Rows rows_of(Window2d g, long co, long cb, long strip) {
    Rows r = {g.n, g.c, g.h, g.w, co, g.kh, g.kw, g.pad_top, g.pad_left, g.oh, g.ow, g.sh, g.sw, cb, 0, 0, 0, 0, 0};
    r.wp = (r.ow - 1) * r.sw + r.kw;
    long right = r.wp - r.w - r.left; /* zeros after each input row */
    if (r.sw == 1 && r.left >= 0 && right >= 0 && (r.left < right ? r.left : right) < r.kw)
        r.wp = r.w + (r.left > right ? r.left : right); /* rows share their padding: see the top of the file */
    r.rows = (r.oh - 1) * r.sh + r.kh;
    r.length = round_up(r.oh * r.wp, strip);
    long furthest = r.length + (r.kh - 1) * r.wp > r.rows * r.wp ? r.length + (r.kh - 1) * r.wp : r.rows * r.wp;
    r.plane = round_up(furthest + r.kw + TILE * r.sw, VL);
    r.blocks = (co + cb - 1) / cb;
    return r;
}

/* d[0..count) = s where mask > 0 (everywhere without a mask), else 0, a vector at a time. What
   it writes is summed: the whole vectors lane-wise into *sums, the rest into the return value. */
static inline REAL copy_masked(REAL *d, const REAL *s, const REAL *mask, long count, vec *sums) {
    long i = 0;
    for (; i + VL <= count; i += VL) {
        vec v = load(s + i);
        if (mask) v = blend(load(mask + i) > 0, v, broadcast(0));
        store(d + i, v);
        *sums += v;
    }
    REAL rest = 0;
    for (; i < count; i++) {
        d[i] = (mask && !(mask[i] > 0)) ? 0 : s[i];
        rest += d[i];
    }
    return rest;
}

/* src (channels, h, w) -> padded planes of width wp, channel ch at dst + ch*stride, each plane
   zero outside the input. With a mask (same shape as src), an element is copied only where
   mask > 0: ReLU's backward. */
static void pad_planes(const Rows *r, long channels, const REAL *src, const REAL *mask, REAL *dst, long stride) {
    long first = r->left < 0 ? -r->left : 0; /* the input columns that land inside the row */
    long last = r->wp - r->left < r->w ? r->wp - r->left : r->w;
    for (long ch = 0; ch < channels; ch++) {
        memset(dst + ch * stride, 0, r->plane * sizeof(REAL));
        for (long y = 0; y < r->h; y++) {
            long py = y + r->top, at = (ch * r->h + y) * r->w + first;
            if (py < 0 || py >= r->rows || first >= last) continue;
            vec unused = broadcast(0);
            copy_masked(dst + ch * stride + py * r->wp + first + r->left, src + at, mask ? mask + at : NULL,
                        last - first, &unused);
        }
    }
}

/* weight (co, c, kh, kw) -> (blocks, c, kh*kw, cb), zero for the channels past co, so a block's
   cb weights for one tap are adjacent. */
static REAL *pack_filters(const Rows *r, const REAL *weight) {
    long taps = r->kh * r->kw, cb = r->cb;
    REAL *packed = calloc(r->blocks * r->c * taps * cb, sizeof(REAL));
    if (!packed) return NULL;
    for (long o = 0; o < r->co; o++)
        for (long ci = 0; ci < r->c; ci++)
            for (long t = 0; t < taps; t++)
                packed[(((o / cb) * r->c + ci) * taps + t) * cb + o % cb] = weight[(o * r->c + ci) * taps + t];
    return packed;
}

/* out (cb, length): one block's cb filters (packed (c, taps, cb)) over one image's padded planes,
   sv vectors of positions at a time. Inlined with constant kh, kw, cb and sv, so the compiler
   unrolls the taps and keeps the cb x sv sums in registers. */
static inline __attribute__((always_inline)) void correlate_block(const Rows *r, const REAL *planes,
                                                                  const REAL *packed, REAL *out, long kh, long kw,
                                                                  int cb, int sv) {
    long taps = kh * kw;
    for (long p = 0; p < r->length; p += sv * VL) {
        /* the kernel rows that reach an input row from this strip's output rows: the others
           read only zero padding (the input gradient's 'full' padding has much of it) */
        long first_row = p / r->wp, last_row = (p + sv * VL - 1) / r->wp;
        long ky_first = r->top - last_row, ky_last = r->top + r->h - 1 - first_row;
        vec acc[MAX_CB][MAX_SV];
        for (int j = 0; j < cb; j++)
            for (int s = 0; s < sv; s++) acc[j][s] = broadcast(0);
        for (long ci = 0; ci < r->c; ci++) {
            const REAL *wt = packed + ci * taps * cb;
            for (long ky = 0; ky < kh; ky++) {
                if (ky < ky_first || ky > ky_last) {
                    wt += kw * cb;
                    continue;
                }
                const REAL *x = planes + ci * r->plane + ky * r->wp + p;
                for (long kx = 0; kx < kw; kx++, wt += cb) {
                    vec xv[MAX_SV];
                    for (int s = 0; s < sv; s++) xv[s] = load(x + kx + s * VL);
                    for (int j = 0; j < cb; j++) {
                        vec wv = broadcast(wt[j]);
                        for (int s = 0; s < sv; s++) acc[j][s] += wv * xv[s];
                    }
                }
            }
        }
        for (int j = 0; j < cb; j++)
            for (int s = 0; s < sv; s++) store(out + j * r->length + p + s * VL, acc[j][s]);
    }
}

/* Three blockings, each with 3x3 and 5x5 kernels spelled out: 6 channels x 2 vectors where the
   channels come in sixes (LeNet's 6), 8 x 3 where they come in eights, else 4 x 4. */
static int in_sixes(long co) { return co % 6 == 0 && co % 4 != 0; }
static long block_channels(long co) { return in_sixes(co) ? 6 : co % 8 == 0 ? 8 : 4; }
static long strip_vectors(long cb) { return cb == 4 ? 4 : cb == 8 ? 3 : 2; }

static void correlate(const Rows *r, const REAL *planes, const REAL *packed, REAL *out) {
#define CORRELATE(cb, sv)                                                               \
    if (r->kh == 3 && r->kw == 3)                                                       \
        correlate_block(r, planes, packed, out, 3, 3, cb, sv);                          \
    else if (r->kh == 5 && r->kw == 5)                                                  \
        correlate_block(r, planes, packed, out, 5, 5, cb, sv);                          \
    else                                                                                \
        correlate_block(r, planes, packed, out, r->kh, r->kw, cb, sv);
    if (r->cb == 8) {
        CORRELATE(8, 3)
    } else if (r->cb == 6) {
        CORRELATE(6, 2)
    } else {
        CORRELATE(4, 4)
    }
#undef CORRELATE
}

/* tile (TILE, CV*VL): TILE neighbouring outputs of row oy from column ox0 on, for CV*VL output
   channels (packed (c, taps, CV*VL)), plus their bias (CV*VL,) when given, then ReLU when relu != 0;
   the channels in the vector lanes: each tap loads CV weight vectors and multiplies them by TILE
   input values. Nothing is computed twice or thrown away but
   the columns past oW in the row's last tile, which suits small images (ResNet's 8x8 layers). */
static inline __attribute__((always_inline)) void correlate_channels_block(const Rows *r, const REAL *planes,
                                                                           const REAL *packed, const REAL *bias,
                                                                           int relu, REAL *tile, long oy, long ox0,
                                                                           long kh, long kw) {
    long taps = kh * kw;
    vec acc[TILE][CV];
    for (int t = 0; t < TILE; t++)
        for (int v = 0; v < CV; v++) acc[t][v] = broadcast(0);
    for (long ci = 0; ci < r->c; ci++)
        for (long ky = 0; ky < kh; ky++) {
            const REAL *x = planes + ci * r->plane + (oy * r->sh + ky) * r->wp + ox0 * r->sw;
            const REAL *wt = packed + (ci * taps + ky * kw) * CV * VL;
            for (long kx = 0; kx < kw; kx++) {
                vec wv[CV];
                for (int v = 0; v < CV; v++) wv[v] = load(wt + (kx * CV + v) * VL);
                for (int t = 0; t < TILE; t++) {
                    vec xv = broadcast(x[kx + t * r->sw]);
                    for (int v = 0; v < CV; v++) acc[t][v] += xv * wv[v];
                }
            }
        }
    for (int v = 0; v < CV; v++) {
        vec shift = bias ? load(bias + v * VL) : broadcast(0);
        for (int t = 0; t < TILE; t++) {
            vec out = acc[t][v] + shift;
            if (relu) out = blend(out < 0, broadcast(0), out); /* lane-wise: no branch on the sign */
            store(tile + (t * CV + v) * VL, out);
        }
    }
}

/* correlate_channels_block with 3x3 and 5x5 kernels spelled out. */
static void correlate_channels(const Rows *r, const REAL *planes, const REAL *packed, const REAL *bias, int relu,
                               REAL *tile, long oy, long ox0) {
    if (r->kh == 3 && r->kw == 3)
        correlate_channels_block(r, planes, packed, bias, relu, tile, oy, ox0, 3, 3);
    else if (r->kh == 5 && r->kw == 5)
        correlate_channels_block(r, planes, packed, bias, relu, tile, oy, ox0, 5, 5);
    else
        correlate_channels_block(r, planes, packed, bias, relu, tile, oy, ox0, r->kh, r->kw);
}

/* y (n, co, oh, ow) = x (n, c, h, w) cross-correlated with weight (co, c, kh, kw) over `window`
   (its stride, its top and left padding; dilation 1), plus bias (co,) when given, then ReLU when
   relu != 0. With a mask (n, c, h, w), x counts only where mask > 0 (the input gradient passes
   the forward output of a fused ReLU here). The lanes hold output channels where co is a
   multiple of two vectors, else positions (stride 1 only). */
int conv_forward(const REAL *x, const REAL *weight, const REAL *bias, const REAL *mask, REAL *y, Window2d window,
                 long co, int relu) {
    int lanes_hold_channels = co % (CV * VL) == 0;
    long cb = lanes_hold_channels ? CV * VL : block_channels(co);
    if (!lanes_hold_channels && (window.sh != 1 || window.sw != 1)) return UNSUPPORTED;
    Rows r = rows_of(window, co, cb, lanes_hold_channels ? VL : strip_vectors(cb) * VL);
    long n = r.n, c = r.c, h = r.h, w = r.w, kh = r.kh, kw = r.kw, oh = r.oh, ow = r.ow;
    REAL *packed = pack_filters(&r, weight);
    int failed = packed == NULL;
#pragma omp parallel if (n > 1)
    {
        REAL *planes = scratch(0, c * r.plane * sizeof(REAL));
        REAL *out = scratch(1, (lanes_hold_channels ? TILE * cb : cb * r.length) * sizeof(REAL));
        if (!planes || !out) failed = 1;
#pragma omp for schedule(static)
        for (long i = 0; i < n; i++) {
            if (failed) continue;
            pad_planes(&r, c, x + i * c * h * w, mask ? mask + i * c * h * w : NULL, planes, r.plane);
            for (long b = 0; b < r.blocks; b++) {
                const REAL *block = packed + b * c * kh * kw * cb;
                if (lanes_hold_channels) {
                    for (long oy = 0; oy < oh; oy++)
                        for (long ox0 = 0; ox0 < ow; ox0 += TILE) {
                            correlate_channels(&r, planes, block, bias ? bias + b * cb : NULL, relu, out, oy, ox0);
                            for (long j = 0; j < cb; j++) {
                                REAL *dst = y + ((i * co + b * cb + j) * oh + oy) * ow + ox0;
                                for (long t = 0; t < TILE && ox0 + t < ow; t++) dst[t] = out[t * cb + j];
                            }
                        }
                    continue;
                }
                correlate(&r, planes, block, out);
                for (long j = 0; j < cb && b * cb + j < co; j++) {
                    long o = b * cb + j;
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
    }
    free(packed);
    return failed ? -1 : 0;
}

/* g (co, oh, ow) of one image -> gradient rows in the full-row layout, row o at rows + o*stride,
   each `plane` long and zero at the thrown-away positions; rows co .. blocks*cb - 1 all zero;
   masked where mask <= 0. Adds each channel's sum to bias_sums (co,). */
static void gradient_rows(const Rows *r, const REAL *g, const REAL *mask, REAL *rows, long stride,
                          REAL *bias_sums) {
    for (long o = 0; o < r->blocks * r->cb; o++) {
        REAL *d = rows + o * stride;
        memset(d, 0, r->plane * sizeof(REAL));
        if (o >= r->co) continue;
        vec sums = broadcast(0);
        REAL rest = 0;
        for (long oy = 0; oy < r->oh; oy++) {
            long at = (o * r->oh + oy) * r->ow;
            rest += copy_masked(d + oy * r->wp, g + at, mask ? mask + at : NULL, r->ow, &sums);
        }
        bias_sums[o] += sum_lanes(sums) + rest;
    }
}

/* sums (blocks*cb, c, taps, VL) += the lane-wise products of a group's gradient rows with its
   padded planes at each tap, over `span` positions (the group's images side by side, `stride`
   apart per channel); the lanes are added up once, at the end of the batch. Inlined with a
   constant cb, so the cb x TB sums stay in registers. */
static inline __attribute__((always_inline)) void accumulate_weight_grad_block(const Rows *r, const REAL *planes,
                                                                               const REAL *rows, REAL *sums,
                                                                               long span, long stride, int cb) {
    long taps = r->kh * r->kw;
    for (long b = 0; b < r->blocks; b++)
        for (long ci = 0; ci < r->c; ci++)
            for (long t0 = 0; t0 < taps; t0 += TB) {
                const REAL *x[TB];
                for (int t = 0; t < TB; t++) {
                    long tap = t0 + t < taps ? t0 + t : t0; /* past the last tap: a repeat, not kept */
                    x[t] = planes + ci * stride + (tap / r->kw) * r->wp + tap % r->kw;
                }
                const REAL *gr = rows + b * cb * stride;
                vec acc[MAX_CB][TB];
                for (int j = 0; j < cb; j++)
                    for (int t = 0; t < TB; t++) acc[j][t] = broadcast(0);
                for (long p = 0; p < span; p += VL) {
                    vec gv[MAX_CB];
                    for (int j = 0; j < cb; j++) gv[j] = load(gr + j * stride + p);
                    for (int t = 0; t < TB; t++) {
                        vec xv = load(x[t] + p);
                        for (int j = 0; j < cb; j++) acc[j][t] += gv[j] * xv;
                    }
                }
                for (int j = 0; j < cb; j++)
                    for (int t = 0; t < TB && t0 + t < taps; t++) {
                        REAL *s = sums + (((b * cb + j) * r->c + ci) * taps + t0 + t) * VL;
                        store(s, load(s) + acc[j][t]);
                    }
            }
}

/* 6 channels x 4 taps where the channels come in sixes (LeNet's first layer), else 4 x 4. */
static void accumulate_weight_grad(const Rows *r, const REAL *planes, const REAL *rows, REAL *sums, long span,
                                   long stride) {
    if (r->cb == 6)
        accumulate_weight_grad_block(r, planes, rows, sums, span, stride, 6);
    else
        accumulate_weight_grad_block(r, planes, rows, sums, span, stride, 4);
}

/* Bytes of padded planes and gradient rows that one group of images may take: the group's passes
   stay in the core's L2 cache. */
#define GROUP_BYTES (512L * 1024)

/* conv_weight_grad with the lanes over positions (any number of channels). The images go through
   in groups laid side by side (channel-major: every image's plane of channel 0, then of channel
   1...), so one pass over a tap covers the whole group: each image's gradient rows are zero past
   its own positions, so no product crosses from one image into the next. */
static int weight_grad_positions(const REAL *x, const REAL *g, const REAL *mask, REAL *gw, REAL *gb,
                                 Window2d window, long co) {
    long cb = in_sixes(co) ? 6 : 4;
    Rows r = rows_of(window, co, cb, VL);
    long n = r.n, c = r.c, h = r.h, w = r.w, kh = r.kh, kw = r.kw, oh = r.oh, ow = r.ow;
    long taps = kh * kw, per_image = co * oh * ow, channels = c + r.blocks * cb;
    long group = GROUP_BYTES / (channels * r.plane * (long)sizeof(REAL));
    long threads = omp_get_max_threads();
    if (group < 1) group = 1;
    long groups = round_up((n + group - 1) / group, threads); /* a whole number of groups per thread */
    group = (n + groups - 1) / groups;
    groups = (n + group - 1) / group;
    long slack = (kh - 1) * r.wp + kw + VL;
    int failed = 0;
    memset(gw, 0, co * c * taps * sizeof(REAL));
    if (gb) memset(gb, 0, co * sizeof(REAL));
#pragma omp parallel if (n > 1)
    {
        long sum_count = r.blocks * cb * c * taps * VL;
        REAL *planes = scratch(0, (c * group * r.plane + slack) * sizeof(REAL));
        REAL *rows = scratch(1, r.blocks * cb * group * r.plane * sizeof(REAL));
        REAL *sums = scratch(2, sum_count * sizeof(REAL));
        REAL *bias_sums = scratch(3, r.blocks * cb * sizeof(REAL));
        if (!planes || !rows || !sums || !bias_sums)
            failed = 1;
        else {
            memset(sums, 0, sum_count * sizeof(REAL));
            memset(bias_sums, 0, r.blocks * cb * sizeof(REAL));
        }
#pragma omp for schedule(static)
        for (long k = 0; k < groups; k++) {
            if (failed) continue;
            long first = k * group, count = n - first < group ? n - first : group, stride = count * r.plane;
            memset(planes + c * stride, 0, slack * sizeof(REAL)); /* read past the last plane: must not be stale */
            for (long j = 0; j < count; j++) {
                long i = first + j;
                pad_planes(&r, c, x + i * c * h * w, NULL, planes + j * r.plane, stride);
                gradient_rows(&r, g + i * per_image, mask ? mask + i * per_image : NULL, rows + j * r.plane, stride,
                              bias_sums);
            }
            accumulate_weight_grad(&r, planes, rows, sums, stride, stride);
        }
        if (!failed) {
#pragma omp critical
            {
                for (long k = 0; k < co * c * taps; k++) gw[k] += sum_lanes(load(sums + k * VL));
                if (gb)
                    for (long o = 0; o < co; o++) gb[o] += bias_sums[o];
            }
        }
    }
    return failed ? -1 : 0;
}

/* sums (c, taps, co) += the products of one image's gradient, transposed to gt (oh*ow, co), with
   the input under taps (ky, 0..kw-1) of channels ci0 .. ci0+cb-1, for the VL output channels of
   block b: the channels in the lanes, cb x kw sums in registers, every real output visited once. */
static inline __attribute__((always_inline)) void weight_grad_channels_block(const Rows *r, const REAL *planes,
                                                                             const REAL *gt, REAL *sums, long b,
                                                                             long ci0, long ky, long kw, int cb,
                                                                             long oy0, long oy1) {
    long taps = r->kh * kw;
    vec acc[4][5];
    for (int j = 0; j < cb; j++)
        for (int t = 0; t < kw; t++) acc[j][t] = broadcast(0);
    for (long oy = oy0; oy < oy1; oy++)
        for (long ox = 0; ox < r->ow; ox++) {
            vec gv = load(gt + (oy * r->ow + ox) * r->co + b * VL);
            const REAL *xr = planes + ci0 * r->plane + (oy * r->sh + ky) * r->wp + ox * r->sw;
            for (int j = 0; j < cb; j++)
                for (int t = 0; t < kw; t++) acc[j][t] += broadcast(xr[j * r->plane + t]) * gv;
        }
    for (int j = 0; j < cb; j++)
        for (int t = 0; t < kw; t++) {
            REAL *s = sums + ((ci0 + j) * taps + ky * kw + t) * r->co + b * VL;
            store(s, load(s) + acc[j][t]);
        }
}

/* Output rows per pass of the blocks over gt: about GT_CHUNK_BYTES of it, so the blocks after the
   first read it from the L1 cache. */
#define GT_CHUNK_BYTES (16L * 1024)

static void weight_grad_channels_image(const Rows *r, const REAL *planes, const REAL *gt, REAL *sums) {
    long rows = GT_CHUNK_BYTES / (r->ow * r->co * (long)sizeof(REAL));
    if (rows < 1) rows = 1;
#define BLOCKS(kw, cb)                                                                                 \
    for (long oy0 = 0; oy0 < r->oh; oy0 += rows) {                                                     \
        long oy1 = oy0 + rows < r->oh ? oy0 + rows : r->oh;                                            \
        for (long b = 0; b < r->co / VL; b++)                                                          \
            for (long ky = 0; ky < r->kh; ky++) {                                                      \
                long ci0 = 0;                                                                          \
                for (; ci0 + cb <= r->c; ci0 += cb)                                                    \
                    weight_grad_channels_block(r, planes, gt, sums, b, ci0, ky, kw, cb, oy0, oy1);     \
                for (; ci0 < r->c; ci0++)                                                              \
                    weight_grad_channels_block(r, planes, gt, sums, b, ci0, ky, kw, 1, oy0, oy1);      \
            }                                                                                          \
    }
    if (r->kw == 3) {
        BLOCKS(3, 4)
    } else if (r->kw == 5) {
        BLOCKS(5, 2)
    } else {
        BLOCKS(1, 4)
    }
#undef BLOCKS
}

/* rows[i][l] <-> rows[l][i]: a VL x VL block transposed in registers, in log2(VL) rounds; the
   round of step s swaps the off-diagonal s x s blocks of every 2s x 2s block, with one pair of
   two-row permutations per pair of rows s apart. */
static inline __attribute__((always_inline)) void transpose_block(vec rows[VL]) {
#pragma GCC unroll 4
    for (long s = VL / 2; s >= 1; s /= 2) {
        mask low, high;
        for (long l = 0; l < VL; l++) {
            low[l] = (l / s) % 2 == 0 ? l : VL + l - s;
            high[l] = (l / s) % 2 == 0 ? l + s : VL + l;
        }
#pragma GCC unroll 16
        for (long base = 0; base < VL; base += 2 * s)
#pragma GCC unroll 16
            for (long i = base; i < base + s; i++) {
                vec a = rows[i], b = rows[i + s];
                rows[i] = permute(a, b, low);
                rows[i + s] = permute(a, b, high);
            }
    }
}

/* One image's gradient g (co, positions) -> gt (positions, co), where mask > 0 (everywhere
   without a mask), else 0; each channel's sum added to bias_sums (co,). co is a multiple of VL:
   VL x VL blocks go through registers, and a last part of fewer than VL positions one by one. */
static void transpose_gradient(const REAL *g, const REAL *mask, REAL *gt, long co, long positions,
                               REAL *bias_sums) {
    long q0 = 0;
    for (; q0 + VL <= positions; q0 += VL)
        for (long o0 = 0; o0 < co; o0 += VL) {
            vec rows[VL], total = broadcast(0);
            for (long o = 0; o < VL; o++) {
                long at = (o0 + o) * positions + q0;
                rows[o] = load(g + at);
                if (mask) rows[o] = blend(load(mask + at) > 0, rows[o], broadcast(0));
            }
            transpose_block(rows);
            for (long t = 0; t < VL; t++) {
                store(gt + (q0 + t) * co + o0, rows[t]);
                total += rows[t];
            }
            store(bias_sums + o0, load(bias_sums + o0) + total);
        }
    for (long o = 0; o < co; o++)
        for (long q = q0; q < positions; q++) {
            REAL v = (mask && !(mask[o * positions + q] > 0)) ? 0 : g[o * positions + q];
            gt[q * co + o] = v;
            bias_sums[o] += v;
        }
}

/* conv_weight_grad with the lanes over output channels (co a multiple of VL; kW 1, 3 or 5): g is
   transposed per image to (positions, co), and each output position loads one vector of it. */
static int weight_grad_channels(const REAL *x, const REAL *g, const REAL *mask, REAL *gw, REAL *gb,
                                Window2d window, long co) {
    Rows r = rows_of(window, co, VL, VL);
    long n = r.n, c = r.c, h = r.h, w = r.w, kh = r.kh, kw = r.kw, oh = r.oh, ow = r.ow;
    long taps = kh * kw, per_image = co * oh * ow;
    int failed = 0;
    memset(gw, 0, co * c * taps * sizeof(REAL));
    if (gb) memset(gb, 0, co * sizeof(REAL));
#pragma omp parallel if (n > 1)
    {
        REAL *planes = scratch(0, c * r.plane * sizeof(REAL));
        REAL *gt = scratch(1, per_image * sizeof(REAL));
        REAL *sums = scratch(2, c * taps * co * sizeof(REAL));
        REAL *bias_sums = scratch(3, co * sizeof(REAL));
        if (!planes || !gt || !sums || !bias_sums)
            failed = 1;
        else {
            memset(sums, 0, c * taps * co * sizeof(REAL));
            memset(bias_sums, 0, co * sizeof(REAL));
        }
#pragma omp for schedule(static)
        for (long i = 0; i < n; i++) {
            if (failed) continue;
            pad_planes(&r, c, x + i * c * h * w, NULL, planes, r.plane);
            transpose_gradient(g + i * per_image, mask ? mask + i * per_image : NULL, gt, co, oh * ow, bias_sums);
            weight_grad_channels_image(&r, planes, gt, sums);
        }
        if (!failed) {
#pragma omp critical
            {
                for (long o = 0; o < co; o++)
                    for (long k = 0; k < c * taps; k++) gw[o * c * taps + k] += sums[k * co + o];
                if (gb)
                    for (long o = 0; o < co; o++) gb[o] += bias_sums[o];
            }
        }
    }
    return failed ? -1 : 0;
}

/* gw (co, c, kh, kw) = sum over images and positions of g x the input under each tap, for the
   convolution of x (n, c, h, w) over `window` that gave g (n, co, oh, ow); gb (co,) = g's channel
   sums when given. With a mask (n, co, oh, ow), g counts only where mask > 0 (a fused ReLU).
   The lanes hold output channels where they come in whole vectors, else positions (stride 1). */
int conv_weight_grad(const REAL *x, const REAL *g, const REAL *mask, REAL *gw, REAL *gb, Window2d window, long co) {
    if (co % VL == 0 && (window.kw == 1 || window.kw == 3 || window.kw == 5))
        return weight_grad_channels(x, g, mask, gw, gb, window, co);
    if (window.sh != 1 || window.sw != 1) return UNSUPPORTED;
    return weight_grad_positions(x, g, mask, gw, gb, window, co);
}
