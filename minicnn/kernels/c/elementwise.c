/* Element-wise passes on the CPU: ReLU forward and backward, addition, and SGD's momentum step,
   a vector at a time.

   Lane-wise masks instead of a branch on each sign; NaN passes forward (NaN < 0 is false, as
   NumPy's maximum keeps it), and the gradient is g where y > 0, else 0 (PyTorch's rule). OpenMP
   splits arrays above a few blocks into contiguous blocks. Every function returns 0. */
#include "threads.h"
#include "vector.h"

#define BLOCK 16384 /* elements per piece of work */

/* y = max(x, 0), element-wise over count values. */
int relu_forward(const REAL *x, REAL *y, long count) {
#pragma omp parallel for schedule(static) if (count > 4 * BLOCK)
    for (long start = 0; start < count; start += BLOCK) {
        long stop = start + BLOCK < count ? start + BLOCK : count, i = start;
        for (; i + VL <= stop; i += VL) {
            vec v = load(x + i);
            store(y + i, blend(v < 0, broadcast(0), v));
        }
        for (; i < stop; i++) y[i] = x[i] < 0 ? 0 : x[i];
    }
    return 0;
}

/* gx = g where y > 0, else 0, over count values (y: the forward output). */
int relu_backward(const REAL *g, const REAL *y, REAL *gx, long count) {
#pragma omp parallel for schedule(static) if (count > 4 * BLOCK)
    for (long start = 0; start < count; start += BLOCK) {
        long stop = start + BLOCK < count ? start + BLOCK : count, i = start;
        for (; i + VL <= stop; i += VL) store(gx + i, blend(load(y + i) > 0, load(g + i), broadcast(0)));
        for (; i < stop; i++) gx[i] = y[i] > 0 ? g[i] : 0;
    }
    return 0;
}

/* out = a + b over count values: a residual connection, or two gradients meeting at one input. */
int add(const REAL *a, const REAL *b, REAL *out, long count) {
#pragma omp parallel for schedule(static) if (count > 4 * BLOCK)
    for (long start = 0; start < count; start += BLOCK) {
        long stop = start + BLOCK < count ? start + BLOCK : count, i = start;
        for (; i + VL <= stop; i += VL) store(out + i, load(a + i) + load(b + i));
        for (; i < stop; i++) out[i] = a[i] + b[i];
    }
    return 0;
}

/* SGD with momentum, one pass over a parameter's count values in PyTorch's order: the buffer
   b = momentum * b + (1 - dampening) * g, then p = p - lr * b. In place on p and b. */
int momentum_step(REAL *p, const REAL *g, REAL *b, long count, double lr, double momentum, double dampening) {
    REAL rate = (REAL)lr, keep = (REAL)momentum, scale = (REAL)(1 - dampening);
#pragma omp parallel for schedule(static) if (count > 4 * BLOCK)
    for (long start = 0; start < count; start += BLOCK) {
        long stop = start + BLOCK < count ? start + BLOCK : count, i = start;
        for (; i + VL <= stop; i += VL) {
            vec v = broadcast(keep) * load(b + i) + broadcast(scale) * load(g + i);
            store(b + i, v);
            store(p + i, load(p + i) - broadcast(rate) * v);
        }
        for (; i < stop; i++) {
            b[i] = keep * b[i] + scale * g[i];
            p[i] -= rate * b[i];
        }
    }
    return 0;
}
