"""The lecture's LeNet as d2l trains it: sigmoid, average pooling, SGD lr 0.9, 10 epochs.

    python train.py --config configs/lenet_d2l.py --workdir runs/lenet_d2l

About 83% test accuracy on Fashion-MNIST (d2l reports 0.80-0.83); the time on
this project's 2-core CPU is in the README's table.
"""

import ml_collections

from jaxcnn import xla
from jaxcnn.train import config as config_lib


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.defaults()
    config.model.name = "lenet_d2l"
    config.model.conv_impl = "auto"  # each conv, sigmoid and pool as one product (conv2d_avg_pool)
    config.optimizer = "sgd"
    config.learning_rate = 0.9
    config.schedule = "constant"
    config.batch_size = 256
    config.num_epochs = 10
    # No YNNPACK fusions: XLA's own loops run the biases' and pools' sums faster
    # (docs/performance.md, "XLA's CPU options")
    config.cpu_compiler_options.update(xla.YNN_OFF)
    return config
