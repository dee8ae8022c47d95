import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference
from backends import cpu_only
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxcnn
from jaxcnn import models
from jaxcnn.nn import layers

# The lecture's worked example (d2l): a 3x3 image and a 2x2 kernel.
X = np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0]], np.float32)[None, :, :, None]
K = np.array([[1, 1], [-1, -1]], np.float32)[:, :, None, None]


def test_lecture_example():
    # Hand-computed conv: [[1+1-1-0, 1+1-0-0], [1+0-1-1, 0+0-1-0]] = [[1, 2], [-1, -1]];
    # its 2x2 max is 2, and a 1x2 pool keeps each row's larger value.
    y = jaxcnn.conv2d_max_pool({"kernel": K}, X, 2)
    np.testing.assert_array_equal(y[0, :, :, 0], [[2]])
    y = jaxcnn.conv2d_max_pool({"kernel": K}, X, (1, 2))
    np.testing.assert_array_equal(y[0, :, :, 0], [[2], [-1]])


@st.composite
def fused_cases(draw):
    # More than BANDED_MAX_CHANNELS (16) input channels take conv2d_auto and max_pool2d.
    cin = draw(st.sampled_from([1, 2, 6, 17]))
    cout = draw(st.sampled_from([1, 3, 16]))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    window = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pads = [draw(st.integers(0, 2)) for _ in range(4)]
    padding = draw(
        st.sampled_from(
            [pads[0], (pads[0], pads[1]), ((pads[0], pads[1]), (pads[2], pads[3])), "SAME", "VALID"]
        )
    )
    # Inputs at least as large as the kernel and the window together need.
    h = draw(st.integers(kh + window[0] - 1, kh + window[0] + 6))
    w = draw(st.integers(kw + window[1] - 1, kw + window[1] + 6))
    return dict(
        x=(draw(st.integers(1, 2)), h, w, cin),
        kernel=(kh, kw, cin, cout),
        window=window,
        padding=padding,
        use_bias=draw(st.booleans()),
        integers=draw(st.booleans()),  # small integers: many tied maxima
        seed=draw(st.integers(0, 2**16)),
    )


def make_case(case):
    rng = np.random.default_rng(case["seed"])

    def draw(shape):
        if case["integers"]:
            return rng.integers(-2, 3, shape).astype(np.float32)
        return rng.standard_normal(shape).astype(np.float32)

    params = {"kernel": draw(case["kernel"])}
    if case["use_bias"]:
        params["bias"] = draw(case["kernel"][-1:])
    return draw(case["x"]), params


@settings(max_examples=40, deadline=None)
@given(fused_cases())
def test_matches_numpy_loops(case):
    x, params = make_case(case)
    kh, kw = case["kernel"][:2]
    pads = reference.pad_pairs_for(case["padding"], x.shape[1:3], (kh, kw), (1, 1))
    conv = reference.conv2d(x, params["kernel"], params.get("bias"), padding=pads)
    expected = reference.pool2d(
        conv, case["window"], case["window"], ((0, 0), (0, 0)), lambda v, _: v.max((1, 2)), 0
    )
    fused = functools.partial(
        jaxcnn.conv2d_max_pool, window=case["window"], padding=case["padding"]
    )
    y = jax.jit(fused)(params, x)  # one compile per case, not one per op and shape
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(fused_cases())
def test_gradients_match_conv_then_pool(case):
    # The reference is autodiff through conv2d and max_pool2d, whose gradient
    # shares a window's tied maxima equally.
    x, params = make_case(case)
    window, padding = case["window"], case["padding"]
    composed = jaxcnn.max_pool2d(jaxcnn.conv2d(params, x, padding=padding), window)
    cotangent = np.random.default_rng(case["seed"] + 1).standard_normal(composed.shape)

    def loss(fn):
        return lambda p, x: jnp.sum(fn(p, x) * cotangent)

    # Jitted: one compile per case, where op-by-op dispatch compiles each op's shape.
    expected = jax.jit(
        jax.grad(
            loss(lambda p, x: jaxcnn.max_pool2d(jaxcnn.conv2d(p, x, padding=padding), window)),
            (0, 1),
        )
    )(params, x)
    got = jax.jit(
        jax.grad(loss(lambda p, x: jaxcnn.conv2d_max_pool(p, x, window, padding=padding)), (0, 1))
    )(params, x)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), got, expected)


