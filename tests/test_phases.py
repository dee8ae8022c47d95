"""Where a run's time goes: phases add up, nest, and take compilation out into `compile`."""

import time

import jax
import jax.numpy as jnp

from jaxcnn.train.phases import Phases


def test_inner_phases_count_for_themselves_alone():
    phases = Phases()
    with phases("train"):
        time.sleep(0.05)
        with phases("saving"):
            time.sleep(0.1)
    seconds = phases.as_dict()
    assert 0.1 <= seconds["saving"] < 0.2
    assert 0.05 <= seconds["train"] < 0.1  # its own time, without the inner save's


def test_compilation_inside_a_phase_goes_to_compile():
    phases = Phases()
    width = 97  # a shape no other test compiles
    with phases("train"):
        jax.jit(lambda x: jnp.tanh(x) @ x.T)(jnp.ones((width, width))).block_until_ready()
    seconds = phases.as_dict()
    assert seconds["compile"] > 0
    assert seconds["train"] + seconds["compile"] > 0


def test_the_first_step_is_noted_once_and_printed():
    phases = Phases()
    assert phases.first_step_s is None and "first step" not in phases.line()
    phases.first_step()
    first = phases.first_step_s
    time.sleep(0.01)
    phases.first_step()
    assert phases.first_step_s == first
    assert first >= phases.seconds["start-up"]
    assert phases.line().endswith(f"; first step at {first:.1f} s")
    assert phases.line().startswith("time: start-up ")


def test_each_phases_listens_from_its_making_to_its_close():
    with Phases() as outer:
        inner = Phases()
        with inner("train"):
            jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((89, 89))).block_until_ready()
        inner.close()
        counted = inner.as_dict()["compile"]
        with inner("train"):  # closed: a compilation no longer counts for it
            jax.jit(lambda x: jnp.cos(x) @ x.T)(jnp.ones((83, 83))).block_until_ready()
        assert counted > 0 and inner.as_dict()["compile"] == counted
    assert outer.as_dict()["compile"] == 0  # compiled outside any of its phases


def test_programs_count_what_xla_compiled():
    phases = Phases()
    f = jax.jit(lambda x: jnp.exp(x) @ x.T)
    f(jnp.ones((79, 79))).block_until_ready()  # a shape no other test compiles
    assert phases.programs["compiled"] >= 1
    compiled = dict(phases.programs)
    f(jnp.ones((79, 79))).block_until_ready()  # the same program, already loaded: no compiling
    assert phases.programs == compiled
    phases.close()
