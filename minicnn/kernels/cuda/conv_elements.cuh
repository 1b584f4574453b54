// One output element of each convolution kernel, as a function of its flat index.
//
// Layouts (all C-contiguous):
//   x      (N, C, H, W)                    the unpadded input
//   cols   (C, kH, kW, N, oH, oW)          channel-major im2col matrix: rows C*kH*kW, columns N*oH*oW
//   weight (C_out, C/groups, kH, kW)
//   y      (N, C_out, oH, oW)
#pragma once
#include "window.cuh"

// cols[i]: the input value under kernel offset (a, b) of window (oi, oj) of image n, channel c.
template <typename T>
__host__ __device__ inline T im2col_element(const T* x, long long i, const Window2d& g) {
    long long oj = i % g.ow; i /= g.ow;
    long long oi = i % g.oh; i /= g.oh;
    long long n = i % g.n;   i /= g.n;
    int b = (int)(i % g.kw); i /= g.kw;
    int a = (int)(i % g.kh);
    long long c = i / g.kh;
    long long row = oi * g.sh - g.pad_top + (long long)a * g.dh;
    long long col = oj * g.sw - g.pad_left + (long long)b * g.dw;
    return inside(row, col, g) ? x[((n * g.c + c) * g.h + row) * g.w + col] : T(0);
}

// dx[i], a gather: input element (n, c, row, col) sums the column entries of every window that
// read it, in kernel-offset order (a, then b). No atomics, so the result is deterministic.
template <typename T>
__host__ __device__ inline T col2im_element(const T* cols, long long i, const Window2d& g) {
    long long col = i % g.w; i /= g.w;
    long long row = i % g.h; i /= g.h;
    long long c = i % g.c;
    long long n = i / g.c;
    T sum = T(0);
    for_each_window_over(row, col, g, [&](int a, int b, long long oi, long long oj) {
        sum += cols[((((c * g.kh + a) * g.kw + b) * g.n + n) * g.oh + oi) * g.ow + oj];
    });
    return sum;
}

// Activations the epilogues can fuse: 0 = none, 1 = ReLU.
template <typename T>
__host__ __device__ inline T activate(T value, int activation) {
    // NaN compares false, so it passes through, as it does in NumPy's maximum(x, 0)
    return (activation == 1 && value < T(0)) ? T(0) : value;
}

// y[i] from the product's channel-major output cm: (C_out, N, oH*oW) -> (N, C_out, oH, oW),
// plus bias[c_out] (when has_bias) and the activation, in one pass over memory.
template <typename T>
__host__ __device__ inline T epilogue_element(const T* cm, const T* bias, int has_bias, int activation, long long i,
                                              int n, int channels, long long plane) {
    long long p = i % plane; i /= plane;
    long long c = i % channels;
    long long image = i / channels;
    T value = cm[(c * n + image) * plane + p];
    if (has_bias) value += bias[c];
    return activate(value, activation);
}

// y[i] by direct convolution, for layers with few input channels per group (LeNet's first layer
// has one): each output sums C/groups * kH * kW products straight from x, with no im2col matrix.
template <typename T>
__host__ __device__ inline T direct_conv_element(const T* x, const T* weight, const T* bias, int has_bias,
                                                 int activation, long long i, const Window2d& g,
                                                 int out_channels, int groups) {
    long long oj = i % g.ow; i /= g.ow;
    long long oi = i % g.oh; i /= g.oh;
    long long co = i % out_channels;
    long long n = i / out_channels;
    int group_channels = g.c / groups;
    long long first_channel = (co / (out_channels / groups)) * group_channels;
    T sum = has_bias ? bias[co] : T(0);
    for (int ci = 0; ci < group_channels; ++ci) {
        const T* plane = x + ((n * g.c + first_channel + ci) * g.h) * g.w;
        const T* filter = weight + ((co * group_channels + ci) * g.kh) * g.kw;
        for (int a = 0; a < g.kh; ++a) {
            long long row = oi * g.sh - g.pad_top + (long long)a * g.dh;
            for (int b = 0; b < g.kw; ++b) {
                long long col = oj * g.sw - g.pad_left + (long long)b * g.dw;
                if (inside(row, col, g)) sum += plane[row * g.w + col] * filter[a * g.kw + b];
            }
        }
    }
    return activate(sum, activation);
}