@cpu_only
@pytest.mark.parametrize(
    "layer",
    [
        lambda p, x: jaxcnn.conv2d_max_pool(p, x, 2, padding=2),
        lambda p, x: jaxcnn.conv2d_avg_pool(p, x, 2, padding=2, activation=jax.nn.sigmoid),
    ],
    ids=["max", "avg"],
)
def test_gradient_has_no_conv_and_no_window_reduction(layer):
    x = jnp.ones((2, 28, 28, 1))
    params = {"kernel": jnp.ones((5, 5, 1, 6)), "bias": jnp.ones(6)}
    text = str(jax.make_jaxpr(jax.grad(lambda p, x: layer(p, x).sum(), (0, 1)))(params, x))
    assert "conv_general_dilated" not in text and "reduce_window" not in text
    assert "dot_general" in text


def test_composes_with_jit_vmap_jvp_and_unbatched_input():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 12, 12, 2)).astype(np.float32)
    params = {"kernel": rng.standard_normal((3, 3, 2, 4)).astype(np.float32), "bias": np.ones(4)}
    expected = jaxcnn.max_pool2d(jaxcnn.conv2d(params, x, padding=1), 2)
    jitted = jax.jit(lambda p, x: jaxcnn.conv2d_max_pool(p, x, 2, padding=1))
    np.testing.assert_allclose(jitted(params, x), expected, rtol=1e-5, atol=1e-5)
    mapped = jax.vmap(lambda image: jaxcnn.conv2d_max_pool(params, image, 2, padding=1))(x)
    np.testing.assert_allclose(mapped, expected, rtol=1e-5, atol=1e-5)
    # Forward mode too, through the bias's per-example row: as the two layers' (no ties here).
    params = jax.tree.map(jnp.float32, params)
    tangents = jax.tree.map(lambda a: rng.standard_normal(a.shape).astype(np.float32), params)
    _, derivative = jax.jvp(
        lambda p: jaxcnn.conv2d_max_pool(p, x, 2, padding=1), (params,), (tangents,)
    )
    _, expected = jax.jvp(
        lambda p: jaxcnn.max_pool2d(jaxcnn.conv2d(p, x, padding=1), 2), (params,), (tangents,)
    )
    np.testing.assert_allclose(derivative, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("value", [np.inf, np.nan])
@pytest.mark.parametrize("channels", [1, 8])
def test_non_finite_pixel_stays_in_the_patches_that_hold_it(value, channels):
    # As documented: the pooled outputs whose 6x6 patch (a 5x5 kernel, a 2x2
    # pool, padding 2) holds the pixel are non-finite, since the band's zeros
    # times inf are NaN; every other output is the two layers' value.
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1, (2, 12, 12, channels)).astype(np.float32)
    i, j = 5, 8
    x[0, i, j, channels - 1] = value
    params = {"kernel": rng.uniform(0.5, 1, (5, 5, channels, 3)).astype(np.float32)}
    y = np.asarray(jaxcnn.conv2d_max_pool(params, x, 2, padding=2))
    expected = np.asarray(jaxcnn.max_pool2d(jaxcnn.conv2d(params, x, padding=2), 2))
    # Pooled output a reads padded rows 2a .. 2a + 5, i.e. image rows 2a - 2 .. 2a + 3.
    rows = [a for a in range(6) if 2 * a - 2 <= i <= 2 * a + 3]
    cols = [b for b in range(6) if 2 * b - 2 <= j <= 2 * b + 3]
    holds = np.zeros(y.shape, bool)
    holds[0, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = True
    assert not np.isfinite(y[holds]).any()
    assert not np.isfinite(expected[holds]).all()  # the reference sees the pixel too
    np.testing.assert_allclose(y[~holds], expected[~holds], rtol=1e-5)


@pytest.mark.parametrize("impl", ["lax", "patches", "auto"])
def test_layer_is_conv_then_pool_for_every_impl(impl):
    layer = layers.conv2d_max_pool(4, 3, 2, padding=1, impl=impl)
    x = np.random.default_rng(0).standard_normal((2, 9, 9, 3)).astype(np.float32)
    shape, params = layer.init(jax.random.key(0), x.shape)
    expected = jaxcnn.max_pool2d(jaxcnn.conv2d(params, x, padding=1), 2)
    assert shape == expected.shape == (2, 4, 4, 4)
    np.testing.assert_allclose(layer.apply(params, x), expected, rtol=1e-5, atol=1e-5)


def test_lenet_gradients_match_relu_before_pool():
    # models.lenet pools before its ReLUs; with ties (flat image rows make
    # the first conv's outputs equal) the gradients are still those of the
    # lecture's order, conv -> relu -> pool.
    model = models.lenet(channels=(4, 8), hidden=(16, 12), conv_impl="auto")
    _, p = model.init(jax.random.key(1), (1, 28, 28, 1))
    # Multiples of 1/8 make every conv output exact, so ties are ties in any summation order.
    p = jax.tree.map(lambda a: np.round(np.asarray(a) * 8) / 8, p)
    x = np.round(np.random.default_rng(0).random((3, 28, 28, 1)) * 8).astype(np.float32) / 8
    x[:, :10] = 0.5

    def lecture_order(p, x):
        h = jaxcnn.max_pool2d(jaxcnn.relu(jaxcnn.conv2d(p["conv1"], x, padding=2)), 2)
        h = jaxcnn.max_pool2d(jaxcnn.relu(jaxcnn.conv2d(p["conv2"], h)), 2)
        h = jaxcnn.relu(jaxcnn.dense(p["fc1"], jaxcnn.flatten(h)))
        return jaxcnn.dense(p["fc3"], jaxcnn.relu(jaxcnn.dense(p["fc2"], h)))

    def loss(apply):
        return lambda p: jnp.sum(jax.nn.log_softmax(apply(p, x))[:, 0])

    got, expected = jax.grad(loss(model.apply))(p), jax.grad(loss(lecture_order))(p)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), got, expected)


