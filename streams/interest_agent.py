"""Stage 2, interests: events -> validate -> embed -> decay-merge -> score -> publish."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from cf.batch import Interaction, apply_interactions
from cf.catalog import ItemCatalog
from cf.decay import DecayConfig
from cf.interests import InterestConfig
from cf.neighbours import CoocConfig, batch_deltas
from cf.online import RecentItems, rank_of
from cf.retention import erase, expired
from cf.serving import SERVING_VERSION, HybridScorer
from cf.state import UserState
from cf.weights import EventWeights
from encoders import Encoder
from streams.catalog_agent import embed
from streams.cooccurrence_agent import pair_groups
from streams.dead_letters import send_to_dlq
from streams.event_context import event_context
from streams.metrics import Metrics
from streams.publisher import Publisher
from streams.records import (
    DELETE_USER,
    ERASURE_REASONS,
    Event,
    Invalid,
    TimeBounds,
    deletion,
    parse_event,
    ranked_recommendation,
)
from streams.settings import Settings
from streams.tables import Tables
from streams.topics import Topics

COVERAGE_WINDOW_S = 600.0  # interests_recommended_items counts the items shown in this window


@dataclass
class InterestStage:
    settings: Settings
    topics: Topics
    tables: Tables
    catalog: ItemCatalog
    encoder: Encoder
    executor: Executor
    metrics: Metrics
    scorer: HybridScorer
    publisher: Publisher

    def __post_init__(self) -> None:
        self.weights: EventWeights = self.settings.event_weights()  # built once, not per batch
        self.decay: DecayConfig = self.settings.decay()
        self.cooc: CoocConfig = self.settings.cooc()
        self.interest_config: InterestConfig = self.settings.interests()
        self.recent = RecentItems(COVERAGE_WINDOW_S)
        self.stream_ms = 0  # the newest event time merged by this worker (expiry's clock)
        # labelled series exist from the start at 0: a counter first seen at its value after a
        # burst has no rate in Prometheus
        for family in (self.metrics.online_events, self.metrics.online_hits, self.metrics.online_hit_rank):
            family.labels(self.model)
        for reason in ERASURE_REASONS:
            self.metrics.users_erased.labels(reason)

    @property
    def model(self) -> str:
        return f"{self.encoder.version}+{SERVING_VERSION}+{self.scorer.version}"

    async def process(self, batch: Sequence[Any]) -> None:
        """`batch`: faust Events of one `take_events` call, in partition order."""
        started = time.perf_counter()
        valid: list[tuple[Any, Event]] = []
        bounds = TimeBounds(int(time.time() * 1000), self.settings.min_event_ts_ms,
                            int(self.settings.max_event_ahead_s * 1000))
        for event in batch:
            try:
                parsed = parse_event(event.message.key, event.message.value,
                                     max_text_chars=self.settings.max_text_chars, bounds=bounds)
            except Invalid as error:
                self.metrics.events.labels("invalid", "dlq").inc()
                send_to_dlq(self.topics.dlq, self.metrics, event, error)
                continue
            valid.append((event, parsed))
        # an erasure splits the batch: what came before it is merged first, what came after
        # starts from nothing (per-user order is the partition's)
        start = 0
        for n, (event, parsed) in enumerate(valid):
            if parsed.type == DELETE_USER:
                if start < n:
                    await self._merge(valid[start:n], started)
                await self._erase(event, parsed)
                start, started = n + 1, time.perf_counter()
        if start < len(valid):
            await self._merge(valid[start:], started)

    async def _merge(self, valid: list[tuple[Any, Event]], started: float) -> None:
        self.stream_ms = max(self.stream_ms, max(parsed.ts for _, parsed in valid))
        interactions = await self._interactions([parsed for _, parsed in valid])
        last_event = {parsed.user_id: (event, parsed) for event, parsed in valid}
        before = {u: self._load(event) for u, (event, _) in last_event.items()}
        after = apply_interactions(  # each new state as it is stored: what is ranked
            before, interactions, self.decay, self.encoder.dim, self.encoder.version, self.catalog.vector,
            self.interest_config, stored=True,
        )
        fresh = first_deliveries(before, interactions)
        await self._send_pairs(before, interactions, fresh)
        ranked = self.scorer.top_k(after, self.settings.top_k)
        model = self.model
        self._count(valid, interactions, fresh)
        self._count_online(before, interactions, fresh, model)
        now = time.time()
        out_topic = self.topics.recommendations.get_topic_name()
        for user_id, state in after.items():
            event, parsed = last_event[user_id]
            r = ranked[user_id]
            shown = tuple(s.item_id for s in r.items + r.new_items)
            self.recent.add(shown, now)
            with event_context(event):  # this user's partition, not the batch's last one
                self.tables.users[event.message.key] = state.to_bytes(shown)
            value = ranked_recommendation(user_id, int(now * 1000), parsed.event_id, r, model)
            await self.publisher.send(out_topic, event.message.key, value)
        # the states' changelog records go out with the lists; the batch does not wait for their
        # acknowledgements: every commit does (`stored`), so no offset is committed before what
        # its event caused is stored, and the next batch is read meanwhile
        computed = time.perf_counter()
        await self.tables.users.send_queued()
        self.metrics.batch_store_seconds.observe(time.perf_counter() - computed)
        self.metrics.recommendations.inc(len(after))
        self.metrics.batch_users.observe(len(after))
        for event, _ in valid:
            self.metrics.end_to_end.observe(max(0.0, now - event.message.timestamp))
        self.metrics.batch_seconds.observe(time.perf_counter() - started)

    async def _erase(self, event: Any, parsed: Event) -> None:
        """A `delete_user` event: the user's state goes (a changelog tombstone) and so does
        their list (a tombstone on the output topic), unless it is an expiry and the user came
        back since. Idempotent: a redelivered erasure finds nothing left to remove."""
        state = self._load(event)
        kept = erase(state, parsed.if_idle_since_ms)
        reason = parsed.erasure_reason
        if kept is not None or (state is None and reason == "expired"):  # spared, or nothing to expire
            self.metrics.events.labels(DELETE_USER, "kept").inc()
            return
        if state is not None:
            with event_context(event):  # the tombstone goes to this user's changelog partition
                del self.tables.users[event.message.key]
        await self.publisher.send(self.topics.recommendations.get_topic_name(), event.message.key, None)
        await self.stored()
        self.metrics.events.labels(DELETE_USER, "erased").inc()
        self.metrics.users_erased.labels(reason).inc()

    async def stored(self) -> None:
        """Wait until every list, state change and co-occurrence delta sent so far is acknowledged
        by the broker (awaited before every commit of input offsets); raises if one failed."""
        await asyncio.gather(self.publisher.flush(), self.tables.users.stored())

    def expired_users(self, now_ms: int) -> Iterator[tuple[bytes, bytes]]:
        """(key, delete_user event) for each user of this worker's partitions whose newest
        event is more than `user_ttl_s` behind the newest event time this worker has seen."""
        ttl = self.settings.user_ttl_s
        if ttl <= 0 or self.stream_ms <= 0:
            return
        for key, raw in self.tables.users.items():
            updated_ms = UserState.updated_ms_of(raw)
            if expired(updated_ms, self.stream_ms, ttl):
                yield key, deletion(key.decode("utf-8"), now_ms, if_idle_since_ms=updated_ms)

    async def _interactions(self, events: list[Event]) -> list[Interaction]:
        """Item events reuse the catalog's vector (no model call); text events are embedded,
        all of a batch's distinct texts in one encoder call."""
        weights = self.weights
        texts = sorted({e.text for e in events if e.text and e.item_id not in self.catalog})
        text_vectors = (
            dict(zip(texts, await embed(self.encoder, self.executor, self.metrics, texts), strict=True))
            if texts else {}
        )
        out = []
        for e in events:
            vector = self.catalog.vector(e.item_id) if e.item_id is not None else None
            if vector is None and e.text:
                vector = text_vectors[e.text]
            out.append(Interaction(
                user_id=e.user_id, event_id=e.event_id, ts_ms=e.ts,
                weight=weights.weight(e.type, e.rating),
                vector=None if vector is None else np.asarray(vector, dtype=np.float32),
                item_id=e.item_id,
            ))
        return out

    async def _send_pairs(self, before: dict[str, UserState | None], interactions: list[Interaction],
                    fresh: list[bool]) -> None:
        """The batch's co-occurrence deltas, one message per partition holding the rows of the
        items that partition owns: the co-occurrence stage there merges them. A redelivered
        event adds nothing."""
        histories = {u: s.history if s is not None else () for u, s in before.items()}
        firsts = [(x.user_id, x.item_id, x.ts_ms) for x, f in zip(interactions, fresh, strict=True) if f]
        deltas = batch_deltas(histories, firsts, self.cooc)
        topic = self.topics.item_pairs.get_topic_name()
        for partition, value in pair_groups(deltas, self.settings.partitions).items():
            await self.publisher.send(topic, b"rows-%d" % partition, value, partition=partition)

    def _load(self, event: Any) -> UserState | None:
        """Reads, like writes, go to the partition of the current event: the user's own."""
        with event_context(event):
            raw = self.tables.users.get(event.message.key)
        return None if raw is None else UserState.from_bytes(raw)

    def _count(
        self, valid: list[tuple[Any, Event]], interactions: list[Interaction], fresh: list[bool],
    ) -> None:
        """Per (type, outcome), one counter update per batch (a labelled update costs microseconds)."""
        counts: collections.Counter[tuple[str, str]] = collections.Counter()
        for (_, parsed), x, first in zip(valid, interactions, fresh, strict=True):
            if not first:
                outcome = "duplicate"
            elif x.vector is None:
                outcome = "unknown_item"
            else:
                outcome = "ok"
            counts[parsed.type, outcome] += 1
        for (kind, outcome), n in counts.items():
            self.metrics.events.labels(kind, outcome).inc(n)

    def _count_online(self, before: dict[str, UserState | None], interactions: list[Interaction],
                      fresh: list[bool], model: str) -> None:
        """Live HR@k: an event on an item by a user who had been sent a list is a hit when the
        item was in it. Every event of a batch is judged against the list sent before the batch."""
        judged = hits = 0
        hit_rank = self.metrics.online_hit_rank.labels(model)
        for x, first in zip(interactions, fresh, strict=True):
            state = before.get(x.user_id)
            if not first or x.item_id is None or state is None or not state.shown:
                continue
            judged += 1
            rank = rank_of(state.shown, x.item_id)
            if rank is not None:
                hits += 1
                hit_rank.observe(rank)
        if judged:
            self.metrics.online_events.labels(model).inc(judged)
        if hits:
            self.metrics.online_hits.labels(model).inc(hits)

    def observe_coverage(self, catalog_items: int) -> None:
        shown = self.recent.count(time.time())
        self.metrics.recommended_items.labels(self.model).set(shown)
        self.metrics.catalog_coverage.labels(self.model).set(shown / catalog_items if catalog_items else 0.0)


def first_deliveries(before: dict[str, UserState | None], interactions: list[Interaction]) -> list[bool]:
    """Per interaction: False when its event id was merged before (in the user's state) or
    earlier in this batch, i.e. a redelivery that `decay_merge` skips."""
    seen = {u: set(s.seen) if s is not None else set() for u, s in before.items()}
    out = []
    for x in interactions:
        ids = seen.setdefault(x.user_id, set())
        out.append(x.event_id not in ids)
        ids.add(x.event_id)
    return out
