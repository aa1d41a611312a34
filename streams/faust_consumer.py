"""Faust's group consumer, as this product needs it on any broker, and the embedded broker's
workarounds (INTERESTS_BROKER_PROFILE=tansu only).

On every broker:
- faust-streaming 0.15.3 hard-codes `fetch_max_wait_ms=1500` for its group consumer. aiokafka
  keeps one fetch in flight per broker and leaves out the partitions whose records are still
  buffered, so a fetch may ask only for idle partitions (the co-occurrence deltas, a quiet events
  partition) and the broker holds it for the whole wait while records pile up elsewhere: a list
  waited up to 1.5 s for its event to be fetched. We set it (`INTERESTS_FETCH_MAX_WAIT_MS`).
  Its `fetch_min_bytes` too (`INTERESTS_FETCH_MIN_BYTES`, 1 by default: a fetch comes back as
  soon as one record is there; a larger value means fewer fetches, each waiting longer).
- The group session timeout and heartbeat (`INTERESTS_SESSION_TIMEOUT_S`): a worker that dies
  keeps its partitions, and its users get no list, until its session expires.
- A revocation commits what the agents processed before Faust forgets the revoked partitions'
  acknowledged offsets (`_on_partitions_revoked`): Faust alone committed nothing then.
- Every commit of input offsets first waits for what the app registered with `before_commit`:
  the acknowledgements of the outputs and changelog records its agents sent, which they no
  longer wait for batch by batch. So an offset is committed only once what its event caused is
  stored (at least once), as Kafka Streams flushes its producer before it commits; a failed
  record crashes the consumer, as Faust does for its own attached messages, and nothing is
  committed past it.

On the embedded Tansu broker only:
- Tansu answers a fetch only when `fetch_max_wait_ms` runs out, even with data waiting.
- Tansu's ListOffsets(latest) answers the base offset of a partition's last batch + 1, not its
  end, after multi-record batches. Faust takes changelog highwaters from it, so recovery stopped
  short or died (`persisted offset > highwater`). We correct each listed end with the high
  watermark of one fetch from just before it (fetch responses carry the right one), and so
  Faust's producer can batch like on any broker.
- JoinGroup takes about session_timeout / 2.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as driver

from streams.connection import client_options
from streams.settings import Settings

log = logging.getLogger(__name__)


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    fetch_max_wait_ms = 1500
    fetch_min_bytes = 1
    bootstrap = ""
    client_options: Mapping[str, Any] = {}
    correct_highwaters = False  # Tansu's ListOffsets

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms  # both read when the fetcher starts
        consumer._fetch_min_bytes = self.fetch_min_bytes
        return consumer

    async def _highwaters(self, partitions: list[Any]) -> Mapping[Any, int]:
        listed = await super()._highwaters(partitions)
        if not self.correct_highwaters:
            return listed
        return await fetched_ends(self.bootstrap, listed, self.fetch_max_wait_ms, self.client_options)


async def fetched_ends(bootstrap: str, listed: Mapping[Any, int], fetch_wait_ms: int,
                       client_options: Mapping[str, Any] | None = None,
                       timeout_s: float = 10.0) -> dict[Any, int]:
    """Each partition's end offset as a fetch reports it (its high watermark), read from one
    record before the end ListOffsets gave; that end where a partition is empty."""
    out = dict(listed)
    tps = [tp for tp, end in listed.items() if end]
    if not tps:
        return out
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=fetch_wait_ms, max_partition_fetch_bytes=1024,
                                **(client_options or {}))
    await consumer.start()
    try:
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, listed[tp] - 1)
        pending, deadline = set(tps), time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no fetch answered for {sorted(pending)}")
            await consumer.getmany(*pending, timeout_ms=200)
            for tp in list(pending):
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    out[tp] = max(highwater, listed[tp])
                    pending.discard(tp)
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return out


def _new_consumer_thread(self: Any) -> driver.AIOKafkaConsumerThread:
    return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


_BEFORE_COMMIT: weakref.WeakKeyDictionary[Any, Callable[[], Awaitable[None]]] = weakref.WeakKeyDictionary()
_FAUST_COMMIT_OFFSETS = driver.Consumer._commit_offsets  # Faust's own, wrapped below


def before_commit(app: Any, stored: Callable[[], Awaitable[None]]) -> None:
    """`stored()` is awaited before every commit of `app`'s input offsets."""
    _BEFORE_COMMIT[app] = stored


