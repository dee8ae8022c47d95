import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import reference
import synthetic
from backends import cpu_only

from configs import lenet, resnet
from jaxcnn import xla
from jaxcnn.bench import (
    cli,
    conv,
    finetune,
    machine,
    peers,
    runs,
    summary,
    throughput,
    timing,
    torch_run,
)

CONFIGS = Path(__file__).parents[1] / "configs"


def test_quick_conv_benchmark_writes_json_table_and_plots(tmp_path):
    cli.main(["conv", "--quick", "--repeats", "3", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "conv.json").read_text())
    assert report["sgemm_gflops"] > 0
    rows = report["results"]
    assert {r["impl"] for r in rows} >= {
        "corr2d (naive loops)",
        "patches jit",
        "lax jit",
        "auto jit",
    }
    # Where the loops run, every other row is timed against them (how much faster is the
    # benchmark's figure to print, not this test's to bound).
    looped = {r["size"] for r in rows if r["impl"] == "corr2d (naive loops)"}
    assert 8 in looped
    assert all(r["speedup_vs_naive"] > 0 for r in rows if r["jit"] and r["size"] in looped)
    assert all(r["compile_s"] > 0 for r in rows if r["jit"])
    # sgemm is measured before and after each case; each fraction is of the higher rate.
    per_case = {}
    for r in rows:
        per_case.setdefault((r["batch"], r["size"], r["in_channels"]), set()).add(r["sgemm_gflops"])
        assert len(r["sgemm_samples"]) == 2 and r["sgemm_gflops"] == max(r["sgemm_samples"])
    assert len(per_case) == 3 and all(len(gemms) == 1 for gemms in per_case.values())
    assert "| lax jit |" in (tmp_path / "conv.md").read_text()
    if jax.default_backend() == "cpu" and xla.available_options(xla.YNN_OFF):
        for impl in ("lax jit, YNN off", "auto jit, YNN off"):
            assert sum(r["impl"] == impl for r in rows) == 3
    assert (tmp_path / "conv_time.png").stat().st_size > 1000
    assert (tmp_path / "conv_gflops.png").stat().st_size > 1000


@pytest.mark.parametrize("case", [(1, 8, 1, 1, 3), (1, 8, 1, 1, 2), (2, 7, 3, 4, 3)])
def test_every_benchmarked_conv_gives_the_same_numbers(case):
    batch, size, cin, cout, k = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, size, size, cin)).astype(np.float32)
    kernel = rng.standard_normal((k, k, cin, cout)).astype(np.float32)
    pads = reference.pad_pairs_for("SAME", (size, size), (k, k), (1, 1))
    expected = reference.conv2d(x, kernel, padding=pads)
    ynn_off = xla.available_options(xla.YNN_OFF)  # jaxlib 0.8.0 lacks the option
    impls = conv.conv_implementations(case, ynn_off)
    assert ({"lax jit, YNN off", "auto jit, YNN off"} <= set(impls)) == bool(ynn_off)
    assert ("corr2d (naive loops)" in impls) == (cin == 1)
    for name, (fn, _) in impls.items():
        y = np.asarray(fn(kernel, x))  # corr2d's: the one (h, w) image
        np.testing.assert_allclose(
            y.reshape(expected.shape), expected, rtol=1e-5, atol=1e-5, err_msg=name
        )


@pytest.mark.parametrize(
    "case", [(1, 8, 1, 1, 3), (1, 8, 1, 1, 2), (2, 7, 3, 4, 3), (2, 6, 3, 4, 4)]
)
def test_torch_peer_conv_gives_the_same_numbers(case):
    # Runs where PyTorch is installed (it is no dependency of jaxcnn's tests).
    torch = pytest.importorskip("torch")
    batch, size, cin, cout, k = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal((batch, size, size, cin)).astype(np.float32)
    kernel = rng.standard_normal((k, k, cin, cout)).astype(np.float32)
    pads = reference.pad_pairs_for("SAME", (size, size), (k, k), (1, 1))
    y = peers.torch_conv(kernel, x)()
    assert y.is_contiguous(memory_format=torch.channels_last)  # NHWC memory, as jaxcnn's
    np.testing.assert_allclose(
        y.permute(0, 2, 3, 1).numpy(),
        reference.conv2d(x, kernel, padding=pads),
        rtol=1e-5,
        atol=1e-5,
    )


