"""The recipe the modern CNNs share (configs/resnet.py, vgg.py, nin.py, googlenet.py, densenet.py).

Random crops (shifts of up to 2 pixels) and flips, AdamW with decoupled
weight decay on a one-cycle schedule, label smoothing, batch 128, a checkpoint
every 200 steps (a minute or so of work on a 2-core CPU), and XLA's own CPU
kernels: its YNNPACK fusions ran convolutions of 16-64 channels slower here
(docs/performance.md, "XLA's CPU options"). Each model's config sets the model.
"""

import ml_collections

from jaxcnn import xla
from jaxcnn.train import config as config_lib


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.defaults()
    config.model.conv_impl = "auto"
    config.augment = "shift_flip"
    config.optimizer = "adamw"
    config.weight_decay = 0.05
    config.label_smoothing = 0.1
    config.learning_rate = 4e-3  # the peak of the one-cycle schedule
    config.schedule = "onecycle"
    config.batch_size = 128
    config.num_epochs = 10
    config.checkpoint_every_steps = 200
    config.cpu_compiler_options.update(xla.YNN_OFF)
    return config
