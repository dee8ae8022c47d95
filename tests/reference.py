"""Independent NumPy references, written as plain loops in float64."""

import numpy as np


def pad_pairs_for(padding, in_hw, extent, stride):
    """The padding rules restated independently of jaxcnn.nn.geometry."""
    if padding == "VALID":
        return ((0, 0), (0, 0))
    if padding == "SAME":
        pads = []
        for n, k, s in zip(in_hw, extent, stride):
            out = -(-n // s)
            total = max((out - 1) * s + k - n, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    if isinstance(padding[0], int):
        return ((padding[0], padding[0]), (padding[1], padding[1]))
    return tuple(tuple(p) for p in padding)


def conv2d(
    x, kernel, bias=None, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1
):
    """NHWC x HWIO -> NHWC, one multiply-and-sum per output pixel and channel."""
    x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
    n, h, w, c = x.shape
    kh, kw, cg, o = kernel.shape
    og = o // groups
    x = np.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
    (sh, sw), (dh, dw) = stride, dilation
    oh = (x.shape[1] - (kh - 1) * dh - 1) // sh + 1
    ow = (x.shape[2] - (kw - 1) * dw - 1) // sw + 1
    y = np.zeros((n, oh, ow, o))
    for i in range(oh):
        for j in range(ow):
            window = x[
                :,
                i * sh : i * sh + (kh - 1) * dh + 1 : dh,
                j * sw : j * sw + (kw - 1) * dw + 1 : dw,
                :,
            ]
            for oc in range(o):
                g = oc // og
                y[:, i, j, oc] = np.sum(
                    window[..., g * cg : (g + 1) * cg] * kernel[..., oc], axis=(1, 2, 3)
                )
    if bias is not None:
        y += np.asarray(bias, np.float64)
    return y


def conv2d_grads(x, kernel, cotangent, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1)):
    """`(dx, dkernel)` of `sum(conv2d(x, kernel) * cotangent)`, one group: each output
    pixel's cotangent sent back to the pixels and taps that made it."""
    x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
    cotangent = np.asarray(cotangent, np.float64)
    n, h, w, c = x.shape
    kh, kw, _, o = kernel.shape
    (top, _), (left, _) = padding
    xp = np.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
    dxp, dkernel = np.zeros_like(xp), np.zeros_like(kernel)
    (sh, sw), (dh, dw) = stride, dilation
    for i in range(cotangent.shape[1]):
        for j in range(cotangent.shape[2]):
            rows = slice(i * sh, i * sh + (kh - 1) * dh + 1, dh)
            cols = slice(j * sw, j * sw + (kw - 1) * dw + 1, dw)
            g = cotangent[:, i, j, :]  # (n, o)
            dxp[:, rows, cols, :] += np.einsum("no,pqco->npqc", g, kernel)
            dkernel += np.einsum("no,npqc->pqco", g, xp[:, rows, cols, :])
    return dxp[:, top : top + h, left : left + w, :], dkernel


def pool2d(x, window, stride, padding, reduce, pad_value):
    """NHWC pooling with padded pixels set to `pad_value`; `reduce(values, real_mask)`."""
    x = np.asarray(x, np.float64)
    n, h, w, c = x.shape
    real = np.pad(np.ones((h, w), bool), padding)
    x = np.pad(x, ((0, 0), padding[0], padding[1], (0, 0)), constant_values=pad_value)
    (kh, kw), (sh, sw) = window, stride
    oh = (x.shape[1] - kh) // sh + 1
    ow = (x.shape[2] - kw) // sw + 1
    y = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            values = x[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :]
            y[:, i, j, :] = reduce(values, real[i * sh : i * sh + kh, j * sw : j * sw + kw])
    return y
