"""`summary`: a table of a model's layers, their shapes, parameters, state and FLOPs."""

from __future__ import annotations

import jax

from jaxcnn.nn.network import Layer, Shape, State, walk
from jaxcnn.nn.params import ParamTree as Params


def summary(model: Layer, params: Params, input_shape: Shape, state: State | None = None) -> str:
    """A table of every layer: output shape, parameters, state values and FLOPs per example.

    Composite layers (`sequential`, `residual`, `concat`) get a row of their
    own, their sublayers' rows after it, named by their path
    (`stage2.block1.conv1`); their figures are their sublayers' totals. FLOPs
    count the arithmetic a layer stands for, a multiply-add as 2, not that of
    its implementation; the last column is what the layer runs on JAX's default
    backend for a batch of `input_shape[0]` (`Layer.runs_as`). Nothing is
    compiled or computed.
    """
    nodes = walk(model, (1, *input_shape[1:]))
    state = state or {}
    own_flops = [n.layer.flops(n.in_shape, n.out_shape) for n in nodes]
    rows: list[tuple[str, ...]] = []
    for i, node in enumerate(nodes):
        if i == 0 and model.kind == "sequential":
            continue  # the model itself: the total says it
        inside = [j for j, other in enumerate(nodes) if other.path[: len(node.path)] == node.path]
        flops = sum(own_flops[j] for j in inside)
        runs_as = node.layer.runs_as((input_shape[0], *node.in_shape[1:]))
        rows.append(
            (
                node.name,
                str(node.out_shape[1:]),
                f"{_size(node.subtree(params)):,}",
                f"{_size(node.subtree(state)):,}",
                f"{flops:,}",
                runs_as,
            )
        )
    totals = (_size(params), _size(state), sum(own_flops))
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


def _size(tree) -> int:
    return sum(int(leaf.size) for leaf in jax.tree.leaves(tree))
