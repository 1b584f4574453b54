// The geometry of a sliding window over a batch of images, shared by every kernel.
//
// Everything here is `__host__ __device__`: the kernels call it on the GPU, and the host
// harness (tests/kernels/cuda_harness.cpp) compiles the very same kernels for the CPU, so the
// index arithmetic and the grid-stride loops are tested against the NumPy path on machines
// without a GPU.
//
// Flat indices and every product that can exceed 2^31 are `long long`; sizes are `int`.
#pragma once

#ifndef __CUDACC__
#define __host__
#define __device__
#endif

// Input x: (n, c, h, w), kernel kh x kw, stride sh x sw, dilation dh x dw, pad_top / pad_left
// cells of padding before the first row / column, output (oh, ow) windows per image.
// Window (i, j) reads rows i*sh - pad_top + a*dh and columns j*sw - pad_left + b*dw for
// a < kh, b < kw; reads outside the input hit padding.
struct Window2d {
    int n, c, h, w;
    int kh, kw, sh, sw, dh, dw;
    int pad_top, pad_left;
    int oh, ow;
};

__host__ __device__ inline bool inside(long long row, long long col, const Window2d& g) {
    return row >= 0 && row < g.h && col >= 0 && col < g.w;
}

// First output row or column index whose window covers input position `position` at kernel
// offset `offset`: returns -1 when no window does (not on the stride grid, or out of range).
__host__ __device__ inline long long covering_window(long long position, int pad, int offset, int dilation,
                                                     int stride, int out_size) {
    long long start = position + pad - (long long)offset * dilation;
    if (start < 0 || start % stride != 0) return -1;
    long long window = start / stride;
    return window < out_size ? window : -1;
}

// Calls visit(a, b, oi, oj) for every window (oi, oj) whose kernel offset (a, b) lands on input
// position (row, col), in kernel-offset order: the loop of every gather-style backward kernel.
template <typename Visit>
__host__ __device__ inline void for_each_window_over(long long row, long long col, const Window2d& g, Visit visit) {
    for (int a = 0; a < g.kh; ++a) {
        long long oi = covering_window(row, g.pad_top, a, g.dh, g.sh, g.oh);
        if (oi < 0) continue;
        for (int b = 0; b < g.kw; ++b) {
            long long oj = covering_window(col, g.pad_left, b, g.dw, g.sw, g.ow);
            if (oj >= 0) visit(a, b, oi, oj);
        }
    }
}

// A kernel receives the geometry as fourteen int arguments (CuPy passes NumPy int32 scalars
// as C ints) and rebuilds the struct: WINDOW_PARAMS in its parameter list, WINDOW in its body.
#define WINDOW_PARAMS                                                                            \
    int n, int c, int h, int w, int kh, int kw, int sh, int sw, int dh, int dw, int pad_top,    \
        int pad_left, int oh, int ow
#define WINDOW (Window2d{n, c, h, w, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow})

#ifdef __CUDACC__
// Grid-stride loops: each thread starts at its global index and steps by the whole grid, so a
// grid of any size covers a tensor of any size, with 64-bit indices. (The host harness defines
// these two over the launch it emulates.)
__device__ inline long long first_index() { return (long long)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ inline long long grid_stride() { return (long long)blockDim.x * gridDim.x; }
#endif
