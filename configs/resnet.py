"""A small CIFAR-style ResNet (16/32/64 channels) for 28x28 images on a 2-core CPU.

    python train.py --config configs/resnet.py --workdir runs/resnet

Batch norm, random crops (shifts) and flips, AdamW on a one-cycle schedule;
accuracy and time measured here are in the README's table of models.
"""

import ml_collections

from jaxcnn import config as config_lib
from jaxcnn import xla


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.defaults()
    config.model.name = "resnet"
    config.model.stages = (16, 32, 64)  # channels per stage; each halves the image after the first
    config.model.blocks = 1  # residual blocks per stage
    config.model.conv_impl = "auto"
    config.augment = "shift_flip"
    config.optimizer = "adamw"
    config.weight_decay = 0.05
    config.label_smoothing = 0.1
    config.learning_rate = 4e-3
    config.schedule = "onecycle"
    config.batch_size = 128
    config.num_epochs = 12
    config.checkpoint_every_steps = 200
    # No YNNPACK fusions: XLA's own convolutions with 16-64 channels run faster
    # here (docs/performance.md, "XLA's CPU options").
    config.cpu_compiler_options.update(xla.YNN_OFF)
    return config
