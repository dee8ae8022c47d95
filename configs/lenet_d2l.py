"""The lecture's LeNet as d2l trains it: sigmoid, average pooling, SGD lr 0.9, 10 epochs."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    # Data
    config.dataset = (
        "fashion_mnist"  # TFDS name (with data_dir: the name the IDX files are prepared under)
    )
    config.data_dir = (
        "/usr/share/datasets/fashion-mnist"  # MNIST-format IDX files; '' -> TFDS catalog
    )
    config.tfds_dir = "~/tensorflow_datasets"  # where TFDS keeps prepared datasets
    config.augment = ""  # '', 'flip', 'shift' or 'shift_flip' (random, on the device)
    # Model
    config.model = ml_collections.ConfigDict()
    config.model.name = "lenet_d2l"  # a key of jaxcnn.models.MODELS
    config.model.conv_impl = (
        "auto"  # 'lax', 'patches' (im2col) or 'auto' (fastest per layer); same numbers
    )
    # Optimisation
    config.optimizer = "sgd"  # 'sgd', 'adam' or 'adamw'
    config.learning_rate = 0.9
    config.schedule = "constant"  # 'constant', 'cosine' (with warmup) or 'onecycle'
    config.warmup_epochs = 0.0  # for 'cosine'
    config.momentum = 0.0  # sgd only; > 0 uses Nesterov momentum
    config.weight_decay = 0.0  # adamw only
    config.label_smoothing = 0.0
    config.batch_size = 256  # the last partial batch of each epoch is dropped
    config.eval_batch_size = 1000  # evaluation sees every test example
    config.num_epochs = 10
    config.steps_per_call = 12  # steps per jitted call, scanned; rounded down to divide an epoch
    # Devices
    config.num_devices = 0  # data parallel over this many devices; 0 = all of the default backend's
    config.cpu_devices = 1  # XLA devices the host CPU is split into (CPU backend only)
    # XLA compile options for the training and evaluation steps, on CPU devices only.
    config.cpu_compiler_options = ml_collections.ConfigDict()
    config.seed = 0
    return config