@pytest.mark.parametrize(
    "x, kernel, window, options, error, match",
    [
        ((1, 4, 4, 1), (3, 3, 1, 2), 3, {}, ValueError, "`window` .* larger than the padded input"),
        ((1, 4, 4, 1), (3, 3, 1, 2), 0, {}, ValueError, "`window` must be >= 1"),
        ((1, 4, 4, 1), (3, 3, 1, 2), 2.0, {}, TypeError, "`window` must be an int"),
        ((1, 4, 4, 1), (5, 5, 1, 2), 1, {}, ValueError, "`kernel` .* larger than the padded"),
        ((1, 4, 4, 2), (3, 3, 1, 2), 1, {}, ValueError, "kernel expects"),
        ((1, 4, 4, 1), (3, 3, 1, 2), 1, dict(padding=-1), ValueError, "non-negative"),
        ((4, 4), (3, 3, 1, 2), 1, {}, ValueError, "`x` must be a 4-D NHWC batch"),
    ],
)
def test_bad_input(x, kernel, window, options, error, match):
    with pytest.raises(error, match=match):
        jaxcnn.conv2d_max_pool({"kernel": jnp.ones(kernel)}, jnp.ones(x), window, **options)


@pytest.mark.parametrize("size", [12, 200])  # pooled 6 x 6 x 8 per example, and 100 x 100 x 8
def test_bias_gradient_is_the_sum_of_the_output_gradient(size):
    # The bias is added to each example's (h * w * c) values as one tiled row,
    # up to fused.PER_EXAMPLE_BIAS_MAX_SIZE values (here under it, then over it).
    rng = np.random.default_rng(size)
    x = rng.standard_normal((3, size, size, 1)).astype(np.float32)
    params = {
        "kernel": rng.standard_normal((5, 5, 1, 8)).astype(np.float32),
        "bias": rng.standard_normal(8).astype(np.float32),
    }
    y = jaxcnn.conv2d_max_pool(params, x, 2, padding=2)
    cotangent = rng.standard_normal(y.shape).astype(np.float32)
    grads = jax.grad(lambda p: jnp.sum(jaxcnn.conv2d_max_pool(p, x, 2, padding=2) * cotangent))(
        params
    )
    np.testing.assert_allclose(
        grads["bias"], cotangent.astype(np.float64).sum((0, 1, 2)), rtol=1e-4, atol=1e-3
    )
    no_bias = jaxcnn.conv2d_max_pool({"kernel": params["kernel"]}, x, 2, padding=2)
    np.testing.assert_allclose(y, no_bias + params["bias"], rtol=1e-6, atol=1e-6)