def test_conv_benchmark_times_the_torch_peer_beside_jaxcnn():
    pytest.importorskip("torch")
    with conv.tqdm(total=0, disable=True) as bar:
        rows = conv.time_conv_case((2, 8, 3, 4, 3), np.random.default_rng(0), 3, bar, {}, True)
    peer = rows[-1]
    assert peer["impl"].startswith("torch ") and peer["impl"].endswith(" eager")
    assert peer["jit"] is False and peer["compile_s"] is None and peer["median_s"] > 0
    assert peer["gflops"] == pytest.approx(2 * 2 * 8 * 8 * 4 * 9 * 3 / peer["median_s"] / 1e9)
    assert [r["impl"] for r in rows[:-1]] == list(conv.conv_implementations((2, 8, 3, 4, 3)))


@pytest.mark.parametrize(
    "bench_args", [["conv", "--quick"], ["lenet", "--configs", str(CONFIGS / "lenet.py")]]
)
def test_torch_flag_without_pytorch_exits_in_one_line(bench_args, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # as if not installed: import fails
    with pytest.raises(SystemExit) as exit:
        cli.main([*bench_args, "--torch"])
    assert exit.value.code == 2
    assert (
        "--torch needs PyTorch, which is not installed: pip install torch"
        in capsys.readouterr().err
    )


def tiny_config(tmp_path) -> Path:
    """A config file: the default LeNet on a small synthetic dataset."""
    source = synthetic.write_dataset(tmp_path / "idx")
    config = tmp_path / "tiny.py"
    config.write_text(
        "from configs import lenet\n\n\n"
        "def get_config():\n"
        "    config = lenet.get_config()\n"
        f"    config.dataset, config.data_dir = 'synthetic', {str(source)!r}\n"
        f"    config.tfds_dir = {str(tmp_path / 'tfds')!r}\n"
        f"    config.compile_cache_dir = {os.environ['JAXCNN_TEST_COMPILE_CACHE']!r}\n"
        "    return config\n"
    )
    return config


def test_lenet_benchmark_times_each_device_count(tmp_path):
    config = tiny_config(tmp_path)
    out = tmp_path / "out"
    args = ["lenet", "--configs", str(config), "--batch-size", "32", "--steps", "3"]
    start = time.perf_counter()
    cli.main([*args, "--devices", "1", "2", "--out", str(out)])
    wall = time.perf_counter() - start
    rows = json.loads((out / "train.json").read_text())["rows"]
    assert [(r["framework"], r["devices"]) for r in rows] == [("jax", 1), ("jax", 2)]
    assert [r["augment"] for r in rows] == ["", ""]  # the config flips; PyTorch's peer does not
    # As train.py: the config's 12 steps per call, which divides the 24-step epoch.
    assert [r["steps_per_call"] for r in rows] == [12, 12]
    # 3 steps: one turn of one whole call each, which the benchmark's own time holds.
    assert [len(r["turn_step_s"]) for r in rows] == [1, 1]
    assert 0 < sum(12 * r["turn_step_s"][0] for r in rows) < wall
    assert "| jax | " + str(config) + " | 2 | 1 | 12 | 32 |" in (out / "train.md").read_text()
    with pytest.raises(SystemExit):
        cli.main([*args, "--devices", "0"])

    # Overrides reach the model, and each steps-per-call is timed in turn.
    overrides = ["model.conv_impl=lax", "model.channels=(4, 12)"]
    sets = [arg for setting in overrides for arg in ("--set", setting)]
    cli.main([*args, *sets, "--steps-per-call", "1", "8", "--out", str(out)])
    report = json.loads((out / "train.json").read_text())
    assert report["overrides"] == overrides
    rows = report["rows"]
    assert [r["steps_per_call"] for r in rows] == [1, 8]
    assert all(r["model"]["conv_impl"] == "lax" and r["model"]["channels"] == [4, 12] for r in rows)
    assert (
        "Overrides: model.conv_impl=lax, model.channels=(4, 12)" in (out / "train.md").read_text()
    )


def test_seeds_benchmark_times_k_models_against_one(tmp_path):
    config = tiny_config(tmp_path)
    out = tmp_path / "out"
    args = ["train", "--configs", str(config), "--batch-size", "32", "--steps", "3"]
    cli.main([*args, "--seeds", "1", "3", "--out", str(out)])
    assert not (out / "train.json").exists()  # the README's speeds stay as they were
    report = json.loads((out / "seeds.json").read_text())
    one, three = report["rows"]
    assert (one["seeds"], three["seeds"]) == (1, 3)
    k, slower = throughput.seeds_ratio(report)
    assert k == 3 and slower > 0
    assert "| jax | " + str(config) + " | 1 | 3 | 12 | 32 |" in (out / "seeds.md").read_text()
    # The README's table says it under the runs' rows.
    (out / "runs.json").write_text(json.dumps({"device": "cpu", "rows": []}))
    assert f"3 seeds of `{config}` as one vmapped step: {slower:.2f}x" in summary.results_table(out)
    with pytest.raises(SystemExit):
        cli.main([*args, "--seeds", "0"])


def test_runs_are_timed_in_turns_after_a_warm_up():
    log = []

    def fake_run(name, seconds):
        def run(steps):
            log.append((name, steps))
            return [seconds(len(log))] * steps

        return run

    # The slow run takes 1 s per step in its warm-up (call 1) and in the
    # untimed step that opens each of its turns (calls 3 and 7), 0.25 s in
    # its timed steps (calls 4 and 8): only those may count.
    slow = fake_run("slow", lambda call: 1.0 if call in (1, 3, 7) else 0.25)
    fast = fake_run("fast", lambda call: 0.1)
    assert timing.time_in_turns([slow, fast], steps=2, turn_steps=1) == [[0.25, 0.25], [0.1, 0.1]]
    turn = [("slow", 1), ("slow", 1), ("fast", 1), ("fast", 1)]
    assert log == [("slow", 2), ("fast", 2), *turn, *turn]


def test_a_row_takes_the_median_turn_and_counts_every_models_images():
    trainee = timing.Trainee({"batch_size": 32, "seeds": 3}, None, 2.0, 12, steps_per_epoch=24)
    row = trainee.result([0.5, 0.1, 0.2])
    assert row["median_step_s"] == 0.2  # of three turns, the middle one
    assert row["images_per_s"] == pytest.approx(3 * 32 / 0.2)  # 480: every seed's images
    assert row["epoch_s"] == pytest.approx(24 * 0.2)
    assert row["compile_s"] == pytest.approx(2.0 - 12 * 0.2)  # the first call less its steps


def test_speedup_is_the_median_of_each_turns_ratio():
    # The load doubles in turn 2 and quadruples in turn 4 for both runs; in
    # turn 3 a spike slows the peer alone. Each turn's own ratio is 1.25 but
    # turn 3's, so that is the median; the ratio of the medians,
    # 0.0275 / 0.0155, would be 1.77.
    ours = [0.010, 0.020, 0.011, 0.040]
    theirs = [0.0125, 0.025, 0.030, 0.050]
    assert timing.paired_speedup(ours, theirs) == pytest.approx(1.25)
    with pytest.raises(ValueError, match="one time per turn"):
        timing.paired_speedup(ours, theirs[:3])


@pytest.mark.parametrize(
    "setting, message",
    [
        ("model.chanels=(4, 12)", "no key 'model.chanels'"),
        ("num_epochs=2.5", "cannot be casted"),
        ("model.channels", "KEY=VALUE"),
    ],
)
def test_lenet_benchmark_rejects_bad_overrides(setting, message, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["lenet", "--configs", str(CONFIGS / "lenet.py"), "--set", setting])
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--configs", "no/such/config.py"], "--configs: no such file no/such/config.py"),
        (["--set", "learning_rate=-1.0"], "`learning_rate` must be a number > 0, got -1.0"),
        (["--batch-size", "1000"], "`batch_size` (1000) is larger than the training set (768)"),
        (["--out", __file__], "--out must be a folder, got the file"),
        (["--set", "batch_size=64"], "--set batch_size=64: give --batch-size"),
        (["--set", "augment=flip"], "--set augment=flip: the benchmark trains unaugmented"),
    ],
)
def test_lenet_benchmark_rejects_bad_arguments_in_one_line(tmp_path, args, message, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["lenet", "--configs", str(tiny_config(tmp_path)), "--steps", "2", *args])
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


