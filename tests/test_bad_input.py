"""Property-based: generated flag values either give a valid run or one clean error line.

The drivers' own flag parsing runs in this process (tlkeras/cli/experiment.py with exp1's flags):
each example parses a generated command line, then builds and validates the config. It must
either succeed with a config that validates, or exit with status 2 after printing exactly one
line that names the bad value, before any training and without creating a run directory.
"""

import contextlib
import importlib.util
import io
import math

import pytest
from conftest import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlkeras.cli import experiment as common

# Loaded from its file as a user runs it (experiments/ is not a package): defines exp1's flags on
# the shared FLAGS.
_spec = importlib.util.spec_from_file_location("exp1", REPO / "experiments" / "exp1.py")
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))

from tlkeras.core.config import StudyConfig  # noqa: E402

EXAMPLES = 400

weird_numbers = st.sampled_from(["-1", "0", "nan", "inf", "-inf", "1e308", "-0", "abc", "", "3.5",
                                 "1e-300", "99999999999999999999", "0x10", "None", "[]"])
numbers = st.one_of(weird_numbers, st.integers(-10**6, 10**6).map(str),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr))
number_lists = st.lists(numbers, min_size=0, max_size=4).map(",".join)
names = st.sampled_from(["hill2", "hill0", "hill-1", "hill2.5", "phosphorylation", "synthetic", "magic",
                         "", "HILL3", "hillnan", "relu", "tanh", "sine"])

FLAG_VALUES = {
    "epochs": numbers, "pretrain_epochs": numbers, "pretrain_size": numbers, "oracle_size": numbers,
    "batch_size": numbers, "width": numbers, "depth": numbers, "learning_rate": numbers,
    "real_noise": numbers, "synthetic_noise": numbers, "y_tot": numbers, "eval_points": numbers,
    "eval_seed": numbers, "hill_n": numbers, "volumes": number_lists, "seeds": number_lists,
    "big_domain": number_lists, "small_domain": number_lists, "eta": number_lists, "theta": number_lists,
    "system": names, "simple_system": names, "activation": names,
    "arms": st.lists(st.sampled_from(["transfer", "baseline", "oracle", "bogus", ""]), max_size=4).map(",".join),
    "preset": st.sampled_from(["full", "quick", "fast", ""]),
}
command_lines = st.dictionaries(st.sampled_from(sorted(FLAG_VALUES)), st.none(), min_size=1, max_size=5).flatmap(
    lambda keys: st.fixed_dictionaries({k: FLAG_VALUES[k] for k in keys}))

tried = {"valid": 0, "refused": 0}


def _parse(args: dict[str, str], logdir: str):
    """Run the driver's parsing and config building; return (config or None, stderr, exit code)."""
    common.FLAGS.unparse_flags()
    argv = ["exp1.py", f"--logdir={logdir}", *(f"--{k}={v}" for k, v in args.items())]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            common.parse_flags(argv)
            system = common.FLAGS.system or f"hill{common.FLAGS.hill_n:g}"
            config = common.config_from_flags([system], [int(v) for v in common.FLAGS.volumes])
        except SystemExit as exit_:
            return None, stderr.getvalue(), exit_.code
    return config, stderr.getvalue(), 0


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=command_lines)
def test_generated_flags_give_a_valid_config_or_one_clean_line(args, tmp_path):
    config, stderr, code = _parse(args, str(tmp_path))
    if config is not None:
        tried["valid"] += 1
        assert isinstance(config, StudyConfig) and config.validate() is config
        assert config.pretrain_epochs < config.epochs and all(v > 0 for v in config.volumes)
        assert all(math.isfinite(v) for v in (*config.eta, *config.theta, config.real_noise, config.learning_rate))
    else:
        tried["refused"] += 1
        assert code == 2
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), stderr
        named = [k for k in args if k in lines[0]] or [v for v in args.values() if v and v in lines[0]]
        assert named or "preset" in args, f"the error names no given flag or value: {lines[0]} ({args})"
    assert not any(tmp_path.iterdir()), "a run directory was created"


def test_the_property_test_saw_both_outcomes():
    # Runs after the property test (file order): both branches must have been exercised.
    if tried["valid"] + tried["refused"] == 0:
        pytest.skip("run together with the property test")
    print(f"\ngenerated command lines: {tried['valid']} valid, {tried['refused']} refused")
    assert tried["valid"] > 0 and tried["refused"] > 0


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    epochs=st.one_of(st.integers(-5, 5000), st.floats(allow_nan=True), st.text(max_size=3), st.none()),
    pretrain_epochs=st.integers(-5, 5000),
    volumes=st.lists(st.one_of(st.integers(-3, 10**8), st.floats(allow_nan=True)), max_size=4).map(tuple),
    big_domain=st.tuples(st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True)),
    systems=st.lists(st.text(max_size=8) | st.sampled_from(["hill2", "phosphorylation", "hill0.5"]), max_size=3).map(tuple),
)
def test_config_validation_never_lets_a_bad_value_through(epochs, pretrain_epochs, volumes, big_domain, systems):
    from tlkeras.core.errors import ConfigError

    config = StudyConfig(epochs=epochs, pretrain_epochs=pretrain_epochs, volumes=volumes,
                         big_domain=big_domain, systems=systems)
    try:
        config.validate()
    except ConfigError as error:
        assert "\n" not in str(error) and "=" in str(error) or "system" in str(error)
        return
    assert isinstance(epochs, int) and 1 <= pretrain_epochs < epochs
    assert volumes and all(isinstance(v, int) and v >= 1 for v in volumes) and len(set(volumes)) == len(volumes)
    assert 0 <= big_domain[0] < big_domain[1] and math.isfinite(big_domain[1])
    assert systems
