"""Stage 1, catalog: items -> validate -> embed each item's text once -> item-vectors topic."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Any

from encoders import Encoder, item_document
from encoders.text_cache import CachedEncoder
from streams.catalog_replica import CatalogReplica
from streams.dead_letters import send_to_dlq
from streams.metrics import Metrics
from streams.records import Invalid, Item, item_vector, parse_item
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)


async def embed(
    encoder: Encoder, executor: Executor, metrics: Metrics, texts: Sequence[str]
) -> Any:
    """(N,) texts -> (N, D) float32, off the event loop so heartbeats and fetches go on."""
    started = time.perf_counter()
    vectors = await asyncio.get_running_loop().run_in_executor(executor, encoder.encode, list(texts))
    metrics.embed_seconds.observe(time.perf_counter() - started)
    metrics.embed_batch.observe(len(texts))
    if isinstance(encoder, CachedEncoder):
        metrics.encoder_cache.labels("hit").set(encoder.hits)
        metrics.encoder_cache.labels("miss").set(encoder.misses)
    return vectors


async def embed_items(
    batch: Sequence[Any], settings: Settings, topics: Topics, encoder: Encoder,
    executor: Executor, metrics: Metrics,
) -> None:
    """Upserts are embedded in one call and published; tombstones are forwarded as tombstones.
    Within a batch the last record of an item wins, as it would in a compacted topic."""
    latest: dict[str, Item | None] = {}
    for event in batch:
        try:
            item = parse_item(event.message.key, event.message.value,
                              max_text_chars=settings.max_text_chars)
        except Invalid as error:
            send_to_dlq(topics.dlq, metrics, event, error)
            continue
        item_id = item.item_id if item is not None else event.message.key.decode("utf-8")
        latest.pop(item_id, None)
        latest[item_id] = item
    upserts = [item for item in latest.values() if item is not None]
    documents = [item_document(i.title, i.text, i.tags) for i in upserts]
    vectors = await embed(encoder, executor, metrics, documents) if upserts else None
    now_ms = int(time.time() * 1000)
    for item_id, maybe_item in latest.items():
        if maybe_item is None:
            topics.item_vectors.send_soon(key=item_id.encode("utf-8"), value=None)
    for row, item in enumerate(upserts):
        assert vectors is not None
        topics.item_vectors.send_soon(
            key=item.item_id.encode("utf-8"),
            value=item_vector(item.item_id, item.title, vectors[row], encoder.version, now_ms,
                              documents[row]),
        )
    metrics.items_embedded.inc(len(upserts))


async def reembed(replica: CatalogReplica, topics: Topics, encoder: Encoder, executor: Executor,
                  metrics: Metrics, batch: int = 256) -> None:
    """The replica's stale items (vectors of another encoder version only) are embedded again
    with this worker's encoder, put in its catalog at once and published. An item is stale only
    while this worker has no vector of its own for it, so two encoder versions running side by
    side (a rolling upgrade) each embed an item once, not back and forth."""
    stale = replica.stale
    ids = list(stale)
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        vectors = await embed(encoder, executor, metrics, [stale[i][1] for i in chunk])  # (B, D)
        now_ms = int(time.time() * 1000)
        for row, item_id in enumerate(chunk):
            title, document = stale.pop(item_id)
            replica.catalog.upsert(item_id, vectors[row])
            replica.titles[item_id] = title
            await topics.item_vectors.send(
                key=item_id.encode("utf-8"),
                value=item_vector(item_id, title, vectors[row], encoder.version, now_ms, document))
        metrics.items_embedded.inc(len(chunk))
    log.info("re-embedded %d catalog items with encoder %s", len(ids), encoder.version)
