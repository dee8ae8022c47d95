"""A small DenseNet (d2l 8.7) for 28x28 images: dense blocks joined by transitions.

python train.py --config configs/densenet.py --workdir runs/densenet
"""

import ml_collections

from jaxcnn import config as config_lib
from jaxcnn import xla


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.defaults()
    config.model.name = "densenet"
    config.model.stem = 32
    config.model.growth = 16  # channels each layer adds
    config.model.layers = (4, 4, 4)  # per dense block
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
