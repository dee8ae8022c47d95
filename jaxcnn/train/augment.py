"""Random augmentation, one draw per example, on the device, inside `jit`.

A config names a list of operations, applied in order: `augment = "crop,flip"`,
`"reflect_crop:2,flip,cutout:8"`. Each example gets its own key, split from
the step's key (itself split from the seed's, step by step), so a run is
reproducible and a resumed run draws what the uninterrupted one would.

- `flip`: left-right, with probability 1/2.
- `crop[:p]`: pad `p` pixels of zeros on each side (default: an eighth of the
  image's height), then cut the image's size back at a random offset: a shift
  of up to `p` pixels each way.
- `reflect_crop[:p]`: the same, the padding mirrored from the image.
- `cutout[:s]`: a square of `s` pixels (default: half the height) set to zero
  at a random centre, clipped at the edges (DeVries and Taylor, 2017).
- `shift` and `shift_flip`, jaxcnn's earlier names, mean `crop:2` and `crop:2,flip`.

Last in the list, one of two operations may mix each example with a partner (the
batch's example at the mirrored place), its label too (`augment_and_mix`):

- `mixup[:a]`: the two images blended, `lam * own + (1 - lam) * partner`, `lam`
  drawn per example from Beta(a, a) (default a = 0.2; Zhang et al., 2018).
- `cutmix[:a]`: a box of the partner pasted in, of area `1 - lam` of the image
  at a random centre, clipped at the edges; the label weight is the area kept
  (default a = 1; Yun et al., 2019).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Op = tuple[str, float]  # (name, its size or alpha; 0 for the default)
MIXES = {"mixup": 0.2, "cutmix": 1.0}  # across examples, labels too; their default alpha
OPERATIONS = ("flip", "crop", "reflect_crop", "cutout", *MIXES)
ALIASES = {"shift": "crop:2", "shift_flip": "crop:2,flip"}


def parse(spec: str) -> tuple[Op, ...]:
    """`"crop:4,flip"` as `(("crop", 4), ("flip", 0))`; `""` as no operation.

    Raises:
      ValueError: naming an unknown operation or a size that is not a positive int.
    """
    if not isinstance(spec, str):
        raise ValueError(f"`augment` must be a string such as 'crop,flip', got {spec!r}")
    spec = ALIASES.get(spec.strip(), spec)
    ops = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, size = part.partition(":")
        if name not in OPERATIONS:
            raise ValueError(
                f"`augment` names {name!r}, which is not one of {list(OPERATIONS)} "
                f"(or {list(ALIASES)}), in {spec!r}"
            )
        if name in MIXES:
            alpha = _positive_float(size) if size else MIXES[name]
            if alpha is None:
                raise ValueError(f"`augment`: {part!r} must be {name} or {name}:A with A > 0")
            ops.append((name, alpha))
            continue
        if size and (name == "flip" or not (size.isdigit() and int(size) > 0)):
            form = name if name == "flip" else f"{name} or {name}:N with N > 0"
            raise ValueError(f"`augment`: {part!r} must be {form}")
        ops.append((name, int(size or 0)))
    mixes = [i for i, (name, _) in enumerate(ops) if name in MIXES]
    if mixes and (len(mixes) > 1 or mixes[0] != len(ops) - 1):
        raise ValueError(f"`augment`: one of {list(MIXES)} at most, and last, in {spec!r}")
    return tuple(ops)


def _positive_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 < value < float("inf") else None


def augment(key: jax.Array, x: jax.Array, spec: str) -> jax.Array:
    """`x` with the operations of `spec` applied, each example drawing from its own key.

    Args:
      key: the step's PRNG key.
      x: `(n, h, w, c)` float images.
      spec: as `parse` takes it.

    Returns:
      `(n, h, w, c)`.
    """
    ops = [op for op in parse(spec) if op[0] not in MIXES]
    if not ops:
        return x
    n, h, w, c = x.shape

    def one(key, image):
        for i, (name, size) in enumerate(ops):
            image = _APPLY[name](jax.random.fold_in(key, i), image, int(size))
        return image

    return jax.vmap(one)(jax.random.split(key, n), x)


def augment_and_mix(key: jax.Array, x: jax.Array, spec: str) -> tuple[jax.Array, jax.Array | None]:
    """`augment`, then `spec`'s mixing operation if any: the images, and the weight `(n,)` of
    each example's own label (None without mixing); its partner's is `1 - weight`, the
    partner of example `i` being example `n - 1 - i` (`partner_labels`)."""
    ops = parse(spec)
    x = augment(key, x, spec)
    if not ops or ops[-1][0] not in MIXES:
        return x, None
    name, alpha = ops[-1]
    keys = jax.random.split(jax.random.fold_in(key, len(ops)), x.shape[0])
    mixed, weight = jax.vmap(_MIX[name], in_axes=(0, 0, 0, None))(keys, x, x[::-1], alpha)
    return mixed, weight.astype(x.dtype)


def partner_labels(labels: jax.Array) -> jax.Array:
    """The labels of each example's partner in `augment_and_mix`."""
    return labels[::-1]


