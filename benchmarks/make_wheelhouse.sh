#!/usr/bin/env bash
# Wheels of what an accelerator machine without network lacks for jaxcnn, for
# `WHEELHOUSE=DIR bash benchmarks/accelerator_check.sh` there:
#
#     bash benchmarks/make_wheelhouse.sh DIR [PYTHON_VERSION]    # default 3.12
#
# Run it on any machine that reaches PyPI. It fetches ml_collections, the one package jaxcnn
# imports that such machines (JAX, optax, orbax, pytest preinstalled) lack, and hypothesis
# (with attrs and sortedcontainers), which the tests draw examples with;
# without tensorflow-datasets a run keeps its data in memory and says it could not write the
# prepared copy, which changes nothing the check measures.
set -euo pipefail
dir=${1:?usage: make_wheelhouse.sh DIR [PYTHON_VERSION]}
version=${2:-3.12}
python3 -m pip download --no-deps --only-binary=:all: --python-version "$version" \
  --implementation cp --platform manylinux2014_x86_64 -d "$dir" \
  "ml_collections>=0.1.1" "hypothesis>=6.100" attrs sortedcontainers
ls "$dir"
