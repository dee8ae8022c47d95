"""A trained model for serving without jaxcnn: `python -m jaxcnn.export --workdir W --out DIR`.

Writes two files in DIR:

- `model.jax`: the model as a serialized `jax.export` artefact (StableHLO, its
  weights inside): float32 images `(n, h, w, c)` of pixel values in [0, 255],
  channels last, any batch size `n`, to class probabilities `(n, classes)`.
  The training split's normalisation is inside it.
- `model.json`: what a caller needs to prepare images and read the output:
  the image shape, how training images were resized, the normalisation
  already applied inside (mean and std per channel, of pixels in [0, 1]), the
  class names, the checkpoint's epoch and the JAX version that wrote it.

With `--onnx`, `model.onnx` too: the same function through `jax2onnx`, for
onnxruntime and other ONNX runtimes (`pip install 'jaxcnn[onnx]'`).

Loading it needs JAX alone (`jax.export.deserialize(...).call(images)`); the
README's "Use a trained model" has the ten lines. The probabilities are
`predict.py`'s for the same pixels. Nothing in the workdir is written, and an
existing export in DIR is replaced only with `--overwrite`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp

from jaxcnn.errors import JaxcnnError, WorkdirError
from jaxcnn.files import write_atomically
from jaxcnn.train.predict import Predictor, add_checkpoint_flag

MODEL_FILE = "model.jax"
META_FILE = "model.json"
ONNX_FILE = "model.onnx"


def export(predictor: Predictor, platforms: Sequence[str] | None = None) -> jax.export.Exported:
    """`predictor`'s probabilities as a `jax.export.Exported` with a symbolic batch size.

    Args:
      predictor: a loaded model (`Predictor.load`).
      platforms: what to lower for (`"cpu"`, `"cuda"`, `"rocm"`, `"tpu"`); None for JAX's
        default backend. The kernels are those `predictor`'s layers chose for it.
    """
    (n,) = jax.export.symbolic_shape("n")
    h, w, c = predictor.info.image_shape
    images = jax.ShapeDtypeStruct((n, h, w, c), jnp.float32)
    probabilities = jax.jit(predictor.probabilities_of)
    return jax.export.export(probabilities, platforms=platforms)(images)


def metadata(predictor: Predictor) -> dict:
    """`model.json`: how to prepare images for the exported model and read what it returns."""
    info = predictor.info
    h, w, c = info.image_shape
    return {
        "input": f"float32 (n, {h}, {w}, {c}): pixel values in [0, 255], channels last",
        "output": f"float32 (n, {info.num_classes}): class probabilities",
        "image_shape": [h, w, c],
        "resize": "centre crop to a square, then scale to the image shape (as training did)",
        "normalisation": {
            "applied": "inside the model: (pixels / 255 - mean) / std",
            "mean": list(info.mean),
            "std": list(info.std),
        },
        "class_names": list(info.class_names),
        "epochs": predictor.epochs,
        "jax": jax.__version__,
    }


def to_onnx(predictor: Predictor) -> bytes:
    """`predictor`'s probabilities as a serialized ONNX model with a symbolic batch size.

    Raises:
      ImportError: without `jax2onnx` (`pip install 'jaxcnn[onnx]'`).
    """
    import logging

    from jax2onnx import to_onnx as convert

    h, w, c = predictor.info.image_shape
    quiet = logging.getLogger("onnx_ir.serde")  # a warning per constant it cannot type
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return convert(predictor.probabilities_of, [("n", h, w, c)]).SerializeToString()
    finally:
        quiet.setLevel(level)


def write(
    predictor: Predictor,
    out: Path,
    *,
    overwrite: bool = False,
    platforms: Sequence[str] | None = None,
    onnx: bool = False,
) -> Path:
    """Exports `predictor` into the folder `out` (with `onnx`, `model.onnx` too); the path
    of its `model.jax`.

    Raises:
      WorkdirError: if `out` is a file, or holds an export and `overwrite` is False.
    """
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise WorkdirError(f"--out {out} is a file: give a folder")
    for name in (MODEL_FILE, META_FILE, ONNX_FILE):
        if (out / name).exists() and not overwrite:
            raise WorkdirError(f"{out / name} exists: pass --overwrite to replace it")
    serialized = export(predictor, platforms).serialize()
    onnx_model = to_onnx(predictor) if onnx else None
    out.mkdir(parents=True, exist_ok=True)
    if onnx_model is not None:
        write_atomically(out / ONNX_FILE, onnx_model)
    write_atomically(out / MODEL_FILE, bytes(serialized))
    write_atomically(out / META_FILE, (json.dumps(metadata(predictor), indent=2) + "\n").encode())
    return out / MODEL_FILE


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m jaxcnn.export", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--workdir", required=True, help="where train.py trained the model")
    parser.add_argument("--out", required=True, type=Path, help="the folder to write into")
    parser.add_argument(
        "--platforms",
        default="",
        help="comma-separated platforms to lower for (cpu, cuda, rocm, tpu); "
        "default: JAX's default backend",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an export in --out")
    parser.add_argument("--onnx", action="store_true", help="also model.onnx, through jax2onnx")
    add_checkpoint_flag(parser)
    args = parser.parse_args(argv)
    platforms = [p for p in args.platforms.split(",") if p] or None
    known = {"cpu", "cuda", "rocm", "tpu"}
    if platforms and not set(platforms) <= known:
        parser.error(f"--platforms must name some of {sorted(known)}, got {args.platforms!r}")
    if args.onnx and importlib.util.find_spec("jax2onnx") is None:
        parser.error("--onnx needs jax2onnx, which is not installed: pip install 'jaxcnn[onnx]'")
    try:
        path = write(
            Predictor.load(args.workdir, args.checkpoint),
            args.out,
            overwrite=args.overwrite,
            platforms=platforms,
            onnx=args.onnx,
        )
    except (JaxcnnError, OSError) as e:
        sys.exit(f"python -m jaxcnn.export: {e}")
    print(f"{path} (and {META_FILE} beside it)")


if __name__ == "__main__":
    main()
