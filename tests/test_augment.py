"""Per-example augmentation against NumPy written here: every output is a flip, a window or a hole."""

import jax
import numpy as np
import pytest
from backends import two_devices

from jaxcnn import parallel
from jaxcnn.train.augment import augment, augment_and_mix, parse


def images(n=16, h=8, w=8, c=2, seed=0):
    return np.random.default_rng(seed).uniform(1, 2, (n, h, w, c)).astype(np.float32)  # no zeros


def test_parse_names_sizes_and_the_old_names():
    assert parse("") == ()
    assert parse("crop:4, flip") == (("crop", 4), ("flip", 0))
    assert parse("reflect_crop,cutout:6") == (("reflect_crop", 0), ("cutout", 6))
    assert parse("shift") == (("crop", 2),)
    assert parse("shift_flip") == (("crop", 2), ("flip", 0))


@pytest.mark.parametrize(
    "spec, match",
    [
        (
            "rotate",
            r"names 'rotate', which is not one of \['flip', 'crop', 'reflect_crop', 'cutout', 'mixup', 'cutmix'\]",
        ),
        ("crop:0", "'crop:0' must be crop or crop:N with N > 0"),
        ("crop:x", "'crop:x' must be crop or crop:N"),
        ("flip:2", "'flip:2' must be flip"),
        (3, "must be a string such as 'crop,flip'"),
    ],
)
def test_parse_rejects_with_the_part_named(spec, match):
    with pytest.raises(ValueError, match=match):
        parse(spec)


def test_flip_mirrors_some_examples_each_on_its_own_draw():
    x = images()
    y = np.asarray(augment(jax.random.key(0), x, "flip"))
    flipped = [np.array_equal(b, a[:, ::-1]) for a, b in zip(x, y)]
    kept = [np.array_equal(b, a) for a, b in zip(x, y)]
    assert all(f or k for f, k in zip(flipped, kept)) and 0 < sum(flipped) < len(x)


@pytest.mark.parametrize("mode", ["crop", "reflect_crop"])
def test_crop_is_a_window_of_the_padded_image(mode):
    x, pad = images(), 2
    y = np.asarray(augment(jax.random.key(1), x, f"{mode}:{pad}"))
    np_mode = "constant" if mode == "crop" else "reflect"
    offsets = set()
    for a, b in zip(x, y):
        padded = np.pad(a, ((pad, pad), (pad, pad), (0, 0)), mode=np_mode)
        matches = [
            (i, j)
            for i in range(2 * pad + 1)
            for j in range(2 * pad + 1)
            if np.array_equal(padded[i : i + 8, j : j + 8], b)
        ]
        assert matches, "not a window of the padded image"
        offsets.add(matches[0])
    assert len(offsets) > 3  # examples drew their own shifts


def test_crop_default_padding_is_an_eighth_of_the_height():
    x = images(n=64, h=16, w=16)
    y = np.asarray(augment(jax.random.key(2), x, "crop"))
    zero_rows = [(b == 0).all(axis=(1, 2)).sum() for b in y]
    assert max(zero_rows) == 2  # shifted by up to 16 / 8 rows


@pytest.mark.parametrize("side", [3, 4])
def test_cutout_zeroes_one_square_clipped_at_the_edges(side):
    x = images(n=32)
    y = np.asarray(augment(jax.random.key(3), x, f"cutout:{side}"))
    for a, b in zip(x, y):
        hole = (b == 0).all(axis=-1)
        rows, cols = np.nonzero(hole)
        assert (
            hole.any()
            and len(rows) == hole[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].size
        )
        assert rows.max() - rows.min() + 1 <= side and cols.max() - cols.min() + 1 <= side
        np.testing.assert_array_equal(b[~hole], a[~hole])
    full = [(b == 0).all(axis=-1).sum() == side * side for b in y]
    assert any(full)  # squares away from the edges are whole


def test_same_key_same_draws_other_key_other_draws():
    x = images()
    a = augment(jax.random.key(4), x, "crop,flip,cutout")
    b = augment(jax.random.key(4), x, "crop,flip,cutout")
    c = augment(jax.random.key(5), x, "crop,flip,cutout")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@two_devices
def test_draws_do_not_depend_on_how_the_batch_is_split_over_devices():
    x = images(n=8)
    one = augment(jax.random.key(6), x, "reflect_crop,flip,cutout")
    mesh = parallel.data_mesh(2)
    sharded = parallel.put(x, parallel.batch_sharded(mesh))
    two = jax.jit(lambda x: augment(jax.random.key(6), x, "reflect_crop,flip,cutout"))(sharded)
    np.testing.assert_array_equal(one, two)


def distinct_images(n=6, size=8):
    """Images no two of which share a pixel value: where each output pixel came from is clear."""
    return np.arange(n * size * size, dtype=np.float32).reshape(n, size, size, 1)


def test_mixup_blends_each_example_with_its_mirrored_partner():
    x = distinct_images()
    mixed, own = augment_and_mix(jax.random.key(3), x, "mixup:0.4")
    own = np.asarray(own)
    assert own.shape == (6,) and np.all((0 <= own) & (own <= 1)) and len(set(own)) == 6
    want = own[:, None, None, None] * x + (1 - own[:, None, None, None]) * x[::-1]
    np.testing.assert_allclose(mixed, want, rtol=1e-6)


def test_cutmix_pastes_one_box_of_the_partner_and_weighs_the_label_by_the_area_kept():
    x = distinct_images(n=8)
    mixed, own = augment_and_mix(jax.random.key(5), x, "cutmix")
    mixed, own = np.asarray(mixed), np.asarray(own)
    for i in range(8):
        from_partner = mixed[i, ..., 0] == x[7 - i, ..., 0]
        assert np.all(from_partner | (mixed[i, ..., 0] == x[i, ..., 0]))
        rows, cols = np.flatnonzero(from_partner.any(1)), np.flatnonzero(from_partner.any(0))
        if rows.size:  # one rectangle: every pixel of its bounding box
            assert from_partner[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].all()
            assert list(rows) == list(range(rows[0], rows[-1] + 1))
        assert own[i] == pytest.approx(1 - from_partner.mean())
    assert 0 < own.min() < 1  # some boxes were pasted


def test_mixed_targets_sum_to_one_and_give_the_loss_by_hand():
    from types import SimpleNamespace

    from jaxcnn.train.trainer import Trainer

    logits = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    config = SimpleNamespace(label_smoothing=0.1)
    # A model whose logits are its inputs: the loss alone is at stake.
    trainer = SimpleNamespace(config=config, logits=lambda p, s, x, training, key: (x, s))
    labels, own = np.array([0, 1, 2, 1]), np.array([1.0, 0.25, 0.5, 0.0], np.float32)
    value, _ = Trainer.loss(trainer, {}, {}, logits, labels, None, 1.0, own)
    onehot = np.eye(3)[labels]
    targets = own[:, None] * onehot + (1 - own[:, None]) * onehot[::-1]
    np.testing.assert_allclose(targets.sum(1), 1)
    targets = targets * 0.9 + 0.1 / 3
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    assert float(value) == pytest.approx(-(targets * log_p).sum(1).mean(), rel=1e-5)


@pytest.mark.parametrize(
    "spec, match",
    [("mixup,flip", "at most, and last"), ("mixup,cutmix", "at most, and last"),
     ("cutmix:0", "cutmix:A with A > 0")],
)  # fmt: skip
def test_a_mix_is_one_and_last_with_a_positive_alpha(spec, match):
    with pytest.raises(ValueError, match=match):
        parse(spec)
