// Host harness for the CUDA kernels themselves.
//
// The kernel sources (minicnn/kernels/cuda/*.cu) are compiled here by g++ as plain C++: the
// headers define __host__ and __device__ away outside nvcc, __global__ is defined away below, and
// first_index() / grid_stride() read the emulated launch coordinates below instead of CUDA's
// blockIdx and threadIdx. Each exported function runs one kernel, in float64, as a launch of
// `blocks` x `threads` threads would: every thread in turn, each going round its grid-stride loop.
// A small grid therefore sends every thread round its loop many times, as a capped grid does on a
// GPU for a tensor larger than the grid. tests/kernels/test_cuda_elements.py and
// test_cuda_launch.py compare the results with the NumPy kernels; loaded with ctypes. Each takes
// the launch's grid, then its kernel's arguments as minicnn.kernels.signatures lists them (the
// window as the Window2d struct, by value, as CuPy passes it).
#define __global__

namespace cuda_source {

// The launch being emulated: grid and block size, and the thread now running.
struct Launch {
    long long blocks, threads, block, thread;
};
Launch launch;

long long first_index() { return launch.block * launch.threads + launch.thread; }
long long grid_stride() { return launch.blocks * launch.threads; }

#include "conv.cu"
#include "pool.cu"

// Runs `kernel()` once per thread of a `blocks` x `threads` grid, in order.
template <typename Kernel>
void run(int blocks, int threads, Kernel kernel) {
    launch = Launch{blocks, threads, 0, 0};
    for (launch.block = 0; launch.block < blocks; ++launch.block)
        for (launch.thread = 0; launch.thread < threads; ++launch.thread) kernel();
}

}  // namespace cuda_source

using cuda_source::run;
using cuda_source::Window2d;

extern "C" {

void im2col(int blocks, int threads, const double* x, double* cols, long long total, Window2d g) {
    run(blocks, threads, [&] { cuda_source::im2col<double>(x, cols, total, g); });
}

void col2im(int blocks, int threads, const double* cols, double* dx, long long total, Window2d g) {
    run(blocks, threads, [&] { cuda_source::col2im<double>(cols, dx, total, g); });
}

void conv_epilogue(int blocks, int threads, const double* cm, const double* bias, double* y, long long total,
                   int has_bias, int activation, int images, int channels, long long plane) {
    run(blocks, threads, [&] {
        cuda_source::conv_epilogue<double>(cm, bias, y, total, has_bias, activation, images, channels, plane);
    });
}

void direct_conv2d(int blocks, int threads, const double* x, const double* weight, const double* bias, double* y,
                   long long total, int has_bias, int activation, int out_channels, int groups, Window2d g) {
    run(blocks, threads, [&] {
        cuda_source::direct_conv2d<double>(x, weight, bias, y, total, has_bias, activation, out_channels, groups, g);
    });
}

void max_pool(int blocks, int threads, const double* x, double* y, int* argmax, long long total, Window2d g) {
    run(blocks, threads, [&] { cuda_source::max_pool<double>(x, y, argmax, total, g); });
}

void max_pool_backward(int blocks, int threads, const double* dy, const int* argmax, double* dx, long long total,
                       Window2d g) {
    run(blocks, threads, [&] { cuda_source::max_pool_backward<double>(dy, argmax, dx, total, g); });
}

void avg_pool(int blocks, int threads, const double* x, double* y, long long total, int count_include_pad,
              Window2d g) {
    run(blocks, threads, [&] { cuda_source::avg_pool<double>(x, y, total, count_include_pad, g); });
}

void avg_pool_backward(int blocks, int threads, const double* dy, double* dx, long long total, int count_include_pad,
                       Window2d g) {
    run(blocks, threads, [&] { cuda_source::avg_pool_backward<double>(dy, dx, total, count_include_pad, g); });
}

}  // extern "C"
