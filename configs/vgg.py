"""A small VGG (d2l 8.2) for 28x28 images: blocks of 3x3 convs with batch norm, dropout.

python train.py --config configs/vgg.py --workdir runs/vgg
"""

import ml_collections

from configs import modern


def get_config() -> ml_collections.ConfigDict:
    config = modern.get_config()
    config.model.name = "vgg"
    config.model.blocks = ((1, 32), (1, 64), (2, 128))  # (convs, channels); each halves the image
    config.model.hidden = 256
    config.model.dropout = 0.5
    config.learning_rate = 2e-3
    return config
