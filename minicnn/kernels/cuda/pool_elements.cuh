// One element of each pooling kernel, as a function of its flat index.
//
// Layouts (C-contiguous): x and dx (N, C, H, W); y, dy and argmax (N, C, oH, oW).
// A window's cells outside the input are padding: skipped by max pooling, zeros to average pooling.
#pragma once
#include "window.cuh"

// Max of window i (image-channel plane, oi, oj); *argmax gets its kernel offset a*kW + b.
// Padding cells are never chosen. Among the real cells the first maximum in row-major order
// wins and a NaN counts as the maximum (the first NaN wins), like NumPy's argmax. Cells are
// dilation apart, as PyTorch's max_pool2d reads them and as max_pool_backward scatters to them.
template <typename T>
__host__ __device__ inline T max_pool_element(const T* x, long long i, const Window2d& g, int* argmax) {
    long long oj = i % g.ow; i /= g.ow;
    long long oi = i % g.oh;
    long long plane = i / g.oh;  // n * C + c
    const T* image = x + plane * g.h * g.w;
    T best = T(0);
    int best_offset = -1;
    for (int a = 0; a < g.kh; ++a) {
        long long row = oi * g.sh - g.pad_top + (long long)a * g.dh;
        for (int b = 0; b < g.kw; ++b) {
            long long col = oj * g.sw - g.pad_left + (long long)b * g.dw;
            if (!inside(row, col, g)) continue;
            T value = image[row * g.w + col];
            bool best_is_nan = best != best;
            if (best_offset < 0 || (!best_is_nan && (value > best || value != value))) {
                best = value;
                best_offset = a * g.kw + b;
            }
        }
    }
    *argmax = best_offset;
    return best;
}

// dx[i], a gather: input element (plane, row, col) collects dy of every window whose argmax
// is this element.
template <typename T>
__host__ __device__ inline T max_pool_backward_element(const T* dy, const int* argmax, long long i,
                                                       const Window2d& g) {
    long long col = i % g.w; i /= g.w;
    long long row = i % g.h;
    long long plane = i / g.h;
    T sum = T(0);
    for_each_window_over(row, col, g, [&](int a, int b, long long oi, long long oj) {
        long long out = (plane * g.oh + oi) * g.ow + oj;
        if (argmax[out] == a * g.kw + b) sum += dy[out];
    });
    return sum;
}

// How many cells window `index` averages along one axis of length `size`, padded by `pad` on
// both sides: with count_include_pad every cell of the padded input under the window, else only
// the real ones. Cells of a ceil-mode window past the padding never count (PyTorch's rule).
__host__ __device__ inline long long pool_count(long long index, int kernel, int stride, int pad, int size,
                                                int count_include_pad) {
    long long start = index * stride - pad;
    long long end = start + kernel < (long long)size + pad ? start + kernel : (long long)size + pad;
    if (count_include_pad) return end - start;
    long long first = start > 0 ? start : 0;
    long long last = end < size ? end : size;
    return last - first;
}

// The divisor of window (oi, oj). The padding is symmetric: pad_top on both sides of each row,
// pad_left on both sides of each column.
__host__ __device__ inline long long avg_pool_divisor(long long oi, long long oj, const Window2d& g,
                                                      int count_include_pad) {
    return pool_count(oi, g.kh, g.sh, g.pad_top, g.h, count_include_pad)
         * pool_count(oj, g.kw, g.sw, g.pad_left, g.w, count_include_pad);
}

// Mean of window i: the sum of its real cells over its divisor.
template <typename T>
__host__ __device__ inline T avg_pool_element(const T* x, long long i, const Window2d& g, int count_include_pad) {
    long long oj = i % g.ow; i /= g.ow;
    long long oi = i % g.oh;
    long long plane = i / g.oh;
    const T* image = x + plane * g.h * g.w;
    T sum = T(0);
    for (int a = 0; a < g.kh; ++a) {
        long long row = oi * g.sh - g.pad_top + a;
        for (int b = 0; b < g.kw; ++b) {
            long long col = oj * g.sw - g.pad_left + b;
            if (inside(row, col, g)) sum += image[row * g.w + col];
        }
    }
    return sum / T(avg_pool_divisor(oi, oj, g, count_include_pad));
}

// dx[i], a gather: input element (plane, row, col) collects dy / divisor of every window over it.
template <typename T>
__host__ __device__ inline T avg_pool_backward_element(const T* dy, long long i, const Window2d& g,
                                                       int count_include_pad) {
    long long col = i % g.w; i /= g.w;
    long long row = i % g.h;
    long long plane = i / g.h;
    T sum = T(0);
    for_each_window_over(row, col, g, [&](int, int, long long oi, long long oj) {
        sum += dy[(plane * g.oh + oi) * g.ow + oj] / T(avg_pool_divisor(oi, oj, g, count_include_pad));
    });
    return sum;
}