def test_cpu_model_names_the_processor_or_falls_back(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R45 96-Core Processor\n"
        "flags\t\t: fpu avx2\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 9R45 96-Core Processor\n"
    )
    assert machine.cpu_model(cpuinfo) == "AMD EPYC 9R45 96-Core Processor"
    fallback = machine.platform.processor() or machine.platform.machine()
    assert machine.cpu_model(tmp_path / "missing") == fallback
    cpuinfo.write_text("processor\t: 0\nmodel name\t:\n")  # some ARM kernels leave it empty
    assert machine.cpu_model(cpuinfo) == fallback


@cpu_only
def test_device_name_says_cpu_model_cores_and_xla_devices():
    name = machine.device_name()
    assert name.startswith(f"cpu ({machine.cpu_model()}, ")
    assert name.endswith(f" cores, {jax.device_count()} XLA device(s))")


def test_runs_benchmark_times_whole_processes_and_the_summary_table(tmp_path, monkeypatch):
    # A compile cache of its own: no other test's process holds its lock while the second run reads.
    monkeypatch.setenv("JAXCNN_TEST_COMPILE_CACHE", str(tmp_path / "xla"))
    config = tiny_config(tmp_path)
    out = tmp_path / "out"
    monkeypatch.chdir(CONFIGS.parent)  # runs the repository's train.py
    # The same config twice: the first run prepares its data, the second finds them.
    args = ["runs", "--configs", str(config), str(config), "--set", "num_epochs=2"]
    cli.main([*args, "--targets", "0.5", "1.01", "--out", str(out)])
    first, again = json.loads((out / "runs.json").read_text())["rows"]
    assert first["epochs"] == 2 and first["overrides"] == ["--config.num_epochs=2"]
    assert 0.9 < first["test_accuracy"] <= 1  # the synthetic classes are easy
    # 50% came within the whole process (at its last epoch, at the latest); 101% never.
    to_half, never = first["time_to_targets_s"]
    assert 0 < to_half <= first["wall_s"] and never is None
    assert (first["data"], again["data"]) == ("prepared", "found")
    # The second run compiles what the first did: every program is in the compile cache.
    assert again["programs"]["compiled"] == 0 < again["programs"]["all"]
    assert f"| {config} --config.num_epochs=2 | 2 |" in (out / "runs.md").read_text()

    # The README's table, made from these files: the run's row, no PyTorch figures.
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{summary.BEGIN}\nold table\n{summary.END}\n\nrest\n")
    cli.main(["summary", "--out", str(out), "--readme", str(readme)])
    table = summary.readme_table(readme)
    assert table == summary.results_table(out) and "old table" not in table
    assert "| run | test accuracy | start-up | whole run | to 50% | to 101% | img/s" in table
    # Start-up: from the process's start to its first training step, some of the whole run.
    assert 0 < again["startup_s"] < again["wall_s"]
    figures = (
        f"{again['test_accuracy']:.2%} | {again['startup_s']:.1f} s, warm | {again['wall_s']:.1f} s"
    )
    assert f"| `{config}` | {figures} | {again['time_to_targets_s'][0]:.1f} s | - |" in table
    assert readme.read_text().endswith(f"{summary.END}\n\nrest\n")


