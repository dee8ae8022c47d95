"""The default: modern LeNet-5 (ReLU, max pooling) on Fashion-MNIST, tuned for a 2-core CPU.

    python train.py --config configs/lenet.py --workdir runs/lenet

About 91% test accuracy; the time on this project's 2-core CPU is in the
README's table.
"""

import ml_collections

from jaxcnn import config as config_lib
from jaxcnn import xla


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.defaults()
    config.model.name = "lenet"
    config.model.conv_impl = "auto"  # each conv and its pool as one product (conv2d_max_pool)
    config.model.channels = (8, 16)  # conv1, conv2 output channels
    config.model.hidden = (120, 84)  # fc1, fc2 widths
    config.augment = "flip"  # random left-right flips; shifts cost accuracy at this size
    config.optimizer = "adamw"
    config.weight_decay = 0.05  # decoupled; the model overfits without it
    config.label_smoothing = 0.1
    config.learning_rate = 2e-3  # peak of the one-cycle schedule
    config.schedule = "onecycle"
    config.batch_size = 128  # faster per image than 256 on 2 CPU cores
    config.num_epochs = 17
    # No YNNPACK fusions: XLA's own loops run the pools' reductions faster
    # here (docs/performance.md, "XLA's CPU options").
    config.cpu_compiler_options.update(xla.YNN_OFF)
    return config