def awaited_before_commit(app: Any) -> Callable[[], Awaitable[None]] | None:
    """What `before_commit` registered for `app`, if anything."""
    return _BEFORE_COMMIT.get(app)


async def _commit_offsets(self: Any, offsets: Mapping[Any, int], start_new_transaction: bool = True) -> bool:
    stored = awaited_before_commit(self.app)
    if stored is not None and offsets:
        try:
            await stored()
        except Exception as exc:  # an output the broker never took: commit nothing, ever again
            await self.crash(exc)
            return False
    return bool(await _FAUST_COMMIT_OFFSETS(self, offsets, start_new_transaction=start_new_transaction))


_FAUST_ON_REVOKED = driver.Consumer.on_partitions_revoked  # Faust's own, wrapped below


class _Revoking:
    wait_s = 5.0  # set from the settings by `apply`


async def _on_partitions_revoked(self: Any, revoked: Any) -> None:
    # What the agents have processed is committed before Faust forgets it. At a revocation Faust
    # drops the revoked partitions' acknowledged offsets first (Consumer.on_partitions_revoked)
    # and only then stops the flow and waits for the agents (App._on_partitions_revoked), whose
    # commits therefore find nothing to commit: the partition's next owner processed again
    # everything since the last periodic commit (2.8 s apart). Faust's own steps are taken here
    # first, in its order (no more deliveries, queued events dropped, the events in the agents'
    # hands finished: `wait_empty` commits as they are acknowledged), and are no-ops when Faust
    # repeats them. Bounded: past it, the rest is left to the next owner, as before.
    if revoked and self.assignment():
        self.stop_flow()
        self.app.flow_control.suspend()
        self.pause_partitions(self.assignment())
        self.app.flow_control.clear()
        try:
            await asyncio.wait_for(self.wait_empty(), timeout=_Revoking.wait_s)
        except Exception as exc:
            log.warning("offsets not committed before the rebalance (%r): the next owner reads those events "
                        "again", exc)
    await _FAUST_ON_REVOKED(self, revoked)


def apply(settings: Settings) -> None:
    _ConsumerThread.fetch_max_wait_ms = settings.fetch_max_wait_ms
    _ConsumerThread.fetch_min_bytes = settings.fetch_min_bytes
    _ConsumerThread.bootstrap = settings.bootstrap
    _ConsumerThread.client_options = client_options(settings)
    _ConsumerThread.correct_highwaters = settings.broker_profile == "tansu"
    driver.Consumer._new_consumer_thread = _new_consumer_thread  # type: ignore[method-assign]
    driver.Consumer._commit_offsets = _commit_offsets  # type: ignore[method-assign]
    driver.Consumer.on_partitions_revoked = _on_partitions_revoked  # type: ignore[method-assign]
    _Revoking.wait_s = settings.session_timeout_s / 2


def faust_options(settings: Settings) -> dict[str, Any]:
    return {
        "broker_session_timeout": settings.session_timeout_s,
        "broker_heartbeat_interval": min(3.0, settings.session_timeout_s / 3),
    }


def replica_options(settings: Settings) -> dict[str, Any]:
    """For the replicas' own aiokafka consumers: they poll all the time, mostly finding nothing;
    a longer wait costs their updates a fraction of a second and the worker far fewer fetches."""
    return {"fetch_max_wait_ms": settings.replica_fetch_wait_ms}
