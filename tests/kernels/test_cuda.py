"""minicnn.kernels.cuda, the parts that need no GPU: the source handed to NVRTC, the kernel
names, the geometry's argument order, and the choice of direct convolution."""

import re

import numpy as np

from minicnn.kernels import cuda
from minicnn.kernels.window import Window


def test_source_expands_each_local_header_once_and_leaves_no_include():
    text = cuda.source("pool.cu")
    assert '#include "' not in text and "#pragma once" not in text
    assert text.count("struct Window2d {") == 1  # window.cuh, reached through pool_elements.cuh
    assert "max_pool_element" in text


def test_name_expressions_cover_every_kernel_in_both_dtypes():
    assert cuda.name_expressions("conv.cu") == [
        "im2col<float>", "im2col<double>", "col2im<float>", "col2im<double>",
        "conv_epilogue<float>", "conv_epilogue<double>", "direct_conv2d<float>", "direct_conv2d<double>",
    ]


def test_kernel_args_follow_the_order_of_window_params():
    """Window.kernel_args() must list the fourteen ints in the order the kernels declare them."""
    header = (cuda.SOURCE_DIR / "window.cuh").read_text()
    macro = re.search(r"#define WINDOW_PARAMS(.*?)\n#define", header, flags=re.S).group(1)
    names = re.findall(r"int (\w+)", macro)
    window = Window(n=2, c=3, h=5, w=7, kh=11, kw=13, sh=17, sw=19, dh=23, dw=29, pads=(31, 37, 41, 43), oh=47, ow=53)
    values = {"n": 2, "c": 3, "h": 5, "w": 7, "kh": 11, "kw": 13, "sh": 17, "sw": 19, "dh": 23, "dw": 29,
              "pad_top": 31, "pad_left": 41, "oh": 47, "ow": 53}
    args = window.kernel_args()
    assert [int(a) for a in args] == [values[name] for name in names]
    assert all(isinstance(a, np.int32) for a in args)


def test_direct_convolution_is_chosen_for_few_input_channels_only():
    def window(channels, kernel):
        return Window(n=8, c=channels, h=28, w=28, kh=kernel, kw=kernel, sh=1, sw=1, dh=1, dw=1,
                      pads=(0, 0, 0, 0), oh=24, ow=24)

    assert cuda.uses_direct_conv(window(1, 5), groups=1, out_channels=8, dtype=np.float32)  # LeNet C1
    assert cuda.uses_direct_conv(window(3, 3), groups=1, out_channels=8, dtype=np.float32)  # an RGB 3x3 stem
    assert cuda.uses_direct_conv(window(32, 3), groups=32, out_channels=32, dtype=np.float32)  # depthwise
    assert not cuda.uses_direct_conv(window(6, 5), groups=1, out_channels=8, dtype=np.float32)  # LeNet C3
    assert not cuda.uses_direct_conv(window(3, 7), groups=1, out_channels=8, dtype=np.float32)  # ResNet's 7x7 stem


def test_poison_outputs_is_scoped_and_nests():
    assert not cuda._poison
    with cuda.poison_outputs():
        with cuda.poison_outputs():
            assert cuda._poison
        assert cuda._poison
    assert not cuda._poison
