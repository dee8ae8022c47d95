"""Network in Network (d2l 8.3) for 28x28 images: NiN blocks, no dense layer.

    python train.py --config configs/nin.py --workdir runs/nin

With batch norm in its blocks (d2l's has none, and trains slowly from
scratch), flips, AdamW on a one-cycle schedule.
"""

import ml_collections

from jaxcnn import config as config_lib
from jaxcnn import xla


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.defaults()
    config.model.name = "nin"
    config.model.channels = (32, 64, 96)  # the three NiN blocks before the classifier's
    config.model.dropout = 0.5
    config.model.conv_impl = "auto"
    config.augment = "flip"
    config.optimizer = "adamw"
    config.weight_decay = 0.05
    config.learning_rate = 4e-3
    config.schedule = "onecycle"
    config.batch_size = 128
    config.num_epochs = 10
    config.checkpoint_every_steps = 200
    config.cpu_compiler_options.update(xla.YNN_OFF)  # see configs/resnet.py
    return config