def test_cold_runs_prepare_their_data_and_compile_every_step(tmp_path, monkeypatch):
    config = tiny_config(tmp_path)
    out = tmp_path / "out"
    monkeypatch.chdir(CONFIGS.parent)
    args = ["runs", "--configs", str(config), "--set", "num_epochs=1", "--cold"]
    cli.main([*args, "--out", str(out)])
    [row] = json.loads((out / "runs.json").read_text())["rows"]
    assert row["data"] == "prepared" and row["overrides"] == ["--config.num_epochs=1"]
    count = row["programs"]["compiled"]
    assert count == row["programs"]["all"] > 1  # an empty cache holds none of them
    assert not (tmp_path / "tfds").exists()  # the config's own folder was left alone
    expected = f"s, cold: data prepared, {count} programs compiled |"
    assert expected in summary.results_table(out)


def test_summary_puts_each_peer_beside_its_config(tmp_path):
    def row(framework, config, rate, **more):
        return {"framework": framework, "config": config, "images_per_s": rate, **more}

    train = [
        row("jax", "a.py", 2000.0, turn_step_s=[1.0, 2.0, 1.0]),
        # Its turns: 2.5, 1.5 and 2.0 times jaxcnn's; the median is the row's own.
        row("torch 2 eager", "same model", 1000.0, jax_speedup=2.0, turn_step_s=[2.5, 3.0, 2.0]),
        row("torch 2 compile", "same model", 500.0, jax_speedup=4.0),
        row("flax 0.1 linen", "same model", 400.0, jax_speedup=5.0),
        row("jax", "b.py", 300.0),  # timed here only, no peers
    ]
    (tmp_path / "train.json").write_text(json.dumps({"rows": train}))
    (tmp_path / "runs.json").write_text(json.dumps({"device": "cpu", "rows": []}))
    table = summary.results_table(tmp_path)
    assert (
        "| `a.py` | - | - | - | - | - | - | 2,000 | 1,000 (2.00x, 1.50-2.50) | 500 (4.00x) | 400 (5.00x) |"
        in table
    )
    assert "| `b.py` | - | - | - | - | - | - | 300 | - | - | - |" in table


