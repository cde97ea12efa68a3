"""Typed JSON records: dataclasses round-trip, and bad values are reported field by field."""

import dataclasses

import pytest

from spikerl_jax.config import ConfigError, TrainConfig
from spikerl_jax.schema import SchemaError, from_jsonable, to_jsonable


@dataclasses.dataclass(frozen=True)
class Inner:
    rate: float = 0.5
    sizes: tuple[int, ...] = (1, 2)


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner = Inner()
    count: int | None = None
    pairs: tuple[tuple[int, float], ...] = ()


def test_round_trip():
    value = Outer("a", Inner(0.25, (3,)), 7, ((1, 2.5),))
    assert from_jsonable(Outer, to_jsonable(value)) == value
    cfg = TrainConfig(env="Hopper-v4", seed=3)
    assert TrainConfig.from_dict(to_jsonable(cfg)) == cfg


def test_every_problem_is_reported_once():
    with pytest.raises(SchemaError) as e:
        from_jsonable(
            Outer, {"inner": {"rate": "fast", "sizes": [1, "x"]}, "count": 1.5, "extra": 1}
        )
    assert e.value.problems == [
        "extra: unknown field",
        "name: missing",
        "inner.rate: expected float, got 'fast'",
        "inner.sizes[1]: expected int, got 'x'",
        "count: expected int or null, got 1.5",
    ]
    with pytest.raises(SchemaError, match="expected an object, got list"):
        from_jsonable(Outer, [1, 2])
    with pytest.raises(SchemaError, match="expected a finite number"):
        from_jsonable(Inner, {"rate": float("nan")})


def test_config_json_is_validated():
    with pytest.raises(ConfigError, match=r"td3\.actor_lr: expected float, got 'fast'"):
        TrainConfig.from_dict({"td3": {"actor_lr": "fast"}})
    with pytest.raises(ConfigError, match="backend: expected 'gymnasium' or 'mjx'"):
        TrainConfig.from_dict({"backend": "gpu"})
