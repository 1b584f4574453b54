"""Every compiled kernel's signature, in one table: its name, and its arguments' types and names.

Neither ctypes nor CuPy can read a compiled function's parameters: an argument of the wrong type
or in the wrong place is not refused, it corrupts memory. So each kernel is described once, here,
and both callers are made from the description: native.py sets every C function's ctypes
argtypes from C_KERNELS, and cuda.py packs every launch's arguments by CUDA_KERNELS.
tests/kernels/test_signatures.py checks each entry against the declaration in its source, and
test_cuda_launch.py checks every launch against the table and the source both.

The types, what each is in C (c/*.c, built for float and for double) and in CUDA (cuda/*.cu,
templates over T), and what a caller passes:

  real*    REAL* / T*: an array of the kernel's element type (None for an absent one, in C)
  int*     CUDA int*: an int32 array (max pooling's argmax)
  byte*    C unsigned char*: a uint8 array (max pooling's argmax)
  int      int (32 bits): a Python int or bool
  long     a 64-bit count: C long, CUDA long long
  double   C double: a Python float
  window   Window2d (window.h) by value: a `Window` (minicnn.kernels.window)

Every C kernel returns an int status: 0, -1 when memory ran out, or -2 for a stride it does not
take (native.UNSUPPORTED); native.py checks it after every call.
"""

from __future__ import annotations

from dataclasses import dataclass

TYPES = ("real*", "int*", "byte*", "int", "long", "double", "window")


@dataclass(frozen=True)
class Signature:
    """A kernel's name and its arguments, (type, name) pairs in order."""

    name: str
    arguments: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        return f"{self.name}({', '.join(f'{kind} {name}' for kind, name in self.arguments)})"

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(kind for kind, _ in self.arguments)


def _parse(declaration: str) -> Signature:
    name, _, rest = declaration.partition("(")
    arguments = tuple(tuple(argument.split()) for argument in rest.removesuffix(")").split(","))
    for argument in arguments:
        if len(argument) != 2 or argument[0] not in TYPES:
            raise ValueError(f"minicnn: {declaration}: {' '.join(argument)!r} is not '<type> <name>' of {TYPES}")
    return Signature(name, arguments)


def _table(*declarations: str) -> dict[str, Signature]:
    return {signature.name: signature for signature in map(_parse, declarations)}


# c/*.c, by function name.
C_KERNELS = _table(
    "conv_forward(real* x, real* weight, real* bias, real* mask, real* y, window window, long co, int relu)",
    "conv_weight_grad(real* x, real* g, real* mask, real* gw, real* gb, window window, long co)",
    "max_pool(real* x, real* y, byte* argmax, window window)",
    "max_pool_backward(real* g, byte* argmax, real* gx, window window)",
    "batch_norm_stats(real* x, real* mean, real* var, long n, long c, long positions)",
    "batch_norm_forward(real* x, real* mean, real* inv_std, real* weight, real* bias, real* y, long n, long c,"
    " long positions)",
    "batch_norm_sums(real* g, real* x, real* mean, real* inv_std, real* g_sum, real* g_dot, long n, long c,"
    " long positions)",
    "batch_norm_input_grad(real* g, real* x, real* mean, real* inv_std, real* scale, real* g_sum, real* g_dot,"
    " real* gx, long n, long c, long positions)",
    "relu_forward(real* x, real* y, long count)",
    "relu_backward(real* g, real* y, real* gx, long count)",
    "add(real* a, real* b, real* out, long count)",
    "momentum_step(real* p, real* g, real* b, long count, double lr, double momentum, double dampening)",
)

# cuda/*.cu, by source and kernel name; each kernel is instantiated for float and for double.
CUDA_KERNELS = {
    "conv.cu": _table(
        "im2col(real* x, real* cols, long total, window g)",
        "col2im(real* cols, real* dx, long total, window g)",
        "conv_epilogue(real* cm, real* bias, real* y, long total, int has_bias, int activation, int images,"
        " int channels, long plane)",
        "direct_conv2d(real* x, real* weight, real* bias, real* y, long total, int has_bias, int activation,"
        " int out_channels, int groups, window g)",
    ),
    "pool.cu": _table(
        "max_pool(real* x, real* y, int* argmax, long total, window g)",
        "max_pool_backward(real* dy, int* argmax, real* dx, long total, window g)",
        "avg_pool(real* x, real* y, long total, int count_include_pad, window g)",
        "avg_pool_backward(real* dy, real* dx, long total, int count_include_pad, window g)",
    ),
}
