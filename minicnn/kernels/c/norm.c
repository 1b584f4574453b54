/* Batch normalisation on the CPU, in one or two passes over the data per step.

   Layout: x (n, c, positions), each (image, channel) row contiguous. Channel sums go through
   VL lane-wise partial sums per row, then into a double per channel, so a float32 channel of a
   million values keeps its digits. OpenMP splits the channels for the sums and the (image,
   channel) rows for the element-wise passes. Every function returns 0. */
#include "threads.h"
#include "vector.h"

/* Σ row[p] over one row, lane-wise then across the lanes. */
static double row_sum(const REAL *row, long positions) {
    vec acc = broadcast(0);
    long p = 0;
    for (; p + VL <= positions; p += VL) acc += load(row + p);
    double total = sum_lanes(acc);
    for (; p < positions; p++) total += row[p];
    return total;
}

/* Σ (row[p] - shift) * (other[p] - shift2) over one row; other = NULL reads row again. */
static double row_dot(const REAL *row, REAL shift, const REAL *other, REAL other_shift, long positions) {
    if (!other) other = row;
    vec acc = broadcast(0), s = broadcast(shift), t = broadcast(other_shift);
    long p = 0;
    for (; p + VL <= positions; p += VL) acc += (load(row + p) - s) * (load(other + p) - t);
    double total = sum_lanes(acc);
    for (; p < positions; p++) total += (double)(row[p] - shift) * (other[p] - other_shift);
    return total;
}

/* mean (c,), var (c,) of x: each channel's mean and biased variance, two passes (the variance
   of the centred values, not E[x^2] - E[x]^2, which cancels). */
int batch_norm_stats(const REAL *x, REAL *mean, REAL *var, long n, long c, long positions) {
    double count = (double)n * positions;
#pragma omp parallel for schedule(static) if (c > 1)
    for (long ch = 0; ch < c; ch++) {
        double total = 0, squares = 0;
        for (long i = 0; i < n; i++) total += row_sum(x + (i * c + ch) * positions, positions);
        REAL m = (REAL)(total / count);
        for (long i = 0; i < n; i++) squares += row_dot(x + (i * c + ch) * positions, m, NULL, m, positions);
        mean[ch] = m;
        var[ch] = (REAL)(squares / count);
    }
    return 0;
}

/* y = (x - mean) * inv_std * weight + bias per channel (weight, bias NULL: 1, 0), as one
   multiply-add per value. x_hat is not stored: the backward pass recomputes it from x. */
int batch_norm_forward(const REAL *x, const REAL *mean, const REAL *inv_std, const REAL *weight, const REAL *bias,
                       REAL *y, long n, long c, long positions) {
#pragma omp parallel for schedule(static) if (n * c > 1)
    for (long row = 0; row < n * c; row++) {
        long ch = row % c, start = row * positions;
        REAL slope = inv_std[ch] * (weight ? weight[ch] : 1);
        REAL shift = (bias ? bias[ch] : 0) - mean[ch] * slope;
        for (long p = 0; p < positions; p++) y[start + p] = x[start + p] * slope + shift;
    }
    return 0;
}

/* g_sum (c,) = Σ g and g_dot (c,) = Σ g * x_hat per channel, x_hat = (x - mean) * inv_std: the
   bias and weight gradients. */
int batch_norm_sums(const REAL *g, const REAL *x, const REAL *mean, const REAL *inv_std, REAL *g_sum, REAL *g_dot,
                    long n, long c, long positions) {
#pragma omp parallel for schedule(static) if (c > 1)
    for (long ch = 0; ch < c; ch++) {
        double total = 0, dot = 0;
        for (long i = 0; i < n; i++) {
            const REAL *gr = g + (i * c + ch) * positions;
            total += row_sum(gr, positions);
            dot += row_dot(gr, 0, x + (i * c + ch) * positions, mean[ch], positions);
        }
        g_sum[ch] = (REAL)total;
        g_dot[ch] = (REAL)(dot * inv_std[ch]);
    }
    return 0;
}

/* gx = scale * (g - g_sum / count - x_hat * g_dot / count) per channel, count = n * positions and
   x_hat = (x - mean) * inv_std: the input gradient in training, where the batch statistics depend
   on x. With g_sum = NULL (evaluation: fixed statistics) gx = scale * g. */
int batch_norm_input_grad(const REAL *g, const REAL *x, const REAL *mean, const REAL *inv_std, const REAL *scale,
                          const REAL *g_sum, const REAL *g_dot, REAL *gx, long n, long c, long positions) {
    REAL count = (REAL)n * positions;
#pragma omp parallel for schedule(static) if (n * c > 1)
    for (long row = 0; row < n * c; row++) {
        long ch = row % c, start = row * positions;
        REAL s = scale[ch], shift = g_sum ? g_sum[ch] / count : 0;
        REAL slope = g_sum ? g_dot[ch] / count * inv_std[ch] : 0, m = mean[ch];
        for (long p = 0; p < positions; p++) gx[start + p] = s * (g[start + p] - shift - (x[start + p] - m) * slope);
    }
    return 0;
}
