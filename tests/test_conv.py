import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference
from backends import cpu_only
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import jaxcnn
from jaxcnn.nn.cpu_kernels import patch_product

CONVS = [jaxcnn.conv2d, jaxcnn.conv2d_patches, jaxcnn.conv2d_auto]

# The lecture's worked example (d2l): a 3x3 image and a 2x2 kernel.
X = np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0]], np.float32)
K = np.array([[1, 1], [-1, -1]], np.float32)


def as_params(kernel_2d):
    return {"kernel": jnp.asarray(kernel_2d)[:, :, None, None]}


def as_image(x_2d):
    return jnp.asarray(x_2d)[None, :, :, None]


def test_corr2d_lecture_example():
    # Hand-computed: [[1+1-1-0, 1+1-0-0], [1+0-1-1, 0+0-1-0]].
    np.testing.assert_array_equal(jaxcnn.corr2d(X, K), [[1, 2], [-1, -1]])


@pytest.mark.parametrize("conv", CONVS)
def test_conv_lecture_example(conv):
    y = conv(as_params(K), as_image(X))
    np.testing.assert_array_equal(y[0, :, :, 0], [[1, 2], [-1, -1]])


@pytest.mark.parametrize("conv", CONVS)
@pytest.mark.parametrize(
    "padding, expected",
    [
        # The lecture's one-sided paddings of the 3x3 image, then padding on all sides.
        (((1, 0), (1, 0)), [[0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 0, 0], [0, 1, 1, 0]]),
        (((0, 1), (0, 1)), [[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]),
        (
            1,
            [
                [0, 0, 0, 0, 0],
                [0, 1, 1, 1, 0],
                [0, 1, 0, 0, 0],
                [0, 1, 1, 0, 0],
                [0, 0, 0, 0, 0],
            ],
        ),
    ],
)
def test_lecture_padding(conv, padding, expected):
    identity = np.ones((1, 1), np.float32)  # a 1x1 kernel of 1 shows the padded image
    y = conv(as_params(identity), as_image(X), padding=padding)
    np.testing.assert_array_equal(y[0, :, :, 0], expected)


# The lecture's padded 5x5 with a 3x3 kernel: top row minus middle row of each window.
K3 = np.array([[1, 1, 1], [-1, -1, -1], [0, 0, 0]], np.float32)
STRIDE_1 = [[-2, -3, -2], [1, 2, 2], [-1, -1, -1]]  # computed by hand


@pytest.mark.parametrize("conv", CONVS)
@pytest.mark.parametrize("stride, expected", [(1, STRIDE_1), (2, [[-2, -2], [-1, -1]])])
def test_lecture_stride(conv, stride, expected):
    y = conv(as_params(K3), as_image(X), padding=1, stride=stride)
    np.testing.assert_array_equal(y[0, :, :, 0], expected)


PADDING_FORMS = st.sampled_from(["int", "pair", "pairs", "SAME", "VALID"])


@cpu_only
@pytest.mark.parametrize(
    "kernel, stride, padding",
    [
        ((3, 3), 2, 1),  # a ResNet stage's first conv
        ((2, 2), 2, 0),  # (a 1x1 shortcut is a slice and a product: test_auto)
        ((5, 4), (3, 2), ((2, 0), (1, 2))),
        ((2, 3), (1, 2), "SAME"),
    ],
)
def test_strided_input_gradient_runs_as_one_stride_1_conv(kernel, stride, padding):
    # Above BANDED_MAX_CHANNELS, conv2d_auto's input gradient of a strided conv is computed
    # by phases (cpu_kernels.strided_input_grad): autodiff's through conv2d is the reference.
    channels = jaxcnn.nn.auto.BANDED_MAX_CHANNELS + 1
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 9, 8, channels)).astype(np.float32)
    params = {"kernel": rng.standard_normal((*kernel, channels, 5)).astype(np.float32)}
    options = dict(stride=stride, padding=padding)
    assert_trees_close(
        conv_grads(jaxcnn.conv2d, params, x, options, 1),
        conv_grads(jaxcnn.conv2d_auto, params, x, options, 1),
    )
    dx = jax.grad(lambda x: jaxcnn.conv2d_auto(params, x, **options).sum())
    convs = [
        eqn.params
        for eqn in jax.make_jaxpr(dx)(x).eqns
        if eqn.primitive.name == "conv_general_dilated"
    ]
    assert convs and all(
        c["lhs_dilation"] == (1, 1) and c["window_strides"] == (1, 1) for c in convs[1:]
    )


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    # 6 channels per group reach conv2d_auto's banded products (one group), 16
    # output channels split their rows into several column blocks.
    cin = groups * draw(st.sampled_from([1, 2, 6]))
    cout = groups * draw(st.sampled_from([1, 2, 16]))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    form = draw(PADDING_FORMS)
    pads = [draw(st.integers(0, 2)) for _ in range(4)]
    padding = {
        "int": pads[0],
        "pair": (pads[0], pads[1]),
        "pairs": ((pads[0], pads[1]), (pads[2], pads[3])),
        "SAME": "SAME",
        "VALID": "VALID",
    }[form]
    ext_h, ext_w = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    h = draw(st.integers(ext_h, ext_h + 6))
    w = draw(st.integers(ext_w, ext_w + 6))
    batch = draw(st.integers(1, 2))
    use_bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return dict(
        shape=(batch, h, w, cin),
        kernel=(kh, kw, cin // groups, cout),
        stride=stride,
        dilation=dilation,
        padding=padding,
        groups=groups,
        use_bias=use_bias,
        seed=seed,
    )


def make_case(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["shape"]).astype(np.float32)
    params = {"kernel": rng.standard_normal(case["kernel"]).astype(np.float32)}
    if case["use_bias"]:
        params["bias"] = rng.standard_normal(case["kernel"][-1]).astype(np.float32)
    options = {k: case[k] for k in ("stride", "padding", "dilation", "groups")}
    return x, params, options


@settings(max_examples=60, deadline=None)
@given(conv_cases())
def test_convs_match_numpy_loops(case):
    x, params, options = make_case(case)
    extent = [(k - 1) * d + 1 for k, d in zip(case["kernel"][:2], case["dilation"])]
    pads = reference.pad_pairs_for(options["padding"], x.shape[1:3], extent, options["stride"])
    expected = reference.conv2d(
        x,
        params["kernel"],
        params.get("bias"),
        options["stride"],
        pads,
        options["dilation"],
        options["groups"],
    )
    for conv in CONVS:  # jitted: one compile per case, not one per op and shape
        y = jax.jit(functools.partial(conv, **options))(params, x)
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def conv_grads(conv, params, x, options, seed):
    """Gradients of `sum(conv(params, x) * c)` for a random cotangent `c`, wrt params and x."""
    y_shape = jaxcnn.conv2d(params, x, **options).shape
    cotangent = np.random.default_rng(seed).standard_normal(y_shape).astype(np.float32)
    loss = lambda p, x: jnp.sum(conv(p, x, **options) * cotangent)  # noqa: E731
    # Jitted: one compile per case, where op-by-op dispatch compiles each op's shape.
    return jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)


