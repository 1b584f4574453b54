// Host harness for the CUDA kernels' per-element code.
//
// Each kernel in minicnn/kernels/cuda/*.cu is a grid-stride loop around one
// `__host__ __device__` element function. This file runs the same element functions in a plain
// loop on the CPU, in float64, so tests/kernels/test_cuda_elements.py can compare every index
// computation with the NumPy kernels on a machine without a GPU. Built with g++ (the headers
// define __host__ and __device__ away outside nvcc) and loaded with ctypes.
#include "conv_elements.cuh"
#include "pool_elements.cuh"

namespace {

// The fourteen ints of Window2d, in the order of WINDOW_PARAMS.
Window2d window_from(const int* g) {
    return Window2d{g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12], g[13]};
}

}  // namespace

extern "C" {

void im2col(const double* x, double* cols, long long total, const int* geometry) {
    const Window2d g = window_from(geometry);
    for (long long i = 0; i < total; ++i) cols[i] = im2col_element(x, i, g);
}

void col2im(const double* cols, double* dx, long long total, const int* geometry) {
    const Window2d g = window_from(geometry);
    for (long long i = 0; i < total; ++i) dx[i] = col2im_element(cols, i, g);
}

void conv_epilogue(const double* cm, const double* bias, double* y, long long total, int has_bias, int activation,
                   int images, int channels, long long plane) {
    for (long long i = 0; i < total; ++i)
        y[i] = epilogue_element(cm, bias, has_bias, activation, i, images, channels, plane);
}

void direct_conv2d(const double* x, const double* weight, const double* bias, double* y, long long total,
                   int has_bias, int activation, int out_channels, int groups, const int* geometry) {
    const Window2d g = window_from(geometry);
    for (long long i = 0; i < total; ++i)
        y[i] = direct_conv_element(x, weight, bias, has_bias, activation, i, g, out_channels, groups);
}

void max_pool(const double* x, double* y, int* argmax, long long total, const int* geometry) {
    const Window2d g = window_from(geometry);
    for (long long i = 0; i < total; ++i) y[i] = max_pool_element(x, i, g, argmax + i);
}

void max_pool_backward(const double* dy, const int* argmax, double* dx, long long total, const int* geometry) {
    const Window2d g = window_from(geometry);
    for (long long i = 0; i < total; ++i) dx[i] = max_pool_backward_element(dy, argmax, i, g);
}

void avg_pool(const double* x, double* y, long long total, int count_include_pad, const int* geometry) {
    const Window2d g = window_from(geometry);
    for (long long i = 0; i < total; ++i) y[i] = avg_pool_element(x, i, g, count_include_pad);
}

void avg_pool_backward(const double* dy, double* dx, long long total, int count_include_pad, const int* geometry) {
    const Window2d g = window_from(geometry);
    for (long long i = 0; i < total; ++i) dx[i] = avg_pool_backward_element(dy, i, g, count_include_pad);
}

}  // extern "C"