def _mixup(key, image, partner, alpha):
    lam = jax.random.beta(key, alpha, alpha)
    return lam * image + (1 - lam) * partner, lam


def _cutmix(key, image, partner, alpha):
    lam_key, centre_key = jax.random.split(key)
    lam = jax.random.beta(lam_key, alpha, alpha)
    h, w, _ = image.shape
    # A box of the image's proportions and area `1 - lam`, clipped where it crosses an edge.
    half_h, half_w = h * jnp.sqrt(1 - lam) / 2, w * jnp.sqrt(1 - lam) / 2
    cy, cx = jax.random.uniform(centre_key, (2,)) * jnp.array([h, w])
    rows = jnp.abs(jnp.arange(h) + 0.5 - cy) < half_h
    cols = jnp.abs(jnp.arange(w) + 0.5 - cx) < half_w
    box = rows[:, None] & cols[None, :]
    kept = 1 - jnp.mean(box.astype(image.dtype))  # the area kept, after the clipping
    return jnp.where(box[..., None], partner, image), kept


_MIX = {"mixup": _mixup, "cutmix": _cutmix}


def _flip(key: jax.Array, image: jax.Array, size: int) -> jax.Array:
    return jnp.where(jax.random.bernoulli(key), image[:, ::-1], image)


def crop_padding(size: int, height: int) -> int:
    """How far `crop:size` shifts an image of `height` rows at most: `size`, or by default
    an eighth of the height (at least 1)."""
    return size or max(1, round(height / 8))


def _cropper(mode: str) -> Callable[[jax.Array, jax.Array, int], jax.Array]:
    def crop(key: jax.Array, image: jax.Array, size: int) -> jax.Array:
        h, w, c = image.shape
        pad = crop_padding(size, h)
        padded = jnp.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode=mode)
        top, left = jax.random.randint(key, (2,), 0, 2 * pad + 1)
        return jax.lax.dynamic_slice(padded, (top, left, 0), (h, w, c))

    return crop


def _cutout(key: jax.Array, image: jax.Array, size: int) -> jax.Array:
    h, w, _ = image.shape
    side = size or max(1, h // 2)
    cy, cx = jax.random.randint(key, (2,), 0, jnp.array([h, w]))
    # Rows and columns `centre - side // 2` up to `side` of them, clipped at the edges.
    rows = jnp.abs(jnp.arange(h)[:, None] - cy + side // 2 - (side - 1) / 2) <= (side - 1) / 2
    cols = jnp.abs(jnp.arange(w)[None, :] - cx + side // 2 - (side - 1) / 2) <= (side - 1) / 2
    return jnp.where((rows & cols)[..., None], jnp.zeros_like(image), image)


_APPLY: dict[str, Callable[[jax.Array, jax.Array, int], jax.Array]] = {
    "flip": _flip,
    "crop": _cropper("constant"),
    "reflect_crop": _cropper("reflect"),
    "cutout": _cutout,
}
