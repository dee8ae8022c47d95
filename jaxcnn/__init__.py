"""jaxcnn: convolutional networks as pure JAX functions over parameter dicts.

Activations are NHWC, conv kernels HWIO. Every layer is a pure function
`(params, x, *, options) -> y` with an `init_*` companion that builds `params`.
"""

from jax.nn import relu, sigmoid, softmax, tanh

from jaxcnn.nn import layers
from jaxcnn.nn.auto import conv2d_auto
from jaxcnn.nn.conv import conv2d, conv2d_patches, corr2d
from jaxcnn.nn.dropout import dropout
from jaxcnn.nn.fused import conv2d_avg_pool, conv2d_max_pool
from jaxcnn.nn.geometry import DIMENSION_NUMBERS, IMAGE_LAYOUT, KERNEL_LAYOUT
from jaxcnn.nn.init import INITIALIZERS, get_initializer, init_conv2d, init_dense
from jaxcnn.nn.linear import dense, flatten
from jaxcnn.nn.norm import batch_norm, init_batch_norm
from jaxcnn.nn.patches import extract_patches
from jaxcnn.nn.pool import adaptive_avg_pool2d, avg_pool2d, global_avg_pool2d, max_pool2d

__version__ = "0.1.0"

__all__ = [
    "DIMENSION_NUMBERS",
    "IMAGE_LAYOUT",
    "INITIALIZERS",
    "KERNEL_LAYOUT",
    "adaptive_avg_pool2d",
    "avg_pool2d",
    "batch_norm",
    "conv2d",
    "conv2d_auto",
    "conv2d_avg_pool",
    "conv2d_max_pool",
    "conv2d_patches",
    "corr2d",
    "dense",
    "dropout",
    "extract_patches",
    "flatten",
    "get_initializer",
    "global_avg_pool2d",
    "init_batch_norm",
    "init_conv2d",
    "init_dense",
    "layers",
    "max_pool2d",
    "relu",
    "sigmoid",
    "softmax",
    "tanh",
]