def test_summary_names_the_machine_of_speeds_measured_apart_from_the_runs(tmp_path):
    runs = {"device": "cpu (Intel Xeon)", "commit": "b", "date": "2026-12-04", "rows": []}
    (tmp_path / "runs.json").write_text(json.dumps(runs))
    train = {**runs, "rows": [{"framework": "jax", "config": "a.py", "images_per_s": 1.0}]}
    (tmp_path / "train.json").write_text(json.dumps(train))
    assert "measured on" not in summary.results_table(tmp_path)  # one machine, one commit
    train |= {"device": "cpu (AMD EPYC)", "commit": "a"}
    (tmp_path / "train.json").write_text(json.dumps(train))
    footer = summary.results_table(tmp_path).splitlines()[-1]
    assert "; measured on cpu (AMD EPYC) (commit a, date 2026-12-04))." in footer


def test_summary_without_its_markers_is_one_line(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no table here\n")
    with pytest.raises(SystemExit) as exit:
        cli.main(["summary", "--out", str(tmp_path), "--readme", str(readme)])
    assert exit.value.code == 2 and "has no" in capsys.readouterr().err


def test_flax_peer_trains_beside_jaxcnn(tmp_path):
    pytest.importorskip("flax")
    config = tiny_config(tmp_path)
    out = tmp_path / "out"
    args = ["train", "--configs", str(config), "--batch-size", "32", "--steps", "3", "--flax"]
    cli.main([*args, "--out", str(out)])
    jax_row, flax_row = json.loads((out / "train.json").read_text())["rows"]
    assert flax_row["framework"].startswith("flax ") and flax_row["framework"].endswith(" linen")
    assert flax_row["jax_speedup"] > 0 and flax_row["images_per_s"] > 0
    # The tests' CPU: one step a call, as scanned autodiff convs are slow there (jax#12868);
    # elsewhere scanned as train.py runs jaxcnn's steps, the config's steps to a call.
    cpu = jax.default_backend() == "cpu"
    assert jax_row["steps_per_call"] == 12 and flax_row["steps_per_call"] == (1 if cpu else 12)


def test_a_failed_run_is_named_by_its_exception_not_by_jax_s_note():
    stderr = (
        'Traceback (most recent call last):\n  File "train.py", line 1\n'
        "ModuleNotFoundError: No module named 'x'\n--------------------\n"
        "For simplicity, JAX has removed its internal frames from the traceback of the "
        "following exception. Set JAX_TRACEBACK_FILTERING=off to include these.\n"
    )
    assert runs.last_error(stderr) == "ModuleNotFoundError: No module named 'x'"
    assert runs.last_error("train.py: --config x.py: no such file\n") == (
        "train.py: --config x.py: no such file"
    )
    assert runs.last_error("") == "(nothing printed)"


def test_more_devices_than_jax_can_have_is_an_error_not_passed_over():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    result = subprocess.run(
        [sys.executable, "-m", "jaxcnn.bench", "train", "--configs", "configs/lenet.py",
         "--devices", "1", "2", "--steps", "1"],
        capture_output=True, text=True, timeout=300, env=env, cwd=CONFIGS.parent,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--devices 2" in result.stderr and "xla_force_host_platform_device_count=1" in (
        result.stderr
    )


def test_results_record_the_commit_versions_device_and_date():
    record = machine.provenance()
    assert record["device"] == machine.device_name() and record["jax"] == jax.__version__
    assert len(record["commit"].rstrip("+")) >= 7 and len(record["date"]) == len("2026-12-03")


def test_the_finetune_table_shows_each_run_and_where_it_was_measured():
    report = {
        **machine.provenance(), "config": "configs/lenet.py", "per_class": 50, "epochs": 30,
        "pretrained": {"epochs": 12, "test_accuracy": 0.9384},
        "rows": [{"run": "from scratch", "test_accuracy": 0.8912},
                 {"run": "fine-tuned", "test_accuracy": 0.9012}],
    }  # fmt: skip
    table = finetune.finetune_table(report)
    assert "| from scratch | 89.12% |" in table and "| fine-tuned | 90.12% |" in table
    assert "(12 epochs, 93.84% on their test images)" in table
    assert f"commit {report['commit']}" in table


def test_torch_twin_draws_jaxcnns_shifts_and_flips_per_example():
    torch = pytest.importorskip("torch")

    x = np.random.default_rng(0).standard_normal((64, 3, 6, 5)).astype(np.float32)
    drawn = torch_run.augment(torch.from_numpy(x), "crop:2,flip", torch.Generator().manual_seed(0))
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))  # zero: the mean, as jaxcnn pads
    found = []
    for i, image in enumerate(drawn.numpy()):
        shifts = [(t, left) for t in range(5) for left in range(5)]
        crops = {(t, left): padded[i, :, t : t + 6, left : left + 5] for t, left in shifts}
        match = [
            (shift, flip)
            for shift, crop in crops.items()
            for flip in (False, True)
            if np.array_equal(image, crop[..., ::-1] if flip else crop)
        ]
        assert match, f"example {i} is no shift of its image, flipped or not"
        found.append(match[0])
    assert 16 < sum(flip for _, flip in found) < 48  # about half flipped
    assert len({shift for shift, _ in found}) > 10  # each example its own shift


