"""A small DenseNet (d2l 8.7) for 28x28 images: dense blocks joined by transitions.

python train.py --config configs/densenet.py --workdir runs/densenet
"""

import ml_collections

from configs import modern


def get_config() -> ml_collections.ConfigDict:
    config = modern.get_config()
    config.model.name = "densenet"
    config.model.stem = 32
    config.model.growth = 16  # channels each layer adds
    config.model.layers = (4, 4, 4)  # per dense block
    return config
