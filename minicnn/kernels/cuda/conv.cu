// Convolution kernels: im2col and its gather-style adjoint col2im (the product in between is
// cuBLAS's, through CuPy), the fused bias + activation epilogue, and a direct convolution for
// layers with few input channels. Each writes one element per loop step (conv_elements.cuh).
#include "conv_elements.cuh"

// cols: (C*kH*kW, N*oH*oW) from x: (N, C, H, W); total = cols.size.
template <typename T>
__global__ void im2col(const T* x, T* cols, long long total, const Window2d g) {
    for (long long i = first_index(); i < total; i += grid_stride()) cols[i] = im2col_element(x, i, g);
}

// dx: (N, C, H, W) from cols: (C*kH*kW, N*oH*oW); total = dx.size. One thread per input element.
template <typename T>
__global__ void col2im(const T* cols, T* dx, long long total, const Window2d g) {
    for (long long i = first_index(); i < total; i += grid_stride()) dx[i] = col2im_element(cols, i, g);
}

// y: (N, C_out, plane) from cm: (C_out, N, plane), plus bias and activation; total = y.size.
template <typename T>
__global__ void conv_epilogue(const T* cm, const T* bias, T* y, long long total, int has_bias, int activation,
                              int images, int channels, long long plane) {
    for (long long i = first_index(); i < total; i += grid_stride())
        y[i] = epilogue_element(cm, bias, has_bias, activation, i, images, channels, plane);
}

// y: (N, C_out, oH, oW) from x and weight: (C_out, C/groups, kH, kW); total = y.size.
template <typename T>
__global__ void direct_conv2d(const T* x, const T* weight, const T* bias, T* y, long long total, int has_bias,
                              int activation, int out_channels, int groups, const Window2d g) {
    for (long long i = first_index(); i < total; i += grid_stride())
        y[i] = direct_conv_element(x, weight, bias, has_bias, activation, i, g, out_channels, groups);
}

// float32 and float64 builds (CuPy looks them up by these names: "im2col<float>", ...).
template __global__ void im2col<float>(const float*, float*, long long, Window2d);
template __global__ void im2col<double>(const double*, double*, long long, Window2d);
template __global__ void col2im<float>(const float*, float*, long long, Window2d);
template __global__ void col2im<double>(const double*, double*, long long, Window2d);
template __global__ void conv_epilogue<float>(const float*, const float*, float*, long long, int, int, int, int,
                                              long long);
template __global__ void conv_epilogue<double>(const double*, const double*, double*, long long, int, int, int,
                                               int, long long);
template __global__ void direct_conv2d<float>(const float*, const float*, const float*, float*, long long, int,
                                              int, int, int, Window2d);
template __global__ void direct_conv2d<double>(const double*, const double*, const double*, double*, long long,
                                               int, int, int, int, Window2d);
