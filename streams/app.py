"""The Faust app, wired in flow order: items -> item vectors -> (every worker's catalog replica);
events -> interests -> recommendations, and -> item pairs -> co-occurrence rows -> item
neighbours -> (every worker's neighbour replica); anything unreadable -> dead letters."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust

from cf.artifact import CFArtifact
from cf.catalog import ItemCatalog
from cf.catalog_index import CatalogIndex
from cf.neighbours import NeighbourIndex
from cf.serving import HybridScorer, compile_kernels
from encoders import Encoder
from streams import connection, faust_consumer
from streams.allocator import heap_bytes, release_freed_memory
from streams.catalog_agent import embed_items, reembed
from streams.catalog_replica import CatalogReplica
from streams.collector import freeze_start_up
from streams.cooccurrence_agent import merge_deltas
from streams.interest_agent import InterestStage
from streams.metrics import Metrics
from streams.neighbours_replica import NeighboursReplica
from streams.offset_guard import OffsetGuard, stalled
from streams.publisher import Publisher
from streams.recovery_watch import RecoveryWatch, consumer_view, watch_recovery
from streams.settings import Settings
from streams.tables import Tables, declare_tables
from streams.topics import Topics, declare_topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Engine:
    app: faust.App
    settings: Settings
    topics: Topics
    tables: Tables
    replica: CatalogReplica
    neighbours: NeighboursReplica
    stage: InterestStage
    publisher: Publisher  # the interest agent's
    rows_publisher: Publisher  # the co-occurrence agent's
    metrics: Metrics
    guards: tuple[OffsetGuard, ...]  # the interest agent's, the co-occurrence agent's


def create_app(settings: Settings, encoder: Encoder, metrics: Metrics | None = None) -> Engine:
    faust_consumer.apply(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    metrics = metrics or Metrics.create()
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        store=settings.store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_disable_leader=True,
        key_serializer="raw",  # no codec guesses anything, and nothing is pickled
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_max_batch_size=settings.producer_batch_bytes,
        producer_compression_type=settings.compression_type,
        web_enabled=False,
        web_port=settings.web_port,
        **faust_consumer.faust_options(settings),
        **connection.faust_options(settings),  # its producer, consumer and topic creation
    )
    topics = declare_topics(app, settings)
    tables = declare_tables(app, settings)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")
    catalog = ItemCatalog(encoder.dim)
    replica = CatalogReplica(settings, catalog, encoder.version, metrics)
    neighbours = NeighboursReplica(settings, NeighbourIndex(settings.cooc()), metrics)
    scorer = HybridScorer(catalog, neighbours.index, fold_in_items=settings.cf_fold_in_items,
                          new_item_slots=settings.new_item_slots, new_item_max=settings.new_item_max,
                          index=CatalogIndex(catalog, settings.ann_min_items, settings.ann_nprobe),
                          candidates_text=settings.ann_candidates, interests=settings.interests())
    if settings.cf_model:
        artifact = load_cf(Path(settings.cf_model), encoder.version)
        scorer.model, scorer.policy, scorer.sequence = artifact.model, artifact.policy, artifact.sequence
    metrics.cf_model.labels(scorer.version).set(1)
    compile_kernels()
    # one output producer per agent: a flush waits only for the agent's own records (a
    # co-occurrence flush sends megabytes of rows; recommendations should not queue behind them)
    publisher, rows_publisher = Publisher(settings), Publisher(settings)
    # each table's changelog records go out with its agent's outputs, batched (`StoredTable`)
    tables.users.publisher, tables.item_rows.publisher = publisher, rows_publisher
    # one guard per agent: each reads back what Faust's fetcher skipped on its input topic
    events_guard = OffsetGuard(settings, metrics, batch_wait_s=settings.batch_wait_s)
    pairs_guard = OffsetGuard(settings, metrics, batch_wait_s=settings.neighbours_flush_s)
    for source in (topics.events, topics.item_pairs):  # labelled series exist from the start at 0
        metrics.offset_holes.labels(source.get_topic_name())
        metrics.refetched_records.labels(source.get_topic_name())
    stage = InterestStage(settings, topics, tables, catalog, encoder, executor, metrics, scorer, publisher)

    async def stored_before_commit() -> None:  # what a committed offset caused is stored first
        started = time.perf_counter()
        await stage.stored()
        metrics.commit_wait_seconds.observe(time.perf_counter() - started)

    faust_consumer.before_commit(app, stored_before_commit)

    @app.agent(topics.items, name="catalog")
    async def catalog_agent(stream: Any) -> None:
        async for batch in stream.take_events(settings.batch_size, within=settings.batch_wait_s):
            await embed_items(batch, settings, topics, encoder, executor, metrics)

    async def refresh_catalog() -> None:
        await reembed(replica, topics, encoder, executor, metrics)

    replica.refresh = refresh_catalog

    @app.task
    async def catalog_replica() -> None:
        await replica.run()

    @app.timer(2.0)
    async def reembed_stale() -> None:
        # items another encoder version embedded while this worker runs (a rolling upgrade)
        if replica.ready.is_set() and replica.stale:
            await refresh_catalog()

    @app.task
    async def neighbours_replica() -> None:
        await neighbours.run()

    @app.task
    async def freeze_collected() -> None:
        # what start-up made stays for good: out of every later full collection (streams/collector.py)
        await replica.ready.wait()
        await neighbours.ready.wait()
        freeze_start_up()

    @app.agent(topics.events, name="interests")
    async def interest_agent(stream: Any) -> None:
        # Wait for the replicas inside the loop: an agent that is not iterating its stream while
        # Faust recovers tables after a rebalance was seen to lose its partitions' backlog.
        async for batch in stream.take_events(settings.batch_size, within=settings.batch_wait_s):
            with events_guard.processing():  # a batch waiting for the replicas is not a stall
                await replica.ready.wait()  # no user is scored against a half-loaded catalog
                await neighbours.ready.wait()
                await stage.process(await events_guard.complete(batch))

    @app.agent(topics.item_pairs, name="cooccurrence")
    async def cooccurrence_agent(stream: Any) -> None:
        # long batches: a row changed many times in a second is published once
        async for batch in stream.take_events(settings.batch_size, within=settings.neighbours_flush_s):
            with pairs_guard.processing():
                await merge_deltas(await pairs_guard.complete(batch), settings, topics, tables, metrics,
                                   rows_publisher)

    async def broker_answers(partitions: list[tuple[str, int]]) -> bool:
        try:
            await asyncio.wait_for(events_guard.end_offsets(partitions), timeout=5.0)
        except Exception:  # the broker away, or slow: either way, not the worker's fault
            return False
        return True

    async def watch_recoveries() -> None:
        watch = RecoveryWatch()
        while True:
            await asyncio.sleep(5.0)
            try:
                await watch_recovery(app, watch, metrics, time.monotonic(), broker_answers)
            except Exception as exc:  # a safety net never takes the worker down by itself
                log.warning("recovery watch: %r; looking again in 5 s", exc)

    watching: list[asyncio.Future[None]] = []

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned = args[0] if args else kwargs["assigned"]  # Set[TP], sent after each rebalance
        if not watching:  # from the first assignment: Faust starts its timers after the first recovery
            watching.append(app.add_future(watch_recoveries()))
        events_topic = topics.events.get_topic_name()
        metrics.assigned_partitions.set(sum(1 for tp in assigned if tp.topic == events_topic))
        metrics.rebalances.inc()
        metrics.consumer_lag.clear()  # partitions this worker no longer reads have no lag here
        for guard, source in ((events_guard, topics.events), (pairs_guard, topics.item_pairs)):
            # each partition starts again from the group's committed offset
            guard.reset((tp.topic, tp.partition) for tp in assigned if tp.topic == source.get_topic_name())

    @app.on_before_shutdown.connect
    async def stop_publishers(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # after the consumer stopped: no agent sends any more; what is queued is sent first
        for p in (publisher, rows_publisher):
            await p.flush()
            await p.stop()
        for guard in (events_guard, pairs_guard):
            await guard.stop()

    @app.timer(10.0)
    async def count_keys() -> None:
        for name, table in (("users", tables.users), ("item_rows", tables.item_rows)):
            metrics.table_keys.labels(name).set(table.key_count())
            for kind, size in table.rocksdb_bytes().items():
                metrics.rocksdb_bytes.labels(name, kind).set(size)
        # in a thread: a walk of the heap's free lists (streams/allocator.py)
        for kind, size in (await asyncio.to_thread(heap_bytes)).items():
            metrics.heap_bytes.labels(kind).set(size)

    if settings.malloc_trim_s > 0:
        @app.timer(settings.malloc_trim_s)
        async def release_memory() -> None:
            # in a thread: a few ms over the heap, the event loop keeps going (streams/allocator.py)
            await asyncio.to_thread(release_freed_memory)

    @app.timer(settings.user_ttl_check_s)
    async def expire_idle_users() -> None:
        # the deletions go through the events topic: each is applied in its user's partition, in
        # order with that user's events, and spares a user who came back in the meantime
        now_ms = int(time.time() * 1000)
        for n, (key, deletion) in enumerate(stage.expired_users(now_ms)):
            await topics.events.send(key=key, value=deletion)
            if n % 1000 == 999:
                await asyncio.sleep(0)

    sources = {t.get_topic_name() for t in (topics.events, topics.items, topics.item_pairs)}

    @app.timer(5.0)
    async def observe() -> None:
        observe_lag(app, metrics, sources)
        stage.observe_coverage(len(catalog))
        for guard in (events_guard, pairs_guard):
            await unstall(app, guard)

    return Engine(app, settings, topics, tables, replica, neighbours, stage, publisher, rows_publisher,
                  metrics, (events_guard, pairs_guard))


def observe_lag(app: faust.App, metrics: Metrics, sources: set[str]) -> None:
    """Per assigned partition of the agents' source topics, read at least once (changelogs are
    read only while recovering): lag = high watermark - (last offset read + 1).
    The high watermark comes with every fetch response; the last offset read is what Faust's
    monitor noted as each message came in."""
    read = app.monitor.tp_read_offsets
    for tp in app.consumer.assignment():
        if tp.topic in sources and tp in read:
            highwater = app.consumer.highwater(tp)
            if highwater is not None:
                metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, highwater - read[tp] - 1))


async def unstall(app: faust.App, guard: OffsetGuard) -> None:
    """Resume and seek back the partitions holding records an idle agent never saw
    (`streams.offset_guard.stalled`); Faust delivers them again from there."""
    if guard.idle_s(time.monotonic()) < guard.stall_s or app.in_recovery:
        return  # while Faust recovers tables it holds the partitions paused on purpose
    try:
        await guard.expect_assigned()
        ends = await guard.end_offsets(sorted(guard.expected))
    except Exception as exc:  # the broker away, say: a safety net never takes the worker down
        log.warning("stall check: offsets not readable now (%r); trying again in 5 s", exc)
        return
    if not guard.expected or guard.idle_s(time.monotonic()) < guard.stall_s:  # a batch came meanwhile
        return
    tps = {(tp.topic, tp.partition): tp for tp in app.consumer.assignment()}
    read = {(tp.topic, tp.partition): offset for tp, offset in app.monitor.tp_read_offsets.items()}
    behind = [key for key in stalled(guard.expected, ends) if key in tps]
    back = {tps[key]: guard.expected[key] for key in guard.overdue(behind, time.monotonic())}
    if not back:
        return
    view = consumer_view(app, set(back))  # before the seeks change it
    for tp, offset in back.items():
        key = (tp.topic, tp.partition)
        last = read.get(key)
        how = ("read by the consumer but never delivered" if last is not None and last + 1 >= ends[key]
               else f"not fetched (consumer read up to {last})")
        log.warning("%s[%d]: records %d..%d %s for %.0f s; resuming and seeking back", key[0], key[1],
                    offset, ends[key] - 1, how, guard.idle_s(time.monotonic()))
        guard.metrics.offset_holes.labels(key[0]).inc()
    log.warning("the consumer's view of the stalled partitions: %s", view)
    app.consumer.resume_partitions(set(back))  # a no-op unless Faust left them paused
    # in the consumer's own thread: the Kafka client's fetcher lives there, and a seek from this
    # one raced its delivery of fetched records (a KeyError that stopped the worker)
    await app.consumer.seek_wait(back)


def load_cf(folder: Path, space: str) -> CFArtifact:
    """The `interests train-cf` artifact; its text projection must be for this worker's encoder."""
    artifact = CFArtifact.load(folder)
    if artifact.model.space != space:
        raise ValueError(f"INTERESTS_CF_MODEL {folder} was trained for encoder "
                         f"{artifact.model.space!r}; this worker embeds with {space!r}")
    if artifact.sequence is not None and artifact.sequence.space != space:
        raise ValueError(f"INTERESTS_CF_MODEL {folder}: its sequential model was trained for encoder "
                         f"{artifact.sequence.space!r}; this worker embeds with {space!r}")
    seq = artifact.sequence
    also = "" if seq is None else f" and sequential model {seq.version} ({len(seq.item_ids)} items)"
    log.info("serving with factor model %s (%d items)%s", artifact.model.version,
             len(artifact.model.item_ids), also)
    return artifact
