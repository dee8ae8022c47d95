"""conv2d_auto's choice of kernel, per layer shape and backend."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference

import jaxcnn
from jaxcnn.nn.auto import (
    BANDED_MAX_CHANNELS,
    BANDED_MAX_PATCH_BYTES,
    TAP_SUM_MAX_CHANNELS,
    choose_kernel,
)
from jaxcnn.nn.cpu_kernels import banded_patch_bytes
from jaxcnn.nn.geometry import window_geometry


def layer(group_in, groups=1, *, batch=2, size=8):
    """A 3x3 same-padded layer's (x_shape, kernel_shape, geom) with `group_in` channels per group."""
    x_shape = (batch, size, size, group_in * groups)
    kernel_shape = (3, 3, group_in, 4 * groups)
    return x_shape, kernel_shape, window_geometry((size, size), 3, 1, 1)


@pytest.mark.parametrize(
    "group_in, groups, backend, kernel",
    [
        (1, 1, "cpu", "tap_sum"),
        (TAP_SUM_MAX_CHANNELS, 2, "cpu", "tap_sum"),
        (TAP_SUM_MAX_CHANNELS + 1, 1, "cpu", "banded"),
        (BANDED_MAX_CHANNELS, 1, "cpu", "banded"),
        (BANDED_MAX_CHANNELS, 2, "cpu", "lax"),
        (BANDED_MAX_CHANNELS + 1, 1, "cpu", "lax"),
        (1, 1, "gpu", "lax"),
        (8, 1, "gpu", "lax"),
        (1, 1, "tpu", "lax"),
        (8, 1, "tpu", "lax"),
    ],
)
def test_kernel_by_channels_and_backend(group_in, groups, backend, kernel):
    assert choose_kernel(*layer(group_in, groups), groups, backend) == kernel


@pytest.mark.parametrize("group_in", [1, 32])
def test_a_strided_1x1_conv_of_one_group_is_a_slice_and_a_product(group_in):
    x_shape, kernel_shape = (2, 8, 8, group_in), (1, 1, group_in, 4)
    strided = window_geometry((8, 8), 1, 2, 0)
    assert choose_kernel(x_shape, kernel_shape, strided, 1, "cpu") == "pointwise"
    assert choose_kernel(x_shape, kernel_shape, strided, 1, "gpu") == "lax"
    assert choose_kernel(x_shape, kernel_shape, window_geometry((8, 8), 1, 1, 0), 1, "cpu") != (
        "pointwise"
    )


@pytest.mark.parametrize("stride, padding", [(2, 0), ((3, 2), ((1, 0), (2, 1))), (2, "SAME")])
def test_pointwise_conv_and_its_gradients_match_numpy(stride, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 8, 5)).astype(np.float32)
    params = {
        "kernel": rng.standard_normal((1, 1, 5, 3)).astype(np.float32),
        "bias": rng.standard_normal(3).astype(np.float32),
    }
    geom = window_geometry((7, 8), 1, stride, padding)
    (top, bottom), (left, right) = geom.padding
    (sh, sw), (oh, ow) = geom.stride, geom.out_hw
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    read = padded[:, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw]
    expected = np.einsum("nhwc,co->nhwo", read, params["kernel"][0, 0]) + params["bias"]
    auto = functools.partial(jaxcnn.conv2d_auto, stride=stride, padding=padding, backend="cpu")
    np.testing.assert_allclose(jax.jit(auto)(params, x), expected, rtol=1e-5, atol=1e-5)
    # d/dx of sum(y * g): each read pixel gets kernel @ g, the others nothing.
    g = rng.standard_normal(expected.shape).astype(np.float32)
    dx_padded = np.zeros_like(padded)
    dx_padded[:, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw] = g @ params["kernel"][0, 0].T
    dx = dx_padded[:, top : top + 7, left : left + 8]
    dparams, dx_auto = jax.grad(lambda p, x: jnp.sum(auto(p, x) * g), (0, 1))(params, x)
    np.testing.assert_allclose(dx_auto, dx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        dparams["kernel"][0, 0], np.einsum("nhwc,nhwo->co", read, g), rtol=1e-4, atol=1e-4
    )


def test_default_backend_is_jaxs():
    expected = "tap_sum" if jax.default_backend() == "cpu" else "lax"
    assert choose_kernel(*layer(1)) == expected


