"""A small GoogLeNet (d2l 8.4) for 28x28 images: Inception blocks of four branches.

python train.py --config configs/googlenet.py --workdir runs/googlenet
"""

import ml_collections

from jaxcnn import config as config_lib
from jaxcnn import xla


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.defaults()
    config.model.name = "googlenet"
    config.model.width = 16  # scales every branch; d2l's proportions
    config.model.conv_impl = "auto"
    config.augment = "shift_flip"
    config.optimizer = "adamw"
    config.weight_decay = 0.05
    config.label_smoothing = 0.1
    config.learning_rate = 4e-3
    config.schedule = "onecycle"
    config.batch_size = 128
    config.num_epochs = 10
    config.checkpoint_every_steps = 200
    config.cpu_compiler_options.update(xla.YNN_OFF)  # see configs/resnet.py
    return config
