"""d2l 8.5: the lecture's LeNet with batch norm, trained as d2l trains it (SGD lr 1.0, 10 epochs).

    python train.py --config configs/lenet_bn.py --workdir runs/lenet_bn

d2l reports a test accuracy of about 0.85-0.88 for it on Fashion-MNIST; what
it reaches here, and in how long, is in the README's table of models.
"""

import ml_collections

from jaxcnn.train import config as config_lib


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.defaults()
    config.model.name = "lenet_bn"
    config.model.conv_impl = "auto"
    config.optimizer = "sgd"
    config.learning_rate = 1.0  # batch norm lets d2l's LeNet take ten times the rate
    config.schedule = "constant"
    config.batch_size = 256
    config.num_epochs = 10
    return config