def assert_trees_close(a, b):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), a, b)


@settings(max_examples=30, deadline=None)
@given(conv_cases())
def test_conv_gradients_agree(case):
    x, params, options = make_case(case)
    lax_grads = conv_grads(jaxcnn.conv2d, params, x, options, case["seed"] + 1)
    for conv in (jaxcnn.conv2d_patches, jaxcnn.conv2d_auto):
        assert_trees_close(lax_grads, conv_grads(conv, params, x, options, case["seed"] + 1))


@settings(max_examples=30, deadline=None)
@given(conv_cases())
def test_auto_lax_gradients_agree(case):
    # Above BANDED_MAX_CHANNELS per group conv2d_auto runs lax with gradients
    # written by hand as NHWC convs: autodiff's, through conv2d, are the reference.
    channels = jaxcnn.nn.auto.BANDED_MAX_CHANNELS + 1
    (n, h, w, _), (kh, kw, _, cout) = case["shape"], case["kernel"]
    x, params, options = make_case(
        dict(case, shape=(n, h, w, case["groups"] * channels), kernel=(kh, kw, channels, cout))
    )
    assert_trees_close(
        conv_grads(jaxcnn.conv2d, params, x, options, case["seed"] + 1),
        conv_grads(jaxcnn.conv2d_auto, params, x, options, case["seed"] + 1),
    )


