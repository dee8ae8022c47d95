"""The default: modern LeNet-5 (ReLU, max pooling) on Fashion-MNIST, tuned for a 2-core CPU."""

from configs import lenet_d2l


def get_config():
    config = lenet_d2l.get_config()
    config.model.name = "lenet"
    config.model.channels = (6, 16)  # conv1, conv2 output channels
    config.model.hidden = (120, 84)  # fc1, fc2 widths
    config.augment = ""
    config.optimizer = "adam"
    config.learning_rate = 3e-3
    config.schedule = "onecycle"
    config.num_epochs = 8
    return config