def test_torch_twin_trains_with_the_configs_recipe_or_refuses(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    words = torch_run.recipe(resnet.get_config())
    assert words == (
        "the config's recipe: adamw 0.004 onecycle, batch 128, augment 'shift_flip', smoothing 0.1"
    )
    assert "adamw (for schedule_free_adamw)" in torch_run.recipe(lenet.get_config())
    cutout = lenet.get_config()
    cutout.augment = "flip,cutout:4"
    with pytest.raises(ValueError, match=r"does not train with augment \['cutout'\]"):
        torch_run.recipe(cutout)
    held_out = resnet.get_config()
    held_out.validation_fraction = 0.1
    with pytest.raises(ValueError, match="does not train with validation_fraction 0.1"):
        torch_run.recipe(held_out)

    config = tiny_config(tmp_path)
    out = tmp_path / "out"
    monkeypatch.chdir(CONFIGS.parent)
    args = ["runs", "--configs", str(config), "--set", "num_epochs=2", "--torch", "--out", str(out)]
    cli.main(args)
    report = json.loads((out / "runs.json").read_text())
    assert {"commit", "jax", "jaxlib", "torch", "date", "device"} <= set(report)
    jaxcnn_row, torch_row = report["rows"]
    assert torch_row["epochs"] == jaxcnn_row["epochs"] == 2
    assert torch_row["overrides"] == [torch_run.recipe(lenet.get_config())]
    assert 0.9 < torch_row["test_accuracy"] <= 1  # the synthetic classes are easy
