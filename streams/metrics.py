"""Prometheus metrics, built on an injected registry (tests use a fresh one)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
RANK_BUCKETS = (1, 2, 3, 5, 10, 20, 50)
PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    events: Counter  # by type and outcome
    dlq: Counter  # by reason and source topic
    embed_batch: Histogram
    embed_seconds: Histogram
    encoder_cache: Gauge
    batch_seconds: Histogram
    batch_users: Histogram
    batch_store_seconds: Histogram
    commit_wait_seconds: Histogram
    neighbours_flush: Histogram
    end_to_end: Histogram
    recommendations: Counter
    items_embedded: Counter
    table_keys: Gauge  # by table
    rocksdb_bytes: Gauge  # by table and kind
    heap_bytes: Gauge  # by kind
    items: Gauge
    catalog_ready: Gauge
    assigned_partitions: Gauge
    item_rows_published: Counter
    neighbour_rows: Gauge
    cf_model: Gauge
    consumer_lag: Gauge  # by topic and partition
    rebalances: Counter
    online_events: Counter  # by model
    online_hits: Counter  # by model
    online_hit_rank: Histogram  # by model
    recommended_items: Gauge  # by model
    catalog_coverage: Gauge  # by model
    users_erased: Counter  # by reason
    offset_holes: Counter  # by topic
    refetched_records: Counter  # by topic
    recovery_stalls: Counter
    topic_partitions: Gauge  # by topic
    topic_problems: Gauge  # by topic and problem
    gc_pause: Histogram  # by generation

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> Metrics:
        r = registry if registry is not None else CollectorRegistry()
        ProcessCollector(registry=r)  # process_resident_memory_bytes, process_cpu_seconds_total, ...
        metrics = cls(
            registry=r,
            events=Counter(
                "interests_events", "Events consumed, by type and outcome "
                "(ok, dlq, duplicate, unknown_item)", ["type", "outcome"], registry=r),
            dlq=Counter(
                "interests_dlq", "Records sent to the dead-letter topic, by reason and source topic",
                ["reason", "topic"], registry=r),
            embed_batch=Histogram(
                "interests_embed_batch_size", "Texts per encoder call", buckets=BATCH_BUCKETS,
                registry=r),
            embed_seconds=Histogram(
                "interests_embed_seconds", "Wall time of one encoder call", registry=r,
                buckets=LATENCY_BUCKETS),
            encoder_cache=Gauge(
                "interests_encoder_cache_texts", "Texts looked up in the encoder's LRU cache since "
                "start, by result (hit, miss)", ["result"], registry=r),
            batch_seconds=Histogram(
                "interests_batch_seconds", "Wall time to process one batch of events, "
                "validate to publish", registry=r, buckets=LATENCY_BUCKETS),
            batch_users=Histogram(
                "interests_batch_users", "Users in one batch of events, each ranked afresh (a backlog "
                "makes batches of hundreds)", registry=r, buckets=BATCH_BUCKETS),
            batch_store_seconds=Histogram(
                "interests_batch_store_seconds", "Of a batch's wall time, handing its state changes to "
                "the producer (their acknowledgements are awaited by each commit, not the batch)",
                registry=r, buckets=LATENCY_BUCKETS),
            commit_wait_seconds=Histogram(
                "interests_commit_wait_seconds", "At each commit of input offsets, the wait for the "
                "broker to acknowledge the lists, state changes and co-occurrence deltas sent so far",
                registry=r, buckets=LATENCY_BUCKETS),
            neighbours_flush=Histogram(
                "interests_neighbours_flush_seconds", "Wall time to merge, store and republish one "
                "flush of changed co-occurrence rows (paced to leave the event loop to the interest "
                "agent)", registry=r, buckets=LATENCY_BUCKETS),
            end_to_end=Histogram(
                "interests_end_to_end_seconds", "From an event's arrival at the broker (message "
                "timestamp) to its user's recommendations being published", registry=r,
                buckets=LATENCY_BUCKETS),
            recommendations=Counter(
                "interests_recommendations", "Recommendation lists published", registry=r),
            items_embedded=Counter(
                "interests_items_embedded", "Catalog items embedded and published as vectors",
                registry=r),
            table_keys=Gauge(
                "interests_table_keys", "Keys held in this worker's partitions of a table (users: "
                "users with state; item_rows: co-occurrence rows), counted every 10 s", ["table"],
                registry=r),
            rocksdb_bytes=Gauge(
                "interests_rocksdb_bytes", "Memory RocksDB holds for a table on this worker, summed over "
                "its partitions: memtables, block_cache, table_readers (index and filter blocks), every "
                "10 s", ["table", "kind"], registry=r),
            heap_bytes=Gauge(
                "interests_heap_bytes", "The C heap (glibc, all arenas) of this worker, every 10 s: in_use "
                "(handed out, RocksDB and large arrays included), free (freed but kept: fragmentation "
                "when it grows), mapped (chunks in mmaps of their own)", ["kind"], registry=r),
            items=Gauge("interests_items", "Items in this worker's catalog", registry=r),
            catalog_ready=Gauge(
                "interests_catalog_ready", "1 once this worker's catalog replica has caught up",
                registry=r),
            assigned_partitions=Gauge(
                "interests_assigned_partitions", "Events partitions assigned to this worker",
                registry=r),
            item_rows_published=Counter(
                "interests_item_rows_published", "Co-occurrence rows merged and republished",
                registry=r),
            neighbour_rows=Gauge(
                "interests_neighbour_rows", "Co-occurrence rows in this worker's replica",
                registry=r),
            cf_model=Gauge(
                "interests_cf_model_info", "The factor model and blend this worker serves with "
                "(value 1; version \"no-cf\" when none is loaded)", ["version"], registry=r),
            consumer_lag=Gauge(
                "interests_consumer_lag", "Records in an assigned partition not yet read by this "
                "worker (high watermark - last offset read - 1), every 5 s", ["topic", "partition"],
                registry=r),
            rebalances=Counter(
                "interests_rebalances", "Partition assignments this worker received (one per "
                "consumer group rebalance)", registry=r),
            online_events=Counter(
                "interests_online_events", "Events on an item by a user who had been sent a list: "
                "the denominator of live HR@k", ["model"], registry=r),
            online_hits=Counter(
                "interests_online_hits", "Of those, events whose item was in the last list sent to "
                "that user: the numerator of live HR@k", ["model"], registry=r),
            online_hit_rank=Histogram(
                "interests_online_hit_rank", "1-based rank of a hit's item in the list the user "
                "had been sent", ["model"], registry=r, buckets=RANK_BUCKETS),
            recommended_items=Gauge(
                "interests_recommended_items", "Distinct items in the lists this worker published "
                "in the last 10 minutes", ["model"], registry=r),
            catalog_coverage=Gauge(
                "interests_catalog_coverage", "interests_recommended_items / items in the catalog",
                ["model"], registry=r),
            users_erased=Counter(
                "interests_users_erased", "Users whose state and list were removed, by reason "
                "(requested: a delete_user event; expired: idle past INTERESTS_USER_TTL_S)",
                ["reason"], registry=r),
            offset_holes=Counter(
                "interests_offset_holes", "Runs of input records the consumer skipped and the "
                "worker read back itself before going on (streams/offset_guard.py)", ["topic"],
                registry=r),
            refetched_records=Counter(
                "interests_refetched_records", "Input records read back to fill those runs",
                ["topic"], registry=r),
            recovery_stalls=Counter(
                "interests_recovery_stalls", "Nudges of table recoveries that had read nothing of a "
                "changelog partition with records left for 15 s: resumed and sought back "
                "(streams/recovery_watch.py)", registry=r),
            topic_partitions=Gauge(
                "interests_topic_partitions", "Partitions of each of the app's topics, as the broker "
                "reported them when this worker started", ["topic"], registry=r),
            topic_problems=Gauge(
                "interests_topic_problems", "1 for each of the app's topics with a problem found at "
                "start, by problem (not_created: missing and could not be created; partitions: a "
                "partition count other than INTERESTS_PARTITIONS)", ["topic", "problem"], registry=r),
            gc_pause=Histogram(
                "interests_gc_pause_seconds", "Wall time of one garbage collection, by generation: "
                "the event loop stops for it (streams/collector.py)", ["generation"], registry=r,
                buckets=PAUSE_BUCKETS),
        )
        for generation in range(3):  # labelled series exist from the start at 0
            metrics.gc_pause.labels(str(generation))
        return metrics

    def observe_gc(self, generation: int, seconds: float) -> None:
        self.gc_pause.labels(str(generation)).observe(seconds)

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)
