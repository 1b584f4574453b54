// Helpers over the window geometry (Window2d, ../window.h) that every kernel shares.
//
// Everything here is `__host__ __device__`: the kernels call it on the GPU, and the host
// harness (tests/kernels/cuda_harness.cpp) compiles the very same kernels for the CPU, so the
// index arithmetic and the grid-stride loops are tested against the NumPy path on machines
// without a GPU.
//
// Flat indices and every product that can exceed 2^31 are `long long`; sizes are `int`.
#pragma once
// The Window2d struct, shared with the C kernels.
#include "../window.h"

#ifndef __CUDACC__
#define __host__
#define __device__
#endif

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

#ifdef __CUDACC__
// Grid-stride loops: each thread starts at its global index and steps by the whole grid, so a
// grid of any size covers a tensor of any size, with 64-bit indices. (The host harness defines
// these two over the launch it emulates.)
__device__ inline long long first_index() { return (long long)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ inline long long grid_stride() { return (long long)blockDim.x * gridDim.x; }
#endif
