"""Models: the lecture's LeNet, and the modern CNNs of d2l chapter 8, sized for 28x28 images.

`MODELS` maps a config's `model.name` to its function; each takes the number
of classes and keyword arguments (its widths, `conv_impl`) and returns a
`jaxcnn.nn.layers.Layer`.
"""

from jaxcnn.models.densenet import densenet
from jaxcnn.models.googlenet import googlenet
from jaxcnn.models.lenet import lenet, lenet_bn, lenet_d2l
from jaxcnn.models.nin import nin
from jaxcnn.models.resnet import resnet, resnet18
from jaxcnn.models.vgg import vgg

MODELS = {
    "lenet": lenet,
    "lenet_d2l": lenet_d2l,
    "lenet_bn": lenet_bn,
    "nin": nin,
    "vgg": vgg,
    "googlenet": googlenet,
    "resnet": resnet,
    "resnet18": resnet18,
    "densenet": densenet,
}

__all__ = ["MODELS", *MODELS]