def conv_layouts(fn, *args):
    """The (lhs, rhs, out) layouts of every conv in fn's jaxpr, nested ones included."""

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "conv_general_dilated":
                yield eqn.params["dimension_numbers"]
            for value in eqn.params.values():
                inner = getattr(value, "jaxpr", value)
                if hasattr(inner, "eqns"):
                    yield from walk(inner)

    return list(walk(jax.make_jaxpr(fn)(*args).jaxpr))


@cpu_only
def test_auto_gradient_convs_are_nhwc():
    # XLA's CPU compiler makes other layouts fast only outside loops
    # (jax-ml/jax#12868), and train.py scans its steps.
    x, params = jnp.ones((2, 9, 9, 34)), {"kernel": jnp.ones((3, 3, 17, 4))}
    nhwc = jax.lax.conv_dimension_numbers(x.shape, params["kernel"].shape, ("NHWC", "HWIO", "NHWC"))

    def grad_of(conv):
        return jax.grad(lambda p, x: conv(p, x, stride=2, padding=1, groups=2).sum(), (0, 1))

    auto = conv_layouts(grad_of(jaxcnn.conv2d_auto), params, x)
    assert len(auto) == 3 and all(layout == nhwc for layout in auto), auto  # y, dx, dkernel
    assert any(layout != nhwc for layout in conv_layouts(grad_of(jaxcnn.conv2d), params, x))


