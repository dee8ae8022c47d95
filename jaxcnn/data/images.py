"""Image files to arrays with Pillow: one size, one channel count, unreadable files skipped.

An image is resized to `image_size` keeping its aspect: it is cropped about
its centre to a square, then scaled (Pillow's `ImageOps.fit`, what
torchvision's `Resize` then `CenterCrop` give), so nothing is stretched and no
padding is invented. Grayscale and colour images mix freely: each is converted
to the channel count asked for.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from jaxcnn.data.sources import DataError

GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
SHOWN_SKIPPED = 5  # names of unreadable files printed


@dataclasses.dataclass(frozen=True)
class Layout:
    """What every prepared image becomes: `(height, width, channels)`."""

    height: int
    width: int
    channels: int


def choose_layout(paths: list[Path], image_size: int, channels: int) -> Layout:
    """The layout for `paths`: `image_size` (0: their one common size) and `channels` (0: 1
    if all are grayscale, else 3), reading only the images' headers.

    Raises:
      DataError: if `image_size` is 0 and the images have several sizes.
    """
    sizes, gray = set(), True
    for path in paths:
        try:
            with Image.open(path) as image:
                sizes.add(image.size)  # (width, height)
                gray = gray and image.mode in GRAY_MODES
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
            continue  # counted and reported when the images are decoded
    if not sizes:
        raise DataError(
            f"no readable images among the {len(paths)} files of {paths[0].parent.parent}"
        )
    if image_size:
        height = width = image_size
    elif len(sizes) == 1:
        width, height = next(iter(sizes))
    else:
        shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:4])
        raise DataError(
            f"the images have {len(sizes)} sizes ({shown}, ...): set --config.image_size "
            "to the size to resize them to"
        )
    return Layout(height, width, channels or (1 if gray else 3))


class UnreadableImage(DataError):
    """A file that is no image Pillow can read, or one too large to decode safely."""


def read_image(path: Path, layout: Layout) -> np.ndarray:
    """`path` as a uint8 `(height, width, channels)` array.

    Raises:
      UnreadableImage: naming the file and why: not an image, truncated, or
        more pixels than Pillow decodes safely (`Image.MAX_IMAGE_PIXELS`).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as file:
                image = file.convert("L" if layout.channels == 1 else "RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UnreadableImage(
            f"{path}: too large to decode safely (over {Image.MAX_IMAGE_PIXELS:,} pixels)"
        ) from None
    except UnidentifiedImageError:
        raise UnreadableImage(f"{path}: not an image Pillow can read") from None
    except (OSError, ValueError) as e:
        raise UnreadableImage(f"{path}: not a readable image ({e})") from None
    if image.size != (layout.width, layout.height):
        image = ImageOps.fit(image, (layout.width, layout.height), Image.Resampling.BILINEAR)
    array = np.asarray(image, np.uint8)
    return array[..., None] if array.ndim == 2 else array


def decode(path: Path, layout: Layout) -> np.ndarray | None:
    """`read_image`, or None if `path` is no readable image."""
    try:
        return read_image(path, layout)
    except UnreadableImage:
        return None


def skipped_message(skipped: list[Path], total: int) -> str:
    """One line naming the files that were not readable images."""
    names = ", ".join(str(p) for p in skipped[:SHOWN_SKIPPED])
    more = f" and {len(skipped) - SHOWN_SKIPPED} more" if len(skipped) > SHOWN_SKIPPED else ""
    return f"skipped {len(skipped)} of {total} files that are not readable images: {names}{more}"
