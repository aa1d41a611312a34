"""At least once without a wait per batch: outputs are awaited by the commit, not by the batch.

The worker's producer (`streams.publisher.Publisher`) and the commit hook
(`streams.faust_consumer.before_commit`), with stand-ins for aiokafka's producer and Faust's
consumer: no broker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from streams import faust_consumer
from streams.publisher import Publisher
from streams.settings import Settings


@dataclass
class Producer:
    """aiokafka's producer as the publisher uses it: each send returns a future the test resolves."""

    sent: list[asyncio.Future[Any]] = field(default_factory=list)

    async def send(self, topic: str, key: bytes, value: bytes | None, partition: int | None = None) -> Any:
        self.sent.append(asyncio.get_running_loop().create_future())
        return self.sent[-1]


def publisher() -> tuple[Publisher, Producer]:
    out, producer = Publisher(Settings()), Producer()
    out._producer = producer  # type: ignore[assignment]
    return out, producer


async def test_a_flush_waits_for_every_record_sent_and_only_those() -> None:
    out, producer = publisher()
    await out.send("t", b"a", b"1")
    await out.send("t", b"b", b"2")
    flush = asyncio.ensure_future(out.flush())
    await asyncio.sleep(0)
    await out.send("t", b"c", b"3")  # sent while that flush waits: the next flush's
    producer.sent[0].set_result("m0")
    await asyncio.sleep(0)
    assert not flush.done()  # one of its records is still unacknowledged
    producer.sent[1].set_result("m1")
    await asyncio.wait_for(flush, 1)
    later = asyncio.ensure_future(out.flush())
    await asyncio.sleep(0)
    assert not later.done()  # the record sent during the first flush is still pending
    producer.sent[2].set_result("m2")
    await asyncio.wait_for(later, 1)
    await asyncio.wait_for(out.flush(), 1)  # nothing left


async def test_two_flushes_at_once_both_wait_for_the_same_records() -> None:
    out, producer = publisher()
    await out.send("t", b"a", b"1")
    first, second = asyncio.ensure_future(out.flush()), asyncio.ensure_future(out.flush())
    await asyncio.sleep(0)
    assert not first.done() and not second.done()
    producer.sent[0].set_result("m0")
    await asyncio.wait_for(asyncio.gather(first, second), 1)


async def test_a_record_that_failed_fails_this_flush_and_every_later_one() -> None:
    out, producer = publisher()
    await out.send("t", b"a", b"1")
    await out.send("t", b"b", b"2")
    producer.sent[0].set_exception(OSError("broker gone"))
    producer.sent[1].set_result("m1")
    with pytest.raises(OSError, match="broker gone"):
        await out.flush()
    with pytest.raises(OSError, match="broker gone"):  # its record is not pending any more, yet
        await out.flush()


@dataclass
class Consumer:
    """Faust's consumer as the hook sees it: its app, `crash`, and the commit it wraps."""

    app: Any
    log: list[str] = field(default_factory=list)

    async def crash(self, exc: BaseException) -> None:
        self.log.append(f"crash: {exc}")


@pytest.fixture()
def faust_commit(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    log: list[str] = []

    async def commit(self: Consumer, offsets: Any, start_new_transaction: bool = True) -> bool:
        self.log.append(f"commit {dict(offsets)}")
        return True

    monkeypatch.setattr(faust_consumer, "_FAUST_COMMIT_OFFSETS", commit)
    return log


async def test_a_commit_waits_until_what_it_commits_is_stored(faust_commit: list[str]) -> None:
    app = type("App", (), {})()
    consumer = Consumer(app)
    stored = asyncio.Event()

    async def wait_stored() -> None:
        consumer.log.append("stored?")
        await stored.wait()
        consumer.log.append("stored")

    faust_consumer.before_commit(app, wait_stored)
    commit = asyncio.ensure_future(faust_consumer._commit_offsets(consumer, {"tp": 7}))
    await asyncio.sleep(0.01)
    assert consumer.log == ["stored?"]  # nothing committed while an output is unacknowledged
    stored.set()
    assert await asyncio.wait_for(commit, 1) is True
    assert consumer.log == ["stored?", "stored", "commit {'tp': 7}"]


async def test_an_output_the_broker_never_took_crashes_the_consumer_and_commits_nothing(
        faust_commit: list[str]) -> None:
    app = type("App", (), {})()
    consumer = Consumer(app)

    async def failed() -> None:
        raise OSError("broker gone")

    faust_consumer.before_commit(app, failed)
    assert await faust_consumer._commit_offsets(consumer, {"tp": 7}) is False
    assert consumer.log == ["crash: broker gone"]


async def test_an_app_without_the_hook_commits_as_faust_does(faust_commit: list[str]) -> None:
    consumer = Consumer(type("App", (), {})())
    assert await faust_consumer._commit_offsets(consumer, {"tp": 1}) is True
    assert consumer.log == ["commit {'tp': 1}"]


@dataclass
class Revoking:
    """Faust's consumer as the revocation wrapper sees it: its flow steps and `wait_empty`."""

    log: list[str] = field(default_factory=list)
    assigned: set[str] = field(default_factory=lambda: {"events-0", "events-1"})
    wait_s: float = 0.0

    def __post_init__(self) -> None:
        log = self.log

        class FlowControl:
            def suspend(self) -> None:
                log.append("suspend")

            def clear(self) -> None:
                log.append("clear")

        self.app = type("App", (), {"flow_control": FlowControl()})()

    def assignment(self) -> set[str]:
        return self.assigned

    def stop_flow(self) -> None:
        self.log.append("stop_flow")

    def pause_partitions(self, tps: set[str]) -> None:
        self.log.append(f"pause {sorted(tps)}")

    async def wait_empty(self) -> None:  # Faust's: waits for the agents, committing as they ack
        await asyncio.sleep(self.wait_s)
        self.log.append("wait_empty")


@pytest.fixture()
def faust_revoked(monkeypatch: pytest.MonkeyPatch) -> None:
    async def revoked(self: Revoking, tps: Any) -> None:  # Faust's: forgets the acked offsets first
        self.log.append(f"faust revoked {sorted(tps)}")

    monkeypatch.setattr(faust_consumer, "_FAUST_ON_REVOKED", revoked)


async def test_a_revocation_finishes_and_commits_the_agents_work_before_faust_forgets_it(
        faust_revoked: None) -> None:
    consumer = Revoking()
    await faust_consumer._on_partitions_revoked(consumer, {"events-0", "events-1"})
    assert consumer.log == ["stop_flow", "suspend", "pause ['events-0', 'events-1']", "clear", "wait_empty",
                            "faust revoked ['events-0', 'events-1']"]


async def test_agents_that_take_too_long_are_left_to_faust_and_nothing_is_revoked_at_a_first_join(
        faust_revoked: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faust_consumer._Revoking, "wait_s", 0.01)
    slow = Revoking(wait_s=1.0)
    await faust_consumer._on_partitions_revoked(slow, {"events-0"})
    assert "wait_empty" not in slow.log and slow.log[-1] == "faust revoked ['events-0']"
    first = Revoking(assigned=set())
    await faust_consumer._on_partitions_revoked(first, set())
    assert first.log == ["faust revoked []"]
