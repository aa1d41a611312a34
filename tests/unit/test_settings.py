from __future__ import annotations

from pathlib import Path

import pytest

from cf.weights import EventWeights, parse_weights
from streams.settings import Settings


def test_defaults_and_environment() -> None:
    s = Settings.from_env({
        "INTERESTS_BROKER": "kafka://user:secret@k1:9092;kafka://k2:9092",
        "INTERESTS_PARTITIONS": "8", "INTERESTS_HALF_LIFE_S": "60", "INTERESTS_DATA_DIR": "/tmp/x",
        "INTERESTS_WEIGHTS": "view=0.25,dislike=-3", "INTERESTS_BROKER_PROFILE": "tansu",
    })
    assert s.partitions == 8 and s.half_life_s == 60.0 and s.data_dir == Path("/tmp/x")
    assert s.weights["view"] == 0.25 and s.weights["dislike"] == -3 and s.weights["click"] == 1.0
    assert s.bootstrap == "user:secret@k1:9092,k2:9092"
    assert "secret" not in str(s.public())
    assert s.topic("events") == "interests.events"
    assert Settings.from_env({}) == Settings()
    assert Settings().compression_type == "zstd"
    assert Settings.from_env({"INTERESTS_COMPRESSION": "lz4"}).compression_type == "lz4"
    assert Settings.from_env({"INTERESTS_COMPRESSION": "none"}).compression_type is None
    assert Settings.from_env(s.to_env()) == s


@pytest.mark.parametrize(
    ("name", "value"),
    [("INTERESTS_PARTITIONS", "zero"), ("INTERESTS_PARTITIONS", "0"), ("INTERESTS_HALF_LIFE_S", "-1"),
     ("INTERESTS_WEIGHTS", "teleport=1"), ("INTERESTS_BROKER_PROFILE", "redis"),
     ("INTERESTS_COMPRESSION", "brotli")],
)
def test_bad_settings_are_refused(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        Settings.from_env({name: value})


def test_rate_weight_follows_the_rating() -> None:
    w = EventWeights(by_type=parse_weights("rate=2"))
    assert w.weight("rate", 5.0) == pytest.approx(2.0)
    assert w.weight("rate", 2.5) == pytest.approx(0.0)
    assert w.weight("rate", 1.0) < 0 < w.weight("view")
    assert w.weight("dislike") < 0
