"""The agents with Faust's test_context: no broker, tables in memory."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import pytest
from aiokafka.structs import RecordMetadata

from cf.state import UserState
from encoders.transformer import TransformerEncoder
from streams import faust_consumer
from streams.app import Engine, create_app, unstall
from streams.cooccurrence_agent import row_partition
from streams.metrics import Metrics
from streams.offset_guard import OffsetGuard
from streams.records import dumps
from streams.settings import Settings


@dataclass
class Sent:
    records: list[tuple[bytes, Any]] = field(default_factory=list)

    def __call__(self, *, key: bytes, value: Any, **_: Any) -> None:
        self.records.append((key, value))

    def json(self) -> list[dict[str, Any]]:
        return [json.loads(v) for _, v in self.records]


@dataclass
class Published:
    """Stands in for the worker's output producer (which also carries the tables' changelog
    records); records by topic, each acknowledged at once with its partition and its offset
    there (dense per partition, as the broker numbers them)."""

    by_topic: dict[str, Sent] = field(default_factory=dict)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # (topic, partition) -> next

    async def send(self, topic: str, key: bytes, value: Any,
                   partition: int | None = None) -> asyncio.Future[RecordMetadata]:
        self.topic(topic)(key=key, value=value)
        at = (topic, partition or 0)
        offset = self.offsets[at] = self.offsets.get(at, -1) + 1
        acked: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        acked.set_result(RecordMetadata(topic, at[1], None, offset, -1, None, -1))
        return acked

    async def flush(self) -> None:
        pass

    def topic(self, name: str) -> Sent:
        return self.by_topic.setdefault(name, Sent())


@dataclass
class Changelogs:
    """Stands in for Faust's producer buffer (not running under test_context): every changelog
    record is acknowledged at once, as the broker would, and kept by topic."""

    by_topic: dict[str, list[tuple[Any, Any]]] = field(default_factory=dict)

    def send_soon(self, fut: Any) -> None:
        m = fut.message
        self.by_topic.setdefault(m.channel.get_topic_name(), []).append((m.key, m.value))
        fut.set_result(None)


@pytest.fixture()
def changelogs() -> Changelogs:
    return Changelogs()


@pytest.fixture()
def engine(encoder: TransformerEncoder, tmp_path: Any, changelogs: Changelogs) -> Iterator[Engine]:
    # the toy events' times are small numbers: no lower bound on event time here
    settings = Settings(store="memory://", data_dir=tmp_path, app_id="agent-test", top_k=3, min_event_ts_ms=0)
    engine = create_app(settings, encoder, Metrics.create())
    titles = {"1": "Alien. Horror, Sci-Fi", "2": "Halloween. Horror", "3": "Toy Story. Animation, Children",
              "4": "The Shining. Horror, Thriller", "5": "Finding Nemo. Animation, Children"}
    vectors = encoder.encode(list(titles.values()))
    for item_id, v in zip(titles, vectors, strict=True):
        engine.replica.catalog.upsert(item_id, v)
    engine.replica.ready.set()
    engine.neighbours.ready.set()
    # no broker to read skipped records back from (the guard has its integration test), and the
    # test harness numbers messages across partitions, not densely within each
    unguarded = [mock.patch.object(g, "complete", as_delivered) for g in engine.guards]
    with mock.patch.object(engine.app.producer, "send_soon", changelogs.send_soon), \
         unguarded[0], unguarded[1]:
        yield engine


async def as_delivered(batch: Any) -> list[Any]:
    return list(batch)


async def until(done: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """`put` returns once a value enters the take() buffer; the batch runs a little later."""
    for _ in range(int(timeout_s / 0.02)):
        if done():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the agent did not get there in time")


def event(**fields: Any) -> bytes:
    return dumps({"event_id": "e", "user_id": "u1", "type": "click", "ts": 1_000, **fields})


async def test_events_update_interests_and_publish_top_k(engine: Engine, changelogs: Changelogs) -> None:
    out, dlq = Published(), Sent()
    recs, pairs = out.topic("interests.recommendations"), out.topic("interests.item-pairs")
    agent = engine.app.agents["interests"]
    persisted: dict[Any, int] = {}
    with mock.patch.object(engine.publisher, "send", out.send), \
         mock.patch.object(engine.publisher, "flush", out.flush), \
         mock.patch.object(engine.topics.dlq, "send_soon", dlq), \
         mock.patch.object(engine.tables.users.data, "set_persisted_offset", persisted.__setitem__):
        async with agent.test_context() as ctx:
            await ctx.put(key=b"u1", value=event(event_id="e1", item_id="1"))
            await ctx.put(key=b"u1", value=b"{broken")
            await ctx.put(key=b"u2", value=event(event_id="e2", user_id="u2", type="search",
                                                 text="cartoon for kids", item_id=None))
            await until(lambda: len(recs.records) >= 2)
            await ctx.put(key=b"u1", value=event(event_id="e3", item_id="4", ts=2_000))
            await ctx.put(key=b"u1", value=event(event_id="e3", item_id="4", ts=2_000))  # again
            await until(lambda: len(recs.records) >= 3)
            assert not persisted  # a batch does not wait for its acknowledgements...
            before_commit = faust_consumer.awaited_before_commit(engine.app)
            assert before_commit is not None
            await before_commit()  # ...a commit does, and records where recovery resumes
    first = {r["user_id"]: r for r in recs.json()[:2]}
    assert set(first) == {"u1", "u2"}
    horror = [i["item_id"] for i in first["u1"]["items"]]
    assert "1" not in horror  # consumed
    assert set(horror[:2]) == {"2", "4"}  # the other horror films
    by_user = first
    assert by_user["u2"]["items"][0]["item_id"] in {"3", "5"}  # a text event, no item at all
    assert by_user["u1"]["model"].startswith("all-MiniLM-L6-v2@")
    # every item says why: u1's one film speaks for the other horror films; the search-only u2
    # has no item of their own, so only the signals speak
    for rec in recs.json():
        for item in rec["items"] + rec["new_items"]:
            because = item["because"]
            assert because["interest"] == 0
            assert set(because["components"]) == {"text", "cf", "cooc", "popularity", "seq"}
    top_u1 = {i["item_id"]: i["because"] for i in first["u1"]["items"]}
    assert top_u1["2"]["history"] == ["1"] and top_u1["4"]["history"] == ["1"]
    assert all(i["because"]["history"] == [] for i in by_user["u2"]["items"])
    assert top_u1["2"]["components"]["text"] > 0  # ranked high by text, as it says
    [dead] = dlq.json()
    assert dead["reason"] == "bad_json" and dead["topic"] == "interests.events"
    m = engine.metrics.registry
    assert m.get_sample_value("interests_dlq_total", {"reason": "bad_json", "topic": "interests.events"}) == 1
    assert m.get_sample_value("interests_events_total", {"type": "click", "outcome": "ok"}) == 2
    assert m.get_sample_value("interests_events_total", {"type": "search", "outcome": "ok"}) == 1
    assert m.get_sample_value("interests_embed_batch_size_count") >= 1
    assert m.get_sample_value("interests_commit_wait_seconds_count") == 1  # the commit above
    assert engine.tables.users[b"u1"] is not None
    stored = out.topic("agent-test-users-changelog").records  # sent with the batch's outputs
    assert {k for k, _ in stored} == {b"u1", b"u2"}  # every state the agent wrote, acknowledged
    assert not changelogs.by_topic  # nothing through Faust's one-at-a-time buffer
    # where recovery resumes: each changelog partition's newest acknowledged offset
    written = {tp: n for (topic, tp), n in out.offsets.items() if topic == "agent-test-users-changelog"}
    assert written and {tp.partition: n for tp, n in persisted.items()} == written
    assert all(tp.topic == "agent-test-users-changelog" for tp in persisted)
    # co-occurrence deltas, keyed by the row's item: "4" after "1", counted once
    deltas: dict[str, list[dict[str, Any]]] = {}
    for key, value in pairs.records:
        for item_id, delta in json.loads(value)["rows"].items():
            assert key == b"rows-%d" % row_partition(item_id, engine.settings.partitions)
            deltas.setdefault(item_id, []).append(delta)
    assert deltas["1"][0] == {"count": 1.0, "ts": 1_000, "pairs": {}, "popularity": 1.0}
    assert {"count": 1.0, "ts": 2_000, "pairs": {"1": 1.0}, "popularity": 1.0} in deltas["4"]
    assert {"count": 0.0, "ts": 0, "pairs": {"4": 1.0}, "popularity": 0.0} in deltas["1"]
    assert sum(d["count"] for d in deltas["4"]) == 1.0  # the redelivered e3 added nothing
    assert m.get_sample_value("interests_events_total", {"type": "click", "outcome": "duplicate"}) == 1
    # online quality: e3's item "4" was in the list u1 had been sent (its redelivery not counted again)
    model = {"model": by_user["u1"]["model"]}
    assert m.get_sample_value("interests_online_events_total", model) == 1
    assert m.get_sample_value("interests_online_hits_total", model) == 1
    rank = horror.index("4") + 1
    assert m.get_sample_value("interests_online_hit_rank_bucket", {**model, "le": f"{rank:.1f}"}) == 1
    below = m.get_sample_value("interests_online_hit_rank_bucket", {**model, "le": f"{rank - 1:.1f}"})
    assert below in (0, None)
    engine.stage.observe_coverage(catalog_items=5)
    shown = {i["item_id"] for r in recs.json() for i in r["items"] + r.get("new_items", [])}
    assert m.get_sample_value("interests_recommended_items", model) == len(shown)
    assert m.get_sample_value("interests_catalog_coverage", model) == len(shown) / 5


async def test_cooccurrence_agent_merges_rows_and_publishes_them(engine: Engine) -> None:
    published, dlq = Published(), Sent()
    rows = published.topic(engine.settings.topic("item-neighbours"))

    agent = engine.app.agents["cooccurrence"]
    with mock.patch.object(engine.rows_publisher, "send", published.send), \
         mock.patch.object(engine.rows_publisher, "flush", published.flush), \
         mock.patch.object(engine.topics.dlq, "send_soon", dlq):
        async with agent.test_context() as ctx:
            p = row_partition("4", engine.settings.partitions)
            for delta in (dict(count=1, ts=1000, popularity=1, pairs={"1": 1.0}),
                          dict(count=1, ts=1000, popularity=1, pairs={"1": 0.5, "2": 1})):
                await ctx.put(key=b"rows", value=dumps({"rows": {"4": delta}}), partition=p)
            await ctx.put(key=b"rows", value=b"[1, 2]", partition=p)
            stray = next(i for i in map(str, range(10)) if row_partition(i, engine.settings.partitions) != p)
            await ctx.put(key=b"rows", value=dumps({"rows": {stray: delta}}), partition=p)
            await until(lambda: len(rows.records) >= 1 and len(dlq.records) >= 2)
    row = json.loads(rows.records[-1][1])
    assert row["count"] == 2.0 and row["pairs"] == {"1": 1.5, "2": 1.0}
    assert rows.records[-1][0] == b"4"
    # the row's changelog record went out with it, through the same producer
    assert published.topic(f"{engine.settings.app_id}-item_rows-changelog").records[-1] == rows.records[-1]
    assert [d["reason"] for d in dlq.json()] == ["bad_value", "key_mismatch"]


async def test_catalog_agent_embeds_items_once_and_forwards_tombstones(engine: Engine) -> None:
    vectors, dlq = Sent(), Sent()
    agent = engine.app.agents["catalog"]
    with mock.patch.object(engine.topics.item_vectors, "send_soon", vectors), \
         mock.patch.object(engine.topics.dlq, "send_soon", dlq):
        async with agent.test_context() as ctx:
            await ctx.put(key=b"9", value=dumps({"item_id": "9", "title": "Up", "ts": 0}))
            await ctx.put(key=b"8", value=None)
            await ctx.put(key=b"7", value=dumps({"item_id": "7", "ts": 0}))
            await until(lambda: len(vectors.records) >= 2)
    keys = {k: v for k, v in vectors.records}
    assert keys[b"8"] is None
    assert json.loads(keys[b"9"])["dim"] == 384
    assert [d["reason"] for d in dlq.json()] == ["missing_field"]
    assert engine.metrics.registry.get_sample_value("interests_items_embedded_total") == 1


async def test_above_the_index_threshold_users_are_ranked_over_index_candidates(engine: Engine) -> None:
    out = Published()
    recs = out.topic("interests.recommendations")
    engine.stage.scorer.index.min_items = 3  # the 5-item catalog is "large"
    agent = engine.app.agents["interests"]
    with mock.patch.object(engine.publisher, "send", out.send), \
         mock.patch.object(engine.publisher, "flush", out.flush):
        async with agent.test_context() as ctx:
            await ctx.put(key=b"u1", value=event(event_id="e1", item_id="1"))
            await until(lambda: len(recs.records) >= 1)
    assert engine.stage.scorer.index.active and engine.stage.scorer.index._index is not None
    [rec] = recs.json()
    horror = [i["item_id"] for i in rec["items"]]
    assert "1" not in horror and set(horror[:2]) == {"2", "4"}  # as the exact ranking has it


async def test_erasure_removes_state_and_list_and_expiry_spares_a_returning_user(
    engine: Engine, changelogs: Changelogs,
) -> None:
    out = Published()
    recs = out.topic("interests.recommendations")
    day = 86_400_000
    agent = engine.app.agents["interests"]
    with mock.patch.object(engine.publisher, "send", out.send), \
         mock.patch.object(engine.publisher, "flush", out.flush):
        async with agent.test_context() as ctx:
            await ctx.put(key=b"u1", value=event(event_id="a", item_id="1", ts=1_000))
            await ctx.put(key=b"u2", value=event(event_id="b", user_id="u2", item_id="3", ts=1_000))
            await ctx.put(key=b"u3", value=event(event_id="c", user_id="u3", item_id="2", ts=1_000))
            # u1 asks to be forgotten, then comes back: the new event starts from nothing
            await ctx.put(key=b"u1", value=dumps({"event_id": "d", "user_id": "u1", "type": "delete_user",
                                                  "ts": 2_000}))
            await ctx.put(key=b"u1", value=event(event_id="e", item_id="4", ts=3_000))
            await until(lambda: any(k == b"u1" and v is None for k, v in recs.records)
                        and len(recs.records) >= 5)
            assert UserState.from_bytes(engine.tables.users[b"u1"]).history == ("4",)
            # 400 days on (event time), u3 is active again; u2 and u1 are idle past the year
            await ctx.put(key=b"u3", value=event(event_id="f", user_id="u3", item_id="5", ts=400 * day))
            await until(lambda: engine.stage.stream_ms == 400 * day)
            expiries = dict(engine.stage.expired_users(now_ms=5))
            assert set(expiries) == {b"u1", b"u2"}
            # u2 comes back before its expiry is applied: spared; u1's goes through
            await ctx.put(key=b"u2", value=event(event_id="g", user_id="u2", item_id="5", ts=400 * day))
            for key, value in expiries.items():
                await ctx.put(key=key, value=value)
            await until(lambda: engine.metrics.registry.get_sample_value(
                "interests_events_total", {"type": "delete_user", "outcome": "kept"}) == 1)
    assert engine.tables.users.get(b"u1") is None and engine.tables.users.get(b"u2") is not None
    tombstones = [k for k, v in out.topic("agent-test-users-changelog").records if v is None]
    assert tombstones == [b"u1", b"u1"]  # erased on request, then expired
    m = engine.metrics.registry
    assert m.get_sample_value("interests_users_erased_total", {"reason": "requested"}) == 1
    assert m.get_sample_value("interests_users_erased_total", {"reason": "expired"}) == 1
    assert [k for k, v in recs.records if v is None] == [b"u1", b"u1"]


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


@dataclass
class FakeConsumer:
    """What `unstall` reads from Faust's consumer, and the seeks it makes."""

    ends: dict[TP, int]
    sought: list[tuple[TP, int]] = field(default_factory=list)
    resumed: set[TP] = field(default_factory=set)
    flow_active: bool = True

    def assignment(self) -> set[TP]:
        return set(self.ends)

    def resume_partitions(self, tps: set[TP]) -> None:
        self.resumed |= tps

    async def seek_wait(self, offsets: dict[TP, int]) -> None:
        # the only seek `unstall` may make: it runs in the consumer's thread, where the Kafka
        # client's fetcher lives (no `seek` here: Faust's runs in the caller's thread)
        self.sought.extend(offsets.items())


