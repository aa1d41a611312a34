"""Every worker's full, live copy of the embedded catalog (a `GlobalReplica` of item-vectors)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

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
        # items whose latest vector is of another space and that have none in ours:
        # item id -> (title, document), re-embedded by the worker before it serves
        self.stale: dict[str, tuple[str, str]] = {}
        self.unembeddable = 0  # ... of those, records too old to carry their document
        self.refresh: Callable[[], Awaitable[None]] | None = None  # re-embeds `stale` (set by the app)

    async def before_ready(self) -> None:
        """A worker whose encoder changed serves only once the catalog is embedded again."""
        if self.unembeddable:
            log.warning("%d catalog items carry vectors of another encoder and no document: re-send "
                        "them to the items topic to serve them", self.unembeddable)
        if self.stale and self.refresh is not None:
            await self.refresh()

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
            self.stale.pop(item_id, None)
            return
        try:
            parsed = parse_item_vector(value)
        except (ValueError, KeyError) as exc:
            log.error("skipping unreadable item vector %r: %s", item_id, exc)
            return
        if parsed.space != self.space or parsed.vector.shape[0] != self.catalog.dim:
            if parsed.item_id not in self.catalog:
                if parsed.document:
                    self.stale[parsed.item_id] = (parsed.title, parsed.document)
                else:
                    self.unembeddable += 1
            return
        self.catalog.upsert(parsed.item_id, parsed.vector)
        self.titles[parsed.item_id] = parsed.title
        self.stale.pop(parsed.item_id, None)