# conv2d_avg_pool: the lecture's conv -> sigmoid -> average pool as one layer.
ACTIVATIONS = {"sigmoid": (jax.nn.sigmoid, lambda v: 1 / (1 + np.exp(-v))), "none": (None, None)}


def conv_act_avg_pool(params, x, window, padding, activation):
    """The three layers, one after the other: what `conv2d_avg_pool` must equal."""
    y = jaxcnn.conv2d(params, x, padding=padding)
    return jaxcnn.avg_pool2d(y if activation is None else activation(y), window)


@settings(max_examples=40, deadline=None)
@given(fused_cases(), st.sampled_from(sorted(ACTIVATIONS)))
def test_avg_pool_matches_numpy_loops(case, activation):
    x, params = make_case(case)
    fn, numpy_fn = ACTIVATIONS[activation]
    kh, kw = case["kernel"][:2]
    pads = reference.pad_pairs_for(case["padding"], x.shape[1:3], (kh, kw), (1, 1))
    conv = reference.conv2d(x, params["kernel"], params.get("bias"), padding=pads)
    conv = conv if numpy_fn is None else numpy_fn(conv)
    expected = reference.pool2d(
        conv, case["window"], case["window"], ((0, 0), (0, 0)), lambda v, _: v.mean((1, 2)), 0
    )
    fused = functools.partial(
        jaxcnn.conv2d_avg_pool, window=case["window"], padding=case["padding"], activation=fn
    )
    np.testing.assert_allclose(jax.jit(fused)(params, x), expected, rtol=1e-4, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(fused_cases(), st.sampled_from(sorted(ACTIVATIONS)))
def test_avg_pool_gradients_match_the_three_layers(case, activation):
    # Its input, kernel and bias gradients are written by hand on CPU: against
    # autodiff through conv2d, the activation and avg_pool2d.
    x, params = make_case(case)
    window, padding, fn = case["window"], case["padding"], ACTIVATIONS[activation][0]
    composed = conv_act_avg_pool(params, x, window, padding, fn)
    cotangent = np.random.default_rng(case["seed"] + 1).standard_normal(composed.shape)

    def grads(layer):
        return jax.jit(jax.grad(lambda p, x: jnp.sum(layer(p, x) * cotangent), (0, 1)))(params, x)

    expected = grads(lambda p, x: conv_act_avg_pool(p, x, window, padding, fn))
    got = grads(lambda p, x: jaxcnn.conv2d_avg_pool(p, x, window, padding=padding, activation=fn))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), got, expected)


