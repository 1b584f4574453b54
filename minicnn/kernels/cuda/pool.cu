// Pooling kernels: max pooling that keeps each window's argmax, average pooling, and both
// backward passes as gathers (one thread per input element, no atomics). pool_elements.cuh
// holds the per-element code.
#include "pool_elements.cuh"

// y, argmax: (N, C, oH, oW) from x: (N, C, H, W); total = y.size.
template <typename T>
__global__ void max_pool(const T* x, T* y, int* argmax, long long total, const Window2d g) {
    for (long long i = first_index(); i < total; i += grid_stride()) y[i] = max_pool_element(x, i, g, argmax + i);
}

// dx: (N, C, H, W) from dy and argmax: (N, C, oH, oW); total = dx.size.
template <typename T>
__global__ void max_pool_backward(const T* dy, const int* argmax, T* dx, long long total, const Window2d g) {
    for (long long i = first_index(); i < total; i += grid_stride())
        dx[i] = max_pool_backward_element(dy, argmax, i, g);
}

// y: (N, C, oH, oW) from x: (N, C, H, W); total = y.size.
template <typename T>
__global__ void avg_pool(const T* x, T* y, long long total, int count_include_pad, const Window2d g) {
    for (long long i = first_index(); i < total; i += grid_stride())
        y[i] = avg_pool_element(x, i, g, count_include_pad);
}

// dx: (N, C, H, W) from dy: (N, C, oH, oW); total = dx.size.
template <typename T>
__global__ void avg_pool_backward(const T* dy, T* dx, long long total, int count_include_pad, const Window2d g) {
    for (long long i = first_index(); i < total; i += grid_stride())
        dx[i] = avg_pool_backward_element(dy, i, g, count_include_pad);
}

// float32 and float64 builds (CuPy looks them up by these names: "max_pool<float>", ...).
template __global__ void max_pool<float>(const float*, float*, int*, long long, Window2d);
template __global__ void max_pool<double>(const double*, double*, int*, long long, Window2d);
template __global__ void max_pool_backward<float>(const float*, const int*, float*, long long, Window2d);
template __global__ void max_pool_backward<double>(const double*, const int*, double*, long long, Window2d);
template __global__ void avg_pool<float>(const float*, float*, long long, int, Window2d);
template __global__ void avg_pool<double>(const double*, double*, long long, int, Window2d);
template __global__ void avg_pool_backward<float>(const float*, float*, long long, int, Window2d);
template __global__ void avg_pool_backward<double>(const double*, double*, long long, int, Window2d);
