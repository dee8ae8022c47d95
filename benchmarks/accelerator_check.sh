#!/usr/bin/env bash
# The accelerator check: jaxcnn's tests and its figures on one GPU or TPU, with no network, in
# under 8 minutes. From the repository's root, on a machine with JAX for the accelerator:
#
#     OUT=DIR [WHEELHOUSE=DIR] [JAXCNN_DATA_DIR=DIR] [PY=python] bash benchmarks/accelerator_check.sh
#
# - OUT: where everything goes (default: a new temporary folder, printed): summary.json and
#   summary.md, rewritten after every step (a killed check still reports what it finished), and
#   check.log, every step's output. Never benchmarks/results/.
# - WHEELHOUSE: wheels of what the machine lacks (ml_collections), made on any machine with
#   `bash benchmarks/make_wheelhouse.sh DIR` (benchmarks/README.md); installed with no network.
# - JAXCNN_DATA_DIR: Fashion-MNIST's IDX files (default: Debian's, else a synthetic dataset).
# - PY: the Python to run with (default: .venv/bin/python if the README's set-up made it, else
#   python3). One without JAX gets a venv in the check's work folder (seeing its packages), into
#   which this checkout is installed with its requirements, from WHEELHOUSE or the package index.
# - JAXCNN_CHECK_PLATFORM: cuda, rocm, tpu or cpu (default: the first of cuda and tpu that
#   answers, else cpu: the dry run CI makes of this script).
#
# Steps, each with a hard timeout, all within a deadline of 470 s: the tests (one process,
# no preallocation), LeNet img/s at batch 128 and at a large batch, a whole configs/lenet.py run
# (time to 91%), ResNet img/s, bfloat16 beside float32, and bench conv if time is left.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
py=${PY:-}
[[ -n $py ]] || { [[ -x .venv/bin/python ]] && py=.venv/bin/python || py=python3; }  # the README's set-up
start=$(date +%s)
deadline=$((start + 470))
out=${OUT:-$(mktemp -d /tmp/jaxcnn-check.XXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/jaxcnn-check-work.XXXX)
trap 'rm -rf "$work"' EXIT
: > "$out/steps.tsv"
: > "$out/check.log"
log() { echo "$*" | tee -a "$out/check.log"; }

# What the machine lacks, from the wheelhouse (or the package index when there is none); jaxcnn
# itself from this checkout.
if ! $py -c "import jax" 2>/dev/null; then
  # No JAX at all (a bare Python): a venv of our own that still sees the machine's packages.
  log "$py has no JAX: installing this checkout and its requirements into a venv of the check's own"
  $py -m venv --system-site-packages "$work/venv" >> "$out/check.log" 2>&1 \
    || { log "could not make a venv with $py (Debian: apt-get install python3-venv)"; exit 2; }
  index=()
  [[ -n ${WHEELHOUSE:-} ]] && index=(--no-index --find-links "$WHEELHOUSE")
  "$work/venv/bin/python" -m pip install -q "${index[@]}" "$root[test]" >> "$out/check.log" 2>&1 \
    || { log "could not install jaxcnn's requirements${WHEELHOUSE:+ from $WHEELHOUSE} (check.log says why)"; exit 2; }
  py=$work/venv/bin/python
elif ! $py -c "import ml_collections" 2>/dev/null; then
  if [[ -z ${WHEELHOUSE:-} ]]; then
    log "ml_collections is missing: make a wheelhouse (bash benchmarks/make_wheelhouse.sh DIR) and set WHEELHOUSE=DIR"
    exit 2
  fi
  $py -m pip install -q --no-index --no-deps --no-compile --target "$work/site" "$WHEELHOUSE"/*.whl >> "$out/check.log" 2>&1 \
    || { log "could not install the wheels in $WHEELHOUSE"; exit 2; }
  export PYTHONPATH=$work/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH}

# The platform, asked for by name: JAX_PLATFORMS=gpu would also ask for rocm and oneapi.
platform=${JAXCNN_CHECK_PLATFORM:-}
if [[ -z $platform ]]; then
  for candidate in cuda tpu; do
    if JAX_PLATFORMS=$candidate timeout 60 $py -c "import jax; jax.devices()" > /dev/null 2>&1; then
      platform=$candidate
      break
    fi
  done
  platform=${platform:-cpu}
fi
export JAX_PLATFORMS=$platform JAXCNN_TEST_PLATFORM=$platform XLA_PYTHON_CLIENT_PREALLOCATE=false
$py - "$out/machine.json" "$platform" <<'PY' || { log "JAX cannot start on $platform"; exit 2; }
import json, platform, subprocess, sys, time
import jax
def git(*args):
    return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()
# "+": the tree differs from the commit (a copied checkout whose .git lags behind, say).
commit = git("rev-parse", "--short", "HEAD") + ("+" if git("status", "--porcelain", "-uno") else "")
device = jax.devices()[0]
json.dump({
    "platform": sys.argv[2], "device_kind": device.device_kind, "devices": jax.device_count(),
    "jax": jax.__version__, "python": platform.python_version(), "commit": commit or "?",
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "host": platform.node(),
}, open(sys.argv[1], "w"), indent=2)
PY
summarize() { $py benchmarks/check_summary.py "$out" "$work"; }
summarize
log "accelerator check on $(grep -o '"device_kind": "[^"]*"' "$out/machine.json" | cut -d'"' -f4) ($platform); results in $out"

# step NAME SECONDS COMMAND...: runs it with a timeout cut to the deadline, logs its output,
# records its status and rewrites the summary.
failed=()
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((deadline - $(date +%s)))
  if ((left < 15)); then
    printf '%s\t%s\t%s\n' "$name" "skipped: no time left" 0 >> "$out/steps.tsv"
    log "$name: skipped, no time left"
    summarize
    return
  fi
  ((limit > left)) && limit=$left
  local t0=$(date +%s)
  echo "== $name (at most $limit s): $*" >> "$out/check.log"
  timeout -k 5 "$limit" "$@" > "$work/$name.txt" 2>&1
  local code=$?
  ((code == 0)) || failed+=("$name")
  cat "$work/$name.txt" >> "$out/check.log"
  printf '%s\t%s\t%s\n' "$name" "$code" $(($(date +%s) - t0)) >> "$out/steps.tsv"
  summarize
  log "$name: exit $code in $(($(date +%s) - t0)) s"
}

data_dir=${JAXCNN_DATA_DIR:-/usr/share/datasets/fashion-mnist}
if [[ ! -d $data_dir ]]; then
  data_dir=$work/synthetic
  $py -c "import sys; sys.path.insert(0, 'tests'); import synthetic, pathlib; synthetic.write_dataset(pathlib.Path('$data_dir'), 6000, 1000)"
  log "no Fashion-MNIST: a synthetic dataset, so time to 91% says little"
fi
sets="--set data_dir=$data_dir --set tfds_dir=$work/tfds --set compile_cache_dir=$work/xla"

# The tests in one process. Off the CPU, the layer and training tests; the CPU's dry run takes a
# few files, to try the step itself within the deadline.
if [[ $platform == cpu ]]; then
  tests="tests/test_layers.py tests/test_pool.py tests/test_norm.py"
else
  tests="tests/test_conv.py tests/test_fused.py tests/test_pool.py tests/test_norm.py tests/test_layers.py tests/test_auto.py tests/test_augment.py tests/test_models.py tests/test_precision.py tests/test_training.py"
fi
# The project's addopts (which ask for pytest-xdist) are replaced: it may be missing there. Where
# it is, eight processes share the accelerator, since compiling the tests' programs is the CPU's
# work (one process alone finishes about half of them in the step's time on an H200).
workers=()
[[ $platform != cpu ]] && $py -c "import xdist" 2>/dev/null && workers=(-n 8)
step tests 200 $py -m pytest -q -o addopts="-p no:cacheprovider -p no:benchmark" "${workers[@]}" $tests

bench="$py -m jaxcnn.bench train --steps 40 $sets"
step lenet_128 60 $bench --configs configs/lenet.py --batch-size 128 --out "$work/lenet_128"
large=$([[ $platform == cpu ]] && echo 1024 || echo 8192)
step lenet_large 60 $bench --configs configs/lenet.py --batch-size "$large" --out "$work/lenet_large"
step runs 120 $py -m jaxcnn.bench runs --configs configs/lenet.py --target 0.91 $sets --out "$work/runs"
step resnet 90 $py -m jaxcnn.bench train --steps 20 $sets --configs configs/resnet.py --batch-size 128 --out "$work/resnet"
ln -s "$work/lenet_128" "$work/lenet_float32"
step lenet_bfloat16 60 $bench --configs configs/lenet.py --batch-size 128 --set compute_dtype=bfloat16 --out "$work/lenet_bfloat16"
step conv 100 $py -m jaxcnn.bench conv --quick --out "$work/conv"
log "done in $(($(date +%s) - start)) s: $out/summary.md"
cat "$out/summary.md"
# A step that failed fails the check (its output is in check.log); one skipped for time does not.
((${#failed[@]} == 0)) || { log "failed: ${failed[*]}"; exit 1; }
