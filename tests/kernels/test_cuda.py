"""minicnn.kernels.cuda, the parts that need no GPU and no stand-in for CuPy: the source handed to
NVRTC, the kernel names, and the scope of poisoned outputs (the choice of direct convolution is
in test_cuda_launch.py)."""

from minicnn.kernels import cuda


def test_source_expands_each_local_header_once_and_leaves_no_include():
    text = cuda.source("pool.cu")
    assert '#include "' not in text and "#pragma once" not in text
    assert text.count("struct Window2d {") == 1  # ../window.h, reached through pool_elements.cuh
    assert "max_pool_element" in text


def test_name_expressions_cover_every_kernel_in_both_dtypes():
    assert cuda.name_expressions("conv.cu") == [
        "im2col<float>", "im2col<double>", "col2im<float>", "col2im<double>",
        "conv_epilogue<float>", "conv_epilogue<double>", "direct_conv2d<float>", "direct_conv2d<double>",
    ]


def test_poison_outputs_is_scoped_and_nests():
    assert not cuda._poison
    with cuda.poison_outputs():
        with cuda.poison_outputs():
            assert cuda._poison
        assert cuda._poison
    assert not cuda._poison
