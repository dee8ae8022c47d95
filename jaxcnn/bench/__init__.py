"""Benchmarks: `python -m jaxcnn.bench conv`, `train` (alias `lenet`), `runs` and `summary`.

- `jaxcnn.bench.conv`: every convolution, naive to jitted, against sgemm.
- `jaxcnn.bench.throughput`: training throughput of configs, beside PyTorch's.
- `jaxcnn.bench.peers`: the PyTorch twins of both.
- `jaxcnn.bench.timing`, `jaxcnn.bench.machine`: how times are taken, and where.
- `jaxcnn.bench.cli`: the command line.

benchmarks/README.md says how to run them and how to read their figures.
"""
