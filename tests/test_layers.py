"""Layers as values: combinators, state and randomness, and the summary."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from backends import cpu_only

import jaxcnn
from jaxcnn import models
from jaxcnn.nn import layers as L

KEY = jax.random.key(0)


def block(stride=1, channels=4):
    shortcut = None
    if stride != 1:
        shortcut = L.sequential(conv=L.conv2d(channels, 1, stride=stride), bn=L.batch_norm())
    body = L.sequential(
        conv1=L.conv2d(channels, 3, stride=stride, padding=1),
        bn1=L.batch_norm(),
        act1=L.activation(jax.nn.relu),
        conv2=L.conv2d(channels, 3, padding=1),
    )
    return L.residual(body, shortcut=shortcut, activation=jax.nn.relu)


def test_parameters_and_state_nest_by_name():
    model = L.sequential(stage1=L.sequential(block1=block(), block2=block(2)), fc=L.dense(3))
    shape, params, state = model.init_with_state(KEY, (1, 8, 8, 4))
    assert shape == (1, 4, 4, 3)
    assert params["stage1"]["block1"]["conv1"]["kernel"].shape == (3, 3, 4, 4)
    assert params["stage1"]["block2"]["shortcut"]["conv"]["kernel"].shape == (1, 1, 4, 4)
    assert set(state["stage1"]["block2"]) == {"bn1", "shortcut"}
    assert "act1" not in params["stage1"]["block1"]  # layers without parameters leave no entry
    np.testing.assert_array_equal(state["stage1"]["block1"]["bn1"]["var"], np.ones(4))


def test_residual_is_body_plus_shortcut_then_activation():
    model = block(stride=2)
    _, params, state = model.init_with_state(KEY, (2, 6, 6, 4))
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 4)).astype(np.float32)
    y, new_state = model.apply_with_state(params, state, x, training=True)
    # The same arithmetic, function by function.
    h = jaxcnn.conv2d(params["conv1"], x, stride=2, padding=1)
    h, bn1 = jaxcnn.batch_norm(params["bn1"], state["bn1"], h, training=True)
    h = jaxcnn.conv2d(params["conv2"], jax.nn.relu(h), padding=1)
    s = jaxcnn.conv2d(params["shortcut"]["conv"], x, stride=2)
    s, bn_s = jaxcnn.batch_norm(params["shortcut"]["bn"], state["shortcut"]["bn"], s, training=True)
    np.testing.assert_allclose(y, jax.nn.relu(h + s), rtol=1e-5, atol=1e-5)
    close = functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-7)  # another kernel
    jax.tree.map(close, new_state, {"bn1": bn1, "shortcut": {"bn": bn_s}})


def test_identity_shortcut_adds_the_input():
    model = L.residual(L.conv2d(3, 3, padding=1, name="conv"))
    _, params = model.init(KEY, (1, 5, 5, 3))
    x = np.random.default_rng(1).standard_normal((1, 5, 5, 3)).astype(np.float32)
    want = jaxcnn.conv2d(params["conv"], x, padding=1) + x
    np.testing.assert_allclose(model.apply(params, x), want, rtol=1e-6, atol=1e-6)


def test_concat_joins_branches_along_channels():
    model = L.concat(
        a=L.conv2d(2, 1), b=L.sequential(pool=L.max_pool2d(3, stride=1, padding=1)), c=L.identity()
    )
    shape, params = model.init(KEY, (1, 4, 4, 3))
    assert shape == (1, 4, 4, 2 + 3 + 3)
    x = np.random.default_rng(2).standard_normal((1, 4, 4, 3)).astype(np.float32)
    y = np.asarray(model.apply(params, x))
    np.testing.assert_allclose(y[..., :2], jaxcnn.conv2d(params["a"], x), rtol=1e-6)
    np.testing.assert_allclose(y[..., 2:5], jaxcnn.max_pool2d(x, 3, stride=1, padding=1))
    np.testing.assert_array_equal(y[..., 5:], x)


def test_dropout_layer_draws_from_the_key_it_is_given():
    model = L.sequential(fc=L.dense(50), drop=L.dropout(0.5))
    _, params = model.init(KEY, (1, 10))
    x = jnp.ones((4, 10))
    np.testing.assert_array_equal(model.apply(params, x), jaxcnn.dense(params["fc"], x))
    a, _ = model.apply_with_state(params, {}, x, training=True, key=jax.random.key(1))
    b, _ = model.apply_with_state(params, {}, x, training=True, key=jax.random.key(1))
    c, _ = model.apply_with_state(params, {}, x, training=True, key=jax.random.key(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and 0.3 < np.mean(np.asarray(a) == 0) < 0.7
    with pytest.raises(ValueError, match="`key` must be a PRNG key: this model draws dropout"):
        model.apply_with_state(params, {}, x, training=True)


def test_models_with_state_say_how_to_use_it():
    model = L.sequential(conv=L.conv2d(2, 3), bn=L.batch_norm())
    assert model.has_state and not model.random
    with pytest.raises(TypeError, match="init_with_state"):
        model.init(KEY, (1, 5, 5, 1))
    _, params, state = model.init_with_state(KEY, (1, 5, 5, 1))
    with pytest.raises(TypeError, match="apply_with_state"):
        model.apply(params, jnp.ones((1, 5, 5, 1)))


def test_a_residual_model_composes_with_jit_grad_and_vmap():
    model = L.sequential(res=block(stride=2), pool=L.global_avg_pool2d(), fc=L.dense(2))
    _, params, state = model.init_with_state(KEY, (2, 6, 6, 4))
    x = np.random.default_rng(3).standard_normal((3, 2, 6, 6, 4)).astype(np.float32)

    def loss(params, x):
        y, _ = model.apply_with_state(params, state, x, training=True)
        return jnp.sum(y**2)

    grads = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0)))(params, x)
    for i in range(3):
        one = jax.grad(loss)(params, x[i])
        got = jax.tree.map(lambda a, i=i: a[i], grads)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), got, one)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: L.residual(L.conv2d(5, 3, padding=1)), "body gives .* and its shortcut"),
        (lambda: L.concat(a=L.conv2d(2, 1), b=L.conv2d(2, 3)), "`concat`'s branches must agree"),
    ],
)
def test_shapes_that_do_not_fit_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make().init(KEY, (1, 6, 6, 3))


def test_bad_combinator_arguments():
    with pytest.raises(TypeError, match="`shortcut` must be a Layer"):
        L.residual(L.conv2d(1, 1), shortcut=jaxcnn.conv2d)
    with pytest.raises(TypeError, match="`fc` must be a Layer"):
        L.sequential(fc=jaxcnn.dense)
    with pytest.raises(ValueError, match="needs at least one branch"):
        L.concat()
    with pytest.raises(ValueError, match=r"`rate` must be a number in \[0, 1\)"):
        L.dropout(1.0)
    with pytest.raises(ValueError, match="`out_channels` must be a positive int, got 0"):
        L.conv2d(0, 3)


def test_summary_lists_branches_parameters_state_and_flops():
    model = L.sequential(
        stem=L.conv2d(4, 3, padding=1, impl="auto"),
        inception=L.concat(a=L.conv2d(2, 1, impl="lax"), b=L.identity()),
        bn=L.batch_norm(),
        pool=L.global_avg_pool2d(),
    )
    _, params, state = model.init_with_state(KEY, (1, 5, 5, 1))
    table = L.summary(model, params, (1, 5, 5, 1), state)
    rows = {line.split()[0]: line for line in table.splitlines()[2:]}
    assert set(rows) >= {"stem", "inception", "inception.a", "inception.b", "bn", "pool", "total"}
    # stem: 25 pixels x 4 channels x 9 taps, a multiply-add each (2 FLOPs), + 100 bias adds.
    assert rows["stem"].split()[1:] == [
        "(5,",
        "5,",
        "4)",
        "40",
        "0",
        "1,900",
        "auto:",
        *(["tap", "sums"] if jax.default_backend() == "cpu" else ["lax", "conv"]),  # its plan
    ]
    # inception.a: 1x1 conv 4 -> 2: 25 pixels x 2 outputs x 4 inputs x 2 + 50 bias adds.
    assert "450" in rows["inception.a"].split() and "lax" in rows["inception.a"]
    assert rows["bn"].split()[4:6] == ["12", "12"]  # scale, bias; mean, var of 6 channels
    assert rows["total"].split()[1:3] == ["62", "12"]


@cpu_only
@pytest.mark.parametrize("in_channels", [16, 17])
@pytest.mark.parametrize("pooled", [L.conv2d_max_pool, L.conv2d_avg_pool])
def test_summary_says_how_a_pooled_conv_runs(pooled, in_channels):
    # 16 input channels on a 64x64 batch of 64: past the banded conv's patch budget,
    # but conv and pool still run as one product; 17 run the lax conv, then the pool.
    options = {"activation": jax.nn.sigmoid} if pooled is L.conv2d_avg_pool else {}
    model = L.sequential(block=pooled(8, 3, 2, impl="auto", **options))
    shape = (64, 64, 64, in_channels)
    _, params = model.init(KEY, shape)
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    jaxpr = str(jax.make_jaxpr(model.apply)(params, x))
    row = next(
        line for line in L.summary(model, params, shape).splitlines() if line.startswith("block")
    )
    fused = in_channels <= 16
    assert ("conv_general_dilated" not in jaxpr) == fused
    assert row.endswith("conv+pool products") == fused
    pool = "max" if pooled is L.conv2d_max_pool else "average"
    assert row.endswith(f"lax conv + {pool} pool") != fused


# ---- Layers as values: named by position, hashable, walked without computing -------------


def test_positional_steps_are_named_by_kind_and_count_or_by_name():
    model = L.sequential(
        L.conv2d(2, 3, name="stem"), jax.nn.relu, L.conv2d(2, 3), jax.nn.relu, fc=L.dense(3)
    )
    assert [name for name, _ in model.steps] == ["stem", "relu_1", "conv2d_1", "relu_2", "fc"]
    _, params = model.init(KEY, (1, 8, 8, 1))
    assert set(params) == {"stem", "conv2d_1", "fc"}  # the relus have no parameters
    x = np.random.default_rng(4).standard_normal((2, 8, 8, 1)).astype(np.float32)
    h = jax.nn.relu(jaxcnn.conv2d_auto(params["conv2d_1"], jax.nn.relu(
        jaxcnn.conv2d_auto(params["stem"], x))))  # fmt: skip
    np.testing.assert_allclose(model.apply(params, x), jaxcnn.dense(params["fc"], h), rtol=1e-5)
    with pytest.raises(ValueError, match=r"step names must differ, got \['a'\]"):
        L.sequential(L.dense(2, name="a"), a=L.dense(2))
    with pytest.raises(TypeError, match="`sequential`'s step 1 must be a Layer, got int"):
        L.sequential(L.dense(2), 3)


def test_a_residual_body_is_one_argument_and_its_names_do_not_clash_with_options():
    body = L.sequential(activation=L.dense(4), conv=L.dense(4))  # names that were options once
    block = L.residual(body, activation=jax.nn.relu)
    _, params = block.init(KEY, (2, 4))
    x = np.random.default_rng(5).standard_normal((2, 4)).astype(np.float32)
    want = jax.nn.relu(jaxcnn.dense(params["conv"], jaxcnn.dense(params["activation"], x)) + x)
    np.testing.assert_allclose(block.apply(params, x), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="may not be called 'shortcut'"):
        L.residual(L.sequential(shortcut=L.dense(4)), shortcut=L.identity())


def test_layers_are_frozen_hashable_values_and_static_arguments_of_jit():
    a, b = models.resnet(stages=(4, 8)), models.resnet(stages=(4, 8))
    assert a == b and hash(a) == hash(b) and a != models.resnet(stages=(4, 16))
    assert L.conv2d(4, [3, 3], padding=[(1, 1), (1, 1)]) == L.conv2d(
        4, (3, 3), padding=((1, 1),) * 2
    )
    with pytest.raises(AttributeError):
        a.name = "other"  # type: ignore[misc]
    _, params, state = a.init_with_state(KEY, (2, 8, 8, 1))
    traces = []

    @functools.partial(jax.jit, static_argnums=0)
    def logits(model, params, x):
        traces.append(model)
        return model.apply_with_state(params, state, x)[0]

    x = jnp.ones((2, 8, 8, 1))
    np.testing.assert_array_equal(logits(a, params, x), logits(b, params, x))
    assert len(traces) == 1  # an equal model is the same static argument: no second trace


def test_walk_lists_every_layer_with_its_path_and_shapes():
    nodes = L.walk(models.resnet(stages=(4, 8)), (1, 28, 28, 1))
    assert [(n.name, n.in_shape[1:], n.out_shape[1:]) for n in nodes[:4]] == [
        ("sequential", (28, 28, 1), (10,)),
        ("stem", (28, 28, 1), (28, 28, 4)),
        ("stem.conv", (28, 28, 1), (28, 28, 4)),
        ("stem.bn", (28, 28, 4), (28, 28, 4)),
    ]
    shortcut = next(n for n in nodes if n.name == "stage2_block1.shortcut.conv")
    assert (shortcut.in_shape, shortcut.out_shape) == ((1, 28, 28, 4), (1, 14, 14, 8))
    # the model, stem (4), block 1 (6), block 2 (6 and its shortcut's 3), head (3)
    assert len(nodes) == 23 and nodes[-1].name == "head.fc" and nodes[-1].out_shape == (1, 10)


def test_a_layer_that_does_not_fit_is_named_by_its_path():
    model = L.sequential(stem=L.conv2d(2, 3), body=L.sequential(big=L.conv2d(2, 9)))
    with pytest.raises(ValueError, match=r"layer body.big on \(1, 8, 8, 2\): `kernel` \(9, 9\)"):
        L.walk(model, (1, 10, 10, 1))
