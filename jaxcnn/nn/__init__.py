"""The layers: pure functions over parameter dicts, their kernels and the `Layer`s built on them.

Floors, each importing only from those below (pyproject.toml's import-linter contract):
`layers` (the `L.` names) > `conv_layers | combinators | summary` > `network` (the `Layer`
and its walk) > the layer functions (`auto`, `fused`, `pool`, `norm`, `dropout`, `linear`,
`init`) > `cpu_kernels` > `conv`, `patches` > `geometry`, `params`.
"""
