"""`conv2d_auto`: `conv2d`'s numbers from the kernel that is fastest for the layer.

The choice depends on the backend and, on CPU, on the input channels per
group (`choose_kernel`); docs/performance.md has the measurements behind it.
"""

from __future__ import annotations

import jax

from jaxcnn.errors import reverse_mode_only
from jaxcnn.nn import cpu_kernels
from jaxcnn.nn.conv import conv_call, geometry_conv
from jaxcnn.nn.geometry import Geometry, IntPair, Padding
from jaxcnn.nn.params import Params

# On CPU, a strided 1x1 conv of one group is a slice and a product; otherwise, with
# at most TAP_SUM_MAX_CHANNELS input channels per group the forward
# sums over kernel taps; with at most BANDED_MAX_CHANNELS (and one group)
# forward and gradients are banded matrix products, while their patches stay
# within BANDED_MAX_PATCH_BYTES (past a CPU cache's size the products wait on
# memory); otherwise `lax` is faster (docs/performance.md, "Convolution kernels").
TAP_SUM_MAX_CHANNELS = 4
BANDED_MAX_CHANNELS = 16
BANDED_MAX_PATCH_BYTES = 8 << 20
KERNELS = ("pointwise", "tap_sum", "banded", "lax")


def choose_kernel(
    x_shape: tuple[int, ...],
    kernel_shape: tuple[int, ...],
    geom: Geometry,
    groups: int = 1,
    backend: str | None = None,
) -> str:
    """The kernel `conv2d_auto` runs: one of `KERNELS`.

    Args:
      x_shape: the NHWC input's shape; a symbolic batch size (`jax.export`) is
        taken as one example.
      kernel_shape: the HWIO kernel's shape; its third axis is the input
        channels per group.
      geom: the kernel's geometry over the input.
      groups: channel groups.
      backend: `"cpu"`, `"gpu"`, `"tpu"`...; None for JAX's default backend.
        Off the CPU every layer goes to `lax` (cuDNN, the TPU's convolution):
        the other kernels are tuned for XLA's CPU backend.
    """
    if (backend or jax.default_backend()) != "cpu":
        return "lax"
    group_in = kernel_shape[2]
    if not isinstance(x_shape[0], int):  # a symbolic batch (jax.export): sized for one example
        x_shape = (1, *x_shape[1:])
    if kernel_shape[:2] == (1, 1) and geom.stride != (1, 1) and groups == 1:
        return "pointwise"
    if group_in <= TAP_SUM_MAX_CHANNELS:
        return "tap_sum"
    if (
        group_in <= BANDED_MAX_CHANNELS
        and groups == 1
        and cpu_kernels.banded_patch_bytes(x_shape, kernel_shape, geom) <= BANDED_MAX_PATCH_BYTES
    ):
        return "banded"
    return "lax"


@reverse_mode_only(
    'on CPU, for forward mode use `conv2d` (in a layer or config, `impl="lax"` or `"patches"`)'
)
def conv2d_auto(
    params: Params,
    x: jax.Array,
    *,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    backend: str | None = None,
) -> jax.Array:
    """`conv2d` computed the fastest way for the layer's shape and backend; same results.

    On CPU, a strided 1x1 conv with one group (a ResNet's shortcut) is a strided
    slice and a matrix product (`jaxcnn.nn.cpu_kernels.pointwise_conv`); any other,
    by input channels per group `c` (`choose_kernel`):

    - `c <= TAP_SUM_MAX_CHANNELS` (a first layer on grey or RGB images): the
      forward is the lecture's sum over kernel taps, which XLA fuses into one
      pass; gradients as below with one group, else from `lax`.
    - `c <= BANDED_MAX_CHANNELS`, one group, and patches of at most
      `BANDED_MAX_PATCH_BYTES`: forward and gradients are matrix products over
      banded patches (`jaxcnn.nn.cpu_kernels.banded_conv`).
    - otherwise `lax.conv_general_dilated`, forward and gradients, the
      gradients written as NHWC convs so that they stay fast inside
      `lax.scan` (`jaxcnn.nn.cpu_kernels.conv_nhwc_grads`); a strided conv's
      input gradient by phases, as one stride-1 conv.

    On GPU and TPU, `lax` with autodiff's gradients: what `conv2d` runs.

    Its gradients are reverse mode only (`jax.grad`, `jax.vjp`) where they
    are written by hand (on CPU): there forward mode raises a TypeError that
    says so. `conv2d` supports every transform. Arguments, shapes and errors as `conv2d`; `backend`
    picks the kernels for that backend (default: JAX's default backend).

    Non-finite inputs: the banded products multiply each patch's pixels by
    the band's zeros too, and `inf * 0` is NaN, so an inf or NaN pixel can
    make NaN of outputs whose windows miss it, in the blocks of columns that
    read it (so only in output rows whose windows hold its row), as FFT and
    Winograd convolutions spread them; `conv2d` gives those outputs finite
    values. Finite inputs are not affected.
    """
    call = conv_call(params, x, stride, padding, dilation, groups)
    kernel = choose_kernel(call.x.shape, call.kernel.shape, call.geom, groups, backend)
    if kernel == "pointwise":
        y = cpu_kernels.pointwise_conv(call.x, call.kernel, call.geom)
    elif kernel == "tap_sum":
        y = cpu_kernels.tap_sum_with_matmul_grads(call.x, call.kernel, call.geom, groups)
    elif kernel == "banded":
        y = cpu_kernels.banded_conv(call.x, call.kernel, call.geom)
    elif (backend or jax.default_backend()) == "cpu":
        y = geometry_conv(call.x, call.kernel, call.geom, groups, cpu_kernels.conv_nhwc_grads)
    else:
        y = geometry_conv(call.x, call.kernel, call.geom, groups)
    return call.finish(y)
