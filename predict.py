"""Classify images with a trained model: `python predict.py --workdir runs/NAME IMAGE_OR_FOLDER...`.

Prints, per image, its `--top_k` classes with their probabilities (`--json`:
one JSON object per image). Each image is prepared as the training images
were: converted to their channels, centre-cropped and scaled to their size,
normalised by their statistics. A wrong path or a workdir without a trained
model is one line on stderr and exit status 1; an unreadable image (not an
image, truncated, too large) is one line naming it, the others are still
predicted, and the exit status is 1. It writes nothing in the workdir.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from absl import logging

from jaxcnn import malloc
from jaxcnn.errors import JaxcnnError
from jaxcnn.train.predict import Predictor, add_checkpoint_flag, image_paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="predict.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, help="where train.py trained the model")
    parser.add_argument("images", nargs="+", help="image files, or folders of them")
    parser.add_argument("--top_k", type=int, default=3, help="classes to show per image")
    parser.add_argument("--json", action="store_true", help="one JSON object per image")
    add_checkpoint_flag(parser)
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error("--top_k must be >= 1")
    logging.set_verbosity(logging.ERROR)
    malloc.retain_freed_memory_on_cpu()
    unreadable = []

    def report(error: Exception) -> None:
        unreadable.append(error)
        print(f"predict.py: {error}", file=sys.stderr)

    try:
        paths, passed_over = image_paths(args.images)
        predictor = Predictor.load(args.workdir, args.checkpoint)
        predictions = predictor.predict(paths, args.top_k, on_unreadable=report)
    except JaxcnnError as e:
        sys.exit(f"predict.py: {e}")
    if passed_over:
        print(
            f"predict.py: passed over {len(passed_over)} files that are not images", file=sys.stderr
        )
    for p in predictions:
        if args.json:
            print(json.dumps(dataclasses.asdict(p)))
        else:
            ranked = ", ".join(f"{c} {prob:.1%}" for c, prob in zip(p.classes, p.probabilities))
            print(f"{p.path}: {ranked}")
    if unreadable:
        sys.exit(f"predict.py: {len(unreadable)} of {len(paths)} images could not be read")


if __name__ == "__main__":
    main()