def test_banded_gives_way_to_lax_when_its_patches_outgrow_the_cap():
    small = layer(BANDED_MAX_CHANNELS, batch=2, size=8)
    # A large batch of 32x32 images: its patches are far past a CPU cache.
    big = layer(BANDED_MAX_CHANNELS, batch=4096, size=32)
    assert banded_patch_bytes(*small) <= BANDED_MAX_PATCH_BYTES < banded_patch_bytes(*big)
    assert choose_kernel(*small, backend="cpu") == "banded"
    assert choose_kernel(*big, backend="cpu") == "lax"


def test_banded_patch_bytes_counts_what_banded_conv_builds():
    # With one output column per block (B = 1) the patches are im2col's: kh * kw * c per pixel.
    x_shape, kernel_shape = (2, 5, 1, 3), (3, 3, 3, 4)
    geom = window_geometry((5, 1), 3, 1, ((1, 1), (1, 1)))
    assert banded_patch_bytes(x_shape, kernel_shape, geom) == 4 * 2 * 5 * 1 * 3 * 3 * 3


def conv_primitives(fn, *args) -> int:
    return str(jax.make_jaxpr(fn)(*args)).count("conv_general_dilated")


@pytest.mark.parametrize("channels", [1, 8])
def test_off_the_cpu_every_layer_is_lax_with_the_same_numbers(channels):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 9, 9, channels)).astype(np.float32)
    params = {"kernel": rng.standard_normal((3, 3, channels, 4)).astype(np.float32)}
    expected = reference.conv2d(x, params["kernel"], padding=((1, 1), (1, 1)))
    for backend in ("cpu", "gpu", "tpu"):
        conv = functools.partial(jaxcnn.conv2d_auto, padding=1, backend=backend)
        np.testing.assert_allclose(conv(params, x), expected, rtol=1e-5, atol=1e-5)
        # What each backend runs, read from the traced program: tap sums and bands use no conv.
        assert conv_primitives(conv, params, x) == (0 if backend == "cpu" else 1)
        # Off the CPU the gradients are autodiff's, so forward mode works too.
        if backend != "cpu":
            jax.jvp(functools.partial(conv, params), (jnp.asarray(x),), (jnp.ones_like(x),))


def test_fused_conv_pool_off_the_cpu_is_conv_then_pool():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    params = {
        "kernel": rng.standard_normal((3, 3, 3, 5)).astype(np.float32),
        "bias": rng.standard_normal(5).astype(np.float32),
    }
    expected = jaxcnn.max_pool2d(jaxcnn.conv2d(params, x, padding=1), 2)
    for backend in ("cpu", "gpu"):
        fused = functools.partial(jaxcnn.conv2d_max_pool, window=2, padding=1, backend=backend)
        np.testing.assert_allclose(fused(params, x), expected, rtol=1e-5, atol=1e-5)
        assert conv_primitives(fused, params, x) == (0 if backend == "cpu" else 1)


@pytest.mark.parametrize("in_channels", [2, 32])  # tap sums; lax with NHWC gradients
def test_forward_mode_on_cpu_is_one_error_naming_what_takes_it(in_channels):
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((2, 6, 6, in_channels)), jnp.float32)
    tangent = jnp.asarray(rng.standard_normal(x.shape), jnp.float32)
    params = {"kernel": jnp.asarray(rng.standard_normal((3, 3, in_channels, 4)), jnp.float32)}
    auto = functools.partial(jaxcnn.conv2d_auto, params, padding=1, backend="cpu")
    with pytest.raises(TypeError, match=r"^`conv2d_auto` has gradients for reverse mode only.*"):
        jax.jvp(auto, (x,), (tangent,))
    with pytest.raises(TypeError, match=r'impl="lax"'):
        jax.jacfwd(auto)(x)
    # What it names takes forward mode: a conv is linear in its input, so the derivative
    # along `tangent` is the conv of `tangent`.
    y, derivative = jax.jvp(functools.partial(jaxcnn.conv2d, params, padding=1), (x,), (tangent,))
    pads = ((1, 1), (1, 1))
    np.testing.assert_allclose(y, reference.conv2d(x, params["kernel"], padding=pads), atol=1e-4)
    expected = reference.conv2d(tangent, params["kernel"], padding=pads)
    np.testing.assert_allclose(derivative, expected, rtol=1e-4, atol=1e-4)
