import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxcnn

# The lecture's pooling example with a 2x2 window at stride 1.
X = np.array([[1, 1, 2], [-5, 5, 0], [1, 1, 0]], np.float32)[None, :, :, None]


def test_lecture_max_pool():
    y = jaxcnn.max_pool2d(X, 2, stride=1)
    np.testing.assert_array_equal(y[0, :, :, 0], [[5, 5], [5, 5]])


def test_lecture_avg_pool():
    y = jaxcnn.avg_pool2d(X, 2, stride=1)
    # (1+1-5+5)/4, (1+2+5+0)/4; (-5+5+1+1)/4, (5+0+1+0)/4
    np.testing.assert_array_equal(y[0, :, :, 0], [[0.5, 2.0], [0.5, 1.5]])


def test_stride_defaults_to_window():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(jaxcnn.max_pool2d(x, 2)[0, :, :, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(jaxcnn.avg_pool2d(x, 2)[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])


def test_max_pool_pads_with_minus_infinity():
    x = -np.ones((1, 2, 2, 1), np.float32)  # all negative: zero padding would win
    y = jaxcnn.max_pool2d(x, 2, stride=1, padding=1)
    np.testing.assert_array_equal(y, -np.ones((1, 3, 3, 1)))


def test_avg_pool_count_include_pad():
    x = np.ones((1, 2, 2, 1), np.float32)
    corner = jaxcnn.avg_pool2d(x, 2, stride=1, padding=1)[0, 0, 0, 0]
    assert corner == 0.25  # one real pixel of four
    exact = jaxcnn.avg_pool2d(x, 2, stride=1, padding=1, count_include_pad=False)
    np.testing.assert_array_equal(exact, np.ones((1, 3, 3, 1)))


@st.composite
def pool_cases(draw):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.sampled_from([None, 1, 2, (1, 3)]))
    padding = draw(st.sampled_from([0, 1, (1, 0), ((0, 1), (2, 0)), "SAME", "VALID"]))
    h, w = draw(st.integers(kh + 2, kh + 7)), draw(st.integers(kw + 2, kw + 7))
    return dict(
        shape=(2, h, w, 3),
        window=(kh, kw),
        stride=stride,
        padding=padding,
        seed=draw(st.integers(0, 999)),
    )


@settings(max_examples=40, deadline=None)
@given(pool_cases())
def test_pools_match_numpy_loops(case):
    x = np.random.default_rng(case["seed"]).standard_normal(case["shape"]).astype(np.float32)
    window, padding = case["window"], case["padding"]
    stride = window if case["stride"] is None else case["stride"]
    stride = (stride, stride) if isinstance(stride, int) else stride
    pads = reference.pad_pairs_for(padding, x.shape[1:3], window, stride)
    if any(max(p) >= k for p, k in zip(pads, window)):
        with pytest.raises(ValueError, match="must be smaller than `window`"):
            jaxcnn.max_pool2d(x, window, stride=case["stride"], padding=padding)
        return
    options = dict(stride=case["stride"], padding=padding)

    expected_max = reference.pool2d(x, window, stride, pads, lambda v, m: v.max((1, 2)), -np.inf)
    np.testing.assert_allclose(jaxcnn.max_pool2d(x, window, **options), expected_max, rtol=1e-6)

    area = window[0] * window[1]
    expected_avg = reference.pool2d(x, window, stride, pads, lambda v, m: v.sum((1, 2)) / area, 0)
    np.testing.assert_allclose(
        jaxcnn.avg_pool2d(x, window, **options), expected_avg, rtol=1e-5, atol=1e-6
    )

    expected_exact = reference.pool2d(
        x, window, stride, pads, lambda v, m: v.sum((1, 2)) / m.sum(), 0
    )
    np.testing.assert_allclose(
        jaxcnn.avg_pool2d(x, window, count_include_pad=False, **options),
        expected_exact,
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("pool", [jaxcnn.max_pool2d, jaxcnn.avg_pool2d])
def test_pool_composes_with_jit_grad_vmap(pool):
    x = np.random.default_rng(0).standard_normal((3, 2, 4, 4, 2)).astype(np.float32)
    y = jax.jit(jax.vmap(lambda x: pool(x, 2)))(x)
    np.testing.assert_allclose(y, np.stack([pool(xi, 2) for xi in x]), rtol=1e-6)
    g = jax.jit(jax.grad(lambda x: pool(x, 2).sum()))(x[0])
    if pool is jaxcnn.avg_pool2d:
        np.testing.assert_allclose(g, np.full_like(x[0], 0.25))
    else:  # the gradient flows to each window's maximum alone
        expected = np.zeros_like(x[0])
        for b, i, j, c in np.ndindex(2, 2, 2, 2):
            window = x[0, b, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2, c]
            p, q = np.unravel_index(window.argmax(), (2, 2))
            expected[b, 2 * i + p, 2 * j + q, c] = 1
        np.testing.assert_array_equal(g, expected)


@pytest.mark.parametrize("stride", [None, 1])  # the tiled (stride = window) and general paths
def test_max_pool_gradient_with_ties(stride):
    x = np.array([[3, 1, 3], [3, 3, 0], [1, 2, 3]], np.float32)[None, :, :, None]
    g = jax.grad(lambda x: jaxcnn.max_pool2d(x, 2, stride=stride, padding=((0, 1), (0, 1))).sum())(
        x
    )
    if stride is None:  # tiles share ties: [[3,1],[3,3]] gives 1/3 to each 3; [[3,-],[0,-]],
        # [[1,2],[-,-]] and [[3,-],[-,-]] have one maximum each.
        third = 1 / 3
        expected = [[third, 0, 1], [third, third, 0], [0, 1, 1]]
    else:  # nine overlapping windows, each sending 1 to its first maximum:
        # (0,0)->(0,0) (0,1)->(0,2) (0,2)->(0,2) (1,0)->(1,0) (1,1)->(1,1) (1,2)->(2,2)
        # (2,0)->(2,1) (2,1)->(2,2) (2,2)->(2,2)
        expected = [[1, 0, 2], [1, 1, 0], [0, 1, 3]]
    np.testing.assert_allclose(g[0, :, :, 0], expected, rtol=1e-6)


@pytest.mark.parametrize("pool", [jaxcnn.max_pool2d, jaxcnn.avg_pool2d])
@pytest.mark.parametrize(
    "x, window, options, error, match",
    [
        (jnp.ones((4, 4)), 2, {}, ValueError, "`x` must be a 4-D NHWC batch"),
        (jnp.ones((1, 4, 4, 1)), 5, {}, ValueError, "`window` .* larger than the padded input"),
        (jnp.ones((1, 4, 4, 1)), 0, {}, ValueError, "`window` must be >= 1"),
        (jnp.ones((1, 4, 4, 1)), 2, dict(stride=0), ValueError, "`stride` must be >= 1"),
        (jnp.ones((1, 4, 4, 1)), 2, dict(padding="same-ish"), ValueError, "'SAME' or 'VALID'"),
        (jnp.ones((1, 4, 4, 1)), 2, dict(padding=-2), ValueError, "non-negative"),
        (jnp.ones((1, 4, 4, 1)), 2.0, {}, TypeError, "`window` must be an int"),
        (
            jnp.ones((1, 4, 4, 1)),
            2,
            dict(padding=(0, 2)),
            ValueError,
            "must be smaller than `window`",
        ),
    ],
)
def test_pool_bad_input(pool, x, window, options, error, match):
    with pytest.raises(error, match=match):
        jax.jit(lambda x: pool(x, window, **options))(x)


def test_global_avg_pool_is_each_channels_mean():
    x = np.random.default_rng(0).standard_normal((2, 5, 7, 3)).astype(np.float32)
    np.testing.assert_allclose(jaxcnn.global_avg_pool2d(x), x.mean((1, 2)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jaxcnn.global_avg_pool2d(x[0]), x[0].mean((0, 1)), rtol=1e-6)


def pytorch_bins(size, out):
    """PyTorch's adaptive pooling bins, restated: [floor(i * n / out), ceil((i + 1) * n / out))."""
    return [(int(np.floor(i * size / out)), int(np.ceil((i + 1) * size / out))) for i in range(out)]


@pytest.mark.parametrize(
    "hw, out", [((6, 6), 3), ((7, 5), (3, 2)), ((5, 5), 1), ((10, 7), (4, 3)), ((3, 3), 5)]
)
def test_adaptive_avg_pool_uses_pytorchs_bins(hw, out):
    x = np.random.default_rng(1).standard_normal((2, *hw, 3)).astype(np.float32)
    oh, ow = (out, out) if isinstance(out, int) else out
    expected = np.zeros((2, oh, ow, 3))
    for i, (r0, r1) in enumerate(pytorch_bins(hw[0], oh)):
        for j, (c0, c1) in enumerate(pytorch_bins(hw[1], ow)):
            expected[:, i, j] = x[:, r0:r1, c0:c1].mean((1, 2))
    y = jax.jit(lambda x: jaxcnn.adaptive_avg_pool2d(x, out))(x)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_adaptive_avg_pool_bad_size():
    with pytest.raises(ValueError, match="`output_size` must be >= 1"):
        jaxcnn.adaptive_avg_pool2d(np.ones((1, 4, 4, 1)), 0)
    with pytest.raises(ValueError, match="`x` must be a 4-D NHWC batch"):
        jaxcnn.global_avg_pool2d(np.ones((4, 4)))
