"""The PyTorch and Flax twins of every config's model compute jaxcnn's function.

With jaxcnn's weights loaded, each twin gives the same logits and the same
gradients (of the logits against a random cotangent, for every parameter and
for the input), within 1e-4, evaluating and training (batch statistics;
models with dropout only evaluating, as their masks differ). The twins
compute in float64, jaxcnn in float32 as users run it: in float32 PyTorch's
and Flax's own batch-norm gradients drift from the float64 values by up to
5e-3 on resnet18 with a batch of 3 (jaxcnn's by 7e-6), so float32 twins would
test their rounding, not the function. PyTorch and Flax are no dependencies
of jaxcnn: CI installs them in a step of its own.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn.nn.network import walk
from jaxcnn.train import config as config_lib

CONFIGS = sorted(
    p for p in (Path(__file__).parent.parent / "configs").glob("*.py") if p.stem != "__init__"
)
SHAPE = (3, 28, 28, 1)
TOLERANCE = dict(rtol=1e-4, atol=1e-4)


def setup(path: Path):
    """The config's model, its params and a state of random running statistics, images
    and a cotangent for the logits."""
    model = config_lib.check_model(config_lib.load(path).model)
    rng = np.random.default_rng(0)
    x = rng.random(SHAPE, np.float32)
    _, params, state = model.init_with_state(jax.random.key(0), SHAPE)
    state = jax.tree_util.tree_map_with_path(
        lambda p, a: (rng.uniform(0.5, 1.5, a.shape) if "var" in str(p[-1]) else
                      rng.normal(0, 0.1, a.shape)).astype(np.float32),
        state,
    )  # fmt: skip
    y = jax.eval_shape(lambda x: model.apply_with_state(params, state, x)[0], x)
    cotangent = rng.standard_normal(y.shape).astype(np.float32)
    return model, params, state, x, cotangent


def jax_grads(model, params, state, x, cotangent, training):
    """jaxcnn's logits, and the gradients of their dot with `cotangent`, jitted."""

    def f(params, x):
        y, _ = model.apply_with_state(params, state, x, training=training)
        return jnp.sum(y * cotangent), y

    (_, y), (grads, dx) = jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))(params, x)
    return np.asarray(y), grads, np.asarray(dx)


def modes(model):
    return [False] if model.random else [False, True]


def leaf_params(model, params):
    """`(path, name, array)` of every parameter, in the order of the network's layers."""
    for node in walk(model, SHAPE):
        own = node.subtree(params) if not node.layer.children() else {}
        for name in ("kernel", "scale", "bias"):
            if name in own:
                yield node.path, name, own[name]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_torch_twin_computes_the_same_function(path):
    torch = pytest.importorskip("torch")
    from jaxcnn.bench.peers import torch_model

    model, params, state, x, cotangent = setup(path)
    for training in modes(model):
        y, grads, dx = jax_grads(model, params, state, x, cotangent, training)
        twin = torch_model(model, SHAPE, params, state).train(training).double()
        images = torch.from_numpy(x.astype(np.float64)).permute(0, 3, 1, 2).requires_grad_()
        out = twin(images)
        np.testing.assert_allclose(out.detach().numpy(), y, **TOLERANCE)
        (out * torch.from_numpy(cotangent.astype(np.float64))).sum().backward()
        np.testing.assert_allclose(images.grad.permute(0, 2, 3, 1).numpy(), dx, **TOLERANCE)
        theirs = [p.grad.numpy() for p in twin.parameters()]
        ours = list(leaf_params(model, grads))
        assert len(theirs) == len(ours)
        for mine, their in zip(ours, theirs):
            along = {4: (2, 3, 1, 0), 2: (1, 0)}.get(their.ndim)  # OIHW -> HWIO, (out, in)
            their = their.transpose(along) if along else their
            np.testing.assert_allclose(their, mine[2], **TOLERANCE, err_msg=str(mine[:2]))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_flax_twin_computes_the_same_function(path):
    pytest.importorskip("flax")
    from jaxcnn.bench.flax_peer import flax_model, flax_variables

    model, params, state, x, cotangent = setup(path)
    twin = flax_model(model, SHAPE)
    variables = flax_variables(model, SHAPE, params, state)
    variables64 = jax.tree.map(lambda a: np.asarray(a, np.float64), variables)
    for training in modes(model):
        y, grads, dx = jax_grads(model, params, state, x, cotangent, training)

        def f(flax_params, x, training=training):
            out = twin.apply(
                {**variables64, "params": flax_params}, x, train=training, mutable=["batch_stats"]
            )[0]
            return jnp.sum(out * cotangent.astype(np.float64)), out

        with jax.enable_x64(True):
            (_, out), (their, dx_flax) = jax.jit(jax.value_and_grad(f, (0, 1), has_aux=True))(
                variables64["params"], x.astype(np.float64)
            )
        np.testing.assert_allclose(out, y, **TOLERANCE)
        np.testing.assert_allclose(dx_flax, dx, **TOLERANCE)
        for layer_path, name, mine in leaf_params(model, grads):
            got = their[".".join(layer_path)][name]
            np.testing.assert_allclose(got, mine, **TOLERANCE, err_msg=f"{layer_path} {name}")
