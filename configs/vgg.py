"""A small VGG (d2l 8.2) for 28x28 images: blocks of 3x3 convs with batch norm, dropout.

python train.py --config configs/vgg.py --workdir runs/vgg
"""

import ml_collections

from jaxcnn import config as config_lib
from jaxcnn import xla


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.defaults()
    config.model.name = "vgg"
    config.model.blocks = ((1, 32), (1, 64), (2, 128))  # (convs, channels); each halves the image
    config.model.hidden = 256
    config.model.dropout = 0.5
    config.model.conv_impl = "auto"
    config.augment = "shift_flip"
    config.optimizer = "adamw"
    config.weight_decay = 0.05
    config.label_smoothing = 0.1
    config.learning_rate = 2e-3
    config.schedule = "onecycle"
    config.batch_size = 128
    config.num_epochs = 10
    config.checkpoint_every_steps = 200
    config.cpu_compiler_options.update(xla.YNN_OFF)  # see configs/resnet.py
    return config
