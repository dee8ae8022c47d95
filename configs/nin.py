"""Network in Network (d2l 8.3) for 28x28 images: NiN blocks, no dense layer.

python train.py --config configs/nin.py --workdir runs/nin

With batch norm in its blocks (d2l's has none, and trains slowly from scratch).
"""

import ml_collections

from configs import modern


def get_config() -> ml_collections.ConfigDict:
    config = modern.get_config()
    config.model.name = "nin"
    config.model.channels = (32, 64, 96)  # the three NiN blocks before the classifier's
    config.model.dropout = 0.5
    config.augment = "flip"
    config.label_smoothing = 0.0
    return config
