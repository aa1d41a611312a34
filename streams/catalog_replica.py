"""Every worker's full, live copy of the embedded catalog (a `GlobalReplica` of item-vectors)."""

from __future__ import annotations

import logging

from cf.catalog import ItemCatalog
from streams.global_replica import GlobalReplica
from streams.metrics import Metrics
from streams.records import parse_item_vector
from streams.settings import Settings

log = logging.getLogger(__name__)


class CatalogReplica(GlobalReplica):
    def __init__(self, settings: Settings, catalog: ItemCatalog, space: str, metrics: Metrics) -> None:
        super().__init__(settings, settings.topic("item-vectors"), self.apply_vector, self._gauges)
        self.catalog = catalog
        self.space = space  # vectors of another encoder version are skipped
        self.metrics = metrics
        self.titles: dict[str, str] = {}

    def _gauges(self) -> None:
        self.metrics.items.set(len(self.catalog))
        if self.ready.is_set():
            self.metrics.catalog_ready.set(1)

    def apply_vector(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        item_id = key.decode("utf-8")
        if value is None:
            self.catalog.remove(item_id)
            self.titles.pop(item_id, None)
            return
        try:
            parsed_id, title, space, vector = parse_item_vector(value)
        except (ValueError, KeyError) as exc:
            log.error("skipping unreadable item vector %r: %s", item_id, exc)
            return
        if space != self.space or vector.shape[0] != self.catalog.dim:
            return
        self.catalog.upsert(parsed_id, vector)
        self.titles[parsed_id] = title
