"""A small CIFAR-style ResNet (16/32/64 channels) for 28x28 images on a 2-core CPU.

python train.py --config configs/resnet.py --workdir runs/resnet

The shared recipe of configs/modern.py; its accuracy and time measured here
are in the README's results table.
"""

import ml_collections

from configs import modern


def get_config() -> ml_collections.ConfigDict:
    config = modern.get_config()
    config.model.name = "resnet"
    config.model.stages = (16, 32, 64)  # channels per stage; each halves the image after the first
    config.model.blocks = 1  # residual blocks per stage
    config.num_epochs = 12
    return config
