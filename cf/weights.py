"""How much one event of each type moves a user's interest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

EventType = Literal["view", "click", "like", "purchase", "rate", "search", "dislike"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

DEFAULT_WEIGHTS: Mapping[str, float] = {
    "view": 0.5,
    "click": 1.0,
    "like": 2.0,
    "purchase": 3.0,
    "rate": 1.0,
    "search": 1.0,
    "dislike": -1.0,
}


@dataclass(frozen=True)
class EventWeights:
    """Per-type weights; a `rate` event is scaled by how far its rating sits from the midpoint.

    w(rate, r) = w_rate * (r - rating_mid) / (rating_max - rating_mid)
    so on a 1..5 scale with mid 2.5: 5 -> +1.0 * w_rate, 1 -> -0.6 * w_rate.
    """

    by_type: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    rating_mid: float = 2.5
    rating_max: float = 5.0

    def __post_init__(self) -> None:
        unknown = set(self.by_type) - set(EVENT_TYPES)
        if unknown:
            raise ValueError(f"unknown event types in weights: {sorted(unknown)}")
        if self.rating_max <= self.rating_mid:
            raise ValueError("rating_max must be above rating_mid")

    def weight(self, event_type: str, rating: float | None = None) -> float:
        base = self.by_type.get(event_type, DEFAULT_WEIGHTS[event_type])
        if event_type == "rate" and rating is not None:
            return base * (rating - self.rating_mid) / (self.rating_max - self.rating_mid)
        return base


def parse_weights(spec: str) -> dict[str, float]:
    """`"view=0.5,dislike=-1"` -> {"view": 0.5, "dislike": -1.0}; types left out keep defaults."""
    weights = dict(DEFAULT_WEIGHTS)
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in EVENT_TYPES:
            raise ValueError(f"bad weight {part!r}: expected TYPE=NUMBER with TYPE in {EVENT_TYPES}")
        weights[name.strip()] = float(value)
    return weights
