"""A small GoogLeNet (d2l 8.4) for 28x28 images: Inception blocks of four branches.

python train.py --config configs/googlenet.py --workdir runs/googlenet
"""

import ml_collections

from configs import modern


def get_config() -> ml_collections.ConfigDict:
    config = modern.get_config()
    config.model.name = "googlenet"
    config.model.width = 16  # scales every branch; d2l's proportions
    return config