def test_avg_pool_takes_vmap_and_unbatched_input():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 12, 12, 2)).astype(np.float32)
    params = {"kernel": rng.standard_normal((3, 3, 2, 4)).astype(np.float32), "bias": np.ones(4)}
    expected = conv_act_avg_pool(params, x, 2, 1, jax.nn.sigmoid)

    def layer(image):
        return jaxcnn.conv2d_avg_pool(params, image, 2, padding=1, activation=jax.nn.sigmoid)

    np.testing.assert_allclose(jax.vmap(layer)(x), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer(x[1]), expected[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", ["lax", "patches", "auto"])
def test_avg_pool_layer_is_the_three_layers_for_every_impl(impl):
    layer = layers.conv2d_avg_pool(4, 3, 2, activation=jax.nn.tanh, padding=1, impl=impl)
    x = np.random.default_rng(0).standard_normal((2, 9, 9, 3)).astype(np.float32)
    shape, params = layer.init(jax.random.key(0), x.shape)
    expected = conv_act_avg_pool(params, x, 2, 1, jax.nn.tanh)
    assert shape == expected.shape == (2, 4, 4, 4)
    assert layer.activation is jax.nn.tanh
    np.testing.assert_allclose(layer.apply(params, x), expected, rtol=1e-5, atol=1e-5)


def test_d2l_lenet_trains_as_the_lecture_writes_it():
    # models.lenet_d2l makes each conv, sigmoid and pool one layer: its logits and
    # gradients are those of the lecture's eight layers, conv -> sigmoid -> pool twice.
    model = models.lenet_d2l(conv_impl="auto")
    _, p = model.init(jax.random.key(1), (1, 28, 28, 1))
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype(np.float32)

    def lecture(p, x):
        h = conv_act_avg_pool(p["conv1"], x, 2, 2, jax.nn.sigmoid)
        h = conv_act_avg_pool(p["conv2"], h, 2, 0, jax.nn.sigmoid)
        h = jax.nn.sigmoid(jaxcnn.dense(p["fc1"], jaxcnn.flatten(h)))
        return jaxcnn.dense(p["fc3"], jax.nn.sigmoid(jaxcnn.dense(p["fc2"], h)))

    def loss(apply):
        return jax.jit(jax.grad(lambda p: jnp.sum(jax.nn.log_softmax(apply(p, x))[:, 0])))

    np.testing.assert_allclose(model.apply(p, x), lecture(p, x), rtol=1e-5, atol=1e-5)
    got, expected = loss(model.apply)(p), loss(lecture)(p)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), got, expected)


@pytest.mark.parametrize(
    "layer, window_reduce, in_channels, out_channels",
    [  # LeNet's two layers, and the lecture's
        (jaxcnn.conv2d_max_pool, np.max, 1, 8),
        (jaxcnn.conv2d_max_pool, np.max, 8, 16),
        (jaxcnn.conv2d_avg_pool, np.mean, 1, 6),
        (jaxcnn.conv2d_avg_pool, np.mean, 6, 16),
    ],
)
def test_jitted_pooled_conv_feeding_a_reduction_matches_numpy(
    layer, window_reduce, in_channels, out_channels
):
    # As test_conv.py's test_jitted_conv_feeding_a_reduction_matches_numpy, for the pooled products.
    rng = np.random.default_rng(in_channels)
    x = rng.standard_normal((4, 14, 14, in_channels)).astype(np.float32)
    kernel = rng.standard_normal((5, 5, in_channels, out_channels)).astype(np.float32)
    pooled = reference.conv2d(x, kernel, padding=((2, 2), (2, 2)))
    pooled = window_reduce(pooled.reshape(4, 7, 2, 7, 2, out_channels), axis=(2, 4))
    # One reduction per call, the kernel an argument as parameters are (a constant
    # kernel, or an output that a second reduction reads too, can hide the fault).
    pool = functools.partial(layer, window=2, padding=2)
    channel_sum = jax.jit(lambda x, kernel: pool({"kernel": kernel}, x).sum(-1))(x, kernel)
    total = jax.jit(lambda x, kernel: pool({"kernel": kernel}, x).sum((1, 2)))(x, kernel)
    np.testing.assert_allclose(channel_sum, pooled.sum(-1), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(total, pooled.sum((1, 2)), rtol=1e-4, atol=1e-3)


def test_avg_pool_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="kernel expects"):
        jaxcnn.conv2d_avg_pool({"kernel": jnp.ones((3, 3, 1, 2))}, jnp.ones((1, 4, 4, 2)), 1)
    with pytest.raises(ValueError, match="`window` must be >= 1"):
        jaxcnn.conv2d_avg_pool({"kernel": jnp.ones((3, 3, 1, 2))}, jnp.ones((1, 4, 4, 1)), 0)