@pytest.mark.parametrize("conv", CONVS)
@pytest.mark.parametrize(
    "options",
    [
        dict(stride=2, padding="SAME"),
        dict(padding=((1, 0), (0, 2)), dilation=2),
        dict(groups=2, stride=(1, 2), padding=(1, 0)),
    ],
)
def test_conv_gradients_numerically(conv, options):
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((2, 6, 7, 4))
        params = {
            "kernel": rng.standard_normal((3, 2, 4 // options.get("groups", 1), 4)),
            "bias": rng.standard_normal(4),
        }
        check_grads(lambda p, x: conv(p, x, **options), (params, x), order=2, modes=("rev",))


@pytest.mark.parametrize("conv", CONVS)
@pytest.mark.parametrize("in_channels", [1, 8, 17])  # conv2d_auto: tap sums, banded, lax
@pytest.mark.parametrize(
    "shape, kernel, padding, stride",
    [
        ((2, 2), (2, 2), ((1, 1), (2, 0)), 1),  # openxla/xla#48713 gave a wrong dx here
        ((1, 3), (2, 2), ((2, 0), (0, 2)), 1),
        ((3, 2), (2, 3), ((3, 1), (1, 3)), 2),
        ((2, 4), (1, 1), ((2, 0), (1, 0)), 1),
    ],
)
def test_conv_gradients_with_padding_past_the_kernel(
    conv, in_channels, shape, kernel, padding, stride
):
    # Padding past a kernel's extent less one makes autodiff's input-gradient
    # conv pad by a negative amount: the reference is NumPy's loops.
    rng = np.random.default_rng(in_channels)
    x = rng.standard_normal((1, *shape, in_channels)).astype(np.float32)
    params = {"kernel": rng.standard_normal((*kernel, in_channels, 3)).astype(np.float32)}
    y_shape = reference.conv2d(x, params["kernel"], None, (stride,) * 2, padding).shape
    cotangent = rng.standard_normal(y_shape).astype(np.float32)
    loss = lambda p, x: jnp.sum(conv(p, x, stride=stride, padding=padding) * cotangent)  # noqa: E731
    dparams, dx = jax.jit(jax.grad(loss, (0, 1)))(params, x)
    expected_dx, expected_dkernel = reference.conv2d_grads(
        x, params["kernel"], cotangent, (stride,) * 2, padding
    )
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dparams["kernel"], expected_dkernel, rtol=1e-4, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(2, 7),
    w=st.integers(2, 7),
    kh=st.integers(1, 3),
    kw=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_single_channel_convs_equal_corr2d(h, w, kh, kw, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((h, w)).astype(np.float32)
    k = rng.standard_normal((min(kh, h), min(kw, w))).astype(np.float32)
    expected = jaxcnn.corr2d(x, k)
    for conv in CONVS:
        y = jax.jit(conv)(as_params(k), as_image(x))
        np.testing.assert_allclose(y[0, :, :, 0], expected, rtol=1e-5, atol=1e-5)


def test_patches_uses_no_conv_primitive():
    x, params = jnp.ones((1, 6, 6, 2)), {"kernel": jnp.ones((3, 3, 2, 4))}
    for fn in (jaxcnn.conv2d_patches, jax.grad(lambda p, x: jaxcnn.conv2d_patches(p, x).sum())):
        jaxpr = str(jax.make_jaxpr(fn)(params, x))
        assert "conv_general_dilated" not in jaxpr, jaxpr
    assert "conv_general_dilated" in str(jax.make_jaxpr(jaxcnn.conv2d)(params, x))


@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_auto_banded_non_finite_pixel_stays_in_its_rows(value):
    # As documented: with 5-16 channels the banded products can spread an inf
    # or NaN pixel to the outputs of its blocks of columns, within the output
    # rows whose windows hold its row; every other output is conv2d's.
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1, (2, 14, 14, 8)).astype(np.float32)
    i, j = 6, 9
    x[0, i, j, 3] = value
    params = {"kernel": rng.uniform(0.5, 1, (5, 5, 8, 16)).astype(np.float32)}
    y = np.asarray(jaxcnn.conv2d_auto(params, x, padding=1))
    expected = np.asarray(jaxcnn.conv2d(params, x, padding=1))
    window = np.zeros(y.shape, bool)  # outputs whose 5x5 window holds the pixel
    window[0, i - 3 : i + 2, j - 3 : j + 2] = True
    assert not np.isfinite(y[window]).any() and not np.isfinite(expected[window]).any()
    rows = np.zeros(y.shape, bool)  # output rows whose windows hold row i
    rows[0, i - 3 : i + 2] = True
    np.testing.assert_allclose(y[~rows], expected[~rows], rtol=1e-5)
    assert np.isfinite(expected[~window]).all()


@cpu_only
@pytest.mark.parametrize(
    "in_channels, groups, forward_conv, gradient_conv",
    [(1, 1, False, False), (4, 1, False, False), (5, 1, False, False), (17, 1, True, True)]
    + [(4, 2, False, True), (10, 2, True, True)],
)
def test_auto_picks_implementation_by_channels(in_channels, groups, forward_conv, gradient_conv):
    # Tap sums (c <= 4 per group), banded products (c <= 16, one group), else lax.
    x = jnp.ones((1, 6, 6, in_channels))
    params = {"kernel": jnp.ones((3, 3, in_channels // groups, 2 * groups))}
    conv = functools.partial(jaxcnn.conv2d_auto, groups=groups)
    forward = str(jax.make_jaxpr(conv)(params, x))
    gradient = str(jax.make_jaxpr(jax.grad(lambda p, x: conv(p, x).sum(), (0, 1)))(params, x))
    assert ("conv_general_dilated" in forward) == forward_conv
    assert ("conv_general_dilated" in gradient) == gradient_conv
    assert ("dot_general" in gradient) == (not gradient_conv)


@pytest.mark.parametrize("conv", CONVS)
def test_conv_composes_with_jit_grad_vmap(conv):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 8, 8, 2)).astype(np.float32)  # a leading vmap axis
    params = jaxcnn.init_conv2d(jax.random.key(0), 2, 4, 3)
    expected = reference.conv2d(
        x.reshape(6, 8, 8, 2), params["kernel"], params["bias"], padding=((1, 1), (1, 1))
    ).reshape(3, 2, 8, 8, 4)
    f = jax.jit(jax.vmap(lambda x: conv(params, x, padding="SAME")))
    np.testing.assert_allclose(f(x), expected, rtol=1e-4, atol=1e-4)
    g = jax.jit(jax.grad(lambda p: conv(p, x[0], padding=1).sum()))(params)
    # d(sum y)/d(bias) = number of output pixels; d/d(kernel) = sums of shifted inputs.
    np.testing.assert_allclose(g["bias"], np.full(4, 2 * 8 * 8))
    padded = np.pad(x[0], ((0, 0), (1, 1), (1, 1), (0, 0)))
    window_sums = np.stack(
        [[padded[:, p : p + 8, q : q + 8].sum((0, 1, 2)) for q in range(3)] for p in range(3)]
    )
    np.testing.assert_allclose(g["kernel"], np.repeat(window_sums[..., None], 4, -1), rtol=1e-4)


@pytest.mark.parametrize("conv", CONVS)
def test_unbatched_hwc_input(conv):
    x = np.random.default_rng(0).standard_normal((5, 5, 3)).astype(np.float32)
    params = jaxcnn.init_conv2d(jax.random.key(1), 3, 2, 2)
    np.testing.assert_allclose(conv(params, x), conv(params, x[None])[0], rtol=1e-6)


GOOD_X = jnp.ones((2, 6, 6, 4))
GOOD_PARAMS = {"kernel": jnp.ones((3, 3, 4, 8)), "bias": jnp.ones(8)}


@pytest.mark.parametrize("conv", CONVS)
@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize(
    "params, x, options, error, match",
    [
        (
            GOOD_PARAMS,
            jnp.ones((6, 6)),
            {},
            ValueError,
            r"`x` must be a 4-D NHWC batch .* got shape \(6, 6\)",
        ),
        (GOOD_PARAMS, jnp.ones((1, 2, 6, 6, 4)), {}, ValueError, "`x` must be a 4-D NHWC batch"),
        (
            GOOD_PARAMS,
            jnp.ones((2, 6, 6, 3)),
            {},
            ValueError,
            r"`x` has 3 channels but the kernel expects 4",
        ),
        (GOOD_PARAMS, GOOD_X, dict(groups=3), ValueError, r"`groups` \(=3\) does not divide"),
        (
            {"kernel": jnp.ones((3, 3, 2, 6))},
            GOOD_X,
            dict(groups=4),
            ValueError,
            r"which `groups` \(=4\) does not divide",
        ),
        (GOOD_PARAMS, GOOD_X, dict(groups=0), ValueError, "`groups` must be a positive int"),
        (
            GOOD_PARAMS,
            GOOD_X,
            dict(padding="FULL"),
            ValueError,
            "`padding` string must be 'SAME' or 'VALID'",
        ),
        (GOOD_PARAMS, GOOD_X, dict(padding=-1), ValueError, "`padding` must be non-negative"),
        (GOOD_PARAMS, GOOD_X, dict(stride=0), ValueError, "`stride` must be >= 1"),
        (GOOD_PARAMS, GOOD_X, dict(dilation=0), ValueError, "`dilation` must be >= 1"),
        (
            GOOD_PARAMS,
            GOOD_X,
            dict(dilation=3),
            ValueError,
            "`kernel` .* larger than the padded input",
        ),
        (
            {"kernel": jnp.ones((7, 3, 4, 8))},
            GOOD_X,
            {},
            ValueError,
            "larger than the padded input along height",
        ),
        (
            {"weight": jnp.ones((3, 3, 4, 8))},
            GOOD_X,
            {},
            ValueError,
            r"`params` must be a dict with a 'kernel'.*\['weight'\]",
        ),
        (
            {"kernel": jnp.ones((3, 4, 8))},
            GOOD_X,
            {},
            ValueError,
            r"must be 4-D \(kh, kw, in_channels // groups, out_channels\)",
        ),
        (
            {"kernel": jnp.ones((3, 3, 4, 8)), "bias": jnp.ones(4)},
            GOOD_X,
            {},
            ValueError,
            r"`params\['bias'\]` must have shape \(8,\)",
        ),
        (GOOD_PARAMS, GOOD_X, dict(stride=1.0), TypeError, "`stride` must be an int, got float"),
    ],
)
def test_conv_bad_input(conv, jit, params, x, options, error, match):
    fn = lambda p, x: conv(p, x, **options)  # noqa: E731
    with pytest.raises(error, match=match):
        (jax.jit(fn) if jit else fn)(params, x)


def test_corr2d_bad_input():
    with pytest.raises(ValueError, match="must be 2-D"):
        jaxcnn.corr2d(np.ones((3, 3, 1)), K)
    with pytest.raises(ValueError, match="larger than `x`"):
        jaxcnn.corr2d(np.ones((1, 3)), K)


@pytest.mark.parametrize(
    "window, stride, padding, dilation",
    [((3, 2), 1, 1, 1), ((2, 3), (2, 1), ((1, 0), (2, 1)), (1, 2))],
)
def test_extract_patches_layout_matches_numpy(window, stride, padding, dilation):
    """`patches[b, i, j, p * kw + q]` is the padded input's pixel under tap (p, q) of output (i, j)."""
    x = np.random.default_rng(0).standard_normal((2, 7, 6, 3)).astype(np.float32)
    geom = jaxcnn.nn.geometry.window_geometry(x.shape[1:3], window, stride, padding, dilation)
    patches = np.asarray(jaxcnn.extract_patches(jnp.asarray(x), geom))
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = geom.window, geom.stride, geom.dilation, geom.out_hw
    padded = np.pad(x, ((0, 0), *geom.padding, (0, 0)))
    expected = np.zeros((2, oh, ow, kh * kw, 3), np.float32)
    for i in range(oh):
        for j in range(ow):
            for p in range(kh):
                for q in range(kw):
                    expected[:, i, j, p * kw + q] = padded[:, i * sh + p * dh, j * sw + q * dw]
    np.testing.assert_array_equal(patches, expected)


@pytest.mark.parametrize("k, j", [(36, 32), (270, 80)])  # LeNet's first band, d2l's second
def test_patch_product_and_its_gradients_match_numpy(k, j):
    """The product in two halves of the examples, and its gradients, against NumPy in float64."""
    rng = np.random.default_rng(k * j)
    patches, band, grad = (
        rng.standard_normal(shape).astype(np.float32) for shape in [(12, k), (k, j), (12, j)]
    )
    y, vjp = jax.vjp(lambda p, b: patch_product(p, b, 2), patches, band)  # two halves of 6 rows
    d_patches, d_band = vjp(grad)
    p64, b64, g64 = (a.astype(np.float64) for a in (patches, band, grad))
    np.testing.assert_allclose(y, p64 @ b64, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(d_patches, g64 @ b64.T, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(d_band, p64.T @ g64, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("conv", CONVS)
@pytest.mark.parametrize("in_channels, out_channels", [(1, 6), (6, 16)])  # tap sum, banded
def test_jitted_conv_feeding_a_reduction_matches_numpy(conv, in_channels, out_channels):
    # XLA's YNNPACK fusions (on by default in jaxlib 0.10.2) once computed a batched
    # product with a transposed operand wrongly where a reduction read it, though the
    # product on its own was right: jit each layer with reductions after it, at the
    # d2l LeNet's second-layer geometry (14x14 in, 5x5 kernel, no padding).
    rng = np.random.default_rng(in_channels)
    x = rng.standard_normal((4, 14, 14, in_channels)).astype(np.float32)
    kernel = rng.standard_normal((5, 5, in_channels, out_channels)).astype(np.float32)
    y = reference.conv2d(x, kernel)
    # One reduction per call, the kernel an argument as parameters are (a constant
    # kernel, or an output that a second reduction reads too, hid the fault).
    channel_sum = jax.jit(lambda x, kernel: conv({"kernel": kernel}, x).sum(-1))(x, kernel)
    pool = jax.jit(lambda x, kernel: jaxcnn.avg_pool2d(conv({"kernel": kernel}, x), 2))(x, kernel)
    np.testing.assert_allclose(channel_sum, y.sum(-1), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(
        pool, y.reshape(4, 5, 2, 5, 2, -1).mean((2, 4)), rtol=1e-4, atol=1e-4
    )
