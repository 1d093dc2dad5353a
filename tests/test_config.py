"""The protocol config: PROTOCOL.md defaults, validation with one-line messages, JSON round trip."""

import math

import pytest

from tlkeras.core.config import StudyConfig, experiment2
from tlkeras.core.errors import ConfigError


def test_defaults_are_the_protocol():
    c = StudyConfig()
    assert (c.eta, c.theta, c.y_tot) == ((20.0, 15.0), (0.5, 0.3), 20.0)
    assert (c.big_domain, c.small_domain) == ((0.0, 20.0), (0.0, 10.0))
    assert (c.real_noise, c.synthetic_noise) == (1.0, 0.0)
    assert (c.pretrain_size, c.oracle_size) == (40_000, 20_000)
    assert c.volumes == (50, 100, 200, 500, 1000, 2000, 5000)
    assert c.systems == ("hill2",) and len(c.seeds) == 5
    assert (c.width, c.depth, c.activation) == (10, 5, "relu")
    assert (c.learning_rate, c.batch_size, c.epochs, c.pretrain_epochs) == (1e-3, 32, 2000, 1800)
    assert c.finetune_epochs == 200 and c.eval_points == 100
    assert experiment2().systems == ("hill1", "hill2", "hill3", "hill4", "phosphorylation")
    assert experiment2().volumes == (1000,)
    c.validate()


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("epochs", -5, "epochs=-5"),
        ("pretrain_epochs", 2000, "pretrain_epochs=2000"),
        ("volumes", (50, 50), "no duplicates"),
        ("volumes", (), "at least one"),
        ("volumes", (0,), "volumes=0"),
        ("seeds", (-1,), "seeds=-1"),
        ("big_domain", (20.0, 0.0), "not inverted"),
        ("small_domain", (0.0, 30.0), "inside big_domain"),
        ("real_noise", math.nan, "finite"),
        ("real_noise", -1.0, ">= 0"),
        ("learning_rate", 0.0, "> 0"),
        ("systems", ("hill0",), "hill0"),
        ("systems", ("magic",), "magic"),
        ("systems", ("hill2", "hill2.0"), "each system once"),
        ("eta", (1.0,), "2 values"),
        ("activation", "sin", "activation='sin'"),
        ("arms", ("transfer", "bogus"), "bogus"),
        ("batch_size", 2.5, "whole number"),
        ("pretrain_size", True, "whole number"),
    ],
)
def test_bad_values_fail_with_one_line_naming_them(field, value, fragment):
    with pytest.raises(ConfigError) as error:
        StudyConfig(**{field: value}).validate()
    message = str(error.value)
    assert fragment in message and "\n" not in message


def test_json_round_trip_and_unknown_fields():
    config = StudyConfig(volumes=(10, 20), systems=("hill3", "phosphorylation"))
    assert StudyConfig.from_json(config.to_json()) == config
    with pytest.raises(ConfigError, match="unknown fields"):
        StudyConfig.from_json('{"epochs": 3, "colour": 1}')
