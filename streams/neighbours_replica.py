"""Every worker's full, live copy of the co-occurrence rows (a `GlobalReplica` of item-neighbours)."""

from __future__ import annotations

import logging

from cf.neighbours import NeighbourIndex
from streams.cooccurrence_agent import parse_row
from streams.global_replica import GlobalReplica
from streams.metrics import Metrics
from streams.settings import Settings

log = logging.getLogger(__name__)


class NeighboursReplica(GlobalReplica):
    def __init__(self, settings: Settings, index: NeighbourIndex, metrics: Metrics) -> None:
        super().__init__(settings, settings.topic("item-neighbours"), self.apply_row,
                         lambda: metrics.neighbour_rows.set(len(index.rows)))
        self.index = index

    def apply_row(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        item_id = key.decode("utf-8")
        if value is None:
            self.index.apply(item_id, None)
            return
        try:
            self.index.apply(item_id, parse_row(value))
        except ValueError as exc:
            log.error("skipping unreadable co-occurrence row %r: %s", item_id, exc)
