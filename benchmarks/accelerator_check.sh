#!/usr/bin/env bash
# The accelerator check: jaxcnn's tests, a short training run and the benchmarks on one GPU (or
# TPU), with no network, in under 8 minutes. Run it from the repository's root on a machine with
# JAX for the accelerator already installed:
#
#     bash benchmarks/accelerator_check.sh            # or PY=/path/to/python bash ...
#
# It writes JSON and Markdown under benchmarks/results/<device kind>/ and prints one line per
# part. Data: Debian's Fashion-MNIST if it is there, else $JAXCNN_DATA_DIR (IDX files, an .npz or
# image folders), else a synthetic dataset it writes. JAXCNN_CHECK_PLATFORM=cpu runs it on the
# CPU, to try the script itself.
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PY:-python}
platform=${JAXCNN_CHECK_PLATFORM:-}
export JAXCNN_TEST_PLATFORM=${platform:-$($py -c "import jax; print(jax.default_backend())")}
kind=$(JAX_PLATFORMS=$JAXCNN_TEST_PLATFORM $py -c "import jax; print(jax.devices()[0].device_kind)" | tr -c 'A-Za-z0-9._\n-' '_')
out=benchmarks/results/$kind
mkdir -p "$out"
work=$(mktemp -d /tmp/jaxcnn-accel.XXXX)
echo "accelerator check on $kind ($JAXCNN_TEST_PLATFORM), results in $out"

data_dir=/usr/share/datasets/fashion-mnist
[[ -d $data_dir ]] || data_dir=${JAXCNN_DATA_DIR:-}
if [[ -z $data_dir ]]; then
  data_dir=$work/synthetic
  $py -c "import sys; sys.path.insert(0, 'tests'); import synthetic, pathlib; synthetic.write_dataset(pathlib.Path('$data_dir'), 6000, 1000)"
fi
data="--config.data_dir=$data_dir --config.tfds_dir=$work/tfds --config.compile_cache_dir=$work/xla"

# 1. The layer and training tests on the accelerator: at float32 matmul precision (they hold
#    there), then at the default (TF32 on NVIDIA GPUs), to see how far that moves results.
tests="tests/test_conv.py tests/test_fused.py tests/test_pool.py tests/test_norm.py tests/test_layers.py tests/test_auto.py tests/test_augment.py"
one_device="not two_devices and not data_parallel and not two_processes and not explicit_sharding and not one_and_two_devices and not split_over_devices"
for precision in float32 default; do
  env_precision=$([[ $precision == float32 ]] && echo "JAX_DEFAULT_MATMUL_PRECISION=float32" || echo "")
  env $env_precision timeout 240 $py -m pytest -q -p no:cacheprovider $tests tests/test_training.py -k "$one_device" \
    > "$out/tests_$precision.txt" 2>&1
  echo "tests at $precision precision: $(tail -n 1 "$out/tests_$precision.txt")"
done

# 2. Short training runs of the default config, its convolutions through `auto` and through `lax`.
for impl in auto lax; do
  timeout 120 $py train.py --config configs/lenet.py --workdir "$work/run_$impl" $data \
    --config.num_epochs=3 --config.model.conv_impl=$impl > "$out/train_$impl.txt" 2>&1
  echo "train.py, conv_impl=$impl: $(grep '^epoch' "$out/train_$impl.txt" | tail -n 1)"
done
cp "$work/run_auto/metrics.jsonl" "$out/train_auto_metrics.jsonl" 2>/dev/null

# 3. The training benchmark at 1 and 12 steps per call, and a large batch; 4. the conv benchmark.
sets="--set data_dir=$data_dir --set tfds_dir=$work/tfds --set compile_cache_dir=$work/xla"
timeout 120 $py -m jaxcnn.bench train --configs configs/lenet.py configs/lenet_d2l.py $sets \
  --steps-per-call 1 12 --steps 60 --out "$out" > "$out/bench_train.txt" 2>&1
echo "bench train: $(grep -c '^| jax' "$out/train.md" 2>/dev/null) rows in $out/train.md"
timeout 120 $py -m jaxcnn.bench train --configs configs/lenet.py $sets --batch-size 4096 \
  --steps-per-call 12 --steps 60 --out "$out/batch4096" > "$out/bench_train_4096.txt" 2>&1
echo "bench train, batch 4096: $(grep '^| jax' "$out/batch4096/train.md" 2>/dev/null | cut -d'|' -f7) img/s"
timeout 150 $py -m jaxcnn.bench conv --out "$out" > "$out/bench_conv.txt" 2>&1
echo "bench conv: $(grep -c '^| ' "$out/conv.md" 2>/dev/null) rows in $out/conv.md"
rm -rf "$work"
