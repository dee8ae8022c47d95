"""The CIFAR-style ResNet-18 (11.2M parameters): slow on a 2-core CPU, sized for a GPU.

python train.py --config configs/resnet18.py --workdir runs/resnet18
"""

import ml_collections

from configs import resnet


def get_config() -> ml_collections.ConfigDict:
    config = resnet.get_config()
    config.model.name = "resnet18"
    del config.model["stages"], config.model["blocks"]  # resnet18 fixes them
    config.learning_rate = 2e-3
    config.num_epochs = 15
    config.checkpoint_every_steps = 50  # each step takes long on a CPU
    return config
