"""The config rules, checked without any dataset."""

import subprocess
import sys
from pathlib import Path

import ml_collections
import pytest

from configs import lenet, lenet_d2l
from jaxcnn.train import config as config_lib
from jaxcnn.train.config import ConfigError

CONFIGS = Path(__file__).parents[1] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("[!_]*.py")), ids=lambda p: p.name)
def test_every_shipped_config_keeps_the_rules(path):
    config_lib.check(config_lib.load(path))


def test_checking_every_shipped_config_starts_no_jax_backend():
    # Checking builds each model (every layer checks its arguments) but creates no array:
    # `cpu_devices`, set after the check, must still reach JAX.
    code = (
        "import sys\n"
        "from jax._src import xla_bridge\n"
        "from jaxcnn.train import config\n"
        f"for path in sorted(__import__('pathlib').Path({str(CONFIGS)!r}).glob('[!_]*.py')):\n"
        "    config.check(config.load(path))\n"
        "    assert not xla_bridge.backends_are_initialized(), path\n"
        "print('unstarted')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=300
    )
    assert result.stdout.strip() == "unstarted", result.stderr[-2000:]


def test_defaults_keep_the_rules():
    config_lib.check(config_lib.defaults())


def with_(key, value):
    """The default config with `key` set to `value`, as a config file written by hand could."""
    config = ml_collections.ConfigDict(lenet.get_config().to_dict(), type_safe=False)
    *groups, last = key.split(".")
    node = config
    for group in groups:
        node = node[group]
    node[last] = value
    return config


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("augment", "rotate", "`augment` names .rotate., which is not one of"),
        ("batch_size", 0, "`batch_size` must be a positive int, got 0"),
        ("batch_size", "abc", "`batch_size` must be a positive int, got 'abc'"),
        ("batch_size", True, "`batch_size` must be a positive int, got True"),
        ("num_epochs", 2.5, "`num_epochs` must be an int >= 0, got 2.5"),
        ("eval_every_epochs", -1, r"`eval_every_epochs` must be an int >= 0 \(0: after the last"),
        ("test_time_shift", 1.5, "`test_time_shift` must be an int >= 0, got 1.5"),
        (
            "optimizer",
            "lion",
            r"`optimizer` must be one of \['adam', 'adamw', 'schedule_free_adamw', 'sgd'\], got 'lion'",
        ),
        ("schedule", "linear", "`schedule` must be one of"),
        ("learning_rate", -1.0, r"`learning_rate` must be a number > 0, got -1.0"),
        ("learning_rate", float("nan"), "`learning_rate` must be a number > 0"),
        ("momentum", 1.0, r"`momentum` must be a number in \[0, 1\), got 1.0"),
        ("weight_decay", -0.1, "`weight_decay` must be a number >= 0"),
        ("label_smoothing", 1.0, "`label_smoothing` must be a number in"),
        ("warmup_epochs", -1.0, "`warmup_epochs` must be a number >= 0"),
        ("num_devices", -1, "`num_devices` must be an int >= 0"),
        ("cpu_devices", -1, "`cpu_devices` must be an int >= 0"),
        ("dataset", "", "`dataset` must be a non-empty name"),
        ("bogus", 3, "unknown config key `bogus`"),
        ("model.name", "alexnet", "`model.name` must be one of"),
        (
            "model.conv_impl",
            "fastest",
            r"`model.conv_impl` must be one of \['auto', 'lax', 'patches'\]",
        ),
        ("model.bogus", 3, r"`model` 'lenet' takes the keys \[.*'channels'.*\], not \['bogus'\]"),
        ("model.channels", (8,), r"`model` keys do not fit 'lenet': `channels` must be two widths"),
    ],
)
def test_each_rule_names_its_key(key, value, match):
    with pytest.raises(ConfigError, match=match):
        config_lib.check(with_(key, value))


def test_a_config_missing_a_key_is_rejected():
    config = lenet_d2l.get_config()
    del config["seed"]
    with pytest.raises(ConfigError, match="the config has no `seed`"):
        config_lib.check(config)


def test_batch_larger_than_the_data():
    config = lenet.get_config()
    assert config_lib.full_batches(config, 1000) == 1000 // 128
    with pytest.raises(
        ConfigError, match=r"`batch_size` \(128\) is larger than the training set \(100\)"
    ):
        config_lib.full_batches(config, 100)


@pytest.mark.parametrize(
    "setting, match",
    [
        ("model.chanels=(4, 12)", "no key 'model.chanels'"),
        ("num_epochs=2.5", "cannot be casted"),
        ("model.channels", "KEY=VALUE"),
    ],
)
def test_override_rejects(setting, match):
    with pytest.raises(ConfigError, match=match):
        config_lib.override(lenet.get_config(), setting)


def test_override_sets_literals_and_bare_words():
    config = lenet.get_config()
    config_lib.override(config, "model.channels=(4, 12)")
    config_lib.override(config, "model.conv_impl=lax")
    config_lib.override(config, "learning_rate=1")  # an int where a float is kept
    assert config.model.channels == (4, 12) and config.model.conv_impl == "lax"
    assert config.learning_rate == 1.0


def test_load_a_missing_file():
    with pytest.raises(ConfigError, match="no config file no/such.py"):
        config_lib.load("no/such.py")


def test_configs_load_from_any_working_directory(tmp_path):
    # configs/lenet.py imports jaxcnn.train.config, and a config may import its
    # siblings (from configs import ...): outside the repository's root, and
    # outside pytest (whose pythonpath holds the root), config.load finds them.
    sibling = tmp_path / "mine"
    sibling.mkdir()
    (sibling / "__init__.py").write_text("")
    (sibling / "base.py").write_text(
        "from jaxcnn.train import config as c\n\ndef get_config():\n    return c.defaults()\n"
    )
    (sibling / "wide.py").write_text(
        "from mine import base\n\ndef get_config():\n"
        "    config = base.get_config()\n    config.batch_size = 64\n    return config\n"
    )
    code = f"from jaxcnn.train import config; print(config.load({str(sibling / 'wide.py')!r}).batch_size)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "64"


@pytest.mark.parametrize("every, scored", [(1, [1, 2, 3, 4, 5]), (2, [2, 4, 5]), (0, [5])])
def test_the_test_split_is_scored_every_eval_every_epochs_and_after_the_last(every, scored):
    config = with_("eval_every_epochs", every)
    config.num_epochs = 5
    assert [e for e in range(1, 6) if config_lib.test_scored(config, e)] == scored
