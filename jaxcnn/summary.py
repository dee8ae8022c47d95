"""`summary`: a table of a model's layers, their shapes, parameters, state and FLOPs."""

from __future__ import annotations

import math

import jax

from jaxcnn.auto import choose_kernel
from jaxcnn.fused import runs_fused
from jaxcnn.geometry import window_geometry
from jaxcnn.layer import CONV_KINDS, POOLED_CONV_KINDS, Layer, Shape, State, output_shape
from jaxcnn.params import ParamTree as Params


def summary(model: Layer, params: Params, input_shape: Shape, state: State | None = None) -> str:
    """A table of every layer: output shape, parameters, state values and FLOPs per example.

    Composite layers (`sequential`, `residual`, `concat`) get a row of their
    own, their sublayers' rows after it, named by their path
    (`stage2.block1.conv1`). FLOPs count the arithmetic a layer stands for, a
    multiply-add as 2, not that of its implementation; a conv's row names the
    kernel it runs on JAX's default backend for a batch of `input_shape[0]`
    (see `jaxcnn.auto.choose_kernel`). Nothing is compiled.
    """
    rows: list[tuple[str, ...]] = []
    example = (1, *input_shape[1:])
    _, totals = _summarise(model, params, state or {}, example, "", rows, input_shape[0])
    if model.kind == "sequential":
        rows = rows[1:]  # the model itself: the total says it
    header = ("layer", "output shape", "params", "state", "FLOPs", "runs as")
    rows = [header, *rows, ("total", "", *(f"{t:,}" for t in totals), "")]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i in (0, 1, 5) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    ]
    rule = "-" * max(len(line) for line in lines)
    return "\n".join([lines[0], rule, *lines[1:-1], rule, lines[-1]])


def _summarise(
    layer: Layer, params, state, shape: Shape, name: str, rows: list, batch: int
) -> tuple[Shape, tuple[int, int, int]]:
    """Appends `layer`'s row, then its children's; returns its output shape and its
    (params, state, FLOPs) totals. Only leaves are traced, each once."""
    row = len(rows)
    rows.append(())
    if layer.children:
        flops, outputs = 0, {}
        child_shape = shape  # sequential and residual bodies chain; branches and shortcuts fork
        for child_name, child in layer.children.items():
            chained = layer.kind != "concat" and child_name != "shortcut"
            outputs[child_name], (_, _, child_flops) = _summarise(
                child,
                params.get(child_name, {}),
                state.get(child_name, {}),
                child_shape if chained else shape,
                f"{name}{child_name}.",
                rows,
                batch,
            )
            flops += child_flops
            if chained:
                child_shape = outputs[child_name]
        if layer.kind == "concat":
            first = next(iter(outputs.values()))
            out = (*first[:-1], sum(o[-1] for o in outputs.values()))
        else:
            out = child_shape
        if layer.kind == "residual":
            flops += math.prod(out[1:])  # the sum
        runs_as = layer.kind
    else:
        out = output_shape(layer, params, state, shape)
        flops, runs_as = _flops(layer, shape, out), _runs_as(layer, (batch, *shape[1:]))
    count, kept = _size(params), _size(state)
    cells = (f"{count:,}", f"{kept:,}", f"{flops:,}")
    rows[row] = (name.rstrip(".") or layer.kind, str(out[1:]), *cells, runs_as)
    return out, (count, kept, flops)


def _size(tree) -> int:
    return sum(int(leaf.size) for leaf in jax.tree.leaves(tree))


def _flops(layer: Layer, in_shape: Shape, out_shape: Shape) -> int:
    """The arithmetic per example that `layer` stands for (a multiply-add is 2 FLOPs)."""
    o = layer.options
    out_size = math.prod(out_shape[1:])
    if layer.kind in CONV_KINDS:
        kh, kw = (o["kernel_size"],) * 2 if isinstance(o["kernel_size"], int) else o["kernel_size"]
        cin = in_shape[-1] // o.get("groups", 1)
        if layer.kind == "conv2d":
            conv_pixels = math.prod(out_shape[1:3])
        else:  # the conv outputs the pool reads
            pool = window_geometry(out_shape[1:3], o["window"], o["window"], 0)
            conv_pixels = math.prod(out_shape[1:3]) * pool.window[0] * pool.window[1]
        conv_outputs = conv_pixels * out_shape[-1]
        if layer.kind == "conv2d_avg_pool":  # bias, activation and mean on every conv output
            return 2 * conv_outputs * kh * kw * cin + conv_outputs * (3 if o["use_bias"] else 2)
        return 2 * conv_outputs * kh * kw * cin + (out_size if o["use_bias"] else 0)
    if layer.kind == "dense":
        return 2 * in_shape[-1] * o["out_features"] + (out_size if o["use_bias"] else 0)
    if layer.kind in ("max_pool2d", "avg_pool2d", "global_avg_pool2d", "adaptive_avg_pool2d"):
        return math.prod(in_shape[1:])  # each input pixel read once into a window
    if layer.kind in ("activation", "batch_norm", "dropout", "function"):
        return math.prod(in_shape[1:]) * (2 if layer.kind == "batch_norm" else 1)
    return 0


def _runs_as(layer: Layer, in_shape: Shape) -> str:
    """What a conv layer runs on JAX's default backend; other layers run as their kind says."""
    o = layer.options
    if layer.kind not in CONV_KINDS:
        return layer.kind
    if o["impl"] != "auto":
        return {"lax": "lax conv", "patches": "im2col product"}[o["impl"]]
    groups = o.get("groups", 1)
    kh, kw = (o["kernel_size"],) * 2 if isinstance(o["kernel_size"], int) else o["kernel_size"]
    stride = o.get("stride", 1)
    geom = window_geometry(in_shape[1:3], (kh, kw), stride, o["padding"], o.get("dilation", 1))
    pool = POOLED_CONV_KINDS.get(layer.kind)
    if pool and runs_fused(in_shape[-1]):
        return "conv+pool products"
    kernel = choose_kernel(in_shape, (kh, kw, in_shape[-1] // groups, 0), geom, groups)
    names = {"tap_sum": "tap sums", "banded": "banded products", "lax": "lax conv"}
    return f"auto: {names[kernel]}" + (f" + {pool} pool" if pool else "")
