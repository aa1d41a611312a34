"""Online quality: did users take what they were shown? Plain bookkeeping, no Kafka.

Live HR@k over a window is  sum(hits) / sum(events on an item by a user who had been shown a list),
the streaming form of the offline prequential HR@k (`interests eval`): the list a user was last sent
is the prediction, their next consumed item the target.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def rank_of(shown: Sequence[str], item_id: str | None) -> int | None:
    """1-based rank of `item_id` in the list last shown; None for a miss (or no item)."""
    return shown.index(item_id) + 1 if item_id is not None and item_id in shown else None


class RecentItems:
    """Distinct items recommended within the last `window_s` seconds: the numerator of catalog
    coverage. Memory is one entry per distinct item shown in the window."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._last: dict[str, float] = {}  # item id -> when last shown, s

    def add(self, items: Iterable[str], now: float) -> None:
        for item_id in items:
            self._last[item_id] = now

    def count(self, now: float) -> int:
        cutoff = now - self.window_s
        if any(t < cutoff for t in self._last.values()):
            self._last = {i: t for i, t in self._last.items() if t >= cutoff}
        return len(self._last)
