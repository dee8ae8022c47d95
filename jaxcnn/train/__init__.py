"""Training a network from a config, and using what it trained.

Floors, each importing only from those below (pyproject.toml's import-linter contract):
`loop` (`Run`, the epochs of one run) > what a run uses (`predict`, `evaluation`,
`batch_source`, `checkpoint`, `monitor`, `position`, `workdir`, `metrics`, `stop`, `phases`)
> `trainer` (the jitted train and eval steps) > `config` > `augment | optim | precision | transfer`.
"""
