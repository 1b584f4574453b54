/* The geometry of a sliding window over a batch of images: the one struct in which every compiled
   kernel takes it, by value, the C kernels (c/) and the CUDA kernels (cuda/) alike. Python mirrors
   it once, in minicnn/kernels/window.py (STRUCT_FIELDS); tests/kernels/test_signatures.py checks
   that the two agree.

   Input x: (n, c, h, w), kernel kh x kw, stride sh x sw, dilation dh x dw, pad_top / pad_left
   cells of padding before the first row / column, output (oh, ow) windows per image. Window
   (i, j) reads rows i*sh - pad_top + a*dh and columns j*sw - pad_left + b*dw for a < kh, b < kw;
   reads outside the input hit padding. Every field is a C int; products that can exceed 2^31 are
   the kernels' to widen. Plain C, so that C, CUDA C++ and the host harness's C++ all read it. */
#pragma once

typedef struct Window2d {
    int n, c, h, w;
    int kh, kw, sh, sw, dh, dw;
    int pad_top, pad_left;
    int oh, ow;
} Window2d;