def app_on(consumer: FakeConsumer, read: dict[TP, int], in_recovery: bool = False) -> Any:
    return mock.Mock(consumer=consumer, monitor=mock.Mock(tp_read_offsets=read), in_recovery=in_recovery)


async def unstall_at(app: Any, guard: OffsetGuard, *idle_s: float) -> None:
    """`unstall` as the worker's timer runs it, the agent idle for each of `idle_s` in turn."""
    for idle in idle_s:
        with mock.patch("streams.app.time.monotonic", return_value=guard._idle_since + idle):
            await unstall(app, guard)


def ends_from(consumer: FakeConsumer, guard: OffsetGuard) -> None:
    """The guard asks the broker for the ends the fake consumer holds."""
    async def end_offsets(partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return {(tp.topic, tp.partition): end for tp, end in consumer.ends.items()
                if (tp.topic, tp.partition) in partitions}
    guard.end_offsets = end_offsets  # type: ignore[method-assign]


async def test_a_partition_read_to_its_end_but_never_delivered_is_sought_back() -> None:
    p0, p1 = TP("interests.events", 0), TP("interests.events", 1)
    consumer = FakeConsumer({p0: 60, p1: 60})
    app = app_on(consumer, {p0: 59, p1: 59})
    metrics = Metrics.create()
    guard = OffsetGuard(Settings(), metrics, batch_wait_s=30.0)  # a batch may take 30 s to fill
    ends_from(consumer, guard)
    assert guard.stall_s == 60.0
    guard.expected = {("interests.events", 0): 40, ("interests.events", 1): 60}
    with guard.processing():
        pass  # the agent just finished a batch: not idle long enough yet
    await unstall(app, guard)
    assert consumer.sought == []
    with mock.patch("streams.app.time.monotonic", return_value=guard._idle_since + 30):
        await unstall(app, guard)  # idle, but no longer than a batch may take to collect
    assert consumer.sought == []
    await unstall_at(app, guard, 61, 90)  # behind, but not yet for the stall time
    assert consumer.sought == []
    await unstall_at(app, guard, 121)
    # partition 0: Faust read 40..59, the agent never saw them; partition 1 is up to date
    assert consumer.sought == [(p0, 40)] and consumer.resumed == {p0}
    await unstall_at(app, guard, 126, 176)  # the seek is given the stall time to deliver
    assert consumer.sought == [(p0, 40)]
    await unstall_at(app, guard, 181)
    assert consumer.sought == [(p0, 40), (p0, 40)]
    holes = metrics.registry.get_sample_value("interests_offset_holes_total", {"topic": p0.topic})
    assert holes == 2  # one per seek back


async def test_records_that_reach_the_agent_in_its_next_batch_are_not_sought_back() -> None:
    # the co-occurrence stage collects a batch for up to 5 s: a record read after a quiet spell
    # waits in it, and a check then finds the agent idle and a record it has not seen; a seek
    # back would deliver that record twice (its deltas counted twice)
    p0 = TP("interests.item-pairs", 0)
    consumer = FakeConsumer({p0: 41})
    app = app_on(consumer, {p0: 40})
    guard = OffsetGuard(Settings(), Metrics.create(), batch_wait_s=5.0)
    ends_from(consumer, guard)
    guard.expected = {("interests.item-pairs", 0): 40}
    for offset in range(40, 44):  # a record every minute, each in the batch after the check
        await unstall_at(app, guard, 60)
        with guard.processing():
            guard.expected[("interests.item-pairs", 0)] = offset + 1
        consumer.ends[p0] = offset + 2
    await unstall_at(app, guard, 60)
    assert consumer.sought == []
    await unstall_at(app, guard, 70)  # the last one is still not delivered: now it is stalled
    assert consumer.sought == [(p0, 44)]


async def test_a_partition_the_consumer_stopped_fetching_is_resumed_and_sought_back() -> None:
    # a worker that joined mid-stream: partition 0 assigned, none of its records fetched since
    # (Faust has no read offset and no high watermark for it); partition 1 read part-way
    p0, p1, p2 = (TP("interests.events", n) for n in range(3))
    consumer = FakeConsumer({p0: 60, p1: 60, p2: 60})
    app = app_on(consumer, {p1: 49, p2: 59})
    guard = OffsetGuard(Settings(), Metrics.create(), batch_wait_s=0.02)
    ends_from(consumer, guard)
    guard.expected = {("interests.events", 0): 40, ("interests.events", 1): 45, ("interests.events", 2): 60}
    await unstall_at(app, guard, 11, 21)
    assert consumer.sought == [(p0, 40), (p1, 45)] and consumer.resumed == {p0, p1}


async def test_no_partition_is_touched_while_faust_recovers_tables() -> None:
    p0 = TP("interests.events", 0)
    consumer = FakeConsumer({p0: 60})
    app = app_on(consumer, {}, in_recovery=True)  # the partitions are paused on purpose
    guard = OffsetGuard(Settings(), Metrics.create(), batch_wait_s=0.02)
    ends_from(consumer, guard)
    guard.expected = {("interests.events", 0): 40}
    with mock.patch("streams.app.time.monotonic", return_value=guard._idle_since + 60):
        await unstall(app, guard)
    assert consumer.sought == [] and consumer.resumed == set()


async def test_a_partition_whose_every_record_faust_dropped_is_found_from_its_committed_offset() -> None:
    # after a rebalance the agent saw no record of partition 0 at all: the guard has no expected
    # offset for it until the idle check asks the group's committed offset
    p0, p1 = TP("interests.events", 0), TP("interests.events", 1)
    consumer = FakeConsumer({p0: 60, p1: 60})
    app = app_on(consumer, {p0: 59, p1: 59})
    guard = OffsetGuard(Settings(), Metrics.create(), batch_wait_s=0.02)
    ends_from(consumer, guard)
    guard.reset([("interests.events", 0), ("interests.events", 1)])
    guard.expected = {("interests.events", 1): 60}  # partition 1 delivered up to its end
    committed = {("interests.events", 0): 40, ("interests.events", 1): 55}
    asked: list[list[tuple[str, int]]] = []

    async def start_offsets(partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        asked.append(partitions)
        return {tp: committed[tp] for tp in partitions}

    guard._start_offsets = start_offsets  # type: ignore[method-assign]
    await unstall_at(app, guard, 11, 21)
    assert asked == [[("interests.events", 0)]]  # only the partition it had seen nothing of
    assert guard.expected[("interests.events", 1)] == 60  # what the agent saw is kept
    assert consumer.sought == [(p0, 40)]


async def test_the_stall_check_survives_a_broker_it_cannot_reach() -> None:
    p0 = TP("interests.events", 0)
    consumer = FakeConsumer({p0: 60})
    app = app_on(consumer, {p0: 59})
    guard = OffsetGuard(Settings(), Metrics.create(), batch_wait_s=0.02)
    guard.reset([("interests.events", 0)])

    async def unreachable(partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        raise ConnectionError("broker away")

    guard._start_offsets = unreachable  # type: ignore[method-assign]
    with mock.patch("streams.app.time.monotonic", return_value=guard._idle_since + 11):
        await unstall(app, guard)  # logs and returns: the next check tries again
    assert consumer.sought == [] and guard.expected == {}
    guard.expected = {("interests.events", 0): 40}
    guard.end_offsets = unreachable  # type: ignore[method-assign]
    with mock.patch("streams.app.time.monotonic", return_value=guard._idle_since + 11):
        await unstall(app, guard)
    assert consumer.sought == []


async def test_a_batch_waits_out_a_broker_that_is_away_instead_of_crashing_the_agent() -> None:
    # a rebalance during a broker restart: the next batch brings partitions the guard must look
    # up, and the broker does not answer yet
    guard = OffsetGuard(Settings(), Metrics.create(), batch_wait_s=0.02, retry_first_s=0.01)
    tries: list[list[tuple[str, int]]] = []

    async def start_offsets(partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        tries.append(partitions)
        if len(tries) < 3:
            raise ConnectionError("broker away")
        return {tp: 5 for tp in partitions}

    guard._start_offsets = start_offsets  # type: ignore[method-assign]
    batch = [mock.Mock(message=mock.Mock(topic="interests.events", partition=0, offset=n)) for n in (5, 6)]
    assert await guard.complete(batch) == batch
    assert len(tries) == 3 and guard.expected == {("interests.events", 0): 7}


async def test_a_batch_from_before_a_rebalance_sets_no_expectation_for_the_new_assignment() -> None:
    guard = OffsetGuard(Settings(), Metrics.create(), batch_wait_s=0.02)

    async def start_offsets(partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        guard.reset([("interests.events", 0)])  # the partitions were revoked and assigned again meanwhile
        return {tp: 5 for tp in partitions}

    guard._start_offsets = start_offsets  # type: ignore[method-assign]
    batch = [mock.Mock(message=mock.Mock(topic="interests.events", partition=0, offset=n)) for n in (5, 6)]
    assert await guard.complete(batch) == batch
    assert guard.expected == {}  # the new assignment starts from the committed offset again
